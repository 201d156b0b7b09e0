"""Checkpoint files: safetensors tensors + one JSON metadata header. Loading never unpickles.

A checkpoint is a single ``.safetensors`` file whose header metadata holds
``{"vmask_live": "<json>"}``; the JSON names the ``format`` (``explainer`` or ``agent``), the
constructor kwargs, shapes, preprocessing and provenance. Writes go to a temporary file in the
same folder and are renamed into place (:mod:`vmask_live.atomic`), so an interrupted save never
leaves a torn file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vmask_live.atomic import atomic_path, atomic_write_text
from vmask_live.errors import CheckpointError

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "read_checkpoint",
    "read_meta",
    "atomic_write_text",
    "tensors_sha256",
]

META_KEY = "vmask_live"


def _non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors that hold a NaN or an infinity."""
    return [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def _names(keys: list[str]) -> str:
    return ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Atomically write ``tensors`` and ``meta`` (JSON-serialisable) to one safetensors file.

    Raises:
        CheckpointError: a tensor holds NaN or infinite values (nothing is written; a file already
            at ``path`` stays as it was).
    """
    path = Path(path)
    bad = _non_finite(tensors)
    if bad:
        raise CheckpointError(
            f"Refusing to write {str(path)!r}: {_names(bad)} hold NaN or infinite values (a diverged "
            "training run?); the file already there, if any, is kept"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})
    return path


def _check_file(path: Path) -> None:
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.safetensors"))
        hint = f"; it holds {', '.join(inside)}" if inside else ""
        raise CheckpointError(
            f"Expected a checkpoint file, got the folder {str(path)!r}{hint}; pass the file itself, "
            f"e.g. {str(path / (inside[0] if inside else 'explainer.safetensors'))!r}"
        )
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist")


def _unreadable(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"Cannot read {str(path)!r} as a safetensors checkpoint ({type(err).__name__}: {err}); the file is "
        "empty, corrupt or truncated, or not a vmask-live checkpoint (SB3 agents are .zip files: pass them "
        "as --agent; pickled torch files are never loaded)"
    )


def _read_header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _unreadable(path, err) from err


def read_meta(path: str | os.PathLike, expect_format: str | None = None) -> dict[str, Any]:
    """A checkpoint's JSON metadata without loading its tensors (``expect_format``: check ``format``).

    Raises:
        CheckpointError: the path is missing, a folder, not a safetensors file, or not ours.
    """
    path = Path(path)
    _check_file(path)
    header = _read_header(path)
    if META_KEY not in header:
        raise CheckpointError(
            f"{str(path)!r} is a safetensors file but not a vmask-live checkpoint (no {META_KEY!r} metadata)"
        )
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{str(path)!r} has corrupt vmask-live metadata: {err}") from err
    if expect_format is not None and meta.get("format") != expect_format:
        raise CheckpointError(
            f"Expected a vmask-live {expect_format} checkpoint, got a {meta.get('format')!r} checkpoint "
            f"in {str(path)!r}"
        )
    return meta


def read_checkpoint(path: str | os.PathLike, expect_format: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint` and check its ``format``."""
    path = Path(path)
    meta = read_meta(path, expect_format)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _unreadable(path, err) from err
    bad = _non_finite(tensors)
    if bad:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} holds NaN or infinite values in {_names(bad)}: its maps or actions "
            "would be meaningless. It comes from a diverged run or was damaged; use an earlier checkpoint "
            "or retrain (a lower --lr, or --precision fp32)"
        )
    return tensors, meta


def load_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str, path: Any) -> None:
    """Load ``prefix``-ed tensors into ``module``, reporting missing and unexpected keys."""
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"Weights in {str(path)!r} do not match the architecture: missing keys "
            f"{result.missing_keys[:5]}{'…' if len(result.missing_keys) > 5 else ''}, unexpected keys "
            f"{result.unexpected_keys[:5]}{'…' if len(result.unexpected_keys) > 5 else ''}"
        )


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """A hash of weights (name, dtype, shape, bytes), independent of file layout."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
