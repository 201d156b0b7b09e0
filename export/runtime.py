"""Backend choice, artifact cache and the :class:`Runtime` callable shared by all backends.

Artifacts are loaded only when we wrote them: :func:`export_explainer` records the artifact
file's own SHA-256 (with the weights hash) in a JSON sidecar, and :func:`load_runtime` checks both
before handing the file to a backend, because loading runs code from it (a TensorRT ``.ep`` is
reloaded with ``torch.export.load``, which un-pickles). A cached artifact that fails a check, or
that a backend cannot load (e.g. truncated bytes), is deleted and rebuilt; an artifact the caller
names (``artifact=``, written by ``vmask-live export --out``) is refused instead, with the fix.

:func:`load_explainer` is the one loader that picks a backend (``vm.load_explainer`` is it);
:class:`Runtime` reuses the core's :class:`~vmask_live.explainer.ExplainerBase`, so it has the
same ``__call__`` / ``attribute`` as the plain ``Explainer``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from vmask_live.atomic import atomic_path, atomic_write_text
from vmask_live.errors import BackendUnavailable, CheckpointError, ConfigError, UnsafeFileError
from vmask_live.explainer import Explainer, ExplainerBase
from vmask_live.observations import ObsFormat
from vmask_live.overlay import Reference
from vmask_live.types import ExplainerSpec, ModelBatch, SaliencyExplainer, missing_members

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "Runtime",
    "available_backends",
    "resolve_backend",
    "export_explainer",
    "load_runtime",
    "load_explainer",
    "default_artifact_path",
    "cache_dir",
]

BACKENDS = ("tensorrt", "onnx", "torch", "torch-compile")
_MODULES = {
    "tensorrt": "tensorrt_backend",
    "onnx": "onnx_backend",
    "torch": "torch_backend",
    "torch-compile": "torch_backend",
}
_RUNS = {"tensorrt": "TensorRT", "onnx": "ONNX Runtime", "torch": "eager torch", "torch-compile": "torch.compile"}
_INSTALL = {
    "tensorrt": 'pip install "vmask-live[tensorrt]" (needs an NVIDIA GPU with CUDA)',
    "onnx": 'pip install "vmask-live[onnx]" (onnx, onnxscript, onnxruntime)',
    "torch": "pip install torch",
    "torch-compile": "pip install torch",
}


def _module(backend: str) -> ModuleType:
    return importlib.import_module(f"vmask_live.export.{_MODULES[backend]}")


def _resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"Expected device 'auto', 'cpu' or 'cuda', got {device!r}")
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
        raise ConfigError(f"Expected backend in {('auto',) + BACKENDS}, got {backend!r}")
    if not _module(backend).available(device):
        reason = getattr(_module(backend), "unavailable_reason", lambda d: "")(device)
        raise BackendUnavailable(
            f"Backend {backend!r} is not available on {device}{': ' + reason if reason else ''}; "
            f"install it with `{_INSTALL[backend]}`"
        )
    return backend, device


def cache_dir() -> Path:
    return Path(os.environ.get("VMASK_LIVE_CACHE", Path.home() / ".cache" / "vmask-live"))


def check_precision(backend: str, precision: str) -> None:
    """Refuse a precision ``backend`` cannot build, so no artifact or sidecar claims one it lacks.

    Raises:
        ConfigError: ``precision`` is not in the backend module's ``PRECISIONS``.
    """
    allowed = _module(backend).PRECISIONS
    if precision in allowed:
        return
    fix = (
        f"{_RUNS[backend]} runs fp32 only here; use the TensorRT backend for fp16 (backend='tensorrt', "
        "`vmask-live export --backend tensorrt --precision fp16`, needs an NVIDIA GPU), or drop the precision"
        if precision == "fp16"
        else f"use one of {allowed}"
    )
    raise ConfigError(
        f"Expected precision {' or '.join(map(repr, allowed))} for backend {backend!r}, got {precision!r}: {fix}"
    )


def static_batch(backend: str, batch_size: int | None) -> int | None:
    """The batch size an artifact is built for: TensorRT engines have a static shape (1 unless
    asked otherwise); the other backends take any batch (``None``: dynamic)."""
    return 1 if backend == "tensorrt" and batch_size is None else batch_size


def default_artifact_path(
    exp: Explainer,
    backend: str,
    batch_size: int | None = None,
    precision: str = "fp32",
    *,
    beside_checkpoint: bool = False,
) -> Path:
    """Where the artifact of ``exp`` for ``backend`` goes when the caller names none.

    The cache entry ``cache_dir()/<weights hash>-<backend>-<dyn|bN>-<precision><suffix>`` (keyed
    by the weights, so a retrained checkpoint never reuses a stale artifact), or with
    ``beside_checkpoint`` (``vmask-live export``) ``<checkpoint stem>.<backend>-<dyn|bN>-<precision><suffix>``
    next to the checkpoint it was loaded from (the cache when it was not loaded from a file).

    Raises:
        ConfigError: ``backend`` is not one of :data:`BACKENDS` (resolve ``auto`` first).
    """
    batch_size = static_batch(backend, batch_size)
    if backend not in BACKENDS:
        raise ConfigError(f"Expected a concrete backend in {BACKENDS}, got {backend!r}; resolve 'auto' first")
    tag = f"{backend}-{'dyn' if batch_size is None else f'b{batch_size}'}-{precision}{_module(backend).SUFFIX}"
    if beside_checkpoint and exp.path is not None:
        return exp.path.with_name(f"{exp.path.stem}.{tag}")
    return cache_dir() / f"{exp.weights_hash()[:16]}-{tag}"


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

    The sidecar records the artifact file's SHA-256, the weights hash, input shape, batch size,
    precision and backend; :func:`load_runtime` loads the artifact only if its bytes still have
    that SHA-256 and its weights hash matches the explainer it is used with.
    """
    backend, device = resolve_backend(backend, device)
    mod = _module(backend)
    if not mod.SUFFIX:
        raise ConfigError(f"Backend {backend!r} has nothing to export; it runs the checkpoint directly")
    check_precision(backend, precision)
    batch_size = static_batch(backend, batch_size)
    path = Path(out) if out is not None else default_artifact_path(exp, backend, batch_size, precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A per-process temporary name: two processes filling the same cache entry never share a file.
    with atomic_path(path, suffix=mod.SUFFIX, unique=True) as tmp:
        mod.export(exp, tmp, batch_size=batch_size, precision=precision, device=device)
        digest = _file_sha256(tmp)
    sidecar = {
        "backend": backend,
        "sha256": digest,
        "weights_hash": exp.weights_hash(),
        "input_shape": list(exp.obs_format.chw),
        "batch_size": batch_size,
        "precision": precision,
        "device": device,
        "torch": torch.__version__,
        "checkpoint": str(exp.path) if exp.path else None,
    }
    atomic_write_text(_sidecar_path(path), json.dumps(sidecar, indent=1))
    return path


class Runtime(ExplainerBase):
    """An explainer ready for inference on one backend (a :class:`~vmask_live.types.SaliencyExplainer`).

    Call it on raw observation batches ``(B, *obs_shape)`` (numpy, as envs give them); returns
    ``(B, K, H, W)`` float32 maps in [0, 1]. ``maps_numpy(x)`` takes model-space arrays instead.
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

    @property
    def n_actions(self) -> int:
        return self.explainer.n_actions

    @property
    def obs_format(self) -> ObsFormat:  # type: ignore[override]  # read-only: always the checkpoint's
        return self.explainer.obs_format

    @property
    def action_names(self) -> Sequence[str]:
        return self.explainer.action_names

    @property
    def reference(self) -> Reference:
        return self.explainer.reference

    def maps_numpy(self, x: np.ndarray) -> np.ndarray:
        """Model-space float32 ``(B, C, H, W)`` -> maps for any ``B``.

        A static-batch artifact (a TensorRT engine, an ONNX model exported with ``batch_size``)
        runs only its own batch: larger batches go in chunks, and a short (last) chunk is padded
        with copies of its last row whose maps are dropped.
        """
        if self.batch_size is None or x.shape[0] == self.batch_size:
            return self._fn(x)
        outs = []
        for i in range(0, x.shape[0], self.batch_size):
            chunk = x[i : i + self.batch_size]
            n = chunk.shape[0]
            if n < self.batch_size:  # pad the last chunk to the artifact's static batch
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch_size - n, 0)])
            outs.append(self._fn(chunk)[:n])
        return np.concatenate(outs)

    def infer(self, x: ModelBatch) -> torch.Tensor:
        """Model-space tensor -> maps (on the CPU: the backends take and give numpy arrays)."""
        return torch.from_numpy(self.maps_numpy(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)))

    def __repr__(self) -> str:
        return f"Runtime(backend={self.backend!r}, device={self.device!r}, K={self.n_actions})"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _read_sidecar(path: Path) -> dict:
    side = json.loads(_sidecar_path(path).read_text())
    if not isinstance(side, dict):
        raise ValueError(f"a JSON {type(side).__name__}, not an object")
    return side


_CODE_RISK = "loading a file vmask-live cannot vouch for could run code from it"
_MAPS_RISK = "its maps would not be this explainer's"
_CLAIM_RISK = "its sidecar does not describe the model in it"


def _artifact_problem(path: Path, exp: Explainer, backend: str) -> tuple[type[Exception], str, str] | None:
    """Why ``path`` must not be loaded for ``exp`` (error class, reason, risk), or None when it is ours and current."""
    side_path = _sidecar_path(path)
    try:
        side = _read_sidecar(path)
    except FileNotFoundError:
        return (
            UnsafeFileError,
            f"it has no metadata sidecar {side_path.name!r}, so nothing says vmask-live wrote it",
            _CODE_RISK,
        )
    except (OSError, ValueError) as err:
        return UnsafeFileError, f"its metadata sidecar {side_path.name!r} is unreadable ({err})", _CODE_RISK
    recorded = side.get("sha256")
    if not isinstance(recorded, str):
        return (
            UnsafeFileError,
            "its sidecar records no SHA-256 of the file (exported by an older vmask-live, or not by vmask-live)",
            _CODE_RISK,
        )
    actual = _file_sha256(path)
    if actual != recorded:
        return (
            UnsafeFileError,
            f"its bytes changed since export (SHA-256 {actual[:12]}… != {recorded[:12]}… recorded): "
            "truncated, corrupted or replaced",
            _CODE_RISK,
        )
    if side.get("backend") not in (None, backend):
        return CheckpointError, f"it was exported for backend {side.get('backend')!r}, not {backend!r}", _MAPS_RISK
    if side.get("weights_hash") != exp.weights_hash():
        return (
            CheckpointError,
            f"it was exported from other weights ({str(side.get('weights_hash'))[:12]} != {exp.weights_hash()[:12]})",
            _MAPS_RISK,
        )
    built_batch = side.get("batch_size")
    if built_batch is not None and (type(built_batch) is not int or built_batch < 1):
        return CheckpointError, f"its sidecar records batch_size {built_batch!r}, not a positive integer", _CLAIM_RISK
    if side.get("precision", "fp32") not in _module(backend).PRECISIONS:
        # older vmask-live wrote "fp16" beside ONNX models that were fp32 throughout
        return (
            CheckpointError,
            f"its sidecar claims precision {side.get('precision')!r}, which {backend} artifacts never have "
            "(an older vmask-live recorded the asked precision without converting the model)",
            _CLAIM_RISK,
        )
    return None


def _settings_mismatch(path: Path, batch_size: int | None, precision: str | None) -> list[str]:
    """The asked settings (None: not asked) that differ from those ``path`` was built with."""
    side = _read_sidecar(path)
    built_batch, built_precision = side.get("batch_size"), side.get("precision", "fp32")
    diffs = []
    if batch_size is not None and built_batch != batch_size:
        built = "a dynamic batch" if built_batch is None else f"batch_size={built_batch}"
        diffs.append(f"{built}, asked batch_size={batch_size}")
    if precision is not None and built_precision != precision:
        diffs.append(f"precision={built_precision!r}, asked precision={precision!r}")
    return diffs


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)
    _sidecar_path(path).unlink(missing_ok=True)


def load_runtime(
    spec: str | os.PathLike[str] | Explainer,
    backend: str = "auto",
    device: str = "auto",
    *,
    batch_size: int | None = None,
    precision: str | None = None,
    artifact: str | os.PathLike | None = None,
) -> Runtime:
    """Load an explainer for inference on the best (or the named) backend.

    Args:
        spec: an :class:`Explainer`, a checkpoint path or ``"default:NAME"``.
        backend: ``auto`` | ``tensorrt`` | ``onnx`` | ``torch`` | ``torch-compile``.
        device: ``auto`` | ``cpu`` | ``cuda``.
        batch_size: static batch the artifact is built for (TensorRT: 1 when None; ONNX: dynamic
            when None). The runtime takes any batch either way: it pads or chunks to a static one.
            With an existing ``artifact``, None means the file's own batch size.
        precision: ``fp32`` or ``fp16`` (TensorRT only); None means ``fp32``, or with an existing
            ``artifact`` the file's own precision.
        artifact: a previously exported artifact to use instead of the cache (written by
            :func:`export_explainer` / ``vmask-live export --out``); created there when missing.

    Raises:
        UnsafeFileError: ``artifact`` has no sidecar, no recorded SHA-256, or bytes that no longer
            match it (cache artifacts with these problems are rebuilt instead).
        CheckpointError: ``artifact`` was exported from other weights or for another backend.
        ConfigError: ``artifact`` was built with another ``batch_size`` or ``precision`` than asked,
            or ``precision`` is one the backend cannot build (fp16 on ONNX Runtime or torch).
        BackendUnavailable: the backend cannot run here.
    """
    exp = spec if isinstance(spec, Explainer) else Explainer.load(spec)
    backend, device = resolve_backend(backend, device)
    mod = _module(backend)
    if precision is not None:
        check_precision(backend, precision)
    art: Path | None = None
    reused = False
    if mod.SUFFIX:
        if artifact:
            art = Path(artifact)
        else:
            batch_size, precision = static_batch(backend, batch_size), precision or "fp32"
            art = default_artifact_path(exp, backend, batch_size, precision)
        reused = art.exists()
        if reused:
            problem = _artifact_problem(art, exp, backend)
            if problem is not None and artifact:
                error, why, risk = problem
                raise error(
                    f"Expected an artifact exported by vmask-live for this explainer, got {str(art)!r}: {why}; "
                    f"{risk}, so it is refused. Fix: re-export it with `vmask-live export --explainer CHECKPOINT "
                    f"--backend {backend} --out {art}`, or leave out the artifact to use the (self-checking) cache"
                )
            diffs = [] if problem is not None else _settings_mismatch(art, batch_size, precision)
            if diffs and artifact:
                asked = "".join(
                    f" --{flag} {value}" for flag, value in (("batch", batch_size), ("precision", precision)) if value
                )
                raise ConfigError(
                    f"Expected an artifact built with the asked settings, got {str(art)!r} built with "
                    f"{'; '.join(diffs)}; a static-batch or precision mismatch is refused rather than run "
                    f"silently. Fix: rebuild it with `vmask-live export --explainer CHECKPOINT --backend {backend}"
                    f"{asked} --out {art}`, or drop the batch_size/precision options to run it as it was built"
                )
            if problem is not None or diffs:
                _discard(art)  # our cache entry, stale, damaged or mislabelled: rebuild it
                reused = False
            else:  # the file's own settings: equal to the asked ones where any were asked
                side = _read_sidecar(art)
                batch_size, precision = side.get("batch_size"), side.get("precision", "fp32")
        if not reused:
            batch_size, precision = static_batch(backend, batch_size), precision or "fp32"
            export_explainer(exp, backend, art, batch_size=batch_size, precision=precision, device=device)
    try:
        fn = mod.load(art, exp, device=device, compile=(backend == "torch-compile"))
    except (ImportError, BackendUnavailable):
        raise
    except Exception as err:  # noqa: BLE001 - backends raise their own types for a bad file (ORT: InvalidProtobuf)
        if art is None or artifact or not reused:
            raise
        # The bytes match what we wrote, yet the backend cannot load them (a runtime upgrade, a file
        # damaged before its hash was taken): rebuild once instead of failing on every later run.
        warnings.warn(
            f"Cached {backend} artifact {art.name} could not be loaded ({type(err).__name__}: {str(err)[:200]}); "
            "rebuilding it",
            RuntimeWarning,
            stacklevel=2,
        )
        _discard(art)
        export_explainer(exp, backend, art, batch_size=batch_size, precision=precision or "fp32", device=device)
        fn = mod.load(art, exp, device=device, compile=(backend == "torch-compile"))
    # Any artifact may have a static batch (TensorRT always, ONNX when exported with one): the
    # Runtime pads or chunks to it. The torch backends run the checkpoint itself, any batch.
    return Runtime(exp, fn, backend, device, art, batch_size if art is not None else None)


def load_explainer(spec: ExplainerSpec, *, backend: str = "auto", device: str = "auto") -> SaliencyExplainer:
    """Load an explainer for inference: the one loader that picks a backend (``vm.load_explainer``).

    Args:
        spec: ``"default:NAME"`` (bundled), a checkpoint path, an :class:`Explainer` (compiled for
            ``backend``), or any other :class:`~vmask_live.types.SaliencyExplainer`, e.g. a
            :class:`Runtime` (returned as it is).
        backend: ``"auto"`` (TensorRT on CUDA when installed, else ONNX Runtime, else torch),
            ``"torch"``, ``"torch-compile"``, ``"onnx"``, ``"tensorrt"``, or ``"none"`` for the
            plain :class:`Explainer` (trainable, no runtime wrapper).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        A :class:`~vmask_live.types.SaliencyExplainer`: a :class:`Runtime`, or the plain
        :class:`Explainer` with ``backend="none"``.

    Raises:
        FileNotFoundError: no such checkpoint, or no bundled explainer for NAME.
        CheckpointError: not an explainer checkpoint, or corrupt.
        ConfigError, BackendUnavailable: an unknown backend, or one that cannot run here.

    Example:
        >>> import vmask_live as vm
        >>> vm.load_explainer("default:Beacon", backend="torch", device="cpu")
        Runtime(backend='torch', device='cpu', K=5)
    """
    if isinstance(spec, (str, os.PathLike)):
        spec = Explainer.load(spec)
    if not isinstance(spec, SaliencyExplainer):
        raise ConfigError(
            f"Expected an explainer: a checkpoint path, 'default:NAME', an Explainer or a Runtime, got "
            f"{type(spec).__name__}, which lacks {', '.join(missing_members(spec))} of the SaliencyExplainer "
            "protocol (vmask_live.types); load one with vm.load_explainer(path)"
        )
    if not isinstance(spec, Explainer) or backend == "none":
        return spec  # the plain explainer, or one already ready for inference (a Runtime, a user's own)
    return load_runtime(spec, backend=backend, device=device)
