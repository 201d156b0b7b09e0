"""The VisionMask objective (paper §3.3, SPEC §1) and the Explainer (Stalder et al.) variant.

Shapes: ``s`` states ``(B, C, H, W)``, ``masks`` ``(B, K, H, W)``, ``a`` the agent's actions ``(B,)``.
All ``2K`` masked states of a batch go through the frozen agent in **one** call of size ``B·2K``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vmask_live.errors import ConfigError
from vmask_live.overlay import overlay

__all__ = [
    "LOSS_KINDS",
    "LossConfig",
    "visionmask_loss",
    "area_loss",
    "negative_entropy",
    "deletion_term",
    "total_variation",
    "contrastive_terms",
]

AREA_LOSSES = ("abs", "hinge", "stalder")
LOSS_KINDS = ("visionmask", "stalder")
"""``LossConfig.kind`` values: the paper's loss, or the Explainer baseline of Stalder et al."""


@dataclass
class LossConfig:
    """Loss weights and switches (every ablation of the paper is a field here)."""

    a_max: float = 0.1
    """Target mask area (eq. 5)."""
    area_loss: str = "abs"
    """``abs`` (eq. 5 as printed), ``hinge`` (only above a_max) or ``stalder`` (min-max bounds)."""
    area_min: float = 0.0
    """Lower bound of the ``stalder`` area loss for the chosen action's map."""
    lambda_ne: float = 1.0
    """Weight of the negative entropy of the complement states (0 disables)."""
    lambda_area: float = 1.0
    """Weight of the area loss (0 disables)."""
    lambda_tv: float = 0.0
    """Weight of total variation (off by default, as in the paper)."""
    lambda_l1: float = 0.0
    """Weight of a plain L1 pull of every map toward empty, ``mean(M)`` (the authors' code adds it
    with weight 1.0 next to eq. 5; 0 disables)."""
    lambda_del: float = 0.0
    """Weight of a deletion term ``-log(1 - p_a)`` on the target map's complement state (the
    state with the map's pixels replaced by the reference) — not in the paper: it makes the map keep
    what the action needs *against the full state*, not only against the reference, so an action
    the reference alone already yields (an empty map would do for the row term) still gets a map of
    the pixels whose removal changes it. Costs no extra agent pass (``visionmask`` loss only; 0
    disables)."""
    kind: str = "visionmask"
    """``visionmask`` (row + column CE) or ``stalder``, the Explainer of Stalder et al. 2022 (target
    CE on the masked state, all other actions' maps as one group that must not yield the target);
    ``explainer``, its former name, is read as ``stalder``."""
    sampled_actions: int = 0
    """Non-target actions drawn at random per state for the column and entropy terms (0: all K-1,
    the paper's loss). With S > 0 the agent sees the kept and complement states of the target map
    and of S other maps, ``2(S+1)`` per state instead of ``2K``: the column cross-entropy becomes a
    sampled softmax over those S+1 maps and the entropy a mean over their complements. The row term
    is unchanged. ``visionmask`` loss only; validation always scores the full loss."""

    def __post_init__(self) -> None:
        if self.kind == "explainer":  # checkpoints and scripts written before the rename
            self.kind = "stalder"
        if self.area_loss not in AREA_LOSSES:
            raise ConfigError(f"Expected area_loss in {AREA_LOSSES}, got {self.area_loss!r}")
        if self.kind not in LOSS_KINDS:
            raise ConfigError(f"Expected kind in {LOSS_KINDS}, got {self.kind!r}")


def contrastive_terms(Z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column cross-entropies of the logit matrix.

    Args:
        Z: ``(B, K, K)``; ``Z[b, i, j]`` is the logit of action ``j`` on the state kept by map ``i``.
        a: ``(B,)`` target actions.

    Returns:
        ``(L_pos, L_neg)``: ``CE(Z[a, :], a)`` (the a-map's state leads to a) and
        ``CE(Z[:, a], a)`` (of all K maps, the a-map pushes action a most), batch means.
    """
    idx = torch.arange(Z.shape[0], device=Z.device)
    row = Z[idx, a, :]
    col = Z[idx, :, a]
    return F.cross_entropy(row, a), F.cross_entropy(col, a)


def deletion_term(logits: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``-log(1 - p_a)`` of logits ``(B, K)``, batch mean: small when the agent does not choose
    ``a`` on those states (for a map's complement: when removing the map's pixels changes the
    action)."""
    p = torch.softmax(logits.float(), dim=-1).gather(1, a[:, None]).squeeze(1)
    return -torch.log1p(-p.clamp(max=1 - 1e-6)).mean()


def negative_entropy(Zc: torch.Tensor) -> torch.Tensor:
    """``(1/K²) Σ_ij P̃_ij log P̃_ij`` with ``P̃ = softmax(Z̃, dim=j)``, batch mean.

    ``Zc`` is ``(B, J, K)``: J complement states (all K maps, or a sample of them), each a mean
    over its rows, ``(1/(J·K)) Σ_ij``, so that a sample has the full term's scale."""
    logp = torch.log_softmax(Zc, dim=-1)
    return (logp.exp() * logp).sum(dim=(-2, -1)).mean() / (Zc.shape[-2] * Zc.shape[-1])


def area_loss(masks: torch.Tensor, cfg: LossConfig, a: torch.Tensor | None = None) -> torch.Tensor:
    """Area term over the K maps (eq. 5 ``abs``, ``hinge``, or Stalder's min-max bounds)."""
    area = masks.mean(dim=(-2, -1))  # (B, K)
    if cfg.area_loss == "abs":
        return (area - cfg.a_max).abs().mean()
    if cfg.area_loss == "hinge":
        return F.relu(area - cfg.a_max).mean()
    # stalder: the chosen action's map within [area_min, a_max], every other map pushed to empty
    if a is None:
        raise ValueError("The stalder area loss needs the target actions")
    onehot = F.one_hot(a, area.shape[1]).to(area.dtype)
    target = F.relu(area - cfg.a_max) + F.relu(cfg.area_min - area)
    return (onehot * target + (1 - onehot) * area).sum(dim=1).mean()


def total_variation(masks: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring mask pixels."""
    dh = (masks[..., 1:, :] - masks[..., :-1, :]).pow(2).mean()
    dw = (masks[..., :, 1:] - masks[..., :, :-1]).pow(2).mean()
    return dh + dw


def visionmask_loss(
    agent: torch.nn.Module, s: torch.Tensor, a: torch.Tensor, masks: torch.Tensor, r: torch.Tensor, cfg: LossConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss and its terms (floats, for logging).

    Args:
        agent: frozen, differentiable, model space -> logits.
        s: states ``(B, C, H, W)``; a: actions ``(B,)``; masks: ``(B, K, H, W)``;
        r: references broadcastable to ``s``.
    """
    B, K = masks.shape[:2]
    if cfg.kind == "stalder":
        return _explainer_loss(agent, s, a, masks, r, cfg)
    chosen, target = masks, a
    if 0 < cfg.sampled_actions < K - 1:
        chosen, target = _sample_maps(masks, a, cfg.sampled_actions)
    J = chosen.shape[1]
    keep = overlay(s, chosen, r)  # (B, J, C, H, W)
    drop = overlay(s, 1 - chosen, r)
    z = agent(torch.cat([keep, drop], dim=1).flatten(0, 1)).view(B, 2, J, -1)
    Z, Zc = z[:, 0], z[:, 1]
    idx = torch.arange(B, device=Z.device)
    # row: all K logits of the target map's state; column: logit a over the (sampled) maps
    l_pos = F.cross_entropy(Z[idx, target, :], a)
    l_neg = F.cross_entropy(Z[idx, :, a], target)
    loss = l_pos + l_neg
    terms = {"loss/pos": l_pos.item(), "loss/neg": l_neg.item()}
    if cfg.lambda_del:
        l_del = deletion_term(Zc[idx, target], a)
        loss = loss + cfg.lambda_del * l_del
        terms["loss/del"] = l_del.item()
    if cfg.lambda_ne:
        l_ne = negative_entropy(Zc)
        loss = loss + cfg.lambda_ne * l_ne
        terms["loss/ne"] = l_ne.item()
    if cfg.lambda_area:
        l_area = area_loss(masks, cfg, a)
        loss = loss + cfg.lambda_area * l_area
        terms["loss/area"] = l_area.item()
    if cfg.lambda_tv:
        l_tv = total_variation(masks)
        loss = loss + cfg.lambda_tv * l_tv
        terms["loss/tv"] = l_tv.item()
    if cfg.lambda_l1:
        l_l1 = masks.mean()
        loss = loss + cfg.lambda_l1 * l_l1
        terms["loss/l1"] = l_l1.item()
    terms["loss/total"] = loss.item()
    return loss, terms


def _sample_maps(masks: torch.Tensor, a: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The target map and ``n`` other maps drawn without replacement (torch's global generator),
    ``(B, n+1, H, W)``, and each target map's position among them (always 0)."""
    B, K = masks.shape[:2]
    scores = torch.rand(B, K, device=masks.device)
    scores[torch.arange(B, device=masks.device), a] = -1.0  # the target comes first
    pick = scores.argsort(dim=1)[:, : n + 1]
    chosen = masks[torch.arange(B, device=masks.device)[:, None], pick]
    return chosen, torch.zeros(B, dtype=torch.long, device=masks.device)


def _explainer_loss(agent, s, a, masks, r, cfg: LossConfig):
    """Stalder et al. 2022 adapted to actions: three states per sample in one agent call —
    the target map's kept state (CE toward a), the union of the other maps' kept state (must not
    yield a: ``-log(1 - p_a)``) and the target map's complement (maximum entropy)."""
    B, K = masks.shape[:2]
    idx = torch.arange(B, device=s.device)
    m_t = masks[idx, a]
    others = masks.masked_fill(torch.nn.functional.one_hot(a, K).bool()[..., None, None], 0.0)
    m_o = others.amax(dim=1)
    states = torch.stack([overlay(s, m_t, r), overlay(s, m_o, r), overlay(s, 1 - m_t, r)], dim=1)
    z = agent(states.flatten(0, 1)).view(B, 3, -1)
    l_t = F.cross_entropy(z[:, 0], a)
    l_nt = deletion_term(z[:, 1], a)
    logp = torch.log_softmax(z[:, 2], dim=-1)
    l_ne = (logp.exp() * logp).sum(-1).mean() / K
    loss = (
        l_t
        + l_nt
        + cfg.lambda_ne * l_ne
        + cfg.lambda_area * area_loss(masks, LossConfig(a_max=cfg.a_max, area_loss="stalder", area_min=cfg.area_min), a)
    )
    if cfg.lambda_tv:
        loss = loss + cfg.lambda_tv * total_variation(masks)
    return loss, {
        "loss/target": l_t.item(),
        "loss/nontarget": l_nt.item(),
        "loss/ne": l_ne.item(),
        "loss/total": loss.item(),
    }
