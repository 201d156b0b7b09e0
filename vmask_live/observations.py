"""From environment observations to the tensors agents and explainers share.

Everything that touches a network works in one *model space*: float32 ``(B, C, H, W)`` in
``[0, 1]``. :class:`ObsFormat` says how an env's pixel observations map into it (layout and
scale) and is stored in every checkpoint, so an explainer knows what it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from vmask_live.errors import ObservationError

__all__ = ["ObsFormat", "ObservationError"]


@dataclass(frozen=True)
class ObsFormat:
    """How raw pixel observations become model-space tensors.

    Attributes:
        shape: the raw observation shape as the env gives it.
        layout: ``"chw"`` (channels first, e.g. stacked Atari frames), ``"hwc"`` or ``"hw"``.
        scale: the raw value that maps to 1.0 (255 for uint8 pixels).
    """

    shape: tuple[int, ...]
    layout: str
    scale: float = 255.0

    @property
    def chw(self) -> tuple[int, int, int]:
        """Model-space shape ``(C, H, W)``."""
        if self.layout == "hw":
            return (1, self.shape[0], self.shape[1])
        if self.layout == "hwc":
            return (self.shape[2], self.shape[0], self.shape[1])
        return tuple(self.shape)  # type: ignore[return-value]

    @classmethod
    def from_space(cls, space: gym.Space) -> ObsFormat:
        """Infer the format of a Box pixel space; raise a clear error for anything else."""
        if isinstance(space, gym.spaces.Dict):
            raise ObservationError(
                f"Expected a pixel (Box) observation space, got a Dict space with keys "
                f"{list(space.spaces)}; pick the image key first, e.g. "
                "`gymnasium.wrappers.FilterObservation` or pass `obs_key=` to ExplainedEnv"
            )
        if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (2, 3):
            raise ObservationError(
                f"Expected a pixel observation space (Box of shape (H, W), (C, H, W) or (H, W, C)), "
                f"got {space}; VisionMask explains image observations only"
            )
        shape = tuple(int(d) for d in space.shape)
        if min(shape[-2:] if len(shape) == 3 and shape[0] <= 16 else shape[:2]) < 8:
            raise ObservationError(f"Expected an image of at least 8x8 pixels, got shape {shape}")
        if len(shape) == 2:
            layout = "hw"
        elif shape[0] <= 16 and shape[-1] > 16:
            layout = "chw"
        elif shape[-1] <= 16:
            layout = "hwc"
        else:
            raise ObservationError(f"Cannot tell the channel axis of observation shape {shape}")
        if space.dtype == np.uint8:
            scale = 255.0
        else:
            high = float(np.max(space.high))
            if not np.isfinite(high):
                raise ObservationError(
                    f"Expected bounded pixel values (uint8, or floats with a finite high), got {space}"
                )
            scale = high
        return cls(shape=shape, layout=layout, scale=scale)

    def to_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "layout": self.layout, "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObsFormat:
        return cls(shape=tuple(d["shape"]), layout=d["layout"], scale=float(d["scale"]))

    def check(self, obs: np.ndarray, batched: bool) -> None:
        """Raise if ``obs`` does not have this format's shape."""
        shape = tuple(obs.shape[1:]) if batched else tuple(obs.shape)
        if shape != self.shape:
            raise ObservationError(
                f"Expected observations of shape {self.shape}{' (after the batch axis)' if batched else ''}, "
                f"got {tuple(obs.shape)}; is the env wrapped with the same preprocessing "
                "(frame stack, resize, grey) as at training time?"
            )

    def to_model(self, obs: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        """Batch of raw observations ``(B, *shape)`` -> model space ``(B, C, H, W)`` float in [0, 1]."""
        x = torch.as_tensor(np.asarray(obs) if not isinstance(obs, torch.Tensor) else obs, device=device)
        if x.ndim != len(self.shape) + 1:
            raise ObservationError(
                f"Expected a batch of observations of shape (B, {', '.join(map(str, self.shape))}), "
                f"got {tuple(x.shape)}"
            )
        x = x.to(torch.float32) / self.scale
        if self.layout == "hw":
            x = x.unsqueeze(1)
        elif self.layout == "hwc":
            x = x.permute(0, 3, 1, 2)
        return x

    def to_raw(self, x: torch.Tensor) -> np.ndarray:
        """Model space back to raw observations (uint8 when the scale is 255)."""
        if self.layout == "hw":
            x = x[:, 0]
        elif self.layout == "hwc":
            x = x.permute(0, 2, 3, 1)
        y = (x.clamp(0, 1) * self.scale).detach().cpu().numpy()
        return np.rint(y).astype(np.uint8) if self.scale == 255.0 else y.astype(np.float32)
