"""A trained VisionMask explainer: network + observation format + reference, saved as one file.

``Explainer`` is callable on raw observation batches (numpy, as envs give them) and returns
``(B, K, H, W)`` float32 maps in [0, 1]. The checkpoint is a safetensors file: weights under
``net.*``, the reference image under ``reference.image``, everything else in JSON metadata
(architecture + kwargs, K, observation format, action names, reference kind, training config,
metrics, package version). It never unpickles.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vmask_live.checkpoint import CheckpointError, load_state, read_checkpoint, save_checkpoint, tensors_sha256
from vmask_live.model import build_explainer
from vmask_live.observations import ObsFormat
from vmask_live.overlay import Reference

__all__ = ["Explainer", "load_explainer"]


class Explainer:
    """Explainer network plus everything needed to use it on env observations.

    Args:
        net: the network (model space ``(B, C, H, W)`` -> ``(B, K, H, W)``).
        arch, arch_kwargs: how to rebuild ``net`` (stored in the checkpoint).
        obs_format: raw observation format it was trained on.
        reference: the overlay reference used in training (and by metrics / counterfactuals).
        action_names: one per map.
        meta: extra metadata (training config, metrics, dataset manifest summary).
    """

    def __init__(
        self,
        net: nn.Module,
        arch: str,
        arch_kwargs: dict[str, Any],
        obs_format: ObsFormat,
        reference: Reference,
        action_names: Sequence[str],
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.net = net
        self.arch = arch
        self.arch_kwargs = dict(arch_kwargs)
        self.obs_format = obs_format
        self.reference = reference
        self.action_names = list(action_names)
        self.meta = dict(meta or {})
        self.path: Path | None = None

    @property
    def n_actions(self) -> int:
        return len(self.action_names)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: torch.device | str) -> Explainer:
        self.net.to(device)
        self.reference.to(device)
        return self

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space states -> maps (differentiable when called in training)."""
        return self.net(x)

    @torch.inference_mode()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Raw observation batch ``(B, *obs_shape)`` -> ``(B, K, H, W)`` float32 in [0, 1]."""
        self.obs_format.check(obs, batched=True)
        self.net.eval()
        return self.net(self.obs_format.to_model(obs, self.device)).float().cpu().numpy()

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Saliency-method interface: model-space states, actions -> ``(B, H, W)``."""
        with torch.inference_mode():
            m = self.net.eval()(x)
        return m[torch.arange(m.shape[0], device=m.device), actions.to(m.device)]

    def tensors(self) -> dict[str, torch.Tensor]:
        t = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        if self.reference.image is not None:
            t["reference.image"] = self.reference.image
        return t

    def weights_hash(self) -> str:
        """SHA-256 of the weights (used to tie exported artifacts to these exact weights)."""
        return tensors_sha256({k: v for k, v in self.net.state_dict().items()})

    def save(self, path: str | os.PathLike, extra_meta: dict[str, Any] | None = None) -> Path:
        from vmask_live import __version__

        meta = {
            "format": "explainer",
            "version": __version__,
            "arch": self.arch,
            "arch_kwargs": self.arch_kwargs,
            "n_actions": self.n_actions,
            "action_names": self.action_names,
            "obs_format": self.obs_format.to_dict(),
            "reference": self.reference.to_meta(),
            **self.meta,
            **(extra_meta or {}),
        }
        self.meta.update(extra_meta or {})
        self.path = save_checkpoint(path, self.tensors(), meta)
        return self.path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Explainer:
        tensors, meta = read_checkpoint(path, "explainer")
        try:
            net = build_explainer(meta["arch"], **meta["arch_kwargs"])
            obs_format = ObsFormat.from_dict(meta["obs_format"])
            ref_meta = meta["reference"]
            action_names = meta["action_names"]
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"Explainer checkpoint {str(path)!r} has incomplete metadata: {err!r}") from err
        load_state(net, tensors, "net.", path)
        reference = Reference(
            ref_meta["kind"], tensors.get("reference.image"), ref_meta.get("blur_kernel"), ref_meta.get("blur_sigma")
        )
        known = {"format", "version", "arch", "arch_kwargs", "n_actions", "action_names", "obs_format", "reference"}
        exp = cls(
            net.eval(),
            meta["arch"],
            meta["arch_kwargs"],
            obs_format,
            reference,
            action_names,
            {k: v for k, v in meta.items() if k not in known},
        )
        exp.path = Path(path)
        return exp


def load_explainer(spec: str | os.PathLike | Explainer, *, backend: str = "auto", device: str = "auto"):
    """Load an explainer for inference.

    Args:
        spec: ``"default:NAME"`` (bundled), a checkpoint path, or an :class:`Explainer`.
        backend: ``"auto"`` (TensorRT on CUDA when installed, else ONNX Runtime, else torch),
            ``"torch"``, ``"onnx"``, ``"tensorrt"``, or ``"none"`` for the plain
            :class:`Explainer` (trainable, no runtime wrapper).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.

    Returns:
        A callable ``raw obs batch -> (B, K, H, W)`` with ``n_actions``, ``obs_format``,
        ``action_names``, ``reference`` and ``explainer`` attributes.
    """
    if isinstance(spec, Explainer):
        exp = spec
    else:
        text = str(spec)
        if text.startswith("default:"):
            from vmask_live.agents import default_path

            path = default_path(text.split(":", 1)[1], "explainer")
        else:
            path = Path(text)
            if not path.exists():
                raise FileNotFoundError(f"Explainer checkpoint {text!r} does not exist")
        exp = Explainer.load(path)
    if backend == "none":
        return exp
    from vmask_live.export import load_runtime

    return load_runtime(exp, backend=backend, device=device)
