"""Eager torch (and ``torch.compile``) inference: the fallback that always works."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vmask_live.errors import ConfigError

if TYPE_CHECKING:
    from vmask_live.explainer import Explainer


SUFFIX = ""  # runs the checkpoint directly, nothing to export
PRECISIONS = ("fp32",)  # the checkpoint as it is


def available(device: str) -> bool:
    return True


def export(
    explainer: Explainer, path: Path, batch_size: int | None = None, precision: str = "fp32", device: str = "cpu"
) -> None:
    raise ConfigError("The torch backend runs the checkpoint itself; there is nothing to export")


def load(
    path: Path | None, explainer: Explainer, device: str = "cpu", compile: bool = False
) -> Callable[[np.ndarray], np.ndarray]:
    net = explainer.net.to(device).eval()
    fn = torch.compile(net, mode="reduce-overhead" if device == "cuda" else "default") if compile else net

    @torch.inference_mode()
    def run(x: np.ndarray) -> np.ndarray:
        return fn(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return run
