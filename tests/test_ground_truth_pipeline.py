"""End to end on the ground-truth env: BC agent, dataset, VisionMask explainer, metrics."""

import numpy as np
import pytest
import torch

from vmask_live.dataset import CollectConfig, Dataset, DatasetError, collect
from vmask_live.metrics import evaluate_maps


def test_bc_agent_agrees_with_the_expert(beacon_agent):
    _, metrics, _ = beacon_agent
    assert metrics["heldout_agreement"] >= 0.95 and metrics["reached_min_agreement"], metrics
    *failed, last = [a["heldout_agreement"] for a in metrics["attempts"]]
    assert last >= 0.95 and all(a < 0.95 for a in failed)  # retried only below the bar, stopped at it


def test_dataset_split_and_manifest(beacon_data):
    ds = beacon_data
    assert len(ds) == 6000 and ds.has_relevant
    counts = ds.manifest["counts"]
    assert sum(counts.values()) == 6000 and counts["train"] > 4 * counts["test"] > 0
    tr, te = set(ds.episodes[ds.split("train")]), set(ds.episodes[ds.split("test")])
    assert not tr & te  # split by episode
    bg, mean = ds.statistics()
    assert bg.shape == (1, 84, 84) and mean.shape == (1,)
    assert bg.max() < 0.2  # the median removes the moving objects and most clutter


def test_explainer_is_faithful_and_points_at_the_relevant_pixels(beacon_agent, beacon_data, beacon_explainer):
    agent = beacon_agent[0]
    ds = beacon_data
    exp = beacon_explainer.explainer
    idx = ds.split("test")[:300]
    d = ds.get(idx, ("obs", "actions", "relevant"))
    x, a = ds.obs_format.to_model(d["obs"]), torch.as_tensor(d["actions"])
    res = evaluate_maps(
        agent, x, a, exp.attribute, exp.reference, relevant=torch.as_tensor(d["relevant"]), with_lle=False
    )
    print(res)
    assert res["accuracy"] >= 90.0, res
    assert res["relevance_mass"] >= 3 * res["relevant_area"], res
    assert res["insertion"] > res["deletion"], res


def test_collect_resumes_after_interruption(beacon_agent, tmp_path):
    agent = beacon_agent[0]
    cfg = CollectConfig(env="Beacon", out=str(tmp_path / "d"), steps=300, shard_size=100, n_envs=4)
    calls = {"n": 0}
    orig = agent.act

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 40:  # after 160 states: one shard written, one in progress
            raise KeyboardInterrupt
        return orig(*args, **kw)

    agent.act = flaky
    try:
        with pytest.raises(KeyboardInterrupt, match="rerun with --resume"):
            collect(cfg, agent=agent, progress=False)
    finally:
        del agent.act
    partial = Dataset(tmp_path / "d")
    assert 100 <= len(partial) < 300  # the shard in progress was flushed, nothing lost
    with pytest.raises(DatasetError, match="pass --resume"):
        collect(cfg, agent=agent, progress=False)
    cfg.resume = True
    full = collect(cfg, agent=agent, progress=False)
    assert len(full) == 300
    eps = full.episodes
    assert len(np.unique(eps)) >= 4


def test_dataset_from_another_agent_is_refused(beacon_data, tmp_path):
    from vmask_live.testing import tiny_agent
    from vmask_live.train import TrainConfig, train

    with pytest.raises(DatasetError, match="collected with agent"):
        train(TrainConfig(data=str(beacon_data.path), out=str(tmp_path)), agent=tiny_agent(), progress=False)
    with pytest.raises(DatasetError, match="no manifest.json"):
        Dataset(tmp_path)


def _tiny_train_config(beacon_data, out, **changes):
    from vmask_live.train import TrainConfig

    base = {"epochs": 1, "steps_per_epoch": 4, "batch_size": 8, "width": 4, "val_samples": 16}
    return TrainConfig(data=str(beacon_data.path), out=str(out), **{**base, **changes})


def test_training_resumes_from_last_checkpoint(beacon_agent, beacon_data, tmp_path):
    from vmask_live.train import train

    cfg = _tiny_train_config(beacon_data, tmp_path, checkpoint_every=2)
    first = train(cfg, agent=beacon_agent[0], progress=False)
    assert len(first.history) == 1 and (tmp_path / "last.safetensors").exists()
    cfg.epochs, cfg.resume = 2, True
    second = train(cfg, agent=beacon_agent[0], progress=False)
    assert [h["epoch"] for h in second.history] == [1, 2]


def _record_calls(module: torch.nn.Module, calls: list) -> None:
    """Record ``(input, output)`` of every forward call of ``module``."""
    module.register_forward_hook(lambda _m, args, out: calls.append((args[0].detach().clone(), out.detach().clone())))


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_input_noise_changes_what_the_explainer_sees_not_the_masked_state(noise):
    """The agent must be queried on ``overlay(clean s, M(noisy s), r(clean s))``, never on noisy states."""
    from vmask_live.loss import LossConfig
    from vmask_live.overlay import Reference, overlay
    from vmask_live.testing import tiny_agent, tiny_explainer
    from vmask_live.train import train_step

    agent, net = tiny_agent(), tiny_explainer().net.train()
    ref = Reference.from_data("blur", height=84)  # depends on the state, so r(noisy s) != r(s) too
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((4, 1, 84, 84), generator=gen)
    a = torch.tensor([0, 1, 2, 4])
    agent_calls, net_calls = [], []
    _record_calls(agent, agent_calls)
    _record_calls(net, net_calls)
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)

    torch.manual_seed(0)
    terms = train_step(net, agent, x, a, ref, LossConfig(), opt, input_noise=noise)

    assert len(net_calls) == 1 and len(agent_calls) == 1  # one agent call of B·2K states
    x_in, masks = net_calls[0]
    if noise:
        assert not torch.equal(x_in, x) and (x_in - x).abs().max() <= noise + 1e-6
        assert x_in.min() >= 0 and x_in.max() <= 1
    else:
        assert torch.equal(x_in, x)
    r = ref(x)
    expected = torch.cat([overlay(x, masks, r), overlay(x, 1 - masks, r)], dim=1).flatten(0, 1)
    seen = agent_calls[0][0]
    assert seen.shape == (4 * 2 * 5, 1, 84, 84)
    torch.testing.assert_close(seen, expected, rtol=0, atol=1e-6)
    if noise:  # the check above tells the two apart: noise on the masked state would fail it
        leaked = torch.cat([overlay(x_in, masks, ref(x_in)), overlay(x_in, 1 - masks, ref(x_in))], 1).flatten(0, 1)
        assert (seen - leaked).abs().max() > 1e-2
    assert np.isfinite(terms["loss/total"])
    assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))  # the step was taken


def test_train_passes_input_noise_to_every_step_and_records_it(beacon_agent, beacon_data, tmp_path, monkeypatch):
    import inspect

    import vmask_live.train as train_mod

    noises = []
    real_step = train_mod.train_step

    def spy(*args, **kwargs):
        noises.append(inspect.signature(real_step).bind(*args, **kwargs).arguments.get("input_noise", 0.0))
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_mod, "train_step", spy)
    cfg = _tiny_train_config(beacon_data, tmp_path, steps_per_epoch=2, input_noise=0.05)
    res = train_mod.train(cfg, agent=beacon_agent[0], progress=False)
    assert noises == [0.05, 0.05]
    assert res.explainer.meta["train_config"]["input_noise"] == 0.05
