"""States an agent reaches in play, for the tests of bundled agent-explainer pairs."""

from __future__ import annotations

from typing import Any

import numpy as np

import vmask_live as vm


def played_states(
    env_name: str, agent: Any, n: int, seed: int, random_share: float = 0.0
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """``n`` observations of ``env_name`` (and the ``info`` that came with each) while ``agent``
    plays its arg-max action, replaced by a seeded random one in ``random_share`` of the steps."""
    env = vm.make_env(env_name)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    states, infos = [], []
    while len(states) < n:
        states.append(np.asarray(obs))
        infos.append(info)
        action = int(agent.act(np.asarray(obs)[None])[0][0])
        if random_share and rng.random() < random_share:
            action = int(rng.integers(env.action_space.n))
        obs, _, term, trunc, info = env.step(action)
        if term or trunc:
            obs, info = env.reset()
    env.close()
    return np.stack(states), infos
