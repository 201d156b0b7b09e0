"""Training a VisionMask explainer against a frozen agent (``vmask-live train``).

The loop reads top to bottom: build the net, then per epoch shuffle the training split, take
batches, compute the loss of :mod:`vmask_live.loss` (one agent call of ``B·2K`` masked states per
batch), step AdamW; after each epoch validate (loss, accuracy, insertion, deletion), keep the best
checkpoint, stop early when validation stops improving. ``last.safetensors`` (weights + optimizer
state + the run's settings, written atomically every ``checkpoint_every`` steps and at each epoch
end) lets ``--resume`` continue where a killed run stopped.

Before anything is loaded, the job checks its settings (all bad ones in one
:class:`~vmask_live.errors.ConfigError`) and its run folder: it never overwrites another run's
checkpoints unless told to, and never resumes a run with settings other than the run's.
"""

from __future__ import annotations

import json
import math
import re
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vmask_live.checkpoint import CheckpointError, load_state, read_checkpoint, save_checkpoint
from vmask_live.dataset import Dataset, DatasetError
from vmask_live.errors import ConfigError
from vmask_live.explainer import Explainer
from vmask_live.loss import AREA_LOSSES, LossConfig, visionmask_loss
from vmask_live.metrics import evaluate_maps
from vmask_live.model import ARCHITECTURES, build_explainer
from vmask_live.overlay import REFERENCE_KINDS, Reference

__all__ = ["TrainConfig", "train", "train_step", "TrainResult", "RESUMABLE_FIELDS", "LOSS_KINDS"]

LOSS_KINDS = ("visionmask", "explainer")
"""``LossConfig.kind`` values (see :mod:`vmask_live.loss`)."""

RESUMABLE_FIELDS = (
    "epochs",
    "patience",
    "max_minutes",
    "checkpoint_every",
    "device",
    "resume",
    "overwrite",
    "out",
    "agent",
)
"""TrainConfig fields that may differ from the run's on ``--resume``: they bound or place the run
(train longer, a new time budget or patience, another device, a moved folder or agent file: the
agent is still checked against the dataset's hash) without changing what is being trained."""


class SettingChecks:
    """Collects every bad setting of a job config, so that one :class:`ConfigError` lists them all.

    Example:
        >>> checks = SettingChecks("train")
        >>> checks.integer("batch_size", -4, minimum=1)
        >>> checks.number("lr", 0.0, low=0, low_open=True)
        >>> checks.raise_if_any()
        Traceback (most recent call last):
        ...
        vmask_live.errors.ConfigError: Invalid train settings (2):
          batch_size: expected an integer >= 1, got -4
          lr: expected a finite number > 0, got 0.0
    """

    def __init__(self, job: str) -> None:
        self.job = job
        self.problems: list[str] = []

    def add(self, name: str, expected: str, value: Any, hint: str = "") -> None:
        """Record that ``name`` should be ``expected`` but is ``value`` (``hint``: the fix)."""
        self.problems.append(f"{name}: expected {expected}, got {value!r}" + (f"; {hint}" if hint else ""))

    def integer(self, name: str, value: Any, minimum: int, *, optional: bool = False) -> None:
        """An ``int`` (not a bool) ``>= minimum``; ``None`` too when ``optional``."""
        if optional and value is None:
            return
        is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        if not is_int or value < minimum:
            self.add(name, f"an integer >= {minimum}" + (" or None" if optional else ""), value)

    def number(
        self,
        name: str,
        value: Any,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        optional: bool = False,
    ) -> None:
        """A finite real number within the bounds (``*_open``: the bound itself is excluded)."""
        if optional and value is None:
            return
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        ok = ok and (low is None or (value > low if low_open else value >= low))
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if ok:
            return
        if low is not None and high is not None:
            expected = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            expected = f"a finite number {'>' if low_open else '>='} {low}"
        elif high is not None:
            expected = f"a finite number {'<' if high_open else '<='} {high}"
        else:
            expected = "a finite number"
        self.add(name, expected + (" or None" if optional else ""), value)

    def choice(self, name: str, value: Any, options: tuple[str, ...] | list[str]) -> None:
        """One of the known names."""
        if value not in options:
            self.add(name, "one of " + ", ".join(repr(o) for o in options), value)

    def flag(self, name: str, value: Any) -> None:
        """A ``bool``."""
        if not isinstance(value, bool):
            self.add(name, "True or False", value)

    def device(self, name: str, value: Any) -> None:
        """``cpu``, ``auto``, ``cuda``/``cuda:N`` where CUDA is available, ``mps`` where MPS is."""
        names = "'cpu', 'cuda', 'cuda:N' or 'auto'"
        if value in ("cpu", "auto"):
            return
        m = re.fullmatch(r"cuda(?::(\d+))?", value) if isinstance(value, str) else None
        if m:
            if not torch.cuda.is_available():
                self.add(
                    name,
                    "'cpu' or 'auto' (CUDA is not available on this machine: no NVIDIA GPU or driver, or a "
                    "CPU-only torch build)",
                    value,
                    "use --device cpu",
                )
            elif m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
                self.add(name, f"a CUDA device index below {torch.cuda.device_count()} (the GPUs found)", value)
            return
        if value == "mps":
            if not torch.backends.mps.is_available():
                self.add(
                    name, "'cpu' or 'auto' (Apple MPS is not available on this machine)", value, "use --device cpu"
                )
            return
        self.add(name, names, value)

    def raise_if_any(self) -> None:
        """Raise one :class:`ConfigError` listing every recorded problem."""
        if self.problems:
            listing = "\n  ".join(self.problems)
            raise ConfigError(f"Invalid {self.job} settings ({len(self.problems)}):\n  {listing}")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; any other (validated) name unchanged."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def ensure_writable_folder(folder: str | Path, option: str = "--out") -> Path:
    """Create ``folder`` (and parents) and write a temporary file in it, so that a job fails now,
    not after hours of training, when it could not save.

    Raises:
        ConfigError: the folder cannot be created or written (a parent is a file, no permission,
            read-only or full disk).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".vmask-write-test-"):
            pass
    except OSError as err:
        raise ConfigError(
            f"Cannot write to {option} folder {str(folder)!r}: {err.strerror or err}. Expected a folder this user "
            f"can create files in (is part of the path a file, or the disk read-only or full?); pick another {option} "
            "or fix the permissions. Nothing was trained."
        ) from err
    return folder


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(
    saved: dict[str, Any], now: dict[str, Any], defaults: dict[str, Any], allowed: tuple[str, ...]
) -> list[str]:
    """``"name: run X, now Y"`` for every setting of ``now`` that differs from the ``saved`` run's.

    Nested configs are compared field by field (``loss.a_max``); a field the run did not record
    (added in a later version) counts as the default it ran with; ``allowed`` fields are skipped.
    """
    saved_flat, now_flat, default_flat = _flatten(saved), _flatten(json.loads(json.dumps(now))), _flatten(defaults)
    diffs = []
    for key, value in now_flat.items():
        if key.split(".")[0] in allowed:
            continue
        old = saved_flat.get(key, default_flat.get(key))
        if old != value:
            diffs.append(f"{key}: run {old!r}, now {value!r}")
    return diffs


def refuse_changed_resume(folder: Path, diffs: list[str], allowed: tuple[str, ...]) -> None:
    """Raise the ConfigError for a resume whose settings differ from the run's."""
    if diffs:
        listing = "\n  ".join(diffs)
        raise ConfigError(
            f"Cannot resume the run in {str(folder)!r} with other settings than it was started with; the saved "
            f"state would carry on with the run's values while the new ones were recorded ({len(diffs)} "
            f"difference{'s' if len(diffs) > 1 else ''}):\n  {listing}\n"
            "Rerun --resume with the run's settings, or start a new run with another --out. Settings that may "
            f"change on resume: {', '.join(a for a in allowed if a not in ('resume', 'overwrite'))}."
        )


@dataclass
class TrainConfig:
    """Train an explainer on a collected dataset.

    Every numeric setting is checked by :meth:`validate` when the job starts.
    """

    data: str = "data/beacon"
    """Dataset folder from ``vmask-live collect``."""
    agent: str = ""
    """The agent the dataset was collected with (its hash must match the dataset's)."""
    out: str = "runs/explainer"
    """Run folder: ``explainer.safetensors`` (best), ``last.safetensors``, ``log.jsonl``."""
    arch: str = "deeplab"
    """Explainer network: deeplab | fcn."""
    width: int = 16
    """Channel width of the explainer network (>= 1)."""
    reference: str = "background"
    """Overlay reference: background | black | mean | blur."""
    loss: LossConfig = field(default_factory=LossConfig)
    input_noise: float = 0.0
    """Robustness: the explainer sees ``clip(s + U(-ε, ε))`` while its maps are applied to the clean
    ``s``, so nearby states get the same maps (what LLE measures). 0 disables; in [0, 1)."""
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    epochs: int = 10
    """Epochs in total; raise it with ``resume`` to train a finished run longer."""
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
    """Continue the run in ``out`` from ``last.safetensors`` with the run's settings: only ``epochs``
    (to train longer), ``patience``, ``max_minutes``, ``checkpoint_every``, ``device``, ``out`` and
    ``agent`` (a moved file; still checked against the dataset) may change (:data:`RESUMABLE_FIELDS`),
    any other difference is refused. Without a saved state, a new run starts."""
    overwrite: bool = False
    """Start a new run in ``out`` even though it holds another run's checkpoints: its
    ``explainer.safetensors``, ``last.safetensors`` and ``log.jsonl`` are deleted when training starts."""
    device: str = "cpu"
    """cpu | cuda | cuda:N | auto (CUDA when available)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["loss"] = LossConfig(**d.get("loss", {}))
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def validate(self) -> None:
        """Check every setting, type then value.

        Raises:
            ConfigError: listing every bad setting at once, each as "expected ..., got ...".
        """
        c = SettingChecks("train")
        c.choice("arch", self.arch, tuple(sorted(ARCHITECTURES)))
        c.integer("width", self.width, 1)
        c.choice("reference", self.reference, REFERENCE_KINDS)
        if isinstance(self.loss, LossConfig):
            loss = self.loss
            c.number("loss.a_max", loss.a_max, low=0, high=1, low_open=True)
            c.choice("loss.area_loss", loss.area_loss, AREA_LOSSES)
            c.number("loss.area_min", loss.area_min, low=0, high=1)
            for name in ("lambda_ne", "lambda_area", "lambda_tv", "lambda_l1"):
                c.number(f"loss.{name}", getattr(loss, name), low=0)
            c.choice("loss.kind", loss.kind, LOSS_KINDS)
        else:
            c.add("loss", "a LossConfig", self.loss)
        c.number("input_noise", self.input_noise, low=0, high=1, high_open=True)
        c.number("lr", self.lr, low=0, low_open=True)
        c.number("weight_decay", self.weight_decay, low=0)
        c.integer("batch_size", self.batch_size, 1)
        c.integer("epochs", self.epochs, 1)
        c.integer("steps_per_epoch", self.steps_per_epoch, 1, optional=True)
        c.integer("patience", self.patience, 1)
        c.integer("val_samples", self.val_samples, 1)
        c.integer("val_insertion_steps", self.val_insertion_steps, 1)
        c.number("max_minutes", self.max_minutes, low=0, low_open=True, optional=True)
        c.integer("checkpoint_every", self.checkpoint_every, 1)
        c.integer("seed", self.seed, 0)
        c.flag("resume", self.resume)
        c.flag("overwrite", self.overwrite)
        c.device("device", self.device)
        c.raise_if_any()


@dataclass
class TrainResult:
    explainer: Explainer
    path: Path
    history: list[dict[str, Any]]
    seconds: float
    samples_per_s: float


def _save_last(path: Path, exp: Explainer, opt: torch.optim.Optimizer, state: dict[str, Any], cfg: TrainConfig) -> None:
    tensors = {f"net.{k}": v for k, v in exp.net.state_dict().items()}
    opt_state = opt.state_dict()
    for pid, st in opt_state["state"].items():
        for name, t in st.items():
            tensors[f"opt.{pid}.{name}"] = torch.as_tensor(t)
    meta = {
        "format": "train-state",
        "param_groups": opt_state["param_groups"],
        "train_config": json.loads(json.dumps(asdict(cfg))),
        **state,
    }
    save_checkpoint(path, tensors, meta)


def _load_last(
    path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], exp: Explainer, opt: torch.optim.Optimizer
) -> None:
    try:
        load_state(exp.net, tensors, "net.", path)
        st: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                st.setdefault(int(pid), {})[name] = v
        opt.load_state_dict({"state": st, "param_groups": meta["param_groups"]})
    except (RuntimeError, ValueError, KeyError) as err:
        # torch's size-mismatch error lists every tensor (dozens of lines): say what it means instead
        first = str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"The training state in {str(path)!r} does not fit the network built from these settings ({first}); "
            "the run was made with another --arch/--width or dataset. Rerun --resume with the run's settings, "
            "or start a new run with another --out."
        ) from None


def _check_run_folder(cfg: TrainConfig, out: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Refuse to overwrite another run or to resume one with other settings.

    Returns:
        The saved training state (tensors, meta) to resume from, or None for a new run.
    """
    last_path, best_path = out / "last.safetensors", out / "explainer.safetensors"
    if cfg.resume and last_path.exists():
        tensors, meta = read_checkpoint(last_path, "train-state")
        saved = meta.get("train_config")
        if saved is None and best_path.exists():  # written before last.safetensors recorded its settings
            saved = read_checkpoint(best_path, "explainer")[1].get("train_config")
        if saved is not None:
            diffs = config_differences(saved, asdict(cfg), asdict(TrainConfig()), RESUMABLE_FIELDS)
            refuse_changed_resume(out, diffs, RESUMABLE_FIELDS)
        return tensors, meta
    existing = [p.name for p in (best_path, last_path) if p.exists()]
    if existing and not cfg.overwrite:
        raise ConfigError(
            f"{str(out)!r} already holds another training run ({', '.join(existing)}); a new run would overwrite "
            f"{str(out / existing[0])!r}. Pass --resume to continue that run, another --out for a new one, "
            "or --overwrite (overwrite=True) to replace it."
        )
    return None


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
    out = {f"val/{k}": float(v) for k, v in res.items() if not k.endswith("_curve") and k != "n"}  # type: ignore[arg-type]
    out["val/loss"] = float(sum(losses) / len(idx))
    return out


def train_step(
    net: torch.nn.Module,
    agent: torch.nn.Module,
    x: torch.Tensor,
    a: torch.Tensor,
    reference: Reference,
    loss_cfg: LossConfig,
    opt: torch.optim.Optimizer,
    input_noise: float = 0.0,
) -> dict[str, float]:
    """One optimiser step of the explainer on a batch; returns the loss terms.

    With ``input_noise`` ε the explainer sees ``clip(x + U(-ε, ε), 0, 1)``, but its maps are applied
    to the clean ``x`` with the clean reference: the agent is queried on
    ``overlay(x, M(noisy x), r(x))``, so the noise asks for maps that are stable under small input
    changes without changing the states they are judged on.
    """
    x_in = x
    if input_noise:
        x_in = (x + (torch.rand_like(x) * 2 - 1) * input_noise).clamp(0, 1)
    loss, terms = visionmask_loss(agent, x, a, net(x_in), reference(x), loss_cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return terms


def train(cfg: TrainConfig, agent=None, progress: bool = True) -> TrainResult:
    """Train (or resume) an explainer; returns the best explainer and the curves.

    Before loading anything it checks the settings (:meth:`TrainConfig.validate`) and the run
    folder: a new run never overwrites another run's checkpoints in ``out`` unless
    ``cfg.overwrite``; ``cfg.resume`` refuses settings that differ from the run's (except
    :data:`RESUMABLE_FIELDS`); ``out`` must be writable.

    Raises:
        ConfigError: bad settings, an occupied or unwritable ``out``, or a resume with other settings.
        DatasetError: the dataset is not the agent's, or smaller than one batch.
        CheckpointError: the saved training state cannot be read or does not fit.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from vmask_live.agents import load_agent
    from vmask_live.pairing import agent_hash

    cfg.validate()
    out = Path(cfg.out)
    saved_state = _check_run_folder(cfg, out)
    ensure_writable_folder(out)
    last_path, best_path, log_path = out / "last.safetensors", out / "explainer.safetensors", out / "log.jsonl"

    torch.manual_seed(cfg.seed)
    device = torch.device(resolve_device(cfg.device))
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
    steps_per_epoch = len(train_idx) // cfg.batch_size
    if cfg.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.steps_per_epoch)
    if steps_per_epoch == 0:
        raise DatasetError(f"Training split has {len(train_idx)} states, fewer than one batch of {cfg.batch_size}")
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

    state: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "best": None,
        "bad_epochs": 0,
        "history": [],
        "seconds": 0.0,
        "samples": 0,
    }
    if saved_state is not None:
        tensors, meta = saved_state
        _load_last(last_path, tensors, meta, exp, opt)
        state.update({k: v for k, v in meta.items() if k in state})
    else:
        # a new run: _check_run_folder allowed this only if nothing is there or overwrite was asked
        for stale in (best_path, last_path, log_path):
            stale.unlink(missing_ok=True)

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
                    terms = train_step(net, agent, x, a, reference, cfg.loss, opt, cfg.input_noise)
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
                        _save_last(last_path, exp, opt, state, cfg)
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
                _save_last(last_path, exp, opt, state, cfg)
    except KeyboardInterrupt:
        state["seconds"] = time.time() - start
        _save_last(last_path, exp, opt, state, cfg)
        raise KeyboardInterrupt(f"training interrupted; state saved to {last_path}, rerun with --resume") from None
    finally:
        signal.signal(signal.SIGTERM, old)
    seconds = time.time() - start
    best = Explainer.load(best_path)
    best.to(device)
    return TrainResult(best, best_path, state["history"], seconds, state["samples"] / max(seconds, 1e-9))
