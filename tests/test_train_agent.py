"""Converting SB3 PPO zips into our agent checkpoints (:func:`vmask_live.train_agent.export_ppo`)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import vmask_live as vm
from vmask_live.errors import CheckpointError


class _FiveActionImageEnv(gym.Env):
    """Beacon-shaped frames and 5 actions, without config.json: a zip whose game only --env can name."""

    observation_space = gym.spaces.Box(0, 255, (84, 84, 1), np.uint8)
    action_space = gym.spaces.Discrete(5)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.fixture(scope="module")
def bare_zip(tmp_path_factory):
    """An untrained SB3 PPO CnnPolicy zip with no config.json beside it."""
    from stable_baselines3 import PPO

    model = PPO("CnnPolicy", _FiveActionImageEnv(), device="cpu", seed=0, n_steps=16, batch_size=16)
    path = tmp_path_factory.mktemp("ext") / "x.zip"
    model.save(path)
    return path


def test_export_ppo_names_actions_from_the_given_env(bare_zip, tmp_path):
    from vmask_live.envs import action_names
    from vmask_live.train_agent import export_ppo

    out = export_ppo(bare_zip, tmp_path / "agent.safetensors", env="Beacon")
    assert vm.load_agent(out).action_names == action_names("Beacon")  # not Ms. Pac-Man's
    with pytest.raises(CheckpointError, match=r"Breakout's 4 actions, got 5 actions.*pass the --env the zip"):
        export_ppo(bare_zip, tmp_path / "breakout.safetensors", env="Breakout")
    with pytest.raises(CheckpointError, match=r"Enduro's 9 actions, got 5 actions"):
        export_ppo(bare_zip, tmp_path / "enduro.safetensors", env="Enduro")
    with pytest.raises(ValueError, match="pass env=NAME"):
        export_ppo(bare_zip, tmp_path / "none.safetensors")


def test_train_agent_export_takes_action_names_from_env(bare_zip, tmp_path):
    """`vmask-live train-agent --algo ppo --env Breakout --export-checkpoint ext/x.zip --eval-episodes 0`."""
    from vmask_live.train_agent import PPOConfig, run_train_agent

    cfg = PPOConfig(env="Breakout", out=str(tmp_path / "bo"), eval_episodes=0)
    with pytest.raises(CheckpointError, match=r"Breakout's 4 actions, got 5 actions"):
        run_train_agent(cfg, export_checkpoint=bare_zip)
    path, scores = run_train_agent(
        PPOConfig(env="Beacon", out=str(tmp_path / "b"), eval_episodes=0), export_checkpoint=bare_zip
    )
    assert scores == {}
    assert vm.load_agent(path).action_names == ["NOOP", "UP", "RIGHT", "LEFT", "DOWN"]  # Beacon's, not Ms. Pac-Man's
