"""A trained VisionMask explainer: network + observation format + reference, saved as one file.

``Explainer`` is callable on raw observation batches (numpy, as envs give them) and returns
``(B, K, H, W)`` float32 maps in [0, 1]. The checkpoint is a safetensors file: weights under
``net.*``, the reference image under ``reference.image``, everything else in JSON metadata
(architecture + kwargs, K, observation format, action names, reference kind, training config,
metrics, package version). It never unpickles.

:class:`ExplainerBase` holds what every :class:`~vmask_live.types.SaliencyExplainer` shares
(``__call__`` and ``attribute``) on top of one primitive, ``infer``; the compiled runtimes in
:mod:`vmask_live.export` build on it too. This module only loads the plain ``Explainer``:
choosing an inference backend is :func:`vmask_live.load_explainer` (in ``vmask_live.export``).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vmask_live.checkpoint import CheckpointError, load_state, read_checkpoint, save_checkpoint, tensors_sha256
from vmask_live.errors import ConfigError
from vmask_live.explainer_nets import build_explainer
from vmask_live.observations import ObsFormat
from vmask_live.overlay import Reference
from vmask_live.types import ActionBatch, AttributionBatch, MapBatch, ModelBatch, ObsBatch

__all__ = ["ExplainerBase", "Explainer", "checkpoint_path", "load_explainer"]


class ExplainerBase(ABC):
    """The inference half of :class:`~vmask_live.types.SaliencyExplainer`, shared by all explainers.

    Subclasses provide ``obs_format`` and :meth:`infer` (model-space batch -> maps); this class
    turns it into ``__call__`` on raw observations (checked against ``obs_format``) and the
    saliency-method ``attribute``.
    """

    obs_format: ObsFormat

    @property
    @abstractmethod
    def n_actions(self) -> int:
        """K, the number of maps (one per action)."""

    @property
    def input_device(self) -> torch.device:
        """Where :meth:`__call__` puts the model-space batch it hands to :meth:`infer`."""
        return torch.device("cpu")

    @abstractmethod
    def infer(self, x: ModelBatch) -> torch.Tensor:
        """Model-space states ``(B, C, H, W)`` -> maps ``(B, K, H, W)``, for inference (no gradients)."""

    @torch.inference_mode()
    def __call__(self, obs: ObsBatch) -> MapBatch:
        """Raw observation batch ``(B, *obs_shape)`` -> ``(B, K, H, W)`` float32 in [0, 1]."""
        self.obs_format.check(obs, batched=True)
        return self.infer(self.obs_format.to_model(obs, self.input_device)).float().cpu().numpy()

    def attribute(self, x: ModelBatch, actions: ActionBatch) -> AttributionBatch:
        """Saliency-method interface: model-space states, actions -> ``(B, H, W)`` on ``x``'s device.

        Raises:
            ObservationError: ``x`` is not a model-space batch of :attr:`obs_format` (shape, dtype,
                range, finiteness; see :meth:`ObsFormat.check_model`).
            ConfigError: ``actions`` is not ``B`` integer actions in ``[0, K)``.
        """
        self.obs_format.check_model(x)
        check_actions(actions, x.shape[0], self.n_actions)
        with torch.inference_mode():
            m = self.infer(x)
        return m[torch.arange(m.shape[0], device=m.device), actions.to(m.device)].to(x.device)


def check_actions(actions: Any, batch: int, n_actions: int) -> None:
    """Raise :class:`ConfigError` unless ``actions`` is ``batch`` integer actions in ``[0, n_actions)``
    (a negative index would silently pick another action's map)."""
    if not isinstance(actions, torch.Tensor) or actions.shape != (batch,) or actions.is_floating_point():
        got = f"{tuple(actions.shape)} {actions.dtype}" if isinstance(actions, torch.Tensor) else type(actions).__name__
        raise ConfigError(f"Expected a ({batch},) integer tensor of actions, one per state, got {got}")
    if batch and (int(actions.min()) < 0 or int(actions.max()) >= n_actions):
        raise ConfigError(
            f"Expected actions in [0, {n_actions - 1}] ({n_actions} maps), got values in "
            f"[{int(actions.min())}, {int(actions.max())}]"
        )


class Explainer(ExplainerBase):
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

    @property
    def input_device(self) -> torch.device:
        return self.device

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space states -> maps (differentiable when called in training)."""
        out: torch.Tensor = self.net(x)
        return out

    def infer(self, x: ModelBatch) -> torch.Tensor:
        """Model-space states -> maps with the network in eval mode (call under ``torch.inference_mode``)."""
        out: torch.Tensor = self.net.eval()(x)
        return out

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
    def load(cls, path: str | os.PathLike[str]) -> Explainer:
        """Load a checkpoint: a path or ``"default:NAME"`` (the explainer bundled for env NAME).

        Raises:
            FileNotFoundError: no such file, or no bundled explainer for NAME.
            CheckpointError: not an explainer checkpoint, corrupt, or weights that do not fit.
        """
        path = checkpoint_path(path)
        tensors, meta = read_checkpoint(path, "explainer")
        try:
            net = build_explainer(meta["arch"], **meta["arch_kwargs"])
            obs_format = ObsFormat.from_dict(meta["obs_format"])
            ref_meta = meta["reference"]
            action_names = meta["action_names"]
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"Explainer checkpoint {str(path)!r} has incomplete metadata: {err!r}") from err
        load_state(net, tensors, "net.", path)
        k = meta["arch_kwargs"].get("n_actions")
        if not isinstance(action_names, list) or (k is not None and len(action_names) != k):
            raise CheckpointError(
                f"Explainer checkpoint {str(path)!r} names {len(action_names) if isinstance(action_names, list) else '?'} "
                f"actions but its network makes {k} maps; the file was edited or mixed up: re-save it with "
                "Explainer.save (or retrain)"
            )
        try:
            reference = Reference(
                ref_meta["kind"],
                tensors.get("reference.image"),
                ref_meta.get("blur_kernel"),
                ref_meta.get("blur_sigma"),
            )
        except (ConfigError, KeyError, TypeError, ValueError) as err:
            raise CheckpointError(
                f"Explainer checkpoint {str(path)!r} has a reference it cannot rebuild ({ref_meta!r}: {err!r}); the file "
                "was edited or mixed up: re-save it with Explainer.save (or retrain)"
            ) from None
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


def checkpoint_path(spec: str | os.PathLike[str]) -> Path:
    """``"default:NAME"`` -> the bundled explainer's file; a path -> itself, checked to exist."""
    text = os.fspath(spec)
    if text.startswith("default:"):
        from vmask_live.agents import default_path

        return default_path(text.split(":", 1)[1], "explainer")
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"Explainer checkpoint {text!r} does not exist")
    return path


def load_explainer(
    spec: str | os.PathLike[str] | Explainer, *, backend: str = "auto", device: str = "auto"
) -> Explainer:
    """Load the plain (trainable, eager torch) :class:`Explainer`; kept for ``backend="none"`` callers.

    Inference backends live in :mod:`vmask_live.export`, which the core never imports: load a
    compiled runtime with :func:`vmask_live.load_explainer` (``vmask_live.export.load_explainer``).

    Args:
        spec: ``"default:NAME"`` (bundled), a checkpoint path, or an :class:`Explainer` (returned as is).
        backend: must be ``"none"``; the signature matches :func:`vmask_live.load_explainer`.
        device: unused (the plain explainer loads on the CPU; move it with :meth:`Explainer.to`).

    Raises:
        ConfigError: ``backend`` is not ``"none"``.
    """
    if backend != "none":
        raise ConfigError(
            f"Expected backend='none' from vmask_live.explainer.load_explainer (the plain torch Explainer), "
            f"got backend={backend!r}: the core does not choose inference backends. Use "
            f"vmask_live.load_explainer(spec, backend={backend!r}) (it lives in vmask_live.export), "
            "or Explainer.load(spec) for the plain explainer"
        )
    return spec if isinstance(spec, Explainer) else Explainer.load(spec)
