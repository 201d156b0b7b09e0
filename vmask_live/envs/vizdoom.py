"""VizDoom scenarios as pixel envs: 4 stacked 84x84 grey frames of the screen buffer.

:class:`VizDoomEnv` drives a ``vizdoom.DoomGame`` directly (no window, no sound): each agent step
presses one button for ``frame_skip`` tics, the observation is the RGB screen buffer turned grey
and resized to 84x84 (the whole 4:3 screen, squeezed, as the DQN-on-Doom literature does), and
``render()`` gives the RGB screen buffer itself, of which the observation is a resize, so a
saliency map drawn on it lands where the agent looked. The action space is one ``Discrete``
action per button of the scenario (``basic``: MOVE_LEFT, MOVE_RIGHT, ATTACK; ``defend_the_center``:
TURN_LEFT, TURN_RIGHT, ATTACK). An episode that hits the scenario's timeout is truncated; one
that ends otherwise (the monster killed, the player dead) is terminated.

vizdoom is an optional extra (``pip install "vmask-live[vizdoom]"``); it ships the engine and the
scenarios in its wheel and is imported only when an env is made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["SCENARIOS", "VizDoomEnv", "make_vizdoom"]

#: Scenario name -> its config file among vizdoom's bundled scenarios.
SCENARIOS: dict[str, str] = {
    "basic": "basic.cfg",
    "defend_the_center": "defend_the_center.cfg",
}
FRAME_STACK = 4
SCREEN_SIZE = 84
TICRATE = 35
"""Doom's tics per second (for the render fps)."""


class VizDoomEnv(gym.Env[np.ndarray, np.int64]):
    """One VizDoom scenario, one grey ``(84, 84)`` uint8 frame per step (stack them for agents).

    Args:
        scenario: a key of :data:`SCENARIOS` or the path of a ViZDoom ``.cfg`` file.
        frame_skip: tics each action is held (the rewards of those tics are summed).
        resolution: the screen buffer's ``vizdoom.ScreenResolution`` name; ``render()`` returns it
            (320x240 by default: 160x120 steps about twice as fast but looks blocky in the live window).
        render_mode: ``"rgb_array"`` or None.

    Example:
        >>> env = VizDoomEnv("basic")  # doctest: +SKIP
        >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
        >>> obs.shape, env.action_space  # doctest: +SKIP
        ((84, 84), Discrete(3))
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": TICRATE}

    def __init__(
        self,
        scenario: str = "basic",
        *,
        frame_skip: int = 4,
        resolution: str = "RES_320X240",
        render_mode: str | None = None,
    ) -> None:
        self.game: Any = None  # set first: close() reads it even when validation fails
        if not isinstance(scenario, str):
            raise TypeError(f"Expected `scenario` to be a str, got {type(scenario).__name__}")
        if not isinstance(frame_skip, int) or frame_skip < 1:
            raise ValueError(f"Expected `frame_skip` to be an int >= 1, got {frame_skip!r}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"Expected `render_mode` to be None or 'rgb_array', got {render_mode!r}")
        import vizdoom as vzd

        if scenario in SCENARIOS:
            config = os.path.join(vzd.scenarios_path, SCENARIOS[scenario])
        elif scenario.endswith(".cfg") and os.path.isfile(scenario):
            config = scenario
        else:
            raise ValueError(
                f"Expected `scenario` to be one of {sorted(SCENARIOS)} or the path of a .cfg file, got {scenario!r}"
            )
        res = getattr(vzd.ScreenResolution, resolution, None)
        if res is None:
            raise ValueError(
                f"Expected `resolution` to be a vizdoom.ScreenResolution name (RES_WxH), got {resolution!r}"
            )
        game = vzd.DoomGame()
        game.load_config(config)
        game.set_screen_format(vzd.ScreenFormat.RGB24)
        game.set_screen_resolution(res)
        game.set_window_visible(False)
        game.set_sound_enabled(False)
        game.set_mode(vzd.Mode.PLAYER)
        game.set_doom_config_path(str(_config_path()))  # not the default: a _vizdoom.ini in the working folder
        game.init()
        self.game = game
        self.scenario = scenario
        self.frame_skip = frame_skip
        self.render_mode = render_mode
        self.buttons = [b.name for b in game.get_available_buttons()]
        n = len(self.buttons)
        self._presses = [[float(i == j) for j in range(n)] for i in range(n)]
        self.action_space = gym.spaces.Discrete(n)
        self.observation_space = gym.spaces.Box(0, 255, (SCREEN_SIZE, SCREEN_SIZE), np.uint8)
        self._frame = np.zeros((game.get_screen_height(), game.get_screen_width(), 3), np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        # The game's own generator (monster placement and behaviour) follows the env's seed.
        self.game.set_seed(int(self.np_random.integers(2**31 - 1)))
        self.game.new_episode()
        self._grab()
        return self._obs(), {}

    def step(self, action: np.int64 | int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"Expected an action in {self.action_space}, got {action!r}")
        reward = self.game.make_action(self._presses[int(action)], self.frame_skip)
        finished = self.game.is_episode_finished()
        truncated = bool(finished and self.game.is_episode_timeout_reached())
        if not finished:
            self._grab()  # a finished episode has no screen: the last one stays
        return self._obs(), float(reward), bool(finished and not truncated), truncated, {}

    def render(self) -> np.ndarray | None:
        """The RGB screen buffer ``(H, W, 3)`` of which the observation is a grey resize."""
        return self._frame.copy() if self.render_mode == "rgb_array" else None

    def get_action_meanings(self) -> list[str]:
        """The scenario's button names, one per action."""
        return list(self.buttons)

    def close(self) -> None:
        if self.game is not None:
            self.game.close()
            self.game = None

    def _grab(self) -> None:
        self._frame = np.ascontiguousarray(self.game.get_state().screen_buffer)

    def _obs(self) -> np.ndarray:
        import cv2  # here, not at the top: `import vmask_live.envs` stays light

        grey = cv2.cvtColor(self._frame, cv2.COLOR_RGB2GRAY)
        return cv2.resize(grey, (SCREEN_SIZE, SCREEN_SIZE), interpolation=cv2.INTER_AREA)


def _config_path() -> Path:
    """Where the engine writes its settings file (``_vizdoom.ini``): under the vmask-live cache."""
    folder = Path(os.environ.get("VMASK_LIVE_CACHE", Path.home() / ".cache" / "vmask-live")) / "vizdoom"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "_vizdoom.ini"


def make_vizdoom(
    scenario: str = "basic",
    *,
    render_mode: str | None = None,
    training: bool = False,
    max_episode_steps: int | None = None,
    **kwargs: Any,
) -> gym.Env:
    """A VizDoom scenario with 4 stacked 84x84 grey frames (uint8 ``(4, 84, 84)``).

    Args:
        scenario: a key of :data:`SCENARIOS` or a ViZDoom ``.cfg`` path.
        render_mode: ``"rgb_array"`` for the RGB screen buffer.
        training: unused (no training-only wrappers); accepted for the registry.
        max_episode_steps: an agent-step limit on top of the scenario's own timeout.
        **kwargs: forwarded to :class:`VizDoomEnv` (``frame_skip``, ``resolution``).
    """
    del training
    env: gym.Env = VizDoomEnv(scenario, render_mode=render_mode, **kwargs)
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
    return gym.wrappers.FrameStackObservation(env, FRAME_STACK)
