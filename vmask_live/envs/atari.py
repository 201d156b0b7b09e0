"""Atari environments (ALE via ale-py) with the standard SB3 / RL-Zoo preprocessing.

Observations are what the agents and explainers see: ``(4, 84, 84)`` uint8, grey, frame skip 4,
max-pooled over the last two frames, up to 30 no-op starts. ``render()`` gives the full-size RGB
frame, onto which saliency maps are drawn.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["ATARI_GAMES", "ObjectRam", "make_atari", "register_ale"]

#: CLI name -> ALE id. The paper's games first.
ATARI_GAMES: dict[str, str] = {
    "MsPacman": "ALE/MsPacman-v5",
    "Enduro": "ALE/Enduro-v5",
    "Seaquest": "ALE/Seaquest-v5",
    "Pong": "ALE/Pong-v5",
    "Breakout": "ALE/Breakout-v5",
    "SpaceInvaders": "ALE/SpaceInvaders-v5",
}

FRAME_STACK = 4
SCREEN_SIZE = 84


def register_ale() -> None:
    """Register the ALE environments with Gymnasium (idempotent; safe in subprocess workers)."""
    try:
        import ale_py
    except ImportError as err:  # pragma: no cover - ale-py is a runtime dependency
        raise gym.error.DependencyNotInstalled('ale-py is not installed; run `pip install "ale-py>=0.9"`') from err
    gym.register_envs(ale_py)


class ObjectRam(gym.Wrapper):
    """Adds two methods that vector envs can call in their worker processes, so that game objects
    (:mod:`vmask_live.objects`) reach ``ExplainedVectorEnv`` / ``ExplainedVecEnv`` from an
    ``AsyncVectorEnv`` or ``SubprocVecEnv`` (``envs.call("object_ram")``). Nothing else changes."""

    def object_game(self) -> str | None:
        """The game's name (``"MsPacman"``), as the object annotators are registered."""
        from vmask_live.objects import game_of

        return game_of(self.env)

    def object_ram(self) -> np.ndarray:
        """A copy of the emulator's RAM, (128,) uint8."""
        return np.array(self.env.unwrapped.ale.getRAM(), dtype=np.uint8)  # type: ignore[attr-defined]


def make_atari(
    name: str,
    *,
    render_mode: str | None = None,
    training: bool = False,
    max_episode_steps: int | None = 27_000,
    **kwargs: Any,
) -> gym.Env:
    """Make an Atari env with RL-Zoo preprocessing.

    Args:
        name: a key of :data:`ATARI_GAMES` or a full ALE id (``"ALE/Pong-v5"``).
        render_mode: passed to the ALE env (``"rgb_array"`` gives the 210x160 RGB frame).
        training: add the training-only wrappers (episodic life, reward clipping) used by PPO.
            Evaluation, datasets and play always use full games and raw scores.
        max_episode_steps: agent-step limit (27k agent steps = 108k frames, as in the RL Zoo).
        **kwargs: forwarded to ``gym.make``.
    """
    register_ale()
    env_id = ATARI_GAMES.get(name, name)
    # Frame skipping happens in AtariPreprocessing (with max-pooling), so the ALE env must not skip;
    # no sticky actions, as in the RL Zoo's NoFrameskip-v4 setting the paper's agents used.
    kwargs.setdefault("repeat_action_probability", 0.0)
    env: gym.Env = ObjectRam(gym.make(env_id, frameskip=1, render_mode=render_mode, **kwargs))
    env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=SCREEN_SIZE, grayscale_obs=True)
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
    if training:
        from stable_baselines3.common.atari_wrappers import ClipRewardEnv, EpisodicLifeEnv
        from stable_baselines3.common.monitor import Monitor

        env = Monitor(env)  # records raw game scores before life splitting / clipping
        env = EpisodicLifeEnv(env)
        env = ClipRewardEnv(env)
    env = gym.wrappers.FrameStackObservation(env, FRAME_STACK)
    return env
