"""Method-specific checks of the baselines; the invariants all methods share are in test_methods.py."""

import pytest
import torch

from vmask_live.baselines import LIME
from vmask_live.methods import CountingAgent, build_method
from vmask_live.overlay import Reference
from vmask_live.testing import tiny_agent


class Corner(torch.nn.Module):
    """Action 0 is worth more the brighter the top-left 10x10 corner: the only pixels that matter."""

    def forward(self, x):
        v = x[:, 0, :10, :10].mean((1, 2)) * 20
        return torch.stack([v, -v], 1)


@pytest.mark.parametrize("name", ["greydanus", "sarfa"])
def test_perturbation_methods_batch_each_state_into_one_agent_call(name):
    agent = CountingAgent(tiny_agent())
    build_method(name, agent, Reference("black")).attribute(torch.rand(2, 1, 84, 84), torch.tensor([0, 3]))
    # 17 x 17 grid perturbations plus the state itself, in one call per state
    assert agent.states == 2 * (1 + 17 * 17) and agent.calls == 2


def test_rise_costs_one_agent_pass_per_mask():
    agent = CountingAgent(tiny_agent())
    build_method("rise", agent, Reference("black"), rise_masks=64).attribute(
        torch.rand(2, 1, 84, 84), torch.tensor([0, 3])
    )
    assert agent.states == 2 * 64


def test_greydanus_finds_the_only_pixels_that_matter():
    method = build_method("greydanus", Corner(), Reference("black"))
    x = torch.zeros(1, 1, 84, 84)
    x[:, :, :10, :10] = 1.0
    m = method.attribute(x, torch.tensor([0]))[0]
    assert m[:10, :10].mean() > 10 * m[40:, 40:].mean()


def test_lime_is_seeded_and_leaves_the_global_random_state_alone():
    pytest.importorskip("captum")
    pytest.importorskip("sklearn")
    x = torch.rand(1, 1, 84, 84)
    torch.manual_seed(1)
    first = LIME(Corner(), Reference("black"), n_samples=30).attribute(x, torch.tensor([0]))
    torch.manual_seed(2)
    state = torch.get_rng_state()
    second = LIME(Corner(), Reference("black"), n_samples=30).attribute(x, torch.tensor([0]))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, second) and first[0, :10, :10].abs().sum() > 0
    other = LIME(Corner(), Reference("black"), n_samples=30, seed=1).attribute(x, torch.tensor([0]))
    assert not torch.equal(first, other)
