"""Game objects from RAM: our tables against OCAtari, the real screen, and the mass/mask maths.

OCAtari's boxes on recorded Ms. Pac-Man, Pong, Breakout, Seaquest and Enduro RAM states are in ``data/ocatari_reference.json``
(``data/make_ocatari_reference.py`` regenerates it; OCAtari is not a dependency).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vmask_live.atari_objects import (
    ENDURO_HUD_SCREEN,
    MSPACMAN_HUD_SCREEN,
    SEAQUEST_HUD_SCREEN,
    annotate_breakout,
    annotate_enduro,
    annotate_mspacman,
    annotate_pong,
    annotate_seaquest,
    mspacman_pills,
)
from vmask_live.errors import ConfigError
from vmask_live.objects import (
    GameObject,
    annotate,
    annotator_for,
    box_mass,
    box_pixels,
    object_masks,
    object_mass,
    screen_to_obs,
)

DATA = Path(__file__).parent / "data"
RECORDED = json.loads((DATA / "ocatari_reference.json").read_text())
ANNOTATORS = {
    "MsPacman": annotate_mspacman,
    "Pong": annotate_pong,
    "Breakout": annotate_breakout,
    "Seaquest": annotate_seaquest,
    "Enduro": annotate_enduro,
}
SCREEN = (210, 160)  # obs_hw that gives boxes in screen pixels
# Screen pixels our boxes may differ from OCAtari's. Pong: where the top wall cuts a paddle off,
# OCAtari's player box ends one row above its uncut box's bottom (and above the real paddle's,
# checked on the screen); we cut the uncut box. One screen row is 0.4 observation pixels.
TOLERANCE = {"MsPacman": 0, "Pong": 1, "Breakout": 0, "Seaquest": 0, "Enduro": 0}
# OCAtari also reports a small pill in each power pill's cell (the bit is the power pill's); we do not.
POWER_PILL_CELLS = {("pill", 18 * row + col) for row in (1, 12) for col in (0, 17)}


def _ram(record: dict) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(record["ram"]), dtype=np.uint8)


def _ocatari_boxes(record: dict) -> dict[tuple[str, int], tuple[int, int, int, int]]:
    """OCAtari's boxes in screen pixels ``(x0, y0, x1, y1)``, clipped to the screen as ours are.

    OCAtari does not clip: Seaquest's enemies are tracked up to x = 165, past the right edge
    (x = 160); boxes wholly off the screen are left out (ours are ``None`` there).
    """
    boxes = {}
    for o in record["objects"]:
        x, y, w, h = o["xywh"]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, SCREEN[1]), min(y + h, SCREEN[0])
        if x1 > x0 and y1 > y0 and (o["category"], o["id"]) not in POWER_PILL_CELLS:
            boxes[(o["category"], o["id"])] = (x0, y0, x1, y1)
    return boxes


def test_reference_covers_the_cases():
    assert set(RECORDED["games"]) == set(ANNOTATORS)
    assert all(len(_ram(s)) == 128 for states in RECORDED["games"].values() for s in states)
    pacman = RECORDED["games"]["MsPacman"]
    assert len(pacman) >= 25
    assert sum(("fruit", 0) in _ocatari_boxes(s) for s in pacman) >= 3
    assert sum(_ocatari_boxes(s)[("ghost", 0)][:2] == (75, 81) for s in pacman) >= 3  # in their house
    n_pills = [sum(k[0] == "power_pill" for k in _ocatari_boxes(s)) for s in pacman]
    assert max(n_pills) == 4 and min(n_pills) < 4  # some pills eaten in some states
    for game in ("Pong", "Breakout"):
        states = RECORDED["games"][game]
        with_ball = sum(("ball", 0) in _ocatari_boxes(s) for s in states)
        assert 0 < with_ball < len(states)  # both sides of the ball's presence rule
    seaquest = RECORDED["games"]["Seaquest"]
    assert len(seaquest) >= 25
    seen = [{k[0] for k in _ocatari_boxes(s)} for s in seaquest]
    for category in ("player", "shark", "submarine", "diver", "enemy_missile", "player_missile"):
        assert 3 <= sum(category in c for c in seen) < len(seaquest), category  # both sides of each rule
    # enemies past the right edge: OCAtari's box cut by the screen, or wholly off it (we give none)
    cut = sum(o["xywh"][0] + o["xywh"][2] > 160 for s in seaquest for o in s["objects"])
    assert cut >= 3, cut
    n_small = [sum(k[0] == "pill" for k in _ocatari_boxes(s)) for s in pacman]
    assert max(n_small) == 150 and min(n_small) < 120, n_small  # all of maze 1's pills, and many eaten
    enduro = RECORDED["games"]["Enduro"]
    assert len(enduro) >= 25
    rams = np.array([_ram(s) for s in enduro])
    assert (rams[:, 46] >= 128).sum() >= 3 and ((rams[:, 46] > 0) & (rams[:, 46] < 128)).sum() >= 3  # drift both ways
    cars = rams[:, 27:34]
    assert ((cars != 0).sum(1) >= 3).sum() >= 3 and (cars[:, 0] != 0).sum() >= 3
    assert ((cars & 17) == 17).any() and ((cars & 17) == 16).any()  # both side lanes


@pytest.mark.parametrize("game", sorted(ANNOTATORS))
def test_boxes_match_ocatari(game):
    worst: dict[str, float] = {}
    worst_obs: dict[str, float] = {}
    for record in RECORDED["games"][game]:
        ram = _ram(record)
        ours = {(o.category, o.id): o.box for o in ANNOTATORS[game](ram, obs_hw=SCREEN) if o.category != "hud"}
        ours_obs = {(o.category, o.id): o.box for o in ANNOTATORS[game](ram) if o.category != "hud"}
        theirs = _ocatari_boxes(record)
        assert ours.keys() == theirs.keys(), (record["episode"], record["step"])
        for key, box in theirs.items():
            worst[key[0]] = max(worst.get(key[0], 0.0), float(np.abs(np.subtract(ours[key], box)).max()))
            err_obs = np.abs(np.subtract(ours_obs[key], screen_to_obs(*box))).max()
            worst_obs[key[0]] = max(worst_obs.get(key[0], 0.0), float(err_obs))
    print(f"{game}: max error in screen px {worst}, in observation px {worst_obs}")
    assert max(worst.values()) <= TOLERANCE[game], worst
    assert max(worst_obs.values()) <= 1.0, worst_obs


def _no_pills(objects: list[GameObject]) -> list[GameObject]:
    return [o for o in objects if o.category != "pill"]


def test_mspacman_presence_rules_and_hud():
    ram = _ram(RECORDED["games"]["MsPacman"][0]).copy()
    pills = [f"power_pill {i}" for i in range(4)]
    names = [o.name for o in _no_pills(annotate_mspacman(ram))]
    assert names == ["player", "ghost 0", "ghost 1", "ghost 2", "ghost 3", *pills, "hud"]  # no fruit at the start
    ram[47] = 0  # between lives: no ghost drawn
    assert [o.name for o in _no_pills(annotate_mspacman(ram))] == ["player", *pills, "hud"]
    ram[47], ram[19] = 100, 1  # only ghosts 0 and 1
    ram[117] &= ~np.uint8(0b100100)  # power pills 0 and 3 eaten (bits 2 and 5)
    names = [o.name for o in _no_pills(annotate_mspacman(ram))]
    assert names == ["player", "ghost 0", "ghost 1", "power_pill 1", "power_pill 2", "hud"]
    hud = annotate_mspacman(ram)[-1]
    assert hud.box == screen_to_obs(*MSPACMAN_HUD_SCREEN)
    assert hud.box[1] > 68 and hud.box[2] == 84  # below the maze, full width


def test_boxes_are_clipped_to_the_screen():
    ram = np.zeros(128, np.uint8)
    ram[10], ram[16] = 5, 205  # player half off the left and bottom edges
    (player,) = [o for o in annotate_mspacman(ram) if o.category == "player"]
    assert player.box == screen_to_obs(0, 206, 1, 210)
    assert annotate_mspacman(ram, obs_hw=(210, 160))[0].box == (0.0, 206.0, 1.0, 210.0)  # screen pixels


def test_annotators_register_lazily_without_a_circular_import():
    code = (
        "import vmask_live.objects as o\n"
        "assert 'MsPacman' not in o.ANNOTATORS\n"
        "from vmask_live.envs import make_env\n"
        "env = make_env('MsPacman'); env.reset(seed=0)\n"
        "assert o.annotator_for(env) is not None\n"
        "assert {'MsPacman', 'Pong', 'Breakout'} <= set(o.ANNOTATORS)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    code = (  # an annotator registered before the first lookup is kept
        "import vmask_live.objects as o\n"
        "mine = lambda ram: []\n"
        "o.register_annotator('Pong', mine)\n"
        "from vmask_live.envs import make_env\n"
        "env = make_env('Pong'); env.reset(seed=0)\n"
        "assert o.annotator_for(env) is mine and o.ANNOTATORS['MsPacman'] is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    subprocess.run([sys.executable, "-c", "import vmask_live.atari_objects"], check=True)


def _held_directions(rng: np.random.Generator, n: int) -> Iterator[int]:
    """``n`` Ms. Pac-Man actions: a random direction (UP..DOWN) held for 4-15 steps, then another."""
    hold = 0
    for _ in range(n):
        if hold <= 0:
            action, hold = int(rng.integers(1, 5)), int(rng.integers(4, 16))
        hold -= 1
        yield action


def test_player_box_holds_the_player_pixels():
    """On real steps the brightest maze pixel (Ms. Pac-Man's yellow, grey ~167) is in her box."""
    from vmask_live.envs import make_env

    env = make_env("MsPacman")
    assert annotator_for(env) is annotate_mspacman
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    maze_rows = int(172 * 84 / 210)
    hits = shifted_hits = steps = 0
    for action in _held_directions(rng, 150):
        obs, _, term, trunc, _ = env.step(action)
        objects = annotate(env)
        assert objects is not None
        (player,) = [o for o in objects if o.category == "player"]
        frame = np.asarray(obs)[-1, :maze_rows]
        peak = frame == frame.max()
        for box, counter in ((player.box, "hit"), (_shift(player.box, 12), "shifted")):
            mask = object_masks([GameObject("player", 0, box)], hw=frame.shape, dilate=1)["player"]
            if (peak & mask).any():
                if counter == "hit":
                    hits += 1
                else:
                    shifted_hits += 1
        steps += 1
        if term or trunc:
            break
    env.close()
    print(f"player box holds the peak in {hits}/{steps} steps, shifted box in {shifted_hits}")
    assert hits >= 0.9 * steps, (hits, steps)
    assert shifted_hits <= 0.2 * steps, (shifted_hits, steps)


def _shift(box: tuple[float, float, float, float], dx: float) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    dx = dx if x1 + dx <= 84 else -dx
    return (x0 + dx, y0, x1 + dx, y1)


# --- object_masks / object_mass -------------------------------------------------------------


def test_object_masks_round_outward_dilate_and_clip():
    objs = [GameObject("player", 0, (1.2, 2.0, 2.5, 3.0)), GameObject("ghost", 1, (0.0, 0.0, 1.0, 1.0))]
    masks = object_masks(objs, hw=(5, 6), dilate=0)
    assert list(masks) == ["player", "ghost 1"]
    expected = np.zeros((5, 6), bool)
    expected[2:3, 1:3] = True
    np.testing.assert_array_equal(masks["player"], expected)
    dilated = object_masks(objs, hw=(5, 6), dilate=1)["ghost 1"]
    expected = np.zeros((5, 6), bool)
    expected[0:2, 0:2] = True  # clipped at the top-left corner
    np.testing.assert_array_equal(dilated, expected)
    outside = object_masks([GameObject("fruit", 0, (10.0, 10.0, 12.0, 12.0))], hw=(5, 6), dilate=0)["fruit"]
    assert not outside.any()


def test_object_mass_exact_shares():
    maps = np.zeros((3, 4, 4), np.float32)
    maps[0, 0, 0] = 3.0
    maps[0, 3, 3] = 1.0
    maps[1] = 1.0  # uniform: a 2x2 box holds 4/16
    # maps[2] stays all zero: every share is 0, not NaN
    objs = [GameObject("player", 0, (0.0, 0.0, 2.0, 2.0)), GameObject("ghost", 0, (1.0, 1.0, 4.0, 4.0))]
    mass = object_mass(maps, objs, dilate=0)
    np.testing.assert_allclose(mass["player"], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(mass["ghost 0"], [0.25, 9 / 16, 0.0])  # overlaps the player's box at (1, 1)
    assert all(v.dtype == np.float32 and v.shape == (3,) for v in mass.values())


def test_object_mass_rejects_a_single_map():
    with pytest.raises(ConfigError, match=r"Expected maps of shape \(K, H, W\)"):
        object_mass(np.ones((4, 4)), [])


def test_pong_and_breakout_presence_rules():
    ram = np.zeros(128, np.uint8)
    ram[51], ram[50] = 100, 100  # paddles mid-field, ball out (y byte 0)
    assert [o.name for o in annotate_pong(ram)] == ["player", "enemy"]
    ram[49], ram[54] = 120, 100
    objects = annotate_pong(ram, obs_hw=SCREEN)
    assert [(o.name, o.box) for o in objects] == [
        ("player", (140.0, 87.0, 144.0, 102.0)),
        ("enemy", (16.0, 85.0, 20.0, 100.0)),
        ("ball", (71.0, 86.0, 73.0, 90.0)),
    ]
    ram[51] = 40  # cut off by the top wall
    assert annotate_pong(ram, obs_hw=SCREEN)[0].box == (140.0, 34.0, 144.0, 42.0)

    ram = np.zeros(128, np.uint8)
    ram[72] = 100
    assert [(o.name, o.box) for o in annotate_breakout(ram, obs_hw=SCREEN)] == [("player", (53.0, 189.0, 69.0, 193.0))]
    ram[99], ram[101] = 100, 187
    assert [o.name for o in annotate_breakout(ram)] == ["player", "ball"]
    ram[101] = 188  # below the paddle: lost
    assert [o.name for o in annotate_breakout(ram)] == ["player"]


@pytest.mark.parametrize(
    ("game", "rgb", "rows", "cols"),
    # Breakout's side walls and ball share the paddle's colour: look between the walls, near its row.
    [("Pong", (92, 186, 92), (34, 194), (100, 160)), ("Breakout", (200, 72, 72), (185, 196), (8, 152))],
)
def test_paddle_box_holds_the_paddle_pixels(game, rgb, rows, cols):
    """On real steps the player paddle's pixels (its exact colour, on the last frame) are in its box."""
    from vmask_live.envs import make_env

    env = make_env(game)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    hits = steps = 0
    for _ in range(120):
        _, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        ale = env.unwrapped.ale
        (player,) = [o for o in ANNOTATORS[game](ale.getRAM(), obs_hw=SCREEN) if o.category == "player"]
        screen = ale.getScreenRGB()[rows[0] : rows[1], cols[0] : cols[1]]
        ys, xs = np.nonzero((screen == rgb).all(-1))
        if len(ys):
            ys, xs = ys + rows[0], xs + cols[0]
            x0, y0, x1, y1 = player.box
            inside = (
                (xs >= x0) & (xs < x1) & (ys >= y0 - 1) & (ys < y1 + 1)
            )  # one row of slack: Pong's paddle is 16 rows
            hits += int(inside.mean() >= 0.8)
            steps += 1
        if term or trunc:
            break
    env.close()
    print(f"{game}: paddle pixels in the box in {hits}/{steps} steps")
    assert steps >= 50 and hits >= 0.9 * steps, (hits, steps)


def test_rl_zoo_and_plain_ale_ids_find_the_same_annotator():
    import gymnasium as gym

    from vmask_live.envs.atari import register_ale
    from vmask_live.objects import ANNOTATORS, annotator_for

    register_ale()
    for env_id in ("ALE/MsPacman-v5", "MsPacmanNoFrameskip-v4"):
        env = gym.make(env_id)
        assert annotator_for(env) is ANNOTATORS["MsPacman"], env_id
        env.close()
    env = gym.make("CartPole-v1")
    assert annotator_for(env) is None
    env.close()


def test_power_pill_boxes_hold_the_pills():
    """The big pills blink (the two sides on alternate frames): over a few frames each box is filled
    with the pill's colour, which is also the walls', and the corridor columns beside it never are."""
    from vmask_live.envs import make_env

    env = make_env("MsPacman")
    env.reset(seed=0)
    ale = env.unwrapped.ale
    pills = [o for o in annotate_mspacman(ale.getRAM(), obs_hw=SCREEN) if o.category == "power_pill"]
    assert [o.id for o in pills] == [0, 1, 2, 3]
    filled = dict.fromkeys(range(4), 0.0)
    for _ in range(16):
        ale.act(0)
        colour = (ale.getScreenRGB() == (228, 111, 111)).all(-1)
        for pill in pills:
            x0, y0, x1, y1 = (int(v) for v in pill.box)
            filled[pill.id] = max(filled[pill.id], float(colour[y0:y1, x0:x1].mean()))
            assert not colour[y0:y1, [x0 - 1, x1]].any(), pill  # nothing drawn just beside the box
    env.close()
    print(f"largest share of each power pill box filled: {filled}")
    assert min(filled.values()) >= 6 / 7, filled  # all 4 columns of at least 6 of its 7 rows


def test_seaquest_rules():
    ram = np.zeros(128, np.uint8)
    ram[70], ram[97] = 60, 13  # the player's sub at the surface
    assert [o.name for o in annotate_seaquest(ram)] == ["player", "hud", "hud 1"]
    assert annotate_seaquest(ram, obs_hw=SCREEN)[0].box == (60.0, 46.0, 76.0, 57.0)
    assert [o.box for o in annotate_seaquest(ram)[1:]] == [screen_to_obs(*b) for b in SEAQUEST_HUD_SCREEN]
    ram[105] = 5  # exploding
    assert [o.name for o in annotate_seaquest(ram)] == ["hud", "hud 1"]
    ram[105] = 0
    ram[36], ram[30], ram[93] = 0b101, 150, 6  # deepest lane: sharks in slots 0 and 2, bobbing 2 rows down
    ram[39], ram[33], ram[92] = 0b111, 240, 5  # top lane: subs; slot 0 off screen, slot 1 wraps to x = 0
    ram[71], ram[74] = 40, 100  # deepest lane: a diver; top lane (subs): an enemy torpedo
    ram[103] = 90  # the player's torpedo
    objects = {o.name: o.box for o in annotate_seaquest(ram, obs_hw=SCREEN)}
    assert objects == {
        "player": (60.0, 46.0, 76.0, 57.0),
        "shark 0": (150.0, 143.0, 158.0, 150.0),  # slot 2 (x = 182) is past OCAtari's x <= 165: none
        "submarine 10": (0.0, 69.0, 8.0, 80.0),
        "submarine 11": (16.0, 69.0, 24.0, 80.0),
        "diver 0": (40.0, 141.0, 48.0, 152.0),
        "enemy_missile 3": (103.0, 73.0, 109.0, 77.0),
        "player_missile": (90.0, 53.0, 98.0, 54.0),
        "hud": (0.0, 7.0, 160.0, 33.0),
        "hud 1": (0.0, 164.0, 160.0, 188.0),
    }
    ram[60], ram[118] = 2, 30  # later waves: the surface patrol sub
    assert ("submarine", 12) in {(o.category, o.id) for o in annotate_seaquest(ram)}


def test_seaquest_player_box_holds_the_submarine():
    """On real steps the player's yellow pixels under the surface (less its torpedo's) are in its box."""
    from vmask_live.envs import make_env

    env = make_env("Seaquest")
    assert annotator_for(env) is annotate_seaquest
    env.reset(seed=0)
    ale = env.unwrapped.ale
    rng = np.random.default_rng(0)
    hits = steps = 0
    for _ in range(200):
        _, _, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
        boxes = {o.name: o.box for o in annotate_seaquest(ale.getRAM(), obs_hw=SCREEN)}
        yellow = (ale.getScreenRGB() == (187, 187, 53)).all(-1)
        yellow[:46] = yellow[160:] = False  # the sea
        if "player_missile" in boxes:
            x0, y0, x1, y1 = (int(v) for v in boxes["player_missile"])
            yellow[y0:y1, x0:x1] = False
        ys, xs = np.nonzero(yellow)
        if len(ys):
            assert "player" in boxes
            x0, y0, x1, y1 = boxes["player"]
            hits += int(((xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)).mean() >= 0.9)
            steps += 1
        if term or trunc:
            break
    env.close()
    print(f"Seaquest: player pixels in its box in {hits}/{steps} steps")
    assert steps >= 100 and hits >= 0.9 * steps, (hits, steps)


def test_mspacman_pill_rules():
    ram = _ram(RECORDED["games"]["MsPacman"][0]).copy()
    pills = {o.id: o.box for o in annotate_mspacman(ram, obs_hw=SCREEN) if o.category == "pill"}
    assert len(pills) == 150  # the whole first maze at the start
    assert pills[0] == (8.0, 7.0, 12.0, 9.0) and pills[18 * 13 + 17] == (148.0, 163.0, 152.0, 165.0)
    assert 18 not in pills and 4 not in pills  # a power pill's cell; a wall
    ram[60] &= ~np.uint8(0b10)  # row 0, column 4's bit (a wall in maze 1: nothing changes)
    ram[61] &= ~np.uint8(0b1)  # row 0, column 5's bit: eaten
    after = {o.id for o in mspacman_pills(ram)}
    assert after == set(pills) - {5}
    ram[0] = 1  # the second maze
    maze2 = {o.id for o in mspacman_pills(ram)}
    assert len(maze2) == 144 and 18 * 1 + 5 in maze2 and 18 * 1 + 3 not in maze2  # its own walls
    ram[0] = 2  # later mazes: not annotated
    assert mspacman_pills(ram) == []


def test_pill_boxes_hold_the_pills_until_eaten():
    """On real steps each annotated pill's box is filled with the pill colour (but where a sprite
    covers it) and every other pill cell of the maze holds none: the eaten ones are gone."""
    from vmask_live.envs import make_env

    env = make_env("MsPacman")
    env.reset(seed=1)
    ale = env.unwrapped.ale
    rng = np.random.default_rng(1)
    every_cell = {o.id: o.box for o in mspacman_pills(ale.getRAM(), obs_hw=SCREEN)}
    shown = eaten = empty_boxes = 0
    for step, action in enumerate(_held_directions(rng, 300)):
        _, _, term, trunc, _ = env.step(action)
        if term or trunc:
            break
        objects = annotate_mspacman(ale.getRAM(), obs_hw=SCREEN)
        sprites = [o.box for o in objects if o.category in ("player", "ghost", "fruit")]
        pills = {o.id: o.box for o in objects if o.category == "pill"}
        colour = (ale.getScreenRGB() == (228, 111, 111)).all(-1)
        for id_, box in every_cell.items():
            x0, y0, x1, y1 = (int(v) for v in box)
            if any(_overlap(box, s) for s in sprites):
                continue
            if id_ in pills:
                shown += 1
                empty_boxes += int(not colour[y0:y1, x0:x1].all())
            else:
                eaten += 1
                assert not colour[y0:y1, x0:x1].any(), (step, id_)
    env.close()
    print(f"pill boxes filled: {shown - empty_boxes}/{shown}; eaten cells empty: {eaten}")
    # a pill eaten between the frame and the RAM read may still be in its box
    assert eaten >= 500 and empty_boxes <= 0.001 * shown, (eaten, empty_boxes, shown)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_enduro_rules():
    ram = np.zeros(128, np.uint8)
    ram[52] = 54  # no drift, no other car
    objects = annotate_enduro(ram, obs_hw=SCREEN)
    assert [(o.name, o.box) for o in objects] == [
        ("player", (77.0, 143.0, 93.0, 154.0)),
        ("hud", tuple(float(v) for v in ENDURO_HUD_SCREEN)),
    ]
    ram[46] = 250  # drift -6: the player shifts right, the cars left
    ram[27], ram[30], ram[33] = 0b10111, 0b10110, 0b100  # right lane near, left lane, middle far
    boxes = {o.name: o.box for o in annotate_enduro(ram, obs_hw=SCREEN)}
    assert boxes["player"] == (81.0, 143.0, 97.0, 154.0)
    assert boxes["car 0"] == (102.0, 150.0, 118.0, 160.0)  # int((2192 + 7 * 150) / 30) - 6
    assert boxes["car 3"] == (65.0, 96.0, 81.0, 106.0)  # int(108.3 - 23 * 96 / 60 - 6)
    assert boxes["car 6"] == (87.0, 64.0, 103.0, 74.0)  # the middle: no drift
    ram[59] = 9 << 3  # the scroll byte moves the nearer bands further down
    moved = {o.name: o.box[1] - boxes[o.name][1] for o in annotate_enduro(ram, obs_hw=SCREEN) if o.category == "car"}
    assert moved == {"car 0": -9.0, "car 3": -6.0, "car 6": -5.0}  # 9 * 0.9 ** slot, cut


def test_box_pixels_prepared_without_maps_give_object_mass():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 12, 10), dtype=np.float32)
    objs = [
        GameObject("player", 0, (0.0, 0.0, 2.0, 2.0)),
        GameObject("ghost", 1, (8.5, 9.0, 14.0, 15.0)),  # clipped at the bottom-right
        GameObject("fruit", 0, (20.0, 20.0, 22.0, 22.0)),  # off the frame: share 0
        GameObject("pill", 3, (4.0, 4.0, 5.0, 5.0)),  # items are not dilated
    ]
    boxes = box_pixels(objs, (12, 10), dilate=1)
    mass = box_mass(maps, boxes)
    assert mass.keys() == object_mass(maps, objs, dilate=1).keys()
    for name, share in object_mass(maps, objs, dilate=1).items():
        np.testing.assert_array_equal(mass[name], share)
    total = maps.sum((1, 2))
    np.testing.assert_allclose(mass["ghost 1"], maps[:, 8:, 7:].sum((1, 2)) / total, rtol=1e-5)
    np.testing.assert_allclose(mass["pill 3"], maps[:, 4, 4] / total, rtol=1e-5)
    np.testing.assert_array_equal(mass["fruit"], 0)


def test_box_mass_refuses_maps_of_another_size():
    boxes = box_pixels([GameObject("player", 0, (0.0, 0.0, 2.0, 2.0))], (84, 84))
    with pytest.raises(ConfigError, match=r"Expected maps of shape \(K, 84, 84\) for these boxes, got \(9, 64, 128\)"):
        box_mass(np.ones((9, 64, 128), np.float32), boxes)
