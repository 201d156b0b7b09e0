"""Explainer networks: observation ``(B, C, H, W)`` -> K saliency maps ``(B, K, H, W)`` in [0, 1].

``deeplab`` (default) is a light DeepLabv3 in plain torch: a strided conv backbone whose last
stage uses atrous (dilated) residual blocks instead of more striding, an ASPP head (parallel
atrous convs at several rates plus image pooling), a 1x1 classifier to K channels, a light
low-level skip from the stride-2 features (the DeepLabv3+ decoder, which keeps sprite edges
sharp at 84x84), bilinear upsampling to the input size and a sigmoid. ``fcn`` is a smaller
plain conv stack for the architecture ablation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vmask_live.errors import ConfigError

__all__ = ["DeepLabExplainer", "FCNExplainer", "build_explainer", "ARCHITECTURES"]


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Residual(nn.Module):
    def __init__(self, ch: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(ch, ch, 3, dilation=dilation),
            nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class _ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [_conv_bn(cin, cout, 1)] + [_conv_bn(cin, cout, 3, dilation=r) for r in rates if r > 1]
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU(inplace=True))
        self.project = _conv_bn(cout * (len(self.branches) + 1), cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [b(x) for b in self.branches]
        # Pooled features are constant over space: expand instead of interpolating (static, cheap).
        feats.append(self.pool(x).expand(-1, -1, x.shape[2], x.shape[3]))
        return self.project(torch.cat(feats, dim=1))


class DeepLabExplainer(nn.Module):
    """Light DeepLabv3(+) explainer.

    Args:
        in_channels: C of the model-space observation (4 for stacked Atari frames).
        n_actions: K, one map per action.
        width: channels of the first stage; later stages use 2x and 4x.
        rates: ASPP atrous rates (a rate of 1 is the 1x1 branch).
        input_size: (H, W); the output is upsampled to it (static shape: export-friendly).
        refine: add a full-resolution refinement head: two 3x3 convs on the input and the
            upsampled logits predict a correction of the logits at every input pixel, so map edges
            follow the sprites instead of the stride-2 decoder's 1-2 px halo. Its last conv starts
            at zero: an explainer warm-started from one without it (``--init``) begins with the
            same maps.
    """

    def __init__(
        self,
        in_channels: int,
        n_actions: int,
        input_size: tuple[int, int],
        width: int = 16,
        rates: tuple[int, ...] = (1, 6, 12, 18),
        refine: bool = False,
    ) -> None:
        super().__init__()
        w = width
        self.input_size = tuple(input_size)
        self.stem = nn.Sequential(_conv_bn(in_channels, w, 3, stride=2), _conv_bn(w, w, 3))  # /2
        self.stage2 = nn.Sequential(_conv_bn(w, 2 * w, 3, stride=2), _Residual(2 * w, 1))  # /4
        self.stage3 = nn.Sequential(
            _conv_bn(2 * w, 4 * w, 1), _Residual(4 * w, 2), _Residual(4 * w, 4)
        )  # atrous: stays at /4
        self.aspp = _ASPP(4 * w, 4 * w, tuple(rates))
        self.low = _conv_bn(w, w // 2 if w >= 16 else w, 1)
        low_ch = w // 2 if w >= 16 else w
        self.decoder = _conv_bn(4 * w + low_ch, 2 * w, 3)
        self.head = nn.Conv2d(2 * w, n_actions, 1)
        self.refine: nn.Module | None = None
        if refine:
            last = nn.Conv2d(w, n_actions, 1)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)  # type: ignore[arg-type]  # a Conv2d made with bias=True has one
            self.refine = nn.Sequential(_conv_bn(in_channels + n_actions, w, 3), _conv_bn(w, w, 3), last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.stem(x)
        y = self.aspp(self.stage3(self.stage2(low)))
        y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.decoder(torch.cat([y, self.low(low)], dim=1))
        y = F.interpolate(self.head(y), size=self.input_size, mode="bilinear", align_corners=False)
        if self.refine is not None:
            y = y + self.refine(torch.cat([x, y], dim=1))
        return torch.sigmoid(y)


class FCNExplainer(nn.Module):
    """A plain fully convolutional explainer (ablation baseline): 3 strided convs, 1x1 head."""

    def __init__(self, in_channels: int, n_actions: int, input_size: tuple[int, int], width: int = 24) -> None:
        super().__init__()
        self.input_size = tuple(input_size)
        self.body = nn.Sequential(
            _conv_bn(in_channels, width, 3, stride=2),
            _conv_bn(width, 2 * width, 3, stride=2),
            _conv_bn(2 * width, 2 * width, 3, dilation=2),
            nn.Conv2d(2 * width, n_actions, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(self.body(x), size=self.input_size, mode="bilinear", align_corners=False)
        return torch.sigmoid(y)


ARCHITECTURES: dict[str, type[nn.Module]] = {"deeplab": DeepLabExplainer, "fcn": FCNExplainer}


def build_explainer(arch: str, **kwargs: Any) -> nn.Module:
    """Construct an explainer network by name (kwargs are stored in checkpoints)."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"Expected arch in {sorted(ARCHITECTURES)}, got {arch!r}")
    if "rates" in kwargs:
        kwargs["rates"] = tuple(kwargs["rates"])
    kwargs["input_size"] = tuple(kwargs["input_size"])
    return ARCHITECTURES[arch](**kwargs)
