"""The overlay of paper eq. 1 and the reference values it blends toward.

``overlay(s, m, r) = s * m + r * (1 - m)``: keep what ``m`` selects, replace the rest by the
reference. The complement state of eq. 1 is ``overlay(s, 1 - m, r)``. Training, metrics,
baselines and the counterfactual view all call this one function.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vmask_live.errors import ConfigError

__all__ = ["overlay", "Reference", "REFERENCE_KINDS", "gaussian_blur"]

REFERENCE_KINDS = ("background", "black", "mean", "blur")


def overlay(s: torch.Tensor, m: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Blend states with their references under masks.

    Args:
        s: states ``(B, C, H, W)``.
        m: masks ``(B, H, W)`` (one per state) or ``(B, K, H, W)`` (K per state); values in [0, 1].
            The same mask applies to every channel (stacked frame) of the state.
        r: references broadcastable to ``s`` (``(C, H, W)``, ``(1, C, H, W)`` or ``(B, C, H, W)``).

    Returns:
        ``(B, C, H, W)`` for one mask per state, ``(B, K, C, H, W)`` for K masks per state.
    """
    if r.ndim == 3:
        r = r.unsqueeze(0)
    if m.ndim == 3:
        m = m.unsqueeze(1)
        return r + (s - r) * m
    if m.ndim != 4:
        raise ValueError(f"Expected masks of shape (B, H, W) or (B, K, H, W), got {tuple(m.shape)}")
    s5, r5, m5 = s.unsqueeze(1), r.unsqueeze(1), m.unsqueeze(2)
    return r5 + (s5 - r5) * m5


def _gaussian_kernel(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with reflect padding."""
    k = _gaussian_kernel(size, sigma, x.device)
    c = x.shape[1]
    pad = size // 2
    y = F.pad(x, (pad, pad, 0, 0), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, size), groups=c)
    y = F.pad(y, (0, 0, pad, pad), mode="reflect")
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, size, 1), groups=c)


class Reference:
    """A reference value ``r`` for the overlay (SPEC §1).

    * ``background``: the per-pixel median of the training observations (static scenery with
      moving sprites removed), stored with the checkpoint.
    * ``black``: zeros.
    * ``mean``: the per-channel mean of the training observations.
    * ``blur``: a Gaussian blur of the state itself. The paper's kernel 39 / sigma 15 is for
      210x160 frames; it is scaled by ``H / 210`` (84x84 -> kernel 15, sigma 6.0).
    """

    def __init__(
        self,
        kind: str,
        image: torch.Tensor | np.ndarray | None = None,
        blur_kernel: int | None = None,
        blur_sigma: float | None = None,
    ) -> None:
        if kind not in REFERENCE_KINDS:
            raise ConfigError(f"Expected reference kind in {REFERENCE_KINDS}, got {kind!r}")
        if kind in ("background", "mean") and image is None:
            raise ConfigError(f"Reference {kind!r} needs an image computed from the training data")
        if kind == "blur" and (blur_kernel is None or blur_sigma is None):
            raise ConfigError(
                f"Reference 'blur' needs blur_kernel and blur_sigma, got {blur_kernel!r} and {blur_sigma!r}; "
                "Reference.from_data('blur', height=H) picks the paper's scaled to the frame"
            )
        self.kind = kind
        self.image = None if image is None else torch.as_tensor(np.asarray(image), dtype=torch.float32)
        self.blur_kernel = blur_kernel
        self.blur_sigma = blur_sigma

    @classmethod
    def from_data(
        cls, kind: str, background: np.ndarray | None = None, mean: np.ndarray | None = None, height: int = 84
    ) -> Reference:
        """Build from dataset statistics in model space (``(C, H, W)`` in [0, 1])."""
        if kind == "background":
            return cls(kind, background)
        if kind == "mean":
            return cls(kind, mean)
        if kind == "blur":
            size, sigma = default_blur(height)
            return cls(kind, blur_kernel=size, blur_sigma=sigma)
        return cls(kind)

    def to(self, device: torch.device | str) -> Reference:
        if self.image is not None:
            self.image = self.image.to(device)
        return self

    def __call__(self, s: torch.Tensor) -> torch.Tensor:
        """The reference for states ``s`` ``(B, C, H, W)``, broadcastable to ``s``."""
        if self.kind == "black":
            return torch.zeros((1, *s.shape[1:]), device=s.device, dtype=s.dtype)
        if self.kind == "blur":
            assert self.blur_kernel is not None and self.blur_sigma is not None
            return gaussian_blur(s, self.blur_kernel, self.blur_sigma)
        assert self.image is not None
        img = self.image.to(device=s.device, dtype=s.dtype)
        if img.ndim == 1:  # per-channel mean
            img = img.view(-1, 1, 1)
        return img.unsqueeze(0)

    def to_meta(self) -> dict:
        return {"kind": self.kind, "blur_kernel": self.blur_kernel, "blur_sigma": self.blur_sigma}

    def __repr__(self) -> str:
        extra = f", kernel={self.blur_kernel}, sigma={self.blur_sigma}" if self.kind == "blur" else ""
        return f"Reference({self.kind!r}{extra})"


def default_blur(height: int) -> tuple[int, float]:
    """The paper's blur (kernel 39, sigma 15 at 210 px) scaled by ``height / 210``.

    The kernel is the odd size nearest to ``39 * height / 210`` (at least 3): 84 -> 15.6 -> 15.

    Example:
        >>> default_blur(84)
        (15, 6.0)
    """
    scale = height / 210
    return max(3, 2 * round((39 * scale - 1) / 2) + 1), round(15 * scale, 3)
