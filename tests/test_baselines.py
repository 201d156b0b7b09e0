"""One table of methods drives shared invariant tests (captum style)."""

import pytest
import torch

from vmask_live.baselines import METHODS, build_method
from vmask_live.overlay import Reference
from vmask_live.testing import tiny_agent, tiny_explainer

CHEAP = {"rise_masks": 64, "lime_samples": 40}


class CountingAgent(torch.nn.Module):
    def __init__(self, agent):
        super().__init__()
        self.agent = agent
        self.calls = 0
        self.states = 0

    def forward(self, x):
        self.calls += 1
        self.states += x.shape[0]
        return self.agent(x)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_returns_one_map_per_state(name):
    if name in ("lime", "gradient", "gradcam", "integrated_gradients"):
        pytest.importorskip("captum")
    if name == "lime":
        pytest.importorskip("sklearn")
    torch.manual_seed(0)
    agent = CountingAgent(tiny_agent())
    method = build_method(name, agent, Reference("black"), explainer=tiny_explainer(), **CHEAP)
    x = torch.rand(2, 1, 84, 84)
    out = method.attribute(x, torch.tensor([0, 3]))
    assert out.shape == (2, 84, 84) and torch.isfinite(out).all()
    if name in ("greydanus", "sarfa"):
        # 17 x 17 grid perturbations per state, batched: one call per state plus the unperturbed pass
        assert agent.states == 1 * 2 + 2 * 17 * 17 and agent.calls == 1 + 2
    if name == "rise":
        assert agent.states == 2 * 64


def test_greydanus_finds_the_only_pixels_that_matter():
    class Corner(torch.nn.Module):
        def forward(self, x):
            v = x[:, 0, :10, :10].mean((1, 2)) * 20
            return torch.stack([v, -v], 1)

    method = build_method("greydanus", Corner(), Reference("black"))
    x = torch.zeros(1, 1, 84, 84)
    x[:, :, :10, :10] = 1.0
    m = method.attribute(x, torch.tensor([0]))[0]
    assert m[:10, :10].mean() > 10 * m[40:, 40:].mean()


def test_unknown_method():
    with pytest.raises(ValueError, match="Unknown method 'shap'"):
        build_method("shap", tiny_agent(), Reference("black"))


@pytest.mark.parametrize("name", ["gradient", "gradcam", "integrated_gradients"])
def test_gradient_methods_work_inside_the_metrics(name):
    pytest.importorskip("captum")
    from vmask_live.metrics import evaluate_maps

    agent = tiny_agent()
    method = build_method(name, agent, Reference("black"))
    x = torch.rand(3, 1, 84, 84)
    res = evaluate_maps(
        agent, x, torch.tensor([0, 1, 2]), method.attribute, Reference("black"), n_steps=4, lle_neighbours=2
    )
    assert 0 <= res["accuracy"] <= 100 and res["lle"] >= 0
