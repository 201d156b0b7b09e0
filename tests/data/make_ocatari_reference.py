"""Regenerate ``ocatari_reference.json``: OCAtari's RAM object extraction on recorded Atari states.

OCAtari is not a project dependency (``ocatari`` 2.2.1 pins ``numpy<2`` and pulls in the GUI
``opencv-python`` and ``pygame``), so its output on fixed RAM states is recorded here and
``tests/test_objects.py`` checks our own RAM tables (``vmask_live/atari_objects.py``) against it.
The states come from our preprocessed envs (RL-Zoo wrappers, as ``vmask_live.envs.make_env``),
played by seeded random policies (sticky directions in Ms. Pac-Man, so that she clears enough dots
for a fruit). To regenerate (OCAtari reads only the RAM, so it runs on numpy 2 without its pins)::

    python -m venv /tmp/ocvenv
    /tmp/ocvenv/bin/pip install --no-deps ocatari==2.2.1
    /tmp/ocvenv/bin/pip install numpy gymnasium ale-py opencv-python-headless termcolor scikit-image matplotlib pygame
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
    "MsPacman": {0: ("player", 0), 1: ("ghost", 0), 2: ("ghost", 1), 3: ("ghost", 2), 4: ("ghost", 3), 5: ("fruit", 0)},
    "Pong": {0: ("player", 0), 1: ("ball", 0), 2: ("enemy", 0)},
    "Breakout": {0: ("player", 0), 1: ("ball", 0)},
}
N_EPISODES = {"MsPacman": 10, "Pong": 1, "Breakout": 3}


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
    no_ball = [s for s in states if s["ram"][101] == 0]
    low = [s for s in states if s["ram"][101] > 180]  # near or below the paddle
    edge = [
        s
        for s in states
        if s["ram"][101] and (s["ram"][99] < 60 or s["ram"][99] > 195 or s["ram"][72] < 60 or s["ram"][72] > 185)
    ]
    return [*_some(no_ball, 1, rng), *_some(low, 2, rng), *_some(edge, 2, rng), *_some(states, 2, rng)]


def ocatari_objects(game: str, ram: np.ndarray) -> list[dict]:
    from ocatari.ram.extract_ram_info import detect_objects_ram, init_objects

    objects = init_objects(game, False)
    # An object that appears in an empty slot only gets its position on the next call.
    detect_objects_ram(objects, ram, game, False)
    detect_objects_ram(objects, ram, game, False)
    out = []
    for slot, (category, id_) in SLOTS[game].items():
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
        counts = {
            c: sum(any(o["category"] == c for o in r["objects"]) for r in records) for _, (c, _) in SLOTS[game].items()
        }
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
