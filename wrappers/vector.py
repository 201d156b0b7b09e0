"""Vector forms of ``ExplainedEnv``: one batched explainer call over all sub-environments.

* :class:`ExplainedVectorEnv` for ``gymnasium.vector`` envs: ``infos["saliency"]`` is
  ``(num_envs, K, H, W)`` with the boolean mask ``infos["_saliency"]`` (Gymnasium's vector info
  convention), likewise ``saliency_action`` and ``action_probs``.
* :class:`ExplainedVecEnv` for Stable-Baselines3 ``VecEnv``: each sub-env's info dict gets the
  same keys as the single-env wrapper.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

from vmask_live.errors import ConfigError
from vmask_live.pairing import check_pairing
from vmask_live.types import ExplainerSpec, SaliencyExplainer
from vmask_live.wrappers.explained_env import check_compatible, resolve_agent, resolve_explainer

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

    from vmask_live.agents import Agent

__all__ = ["ExplainedVectorEnv", "ExplainedVecEnv"]


class _Explain:
    """The checks and the batched calls both vector forms share."""

    def __init__(
        self,
        space: gym.Space[Any],
        action_space: gym.Space[Any],
        explainer: ExplainerSpec,
        agent: Any | None,
        backend: str,
        allow_mismatch: bool,
    ) -> None:
        self.explainer: SaliencyExplainer = resolve_explainer(explainer, backend)
        self.agent: Agent | None = resolve_agent(agent)
        self.to_explainer, self.to_agent = check_compatible(space, action_space, self.explainer, self.agent)
        check_pairing(self.explainer, self.agent, allow_mismatch=allow_mismatch)

    def __call__(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        obs = np.asarray(obs)
        out = {"saliency": self.explainer(self.to_explainer(obs))}
        if self.agent is not None and self.to_agent is not None:
            actions, probs, _ = self.agent.act(self.to_agent(obs))
            out["saliency_action"], out["action_probs"] = actions, probs
        return out


class ExplainedVectorEnv(VectorWrapper):
    """Explain all sub-envs of a Gymnasium vector env in one explainer (and agent) call.

    Args:
        env: a ``gymnasium.vector.VectorEnv`` of pixel envs.
        explainer: checkpoint path, ``default:NAME``, ``Explainer`` or runtime.
        agent: optional agent (the explainer must have been trained for it).
        saliency_key: the ``infos`` key of the maps.
        backend: inference backend when ``explainer`` is a path.
        allow_mismatch: use an explainer with an agent it was not trained for.
    """

    def __init__(
        self,
        env: VectorEnv,
        explainer: ExplainerSpec,
        agent: Any | None = None,
        *,
        saliency_key: str = "saliency",
        backend: str = "auto",
        allow_mismatch: bool = False,
    ) -> None:
        super().__init__(env)
        self._explain = _Explain(
            env.single_observation_space, env.single_action_space, explainer, agent, backend, allow_mismatch
        )
        self.explainer, self.agent = self._explain.explainer, self._explain.agent
        self.saliency_key = saliency_key

    def _add(self, obs: np.ndarray, infos: dict[str, Any]) -> dict[str, Any]:
        infos = dict(infos)
        n = self.num_envs
        for key, value in self._explain(obs).items():
            key = self.saliency_key if key == "saliency" else key
            if key in infos:
                raise ConfigError(f"infos already has a {key!r} entry; pass another saliency_key=")
            infos[key] = value
            infos[f"_{key}"] = np.ones(n, dtype=bool)
        return infos

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        # (a list of seeds, one per sub-env, passes through as well; typed as Gymnasium's wrappers are)
        obs, infos = self.env.reset(seed=seed, options=options)
        return obs, self._add(obs, infos)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        return obs, rewards, terminations, truncations, self._add(obs, infos)


def _sb3_wrapper_base() -> type[VecEnvWrapper]:
    from stable_baselines3.common.vec_env import VecEnvWrapper

    return VecEnvWrapper


class ExplainedVecEnv:
    """Stable-Baselines3 ``VecEnv`` version: adds ``saliency`` (and agent keys) to each info dict.

    RL-Zoo VecEnvs (``make_atari_env`` + ``VecFrameStack``) give channel-last ``(84, 84, 4)``
    frame stacks: they are transposed to the checkpoint's channel-first layout on the way in (the
    checkpoint records its layout), so no ``VecTransposeImage`` is needed. Created through
    ``__new__`` so that importing this module does not import SB3.
    """

    def __new__(  # type: ignore[misc]  # a class-shaped factory, so SB3 loads only when one is built
        cls,
        venv: VecEnv,
        explainer: ExplainerSpec,
        agent: Any | None = None,
        *,
        backend: str = "auto",
        allow_mismatch: bool = False,
    ) -> VecEnvWrapper:
        base = _sb3_wrapper_base()
        explain = _Explain(venv.observation_space, venv.action_space, explainer, agent, backend, allow_mismatch)

        class _ExplainedVecEnv(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                super().__init__(venv)
                self.explainer, self.agent = explain.explainer, explain.agent
                self.reset_infos: list[dict[str, Any]] = [{} for _ in range(venv.num_envs)]

            def reset(self) -> VecEnvObs:
                obs = self.venv.reset()
                extra = explain(obs)
                self.reset_infos = [{k: v[i] for k, v in extra.items()} for i in range(self.num_envs)]
                return obs

            def step_wait(self) -> VecEnvStepReturn:
                obs, rewards, dones, infos = self.venv.step_wait()
                extra = explain(obs)
                for i, info in enumerate(infos):
                    info.update({k: v[i] for k, v in extra.items()})
                return obs, rewards, dones, infos

        return _ExplainedVecEnv()
