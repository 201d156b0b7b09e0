"""Low-latency explainer inference: one runtime API over TensorRT, ONNX Runtime and torch.

``load_explainer(spec, backend="auto")`` (also ``vm.load_explainer``) is the one loader that
picks a backend: it returns a :class:`~vmask_live.export.runtime.Runtime`, a callable
``raw observation batch -> (B, K, H, W)`` maps with the explainer's contract
(:class:`~vmask_live.types.SaliencyExplainer`), or the plain ``Explainer`` with ``backend="none"``.
``load_runtime(explainer, backend=...)`` is the same for an explicit runtime, with the artifact
knobs (static batch size, precision, a named artifact).
``auto`` picks TensorRT when CUDA and torch-tensorrt are present, else ONNX Runtime (a default
dependency: the fast path on a laptop CPU), else eager torch. Artifacts are exported on first use
and cached under ``$VMASK_LIVE_CACHE`` (default ``~/.cache/vmask-live``), keyed by the SHA-256
of the weights, so a retrained checkpoint never reuses a stale artifact
(:func:`default_artifact_path` names them).

Each backend module (``torch_backend``, ``onnx_backend``, ``tensorrt_backend``) has the same
``available()``, ``export(explainer, path, batch_size, precision, device)`` and
``load(path, explainer, device)`` functions, and ``SUFFIX`` (the artifact's file suffix) and
``PRECISIONS`` (what it can build: fp16 is TensorRT's alone) constants.
"""

from __future__ import annotations

from vmask_live.export.runtime import (
    BACKENDS,
    BackendUnavailable,
    Runtime,
    available_backends,
    cache_dir,
    default_artifact_path,
    export_explainer,
    load_explainer,
    load_runtime,
    resolve_backend,
)

__all__ = [
    "BACKENDS",
    "BackendUnavailable",
    "Runtime",
    "available_backends",
    "cache_dir",
    "default_artifact_path",
    "export_explainer",
    "load_explainer",
    "load_runtime",
    "resolve_backend",
]
