"""Tiny models for fast tests and examples (SB3-style: test fixtures ship with the package).

They are untrained but deterministic (seeded); use the trainers for real ones.
"""

from __future__ import annotations

import torch

from vmask_live.agents import SmallCNN, TorchAgent
from vmask_live.envs.beacon import ACTION_NAMES
from vmask_live.explainer import Explainer
from vmask_live.explainer_nets import build_explainer
from vmask_live.observations import ObsFormat
from vmask_live.overlay import Reference
from vmask_live.pairing import agent_hash

__all__ = ["tiny_explainer", "tiny_agent", "BEACON_FORMAT"]

BEACON_FORMAT = ObsFormat(shape=(84, 84), layout="hw", scale=255.0)


def tiny_explainer(
    seed: int = 0,
    obs_format: ObsFormat = BEACON_FORMAT,
    n_actions: int = 5,
    action_names: list[str] | None = None,
    agent: TorchAgent | None = None,
) -> Explainer:
    """A small seeded FCN explainer (plain :class:`Explainer`, torch inference).

    It records the agent it belongs to as a trained explainer does: ``agent``, or by default
    ``tiny_agent(seed, obs_format, n_actions)``, so the two pair without ``allow_mismatch``.
    """
    torch.manual_seed(seed)
    c, h, w = obs_format.chw
    kwargs = {"in_channels": c, "n_actions": n_actions, "input_size": [h, w], "width": 4}
    net = build_explainer("fcn", **kwargs).eval()
    names = action_names or (ACTION_NAMES if n_actions == 5 else [str(i) for i in range(n_actions)])
    owner = agent if agent is not None else tiny_agent(seed, obs_format, n_actions)
    meta = {"agent_hash": agent_hash(owner)}
    return Explainer(net, "fcn", kwargs, obs_format, Reference("black"), names, meta)


def tiny_agent(
    seed: int = 0, obs_format: ObsFormat = BEACON_FORMAT, n_actions: int = 5, action_names: list[str] | None = None
) -> TorchAgent:
    """A small seeded (untrained) CNN agent (Beacon's action names for 5 actions unless given)."""
    torch.manual_seed(seed)
    c, h, w = obs_format.chw
    names = action_names or (ACTION_NAMES if n_actions == 5 else None)
    return TorchAgent(SmallCNN(c, n_actions, (h, w), width=4), obs_format, n_actions, 1.0, names).freeze()
