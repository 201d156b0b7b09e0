"""ONNX Runtime inference (CPU, or CUDA when onnxruntime-gpu is installed): the default on CPUs."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vmask_live.errors import ConfigError

if TYPE_CHECKING:
    from vmask_live.explainer import Explainer


SUFFIX = ".onnx"
# ONNX Runtime's CPU kernels run this net in fp32; an fp16 request is refused (runtime.check_precision)
# rather than recorded for a model that would still be fp32.
PRECISIONS = ("fp32",)


def available(device: str) -> bool:
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxscript") is None:
        return False
    if device == "cuda":
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers()
    return True


def unavailable_reason(device: str) -> str:
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed"
    if importlib.util.find_spec("onnxscript") is None:
        return "onnxscript (needed by torch.onnx.export) is not installed"
    return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)" if device == "cuda" else ""


def export(
    explainer: Explainer, path: Path, batch_size: int | None = None, precision: str = "fp32", device: str = "cpu"
) -> None:
    """Export with the torch.export-based ONNX exporter; a dynamic batch axis unless ``batch_size``.

    A static ``batch_size`` gives a session that takes exactly that batch;
    :class:`~vmask_live.export.runtime.Runtime` pads or chunks other batches to it.
    """
    if precision not in PRECISIONS:
        raise ConfigError(
            f"Expected precision 'fp32' for ONNX export, got {precision!r}: ONNX Runtime here runs fp32 only; "
            "use the TensorRT backend for fp16 (`vmask-live export --backend tensorrt --precision fp16`)"
        )
    import logging
    import warnings

    # the exporter logs one warning per torchvision op it cannot register; we use none of them
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    net = explainer.net.cpu().eval()
    c, h, w = explainer.obs_format.chw
    example = torch.rand(batch_size or 2, c, h, w)
    dynamic = None if batch_size else {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=["obs"],
            output_names=["maps"],
            dynamic_shapes=dynamic,
            dynamo=True,
            verbose=False,
            external_data=False,
        )


def load(
    path: Path, explainer: Explainer, device: str = "cpu", compile: bool = False
) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # Single-frame inference on a small net: more threads than cores only adds contention.
    opts.intra_op_num_threads = int(os.environ.get("VMASK_LIVE_ORT_THREADS", min(4, os.cpu_count() or 1)))
    # ORT's worker threads spin after each run by default, starving the agent's torch call that
    # follows in the same env step; without spinning an ExplainedEnv step is several ms faster.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(str(path), opts, providers=providers)
    name = sess.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {name: x})[0]

    return run
