"""Training a VisionMask explainer against a frozen agent (``vmask-live train``).

The loop reads top to bottom: build the net, then per epoch shuffle the training split, take
batches, compute the loss of :mod:`vmask_live.loss` (one agent call of ``B·2K`` masked states per
batch), step AdamW; after each epoch validate (loss, accuracy, insertion, deletion), keep the best
checkpoint, stop early when validation stops improving. ``last.safetensors`` (weights + optimizer
state, written atomically every ``checkpoint_every`` steps and at each epoch end) lets ``--resume``
continue where a killed run stopped.
"""

from __future__ import annotations

import json
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vmask_live.checkpoint import CheckpointError, load_state, read_checkpoint, save_checkpoint
from vmask_live.dataset import Dataset, DatasetError
from vmask_live.explainer import Explainer
from vmask_live.loss import LossConfig, visionmask_loss
from vmask_live.metrics import evaluate_maps
from vmask_live.model import build_explainer
from vmask_live.overlay import Reference

__all__ = ["TrainConfig", "train", "TrainResult"]


@dataclass
class TrainConfig:
    """Train an explainer on a collected dataset."""

    data: str = "data/beacon"
    """Dataset folder from ``vmask-live collect``."""
    agent: str = ""
    """The agent the dataset was collected with (its hash must match the dataset's)."""
    out: str = "runs/explainer"
    """Run folder: ``explainer.safetensors`` (best), ``last.safetensors``, ``log.jsonl``."""
    arch: str = "deeplab"
    width: int = 16
    reference: str = "background"
    """Overlay reference: background | black | mean | blur."""
    loss: LossConfig = field(default_factory=LossConfig)
    input_noise: float = 0.0
    """Robustness: the explainer sees ``clip(s + U(-ε, ε))`` while its maps are applied to the clean
    ``s``, so nearby states get the same maps (what LLE measures). 0 disables."""
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: int = 10
    steps_per_epoch: int | None = None
    """Cap on batches per epoch (None: one pass over the training split)."""
    patience: int = 3
    """Epochs without validation improvement before stopping."""
    val_samples: int = 256
    val_insertion_steps: int = 20
    max_minutes: float | None = None
    """Wall-clock budget; training stops (keeping the best checkpoint) when it is spent."""
    checkpoint_every: int = 200
    """Steps between ``last.safetensors`` writes within an epoch."""
    seed: int = 0
    resume: bool = False
    device: str = "cpu"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["loss"] = LossConfig(**d.get("loss", {}))
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    explainer: Explainer
    path: Path
    history: list[dict[str, Any]]
    seconds: float
    samples_per_s: float


def _save_last(path: Path, exp: Explainer, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    tensors = {f"net.{k}": v for k, v in exp.net.state_dict().items()}
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for name, t in st.items():
            tensors[f"opt.{pid}.{name}"] = torch.as_tensor(t)
    meta = {"format": "train-state", "param_groups": opt_state["param_groups"], **state}
    save_checkpoint(path, tensors, meta)


def _load_last(path: Path, exp: Explainer, opt: torch.optim.Optimizer) -> dict[str, Any]:
    tensors, meta = read_checkpoint(path, "train-state")
    load_state(exp.net, tensors, "net.", path)
    st: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            st.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": st, "param_groups": meta["param_groups"]})
    return meta


def _validate(exp, agent, ds, idx, cfg, device) -> dict[str, float]:
    data = ds.get(idx, ("obs", "actions"))
    x = ds.obs_format.to_model(data["obs"], device)
    a = torch.as_tensor(data["actions"], device=device)
    exp.net.eval()
    losses = []
    with torch.no_grad():
        for i in range(0, len(idx), cfg.batch_size):
            xb, ab = x[i : i + cfg.batch_size], a[i : i + cfg.batch_size]
            loss, _ = visionmask_loss(agent, xb, ab, exp.maps(xb), exp.reference(xb), cfg.loss)
            losses.append(loss.item() * len(ab))
    res = evaluate_maps(agent, x, a, exp.attribute, exp.reference, n_steps=cfg.val_insertion_steps, with_lle=False)
    out = {f"val/{k}": v for k, v in res.items() if not k.endswith("_curve") and k != "n"}
    out["val/loss"] = float(sum(losses) / len(idx))
    return out


def train(cfg: TrainConfig, agent=None, progress: bool = True) -> TrainResult:
    """Train (or resume) an explainer; returns the best explainer and the curves."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from vmask_live.agents import load_agent
    from vmask_live.pairing import agent_hash

    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    ds = Dataset(cfg.data)
    agent = (agent if agent is not None else load_agent(cfg.agent)).to(device).freeze()
    if agent_hash(agent) != ds.manifest["agent_hash"]:
        raise DatasetError(
            f"Dataset {cfg.data!r} was collected with agent {ds.manifest['agent_hash']}, but the given agent "
            f"hashes to {agent_hash(agent)}; VisionMask must be trained against the agent that made the data"
        )
    if agent.n_actions != ds.n_actions:
        raise DatasetError(f"Agent has {agent.n_actions} actions, dataset {ds.n_actions}")
    train_idx, val_idx = ds.split("train"), ds.split("val")
    rng = np.random.default_rng(cfg.seed)
    if len(val_idx) > cfg.val_samples:
        val_idx = np.sort(rng.choice(val_idx, cfg.val_samples, replace=False))
    background, mean = ds.statistics()
    c, h, w = ds.obs_format.chw
    reference = Reference.from_data(cfg.reference, background, mean, height=h)
    arch_kwargs = {"in_channels": c, "n_actions": ds.n_actions, "input_size": [h, w], "width": cfg.width}
    net = build_explainer(cfg.arch, **arch_kwargs).to(device)
    exp = Explainer(
        net,
        cfg.arch,
        arch_kwargs,
        ds.obs_format,
        reference.to(device),
        ds.action_names,
        {"train_config": json.loads(json.dumps(asdict(cfg))), "env": ds.env, "agent_hash": ds.manifest["agent_hash"]},
    )
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last_path, best_path, log_path = out / "last.safetensors", out / "explainer.safetensors", out / "log.jsonl"

    state: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "best": None,
        "bad_epochs": 0,
        "history": [],
        "seconds": 0.0,
        "samples": 0,
    }
    if cfg.resume and last_path.exists():
        state.update({k: v for k, v in _load_last(last_path, exp, opt).items() if k in state})
    elif last_path.exists() and not cfg.resume:
        raise CheckpointError(f"{str(out)!r} holds a training run already; pass --resume or another --out")

    steps_per_epoch = len(train_idx) // cfg.batch_size
    if cfg.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.steps_per_epoch)
    if steps_per_epoch == 0:
        raise DatasetError(f"Training split has {len(train_idx)} states, fewer than one batch of {cfg.batch_size}")

    def _on_term(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _on_term)
    start = time.time() - state["seconds"]
    stop = False
    cols = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[terms]}"),
    ]
    try:
        with Progress(*cols, disable=not progress, transient=False) as bar:
            while state["epoch"] < cfg.epochs and not stop:
                epoch = state["epoch"]
                perm = np.random.default_rng(cfg.seed + epoch).permutation(train_idx)
                task = bar.add_task(
                    f"epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch, completed=state["step_in_epoch"], terms=""
                )
                net.train()
                sums: dict[str, float] = {}
                first = state["step_in_epoch"]
                for step in range(state["step_in_epoch"], steps_per_epoch):
                    idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                    batch = ds.get(idx, ("obs", "actions"))
                    x = ds.obs_format.to_model(batch["obs"], device)
                    a = torch.as_tensor(batch["actions"], device=device)
                    x_in = x
                    if cfg.input_noise:
                        x_in = (x + (torch.rand_like(x) * 2 - 1) * cfg.input_noise).clamp(0, 1)
                    loss, terms = visionmask_loss(agent, x, a, net(x_in), reference(x), cfg.loss)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    state["samples"] += len(idx)
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + v
                    bar.update(
                        task,
                        completed=step + 1,
                        terms=" ".join(f"{k.split('/')[1]}={v / (step + 1 - first):.3f}" for k, v in sums.items()),
                    )
                    state["step_in_epoch"] = step + 1
                    if (step + 1) % cfg.checkpoint_every == 0:
                        state["seconds"] = time.time() - start
                        _save_last(last_path, exp, opt, state)
                    if cfg.max_minutes and time.time() - start > 60 * cfg.max_minutes:
                        stop = True
                        break
                n_steps = max(1, state["step_in_epoch"] - first)
                row = {"epoch": epoch + 1, "steps": state["step_in_epoch"], **{k: v / n_steps for k, v in sums.items()}}
                row.update(_validate(exp, agent, ds, val_idx, cfg, device))
                row["charts/seconds"] = round(time.time() - start, 1)
                state["history"].append(row)
                with log_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                if progress:
                    bar.console.print(
                        f"epoch {epoch + 1}: val loss {row['val/loss']:.3f} acc {row['val/accuracy']:.1f} "
                        f"ins {row['val/insertion']:.1f} del {row['val/deletion']:.1f}"
                    )
                if state["best"] is None or row["val/loss"] < state["best"]:
                    state["best"], state["bad_epochs"] = row["val/loss"], 0
                    exp.save(best_path, {"val_metrics": row, "epoch": epoch + 1})
                else:
                    state["bad_epochs"] += 1
                    if state["bad_epochs"] >= cfg.patience:
                        stop = True
                state["epoch"], state["step_in_epoch"] = epoch + 1, 0
                state["seconds"] = time.time() - start
                _save_last(last_path, exp, opt, state)
    except KeyboardInterrupt:
        state["seconds"] = time.time() - start
        _save_last(last_path, exp, opt, state)
        raise KeyboardInterrupt(f"training interrupted; state saved to {last_path}, rerun with --resume") from None
    finally:
        signal.signal(signal.SIGTERM, old)
    seconds = time.time() - start
    best = Explainer.load(best_path)
    best.to(device)
    return TrainResult(best, best_path, state["history"], seconds, state["samples"] / max(seconds, 1e-9))
