"""Game objects from the emulator's RAM, and how much of a saliency map falls on each.

A saliency map is pixels; people reason in objects ("she turns because of the red ghost"). Where
a game's RAM layout is known, an *annotator* reads the objects of the current state (category,
id, box) from ``env.unwrapped.ale.getRAM()`` and maps the boxes to observation pixels (the
RL-Zoo preprocessing resizes the whole 210x160 screen to 84x84, no crop). Object positions are
independent ground truth on real games: :func:`object_mass` says which share of each action's
map lies on each object.

Annotators are registered per game with :func:`register_annotator`; :func:`annotator_for` finds
the one of an env (``None`` where no annotations exist, so other envs are unaffected). The RAM
tables of :mod:`vmask_live.atari_objects` (Ms. Pac-Man, Pong, Breakout, Seaquest, Enduro) are registered once, on the
first lookup, for the games that have no annotator registered by then.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vmask_live.errors import ConfigError

__all__ = [
    "GameObject",
    "Annotator",
    "register_annotator",
    "annotator_for",
    "annotator_for_game",
    "game_of",
    "annotate",
    "screen_to_obs",
    "object_masks",
    "object_mass",
    "BoxPixels",
    "box_pixels",
    "box_mass",
    "union_mass",
    "ANNOTATORS",
    "ITEM_CATEGORIES",
    "is_item",
]

SCREEN_HW = (210, 160)
"""ALE screen size (rows, columns) that RAM positions refer to."""

ITEM_CATEGORIES: frozenset[str] = frozenset({"pill"})
"""Categories of many small static items (Ms. Pac-Man's ~150 pills): listed in ``info["objects"]``
and scored, but never dilated (they do not move between the stacked frames, and dilated they
would cover most of the corridors), grouped as one line in the live panel, not outlined by the
box key and not cycled through by the object counterfactual key."""


def is_item(category: str) -> bool:
    """Whether ``category`` is one of the :data:`ITEM_CATEGORIES`."""
    return category in ITEM_CATEGORIES


@dataclass(frozen=True)
class GameObject:
    """One object of a game state.

    Attributes:
        category: what it is (``"player"``, ``"ghost"``, ``"fruit"``, ``"hud"`` ...).
        id: which one of its category (ghost 0..3), stable over an episode.
        box: ``(x0, y0, x1, y1)`` in observation pixels, float, ``x1``/``y1`` exclusive.
    """

    category: str
    id: int
    box: tuple[float, float, float, float]

    @functools.cached_property  # (computed once: the pills' objects are reused from step to step)
    def name(self) -> str:
        """``"ghost 2"``; the category alone for single objects (id 0 of a one-of-a-kind category)."""
        return (
            self.category
            if self.id == 0 and self.category in ("player", "enemy", "ball", "fruit", "hud", "player_missile")
            else f"{self.category} {self.id}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"category": self.category, "id": self.id, "box": [float(v) for v in self.box]}


Annotator = Callable[[np.ndarray], list[GameObject]]
"""``RAM (128,) uint8 -> objects`` of that state, boxes in observation pixels."""

ANNOTATORS: dict[str, Annotator] = {}
"""Game name (as in :mod:`vmask_live.envs`, e.g. ``"MsPacman"``) -> annotator."""


def register_annotator(game: str, annotator: Annotator) -> None:
    """Make ``annotator`` the object source of ``game`` (a registry name such as ``"MsPacman"``)."""
    ANNOTATORS[game] = annotator


def _register_builtin_annotators() -> None:
    # Imported here, not at the top: vmask_live.atari_objects imports this module. Its import
    # registers the tables once; a game removed from ANNOTATORS afterwards stays removed.
    import vmask_live.atari_objects  # noqa: F401


def _game_of(env: Any) -> str | None:
    """``"MsPacman"`` for ``ALE/MsPacman-v5``, ``MsPacman-v5`` and the RL Zoo's ``MsPacmanNoFrameskip-v4``."""
    spec = getattr(getattr(env, "unwrapped", env), "spec", None)
    env_id = getattr(spec, "id", "") or ""
    if not env_id:
        return None
    name = env_id.split("/", 1)[1] if env_id.startswith("ALE/") else env_id
    name = name.split("-")[0]
    for suffix in ("NoFrameskip", "Deterministic"):
        name = name.removesuffix(suffix)
    return name or None


def annotator_for_game(game: str | None) -> Annotator | None:
    """The annotator registered for ``game`` (a registry name such as ``"MsPacman"``), or ``None``."""
    if not game:
        return None
    _register_builtin_annotators()
    return ANNOTATORS.get(game)


def game_of(env: Any) -> str | None:
    """The game name of an ALE env (``"MsPacman"``), or ``None`` for other envs."""
    return _game_of(env) if hasattr(getattr(env, "unwrapped", env), "ale") else None


def annotator_for(env: Any) -> Annotator | None:
    """The annotator of ``env``'s game, or ``None`` (no RAM tables for it, or not an ALE env)."""
    return annotator_for_game(game_of(env))


def annotate(env: Any, annotator: Annotator | None = None) -> list[GameObject] | None:
    """The objects of ``env``'s current state (``None`` where no annotator exists)."""
    annotator = annotator or annotator_for(env)
    if annotator is None:
        return None
    ram = np.asarray(env.unwrapped.ale.getRAM(), dtype=np.uint8)
    return annotator(ram)


def screen_to_obs(
    x0: float, y0: float, x1: float, y1: float, obs_hw: Sequence[int] = (84, 84)
) -> tuple[float, float, float, float]:
    """A box in ALE screen pixels (160 wide, 210 high) -> observation pixels (the whole screen is
    resized, no crop)."""
    sy, sx = obs_hw[0] / SCREEN_HW[0], obs_hw[1] / SCREEN_HW[1]
    return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


def _bounds(objects: Sequence[GameObject], hw: Sequence[int], dilate: int) -> np.ndarray:
    """``(N, 4)`` pixel rows ``r0:r1`` and columns ``c0:c1`` each object's box covers: dilated by
    ``dilate`` (not :data:`ITEM_CATEGORIES`), clipped to the frame, possibly empty."""
    h, w = int(hw[0]), int(hw[1])
    boxes = np.array([obj.box for obj in objects], dtype=np.float64).reshape(-1, 4)
    d = np.array([0 if is_item(obj.category) else dilate for obj in objects], dtype=np.int64)
    c0 = np.clip(np.floor(boxes[:, 0]).astype(np.int64) - d, 0, w)
    r0 = np.clip(np.floor(boxes[:, 1]).astype(np.int64) - d, 0, h)
    c1 = np.maximum(np.clip(np.ceil(boxes[:, 2]).astype(np.int64) + d, 0, w), c0)
    r1 = np.maximum(np.clip(np.ceil(boxes[:, 3]).astype(np.int64) + d, 0, h), r0)
    return np.stack([r0, r1, c0, c1], 1)


def _checked_maps(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ConfigError(f"Expected maps of shape (K, H, W), got {maps.shape}")
    return maps


def object_masks(objects: Sequence[GameObject], hw: Sequence[int] = (84, 84), dilate: int = 2) -> dict[str, np.ndarray]:
    """One boolean ``(H, W)`` mask per object (keyed by :attr:`GameObject.name`), boxes dilated by
    ``dilate`` observation pixels (sprites are small and move between the stacked frames)."""
    masks = {}
    for obj, (r0, r1, c0, c1) in zip(objects, _bounds(objects, hw, dilate), strict=True):
        mask = np.zeros((int(hw[0]), int(hw[1])), dtype=bool)
        mask[r0:r1, c0:c1] = True
        masks[obj.name] = mask
    return masks


@dataclass(frozen=True)
class BoxPixels:
    """The flat pixel indices of every object's (dilated, clipped) box in an ``(H, W)`` frame,
    grouped per object: what :func:`object_mass` sums. Made from the objects alone, so it can be
    prepared before the maps exist (``ExplainedEnv`` does it while the explainer runs)."""

    names: tuple[str, ...]
    hw: tuple[int, int]
    pixels: np.ndarray
    """``(P,)`` int64 flat indices ``row * W + col``, the boxes one after the other."""
    starts: np.ndarray
    """``(N,)`` where each object's pixels start in :attr:`pixels`."""
    filled: np.ndarray
    """``(N,)`` bool: the box keeps at least one pixel after clipping."""


def box_pixels(objects: Sequence[GameObject], hw: Sequence[int] = (84, 84), dilate: int = 2) -> BoxPixels:
    """The pixels :func:`object_mass` sums for ``objects`` in an ``hw`` frame (boxes dilated by
    ``dilate``, not :data:`ITEM_CATEGORIES`)."""
    h, w = int(hw[0]), int(hw[1])
    # Every box's pixels in one row, for one segmented sum: a few numpy calls however many objects
    # (160 with the pills), and no torch op, which would re-form torch's thread team after
    # ExplainedEnv's one-thread agent call (~1 ms).
    r0, r1, c0, c1 = _bounds(objects, (h, w), dilate).T
    bw = c1 - c0
    sizes = (r1 - r0) * bw
    starts = np.cumsum(sizes) - sizes
    box = np.repeat(np.arange(len(objects)), sizes)
    offset = np.arange(int(sizes.sum())) - starts[box]
    pixels = (r0[box] + offset // bw[box]) * w + c0[box] + offset % bw[box]  # empty boxes have no rows here
    return BoxPixels(tuple(obj.name for obj in objects), (h, w), pixels, starts, sizes > 0)


def box_mass(maps: np.ndarray, boxes: BoxPixels) -> dict[str, np.ndarray]:
    """Each box's share of each map's mass, ``{name: (K,) float32}`` (see :func:`object_mass`).

    Raises:
        ConfigError: ``maps`` is not ``(K, H, W)`` with the ``(H, W)`` the boxes were made for.
    """
    maps = _checked_maps(maps)
    if maps.shape[1:] != boxes.hw:
        raise ConfigError(f"Expected maps of shape (K, {boxes.hw[0]}, {boxes.hw[1]}) for these boxes, got {maps.shape}")
    if not boxes.names:
        return {}
    k = maps.shape[0]
    sums = np.zeros((k, len(boxes.names)), dtype=np.float64)
    if boxes.filled.any():
        flat = maps.reshape(k, -1)[:, boxes.pixels]
        sums[:, boxes.filled] = np.add.reduceat(flat, boxes.starts[boxes.filled], axis=1, dtype=np.float64)
    total = maps.sum(axis=(1, 2), dtype=np.float64)
    shares = np.ascontiguousarray((sums / np.where(total > 0, total, 1.0)[:, None]).T, dtype=np.float32)
    return dict(zip(boxes.names, shares, strict=True))


def object_mass(maps: np.ndarray, objects: Sequence[GameObject], dilate: int = 2) -> dict[str, np.ndarray]:
    """Each object's share of each map's mass: ``{name: (K,) float32}``, ``sum_{p in box} m_p / sum_p m_p``.

    Args:
        maps: ``(K, H, W)`` non-negative maps (one per action).
        objects: the state's objects.
        dilate: box dilation in observation pixels (not for :data:`ITEM_CATEGORIES`).

    Overlapping boxes each count the shared pixels, so the shares of all objects may exceed 1.
    """
    maps = _checked_maps(maps)
    return box_mass(maps, box_pixels(objects, maps.shape[1:], dilate))


def union_mass(maps: np.ndarray, objects: Sequence[GameObject], dilate: int = 2) -> np.ndarray:
    """The share of each map's mass inside the union of the objects' boxes: ``(K,)`` float32
    (shared pixels counted once, unlike summing :func:`object_mass`)."""
    maps = _checked_maps(maps)
    mask = np.zeros(maps.shape[1:], dtype=bool)
    for r0, r1, c0, c1 in _bounds(objects, maps.shape[1:], dilate):
        mask[r0:r1, c0:c1] = True
    total = maps.reshape(maps.shape[0], -1).sum(1)
    return (maps[:, mask].sum(1) / np.where(total > 0, total, 1.0)).astype(np.float32)
