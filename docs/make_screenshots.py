"""Screenshots of the live window, headless (SDL dummy driver) and deterministic.

    python docs/make_screenshots.py --env MsPacman --seed 1 --at 80 160 240 --out /tmp/shots [--boxes]

Plays ``vmask-live play`` with the bundled checkpoints (arg-max actions), presses ``s`` at each
step in ``--at`` and writes ``OUT/step-N.png``: the frame the window shows, panel included.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def main() -> None:
    from vmask_live.wrappers.live_app import LiveConfig, play

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="MsPacman")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--at", type=int, nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--boxes", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = LiveConfig(env=args.env, seed=args.seed, fps=0, max_steps=max(args.at) + 1, boxes=args.boxes)
    result = play(cfg, keys=[(step, "s") for step in args.at], out_dir=out)
    for step, shot in zip(sorted(args.at), result["screenshots"], strict=True):
        shutil.move(shot, out / f"step-{step}.png")
        print("wrote", out / f"step-{step}.png")


if __name__ == "__main__":
    main()
