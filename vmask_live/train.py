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

Speed options (README, "Training faster and on several processes"): ``precision="bf16"``
(autocast of the training step), ``channels_last`` (NHWC memory) and ``loss.sampled_actions``
(fewer masked states per sample); validation is always float32 with the full loss.

Data parallel: started by ``torchrun`` (``WORLD_SIZE`` > 1), ``train`` joins the process group
(gloo on CPU, NCCL on CUDA) and wraps the explainer in DistributedDataParallel. ``batch_size``
stays the batch of all processes together and every rank reads only its share of each batch from
the memory-mapped shards, so the run takes the steps a 1-process run takes; rank 0 validates,
writes the run folder and broadcasts its decisions (time budget, early stopping), and a run
resumes in any number of processes.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vmask_live.checkpoint import CheckpointError, load_state, read_checkpoint, save_checkpoint
from vmask_live.dataset import Dataset, DatasetError
from vmask_live.errors import ConfigError, TrainingDiverged
from vmask_live.explainer import Explainer
from vmask_live.explainer_nets import ARCHITECTURES, build_explainer
from vmask_live.interrupt import sigterm_as_interrupt
from vmask_live.loss import AREA_LOSSES, LOSS_KINDS, LossConfig, visionmask_loss
from vmask_live.metrics import evaluate_maps
from vmask_live.overlay import REFERENCE_KINDS, Reference
from vmask_live.settings import SettingChecks

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["TrainConfig", "train", "train_step", "TrainResult", "RESUMABLE_FIELDS", "LOSS_KINDS", "PRECISIONS"]


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
    "channels_last",
)
"""TrainConfig fields that may differ from the run's on ``--resume``: they bound or place the run
(train longer, a new time budget or patience, another device or memory layout, a moved folder or
agent file: the agent is still checked against the dataset's hash) without changing what is being
trained."""

PRECISIONS = ("fp32", "bf16")
"""``TrainConfig.precision`` values: float32 throughout, or bfloat16 autocast of the training step."""


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
    refine: bool = False
    """deeplab only: add the full-resolution refinement head (sharper map edges; see
    :class:`~vmask_live.explainer_nets.DeepLabExplainer`)."""
    init: str = ""
    """An explainer checkpoint whose weights start the network (same arch, width, observations and
    actions; a refinement head it lacks starts at zero, so training begins from its maps)."""
    reference: str = "background"
    """Overlay reference: background | black | mean | blur."""
    loss: LossConfig = field(default_factory=LossConfig)
    input_noise: float = 0.0
    """Robustness: the explainer sees ``clip(s + U(-ε, ε))`` while its maps are applied to the clean
    ``s``, so nearby states get the same maps (what LLE measures). 0 disables; in [0, 1)."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    batch_size: int = 32
    """States per training step (each goes through the agent 2K times, once per masked state)."""
    epochs: int = 10
    """Epochs in total; raise it with ``resume`` to train a finished run longer."""
    steps_per_epoch: int | None = None
    """Cap on batches per epoch (None: one pass over the training split)."""
    patience: int = 3
    """Epochs without validation improvement before stopping."""
    val_samples: int = 256
    """Validation states scored after every epoch (a seeded sample of the validation split)."""
    val_insertion_steps: int = 20
    """Insertion/deletion steps of the validation metrics."""
    max_minutes: float | None = None
    """Wall-clock budget; training stops (keeping the best checkpoint) when it is spent."""
    checkpoint_every: int = 200
    """Steps between ``last.safetensors`` writes within an epoch."""
    seed: int = 0
    """Seed of the weights, the batch order and the validation sample."""
    resume: bool = False
    """Continue the run in ``out`` from ``last.safetensors`` with the run's settings: only ``epochs``
    (to train longer), ``patience``, ``max_minutes``, ``checkpoint_every``, ``device``,
    ``channels_last``, ``out`` and ``agent`` (a moved file; still checked against the dataset) may
    change (:data:`RESUMABLE_FIELDS`), any other difference is refused; the number of torchrun
    processes may change too. Without a saved state, a new run starts."""
    overwrite: bool = False
    """Start a new run in ``out`` even though it holds another run's checkpoints: its
    ``explainer.safetensors``, ``last.safetensors`` and ``log.jsonl`` are deleted when training starts."""
    device: str = "cpu"
    """cpu | cuda | cuda:N | auto (CUDA when available). Under ``torchrun`` with CUDA each process
    takes ``cuda:LOCAL_RANK``."""
    precision: str = "fp32"
    """fp32 | bf16: bf16 runs the explainer and the agent's masked-state passes of each training
    step under ``torch.autocast`` (bfloat16 convolutions, float32 weights, optimiser and loss
    reductions); validation stays float32. Pays off with ``channels_last`` on CPUs with AVX-512 bf16
    (README)."""
    channels_last: bool = False
    """Keep the explainer, the agent and the batches in channels-last (NHWC) memory: the layout
    oneDNN's CPU convolutions and tensor cores prefer. Same results up to float rounding."""

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
        c.flag("refine", self.refine)
        if self.refine and self.arch != "deeplab":
            c.add("refine", "False with arch 'fcn' (the refinement head is deeplab's)", self.refine)
        if not isinstance(self.init, str):
            c.add("init", "a checkpoint path or ''", self.init)
        c.choice("reference", self.reference, REFERENCE_KINDS)
        if isinstance(self.loss, LossConfig):
            loss = self.loss
            c.number("loss.a_max", loss.a_max, low=0, high=1, low_open=True)
            c.choice("loss.area_loss", loss.area_loss, AREA_LOSSES)
            c.number("loss.area_min", loss.area_min, low=0, high=1)
            for name in ("lambda_ne", "lambda_area", "lambda_tv", "lambda_l1", "lambda_del"):
                c.number(f"loss.{name}", getattr(loss, name), low=0)
            c.choice("loss.kind", loss.kind, LOSS_KINDS)
            c.integer("loss.sampled_actions", loss.sampled_actions, 0, what="0: all non-target actions")
            if loss.kind == "stalder" and loss.lambda_del:
                c.add("loss.lambda_del", "0 with loss.kind 'stalder' (its own terms)", loss.lambda_del)
            if loss.kind == "stalder" and loss.sampled_actions:
                c.add(
                    "loss.sampled_actions", "0 with loss.kind 'stalder' (it has no column term)", loss.sampled_actions
                )
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
        c.choice("precision", self.precision, PRECISIONS)
        c.flag("channels_last", self.channels_last)
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
    """Validation loss and metrics, always in float32 with the full loss (no sampled actions), so
    that runs with and without the speed options are scored alike."""
    data = ds.get(idx, ("obs", "actions"))
    x = ds.obs_format.to_model(data["obs"], device)
    a = torch.as_tensor(data["actions"], device=device)
    exp.net.eval()
    losses = []
    full_loss = replace(cfg.loss, sampled_actions=0)
    with torch.no_grad():
        for i in range(0, len(idx), cfg.batch_size):
            xb, ab = x[i : i + cfg.batch_size], a[i : i + cfg.batch_size]
            loss, _ = visionmask_loss(agent, xb, ab, exp.maps(xb), exp.reference(xb), full_loss)
            losses.append(loss.item() * len(ab))
    res = evaluate_maps(agent, x, a, exp.attribute, exp.reference, n_steps=cfg.val_insertion_steps, with_lle=False)
    out = {f"val/{k}": float(v) for k, v in res.items() if not k.endswith("_curve") and k != "n"}
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
    precision: str = "fp32",
) -> dict[str, float]:
    """One optimiser step of the explainer on a batch; returns the loss terms.

    With ``input_noise`` ε the explainer sees ``clip(x + U(-ε, ε), 0, 1)``, but its maps are applied
    to the clean ``x`` with the clean reference: the agent is queried on
    ``overlay(x, M(noisy x), r(x))``, so the noise asks for maps that are stable under small input
    changes without changing the states they are judged on.

    ``precision="bf16"`` runs the forward passes (explainer, overlay, agent, loss) under bfloat16
    autocast; the backward pass and the optimiser step stay outside it, on float32 weights.
    """
    x_in = x
    if input_noise:
        x_in = (x + (torch.rand_like(x) * 2 - 1) * input_noise).clamp(0, 1)
    cast = torch.autocast(x.device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with cast:
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
        KeyboardInterrupt: on Ctrl-C or SIGTERM, after saving ``last.safetensors``.
    """
    cfg.validate()
    dist = _Dist.from_env(cfg)
    try:
        run = _prepare_run(cfg, agent, dist)
        run.start = time.time() - run.state["seconds"]  # a resumed run's clock goes on from its saved time
        progress = progress and dist.main
        with sigterm_as_interrupt():  # a `kill` saves the state like Ctrl-C
            try:
                with _progress_bar(progress) as bar:
                    while run.state["epoch"] < cfg.epochs:
                        terms, out_of_time = _train_epoch(run, bar)
                        patience_spent = _end_epoch(run, terms, bar if progress else None)
                        if out_of_time or patience_spent:
                            break
            except KeyboardInterrupt:
                run.save_last()
                raise KeyboardInterrupt(
                    f"training interrupted; state saved to {run.last_path}, rerun with --resume"
                ) from None
        dist.barrier()  # the best checkpoint is written before any rank reads it
        seconds = time.time() - run.start
        best = Explainer.load(run.best_path)
        best.to(run.device)
    finally:
        try:
            dist.close()
        finally:
            if cfg.channels_last and agent is not None:
                agent.to(memory_format=torch.contiguous_format)  # the caller's agent goes back to the default layout
    return TrainResult(best, run.best_path, run.state["history"], seconds, run.state["samples"] / max(seconds, 1e-9))


@dataclass
class _Dist:
    """This process's place in a ``torchrun`` job: rank 0 of 1 when not started by torchrun.

    ``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :meth:`from_env` then joins the
    process group (gloo on CPU, NCCL on CUDA) unless the caller already did.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False
    """Whether this job started the process group (and so ends it)."""

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates, decides and writes the run folder."""
        return self.rank == 0

    @classmethod
    def from_env(cls, cfg: TrainConfig) -> _Dist:
        """Read torchrun's environment and join its process group (checks the settings first).

        Raises:
            ConfigError: settings that cannot be split over the processes.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        c = SettingChecks(f"train (torchrun, {world} processes)")
        if cfg.batch_size % world:
            c.add(
                "batch_size",
                f"a multiple of the {world} processes (it is the batch of all processes together)",
                cfg.batch_size,
                f"use --batch-size {max(world, cfg.batch_size // world * world)}",
            )
        if cfg.device.startswith("cuda:"):
            c.add("device", "'cuda' or 'auto' under torchrun (each process takes cuda:LOCAL_RANK)", cfg.device)
        c.raise_if_any()
        import torch.distributed as td

        owns = not td.is_initialized()
        if owns:
            cuda = resolve_device(cfg.device).startswith("cuda")
            if cuda:
                torch.cuda.set_device(local_rank)
            td.init_process_group("nccl" if cuda else "gloo")
        return cls(rank, world, local_rank, owns)

    def device(self, cfg: TrainConfig) -> torch.device:
        """This process's device: ``cuda:LOCAL_RANK`` for a CUDA run under torchrun."""
        name = resolve_device(cfg.device)
        return torch.device(f"cuda:{self.local_rank}" if name == "cuda" and self.world > 1 else name)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (``obj`` itself in a one-process run)."""
        if self.world == 1:
            return obj
        import torch.distributed as td

        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as td

            td.barrier()

    def close(self) -> None:
        if self.owns_group:
            import torch.distributed as td

            td.destroy_process_group()
            self.owns_group = False


@dataclass
class _Run:
    """What one training run works with: built by :func:`_prepare_run`, advanced by the epoch steps."""

    cfg: TrainConfig
    device: torch.device
    ds: Dataset
    agent: Any
    train_idx: np.ndarray
    val_idx: np.ndarray
    """The (sub-sampled) validation states."""
    steps_per_epoch: int
    reference: Reference
    exp: Explainer
    opt: torch.optim.Optimizer
    model: torch.nn.Module
    """What the training step calls: ``exp.net``, wrapped in DistributedDataParallel under torchrun."""
    dist: _Dist
    inputs: dict[str, str]
    """The agent's hash and the dataset's id (:func:`_run_inputs`), saved with the state."""
    state: dict[str, Any] = field(
        default_factory=lambda: {
            "epoch": 0,
            "step_in_epoch": 0,
            "best": None,
            "bad_epochs": 0,
            "history": [],
            "seconds": 0.0,
            "samples": 0,
        }
    )
    """Saved in ``last.safetensors`` with the weights: where the run is (epoch, step in it), the best
    validation loss, epochs without improvement, the history, seconds and samples so far."""
    start: float = 0.0
    """``time.time()`` at which the run would have started, had it never stopped."""

    @property
    def last_path(self) -> Path:
        return Path(self.cfg.out) / "last.safetensors"

    @property
    def best_path(self) -> Path:
        return Path(self.cfg.out) / "explainer.safetensors"

    @property
    def log_path(self) -> Path:
        return Path(self.cfg.out) / "log.jsonl"

    def seconds(self) -> float:
        return time.time() - self.start

    def save_last(self) -> None:
        """Write ``last.safetensors`` (atomically) with the time spent so far (rank 0 only)."""
        self.state["seconds"] = self.seconds()
        if self.dist.main:
            _save_last(self.last_path, self.exp, self.opt, {**self.state, **self.inputs}, self.cfg)


def _prepare_run(cfg: TrainConfig, agent: Any, dist: _Dist | None = None) -> _Run:
    """Check the settings and the run folder, load the data and the agent, build the explainer and
    its optimiser; then restore the saved state (resume) or clear the folder (a new run).

    Under torchrun every rank does the same (same seed, same weights, same saved state); only rank 0
    clears or writes the folder, and the ranks meet before training starts.
    """
    cfg.validate()
    dist = dist or _Dist()
    out = Path(cfg.out)
    saved_state = _check_run_folder(cfg, out)
    ensure_writable_folder(out)
    torch.manual_seed(cfg.seed)  # before the agent and the explainer are built: both draw initial weights
    device = dist.device(cfg)
    ds, agent = _load_data_and_agent(cfg, agent, device)
    inputs = _run_inputs(agent, ds)
    if saved_state is not None:
        _check_same_inputs(out, saved_state[1], inputs)
    _check_sampled_actions(cfg, ds)
    train_idx, val_idx, steps_per_epoch = _splits(cfg, ds)
    exp, reference = _build_explainer(cfg, ds, device, warm_start=saved_state is None)
    if cfg.channels_last:
        exp.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        agent.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(exp.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model: torch.nn.Module = exp.net
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # other ranks draw other input noise and action samples; rank 0 keeps a 1-process run's stream
        torch.manual_seed(cfg.seed + 7919 * dist.rank)
    run = _Run(cfg, device, ds, agent, train_idx, val_idx, steps_per_epoch, reference, exp, opt, model, dist, inputs)
    if saved_state is not None:
        tensors, meta = saved_state
        _load_last(run.last_path, tensors, meta, exp, opt)
        run.state.update({k: v for k, v in meta.items() if k in run.state})
    elif dist.main:
        # a new run: _check_run_folder allowed this only if nothing is there or overwrite was asked
        for stale in (run.best_path, run.last_path, run.log_path):
            stale.unlink(missing_ok=True)
    if dist.world > 1:
        # wraps after the saved weights are in; DDP also copies rank 0's weights to every rank
        run.model = DistributedDataParallel(exp.net, device_ids=[device.index] if device.type == "cuda" else None)
        dist.barrier()
    return run


def _run_inputs(agent: Any, ds: Dataset) -> dict[str, str]:
    """What a run is trained on, saved with its state: the agent's weight hash and the dataset's id."""
    from vmask_live.pairing import agent_hash

    return {"agent_hash": agent_hash(agent), "dataset_id": ds.identity}


def _check_same_inputs(out: Path, meta: dict[str, Any], inputs: dict[str, str]) -> None:
    """Refuse to resume a run made for another agent or dataset (its files may have been replaced
    under the same paths): the saved weights, optimiser and best loss would carry over silently."""
    diffs = [
        f"{key} {meta[key]} (run) vs {value} (given)"
        for key, value in inputs.items()
        if meta.get(key) is not None and meta[key] != value  # states saved before these were recorded: not checked
    ]
    if diffs:
        raise ConfigError(
            f"Cannot resume the run in {str(out)!r}: it was trained with another agent or dataset ({'; '.join(diffs)}); "
            "resuming would continue an explainer of other inputs. Start a new run with another --out (or --overwrite), "
            "or pass the agent and dataset the run was made with."
        )


def _check_sampled_actions(cfg: TrainConfig, ds: Dataset) -> None:
    """``loss.sampled_actions`` against the dataset's K: fewer than K-1, or it is the full loss."""
    n, k = cfg.loss.sampled_actions, ds.n_actions
    if n and n >= k - 1:
        raise ConfigError(
            f"Invalid train settings (1):\n  loss.sampled_actions: expected at most {k - 2} for {ds.env!r} "
            f"({k} actions: sampling all {k - 1} non-target actions is the full loss), got {n}; "
            "use --sampled-actions 0 for the full loss"
        )


def _load_data_and_agent(cfg: TrainConfig, agent: Any, device: torch.device) -> tuple[Dataset, Any]:
    """The dataset and the frozen agent, which must be the agent that collected it."""
    from vmask_live.agents import load_agent
    from vmask_live.pairing import agent_hash

    ds = Dataset(cfg.data)
    agent = (agent if agent is not None else load_agent(cfg.agent)).to(device).freeze()
    if agent_hash(agent) != ds.manifest["agent_hash"]:
        raise DatasetError(
            f"Dataset {cfg.data!r} was collected with agent {ds.manifest['agent_hash']}, but the given agent "
            f"hashes to {agent_hash(agent)}; VisionMask must be trained against the agent that made the data"
        )
    if agent.n_actions != ds.n_actions:
        raise DatasetError(f"Agent has {agent.n_actions} actions, dataset {ds.n_actions}")
    ds.check_agent_outputs(agent)
    return ds, agent


def _splits(cfg: TrainConfig, ds: Dataset) -> tuple[np.ndarray, np.ndarray, int]:
    """Training states, the (seeded sample of) validation states, and the batches per epoch."""
    train_idx, val_idx = ds.split("train"), ds.split("val")
    steps_per_epoch = len(train_idx) // cfg.batch_size
    if cfg.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.steps_per_epoch)
    if steps_per_epoch == 0:
        raise DatasetError(f"Training split has {len(train_idx)} states, fewer than one batch of {cfg.batch_size}")
    rng = np.random.default_rng(cfg.seed)
    if len(val_idx) > cfg.val_samples:
        val_idx = np.sort(rng.choice(val_idx, cfg.val_samples, replace=False))
    return train_idx, val_idx, steps_per_epoch


def _build_explainer(
    cfg: TrainConfig, ds: Dataset, device: torch.device, warm_start: bool = True
) -> tuple[Explainer, Reference]:
    """A fresh explainer for the dataset's observations and actions, with its overlay reference;
    started from ``cfg.init`` when given and ``warm_start`` (a new run: a resumed one loads its
    own saved weights instead)."""
    background, mean = ds.statistics()
    c, h, w = ds.obs_format.chw
    reference = Reference.from_data(cfg.reference, background, mean, height=h)
    arch_kwargs: dict[str, Any] = {
        "in_channels": c,
        "n_actions": ds.n_actions,
        "input_size": [h, w],
        "width": cfg.width,
    }
    if cfg.refine:
        arch_kwargs["refine"] = True
    net = build_explainer(cfg.arch, **arch_kwargs)
    if cfg.init and warm_start:
        _warm_start(net, cfg, arch_kwargs, ds)
    net = net.to(device)
    exp = Explainer(
        net,
        cfg.arch,
        arch_kwargs,
        ds.obs_format,
        reference.to(device),
        ds.action_names,
        {"train_config": json.loads(json.dumps(asdict(cfg))), "env": ds.env, "agent_hash": ds.manifest["agent_hash"]},
    )
    return exp, reference


def _warm_start(net: torch.nn.Module, cfg: TrainConfig, arch_kwargs: dict[str, Any], ds: Dataset) -> None:
    """Load ``cfg.init``'s weights into ``net``: the same network but for a refinement head, which
    keeps its zero start.

    Raises:
        ConfigError: the checkpoint is another architecture, width, observation format or action count.
    """
    from vmask_live.explainer import load_explainer

    init = load_explainer(cfg.init, backend="none")
    theirs = {k: v for k, v in init.arch_kwargs.items() if k != "refine"}
    ours = {k: v for k, v in arch_kwargs.items() if k != "refine"}
    problems = []
    if init.arch != cfg.arch or theirs != ours:
        problems.append(f"network {init.arch} {theirs}, this run builds {cfg.arch} {ours}")
    if init.obs_format != ds.obs_format:
        problems.append(f"observations {init.obs_format.describe()}, the dataset has {ds.obs_format.describe()}")
    if problems:
        raise ConfigError(
            f"--init {cfg.init!r} cannot start this run: " + "; ".join(problems) + "; pass the matching --arch/--width "
            "or leave out --init"
        )
    state = init.net.state_dict()
    missing, unexpected = net.load_state_dict(state, strict=False)
    bad = [k for k in missing if not k.startswith("refine.")] + list(unexpected)
    if bad:
        raise ConfigError(f"--init {cfg.init!r}: its weights do not fit this network ({', '.join(bad[:4])} ...)")


def _progress_bar(enabled: bool) -> Progress:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    cols = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[terms]}"),
    ]
    return Progress(*cols, disable=not enabled, transient=False)


def _train_epoch(run: _Run, bar: Progress) -> tuple[dict[str, float], bool]:
    """Train the current epoch from ``step_in_epoch`` on, writing ``last.safetensors`` every
    ``checkpoint_every`` steps.

    Returns:
        The mean of each loss term over the steps taken, and whether the time budget ran out.
    """
    cfg, state, ds = run.cfg, run.state, run.ds
    epoch, first = state["epoch"], state["step_in_epoch"]
    # seeded by epoch, so a resumed epoch continues the same order
    perm = np.random.default_rng(cfg.seed + epoch).permutation(run.train_idx)
    task = bar.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=run.steps_per_epoch, completed=first, terms="")
    run.exp.net.train()
    sums: dict[str, float] = {}
    out_of_time = False
    dist = run.dist
    for step in range(first, run.steps_per_epoch):
        # under torchrun each rank reads and trains on its own share of the batch
        idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size][dist.rank :: dist.world]
        batch = ds.get(idx, ("obs", "actions"))
        x = ds.obs_format.to_model(batch["obs"], run.device)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        a = torch.as_tensor(batch["actions"], device=run.device)
        terms = train_step(run.model, run.agent, x, a, run.reference, cfg.loss, run.opt, cfg.input_noise, cfg.precision)
        if not np.isfinite(terms["loss/total"]):
            raise TrainingDiverged(
                f"The loss became {terms['loss/total']} at epoch {epoch + 1}, step {step + 1}: training diverged "
                f"and the weights are no longer finite. Nothing of this step was saved; {run.best_path} holds the "
                f"best finite explainer so far and {run.last_path} the last saved state (--resume goes on from "
                "it). Retrain with a lower --lr, or --precision fp32"
            )
        state["samples"] += cfg.batch_size
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.update(
            task,
            completed=step + 1,
            terms=" ".join(f"{k.split('/')[1]}={v / (step + 1 - first):.3f}" for k, v in sums.items()),
        )
        state["step_in_epoch"] = step + 1
        if (step + 1) % cfg.checkpoint_every == 0:
            run.save_last()
        if cfg.max_minutes and dist.broadcast(run.seconds() > 60 * cfg.max_minutes):  # rank 0's clock
            out_of_time = True
            break
    n_steps = max(1, state["step_in_epoch"] - first)
    return {k: v / n_steps for k, v in sums.items()}, out_of_time


def _validate_epoch(run: _Run, terms: dict[str, float]) -> dict[str, Any]:
    """The epoch's log row: its mean training losses and the validation metrics."""
    epoch = run.state["epoch"]
    row = {"epoch": epoch + 1, "steps": run.state["step_in_epoch"], **terms}
    row.update(_validate(run.exp, run.agent, run.ds, run.val_idx, run.cfg, run.device))
    row["charts/seconds"] = round(run.seconds(), 1)
    return row


def _log_epoch(run: _Run, row: dict[str, Any], bar: Progress | None) -> None:
    """Record the row in the history and ``log.jsonl``; print a summary line (``bar``: where)."""
    run.state["history"].append(row)
    with run.log_path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    if bar is not None:
        bar.console.print(
            f"epoch {row['epoch']}: val loss {row['val/loss']:.3f} acc {row['val/accuracy']:.1f} "
            f"ins {row['val/insertion']:.1f} del {row['val/deletion']:.1f}"
        )


def _end_epoch(run: _Run, terms: dict[str, float], bar: Progress | None) -> bool:
    """Validate, log and checkpoint the epoch; returns whether patience is spent (stop early).

    Under torchrun rank 0 does all of it and broadcasts its log row and decision: every rank keeps
    the same history and stops at the same epoch.
    """
    if run.dist.main:
        row = _validate_epoch(run, terms)
        _log_epoch(run, row, bar)
        patience_spent = _checkpoint_epoch(run, row)
        return bool(run.dist.broadcast((row, patience_spent))[1])
    row, patience_spent = run.dist.broadcast(None)
    run.state["history"].append(row)
    run.state["epoch"], run.state["step_in_epoch"] = run.state["epoch"] + 1, 0
    return bool(patience_spent)


def _checkpoint_epoch(run: _Run, row: dict[str, Any]) -> bool:
    """Keep the best explainer, move on to the next epoch and save the state.

    Returns:
        Whether validation has not improved for ``patience`` epochs (stop early).
    """
    state, epoch = run.state, run.state["epoch"]
    patience_spent = False
    if state["best"] is None or row["val/loss"] < state["best"]:
        state["best"], state["bad_epochs"] = row["val/loss"], 0
        run.exp.save(run.best_path, {"val_metrics": row, "epoch": epoch + 1})
    else:
        state["bad_epochs"] += 1
        patience_spent = state["bad_epochs"] >= run.cfg.patience
    state["epoch"], state["step_in_epoch"] = epoch + 1, 0
    run.save_last()
    return patience_spent
