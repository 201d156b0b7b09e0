import gymnasium as gym
import numpy as np
import pytest
import torch

import vmask_live as vm
from vmask_live.agents import SB3Agent, TorchAgent, agent_from_sb3, save_agent


@pytest.fixture(scope="module")
def tiny_ppo(tmp_path_factory):
    from stable_baselines3 import PPO

    env = gym.wrappers.FrameStackObservation(vm.make_env("Beacon"), 2)  # (2, 84, 84) uint8: an image space
    model = PPO(
        "CnnPolicy",
        env,
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"features_extractor_kwargs": {"features_dim": 32}},
    )
    model.learn(32)
    path = tmp_path_factory.mktemp("ppo") / "ppo.zip"
    model.save(path)
    return model, path, env


def test_sb3_zip_loads_as_a_differentiable_agent(tiny_ppo):
    model, path, env = tiny_ppo
    agent = vm.load_agent(path)  # read without unpickling: our NatureCNN with SB3's weights
    assert isinstance(agent, TorchAgent) and agent.n_actions == 5
    obs, _ = env.reset(seed=0)
    x = agent.obs_format.to_model(obs[None]).requires_grad_(True)
    logits = agent(x)
    logits[0, 0].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the input
    expected = model.policy.get_distribution(torch.as_tensor(obs[None])).distribution.logits
    assert torch.allclose(torch.log_softmax(logits.detach(), 1), expected, atol=1e-5)


def test_sb3_policy_converts_to_our_checkpoint_without_pickle(tiny_ppo, tmp_path):
    model, _, env = tiny_ppo
    agent = agent_from_sb3(model)
    kw = {"in_channels": 2, "n_actions": 5, "input_size": [84, 84], "features": 32}
    path = save_agent(tmp_path / "agent.safetensors", agent, "nature_cnn", kw)
    back = vm.load_agent(path)
    obs = np.stack([env.reset(seed=s)[0] for s in range(3)])
    x = back.obs_format.to_model(obs)
    sb3 = SB3Agent(model)
    with torch.no_grad():
        diff = back(x) - sb3(x)  # both the raw action-head outputs (logits before the softmax)
    assert diff.abs().max() < 1e-5


def test_action_count_mismatch_for_a_torch_module():
    with pytest.raises(ValueError, match="needs obs_format, n_actions, input_scale"):
        vm.load_agent(torch.nn.Linear(4, 2))


class _LogitsAndValue(torch.nn.Module):
    """An actor-critic that returns ``(logits, value)``: not an agent until wrapped."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(84 * 84, 6))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.body(x)
        return out[:, :5], out[:, 5:]


def test_plain_module_is_test_run_on_load():
    from vmask_live.errors import ConfigError
    from vmask_live.observations import ObsFormat

    fmt = ObsFormat((84, 84), "hw")
    six_way = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(84 * 84, 6))
    with pytest.raises(ConfigError, match=r"return \(B, 5\) action logits, got \(1, 6\); pass n_actions=6"):
        vm.load_agent(six_way, obs_format=fmt, n_actions=5, input_scale=1.0)
    with pytest.raises(ConfigError, match="got a tuple of 2; wrap it so that forward returns the policy logits only"):
        vm.load_agent(_LogitsAndValue(), obs_format=fmt, n_actions=5, input_scale=1.0)
    with pytest.raises(ConfigError, match="RuntimeError.*check that obs_format"):
        vm.load_agent(six_way, obs_format=ObsFormat((4, 84, 84), "chw"), n_actions=6, input_scale=1.0)
    agent = vm.load_agent(six_way, obs_format=fmt, n_actions=6, input_scale=1.0)
    assert agent.n_actions == 6


def _resave(src, dst, edit) -> None:
    """Copy an agent checkpoint with its metadata rewritten by ``edit(meta)``."""
    from vmask_live.checkpoint import read_checkpoint, save_checkpoint

    tensors, meta = read_checkpoint(src, "agent")
    edit(meta)
    save_checkpoint(dst, tensors, meta)


def test_agent_checkpoint_with_incomplete_or_inconsistent_metadata(tmp_path):
    from vmask_live.errors import CheckpointError
    from vmask_live.testing import tiny_agent

    agent = tiny_agent()
    c, h, w = agent.obs_format.chw
    kw = {"in_channels": c, "n_actions": 5, "input_size": [h, w], "width": 4}
    good = save_agent(tmp_path / "good.safetensors", agent, "small_cnn", kw)
    assert vm.load_agent(good).n_actions == 5

    _resave(good, tmp_path / "no_kwargs.safetensors", lambda m: (m.pop("arch_kwargs"), m.pop("obs_format")))
    with pytest.raises(CheckpointError, match="incomplete metadata: no 'arch_kwargs', 'obs_format'.*save_agent"):
        vm.load_agent(tmp_path / "no_kwargs.safetensors")

    def nine_actions(meta):  # says 9 actions, holds a 5-way head
        meta.update(n_actions=9, action_names=[str(i) for i in range(9)])

    _resave(good, tmp_path / "nine.safetensors", nine_actions)
    with pytest.raises(CheckpointError, match=r"n_actions=9 says, got \(1, 5\)"):
        vm.load_agent(tmp_path / "nine.safetensors")

    _resave(good, tmp_path / "head9.safetensors", lambda m: (nine_actions(m), m["arch_kwargs"].update(n_actions=9)))
    with pytest.raises(CheckpointError, match="does not fit its weights"):
        vm.load_agent(tmp_path / "head9.safetensors")
