"""Highway (highway-env) with image observations: 4 stacked grey frames of the road around the car.

The observation is highway-env's ``GrayscaleObservation`` in the configuration its documentation
gives for CNN agents (a 128x64 view, 1.75 px per metre, 4 frames stacked), turned the right way
up: uint8 ``(4, 64, 128)``, rows top to bottom, columns along the road. ``render()`` draws the same
window of the road in colour at ``render_scale`` times the size, so a saliency map resized to the
frame lands on what the agent saw (the overlay assumes the observation is a resize of the frame).

Actions are highway-env's ``DiscreteMetaAction``: LANE_LEFT, IDLE, LANE_RIGHT, FASTER, SLOWER.
One agent step is one second of driving (``highway-fast-v0``: 5 simulation steps per action,
episodes of 30 steps that end early on a crash).

highway-env is an optional extra (``pip install "vmask-live[highway]"``) and is imported only
inside :func:`make_highway`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["HIGHWAY_ID", "ACTION_NAMES", "OBS_SHAPE", "make_highway", "HighwayPixels"]

HIGHWAY_ID = "highway-fast-v0"
ACTION_NAMES = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")
FRAME_STACK = 4
OBS_SHAPE = (64, 128)
"""Observation height and width in pixels (highway-env's documented CNN configuration)."""
SCALING = 1.75
"""Pixels per metre in the observation."""
CENTERING = (0.3, 0.5)
"""Where the controlled car sits in the window, as a fraction of width and height."""


class HighwayPixels(gym.Wrapper[np.ndarray, int, np.ndarray, int], gym.utils.RecordConstructorArgs):
    """highway-env's stacked grey frames as ``(C, H, W)``, drawn even under ``SDL_VIDEODRIVER=dummy``.

    Two things in highway-env 1.x need mending for pixel agents:

    - ``GrayscaleObservation`` returns ``(stack, width, height)``: the image transposed. This
      wrapper returns ``(stack, height, width)``, the layout every pixel tool (and the overlay) expects.
    - Its viewers draw nothing when ``SDL_VIDEODRIVER`` is ``"dummy"`` (they assume no drawing is
      wanted without a display), which gives all-black frames on headless machines and in our
      tests. Drawing onto an off-screen surface works with the dummy driver, so the wrapper turns the
      viewers back on.

    Args:
        env: a highway-env env made with a ``GrayscaleObservation``.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3 or space.dtype != np.uint8:
            raise TypeError(f"Expected a uint8 (stack, width, height) Box from GrayscaleObservation, got {space}")
        stack, width, height = space.shape
        self.observation_space = gym.spaces.Box(0, 255, (stack, height, width), np.uint8)
        # vmask_live.envs.action_names (and so datasets and agents) reads the names from the
        # unwrapped env, as ALE gives them; highway-env has no such method of its own.
        env.unwrapped.get_action_meanings = self.get_action_meanings  # type: ignore[attr-defined]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        viewer = self.env.unwrapped.observation_type.viewer  # type: ignore[attr-defined]
        if not viewer.enabled:
            # The reset frame was not drawn; the stack is zeros until then, so observing once more
            # gives exactly the stack a drawing viewer would have given.
            viewer.enabled = True
            obs = self.env.unwrapped.observation_type.observe()  # type: ignore[attr-defined]
        return self._chw(obs), info

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._chw(obs), float(reward), terminated, truncated, info

    def render(self) -> Any:
        base = self.env.unwrapped
        if base.render_mode is not None and base.viewer is None:  # type: ignore[attr-defined]
            from highway_env.envs.common.graphics import EnvViewer

            base.viewer = EnvViewer(base)  # type: ignore[attr-defined]
            base.viewer.enabled = True  # type: ignore[attr-defined]
        return self.env.render()

    def get_action_meanings(self) -> list[str]:
        """The names of the discrete actions, in order."""
        actions = self.env.unwrapped.action_type.actions  # type: ignore[attr-defined]
        return [actions[i] for i in range(len(actions))]

    @staticmethod
    def _chw(obs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(obs).transpose(0, 2, 1))


def make_highway(
    *,
    render_mode: str | None = None,
    training: bool = False,
    render_scale: int = 4,
    config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Make ``highway-fast-v0`` with stacked grey image observations (uint8 ``(4, 64, 128)``).

    Args:
        render_mode: ``"rgb_array"`` gives the observation's window in colour,
            ``render_scale`` times its size (``(256, 512, 3)`` by default).
        training: unused (highway-env has no training-only wrappers); accepted for the registry.
        render_scale: how many frame pixels per observation pixel.
        config: more highway-env config keys (``"vehicles_count"``, ``"duration"``, ...); the
            observation and the render window are set here.
        **kwargs: forwarded to ``gym.make``.
    """
    del training
    if not isinstance(render_scale, int) or render_scale < 1:
        raise ValueError(f"Expected `render_scale` to be an int >= 1, got {render_scale!r}")
    import highway_env  # noqa: F401  (registers the highway-env ids with Gymnasium)

    height, width = OBS_SHAPE
    observation = {
        "type": "GrayscaleObservation",
        "observation_shape": (width, height),  # highway-env takes (width, height)
        "stack_size": FRAME_STACK,
        "weights": [0.2989, 0.5870, 0.1140],
        "scaling": SCALING,
        "centering_position": list(CENTERING),
    }
    full = dict(config or {})
    full.update(
        observation=observation,
        screen_width=width * render_scale,
        screen_height=height * render_scale,
        scaling=SCALING * render_scale,
        centering_position=list(CENTERING),
    )
    env = gym.make(HIGHWAY_ID, render_mode=render_mode, config=full, **kwargs)
    return HighwayPixels(env)
