"""Types shared across vmask-live: the saliency-explainer protocol and the array aliases.

:class:`SaliencyExplainer` is the one interface every explainer honours, whether it is the
trainable :class:`~vmask_live.explainer.Explainer` or a compiled
:class:`~vmask_live.export.Runtime` (ONNX Runtime, TensorRT, torch): the wrappers, the live
window and the metrics accept any object with these members. Shapes use ``B`` batch, ``K`` maps
(one per action), ``C`` stacked frames / channels and ``H, W`` the observation's spatial size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import torch

if TYPE_CHECKING:
    from vmask_live.observations import ObsFormat
    from vmask_live.overlay import Reference

__all__ = [
    "ObsBatch",
    "MapBatch",
    "ModelBatch",
    "ActionBatch",
    "AttributionBatch",
    "ObsAdapter",
    "SaliencyExplainer",
    "ExplainerSpec",
    "missing_members",
]

ObsBatch = np.ndarray
"""Raw observations as the env gives them, batched: ``(B, *obs_shape)`` (uint8 pixels or floats)."""

MapBatch = np.ndarray
"""Saliency maps of a batch: float32 ``(B, K, H, W)`` in [0, 1], one map per action."""

ModelBatch = torch.Tensor
"""Observations in model space: float ``(B, C, H, W)`` in [0, 1] (``ObsFormat.to_model``)."""

ActionBatch = torch.Tensor
"""One action index per state: int64 ``(B,)``."""

AttributionBatch = torch.Tensor
"""One saliency map per state, for the action asked about: ``(B, H, W)``."""

ObsAdapter = Callable[[np.ndarray], np.ndarray]
"""Raw env observation batch -> the raw batch a checkpoint takes (identity or a transposition)."""


@runtime_checkable
class SaliencyExplainer(Protocol):
    """Something that maps observations to one saliency map per action.

    ``isinstance(obj, SaliencyExplainer)`` checks that the members exist (not their signatures).
    """

    @property
    def n_actions(self) -> int:
        """``K``: the number of maps, one per action of the agent it explains."""
        ...

    @property
    def action_names(self) -> Sequence[str]:
        """One name per map."""
        ...

    @property
    def obs_format(self) -> ObsFormat:
        """The raw observation format (shape, layout, dtype, value range) it takes."""
        ...

    @property
    def reference(self) -> Reference:
        """The overlay reference it was trained with (metrics and counterfactuals use it)."""
        ...

    def __call__(self, obs: ObsBatch) -> MapBatch:
        """Raw observation batch ``(B, *obs_shape)`` -> float32 maps ``(B, K, H, W)`` in [0, 1]."""
        ...

    def attribute(self, x: ModelBatch, actions: ActionBatch) -> AttributionBatch:
        """Saliency-method interface: model-space states and actions -> ``(B, H, W)`` maps."""
        ...


ExplainerSpec = str | os.PathLike[str] | SaliencyExplainer
"""What the loaders take: ``"default:NAME"``, a checkpoint path, or an explainer already loaded."""


_MEMBERS = ("n_actions", "action_names", "obs_format", "reference", "__call__", "attribute")


def missing_members(obj: object) -> list[str]:
    """The :class:`SaliencyExplainer` members ``obj`` lacks (empty exactly when it is one)."""
    return [name for name in _MEMBERS if not hasattr(obj, name)]
