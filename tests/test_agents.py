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
        diff = torch.log_softmax(back(x), 1) - sb3(x)
    assert diff.abs().max() < 1e-5


def test_action_count_mismatch_for_a_torch_module():
    with pytest.raises(ValueError, match="needs obs_format, n_actions, input_scale"):
        vm.load_agent(torch.nn.Linear(4, 2))
