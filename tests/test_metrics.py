import pytest
import torch

from vmask_live.metrics import insertion_deletion, lle, normalise, pointing_game, relevance_mass, sparseness


def test_sparseness_one_hot_and_uniform():
    n = 100
    one_hot = torch.zeros(1, 10, 10)
    one_hot[0, 3, 4] = 1.0
    assert sparseness(one_hot).item() == pytest.approx(100 * (n - 1) / n, abs=1e-4)
    assert sparseness(torch.ones(1, 10, 10)).item() == pytest.approx(0.0, abs=1e-6)
    assert sparseness(torch.zeros(1, 10, 10)).item() == 0.0


def test_sparseness_hand_computed():
    # x sorted = [0, 1, 3]: G = ((2-3-1)*0 + (4-3-1)*1 + (6-3-1)*3) / (3 * 4) = 6 / 12
    m = torch.tensor([[[3.0, 0.0, 1.0]]])
    assert sparseness(m).item() == pytest.approx(50.0, abs=1e-4)


class _PixelAgent(torch.nn.Module):
    """Chooses action 0 with probability sigmoid(10 * (pixel(0,0) - 0.5)): only pixel (0, 0) matters."""

    def forward(self, x):
        v = 10 * (x[:, 0, 0, 0] - 0.5)
        return torch.stack([v, -v], dim=1) / 2


def test_insertion_deletion_of_a_perfect_map():
    x = torch.ones(1, 1, 5, 5)
    ref = torch.zeros(1, 1, 5, 5)
    perfect = torch.zeros(1, 5, 5)
    perfect[0, 0, 0] = 1.0
    res = insertion_deletion(_PixelAgent(), x, torch.tensor([0]), perfect, ref, n_steps=25)
    p_on = torch.sigmoid(torch.tensor(5.0)).item()
    p_off = torch.sigmoid(torch.tensor(-5.0)).item()
    # one pixel = 1/25 of the image: the key pixel is in from t = 1/25 on (insertion), out from 1/25 (deletion)
    dt = 1 / 25
    ins = (dt * (p_off + p_on) / 2 + (1 - dt) * p_on) * 100
    dele = (dt * (p_on + p_off) / 2 + (1 - dt) * p_off) * 100
    assert res["insertion"].item() == pytest.approx(ins, abs=1e-3)
    assert res["deletion"].item() == pytest.approx(dele, abs=1e-3)
    worst = torch.ones(1, 5, 5)
    worst[0, 0, 0] = 0.0  # the key pixel ranked last
    bad = insertion_deletion(_PixelAgent(), x, torch.tensor([0]), worst, ref, n_steps=25)
    assert bad["insertion"].item() < res["insertion"].item()
    assert bad["deletion"].item() > res["deletion"].item()


def test_lle_of_constant_and_identity_explanations():
    x = torch.rand(2, 1, 6, 6)
    a = torch.tensor([0, 1])
    const = lle(lambda s, _a: torch.ones(s.shape[0], 6, 6), x, a)
    assert torch.allclose(const, torch.zeros(2))
    ident = lle(lambda s, _a: s[:, 0], torch.full((2, 1, 6, 6), 0.5), a)
    assert torch.allclose(ident, torch.ones(2), atol=1e-5)  # no clipping at 0.5 ± 0.05: ratio exactly 1


def test_relevance_mass_and_pointing_game():
    m = torch.zeros(1, 4, 4)
    m[0, 0, 0], m[0, 3, 3] = 3.0, 1.0
    rel = torch.zeros(1, 4, 4, dtype=torch.bool)
    rel[0, 0, 0] = True
    assert relevance_mass(m, rel).item() == pytest.approx(100.0 * 1.0 / (1.0 + 1 / 3), abs=1e-4)
    assert pointing_game(m, rel).item() is True
    rel2 = torch.zeros_like(rel)
    rel2[0, 3, 3] = True
    assert pointing_game(m, rel2).item() is False


def test_normalise_only_out_of_range_maps():
    inside = torch.rand(2, 3, 3)
    assert normalise(inside) is inside
    out = normalise(torch.tensor([[[-2.0, 0.0], [2.0, 2.0]]]))
    assert out.min().item() == 0.0 and out.max().item() == 1.0


def test_a_maps_score_never_depends_on_the_other_maps_of_its_batch():
    from vmask_live.metrics import normalise

    faint = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.1
    mixed = faint.clone()
    mixed[1] *= 20  # one map of the batch leaves [0, 1]
    assert torch.equal(normalise(mixed)[0], faint[0]) and torch.equal(normalise(mixed)[2], faint[2])
    assert normalise(mixed)[1].max() == 1 and normalise(mixed)[1].min() == 0


def test_evaluate_rescales_the_maps_of_methods_that_are_not_masks():
    from vmask_live.evaluate import _unit_maps

    faint = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.01 + 0.001
    for name in ("gradient", "integrated_gradients", "gradcam", "rise", "greydanus", "lime"):
        m = _unit_maps(name, faint)  # a gradient that stays below 1 is no faint mask
        assert torch.allclose(m.flatten(1).amax(1), torch.ones(2)) and torch.allclose(
            m.flatten(1).amin(1), torch.zeros(2)
        )
    for name in ("visionmask", "explainer", "sarfa"):  # masks in [0, 1]: scored as they are
        assert torch.equal(_unit_maps(name, faint), faint)


def test_rescaling_non_mask_maps_changes_accuracy_only():
    from vmask_live.metrics import evaluate_maps
    from vmask_live.overlay import Reference
    from vmask_live.testing import tiny_agent

    agent = tiny_agent()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 84, 84, generator=g)
    a = agent(x).argmax(1)
    faint = torch.rand(6, 84, 84, generator=g) ** 4 * 0.01  # a gradient-like map: small values, never above 1
    raw = evaluate_maps(agent, x, a, faint, Reference("black"), n_steps=10, with_lle=False)
    unit = evaluate_maps(agent, x, a, faint, Reference("black"), n_steps=10, with_lle=False, rescale_maps=True)
    assert unit["sparseness"] == raw["sparseness"]  # the Gini index of |m|, not of a shifted map
    assert unit["insertion"] == raw["insertion"] and unit["deletion"] == raw["deletion"]  # rank-based
    assert unit["accuracy"] >= raw["accuracy"]  # the faint map hardly keeps anything of the state


def test_maps_of_another_resolution_or_with_nan_are_refused():
    """Relevant masks at the frame's 210x160 and maps at 84x84 used to give a pointing score (the
    flat indices just ran into other pixels); NaN maps gave accuracy 0 and sparseness 0."""
    from vmask_live.metrics import evaluate_maps

    maps, frame_masks = torch.rand(2, 84, 84), torch.zeros(2, 210, 160, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"shape \(2, 210, 160\) .* got \(2, 84, 84\)"):
        pointing_game(maps, frame_masks)
    with pytest.raises(ValueError, match=r"shape \(2, 210, 160\)"):
        relevance_mass(maps, frame_masks)
    agent = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(84 * 84, 3))
    x, a = torch.rand(2, 1, 84, 84), torch.tensor([0, 1])
    nan_maps = maps.clone()
    nan_maps[1, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="got 1 NaN or infinite values in 2 maps"):
        evaluate_maps(agent, x, a, nan_maps, lambda s: torch.zeros_like(s), with_lle=False)
    with pytest.raises(
        ValueError, match=r"one action per state \(B,\), got states \(2, 1, 84, 84\) and actions \(1,\)"
    ):
        evaluate_maps(agent, x, a[:1], maps, lambda s: torch.zeros_like(s), with_lle=False)
    evaluate_maps(agent, x, a, maps, lambda s: torch.zeros_like(s), with_lle=False)  # the same maps, finite: fine
