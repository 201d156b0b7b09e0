"""Which agent an explainer belongs to.

An explainer's maps mean something only for the agent it was trained against: its checkpoint
records that agent's weight hash (``meta["agent_hash"]``). Everything that puts an explainer
next to an agent (``ExplainedEnv``, ``play``, ``record``, ``evaluate``, ``export``) calls
:func:`check_pairing`, which refuses a mismatch unless the caller opts out explicitly.
"""

from __future__ import annotations

from typing import Any

from vmask_live.checkpoint import tensors_sha256
from vmask_live.errors import PairingError

__all__ = ["agent_hash", "explainer_meta", "check_pairing", "action_names_mismatch"]


def agent_hash(agent: Any) -> str:
    """A short, stable hash of an agent's weights (16 hex digits of SHA-256); an agent with a
    ``pairing_state()`` (an SB3 model loaded by SB3) is hashed on the weights it names."""
    state = agent.pairing_state() if hasattr(agent, "pairing_state") else agent.state_dict()
    return tensors_sha256(state)[:16]


def explainer_meta(explainer: Any) -> dict[str, Any]:
    """The metadata of an :class:`~vmask_live.explainer.Explainer` or of a runtime wrapping one."""
    meta = getattr(explainer, "meta", None)
    if meta is None:
        meta = getattr(getattr(explainer, "explainer", None), "meta", None)
    return dict(meta or {})


def check_pairing(explainer: Any, agent: Any, *, allow_mismatch: bool = False) -> None:
    """Raise :class:`PairingError` unless ``explainer`` was trained for ``agent``.

    Args:
        explainer: an ``Explainer`` or a runtime wrapping one.
        agent: an :class:`~vmask_live.agents.Agent` (``None``: nothing to check).
        allow_mismatch: the caller knows the pair differs and wants it anyway.
    """
    if agent is None or allow_mismatch:
        return
    meta = explainer_meta(explainer)
    trained_for = meta.get("agent_hash")
    given = agent_hash(agent)
    if trained_for == given:
        return
    cfg = meta.get("train_config") or {}
    env = meta.get("env") or "ENV"
    source = getattr(explainer, "path", None) or getattr(getattr(explainer, "explainer", None), "path", None)
    what = f"Explainer {str(source)!r}" if source else "The explainer"
    if trained_for is None:
        got = f"{what} records no agent it was trained for"
    else:
        agent_spec = cfg.get("agent")
        got = f"{what} was trained for agent {trained_for}" + (f" ({agent_spec})" if agent_spec else "")
    raise PairingError(
        f"{got}, but the given agent hashes to {given}. Its maps would explain another network's "
        "decisions. Train an explainer for this agent:\n"
        f"  vmask-live collect --env {env} --agent YOUR_AGENT --out runs/data\n"
        "  vmask-live train --data runs/data --agent YOUR_AGENT --out runs/explainer\n"
        "or, if you really mean this pair, pass allow_mismatch=True (CLI: --allow-mismatch)"
    )


def _generic(names: Any) -> bool:
    return not names or [str(n) for n in names] == [str(i) for i in range(len(names))]


def action_names_mismatch(who: str, recorded: Any, env_names: Any) -> str | None:
    """Why ``who``'s recorded action names say it belongs to another game than the env (``None``
    when they match, or when either side only knows action indices). Two games with the same
    number of actions (Ms. Pac-Man and Enduro: 9) pass every shape check; only the names differ."""
    if _generic(recorded) or _generic(env_names) or list(recorded) == list(env_names):
        return None
    return (
        f"{who} was made for the actions {list(recorded)}, but the env's actions are {list(env_names)}: it belongs "
        "to another game with as many actions"
    )
