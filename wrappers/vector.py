"""Vector forms of ``ExplainedEnv``: one batched explainer call over all sub-environments.

* :class:`ExplainedVectorEnv` for ``gymnasium.vector`` envs: ``infos["saliency"]`` is
  ``(num_envs, K, H, W)`` with the boolean mask ``infos["_saliency"]`` (Gymnasium's vector info
  convention), likewise ``saliency_action`` and ``action_probs``.
* :class:`ExplainedVecEnv` for Stable-Baselines3 ``VecEnv``: each sub-env's info dict gets the
  same keys as the single-env wrapper.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

from vmask_live.wrappers.explained_env import check_compatible, resolve_explainer

__all__ = ["ExplainedVectorEnv", "ExplainedVecEnv"]


def _batch_explain(explainer, agent, obs: np.ndarray) -> dict[str, np.ndarray]:
    out = {"saliency": explainer(obs)}
    if agent is not None:
        actions, probs, _ = agent.act(obs)
        out["saliency_action"], out["action_probs"] = actions, probs
    return out


class ExplainedVectorEnv(VectorWrapper):
    """Explain all sub-envs of a Gymnasium vector env in one explainer (and agent) call.

    Args:
        env: a ``gymnasium.vector.VectorEnv`` of pixel envs.
        explainer: checkpoint path, ``default:NAME``, ``Explainer`` or runtime.
        agent: optional agent.
        saliency_key: the ``infos`` key of the maps.
    """

    def __init__(
        self,
        env: VectorEnv,
        explainer: Any,
        agent: Any | None = None,
        *,
        saliency_key: str = "saliency",
        backend: str = "auto",
    ) -> None:
        super().__init__(env)
        self.explainer = resolve_explainer(explainer, backend)
        self.agent = agent
        self.saliency_key = saliency_key
        check_compatible(env.single_observation_space, env.single_action_space, self.explainer, agent)

    def _add(self, obs: np.ndarray, infos: dict[str, Any]) -> dict[str, Any]:
        infos = dict(infos)
        n = self.num_envs
        for key, value in _batch_explain(self.explainer, self.agent, np.asarray(obs)).items():
            key = self.saliency_key if key == "saliency" else key
            if key in infos:
                raise KeyError(f"infos already has a {key!r} entry; pass another saliency_key=")
            infos[key] = value
            infos[f"_{key}"] = np.ones(n, dtype=bool)
        return infos

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        return obs, self._add(obs, infos)

    def step(self, actions):
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        return obs, rewards, terminations, truncations, self._add(obs, infos)


def _sb3_wrapper_base():
    from stable_baselines3.common.vec_env import VecEnvWrapper

    return VecEnvWrapper


class ExplainedVecEnv:
    """Stable-Baselines3 ``VecEnv`` version: adds ``saliency`` (and agent keys) to each info dict.

    SB3 VecEnvs return channel-last images transposed only inside the policy; pass the VecEnv the
    explainer was trained on (for Atari, our ``make_env`` observations). Created through
    ``__new__`` so that importing this module does not import SB3.
    """

    def __new__(cls, venv: Any, explainer: Any, agent: Any | None = None, *, backend: str = "auto"):
        base = _sb3_wrapper_base()

        class _ExplainedVecEnv(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                super().__init__(venv)
                self.explainer = resolve_explainer(explainer, backend)
                self.agent = agent
                check_compatible(venv.observation_space, venv.action_space, self.explainer, agent)
                self.reset_infos: list[dict] = [{} for _ in range(venv.num_envs)]

            def reset(self):
                obs = self.venv.reset()
                extra = _batch_explain(self.explainer, self.agent, obs)
                self.reset_infos = [{k: v[i] for k, v in extra.items()} for i in range(self.num_envs)]
                return obs

            def step_wait(self):
                obs, rewards, dones, infos = self.venv.step_wait()
                extra = _batch_explain(self.explainer, self.agent, obs)
                for i, info in enumerate(infos):
                    info.update({k: v[i] for k, v in extra.items()})
                return obs, rewards, dones, infos

        return _ExplainedVecEnv()
