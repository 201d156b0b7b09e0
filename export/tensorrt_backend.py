"""TensorRT inference through torch-tensorrt (NVIDIA GPUs only).

Engines are built with static shapes per env and batch size (dynamic ``F.interpolate`` sizes do
not compile), with ``ir="dynamo"``, and saved as an ExportedProgram (``.ep``) that reloads
without recompiling. Install with ``pip install "vmask-live[tensorrt]"``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from vmask_live.explainer import Explainer


SUFFIX = ".ep"
PRECISIONS = ("fp32", "fp16")  # fp16 through enabled_precisions: a real fp16 engine


def available(device: str) -> bool:
    return device == "cuda" and torch.cuda.is_available() and importlib.util.find_spec("torch_tensorrt") is not None


def unavailable_reason(device: str) -> str:
    if device != "cuda" or not torch.cuda.is_available():
        return "TensorRT needs an NVIDIA GPU with CUDA, and torch sees none"
    return "torch-tensorrt is not installed"


def export(
    explainer: Explainer, path: Path, batch_size: int | None = 1, precision: str = "fp32", device: str = "cuda"
) -> None:
    import torch_tensorrt

    net = explainer.net.to("cuda").eval()
    c, h, w = explainer.obs_format.chw
    example = torch.rand(batch_size or 1, c, h, w, device="cuda")
    dtypes = {torch.float16} if precision == "fp16" else {torch.float32}
    trt = torch_tensorrt.compile(net, ir="dynamo", inputs=[example], enabled_precisions=dtypes)
    torch_tensorrt.save(trt, str(path), output_format="exported_program", inputs=[example])


def load(
    path: Path, explainer: Explainer, device: str = "cuda", compile: bool = False
) -> Callable[[np.ndarray], np.ndarray]:
    import torch_tensorrt  # noqa: F401 - registers the TensorRT runtime ops needed to load the program

    module = torch.export.load(str(path)).module()

    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        return module(torch.from_numpy(x).to("cuda")).float().cpu().numpy()

    return run
