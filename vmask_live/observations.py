"""From environment observations to the tensors agents and explainers share.

Everything that touches a network works in one *model space*: float32 ``(B, C, H, W)`` in
``[0, 1]``. :class:`ObsFormat` says how an env's pixel observations map into it (layout, dtype,
value range, scale) and is stored in every checkpoint, so an agent or explainer knows what it was
trained on and refuses anything else where data enters: the observation space when a wrapper is
built (:meth:`ObsFormat.adapter`) and every batch (:meth:`ObsFormat.check`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from vmask_live.errors import ObservationError

__all__ = ["ObsFormat", "ObservationError"]

_FLOAT_HINT = (
    "likely cause: the env scales pixels to [0, 1] (AtariPreprocessing(scale_obs=True), a float Box(0, 1) "
    "space, VecNormalize) while the checkpoint was trained on raw uint8 frames; fix: give it the raw uint8 "
    "observations (scale_obs=False), or train an agent/explainer on these observations"
)


def _layout_of(shape: tuple[int, ...]) -> str:
    """``"hw"``, ``"chw"`` or ``"hwc"`` for an image shape; an axis of at most 16 is the channel axis
    where only one end has one; where both ends are small (16x16 RGB, MinAtar's 10x10x4), the end
    that differs from the other two sizes; otherwise the shape is refused as ambiguous."""
    if len(shape) == 2:
        return "hw"
    first, middle, last = shape
    if first <= 16 < last:
        return "chw"
    if last <= 16 < first:
        return "hwc"
    if first <= 16 and last <= 16:
        if middle == last != first:
            return "chw"
        if first == middle != last:
            return "hwc"
    raise ObservationError(
        f"Cannot tell the channel axis of observation shape {shape}; give the env a channel-first "
        "(C, H, W) or channel-last (H, W, C) image space whose two image sizes are equal or larger than 16, "
        "e.g. with gymnasium.wrappers.TransformObservation"
    )


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
    dtype: str = ""
    """numpy dtype name of raw observations (``""``: ``uint8`` when ``scale`` is 255, else ``float32``)."""
    low: float = 0.0
    """Smallest valid raw value."""
    high: float | None = None
    """Largest valid raw value (``None``: ``scale``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if not self.dtype:
            object.__setattr__(self, "dtype", "uint8" if self.scale == 255.0 else "float32")
        if self.high is None:
            object.__setattr__(self, "high", float(self.scale))
        if self.layout not in ("hw", "chw", "hwc"):
            raise ObservationError(f"Expected layout 'hw', 'chw' or 'hwc', got {self.layout!r}")

    @property
    def upper(self) -> float:
        """The largest valid raw value (``high``, filled in from ``scale`` when not given)."""
        return float(self.scale if self.high is None else self.high)

    @property
    def is_uint8(self) -> bool:
        return self.dtype == "uint8"

    def describe(self) -> str:
        """E.g. ``uint8 (4, 84, 84) in [0, 255]``."""
        lo, hi = (int(self.low), int(self.upper)) if self.is_uint8 else (self.low, self.upper)
        return f"{self.dtype} {self.shape} in [{lo}, {hi}]"

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
            key = next(
                (k for k, v in space.spaces.items() if isinstance(v, gym.spaces.Box) and len(v.shape) in (2, 3)), "KEY"
            )
            raise ObservationError(
                f"Expected a pixel (Box) observation space, got a Dict space with keys {list(space.spaces)}; "
                f"give the wrapper the image alone: gymnasium.wrappers.TransformObservation(env, lambda o: "
                f"o[{key!r}], env.observation_space[{key!r}])"
            )
        if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (2, 3):
            raise ObservationError(
                f"Expected a pixel observation space (Box of shape (H, W), (C, H, W) or (H, W, C)), "
                f"got {space}; VisionMask explains image observations only"
            )
        shape = tuple(int(d) for d in space.shape)
        layout = _layout_of(shape)
        hw = shape if layout == "hw" else shape[1:] if layout == "chw" else shape[:2]
        if min(hw) < 8:
            raise ObservationError(
                f"Expected an image of at least 8x8 pixels, got {hw[0]}x{hw[1]} (shape {shape}, {layout})"
            )
        dtype = np.dtype(space.dtype)
        if dtype == np.uint8:
            return cls(shape=shape, layout=layout, scale=255.0, dtype="uint8", low=0.0, high=255.0)
        if dtype.kind != "f":
            raise ObservationError(
                f"Expected uint8 or floating-point pixel observations, got dtype {dtype} in {space}; "
                "cast them to uint8 (raw pixels) with a gymnasium.wrappers.TransformObservation"
            )
        low, high = float(np.min(space.low)), float(np.max(space.high))
        if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
            raise ObservationError(
                f"Expected bounded pixel values (uint8, or floats with a finite low < high), got {space}; "
                "give the Box its real pixel range, e.g. Box(0.0, 1.0, shape, np.float32)"
            )
        if low < 0:
            raise ObservationError(
                f"Expected non-negative pixel values (model space is [0, 1]: removed pixels, the black "
                f"reference and the views that rebuild observations assume it), got {space} with low {low:g}; "
                "map them to [0, 1] first, e.g. gymnasium.wrappers.TransformObservation(env, lambda o: (o - low) / "
                "(high - low), Box(0.0, 1.0, shape, np.float32)), or give the agent raw uint8 pixels"
            )
        return cls(shape=shape, layout=layout, scale=high, dtype=dtype.name, low=low, high=high)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "layout": self.layout,
            "scale": self.scale,
            "dtype": self.dtype,
            "low": self.low,
            "high": self.high,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObsFormat:
        """Inverse of :meth:`to_dict`; checkpoints from before dtype/range were recorded get the
        values their scale implies (255: uint8 in [0, 255])."""
        return cls(
            shape=tuple(d["shape"]),
            layout=d["layout"],
            scale=float(d["scale"]),
            dtype=d.get("dtype", ""),
            low=float(d.get("low", 0.0)),
            high=None if d.get("high") is None else float(d["high"]),
        )

    def _channel_last_of_this(self, shape: tuple[int, ...]) -> bool:
        return self.layout == "chw" and shape == (*self.shape[1:], self.shape[0])

    def check(self, obs: Any, batched: bool) -> None:
        """Raise :class:`ObservationError` unless ``obs`` has this format's shape, dtype, value range
        and only finite values (all problems in one message)."""
        if isinstance(obs, torch.Tensor):
            obs = obs.detach().cpu().numpy()
        obs = np.asarray(obs)
        shape = tuple(obs.shape[1:]) if batched else tuple(obs.shape)
        if shape != self.shape:
            if batched and tuple(obs.shape) == self.shape:
                fix = "this is a single observation: pass a batch of one, obs[None]"
            elif self._channel_last_of_this(shape):
                fix = (
                    f"the observations are channel-last; the checkpoint takes channel-first {self.shape}: "
                    "transpose with np.moveaxis(obs, -1, -3), or wrap an SB3 VecEnv in VecTransposeImage"
                )
            else:
                fix = "is the env wrapped with the same preprocessing (frame stack, resize, grey) as at training time?"
            where = " after the batch axis" if batched else ""
            raise ObservationError(
                f"Expected observations of shape {self.shape}{where} (a batch is (B, {', '.join(map(str, self.shape))})), "
                f"got an array of shape {tuple(obs.shape)}; {fix}"
            )
        problems = []
        if self.is_uint8 and obs.dtype != np.uint8:
            hint = (
                _FLOAT_HINT
                if obs.dtype.kind == "f"
                else "fix: pass obs.astype(np.uint8) if these are raw pixel values 0-255"
            )
            problems.append(f"expected dtype uint8, got {obs.dtype}; {hint}")
        elif not self.is_uint8 and obs.dtype.kind != "f":
            problems.append(
                f"expected floating-point pixels in [{self.low}, {self.high}] ({self.dtype}), got dtype {obs.dtype}; "
                "fix: give the observations the dtype and scaling the checkpoint was trained on"
            )
        if obs.dtype.kind == "f" and obs.size:
            finite = np.isfinite(obs)
            if not finite.all():
                bad = int((~finite).sum())
                problems.append(
                    f"{bad} of {obs.size} values are NaN or infinite; the maps and action of such a state "
                    "would be meaningless (check the env and the wrappers before this one)"
                )
            elif not self.is_uint8:
                lo, hi = float(obs.min()), float(obs.max())
                tol = 1e-3 * (self.upper - self.low)
                if lo < self.low - tol or hi > self.upper + tol:
                    problems.append(
                        f"expected values in [{self.low}, {self.high}], got values in [{lo:.4g}, {hi:.4g}]; "
                        "fix: scale the observations as at training time"
                    )
        if problems:
            raise ObservationError(f"Observations do not match {self.describe()}: " + "; ".join(problems))

    def check_model(self, x: torch.Tensor) -> None:
        """Raise :class:`ObservationError` unless ``x`` is a model-space batch of this format
        (:meth:`to_model`'s output): ``(B, *chw)``, floating point, finite, within the scaled range."""
        fix = f"convert raw observations with obs_format.to_model(obs) ({self.describe()} -> floats / {self.scale:g})"
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != self.chw or x.ndim != 4:
            got = f"shape {tuple(x.shape)}" if hasattr(x, "shape") else type(x).__name__
            raise ObservationError(
                f"Expected model-space states of shape (B, {', '.join(map(str, self.chw))}), got {got}; {fix}"
            )
        if not x.is_floating_point():
            raise ObservationError(f"Expected floating-point model-space states, got dtype {x.dtype}; {fix}")
        if x.numel():
            lo, hi = x.min().item(), x.max().item()
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ObservationError(
                    "Model-space states hold NaN or infinite values; the maps of such states would be meaningless"
                )
            want_lo, want_hi = self.low / self.scale, self.upper / self.scale
            tol = 1e-3 * (want_hi - want_lo)
            if lo < want_lo - tol or hi > want_hi + tol:
                raise ObservationError(
                    f"Expected model-space values in [{want_lo:g}, {want_hi:g}], got values in [{lo:.4g}, {hi:.4g}]; {fix}"
                )

    def mismatch(self, env_format: ObsFormat) -> str | None:
        """Why raw observations of ``env_format`` cannot feed a checkpoint of this format (None: they can,
        possibly after :meth:`adapter`'s transposition)."""
        problems = []
        if env_format.shape != self.shape and not self._channel_last_of_this(env_format.shape):
            problems.append(
                f"shape {env_format.shape} (expected {self.shape}; same preprocessing/frame stack as in training?)"
            )
        if self.is_uint8 != env_format.is_uint8:
            hint = _FLOAT_HINT if self.is_uint8 else "fix: give it the float observations it was trained on"
            problems.append(f"dtype {env_format.dtype} (expected {self.dtype}); {hint}")
        elif not self.is_uint8 and (
            not np.isclose(env_format.low, self.low) or not np.isclose(env_format.upper, self.upper)
        ):
            problems.append(
                f"value range [{env_format.low}, {env_format.high}] (expected [{self.low}, {self.high}]); "
                "fix: scale the observations as at training time"
            )
        return "; ".join(problems) or None

    def adapter(self, space: gym.Space, who: str = "checkpoint") -> Callable[[np.ndarray], np.ndarray]:
        """Check an env's observation space against this format and return ``raw env batch -> raw
        batch in this format`` (the identity, or a channel-last to channel-first transposition, as
        RL-Zoo / SB3 VecEnvs give (84, 84, 4) frame stacks).

        Raises:
            ObservationError: naming every mismatch (shape, dtype, value range) and the fix.
        """
        env_format = ObsFormat.from_space(space)
        why = self.mismatch(env_format)
        if why:
            raise ObservationError(
                f"The {who} expects {self.describe()}, but the env gives {env_format.describe()}: {why}"
            )
        if env_format.shape != self.shape:
            return lambda obs: np.ascontiguousarray(np.moveaxis(np.asarray(obs), -1, -3))
        return lambda obs: obs

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
        return np.rint(y).astype(np.uint8) if self.is_uint8 else y.astype(self.dtype)
