"""Explanation metrics (paper §4.2 following LATEC; SPEC §2), one path for every method.

Every metric takes saliency maps ``(B, H, W)`` or a *saliency function*
``fn(x, actions) -> (B, H, W)`` on model-space states ``x`` ``(B, C, H, W)``, so VisionMask and
every baseline share the same code. Agent calls are batched: all ``n + 1`` insertion/deletion
states of several samples go through the agent together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vmask_live.overlay import overlay

__all__ = [
    "SaliencyFn",
    "normalise",
    "rescale",
    "METRICS_VERSION",
    "accuracy",
    "insertion_deletion",
    "lle",
    "sparseness",
    "relevance_mass",
    "pointing_game",
    "EMPTY_MAP_MAX",
    "check_maps",
    "by_action",
    "evaluate_maps",
]

SaliencyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

METRICS_VERSION = 3
"""Bumped whenever a metric's definition changes (2, 3: accuracy and relevance mass rescale the
maps of non-mask methods per map, never per batch; sparseness takes the maps as they are);
``evaluate``'s cached results key on it, so no result of an older definition is reused."""

EMPTY_MAP_MAX = 0.05
"""A mask whose largest value is below this keeps (almost) nothing of its state: an *empty* map.
An explainer gives them to an action the reference alone already yields (Beacon's NOOP before the
deletion term, docs/ablation-beacon.md); the per-action breakdown counts them."""


def rescale(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min-max normalisation to [0, 1], every map (a constant map becomes all zeros)."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-12)).view_as(maps)


def normalise(maps: torch.Tensor) -> torch.Tensor:
    """Per-map min-max normalisation to [0, 1] of each map that is not already in [0, 1]; maps in
    [0, 1] stay as they are. Decided map by map, so a map's score never depends on the other maps
    of its batch. Methods whose maps are not meant to be in [0, 1] (gradients, RISE, ...) are
    rescaled by the caller (:func:`rescale`), as ``evaluate`` does from the method's ``value_range``:
    a gradient map that happens to stay below 1 must not act as a faint mask."""
    if not maps.numel():
        return maps
    flat = maps.flatten(1)
    outside = (flat.min(1).values < 0) | (flat.max(1).values > 1)
    if not outside.any():
        return maps
    return torch.where(outside.view(-1, *[1] * (maps.dim() - 1)), rescale(maps), maps)


@torch.inference_mode()
def accuracy(
    agent: torch.nn.Module, x: torch.Tensor, actions: torch.Tensor, maps: torch.Tensor, reference: torch.Tensor
) -> torch.Tensor:
    """Per sample: does the agent still pick ``a`` on ``overlay(s, m, r)``? (bool ``(B,)``)."""
    kept = overlay(x, normalise(maps), reference)
    return agent(kept).argmax(1) == actions


@torch.inference_mode()
def insertion_deletion(
    agent: torch.nn.Module,
    x: torch.Tensor,
    actions: torch.Tensor,
    maps: torch.Tensor,
    reference: torch.Tensor,
    n_steps: int = 50,
    samples_per_call: int = 8,
) -> dict[str, torch.Tensor]:
    """Insertion and deletion AUC (in %, per sample) and their mean curves.

    Pixels are ranked by saliency (descending, ties broken stably by pixel index). At fraction
    ``t = k / n_steps``, deletion replaces the top ``round(t·HW)`` pixels of ``s`` by the reference;
    insertion starts from the reference and restores them. The AUC of the agent's softmax
    probability of ``a`` is taken by the trapezoid rule over ``t ∈ [0, 1]``.
    """
    B, _, H, W = x.shape
    hw = H * W
    order = torch.argsort(maps.reshape(B, hw), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(hw, device=x.device).expand(B, hw))
    counts = torch.round(torch.linspace(0, 1, n_steps + 1, device=x.device) * hw)
    ins_p, del_p = [], []
    ref = (reference if reference.ndim == 4 else reference.unsqueeze(0)).expand_as(x)
    for i in range(0, B, samples_per_call):
        sl = slice(i, i + samples_per_call)
        top = (rank[sl, None, :] < counts[None, :, None]).to(x.dtype).view(-1, n_steps + 1, H, W)
        inserted = overlay(x[sl], top, ref[sl])  # (b, n+1, C, H, W)
        deleted = overlay(x[sl], 1 - top, ref[sl])
        b = top.shape[0]
        states = torch.cat([inserted, deleted], dim=1).flatten(0, 1)
        probs = torch.softmax(agent(states).float(), dim=1).view(b, 2, n_steps + 1, -1)
        a = actions[sl].view(b, 1, 1, 1).expand(b, 2, n_steps + 1, 1)
        pa = probs.gather(3, a).squeeze(3)
        ins_p.append(pa[:, 0])
        del_p.append(pa[:, 1])
    ins, dele = torch.cat(ins_p), torch.cat(del_p)
    t = torch.linspace(0, 1, n_steps + 1, device=x.device)
    return {
        "insertion": 100 * torch.trapezoid(ins, t, dim=1),
        "deletion": 100 * torch.trapezoid(dele, t, dim=1),
        "insertion_curve": ins.mean(0),
        "deletion_curve": dele.mean(0),
    }


def lle(
    fn: SaliencyFn, x: torch.Tensor, actions: torch.Tensor, eps: float = 0.05, n_neighbours: int = 10, seed: int = 0
) -> torch.Tensor:
    """Local Lipschitz estimate ``max_{s'} ‖E(s) − E(s')‖₂ / ‖s − s'‖₂`` per sample.

    Neighbours ``s' = clip(s + U(−eps, eps), 0, 1)`` in model space; the explained action is kept
    fixed at ``a``. All ``B·N`` neighbours are explained in one call of ``fn``. Not run under
    inference mode, so gradient-based methods can differentiate inside ``fn``.
    """
    B = x.shape[0]
    g = torch.Generator(device="cpu").manual_seed(seed)
    noise = (torch.rand((B, n_neighbours, *x.shape[1:]), generator=g) * 2 - 1).to(x.device) * eps
    xn = (x.unsqueeze(1) + noise).clamp(0, 1)
    e0 = fn(x, actions).detach().float()
    en = fn(xn.flatten(0, 1), actions.repeat_interleave(n_neighbours)).detach().float().view(B, n_neighbours, -1)
    num = (en - e0.view(B, 1, -1)).norm(dim=2)
    den = (xn - x.unsqueeze(1)).flatten(2).norm(dim=2).clamp_min(1e-12)
    return (num / den).max(dim=1).values


def sparseness(maps: torch.Tensor) -> torch.Tensor:
    """Gini index of each flattened ``|m|`` (in %). ``G = Σ_i (2i − n − 1) x_i / (n Σ x_i)``."""
    x = maps.abs().flatten(1).double().sort(dim=1).values
    n = x.shape[1]
    i = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    total = x.sum(1)
    g = ((2 * i - n - 1) * x).sum(1) / (n * total.clamp_min(1e-300))
    return (100 * torch.where(total > 0, g, torch.zeros_like(g))).float()


def check_maps(maps: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
    """Saliency maps must be ``(B, H, W)`` of the states' (or masks') ``shape`` and finite.

    Raises:
        ValueError: another shape (e.g. masks at the frame's resolution, maps at the model's), or
            NaN / infinite values, which every metric would turn into plausible numbers.
    """
    if tuple(maps.shape) != tuple(shape):
        raise ValueError(
            f"Expected saliency maps of shape {tuple(shape)} (one H x W map per state) for {what}, got "
            f"{tuple(maps.shape)}; maps and {what} must be at the same resolution (resize one of them)"
        )
    bad = int((~torch.isfinite(maps)).sum())
    if bad:
        raise ValueError(
            f"Expected finite saliency maps, got {bad} NaN or infinite values in {maps.shape[0]} maps: the "
            "saliency function (or a checkpoint behind it) produced them; no metric of them would mean anything"
        )


def relevance_mass(maps: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Share of saliency mass inside the relevant region, ``Σ_{p∈R} m_p / Σ_p m_p`` (in %)."""
    check_maps(maps, tuple(relevant.shape), "the relevant masks")
    m = normalise(maps).flatten(1)
    r = relevant.flatten(1).to(m.dtype)
    return 100 * (m * r).sum(1) / m.sum(1).clamp_min(1e-12)


def pointing_game(maps: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Is the arg-max pixel inside the relevant region? (bool per sample)."""
    check_maps(maps, tuple(relevant.shape), "the relevant masks")
    idx = maps.flatten(1).argmax(1)
    return relevant.flatten(1).gather(1, idx[:, None]).squeeze(1).bool()


def by_action(per_sample: dict[str, torch.Tensor], actions: torch.Tensor) -> dict[str, dict[str, float]]:
    """Means of per-sample values grouped by the chosen action: ``{str(a): {"n": count, key: mean}}``.

    Example:
        >>> by_action({"accuracy": torch.tensor([100.0, 0.0, 100.0])}, torch.tensor([1, 0, 1]))
        {'0': {'n': 1, 'accuracy': 0.0}, '1': {'n': 2, 'accuracy': 100.0}}
    """
    out: dict[str, dict[str, float]] = {}
    for k in torch.unique(actions).tolist():
        sel = actions == k
        out[str(k)] = {"n": int(sel.sum()), **{m: float(v[sel].float().mean()) for m, v in per_sample.items()}}
    return out


def evaluate_maps(
    agent: torch.nn.Module,
    x: torch.Tensor,
    actions: torch.Tensor,
    fn: SaliencyFn | torch.Tensor,
    reference: Callable[[torch.Tensor], torch.Tensor],
    relevant: torch.Tensor | None = None,
    n_steps: int = 50,
    lle_eps: float = 0.05,
    lle_neighbours: int = 10,
    with_lle: bool = True,
    batch_size: int = 32,
    rescale_maps: bool = False,
    per_action: bool = False,
) -> dict[str, Any]:
    """All metrics of one saliency function on states ``x``, as means (and mean curves).

    ``fn`` is a saliency function or precomputed maps ``(B, H, W)`` (LLE then needs a function).
    ``reference`` is a :class:`~vmask_live.overlay.Reference` (or any ``states -> references``).
    ``rescale_maps``: the maps are not masks in [0, 1] (gradients, RISE, LIME): accuracy and
    relevance mass take each map min-max rescaled (:func:`rescale`); sparseness (the Gini index of
    ``|m|``, as Quantus computes it), insertion/deletion and pointing, which a per-map rescaling
    leaves unchanged or must not shift, take the maps as they are.
    ``per_action``: also ``out["by_action"]`` (:func:`by_action`): every per-sample metric by the
    chosen action, with ``map_area`` (the mask's mean, % of the frame) and ``empty_maps`` (% of
    that action's maps whose largest value is below :data:`EMPTY_MAP_MAX`).
    """
    if isinstance(fn, torch.Tensor) and with_lle:
        raise ValueError("LLE re-explains perturbed states: pass a saliency function, not maps")
    if x.ndim != 4 or tuple(actions.shape) != (x.shape[0],):
        raise ValueError(
            f"Expected states (B, C, H, W) and one action per state (B,), got states {tuple(x.shape)} and "
            f"actions {tuple(actions.shape)}"
        )
    rows: dict[str, list[torch.Tensor]] = {}
    mask_rows: dict[str, list[torch.Tensor]] = {"map_area": [], "empty_maps": []}  # per_action only
    for i in range(0, x.shape[0], batch_size):
        sl = slice(i, i + batch_size)
        xb, ab = x[sl], actions[sl]
        rb = reference(xb)
        maps = fn[sl].float() if isinstance(fn, torch.Tensor) else fn(xb, ab).float()
        check_maps(maps, (xb.shape[0], *xb.shape[-2:]), "the states")
        unit = rescale(maps) if rescale_maps else maps
        res: dict[str, torch.Tensor] = {
            "accuracy": 100 * accuracy(agent, xb, ab, unit, rb).float(),
            "sparseness": sparseness(maps),
        }
        res.update(insertion_deletion(agent, xb, ab, normalise(maps), rb, n_steps))
        res["insertion_curve"] = res["insertion_curve"][None] * xb.shape[0]
        res["deletion_curve"] = res["deletion_curve"][None] * xb.shape[0]
        if with_lle:
            assert not isinstance(fn, torch.Tensor)  # checked above: LLE needs a saliency function
            res["lle"] = lle(fn, xb, ab, lle_eps, lle_neighbours, seed=i)
        if relevant is not None:
            rel = relevant[sl]
            res["relevance_mass"] = relevance_mass(unit, rel)
            res["pointing_game"] = 100 * pointing_game(maps, rel).float()
            res["relevant_area"] = 100 * rel.flatten(1).float().mean(1)
        if per_action:
            mask_rows["map_area"].append(100 * unit.flatten(1).mean(1))
            mask_rows["empty_maps"].append(100 * (unit.flatten(1).amax(1) < EMPTY_MAP_MAX).float())
        for k, value in res.items():
            rows.setdefault(k, []).append(value)
    n = x.shape[0]
    out: dict[str, Any] = {}
    if per_action:
        samples = {k: torch.cat(parts) for k, parts in {**rows, **mask_rows}.items() if not k.endswith("_curve")}
        out["by_action"] = by_action(samples, actions)
    for k, parts in rows.items():
        if k.endswith("_curve"):
            out[k] = (torch.cat(parts).sum(0) / n).tolist()
        else:
            out[k] = float(torch.cat(parts).float().mean())
    out["n"] = n
    if with_lle:
        out["lle_eps"], out["lle_neighbours"] = lle_eps, lle_neighbours
    return out
