"""Vector forms of ``ExplainedEnv``: one batched explainer call over all sub-environments.

* :class:`ExplainedVectorEnv` for ``gymnasium.vector`` envs: ``infos["saliency"]`` is
  ``(num_envs, K, H, W)`` with the boolean mask ``infos["_saliency"]`` (Gymnasium's vector info
  convention), likewise ``saliency_action`` and ``action_probs``.
* :class:`ExplainedVecEnv` for Stable-Baselines3 ``VecEnv``: each sub-env's info dict gets the
  same keys as the single-env wrapper.

Where a sub-env's game objects are known (see :mod:`vmask_live.objects`), both also add the object
keys of :class:`~vmask_live.ExplainedEnv` (``objects``, ``saliency_objects``), read from each
sub-env's emulator RAM. In-process sub-envs (``SyncVectorEnv``, ``DummyVecEnv``) are read
directly; sub-envs in worker processes (``AsyncVectorEnv``, ``SubprocVecEnv``) are read with one
call into the workers per step, which works for envs made by :func:`vmask_live.make_env` (their
:class:`~vmask_live.envs.atari.ObjectRam` wrapper answers it). Other worker envs get no object keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium.spaces import Discrete
from gymnasium.vector import VectorEnv, VectorWrapper

from vmask_live import objects as game_objects
from vmask_live.envs import action_names
from vmask_live.errors import ConfigError
from vmask_live.types import ExplainerSpec
from vmask_live.wrappers.explained_env import ExplainCore, PreparedObjects

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn


__all__ = ["ExplainedVectorEnv", "ExplainedVecEnv"]


def _sub_env_action_names(local: Any, call: Any, action_space: Any) -> list[str] | None:
    """The action names of the sub-envs, for the pairing check (``None`` where they cannot be read:
    no discrete actions, worker envs without ``get_action_meanings``, a vector env of another kind).

    ``local`` are in-process sub-envs (``SyncVectorEnv.envs``, ``DummyVecEnv.envs``); otherwise
    ``call(name, *args)`` calls a method of every worker's env (asked first whether it has it: a
    worker dies on a call its env cannot answer).

    Raises:
        ConfigError: the sub-envs name their actions differently (envs of different games).
    """
    if not isinstance(action_space, Discrete):
        return None
    if local is not None:
        found = [tuple(action_names(sub)) for sub in local]
    elif call is not None and all(call("has_wrapper_attr", "get_action_meanings")):
        found = [tuple(names) for names in call("get_action_meanings")]
    else:
        return None
    if len(set(found)) > 1:
        raise ConfigError(
            f"Expected every sub-env to have the same actions, got {sorted(set(found))}; one explainer explains one game: "
            "make a vector env of one game"
        )
    return list(found[0]) if found else None


def _annotated(envs: Any, objects: bool) -> list[tuple[int, Any, game_objects.Annotator]]:
    """``(index, sub-env, annotator)`` of the in-process sub-envs whose game objects are known."""
    if not objects or envs is None:
        return []
    found = ((i, env, game_objects.annotator_for(env)) for i, env in enumerate(envs))
    return [(i, env, annotator) for i, env, annotator in found if annotator is not None]


def _remote_annotated(call: Any, objects: bool) -> list[tuple[int, game_objects.Annotator]]:
    """``(index, annotator)`` of worker-process sub-envs whose objects are known and readable.

    ``call(name, *args)`` calls a method of every sub-env (``AsyncVectorEnv.call``, SB3's
    ``env_method``). A worker dies on a call its env cannot answer, so it is asked first.
    """
    if not objects:
        return []
    answers = call("has_wrapper_attr", "object_ram")
    if not all(answers):
        return []
    found = ((i, game_objects.annotator_for_game(game)) for i, game in enumerate(call("object_game")))
    return [(i, annotator) for i, annotator in found if annotator is not None]


def _objects_of(
    local: list[tuple[int, Any, game_objects.Annotator]],
    remote: list[tuple[int, game_objects.Annotator]],
    call: Any,
    hw: tuple[int, int],
) -> dict[int, PreparedObjects]:
    """The current objects of every annotated sub-env, by index, prepared for maps of size ``hw``."""
    found = {i: game_objects.annotate(sub, annotator) or [] for i, sub, annotator in local}
    if remote:
        rams = call("object_ram")
        found.update({i: annotator(np.asarray(rams[i], dtype=np.uint8)) for i, annotator in remote})
    return {i: PreparedObjects.of(objs, hw) for i, objs in found.items()}


class ExplainedVectorEnv(VectorWrapper):
    """Explain all sub-envs of a Gymnasium vector env in one explainer (and agent) call.

    ``infos`` holds ``saliency`` ``(num_envs, K, H, W)``, and with an agent ``saliency_action``
    ``(num_envs,)`` and ``action_probs`` ``(num_envs, K)``, each with its ``_key`` mask. Where
    sub-envs' game objects are known (a ``SyncVectorEnv`` of Ms. Pac-Man envs, say), also as
    Gymnasium's ``_add_info`` would batch the single-env keys:

    * ``infos["objects"]``: object array ``(num_envs,)``, a list of ``{"category", "id", "box"}``
      dicts per annotated sub-env (``None`` elsewhere), mask ``infos["_objects"]``;
    * ``infos["saliency_objects"]``: ``{object name: (num_envs, K) float32, "_" + name: (num_envs,)
      bool}`` (the objects on screen differ between sub-envs), mask ``infos["_saliency_objects"]``.

    ``AsyncVectorEnv`` sub-envs made by :func:`vmask_live.make_env` are read with one
    ``call("object_ram")`` per step; other worker envs get no object keys.

    Args:
        env: a ``gymnasium.vector.VectorEnv`` of pixel envs.
        explainer: checkpoint path, ``default:NAME``, ``Explainer`` or runtime.
        agent: optional agent (the explainer must have been trained for it).
        saliency_key: the ``infos`` key of the maps.
        backend: inference backend when ``explainer`` is a path.
        allow_mismatch: use an explainer with an agent it was not trained for.
        objects: add the object keys where sub-envs' game objects are known.
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
        objects: bool = True,
    ) -> None:
        super().__init__(env)
        # SyncVectorEnv keeps its sub-envs in ``envs``; AsyncVectorEnv has none in this process
        local = getattr(env.unwrapped, "envs", None)
        # a vector env of another kind (no ``call``) gets no object keys and no action-name check
        self._call = getattr(env.unwrapped, "call", None)
        self._explain = ExplainCore(
            env.single_observation_space,
            env.single_action_space,
            explainer,
            agent,
            backend,
            allow_mismatch,
            objects,
            action_names=_sub_env_action_names(local, self._call, env.single_action_space),
        )
        self.explainer, self.agent = self._explain.explainer, self._explain.agent
        self.saliency_key = saliency_key
        self._annotated = _annotated(local, objects)
        self._remote = _remote_annotated(self._call, objects) if local is None and self._call else []

    def _add(self, obs: np.ndarray, infos: dict[str, Any]) -> dict[str, Any]:
        infos = dict(infos)
        n = self.num_envs
        prepare = None
        if self._annotated or self._remote:
            hw = self.explainer.obs_format.chw[1:]

            def prepare() -> dict[int, PreparedObjects]:  # while the explainer runs
                return _objects_of(self._annotated, self._remote, self._call, hw)

        out, prepared = self._explain.call_with(obs, prepare)
        for key, value in out.items():
            key = self.saliency_key if key == "saliency" else key
            if key in infos:
                raise ConfigError(f"infos already has a {key!r} entry; pass another saliency_key=")
            infos[key] = value
            infos[f"_{key}"] = np.ones(n, dtype=bool)
        if prepared is not None:
            self._add_objects(infos[self.saliency_key], prepared, infos)
        return infos

    def _add_objects(self, maps: np.ndarray, prepared: dict[int, PreparedObjects], infos: dict[str, Any]) -> None:
        for key in ("objects", "saliency_objects"):
            if key in infos:
                raise ConfigError(f"infos already has a {key!r} entry; pass objects=False")
        n, k = self.num_envs, maps.shape[1]
        objs = np.full(n, None, dtype=object)
        shares: dict[str, np.ndarray] = {}
        mask = np.zeros(n, dtype=bool)
        for i, found in prepared.items():
            one = found.keys(maps[i])
            objs[i], mask[i] = one["objects"], True
            for name, share in one["saliency_objects"].items():
                if name not in shares:
                    shares[name], shares[f"_{name}"] = np.zeros((n, k), np.float32), np.zeros(n, dtype=bool)
                shares[name][i], shares[f"_{name}"][i] = share, True
        infos["objects"], infos["_objects"] = objs, mask
        infos["saliency_objects"], infos["_saliency_objects"] = shares, mask.copy()

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

    Where sub-envs' game objects are known, each info dict also gets ``objects`` and
    ``saliency_objects`` as in :class:`~vmask_live.ExplainedEnv` (``objects=False`` turns them off):
    read directly in a ``DummyVecEnv``, with one ``env_method("object_ram")`` per step in a
    ``SubprocVecEnv`` of envs made by :func:`vmask_live.make_env`.

    At an episode's end SB3 returns the next episode's first observation and puts the last one in
    ``info["terminal_observation"]``; the env's own keys in that info describe the last state. The
    saliency keys describe the observation returned (the one the next action is taken on), and the
    last state gets its own ``terminal_saliency``, ``terminal_saliency_action`` and
    ``terminal_action_probs``, so that no key of the info is read against the wrong state. The
    returned observation's keys are also in ``reset_infos[i]``, merged with the inner VecEnv's
    reset info of that sub-env.

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
        objects: bool = True,
    ) -> VecEnvWrapper:
        base = _sb3_wrapper_base()
        # DummyVecEnv keeps its sub-envs in ``envs``; SubprocVecEnv has none in this process
        local = getattr(venv.unwrapped, "envs", None)
        explain = ExplainCore(
            venv.observation_space,
            venv.action_space,
            explainer,
            agent,
            backend,
            allow_mismatch,
            objects,
            action_names=_sub_env_action_names(local, venv.env_method, venv.action_space),
        )
        annotated = _annotated(local, objects)
        remote = _remote_annotated(venv.env_method, objects) if local is None else []

        hw = explain.explainer.obs_format.chw[1:]

        def prepare() -> dict[int, PreparedObjects] | None:  # while the explainer runs
            return _objects_of(annotated, remote, venv.env_method, hw) if annotated or remote else None

        def add_objects(
            maps: np.ndarray, prepared: dict[int, PreparedObjects] | None, infos: list[dict[str, Any]]
        ) -> None:
            for i, found in (prepared or {}).items():
                for key in ("objects", "saliency_objects"):
                    if key in infos[i]:
                        raise ConfigError(f"info of sub-env {i} already has a {key!r} entry; pass objects=False")
                infos[i].update(found.keys(maps[i]))

        def refuse_taken(info: dict[str, Any], keys: Any, i: int) -> None:  # another explainer's: never overwritten
            for key in keys:
                if key in info:
                    raise ConfigError(
                        f"info of sub-env {i} already has a {key!r} entry (its env is explained already); unwrap "
                        "the other explainer (ExplainedEnv inside the VecEnv) or this one"
                    )

        class _ExplainedVecEnv(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                super().__init__(venv)
                self.explainer, self.agent = explain.explainer, explain.agent
                self.reset_infos: list[dict[str, Any]] = [{} for _ in range(venv.num_envs)]

            def reset(self) -> VecEnvObs:
                obs = self.venv.reset()
                extra, prepared = explain.call_with(obs, prepare)
                for i, info in enumerate(getattr(self.venv, "reset_infos", None) or []):
                    refuse_taken(info, extra, i)
                self.reset_infos = [{k: v[i] for k, v in extra.items()} for i in range(self.num_envs)]
                add_objects(extra["saliency"], prepared, self.reset_infos)
                return obs

            def step_wait(self) -> VecEnvStepReturn:
                obs, rewards, dones, infos = self.venv.step_wait()
                extra, prepared = explain.call_with(obs, prepare)
                for i, info in enumerate(infos):
                    refuse_taken(info, extra, i)
                    info.update({k: v[i] for k, v in extra.items()})
                add_objects(extra["saliency"], prepared, list(infos))
                ended = [i for i, done in enumerate(dones) if done and "terminal_observation" in infos[i]]
                if ended:  # the last states of ended episodes, in one batched call
                    last = explain(np.stack([infos[i]["terminal_observation"] for i in ended]))
                    inner = getattr(self.venv, "reset_infos", None)
                    for j, i in enumerate(ended):
                        infos[i].update({f"terminal_{k}": v[j] for k, v in last.items()})
                        own = dict(inner[i]) if inner is not None and i < len(inner) else {}
                        self.reset_infos[i] = {**own, **{k: v[i] for k, v in extra.items()}}
                return obs, rewards, dones, infos

        return _ExplainedVecEnv()
