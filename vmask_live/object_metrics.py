"""Object metrics (SPEC §2, "Object mass"): how much of a map lies on the game's objects, against
the shuffled control, a static layout prior and the agent's own reaction to removing each category.

On games whose RAM gives object boxes (:mod:`vmask_live.objects`), a dataset stores each state's
objects as NaN-padded rows ``[category index, id, x0, y0, x1, y1]`` (:mod:`vmask_live.dataset`).
For maps of the agent's action on those states:

* **mass** of a region: ``Σ_{p∈R} m_p / Σ_p m_p`` in % (maps min-max normalised as for every metric),
  for the *actors* (every category but the HUD ones and static items such as power pills: player, ghosts, fruit, boxes dilated
  ``dilate`` px) and for each category alone; a uniform map scores the region's **area** share.
* **pointing game** on the actors: is the arg-max pixel inside them.
* **shuffled control**: the same map scored against the objects of a state from *another
  episode* (:func:`shuffle_partners`, seeded). Mass that survives shuffling is layout bias (where
  actors usually are), not tracking; the headline **object score** is ``mass − shuffled mass``
  of the actors.
* **static prior**: the mean actor mask of the other episodes' states, used as a saliency map
  (:func:`static_prior_maps`): what knowing the layout alone scores.
* **category counterfactual**: how often the agent's action flips when one category's (dilated)
  boxes are replaced by the reference (:func:`category_flips`), a check of the agent, not of a method.

Example:
    >>> import numpy as np, torch
    >>> rows = np.full((1, 2, 6), np.nan, np.float32)
    >>> rows[0, 0] = (0, 0, 2, 2, 4, 4)  # a "player" box
    >>> maps = torch.zeros(1, 8, 8)
    >>> maps[0, 2:4, 2:4] = 1
    >>> regions = region_masks(rows, ["player"], (8, 8), dilate=0)
    >>> float(region_mass(maps, regions["actors"])[0])
    100.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from vmask_live.errors import DatasetError
from vmask_live.metrics import pointing_game, relevance_mass
from vmask_live.objects import GameObject, object_masks
from vmask_live.overlay import overlay

__all__ = [
    "ObjectSettings",
    "ACTORS",
    "decode_objects",
    "region_masks",
    "region_mass",
    "shuffle_partners",
    "object_scores",
    "static_prior_maps",
    "category_flips",
    "region_areas",
    "uniform_maps",
]

ACTORS = "actors"
"""Name of the region of all non-HUD objects."""


@dataclass(frozen=True)
class ObjectSettings:
    """How objects are scored (recorded with every cached result)."""

    dilate: int = 2
    """Box dilation in observation pixels (sprites are small and move between stacked frames)."""
    hud_categories: tuple[str, ...] = ("hud", "power_pill", "pill")
    """Categories that are not actors (score, lives; Ms. Pac-Man's pills and power pills, which never move):
    scored as their own regions only. Actors are what SPEC §2 names: player, enemies, fruit."""
    seed: int = 0
    """Seed of the shuffled-control pairing and of the pool of other states."""
    pool: int = 2000
    """Most states drawn (seeded) from the whole dataset as the shuffled partners and static prior."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hud_categories": list(self.hud_categories)}


def decode_objects(rows: np.ndarray, categories: Sequence[str]) -> list[GameObject]:
    """One state's stored rows ``(M, 6)`` back to :class:`~vmask_live.objects.GameObject` (NaN rows skipped)."""
    out = []
    for row in np.asarray(rows, dtype=np.float64):
        if np.isnan(row[0]):
            continue
        out.append(GameObject(categories[int(row[0])], int(row[1]), (row[2], row[3], row[4], row[5])))
    return out


def region_masks(
    rows: np.ndarray,
    categories: Sequence[str],
    hw: Sequence[int],
    dilate: int = 2,
    hud_categories: Sequence[str] = ("hud", "power_pill", "pill"),
) -> dict[str, torch.Tensor]:
    """Bool masks ``(B, H, W)`` of :data:`ACTORS` and of every category, from stored rows ``(B, M, 6)``.

    A category absent from a state has an empty mask there (it scores 0 mass and 0 area).
    """
    rows = np.asarray(rows)
    h, w = int(hw[0]), int(hw[1])
    masks = {name: np.zeros((len(rows), h, w), dtype=bool) for name in (ACTORS, *categories)}
    for i, state in enumerate(rows):
        for obj in decode_objects(state, categories):
            (mask,) = object_masks([obj], (h, w), dilate).values()
            masks[obj.category][i] |= mask
            if obj.category not in hud_categories:
                masks[ACTORS][i] |= mask
    return {k: torch.from_numpy(v) for k, v in masks.items()}


def region_mass(maps: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Share of each (normalised) map's mass inside its region, in % (``(B,)``)."""
    return relevance_mass(maps.float(), region)


def shuffle_partners(episodes: np.ndarray, pool_episodes: np.ndarray, seed: int = 0) -> np.ndarray:
    """For each state, a seeded pick of a pool state from another episode (indices into the pool).

    Args:
        episodes: ``(B,)`` episode id of each scored state.
        pool_episodes: ``(P,)`` episode id of each state that may serve as a partner.
        seed: the pairing is a function of the seed and the two arrays only.

    Raises:
        DatasetError: a state's episode is the only one in the pool (no partner exists).
    """
    episodes, pool_episodes = np.asarray(episodes), np.asarray(pool_episodes)
    rng = np.random.default_rng(seed)
    partners = np.empty(len(episodes), dtype=np.int64)
    for i, e in enumerate(episodes):
        candidates = np.flatnonzero(pool_episodes != e)
        if len(candidates) == 0:
            raise DatasetError(
                f"No state of another episode than {int(e)} to pair with for the shuffled object control: the "
                "states come from one episode. Collect more episodes (a complete dataset has at least 3)"
            )
        partners[i] = candidates[rng.integers(len(candidates))]
    return partners


def object_scores(
    maps: torch.Tensor,
    regions: dict[str, torch.Tensor],
    shuffled: dict[str, torch.Tensor],
    with_pointing: bool = True,
) -> dict[str, float]:
    """Mean object metrics of maps ``(B, H, W)`` (in %).

    Args:
        maps: one map per state (of the agent's action).
        regions: the states' own :func:`region_masks`.
        shuffled: the region masks of each state's shuffled partner (same order as ``maps``).
        with_pointing: add the pointing game (meaningless for a constant map, whose arg-max is pixel 0).

    Returns:
        ``object_score`` (actor mass − shuffled actor mass), ``actor_mass``, ``actor_mass_shuffled``,
        ``actor_pointing``/``actor_pointing_shuffled``, and ``mass:CATEGORY``/``mass_shuffled:CATEGORY``
        for every category.
    """
    maps = maps.float()
    out: dict[str, float] = {}
    for name in regions:
        own = float(region_mass(maps, regions[name]).mean())
        other = float(region_mass(maps, shuffled[name]).mean())
        if name == ACTORS:
            out.update(object_score=own - other, actor_mass=own, actor_mass_shuffled=other)
        else:
            out[f"mass:{name}"], out[f"mass_shuffled:{name}"] = own, other
    if with_pointing:
        out["actor_pointing"] = 100 * float(pointing_game(maps, regions[ACTORS]).float().mean())
        out["actor_pointing_shuffled"] = 100 * float(pointing_game(maps, shuffled[ACTORS]).float().mean())
    return out


def region_areas(regions: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean area share of each region in % (the mass a uniform map scores): ``area:NAME``."""
    return {f"area:{name}": 100 * float(mask.flatten(1).float().mean()) for name, mask in regions.items()}


def static_prior_maps(episodes: np.ndarray, pool_episodes: np.ndarray, pool_actors: torch.Tensor) -> torch.Tensor:
    """For each state, the mean actor mask of the pool states of *other* episodes ``(B, H, W)``.

    Used as a saliency map it scores what the typical layout alone scores (no look at the state).
    """
    pool_episodes = np.asarray(pool_episodes)
    actors = pool_actors.float()
    total, count = actors.sum(0), len(pool_episodes)
    maps = []
    for e in np.asarray(episodes):
        own = torch.from_numpy(pool_episodes == e)
        n_other = count - int(own.sum())
        if n_other == 0:
            raise DatasetError(f"No state of another episode than {int(e)} for the static object prior")
        maps.append((total - actors[own].sum(0)) / n_other)
    return torch.stack(maps)


@torch.inference_mode()
def category_flips(
    agent: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    actions: torch.Tensor,
    regions: dict[str, torch.Tensor],
    reference: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 64,
) -> dict[str, dict[str, Any]]:
    """How often the agent's action changes when one category's boxes are replaced by the reference.

    For each category (not :data:`ACTORS`) and each state where it is present, the state with that
    category's region set to the reference goes through the agent; all categories of a batch of
    states go in one agent call.

    Returns:
        ``{category: {"flip_rate": % of those states whose arg-max action differs from the label
        (``None`` when none has it), "states": how many states have the category}}``.
    """
    names = [k for k in regions if k != ACTORS]
    flips = dict.fromkeys(names, 0)
    present = dict.fromkeys(names, 0)
    for i in range(0, x.shape[0], batch_size):
        xb, ab = x[i : i + batch_size], actions[i : i + batch_size]
        rb = torch.broadcast_to(reference(xb), xb.shape)
        states, labels, owners = [], [], []
        for name in names:
            mask = regions[name][i : i + batch_size]
            has = mask.flatten(1).any(1)
            if not has.any():
                continue
            states.append(overlay(xb[has], 1 - mask[has].to(xb.dtype), rb[has]))
            labels.append(ab[has])
            owners += [name] * int(has.sum())
        if not states:
            continue
        changed = (agent(torch.cat(states)).argmax(1) != torch.cat(labels)).tolist()
        for name, flip in zip(owners, changed, strict=True):
            present[name] += 1
            flips[name] += int(flip)
    return {
        name: {
            "flip_rate": 100 * flips[name] / present[name] if present[name] else None,
            "states": present[name],
        }
        for name in names
    }


def uniform_maps(n: int, hw: Sequence[int]) -> torch.Tensor:
    """Constant maps: their mass on a region is the region's area share."""
    return torch.ones(n, int(hw[0]), int(hw[1]))
