"""Explainer training throughput: today's trainer against each speed lever, side by side in one run.

Every variant is a :class:`~vmask_live.train.TrainConfig` change (``torch.compile`` aside, which is
not an option: see README) built by the trainer itself and timed through its own epoch loop
(``_train_epoch``: reading the memory-mapped shards, the step, the bookkeeping) on the same
batches. The variants take one step each in turn, so load from other processes falls on all of
them alike; each variant's figure is its median step time.

Then the quality check: the baseline and the fastest variant train at the same time (one process
and an equal share of the threads each) for the same wall time, with the trainer's validation
(float32, full loss) after every ``--quality-steps`` steps; the table lists the best validation
row of each.

    python benchmarks/train_throughput.py --data runs/bench-mspacman --agent default:MsPacman

Writes ``OUT/throughput.md`` and ``OUT/throughput.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from vmask_live.loss import LossConfig
from vmask_live.train import TrainConfig, _prepare_run, _progress_bar, _train_epoch, train


def variants(sampled: int, lean_width: int) -> dict[str, dict[str, Any]]:
    """Name -> TrainConfig changes (``compile`` is the benchmark's own switch)."""
    fast = {"precision": "bf16", "channels_last": True}
    return {
        "baseline (today's trainer)": {},
        "bf16 autocast": {"precision": "bf16"},
        "channels_last": {"channels_last": True},
        "bf16 + channels_last": fast,
        f"width {lean_width}": {"width": lean_width},
        f"sampled_actions {sampled}": {"loss": {"sampled_actions": sampled}},
        "torch.compile (explainer)": {"compile": True},
        f"bf16 + channels_last + sampled {sampled}": {**fast, "loss": {"sampled_actions": sampled}},
        f"bf16 + channels_last + sampled {sampled} + width {lean_width}": {
            **fast,
            "loss": {"sampled_actions": sampled},
            "width": lean_width,
        },
    }


def config(base: TrainConfig, changes: dict[str, Any], out: Path) -> TrainConfig:
    changes = {k: v for k, v in changes.items() if k != "compile"}
    loss = replace(base.loss, **changes.pop("loss", {}))
    return replace(base, out=str(out), loss=loss, overwrite=True, **changes)


def measure(base: TrainConfig, table: dict[str, dict[str, Any]], steps: int, tmp: Path) -> list[dict]:
    """Samples/s of every variant: one warm-up step each (compile time), then ``steps`` timed steps
    each, one step of every variant in turn; the median step time makes one variant's figure."""
    runs, rows = {}, []
    bar = _progress_bar(False)
    for i, (name, changes) in enumerate(table.items()):
        run = _prepare_run(config(base, changes, tmp / f"v{i}"), agent=None)
        if changes.get("compile"):
            run.model = torch.compile(run.model)
        run.steps_per_epoch = 1
        t = time.perf_counter()
        _train_epoch(run, bar)
        runs[name] = (run, time.perf_counter() - t)
        print(f"warm-up {name}: {runs[name][1]:.1f} s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in table}
    for step in range(steps):
        for name, (run, _) in runs.items():
            # the trainer's own loop, one step at a time: batch `step` of the same permutation
            run.state["step_in_epoch"], run.steps_per_epoch = step, step + 1
            t = time.perf_counter()
            _train_epoch(run, bar)
            times[name].append(time.perf_counter() - t)
        print(f"step {step + 1}/{steps}: " + ", ".join(f"{n}={v[-1]:.2f}s" for n, v in times.items()), flush=True)
    rate = {name: base.batch_size / statistics.median(t) for name, t in times.items()}
    base_rate = rate[next(iter(table))]
    for name, (_, warm) in runs.items():
        rows.append(
            {"variant": name, "samples_per_s": rate[name], "ratio": rate[name] / base_rate, "first_step_s": warm}
        )
    return rows


def _train_for(name: str, cfg: TrainConfig, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    res = train(cfg, progress=False)
    best = min(res.history, key=lambda h: h["val/loss"])
    return {
        "variant": name,
        "minutes": round(res.seconds / 60, 2),
        "steps": sum(h["steps"] for h in res.history),
        "validations": len(res.history),
        **{k: best[k] for k in ("val/loss", "val/accuracy", "val/insertion", "val/deletion")},
        "best_at_epoch": best["epoch"],
        "first_val_loss": res.history[0]["val/loss"],
    }


def quality(base: TrainConfig, table: dict[str, dict[str, Any]], names: list[str], args, tmp: Path) -> list[dict]:
    """Best validation row of each named variant after the same wall time of training.

    The variants train at the same time, one process and one thread each, so that they share the
    same minutes of the same (possibly busy) machine.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    cfgs = []
    for i, name in enumerate(names):
        cfg = config(base, table[name], tmp / f"q{i}")
        cfgs.append(
            replace(
                cfg,
                epochs=args.equal_steps // args.quality_steps if args.equal_steps else 1000,
                patience=1000,
                steps_per_epoch=args.quality_steps,
                max_minutes=None if args.equal_steps else args.quality_minutes,
                val_samples=args.val_samples,
            )
        )
    threads = max(1, torch.get_num_threads() // len(names))
    with ProcessPoolExecutor(len(names), mp_context=get_context("spawn")) as pool:
        rows = list(pool.map(_train_for, names, cfgs, [threads] * len(names)))
    for row in rows:
        print(row, flush=True)
    return rows


def markdown(speed: list[dict], qual: list[dict], args, base: TrainConfig) -> str:
    lines = [
        f"Batch {base.batch_size}, median of {args.steps} steps per variant, one step of each in turn, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads.",
        "",
        "| variant | samples/s | vs today | first step (s) |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['variant']} | {r['samples_per_s']:.1f} | {r['ratio']:.2f}x | {r['first_step_s']:.1f} |" for r in speed
    ]
    if not speed:  # --skip-speed
        lines = lines[:1]
    if qual:
        lines += [
            "",
            (
                f"Validation after {args.equal_steps} steps each"
                if args.equal_steps
                else f"Validation after {args.quality_minutes} min of training each"
            )
            + f", side by side ({args.val_samples} validation states, float32, full loss; best row):",
            "",
            f"| variant | steps | val loss | accuracy | insertion | deletion | val loss after {args.quality_steps} steps |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['variant']} | {r['steps']} | {r['val/loss']:.3f} | {r['val/accuracy']:.1f} | "
            f"{r['val/insertion']:.1f} | {r['val/deletion']:.1f} | {r['first_val_loss']:.3f} |"
            for r in qual
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="dataset folder from `vmask-live collect`")
    p.add_argument("--agent", required=True, help="the agent that collected it (e.g. default:MsPacman)")
    p.add_argument("--out", default="runs/bench-throughput")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=12, help="timed steps per variant (interleaved)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    p.add_argument("--sampled", type=int, default=3, help="loss.sampled_actions of the sampling variants")
    p.add_argument("--lean-width", type=int, default=8)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (slow to compile)")
    p.add_argument("--quality-minutes", type=float, default=4.0, help="0 skips the quality check")
    p.add_argument("--quality-steps", type=int, default=25, help="training steps between validations")
    p.add_argument("--val-samples", type=int, default=128)
    p.add_argument("--equal-steps", type=int, default=0, help="train this many steps each instead of the same minutes")
    p.add_argument("--skip-speed", action="store_true", help="only the quality check (with --quality names)")
    p.add_argument("--quality", nargs="*", default=None, help="variants to train (default: baseline and fastest)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    base = TrainConfig(data=args.data, agent=args.agent, batch_size=args.batch_size, checkpoint_every=10**9)
    base = replace(base, loss=LossConfig())
    table = variants(args.sampled, args.lean_width)
    if args.no_compile:
        table = {k: v for k, v in table.items() if not v.get("compile")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        speed = [] if args.skip_speed else measure(base, table, args.steps, Path(tmp))
        names = args.quality or [speed[0]["variant"], max(speed, key=lambda r: r["samples_per_s"])["variant"]]
        qual = quality(base, table, names, args, Path(tmp)) if args.quality_minutes > 0 else []
    text = markdown(speed, qual, args, base)
    (out / "throughput.md").write_text(text)
    (out / "throughput.json").write_text(json.dumps({"speed": speed, "quality": qual, "args": vars(args)}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
