"""Environment names the CLI and :func:`vmask_live.make_env` understand."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from vmask_live.envs.atari import ATARI_GAMES, make_atari
from vmask_live.envs.beacon import BeaconEnv
from vmask_live.errors import ConfigError

__all__ = ["make_env", "known_envs", "canonical_name", "BeaconEnv", "action_names"]

BEACON_ID = "vmask_live/Beacon-v0"
if BEACON_ID not in gym.registry:
    gym.register(BEACON_ID, entry_point="vmask_live.envs.beacon:BeaconEnv")

_GROUND_TRUTH = {
    "Beacon": "the ground-truth env: reach the beacon among clutter (built in)",
    "BeaconTextured": "Beacon on per-pixel grey noise instead of black: no pixel equals the reference (built in)",
}
_GROUND_TRUTH_KWARGS: dict[str, dict[str, Any]] = {"Beacon": {}, "BeaconTextured": {"texture": 48}}


def known_envs() -> dict[str, str]:
    """CLI name -> what it is and what it needs installed."""
    names = dict(_GROUND_TRUTH)
    names.update(
        {n: f"Atari {i} with RL-Zoo preprocessing (ale-py, installed with vmask-live)" for n, i in ATARI_GAMES.items()}
    )
    return names


def canonical_name(name: str) -> str:
    """Case-insensitive CLI name (``mspacman`` -> ``MsPacman``); raises for unknown names."""
    for known in known_envs():
        if name.lower() in (known.lower(), f"{known.lower()}-v0", BEACON_ID.lower() if known == "Beacon" else ""):
            return known
    for known, ale_id in ATARI_GAMES.items():
        if name == ale_id:
            return known
    raise ConfigError(f"Unknown env {name!r}; known envs: {', '.join(known_envs())} (see `vmask-live envs`)")


def make_env(name: str, *, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """Make an environment by name with the preprocessing its agents expect.

    Args:
        name: a name from :func:`known_envs` (case-insensitive) or an ALE id.
        render_mode: ``"rgb_array"`` for frames to draw overlays on.
        **kwargs: forwarded to the env factory (``training=True`` adds Atari training wrappers).
    """
    if name.startswith("ALE/") and name not in ATARI_GAMES.values():
        return make_atari(name, render_mode=render_mode, **kwargs)
    env_name = canonical_name(name)
    if env_name in _GROUND_TRUTH:
        kwargs.pop("training", None)
        return gym.make(BEACON_ID, render_mode=render_mode, **{**_GROUND_TRUTH_KWARGS[env_name], **kwargs})
    return make_atari(env_name, render_mode=render_mode, **kwargs)


def action_names(env: gym.Env) -> list[str]:
    """Human names of a discrete action space (ALE meanings, Beacon's names, else indices)."""
    base = env.unwrapped
    if hasattr(base, "get_action_meanings"):
        return list(base.get_action_meanings())
    if isinstance(base, BeaconEnv):
        from vmask_live.envs.beacon import ACTION_NAMES

        return list(ACTION_NAMES)
    return [str(i) for i in range(int(env.action_space.n))]
