"""RAM tables of Atari games: where each object's position lives in the 128 bytes of RAM.

Each game is a small table of :class:`RamSprite` rows (which RAM bytes hold an object's x and y,
the offsets from those bytes to the top-left corner of its sprite on the 210x160 screen, the
sprite's size) plus the rule that says whether each object is on screen. The tables were written
from the RAM maps of OCAtari (Delfosse et al., 2023, https://github.com/k4ntz/OC_Atari) and are
checked against OCAtari's own output on recorded RAM states by ``tests/test_objects.py``
(``tests/data/make_ocatari_reference.py`` regenerates the reference). OCAtari itself is not a
dependency: its packaging pins ``numpy<2`` and the GUI ``opencv-python``.

Importing this module registers the annotators with :mod:`vmask_live.objects` (for games that have
none yet); :func:`vmask_live.objects.annotator_for` imports it on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vmask_live.objects import ANNOTATORS, SCREEN_HW, Annotator, GameObject, register_annotator, screen_to_obs

__all__ = [
    "RamSprite",
    "MSPACMAN_SPRITES",
    "MSPACMAN_HUD_SCREEN",
    "MSPACMAN_POWER_PILLS",
    "PONG_SPRITES",
    "PONG_PLAYFIELD_ROWS",
    "BREAKOUT_SPRITES",
    "SEAQUEST_PLAYER",
    "SeaquestLane",
    "SEAQUEST_LANES",
    "SEAQUEST_HUD_SCREEN",
    "annotate_mspacman",
    "annotate_pong",
    "annotate_breakout",
    "annotate_seaquest",
    "BUILTIN_ANNOTATORS",
    "register_builtin_annotators",
]


@dataclass(frozen=True)
class RamSprite:
    """One object whose screen position is read from RAM.

    Attributes:
        category: object category (``"player"``, ``"ghost"`` ...).
        id: which one of its category.
        x_addr: RAM index of the horizontal position (``None``: the object never moves sideways).
        y_addr: RAM index of the vertical position (``None``: it never moves up or down).
        dx: screen column of the sprite's left edge is ``ram[x_addr] + dx`` (``dx`` when fixed).
        dy: screen row of the sprite's top edge is ``ram[y_addr] + dy`` (``dy`` when fixed).
        w: sprite width in screen pixels.
        h: sprite height in screen pixels.
        rows: the screen rows ``[top, bottom)`` the sprite can be drawn in; it is cut off outside.
    """

    category: str
    id: int
    x_addr: int | None
    y_addr: int | None
    dx: int
    dy: int
    w: int
    h: int
    rows: tuple[int, int] = (0, SCREEN_HW[0])

    def screen_box(self, ram: np.ndarray) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` in screen pixels, exclusive ends, not clipped."""
        # int() first: uint8 arithmetic would wrap around for positions near the left edge.
        x0 = (int(ram[self.x_addr]) if self.x_addr is not None else 0) + self.dx
        y0 = (int(ram[self.y_addr]) if self.y_addr is not None else 0) + self.dy
        return x0, y0, x0 + self.w, y0 + self.h

    def obs_box(self, ram: np.ndarray, obs_hw: tuple[int, int]) -> tuple[float, float, float, float] | None:
        """The box clipped to the screen and to :attr:`rows`, in observation pixels (``None``: nothing left)."""
        x0, y0, x1, y1 = self.screen_box(ram)
        x0, y0 = max(x0, 0), max(y0, self.rows[0], 0)
        x1, y1 = min(x1, SCREEN_HW[1]), min(y1, self.rows[1], SCREEN_HW[0])
        if x1 <= x0 or y1 <= y0:
            return None
        return screen_to_obs(x0, y0, x1, y1, obs_hw)


def _objects(
    sprites: tuple[RamSprite, ...],
    present: Callable[[RamSprite, np.ndarray], bool],
    ram: np.ndarray,
    obs_hw: tuple[int, int],
) -> list[GameObject]:
    objects = []
    for sprite in sprites:
        box = sprite.obs_box(ram, obs_hw) if present(sprite, ram) else None
        if box is not None:
            objects.append(GameObject(sprite.category, sprite.id, box))
    return objects


# ---------------------------------------------------------------------------------------------
# Ms. Pac-Man
# ---------------------------------------------------------------------------------------------

_PACMAN_DX, _PACMAN_DY, _PACMAN_W, _PACMAN_H = -13, 1, 9, 10

MSPACMAN_SPRITES: tuple[RamSprite, ...] = (
    RamSprite("player", 0, 10, 16, _PACMAN_DX, _PACMAN_DY, _PACMAN_W, _PACMAN_H),
    # Ghost slots in RAM order; OCAtari names them orange, cyan, pink, red (the colours of the
    # first maze; the slot, not the colour, is the id).
    RamSprite("ghost", 0, 6, 12, _PACMAN_DX, _PACMAN_DY, _PACMAN_W, _PACMAN_H),
    RamSprite("ghost", 1, 7, 13, _PACMAN_DX, _PACMAN_DY, _PACMAN_W, _PACMAN_H),
    RamSprite("ghost", 2, 8, 14, _PACMAN_DX, _PACMAN_DY, _PACMAN_W, _PACMAN_H),
    RamSprite("ghost", 3, 9, 15, _PACMAN_DX, _PACMAN_DY, _PACMAN_W, _PACMAN_H),
    RamSprite("fruit", 0, 11, 17, _PACMAN_DX, _PACMAN_DY, _PACMAN_W, _PACMAN_H),
)
"""Ms. Pac-Man's moving objects: x in RAM 6-11, y in RAM 12-17, the same sprite box for all."""

_MSPACMAN_GHOSTS_ON = 47
"""RAM byte that is 0 while no ghost is drawn (OCAtari's rule; never 0 in our recorded play)."""
_MSPACMAN_N_EXTRA_GHOSTS = 19
"""RAM byte: ghosts 1..3 exist when it is >= their id (ghost 0 always does); 3 in normal play."""

MSPACMAN_HUD_SCREEN: tuple[int, int, int, int] = (0, 172, 160, 196)
"""Lives, fruit indicator and score: the rows below the maze (which ends at screen row 171)."""

_MSPACMAN_PILL_BITS = 117
"""RAM byte whose bits 2..5 say which of the four power pills are still uneaten."""
MSPACMAN_POWER_PILLS: tuple[RamSprite, ...] = (
    # fixed places (the maze corners), ids in the order of their bits 2, 3, 4, 5
    RamSprite("power_pill", 0, None, None, 148, 146, 4, 7),  # bottom right
    RamSprite("power_pill", 1, None, None, 148, 14, 4, 7),  # top right
    RamSprite("power_pill", 2, None, None, 8, 147, 4, 7),  # bottom left
    RamSprite("power_pill", 3, None, None, 8, 15, 4, 7),  # top left
)
"""The four big pills; pill ``i`` is on screen while bit ``i + 2`` of RAM 117 is set."""


def _mspacman_present(sprite: RamSprite, ram: np.ndarray) -> bool:
    if sprite.category == "ghost":
        return int(ram[_MSPACMAN_GHOSTS_ON]) > 0 and sprite.id <= int(ram[_MSPACMAN_N_EXTRA_GHOSTS])
    if sprite.category == "fruit":
        return bool(ram[11] > 0 and ram[17] > 0)
    if sprite.category == "power_pill":
        return bool(int(ram[_MSPACMAN_PILL_BITS]) >> (sprite.id + 2) & 1)
    return True


def annotate_mspacman(ram: np.ndarray, obs_hw: tuple[int, int] = (84, 84)) -> list[GameObject]:
    """Ms. Pac-Man's player, ghosts (ids 0-3 by RAM slot), fruit, power pills and HUD from its RAM.

    Args:
        ram: the 128 RAM bytes (``env.unwrapped.ale.getRAM()``).
        obs_hw: observation size the boxes are given in (the whole screen is resized to it;
            ``(210, 160)`` gives screen pixels).

    Returns:
        The objects on screen: the player and the HUD always; each ghost while ghosts are drawn;
        the fruit while its position bytes are non-zero; each power pill until it is eaten (the
        small pills are not annotated). Ghosts flicker on the real screen (drawn
        on alternate frames), so a box may hold no ghost pixels in a single frame.
    """
    ram = np.asarray(ram)
    objects = _objects(MSPACMAN_SPRITES + MSPACMAN_POWER_PILLS, _mspacman_present, ram, obs_hw)
    objects.append(GameObject("hud", 0, screen_to_obs(*MSPACMAN_HUD_SCREEN, obs_hw)))
    return objects


# ---------------------------------------------------------------------------------------------
# Pong
# ---------------------------------------------------------------------------------------------

PONG_PLAYFIELD_ROWS = (34, 194)
"""Screen rows between the top and bottom walls; the paddles are cut off at the walls."""

PONG_SPRITES: tuple[RamSprite, ...] = (
    RamSprite("player", 0, None, 51, 140, -13, 4, 15, PONG_PLAYFIELD_ROWS),  # right paddle (green)
    RamSprite("enemy", 0, None, 50, 16, -15, 4, 15, PONG_PLAYFIELD_ROWS),  # left paddle (orange)
    RamSprite("ball", 0, 49, 54, -49, -14, 2, 4),
)
"""Pong: the paddles move only vertically (y in RAM 51, 50); the ball's x, y are RAM 49, 54."""


def _pong_present(sprite: RamSprite, ram: np.ndarray) -> bool:
    if sprite.category == "ball":  # y is 0 and x small while the ball is out (after a point)
        return bool(ram[54] != 0 and ram[49] > 49)
    if sprite.category == "enemy":
        return bool(ram[50] > 33)
    return bool(ram[51] > 13)


def annotate_pong(ram: np.ndarray, obs_hw: tuple[int, int] = (84, 84)) -> list[GameObject]:
    """Pong's player paddle (right), enemy paddle (left) and ball from its RAM (as :func:`annotate_mspacman`)."""
    return _objects(PONG_SPRITES, _pong_present, np.asarray(ram), obs_hw)


# ---------------------------------------------------------------------------------------------
# Breakout
# ---------------------------------------------------------------------------------------------

BREAKOUT_SPRITES: tuple[RamSprite, ...] = (
    RamSprite("player", 0, 72, None, -47, 189, 16, 4),  # the paddle, on a fixed row
    RamSprite("ball", 0, 99, 101, -49, 9, 2, 4),
)
"""Breakout: the paddle's x is RAM 72; the ball's x, y are RAM 99, 101."""


def _breakout_present(sprite: RamSprite, ram: np.ndarray) -> bool:
    if sprite.category == "ball":  # y is 0 before a serve; the ball is gone once below the paddle
        return 0 < int(ram[101]) <= 196 - 9
    return True


def annotate_breakout(ram: np.ndarray, obs_hw: tuple[int, int] = (84, 84)) -> list[GameObject]:
    """Breakout's paddle (category ``"player"``) and ball from its RAM (as :func:`annotate_mspacman`)."""
    return _objects(BREAKOUT_SPRITES, _breakout_present, np.asarray(ram), obs_hw)


# ---------------------------------------------------------------------------------------------
# Seaquest
# ---------------------------------------------------------------------------------------------

SEAQUEST_PLAYER: tuple[RamSprite, ...] = (
    RamSprite("player", 0, 70, 97, 0, 33, 16, 11),  # the submarine; x RAM 70, depth RAM 97
    RamSprite("player_missile", 0, 103, 97, 0, 40, 8, 1),  # fired at the sub's depth
    RamSprite("submarine", 12, 118, None, 0, 45, 8, 11),  # the patrol sub on the surface (later waves)
)
"""Seaquest's objects with their own position bytes: the player, its torpedo, the surface sub."""


@dataclass(frozen=True)
class SeaquestLane:
    """One of Seaquest's four enemy lanes (0 the deepest): a batch of up to three enemies.

    Attributes:
        x_addr: RAM index of the x of the batch's first slot; slot ``j`` is ``16 * j`` further
            right (mod 256).
        formation_addr: RAM index whose bit ``2 - j`` says that slot ``j`` holds an enemy.
        kind_addr: RAM index; the batch is submarines when its value mod 8 is 4, 5 or 6, else sharks.
        diver_addr: RAM index of the x of the lane's diver, or of its enemy torpedo in a
            submarine lane (they share the byte); 0 or >= 160 when there is none.
        y: screen row of the top of the lane's submarines and divers.
    """

    x_addr: int
    formation_addr: int
    kind_addr: int
    diver_addr: int
    y: int


SEAQUEST_LANES: tuple[SeaquestLane, ...] = tuple(
    SeaquestLane(30 + k, 36 + k, 89 + k, 71 + k, 141 - 24 * k) for k in range(4)
)
"""Seaquest's lanes, deepest first; enemy ``3 * lane + slot`` is a ``"shark"`` or ``"submarine"``."""
_SEAQUEST_SHARK_BOB = 93
"""RAM byte: sharks are drawn ``ram[93] - 4`` rows below their lane's row (they swim up and down)."""
_SEAQUEST_ENEMY_MAX_X = 165
"""Enemies further right than this are not tracked (OCAtari's rule)."""
_SEAQUEST_CRASH = 105
"""RAM byte that is between 1 and 14 while the player's submarine is exploding (not drawn)."""

SEAQUEST_HUD_SCREEN: tuple[tuple[int, int, int, int], ...] = ((0, 7, 160, 33), (0, 164, 160, 188))
"""HUD 0: score and reserve subs, in the sky band above the surface; HUD 1: the grey panel below
the sea floor with the oxygen bar and the rescued divers."""


def _fixed(category: str, id_: int, x: int, y: int, w: int, h: int, obs_hw: tuple[int, int]) -> GameObject | None:
    box = RamSprite(category, id_, None, None, x, y, w, h).obs_box(np.zeros(0, np.uint8), obs_hw)
    return None if box is None else GameObject(category, id_, box)


def _seaquest_present(sprite: RamSprite, ram: np.ndarray) -> bool:
    if sprite.category == "player":
        return not 0 < int(ram[_SEAQUEST_CRASH]) < 15
    if sprite.category == "player_missile":
        return 0 < int(ram[103]) < 160
    return int(ram[60]) >= 2 and int(ram[118]) < 160  # the surface sub


def annotate_seaquest(ram: np.ndarray, obs_hw: tuple[int, int] = (84, 84)) -> list[GameObject]:
    """Seaquest's objects from its RAM (as :func:`annotate_mspacman`).

    Returns:
        The player's submarine (``"player"``, not while it explodes), sharks and enemy submarines
        (ids ``3 * lane + slot``, lane 0 the deepest; the surface patrol sub is ``"submarine"`` 12),
        divers and enemy torpedoes (``"diver"``, ``"enemy_missile"``; id = lane), the player's
        torpedo (``"player_missile"``) and the two HUD boxes (``"hud"`` 0 above, 1 below the sea).
    """
    ram = np.asarray(ram)
    player = _objects(SEAQUEST_PLAYER[:1], _seaquest_present, ram, obs_hw)
    enemies: dict[str, list[GameObject | None]] = {"shark": [], "submarine": [], "diver": [], "enemy_missile": []}
    for k, lane in enumerate(SEAQUEST_LANES):
        is_sub = 3 < int(ram[lane.kind_addr]) % 8 < 7
        for j in range(3):
            x = (int(ram[lane.x_addr]) + 16 * j) % 256
            if not int(ram[lane.formation_addr]) >> (2 - j) & 1 or x > _SEAQUEST_ENEMY_MAX_X:
                continue
            if is_sub:
                enemies["submarine"].append(_fixed("submarine", 3 * k + j, x, lane.y, 8, 11, obs_hw))
            else:
                y = lane.y + int(ram[_SEAQUEST_SHARK_BOB]) - 4
                enemies["shark"].append(_fixed("shark", 3 * k + j, x, y, 8, 7, obs_hw))
        x = int(ram[lane.diver_addr])
        if 0 < x < 160:
            if is_sub:
                enemies["enemy_missile"].append(_fixed("enemy_missile", k, x + 3, lane.y + 4, 6, 4, obs_hw))
            else:
                enemies["diver"].append(_fixed("diver", k, x, lane.y, 8, 11, obs_hw))
    objects = player + [o for group in enemies.values() for o in group if o is not None]
    objects += _objects(SEAQUEST_PLAYER[2:], _seaquest_present, ram, obs_hw)  # the surface sub
    objects += _objects(SEAQUEST_PLAYER[1:2], _seaquest_present, ram, obs_hw)
    objects += [GameObject("hud", i, screen_to_obs(*box, obs_hw)) for i, box in enumerate(SEAQUEST_HUD_SCREEN)]
    return objects


BUILTIN_ANNOTATORS: dict[str, Annotator] = {
    "MsPacman": annotate_mspacman,
    "Pong": annotate_pong,
    "Breakout": annotate_breakout,
    "Seaquest": annotate_seaquest,
}
"""The annotators of this module, by game."""


def register_builtin_annotators() -> None:
    """Register :data:`BUILTIN_ANNOTATORS` for the games that have no annotator yet (yours win).

    Runs once when this module is first imported; call it again to restore removed entries.
    """
    for game, annotator in BUILTIN_ANNOTATORS.items():
        if game not in ANNOTATORS:
            register_annotator(game, annotator)


register_builtin_annotators()
