"""Regenerate ``ocatari_reference.json``: OCAtari's RAM object extraction on recorded Atari states.

OCAtari is not a project dependency (``ocatari`` 2.2.1 pins ``numpy<2`` and pulls in the GUI
``opencv-python`` and ``pygame``), so its output on fixed RAM states is recorded here and
``tests/test_objects.py`` checks our own RAM tables (``vmask_live/atari_objects.py``) against it.
The states come from our preprocessed envs (RL-Zoo wrappers, as ``vmask_live.envs.make_env``),
played by seeded random policies (sticky directions in Ms. Pac-Man, so that she clears enough dots
for a fruit). OCAtari runs here on the numpy 1 it pins: its Enduro module reads the signed
steering byte through numpy 1's value-based casting (``-(ram[46]) * -1``), which numpy 2 rejects
("Python integer -1 out of bounds for uint8"). To regenerate (``--no-deps`` keeps OCAtari's GUI
packages out; the other pins are the last releases that still run on numpy 1)::

    python -m venv /tmp/ocvenv
    /tmp/ocvenv/bin/pip install --no-deps ocatari==2.2.1
    /tmp/ocvenv/bin/pip install "numpy<2" gymnasium ale-py "opencv-python-headless<4.12" termcolor \
        "scikit-image<0.25" matplotlib pygame
    /tmp/ocvenv/bin/python tests/data/make_ocatari_reference.py

The venv has no torch, so the env module is loaded from its file rather than through
``vmask_live/__init__.py``.
"""

from __future__ import annotations

import importlib.util
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).with_name("ocatari_reference.json")
SEED = 0
# OCAtari's object slots (hud=False) -> our (category, id).
SLOTS = {
    "MsPacman": {
        0: ("player", 0),
        **{1 + i: ("ghost", i) for i in range(4)},
        5: ("fruit", 0),
        **{6 + i: ("power_pill", i) for i in range(4)},
        # small pills: maze row r (0-13, top first), column c (0-17, left first) in slot 10 + 18 r + c
        **{10 + k: ("pill", k) for k in range(14 * 18)},
    },
    "Pong": {0: ("player", 0), 1: ("ball", 0), 2: ("enemy", 0)},
    "Breakout": {0: ("player", 0), 1: ("ball", 0)},
    "Seaquest": {
        0: ("player", 0),
        **{1 + i: ("shark", i) for i in range(12)},  # 3 * lane + slot, lane 0 the deepest
        **{13 + i: ("submarine", i) for i in range(12)},
        **{25 + i: ("diver", 3 - i) for i in range(4)},  # OCAtari's diver slots start at the top lane
        **{29 + i: ("enemy_missile", 3 - i) for i in range(4)},
        33: ("submarine", 12),  # the surface patrol sub
        34: ("player_missile", 0),
    },
    # Enduro's cars (slots 1-7) are filled in the order of their RAM slots 27-33 that are non-zero
    # (see ``ocatari_objects``); our id is the RAM slot.
    "Enduro": {0: ("player", 0)},
}
N_EPISODES = {"MsPacman": 10, "Pong": 1, "Breakout": 3, "Seaquest": 8, "Enduro": 3}


def make_env(game: str):
    spec = importlib.util.spec_from_file_location("_vm_atari", ROOT / "vmask_live" / "envs" / "atari.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_atari(game)


def play(env, game: str, rng: np.random.Generator) -> list[dict]:
    """All states of one episode: RAM and the agent step."""
    env.reset(seed=int(rng.integers(2**31)))
    states, action, hold, step, done = [], 0, 0, 0, False
    while not done:
        if game != "MsPacman":
            action = int(rng.integers(env.action_space.n))
        elif hold <= 0:  # hold a direction: random single steps never clear enough dots for a fruit
            action, hold = int(rng.integers(1, 5)), int(rng.integers(4, 16))
        hold -= 1
        _, _, term, trunc, _ = env.step(action)
        done = term or trunc
        step += 1
        states.append({"step": step, "ram": np.array(env.unwrapped.ale.getRAM(), dtype=np.uint8)})
    return states


def _some(states: list[dict], k: int, rng: np.random.Generator) -> list[dict]:
    return [states[i] for i in sorted(rng.choice(len(states), min(k, len(states)), replace=False))]


def pick(game: str, states: list[dict], rng: np.random.Generator) -> list[dict]:
    """The states to record from one episode: the edge cases of each game's rules, and a few others."""
    if game == "MsPacman":
        # one state with the ghosts still in their house, up to two with a fruit, two in mid play
        # (the player away from her start, where she also is after each lost life)
        fruit = [s for s in states if s["ram"][11] > 0 and s["ram"][17] > 0]
        rest = [s for s in states[40:] if not s["ram"][11] and tuple(s["ram"][[10, 16]]) != (88, 98)]
        return [states[10], *_some(fruit, 2, rng), *_some(rest, 2, rng)]
    if game == "Pong":
        no_ball = [s for s in states if s["ram"][54] == 0]
        top = [s for s in states if s["ram"][51] < 47 or s["ram"][50] < 49]  # a paddle cut off by the top wall
        bottom = [s for s in states if s["ram"][51] > 192 or s["ram"][50] > 194]
        return [*_some(no_ball, 2, rng), *_some(top, 4, rng), *_some(bottom, 4, rng), *_some(states, 6, rng)]
    if game == "Seaquest":
        return _pick_seaquest(states, rng)
    if game == "Enduro":
        return _pick_enduro(states, rng)
    no_ball = [s for s in states if s["ram"][101] == 0]
    low = [s for s in states if s["ram"][101] > 180]  # near or below the paddle
    edge = [
        s
        for s in states
        if s["ram"][101] and (s["ram"][99] < 60 or s["ram"][99] > 195 or s["ram"][72] < 60 or s["ram"][72] > 185)
    ]
    return [*_some(no_ball, 1, rng), *_some(low, 2, rng), *_some(edge, 2, rng), *_some(states, 2, rng)]


def _pick_seaquest(states: list[dict], rng: np.random.Generator) -> list[dict]:
    def lanes(ram: np.ndarray, kind: str) -> bool:  # a lane with a diver / enemy torpedo / enemy far right / subs
        for k in range(4):
            sub = 3 < ram[89 + k] % 8 < 7
            if kind == "right" and ram[36 + k] and ram[30 + k] > 140:
                return True
            if (
                kind == "sub"
                and sub
                and any(ram[36 + k] >> (2 - j) & 1 and (int(ram[30 + k]) + 16 * j) % 256 <= 165 for j in range(3))
            ):
                return True
            if kind in ("diver", "torpedo") and 0 < ram[71 + k] < 160 and sub == (kind == "torpedo"):
                return True
        return False

    crash = [s for s in states if 0 < s["ram"][105] < 15]
    counts = {"diver": 1, "torpedo": 2, "right": 1, "sub": 2}  # submarines come in some episodes only
    groups = [_some([s for s in states if lanes(s["ram"], kind)], n, rng) for kind, n in counts.items()]
    picked = {s["step"]: s for s in [*_some(crash, 1, rng), *(s for g in groups for s in g)]}  # no state twice
    return [picked[step] for step in sorted(picked)]


def _pick_enduro(states: list[dict], rng: np.random.Generator) -> list[dict]:
    def cars(s: dict) -> np.ndarray:
        return s["ram"][27:34]

    left = [s for s in states if s["ram"][46] >= 128 and cars(s).any()]  # the road drifts either way
    right = [s for s in states if 0 < s["ram"][46] < 128 and cars(s).any()]
    busy = [s for s in states if (cars(s) != 0).sum() >= 3]
    near = [s for s in states if cars(s)[0]]  # a car in the nearest band, beside or behind the player
    picked = {s["step"]: s for g in (left, right, busy, near, states) for s in _some(g, 3, rng)}
    return [picked[step] for step in sorted(picked)]


def ocatari_objects(game: str, ram: np.ndarray) -> list[dict]:
    from ocatari.ram.extract_ram_info import detect_objects_ram, init_objects

    objects = init_objects(game, False)
    if game == "Seaquest":
        # its module computes ``(ram[i] + 16 * j) % 256`` on the uint8 byte, which numpy 2 rejects
        # ("256 out of bounds for uint8"); on Python ints it gives what it gives under numpy 1.
        ram = ram.astype(np.int64)
    # An object that appears in an empty slot only gets its position on the next call.
    detect_objects_ram(objects, ram, game, False)
    detect_objects_ram(objects, ram, game, False)
    slots = dict(SLOTS[game])
    if game == "Enduro":
        slots.update({1 + k: ("car", int(i)) for k, i in enumerate(np.flatnonzero(ram[27:34]))})
    out = []
    for slot, (category, id_) in slots.items():
        obj = objects[slot]
        if obj.category != "NoObject":
            out.append({"category": category, "id": id_, "xywh": [int(v) for v in obj.xywh]})
    return out


def main() -> None:
    rng = np.random.default_rng(SEED)
    games = {}
    for game, n_episodes in N_EPISODES.items():
        env = make_env(game)
        records = []
        for episode in range(n_episodes):
            for s in pick(game, play(env, game, rng), rng):
                ram = s["ram"]
                records.append(
                    {
                        "episode": episode,
                        "step": s["step"],
                        "ram": ram.tobytes().hex(),
                        "objects": ocatari_objects(game, ram),
                    }
                )
        env.close()
        games[game] = records
        categories = sorted({o["category"] for r in records for o in r["objects"]})
        counts = {c: sum(any(o["category"] == c for o in r["objects"]) for r in records) for c in categories}
        print(f"{game}: {len(records)} states, states with each category: {counts}")
    doc = {
        "ocatari_version": version("ocatari"),
        "seed": SEED,
        "box": "OCAtari's (x, y, w, h) in 210x160 screen pixels, keyed by our category and id",
        "games": games,
    }
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
