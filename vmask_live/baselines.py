"""Saliency baselines behind one interface: ``Method(agent).attribute(x, actions) -> (B, H, W)``.

``x`` are model-space states ``(B, C, H, W)`` in [0, 1]. Every method batches its perturbed states
into few agent calls; ``perturbations_per_eval`` bounds how many states go into one call.
Hand-written: Greydanus, SARFA, RISE (short, and in no well-kept library). Through captum:
LIME (with a superpixel feature mask), vanilla gradient, Grad-CAM, Integrated Gradients.
VisionMask and the Explainer of Stalder et al. are trained explainers (:class:`ExplainerMethod`).

Which methods exist, what each needs and costs, and how to build one by name is
:mod:`vmask_live.methods` (the registry); this module only implements them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from vmask_live.overlay import Reference, gaussian_blur, overlay

__all__ = [
    "SaliencyMethod",
    "Greydanus",
    "SARFA",
    "RISE",
    "LIME",
    "VanillaGradient",
    "GradCAM",
    "IntegratedGradients",
    "ExplainerMethod",
]


class SaliencyMethod(Protocol):
    """What every saliency method is: ``attribute(x, actions) -> (B, H, W)`` maps.

    ``x`` are model-space states ``(B, C, H, W)`` in [0, 1], ``actions`` the ``(B,)`` actions to
    explain. Trained explainers (VisionMask's runtime) have the same method.
    """

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...


def _chunks(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


class _Perturbation:
    """Greydanus-style perturbations: a blurred copy under Gaussian masks centred on a grid."""

    def __init__(
        self,
        agent: nn.Module,
        sigma: float = 5.0,
        stride: int = 5,
        blur_sigma: float = 3.0,
        perturbations_per_eval: int = 512,
    ) -> None:
        self.agent, self.sigma, self.stride = agent, sigma, stride
        self.blur_sigma = blur_sigma
        self.perturbations_per_eval = perturbations_per_eval

    def _masks(self, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, int, int]:
        ys = torch.arange(0, h, self.stride, device=device, dtype=torch.float32)
        xs = torch.arange(0, w, self.stride, device=device, dtype=torch.float32)
        yy = torch.arange(h, device=device, dtype=torch.float32)
        xx = torch.arange(w, device=device, dtype=torch.float32)
        gy = torch.exp(-((yy[None] - ys[:, None]) ** 2) / (2 * self.sigma**2))  # (ny, h)
        gx = torch.exp(-((xx[None] - xs[:, None]) ** 2) / (2 * self.sigma**2))  # (nx, w)
        masks = gy[:, None, :, None] * gx[None, :, None, :]  # (ny, nx, h, w)
        return masks.flatten(0, 1), len(ys), len(xs)

    def _scores(
        self,
        x: torch.Tensor,
        actions: torch.Tensor,
        score: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        B, C, H, W = x.shape
        masks, ny, nx = self._masks(H, W, x.device)
        size = int(4 * self.blur_sigma) | 1
        out = []
        with torch.inference_mode():
            for b in range(B):
                s = x[b : b + 1]
                blurred = gaussian_blur(s, size, self.blur_sigma)
                # State 0 is s itself, so z(s) rides in the first agent call: each state's map
                # comes from the same calls whether it is explained alone or in a batch.
                zs = []
                for sl in _chunks(1 + masks.shape[0], self.perturbations_per_eval):
                    m = masks[max(sl.start - 1, 0) : sl.stop - 1]
                    # keep the state where the mask is 0, the blurred copy where it is 1
                    states = overlay(s.expand(m.shape[0], -1, -1, -1), 1 - m, blurred)
                    zs.append(self.agent(torch.cat([s, states]) if sl.start == 0 else states))
                z = torch.cat(zs)
                out.append(score(z[0], z[1:], actions[b]).view(ny, nx))
        grid = torch.stack(out)[:, None]
        return F.interpolate(grid, size=(H, W), mode="bilinear", align_corners=False)[:, 0]


class Greydanus(_Perturbation):
    """Greydanus et al. 2018: ``½‖z(s) − z(s')‖²`` for blur perturbations on a grid (σ 5 px, stride 5)."""

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self._scores(x, actions, lambda z0, z, a: 0.5 * (z - z0).pow(2).sum(1))


class SARFA(_Perturbation):
    """Puri et al. 2020: ``2·K·Δp / (K + Δp)``, Δp the drop of p(a), K = 1 / (1 + KL) of the
    renormalised non-target distributions (specificity × relevance, harmonic mean)."""

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        def score(z0: torch.Tensor, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            p0, p = torch.softmax(z0, -1), torch.softmax(z, -1)
            dp = (p0[a] - p[:, a]).clamp_min(0)
            keep = torch.ones_like(p0, dtype=torch.bool)
            keep[a] = False
            q0 = p0[keep] / p0[keep].sum().clamp_min(1e-12)
            q = p[:, keep] / p[:, keep].sum(1, keepdim=True).clamp_min(1e-12)
            kl = (q0 * (q0.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum(1)
            k = 1 / (1 + kl)
            return torch.where(dp > 0, 2 * k * dp / (k + dp).clamp_min(1e-12), torch.zeros_like(dp))

        return self._scores(x, actions, score)


class RISE:
    """Petsiuk et al. 2018: ``Σ_n p_a(s ⊙ M_n + r ⊙ (1 − M_n)) M_n / (N p)`` over random smooth masks.

    Args:
        n_masks: N (2000 in the paper's setting); cost is N agent passes per state.
        cells: grid cells per side before upsampling; p: keep probability.
    """

    def __init__(
        self,
        agent: nn.Module,
        reference: Reference,
        n_masks: int = 2000,
        cells: int = 7,
        p: float = 0.5,
        seed: int = 0,
        perturbations_per_eval: int = 500,
    ) -> None:
        self.agent, self.reference = agent, reference
        self.n_masks, self.cells, self.p, self.seed = n_masks, cells, p, seed
        self.perturbations_per_eval = perturbations_per_eval
        self._masks: torch.Tensor | None = None

    def masks(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        if self._masks is None or self._masks.shape[-2:] != (h, w):
            g = torch.Generator().manual_seed(self.seed)
            grid = (torch.rand(self.n_masks, 1, self.cells, self.cells, generator=g) < self.p).float()
            ch, cw = math.ceil(h / self.cells), math.ceil(w / self.cells)
            up = F.interpolate(
                grid, size=((self.cells + 1) * ch, (self.cells + 1) * cw), mode="bilinear", align_corners=False
            )
            dy = torch.randint(0, ch, (self.n_masks,), generator=g)
            dx = torch.randint(0, cw, (self.n_masks,), generator=g)
            self._masks = torch.stack([up[i, 0, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(self.n_masks)])
        return self._masks.to(device)

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        masks = self.masks(H, W, x.device)
        r = self.reference(x)
        out = torch.zeros(B, H, W, device=x.device)
        with torch.inference_mode():
            for b in range(B):
                rb = r[b : b + 1] if r.shape[0] == B else r
                for sl in _chunks(self.n_masks, self.perturbations_per_eval):
                    m = masks[sl]
                    states = overlay(x[b : b + 1].expand(m.shape[0], -1, -1, -1), m, rb)
                    pa = torch.softmax(self.agent(states), -1)[:, actions[b]]
                    out[b] += (pa[:, None, None] * m).sum(0)
        return out / (self.n_masks * self.p)


def _superpixels(h: int, w: int, size: int, device: torch.device) -> torch.Tensor:
    """A grid of ``size``-pixel superpixels as a captum feature mask ``(1, 1, H, W)``."""
    ys = torch.arange(h, device=device) // size
    xs = torch.arange(w, device=device) // size
    return (ys[:, None] * ((w + size - 1) // size) + xs[None, :])[None, None]


class LIME:
    """Ribeiro et al. 2016 through captum's ``Lime``: superpixels switched between the state and
    the reference, a weighted linear fit (``n_samples`` agent passes per state).

    Every state is explained with the same seeded draw of on/off samples (as RISE uses the same
    masks for every state), so a map depends neither on the other states of the batch nor on
    torch's global random state, and reruns give the same maps.
    """

    def __init__(
        self,
        agent: nn.Module,
        reference: Reference,
        n_samples: int = 300,
        superpixel: int = 6,
        perturbations_per_eval: int = 100,
        seed: int = 0,
    ) -> None:
        from vmask_live._optional import require

        require("captum", "baselines")
        self.agent, self.reference = agent, reference
        self.n_samples, self.superpixel, self.ppe = n_samples, superpixel, perturbations_per_eval
        self.seed = seed

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        from captum.attr import Lime

        lime = Lime(self.agent)  # captum's defaults: cosine-kernel similarity, Lasso fit
        B, C, H, W = x.shape
        fmask = _superpixels(H, W, self.superpixel, x.device).expand(1, C, H, W)
        r = self.reference(x).expand_as(x)
        out = []
        for b in range(B):
            # captum draws its samples on the CPU from torch's global generator: seed a private copy
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                attr = lime.attribute(
                    x[b : b + 1],
                    target=int(actions[b]),
                    baselines=r[b : b + 1],
                    feature_mask=fmask,
                    n_samples=self.n_samples,
                    perturbations_per_eval=self.ppe,
                )
            out.append(attr[0, 0])  # the same weight on every channel of a superpixel
        return torch.stack(out)


class _Captum:
    def __init__(self, agent: nn.Module) -> None:
        from vmask_live._optional import require

        require("captum", "baselines")
        self.agent = agent


class VanillaGradient(_Captum):
    """|∂z_a/∂s| summed over channels (captum ``Saliency``); one forward + backward pass."""

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        from captum.attr import Saliency

        return Saliency(self.agent).attribute(x.clone().requires_grad_(True), target=actions).sum(1).detach()


class IntegratedGradients(_Captum):
    """captum ``IntegratedGradients`` from the black state, ``n_steps`` agent passes."""

    def __init__(self, agent: nn.Module, n_steps: int = 32) -> None:
        super().__init__(agent)
        self.n_steps = n_steps

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        from captum.attr import IntegratedGradients as IG

        attr = IG(self.agent).attribute(x, target=actions, n_steps=self.n_steps, internal_batch_size=8 * self.n_steps)
        return attr.sum(1).abs().detach()


class GradCAM(_Captum):
    """captum ``LayerGradCam`` on the agent's last conv layer, upsampled to the input size."""

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        from captum.attr import LayerAttribution, LayerGradCam

        convs = [m for m in self.agent.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("Grad-CAM needs an agent with a Conv2d layer")
        cam = LayerGradCam(self.agent, convs[-1]).attribute(x, target=actions, relu_attributions=True)
        return LayerAttribution.interpolate(cam, x.shape[-2:], "bilinear")[:, 0].detach()


class ExplainerMethod:
    """A trained explainer (VisionMask, or Stalder et al.'s Explainer): one forward pass."""

    def __init__(self, explainer: SaliencyMethod) -> None:
        self.explainer = explainer

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.explainer.attribute(x, actions)
