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

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vmask_live.objects import ANNOTATORS, SCREEN_HW, Annotator, GameObject, register_annotator, screen_to_obs

__all__ = [
    "RamSprite",
    "MSPACMAN_SPRITES",
    "MSPACMAN_HUD_SCREEN",
    "MSPACMAN_POWER_PILLS",
    "MSPACMAN_PILL_BITS",
    "MSPACMAN_PILL_COLUMNS",
    "MSPACMAN_PILL_MAZES",
    "mspacman_pills",
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
    "ENDURO_CAR_SLOTS",
    "ENDURO_CAR_DEPTH",
    "ENDURO_LANES",
    "ENDURO_HUD_SCREEN",
    "annotate_enduro",
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


_MSPACMAN_PILL_ROWS = 59
"""RAM 59-100: three bytes per maze row of small pills (14 rows, top first), one bit per column."""
_MSPACMAN_PILL_BYTES = 42
MSPACMAN_PILL_BITS: tuple[tuple[int, int], ...] = (
    # column c (0-17, left first): (byte of the row's three, bit); the Atari playfield's bit order
    (0, 6), (1, 7), (1, 5), (1, 3), (1, 1), (2, 0), (2, 2), (2, 4), (2, 6),
    (1, 6), (1, 4), (1, 2), (1, 0), (2, 1), (2, 3), (2, 5), (2, 7), (0, 4),
)  # fmt: skip
"""Where the bit of each pill column lives in its row's three RAM bytes."""
MSPACMAN_PILL_COLUMNS: tuple[int, ...] = tuple(8 + 8 * c if c < 9 else 12 + 8 * c for c in range(18))
"""Screen column of each pill column's left edge (the maze is mirrored about x = 80)."""
MSPACMAN_PILL_MAZES: tuple[tuple[str, ...], ...] = (
    (  # maze 1 (RAM 0 = 0)
        "111101111111101111",
        "000101000000101000",
        "111111111111111111",
        "010100100001001010",
        "110111111111111011",
        "010000100001000010",
        "011111101101111110",
        "010000100001000010",
        "110111111111111011",
        "010101010010101010",
        "111101011110101111",
        "100101110011101001",
        "000100010010001000",
        "111111111111111111",
    ),
    (  # maze 2 (RAM 0 = 1)
        "111111111111111111",
        "000001000000100000",
        "110111011110111011",
        "010101010010101010",
        "010101111111101010",
        "111100100001001111",
        "100111101101111001",
        "100100100001001001",
        "100101111111101001",
        "111111000000111111",
        "001001011110100100",
        "111101110011101111",
        "000101000000101000",
        "111101111111101111",
    ),
)
"""Which cells of each maze hold a small pill (``"1"``): the game sets RAM bits for walls too.
Measured on the screen with all pill bits set; the four power-pill cells (rows 1 and 12, the
outer columns) are left out: their bits are the power pills."""
_PILL_W, _PILL_H, _PILL_Y0, _PILL_DY = 4, 2, 7, 12


def _pill_cells(maze: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Byte (counted from RAM 59), bit, id and screen box ``(x0, y0, x1, y1)`` of every pill cell of
    ``maze``."""
    rows = [
        (3 * r + offset, bit, 18 * r + c, MSPACMAN_PILL_COLUMNS[c], _PILL_Y0 + _PILL_DY * r)
        for r, cells in enumerate(MSPACMAN_PILL_MAZES[maze])
        for c, (offset, bit) in enumerate(MSPACMAN_PILL_BITS)
        if cells[c] == "1"
    ]
    byte, bit, ids, x, y = (np.array(v, dtype=np.int64) for v in zip(*rows, strict=True))
    return byte, bit, ids, np.stack([x, y, x + _PILL_W, y + _PILL_H], 1).astype(np.float64)


_PILL_CELLS = tuple(_pill_cells(m) for m in range(len(MSPACMAN_PILL_MAZES)))


def mspacman_pills(ram: np.ndarray, obs_hw: tuple[int, int] = (84, 84)) -> list[GameObject]:
    """The uneaten small pills (``"pill"``, id ``18 * row + column``) of a Ms. Pac-Man state.

    Only in the first two mazes (``ram[0]`` 0 or 1, the maze drawn); none in the later ones, whose
    pill cells are not checked.
    """
    ram = np.asarray(ram)
    maze = int(ram[0])
    if maze >= len(MSPACMAN_PILL_MAZES):
        return []
    pill_bytes = ram[_MSPACMAN_PILL_ROWS : _MSPACMAN_PILL_ROWS + _MSPACMAN_PILL_BYTES].astype(np.uint8).tobytes()
    return list(_pills(maze, pill_bytes, (int(obs_hw[0]), int(obs_hw[1]))))


@functools.lru_cache(maxsize=16)
def _pills(maze: int, pill_bytes: bytes, obs_hw: tuple[int, int]) -> tuple[GameObject, ...]:
    """:func:`mspacman_pills` from the pill bytes: pills change only when one is eaten, so most
    steps reuse the last list (building ~150 objects per step cost 0.1 ms)."""
    byte, bit, ids, boxes = _PILL_CELLS[maze]
    on = (np.frombuffer(pill_bytes, dtype=np.uint8)[byte].astype(np.int64) >> bit) & 1 == 1
    scale = np.array([obs_hw[1] / SCREEN_HW[1], obs_hw[0] / SCREEN_HW[0]] * 2)
    return tuple(
        GameObject("pill", int(i), (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
        for i, b in zip(ids[on], boxes[on] * scale, strict=True)
    )


def _mspacman_present(sprite: RamSprite, ram: np.ndarray) -> bool:
    if sprite.category == "ghost":
        return int(ram[_MSPACMAN_GHOSTS_ON]) > 0 and sprite.id <= int(ram[_MSPACMAN_N_EXTRA_GHOSTS])
    if sprite.category == "fruit":
        return bool(ram[11] > 0 and ram[17] > 0)
    if sprite.category == "power_pill":
        return bool(int(ram[_MSPACMAN_PILL_BITS]) >> (sprite.id + 2) & 1)
    return True


def annotate_mspacman(ram: np.ndarray, obs_hw: tuple[int, int] = (84, 84)) -> list[GameObject]:
    """Ms. Pac-Man's player, ghosts (ids 0-3 by RAM slot), fruit, power pills, pills and HUD from its RAM.

    Args:
        ram: the 128 RAM bytes (``env.unwrapped.ale.getRAM()``).
        obs_hw: observation size the boxes are given in (the whole screen is resized to it;
            ``(210, 160)`` gives screen pixels).

    Returns:
        The objects on screen: the player and the HUD always; each ghost while ghosts are drawn;
        the fruit while its position bytes are non-zero; each power pill until it is eaten; each
        small pill until it is eaten (:func:`mspacman_pills`, first two mazes). Ghosts flicker on the real screen (drawn
        on alternate frames), so a box may hold no ghost pixels in a single frame.
    """
    ram = np.asarray(ram)
    objects = _objects(MSPACMAN_SPRITES + MSPACMAN_POWER_PILLS, _mspacman_present, ram, obs_hw)
    objects += mspacman_pills(ram, obs_hw)
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


# ---------------------------------------------------------------------------------------------
# Enduro
# ---------------------------------------------------------------------------------------------

_ENDURO_STEER = 46
"""RAM byte, a signed byte: the road's sideways drift under the player (it steers against it)."""
_ENDURO_PLAYER_Y = 52
"""RAM byte: the player's car top row is ``ram[52] + 89`` (it sinks a little when it slows down)."""
_ENDURO_SCROLL = 59
"""RAM byte whose bits 3-7 move the other cars down by up to 31 rows (scaled by slot depth)."""
ENDURO_CAR_SLOTS = 7
"""RAM 27-33 hold the other cars by distance band, 0 the nearest; 0 = empty, bit 4 = in a side
lane, bit 0 = the right one (else the left one), the high bits the car's colour."""
ENDURO_CAR_DEPTH: tuple[float, ...] = (0.0, 20.4, 38.4, 54.0, 67.2, 78.0, 86.4)
"""Rows above row 150 of each slot's top edge (the road narrows towards the horizon)."""
ENDURO_LANES: dict[str, tuple[float, float]] = {"left": (108.3, -23 / 60), "right": (2192 / 30, 7 / 30)}
"""Left column of a car in a side lane: ``a + b * row``, plus the road's drift (the lane lines
converge on the horizon); a car in neither side lane is at column 87."""
ENDURO_PLAYER_SIZE, ENDURO_CAR_SIZE = (16, 11), (16, 10)
"""Box sizes (w, h) in screen pixels; OCAtari's: one size for all cars, near or far."""
ENDURO_HUD_SCREEN: tuple[int, int, int, int] = (48, 161, 112, 191)
"""The red panel below the road: odometer, day, cars still to pass."""


def _signed(byte: int) -> int:
    return byte - 256 if byte & 128 else byte


def annotate_enduro(ram: np.ndarray, obs_hw: tuple[int, int] = (84, 84)) -> list[GameObject]:
    """Enduro's player car, the other cars and the HUD panel from its RAM (as :func:`annotate_mspacman`).

    Returns:
        The player (always), each other car (``"car"``, id = its RAM slot 0-6, 0 the nearest band)
        and the HUD panel (``"hud"``). The cars' rows and columns are OCAtari's perspective fits
        of the slot, the scroll byte and the lane (RAM 27-33 hold no pixel positions), with its
        fixed 16x10 box, which is wider than the far cars.
    """
    ram = np.asarray(ram)
    drift = _signed(int(ram[_ENDURO_STEER]))
    # The player stays near the middle and shifts against the drift (two columns more to the right).
    x = 77 - (drift >> 1) if drift >= 0 else 79 + ((-drift - 1) >> 1)
    player = _fixed("player", 0, x, int(ram[_ENDURO_PLAYER_Y]) + 89, *ENDURO_PLAYER_SIZE, obs_hw)
    objects = [] if player is None else [player]
    scroll = int(ram[_ENDURO_SCROLL]) >> 3
    for slot in range(ENDURO_CAR_SLOTS):
        lane = int(ram[27 + slot])
        if not lane:
            continue
        y = 150 - int(ENDURO_CAR_DEPTH[slot] + scroll * 0.9**slot)
        if not lane & 16:
            x = 87
        elif lane & 1:
            a, b = ENDURO_LANES["right"]
            x = int(a + b * y) + drift
        else:
            a, b = ENDURO_LANES["left"]
            x = int(a + b * y + drift)
        car = _fixed("car", slot, x, y, *ENDURO_CAR_SIZE, obs_hw)
        if car is not None:
            objects.append(car)
    objects.append(GameObject("hud", 0, screen_to_obs(*ENDURO_HUD_SCREEN, obs_hw)))
    return objects


BUILTIN_ANNOTATORS: dict[str, Annotator] = {
    "MsPacman": annotate_mspacman,
    "Pong": annotate_pong,
    "Breakout": annotate_breakout,
    "Seaquest": annotate_seaquest,
    "Enduro": annotate_enduro,
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
