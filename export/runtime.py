"""Backend choice, artifact cache and the :class:`Runtime` callable shared by all backends."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vmask_live.errors import BackendUnavailable
from vmask_live.explainer import Explainer

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "Runtime",
    "available_backends",
    "resolve_backend",
    "export_explainer",
    "load_runtime",
    "cache_dir",
]

BACKENDS = ("tensorrt", "onnx", "torch", "torch-compile")
_MODULES = {
    "tensorrt": "tensorrt_backend",
    "onnx": "onnx_backend",
    "torch": "torch_backend",
    "torch-compile": "torch_backend",
}
_INSTALL = {
    "tensorrt": 'pip install "vmask-live[tensorrt]" (needs an NVIDIA GPU with CUDA)',
    "onnx": 'pip install "vmask-live[onnx]" (onnx, onnxscript, onnxruntime)',
    "torch": "pip install torch",
    "torch-compile": "pip install torch",
}


def _module(backend: str):
    return importlib.import_module(f"vmask_live.export.{_MODULES[backend]}")


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"Expected device 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable("device='cuda' was asked for but torch sees no CUDA GPU")
    return device


def available_backends(device: str = "auto") -> list[str]:
    """Backends that can run on ``device`` here, best first."""
    device = _resolve_device(device)
    return [b for b in BACKENDS if _module(b).available(device)]


def resolve_backend(backend: str, device: str = "auto") -> tuple[str, str]:
    """``auto`` -> the best available backend; a named one is checked (clear error when missing)."""
    device = _resolve_device(device)
    if backend == "auto":
        for b in ("tensorrt", "onnx", "torch"):
            if _module(b).available(device):
                return b, device
    if backend not in BACKENDS:
        raise ValueError(f"Expected backend in {('auto',) + BACKENDS}, got {backend!r}")
    if not _module(backend).available(device):
        reason = getattr(_module(backend), "unavailable_reason", lambda d: "")(device)
        raise BackendUnavailable(
            f"Backend {backend!r} is not available on {device}{': ' + reason if reason else ''}; "
            f"install it with `{_INSTALL[backend]}`"
        )
    return backend, device


def cache_dir() -> Path:
    return Path(os.environ.get("VMASK_LIVE_CACHE", Path.home() / ".cache" / "vmask-live"))


def _artifact_name(exp: Explainer, backend: str, batch_size: int | None, precision: str) -> str:
    batch = "dyn" if batch_size is None else f"b{batch_size}"
    return f"{exp.weights_hash()[:16]}-{backend}-{batch}-{precision}{_module(backend).SUFFIX}"


def export_explainer(
    exp: Explainer,
    backend: str,
    out: str | os.PathLike | None = None,
    *,
    batch_size: int | None = None,
    precision: str = "fp32",
    device: str = "auto",
) -> Path:
    """Compile ``exp`` for ``backend`` and write the artifact plus a JSON sidecar.

    The sidecar records the weights hash, input shape, batch size, precision and backend; loading
    refuses an artifact whose hash does not match the explainer it is used with.
    """
    backend, device = resolve_backend(backend, device)
    mod = _module(backend)
    if not mod.SUFFIX:
        raise ValueError(f"Backend {backend!r} has nothing to export; it runs the checkpoint directly")
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"Expected precision 'fp32' or 'fp16', got {precision!r}")
    path = Path(out) if out is not None else cache_dir() / _artifact_name(exp, backend, batch_size, precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{mod.SUFFIX}")
    mod.export(exp, tmp, batch_size=batch_size, precision=precision, device=device)
    os.replace(tmp, path)
    sidecar = {
        "backend": backend,
        "weights_hash": exp.weights_hash(),
        "input_shape": list(exp.obs_format.chw),
        "batch_size": batch_size,
        "precision": precision,
        "device": device,
        "torch": torch.__version__,
        "checkpoint": str(exp.path) if exp.path else None,
    }
    path.with_name(path.name + ".json").write_text(json.dumps(sidecar, indent=1))
    return path


class Runtime:
    """An explainer ready for inference on one backend.

    Call it on raw observation batches ``(B, *obs_shape)`` (numpy, as envs give them); returns
    ``(B, K, H, W)`` float32 maps in [0, 1]. ``maps(x)`` takes model-space tensors instead.
    Attributes mirror :class:`~vmask_live.explainer.Explainer` (``n_actions``, ``obs_format``,
    ``action_names``, ``reference``, ``explainer``) plus ``backend`` and ``device``.
    """

    def __init__(
        self,
        exp: Explainer,
        fn: Callable[[np.ndarray], np.ndarray],
        backend: str,
        device: str,
        artifact: Path | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.explainer = exp
        self._fn = fn
        self.backend = backend
        self.device = device
        self.artifact = artifact
        self.batch_size = batch_size

    n_actions = property(lambda self: self.explainer.n_actions)
    obs_format = property(lambda self: self.explainer.obs_format)
    action_names = property(lambda self: self.explainer.action_names)
    reference = property(lambda self: self.explainer.reference)

    def maps_numpy(self, x: np.ndarray) -> np.ndarray:
        """Model-space float32 ``(B, C, H, W)`` -> maps, respecting a static engine batch size."""
        if self.batch_size is None or x.shape[0] == self.batch_size:
            return self._fn(x)
        outs = []
        for i in range(0, x.shape[0], self.batch_size):
            chunk = x[i : i + self.batch_size]
            n = chunk.shape[0]
            if n < self.batch_size:  # pad the last chunk to the engine's static batch
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - n, 0)])
            outs.append(self._fn(chunk)[:n])
        return np.concatenate(outs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.obs_format.check(obs, batched=True)
        x = self.obs_format.to_model(obs).numpy()
        return self.maps_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Saliency-method interface on model-space tensors -> ``(B, H, W)``."""
        m = torch.from_numpy(self.maps_numpy(x.detach().cpu().float().numpy()))
        return m[torch.arange(m.shape[0]), actions.cpu()].to(x.device)

    def __repr__(self) -> str:
        return f"Runtime(backend={self.backend!r}, device={self.device!r}, K={self.n_actions})"


def _read_sidecar(path: Path) -> dict[str, Any]:
    side = path.with_name(path.name + ".json")
    if not side.exists():
        raise FileNotFoundError(f"Artifact {str(path)!r} has no metadata sidecar {side.name!r}; re-export it")
    return json.loads(side.read_text())


def load_runtime(
    spec: str | os.PathLike | Explainer,
    backend: str = "auto",
    device: str = "auto",
    *,
    batch_size: int | None = None,
    precision: str = "fp32",
    artifact: str | os.PathLike | None = None,
) -> Runtime:
    """Load an explainer for inference on the best (or the named) backend.

    Args:
        spec: an :class:`Explainer`, a checkpoint path or ``"default:NAME"``.
        backend: ``auto`` | ``tensorrt`` | ``onnx`` | ``torch`` | ``torch-compile``.
        device: ``auto`` | ``cpu`` | ``cuda``.
        batch_size: static batch for engines that need one (TensorRT); None = dynamic.
        precision: ``fp32`` or ``fp16`` (TensorRT).
        artifact: a previously exported artifact to use instead of the cache.
    """
    if isinstance(spec, Explainer):
        exp = spec
    else:
        from vmask_live.explainer import load_explainer

        exp = load_explainer(spec, backend="none")
    backend, device = resolve_backend(backend, device)
    mod = _module(backend)
    if backend == "tensorrt" and batch_size is None:
        batch_size = 1
    art: Path | None = None
    if mod.SUFFIX:
        art = Path(artifact) if artifact else cache_dir() / _artifact_name(exp, backend, batch_size, precision)
        if art.exists():
            side = _read_sidecar(art)
            if side["weights_hash"] != exp.weights_hash():
                if artifact:
                    raise ValueError(
                        f"Artifact {str(art)!r} was exported from other weights "
                        f"({side['weights_hash'][:12]} != {exp.weights_hash()[:12]}); re-export it"
                    )
                art.unlink()
        if not art.exists():
            export_explainer(exp, backend, art, batch_size=batch_size, precision=precision, device=device)
    fn = mod.load(art, exp, device=device, compile=(backend == "torch-compile"))
    return Runtime(exp, fn, backend, device, art, batch_size if backend == "tensorrt" else None)
