"""Game objects from the emulator's RAM, and how much of a saliency map falls on each.

A saliency map is pixels; people reason in objects ("she turns because of the red ghost"). Where
a game's RAM layout is known, an *annotator* reads the objects of the current state (category,
id, box) from ``env.unwrapped.ale.getRAM()`` and maps the boxes to observation pixels (the
RL-Zoo preprocessing resizes the whole 210x160 screen to 84x84, no crop). Object positions are
independent ground truth on real games: :func:`object_mass` says which share of each action's
map lies on each object.

Annotators are registered per game with :func:`register_annotator`; :func:`annotator_for` finds
the one of an env (``None`` where no annotations exist, so other envs are unaffected). The RAM
tables of :mod:`vmask_live.atari_objects` (Ms. Pac-Man, Pong, Breakout, Seaquest) are registered once, on the
first lookup, for the games that have no annotator registered by then.
"""

from __future__ import annotations

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
    "ANNOTATORS",
]

SCREEN_HW = (210, 160)
"""ALE screen size (rows, columns) that RAM positions refer to."""


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

    @property
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


def _box_mask(box: Sequence[float], hw: Sequence[int], dilate: int) -> np.ndarray:
    h, w = int(hw[0]), int(hw[1])
    x0, y0, x1, y1 = box
    c0, r0 = max(int(np.floor(x0)) - dilate, 0), max(int(np.floor(y0)) - dilate, 0)
    c1, r1 = min(int(np.ceil(x1)) + dilate, w), min(int(np.ceil(y1)) + dilate, h)
    mask = np.zeros((h, w), dtype=bool)
    if c1 > c0 and r1 > r0:
        mask[r0:r1, c0:c1] = True
    return mask


def object_masks(objects: Sequence[GameObject], hw: Sequence[int] = (84, 84), dilate: int = 2) -> dict[str, np.ndarray]:
    """One boolean ``(H, W)`` mask per object (keyed by :attr:`GameObject.name`), boxes dilated by
    ``dilate`` observation pixels (sprites are small and move between the stacked frames)."""
    return {obj.name: _box_mask(obj.box, hw, dilate) for obj in objects}


def object_mass(maps: np.ndarray, objects: Sequence[GameObject], dilate: int = 2) -> dict[str, np.ndarray]:
    """Each object's share of each map's mass: ``{name: (K,) float32}``, ``sum_{p in box} m_p / sum_p m_p``.

    Args:
        maps: ``(K, H, W)`` non-negative maps (one per action).
        objects: the state's objects.
        dilate: box dilation in observation pixels.

    Overlapping boxes each count the shared pixels, so the shares of all objects may exceed 1.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise ConfigError(f"Expected maps of shape (K, H, W), got {maps.shape}")
    total = maps.reshape(maps.shape[0], -1).sum(1)
    total = np.where(total > 0, total, 1.0)
    out = {}
    for name, mask in object_masks(objects, maps.shape[1:], dilate).items():
        out[name] = (maps[:, mask].sum(1) / total).astype(np.float32)
    return out
