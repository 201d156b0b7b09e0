"""Per-frame cost of every saliency method on the same agent and frames, measured in one run.

    python benchmarks/bench_methods.py [--env MsPacman] [--frames 16] [--repeats 3] [--methods rise,lime]

Uses the bundled agent and explainer of ``--env`` and the shipped MsPacman test states
(``tests/data/mspacman_test_states.npz``; other envs: states from a short roll-out of the agent).
Every method of the registry (:data:`vmask_live.methods.METHODS`; the Stalder Explainer needs its
own checkpoint and is left out) explains the same batch of frames; the table gives the median ms
per frame over ``--repeats`` runs, the agent forward passes per frame (counted, not assumed, with
the registry's cost note beside them) and the cost relative to VisionMask (ONNX Runtime when
installed, eager torch as a second row). Our
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
    with torch.no_grad():  # not inference_mode: gradient methods take these actions as targets
        return x, agent(x).argmax(1)


def main() -> None:
    import vmask_live as vm
    from vmask_live.baselines import Greydanus, SaliencyMethod
    from vmask_live.methods import METHODS, CountingAgent, build_method, check_requirements

    runnable = [name for name, spec in METHODS.items() if spec.checkpoint in (None, "explainer")]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="MsPacman")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--methods", default="all", help=f"comma-separated, from {', '.join(runnable)} (default all)")
    p.add_argument("--rise-masks", type=int, default=2000)
    p.add_argument("--lime-samples", type=int, default=300)
    p.add_argument("--ig-steps", type=int, default=32)
    args = p.parse_args()
    names = runnable if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in names if m not in runnable]
    if unknown:
        p.error(f"unknown methods {unknown}; expected some of {', '.join(runnable)}")
    check_requirements(names)
    settings = {"rise_masks": args.rise_masks, "lime_samples": args.lime_samples, "ig_steps": args.ig_steps}

    agent = vm.load_agent(f"default:{args.env}")
    eager = vm.load_explainer(f"default:{args.env}", backend="none")
    compiled = vm.load_explainer(f"default:{args.env}", backend="auto")
    x, a = _frames(args.env, agent, eager, args.frames)
    # (label, method name, explainer, cost note); VisionMask first: the other rows are relative to it
    runs = [(name, name, compiled, METHODS[name].cost) for name in names]
    if "visionmask" in names:
        runs.insert(names.index("visionmask") + 1, ("visionmask (eager torch)", "visionmask", eager, ""))
    if "greydanus" in names:
        note = "as the original code"
        runs.append(("greydanus (1 state per agent call)", "greydanus_unbatched", None, note))
    rows = []
    for label, name, exp, cost in runs:
        counting = CountingAgent(agent)
        method: SaliencyMethod
        if name == "greydanus_unbatched":
            method = Greydanus(counting, perturbations_per_eval=1)
        else:
            method = build_method(name, counting, eager.reference, exp, **settings)
        method.attribute(x[:2], a[:2])  # warm-up (ONNX session, captum imports)
        samples = []
        for _ in range(args.repeats):
            counting.reset()
            t = time.perf_counter()
            method.attribute(x, a)
            samples.append(1000 * (time.perf_counter() - t) / len(a))
        if label == "visionmask":
            label = f"visionmask ({getattr(exp, 'backend', 'torch')})"
        rows.append((label, statistics.median(samples), counting.states / len(a), cost))
    base = rows[0][1]
    print(f"{args.env}, {len(a)} frames per call, {torch.get_num_threads()} torch threads, median of {args.repeats}\n")
    print(f"| method | ms/frame | agent passes/frame | × {rows[0][0]} | cost (registry) |")
    print("|---|---|---|---|---|")
    for label, ms, passes, cost in rows:
        print(f"| {label} | {ms:.2f} | {passes:.0f} | {ms / base:.1f} | {cost} |")


if __name__ == "__main__":
    main()
