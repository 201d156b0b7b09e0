"""Beacon: a ground-truth pixel environment where we know which pixels decide the action.

A white square (the *runner*) must reach a ring-shaped *beacon* on an 84x84 grey screen full of
random clutter (rectangles, specks, lines in darker greys, re-drawn every time the beacon moves).
Positions lie on a 4-pixel grid and the runner moves one cell per step. The scripted expert walks
x-first: LEFT/RIGHT until the columns match, then UP/DOWN, then NOOP on the beacon (which collects
it; a new beacon and new clutter appear). So the expert's action is a function of the two objects
only, and ``info["relevant_mask"]`` (bool H x W) marks exactly their pixels: a faithful
explanation must put its mass there, never on the clutter.

Observation: ``(84, 84)`` uint8 (stack frames with ``FrameStackObservation`` if wanted).
``render_mode="rgb_array"`` returns a 336x336 RGB frame (runner blue, beacon green).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from vmask_live.errors import ConfigError

__all__ = ["BeaconEnv", "ACTION_NAMES", "BEACON_ID", "make_beacon"]

ACTION_NAMES = ["NOOP", "UP", "RIGHT", "LEFT", "DOWN"]
NOOP, UP, RIGHT, LEFT, DOWN = range(5)
_MOVES = {NOOP: (0, 0), UP: (0, -1), RIGHT: (1, 0), LEFT: (-1, 0), DOWN: (0, 1)}

SIZE = 84
CELL = 4
GRID = SIZE // CELL  # 21 cells per axis
OBJ = 7  # object side in pixels
RUNNER_VALUE = 255
BEACON_VALUE = 200

#: Gymnasium id (registered by :mod:`vmask_live.envs`).
BEACON_ID = "vmask_live/Beacon-v0"


class BeaconEnv(gym.Env[np.ndarray, np.int64]):
    """Reach the beacon; the relevant pixels are the runner and the beacon.

    Args:
        render_mode: ``None`` or ``"rgb_array"``.
        max_steps: episode length (truncation).
        clutter: number of clutter rectangles (plus as many specks).
        texture: 0 for a black background; else the background is per-pixel grey noise in
            ``[0, texture]``, re-drawn with the clutter, so it differs from any fixed reference.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self, render_mode: str | None = None, max_steps: int = 100, clutter: int = 10, texture: int = 0
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"Expected render_mode None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.max_steps = max_steps
        self.n_clutter = clutter
        if not 0 <= texture < 256:
            raise ConfigError(f"Expected texture in [0, 255], got {texture}")
        self.texture = texture
        self.observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE), np.uint8)
        self.action_space = gym.spaces.Discrete(5)
        self._runner = np.zeros(2, np.int64)
        self._beacon = np.zeros(2, np.int64)
        self._clutter = np.zeros((SIZE, SIZE), np.uint8)
        self._t = 0

    # --- the scripted expert -------------------------------------------------------------
    @staticmethod
    def expert_action_from(runner: np.ndarray, beacon: np.ndarray) -> int:
        dx, dy = int(beacon[0] - runner[0]), int(beacon[1] - runner[1])
        if dx:
            return RIGHT if dx > 0 else LEFT
        if dy:
            return DOWN if dy > 0 else UP
        return NOOP

    def get_action_meanings(self) -> list[str]:
        """The action names, under the name ALE uses (what :func:`vmask_live.envs.action_names` reads)."""
        return list(ACTION_NAMES)

    def expert_action(self) -> int:
        """The scripted expert's action on the current state."""
        return self.expert_action_from(self._runner, self._beacon)

    # --- dynamics ------------------------------------------------------------------------
    def _new_beacon(self) -> None:
        while True:
            cell = self.np_random.integers(0, GRID, size=2)
            if np.abs(cell - self._runner).max() >= 3:  # not on top of the runner
                self._beacon = cell
                break
        self._draw_clutter()

    def _draw_clutter(self) -> None:
        rng = self.np_random
        img = np.zeros((SIZE, SIZE), np.uint8)
        if self.texture:
            img[:] = rng.integers(0, self.texture + 1, (SIZE, SIZE))
        for _ in range(self.n_clutter):
            w, h = rng.integers(2, 12, size=2)
            x, y = rng.integers(0, SIZE - 2, size=2)
            img[y : y + h, x : x + w] = rng.integers(30, 130)
        for _ in range(self.n_clutter):  # specks and thin lines
            x, y = rng.integers(0, SIZE, size=2)
            if rng.random() < 0.5:
                img[y, max(0, x - 6) : x + 6] = rng.integers(40, 140)
            else:
                img[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = rng.integers(40, 140)
        self._clutter = img

    def _pixel_box(self, cell: np.ndarray) -> tuple[slice, slice]:
        x0 = int(cell[0]) * CELL + (CELL - OBJ) // 2 + 1
        y0 = int(cell[1]) * CELL + (CELL - OBJ) // 2 + 1
        x0, y0 = min(max(x0, 0), SIZE - OBJ), min(max(y0, 0), SIZE - OBJ)
        return slice(y0, y0 + OBJ), slice(x0, x0 + OBJ)

    def _obs(self) -> np.ndarray:
        img = self._clutter.copy()
        by, bx = self._pixel_box(self._beacon)
        img[by, bx] = BEACON_VALUE
        img[by.start + 2 : by.stop - 2, bx.start + 2 : bx.stop - 2] = 0  # a ring
        ry, rx = self._pixel_box(self._runner)
        img[ry, rx] = RUNNER_VALUE
        return img

    def relevant_mask(self) -> np.ndarray:
        """Bool ``(H, W)``: the pixels of the runner and the beacon."""
        mask = np.zeros((SIZE, SIZE), bool)
        for cell in (self._beacon, self._runner):
            y, x = self._pixel_box(cell)
            mask[y, x] = True
        return mask

    def _info(self) -> dict[str, Any]:
        return {"relevant_mask": self.relevant_mask(), "expert_action": self.expert_action()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._runner = self.np_random.integers(0, GRID, size=2)
        self._new_beacon()
        return self._obs(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"Expected an action in {self.action_space}, got {action!r}")
        self._t += 1
        reward = 0.0
        on_beacon = bool((self._runner == self._beacon).all())
        if int(action) == NOOP and on_beacon:
            reward = 1.0
            self._new_beacon()
        else:
            self._runner = np.clip(self._runner + np.array(_MOVES[int(action)]), 0, GRID - 1)
        truncated = self._t >= self.max_steps
        return self._obs(), reward, False, truncated, self._info()

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        obs = self._obs()
        rgb = np.repeat(obs[..., None], 3, axis=2)
        rgb[obs == RUNNER_VALUE] = (60, 140, 255)
        rgb[obs == BEACON_VALUE] = (80, 230, 90)
        return np.kron(rgb, np.ones((4, 4, 1), np.uint8))


def make_beacon(*, render_mode: str | None = None, training: bool = False, **kwargs: Any) -> gym.Env:
    """Make Beacon through Gymnasium (so ``env.spec`` records it; :mod:`vmask_live.envs` registers it).

    Args:
        render_mode: ``None`` or ``"rgb_array"``.
        training: accepted for the common ``make`` signature; Beacon has no training-only wrappers.
        **kwargs: :class:`BeaconEnv` arguments (``texture``, ``clutter``, ``max_steps``).
    """
    return gym.make(BEACON_ID, render_mode=render_mode, **kwargs)
