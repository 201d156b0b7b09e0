"""Per-frame cost of every saliency method on the same agent and frames, measured in one run.

    python benchmarks/bench_methods.py [--env MsPacman] [--frames 16] [--repeats 3]

Uses the bundled agent and explainer of ``--env`` and the shipped MsPacman test states
(``tests/data/mspacman_test_states.npz``; other envs: states from a short roll-out of the agent).
Every method explains the same batch of frames; the table gives the median ms per frame over
``--repeats`` runs, the agent forward passes per frame (counted, not assumed) and the cost
relative to VisionMask (ONNX Runtime when installed, eager torch as a second row). Our
Greydanus/SARFA batch all 290 perturbed states into one agent call; a last row runs Greydanus
one state per call, as the original implementation does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

STATES = Path(__file__).resolve().parents[1] / "tests" / "data" / "mspacman_test_states.npz"


def _frames(env_name: str, agent, explainer, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if env_name == "MsPacman":
        d = np.load(STATES)
        x = explainer.obs_format.to_model(d["obs"][:n])
        return x, torch.as_tensor(d["actions"][:n])
    import vmask_live as vm

    env = vm.make_env(env_name)
    obs, _ = env.reset(seed=0)
    frames = []
    for _ in range(n):
        frames.append(obs)
        obs, *_ = env.step(env.action_space.sample())
    x = explainer.obs_format.to_model(np.stack(frames))
    with torch.inference_mode():
        return x, agent(x).argmax(1)


def main() -> None:
    import vmask_live as vm
    from vmask_live.baselines import METHODS, Greydanus, build_method
    from vmask_live.evaluate import CountingAgent

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="MsPacman")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rise-masks", type=int, default=2000)
    p.add_argument("--lime-samples", type=int, default=300)
    args = p.parse_args()

    agent = vm.load_agent(f"default:{args.env}")
    eager = vm.load_explainer(f"default:{args.env}", backend="none")
    compiled = vm.load_explainer(f"default:{args.env}", backend="auto")
    x, a = _frames(args.env, agent, eager, args.frames)
    rows = []
    extra = ["visionmask (eager torch)", "greydanus (1 state per agent call, as the original code)"]
    for name in [m for m in METHODS if m != "explainer"] + extra:
        exp = eager if name.endswith("(eager torch)") else compiled
        counting = CountingAgent(agent)
        if name.startswith("greydanus ("):
            method = Greydanus(counting, perturbations_per_eval=1)
        else:
            method = build_method(
                name.split(" ")[0], counting, eager.reference, exp, args.rise_masks, args.lime_samples
            )
        method.attribute(x[:2], a[:2])  # warm-up (ONNX session, captum imports)
        samples = []
        for _ in range(args.repeats):
            counting.states = 0
            t = time.perf_counter()
            method.attribute(x, a)
            samples.append(1000 * (time.perf_counter() - t) / len(a))
        label = f"visionmask ({getattr(exp, 'backend', 'torch')})" if name == "visionmask" else name
        rows.append((label, statistics.median(samples), counting.states / len(a)))
    base = rows[0][1]
    print(f"{args.env}, {len(a)} frames per call, {torch.get_num_threads()} torch threads, median of {args.repeats}\n")
    print("| method | ms/frame | agent passes/frame | × VisionMask |")
    print("|---|---|---|---|")
    for label, ms, passes in rows:
        print(f"| {label} | {ms:.2f} | {passes:.0f} | {ms / base:.1f} |")


if __name__ == "__main__":
    main()
