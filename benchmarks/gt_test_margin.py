"""Margin of the ground-truth test's thresholds, for other seeds and explainer recipes.

    python benchmarks/gt_test_margin.py --seed 0
    python benchmarks/gt_test_margin.py --seed 1 --steps 600

Runs the test suite's Beacon pipeline (``tests/conftest.py``: behaviour-cloned agent, 6,000-state
dataset, VisionMask explainer with the paper loss, a_max 0.02, lr 2e-3, batch 16, width 8) with the
given seed and training steps, then scores 300 test states as
``tests/test_ground_truth_pipeline.py`` does and prints one JSON line: accuracy (the test asks
>= 90) and relevance mass as a multiple of the relevant area (the test asks >= 3). One thread,
as in the suite. Takes several minutes of one core.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1200, help="training steps of batch 16 (the suite: 1200)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--keypoints", type=int, default=8, help="the agent's keypoints (the suite: 8)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from vmask_live.agents import load_agent
    from vmask_live.dataset import CollectConfig, collect
    from vmask_live.loss import LossConfig
    from vmask_live.metrics import evaluate_maps
    from vmask_live.train import TrainConfig, train
    from vmask_live.train_agent import BCConfig, train_bc

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_bc(
            BCConfig(out=str(root / "agent.safetensors"), seed=args.seed, keypoints=args.keypoints), progress=False
        )
        agent = load_agent(root / "agent.safetensors")
        ds = collect(
            CollectConfig(env="Beacon", out=str(root / "data"), steps=6000, shard_size=2000, seed=args.seed),
            agent=agent,
            progress=False,
        )
        epochs = max(1, args.steps // 100)
        cfg = TrainConfig(
            data=str(ds.path),
            out=str(root / "run"),
            epochs=epochs,
            steps_per_epoch=100,
            patience=epochs,
            batch_size=16,
            width=8,
            lr=2e-3,
            seed=args.seed,
            loss=LossConfig(area_loss="abs", a_max=0.02),
        )
        start = time.time()
        exp = train(cfg, agent=agent, progress=False).explainer
        seconds = time.time() - start
        d = ds.get(ds.split("test")[:300], ("obs", "actions", "relevant"))
        x, a = ds.obs_format.to_model(d["obs"]), torch.as_tensor(d["actions"])
        res = evaluate_maps(
            agent, x, a, exp.attribute, exp.reference, relevant=torch.as_tensor(d["relevant"]), with_lle=False
        )
    print(
        json.dumps(
            {
                "seed": args.seed,
                "steps": epochs * 100,
                "train_s": round(seconds),
                "accuracy": round(res["accuracy"], 1),
                "insertion": round(res["insertion"], 1),
                "deletion": round(res["deletion"], 2),
                "relevance_mass": round(res["relevance_mass"], 2),
                "relevant_area": round(res["relevant_area"], 2),
                "mass_over_area": round(res["relevance_mass"] / res["relevant_area"], 1),
            }
        )
    )


if __name__ == "__main__":
    main()
