"""``ExplainedEnv``: VisionMask saliency for every observation, in ``info`` and in ``render()``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, SupportsFloat, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium.core import ActType, ObsType, RenderFrame

from vmask_live import objects as game_objects
from vmask_live.envs import action_names
from vmask_live.errors import ConfigError, ObservationError, PairingError
from vmask_live.export import load_explainer
from vmask_live.objects import BoxPixels, GameObject, box_mass, box_pixels, object_masks
from vmask_live.observations import ObsFormat
from vmask_live.pairing import action_names_mismatch, check_pairing
from vmask_live.render import ObjectCounterfactual, ViewState, compose
from vmask_live.types import ExplainerSpec, ObsAdapter, SaliencyExplainer

if TYPE_CHECKING:
    from vmask_live.agents import Agent

T = TypeVar("T")

__all__ = ["ExplainedEnv", "ExplainCore", "resolve_explainer", "resolve_agent", "check_compatible"]


def resolve_explainer(explainer: ExplainerSpec, backend: str = "auto") -> SaliencyExplainer:
    """A checkpoint path / ``default:NAME``, an ``Explainer`` or a runtime -> an explainer ready to call.

    The same as :func:`vmask_live.load_explainer`: a plain ``Explainer`` is compiled for
    ``backend`` too (``auto``: the fastest here); ``backend="none"`` keeps it as it is (eager
    torch); a runtime, or any other :class:`~vmask_live.types.SaliencyExplainer`, is used as it is.

    Raises:
        ConfigError: ``explainer`` is none of these (the message names the members it lacks).
    """
    return load_explainer(explainer, backend=backend)


def resolve_agent(agent: Any) -> Agent | None:
    """``None``, a path / ``default:NAME``, an :class:`~vmask_live.agents.Agent` or a live SB3 model
    -> an agent (or ``None``). A plain ``torch.nn.Module`` is refused with the exact call to wrap it:
    how it scales its input cannot be guessed safely."""
    from torch import nn

    from vmask_live.agents import MODULE_AGENT_HINT, Agent, SB3Agent, load_agent

    if agent is None or isinstance(agent, Agent):
        return agent
    if isinstance(agent, (str, os.PathLike)):
        return load_agent(agent)
    if isinstance(agent, nn.Module):
        raise ConfigError(
            f"Expected agent= to be a vmask-live Agent, a checkpoint path or an SB3 model, got a plain "
            f"torch.nn.Module ({type(agent).__name__}); wrap it first: {MODULE_AGENT_HINT}"
        )
    if hasattr(agent, "policy") and hasattr(agent, "predict"):  # a live SB3 model: no file, no pickle
        return SB3Agent(agent).freeze()
    raise ConfigError(
        f"Expected agent= to be a vmask-live Agent (vm.load_agent(...)), a checkpoint path or an SB3 model, "
        f"got {type(agent).__name__}"
    )


def check_compatible(
    space: gym.Space[Any], action_space: gym.Space[Any], explainer: SaliencyExplainer, agent: Agent | None
) -> tuple[ObsAdapter, ObsAdapter | None]:
    """Check env, explainer and agent agree on observations (shape, layout, dtype, value range) and
    action count, all problems in one error.

    Returns:
        ``(to_explainer, to_agent)``: functions from a raw env observation batch to the raw batch
        each checkpoint takes (the identity, or a channel-last -> channel-first transposition);
        ``to_agent`` is ``None`` without an agent.
    """
    env_format = ObsFormat.from_space(space)
    problems = []
    if not isinstance(action_space, gym.spaces.Discrete):
        problems.append(f"expected a Discrete action space, got {action_space}")
    elif int(action_space.n) != explainer.n_actions:
        problems.append(f"explainer has K={explainer.n_actions} maps but the env has {int(action_space.n)} actions")
    why = explainer.obs_format.mismatch(env_format)
    if why:
        problems.append(
            f"explainer expects observations {explainer.obs_format.describe()}, the env gives "
            f"{env_format.describe()}: {why}"
        )
    if agent is not None:
        if agent.n_actions != explainer.n_actions:
            problems.append(f"agent has {agent.n_actions} actions, explainer K={explainer.n_actions}")
        why = agent.obs_format.mismatch(env_format)
        if why:
            problems.append(
                f"agent expects observations {agent.obs_format.describe()}, the env gives {env_format.describe()}: {why}"
            )
    if problems:
        raise ObservationError("Incompatible env/explainer/agent: " + "; ".join(problems))
    to_agent = agent.obs_format.adapter(space, "agent") if agent is not None else None
    return explainer.obs_format.adapter(space, "explainer"), to_agent


_WORKER: ThreadPoolExecutor | None = None
_WORKER_LOCK = threading.Lock()

CONCURRENT_BACKENDS = ("onnx", "tensorrt")
"""Explainer backends that run outside torch's CPU thread pool: their call overlaps the agent's."""


def _worker() -> ThreadPoolExecutor:
    """The one background thread that runs explainer calls while the agent acts (made on first use)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = ThreadPoolExecutor(1, thread_name_prefix="vmask-live-explainer")
        return _WORKER


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch on one CPU thread for the block (the other core runs the explainer meanwhile)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class ExplainCore:
    """What every explained env form shares: resolving the explainer and agent, the checks made
    when a wrapper is built (observations, action count, pairing, the ``objects`` flag) and the
    batched explainer and agent calls on a raw observation batch.

    For a single observation, an explainer compiled for ONNX Runtime or TensorRT runs in a
    background thread while a CPU agent acts on one torch thread: the two calls overlap instead of
    queueing (on 2 cores a MsPacman step's explainer + agent time falls from ~2.2 to ~1.3 ms;
    ``benchmarks/bench_latency.py``). The maps and actions are exactly those of the calls made one
    after the other. torch's thread count is process-wide: torch work that other threads of the
    program run during the agent's call also gets one thread (it is restored right after).
    """

    def __init__(
        self,
        space: gym.Space[Any],
        action_space: gym.Space[Any],
        explainer: ExplainerSpec,
        agent: Any | None,
        backend: str,
        allow_mismatch: bool,
        objects: bool = True,
        action_names: list[str] | None = None,
    ) -> None:
        if not isinstance(objects, bool):
            raise ConfigError(f"Expected `objects` to be a bool, got {type(objects).__name__}")
        self.explainer: SaliencyExplainer = resolve_explainer(explainer, backend)
        self.agent: Agent | None = resolve_agent(agent)
        self.to_explainer, self.to_agent = check_compatible(space, action_space, self.explainer, self.agent)
        if action_names is not None and not allow_mismatch:  # the env's own names, where the caller knows them
            why = [
                action_names_mismatch(who, getattr(obj, "action_names", None), action_names)
                for who, obj in (("The explainer", self.explainer), ("The agent", self.agent))
                if obj is not None
            ]
            if any(why):
                raise PairingError(
                    "; ".join(w for w in why if w) + ". Use an agent and explainer trained on this env, or pass "
                    "allow_mismatch=True (CLI: --allow-mismatch) if the actions really are the same."
                )
        check_pairing(self.explainer, self.agent, allow_mismatch=allow_mismatch)
        self.concurrent = (
            self.agent is not None
            and getattr(self.explainer, "backend", None) in CONCURRENT_BACKENDS
            and self.agent.device.type == "cpu"
        )
        """Whether single observations overlap the explainer and agent calls (see the class)."""

    def __call__(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """``{"saliency": (N, K, H, W)}`` for a raw observation batch, with an agent also
        ``"saliency_action"`` ``(N,)`` and ``"action_probs"`` ``(N, K)``."""
        return self.call_with(obs, None)[0]

    def call_with(self, obs: np.ndarray, meanwhile: Callable[[], T] | None) -> tuple[dict[str, np.ndarray], T | None]:
        """As ``__call__``, and also run ``meanwhile()`` (numpy work that needs no maps, e.g. the
        game objects) on this thread while the explainer runs in the background; its result is
        returned beside the outputs (``None`` without ``meanwhile``)."""
        obs = np.asarray(obs)
        extra: T | None = None
        if self.agent is None or self.to_agent is None:
            out = {"saliency": self.explainer(self.to_explainer(obs))}
            return out, meanwhile() if meanwhile is not None else None
        if self.concurrent and len(obs) == 1:  # batches: measured no faster overlapped (ONNX is compute-bound)
            maps: Future[np.ndarray] = _worker().submit(self.explainer, self.to_explainer(obs))
            try:
                with _one_torch_thread():
                    actions, probs, _ = self.agent.act(self.to_agent(obs))
                extra = meanwhile() if meanwhile is not None else None
            finally:
                saliency = maps.result()  # waited for even when the agent raised
        else:
            saliency = self.explainer(self.to_explainer(obs))
            actions, probs, _ = self.agent.act(self.to_agent(obs))
            extra = meanwhile() if meanwhile is not None else None
        return {"saliency": saliency, "saliency_action": actions, "action_probs": probs}, extra


OBJECT_KEYS = ("objects", "saliency_objects")
"""The ``info`` keys added where a game's objects are known."""


@dataclass(frozen=True)
class PreparedObjects:
    """A state's objects with everything their info keys need but the maps (made while the
    explainer runs): the objects, their ``info["objects"]`` dicts and the box pixels to sum."""

    objects: list[GameObject]
    dicts: list[dict[str, Any]]
    boxes: BoxPixels

    @classmethod
    def of(cls, objs: list[GameObject], hw: tuple[int, int]) -> PreparedObjects:
        return cls(objs, [obj.to_dict() for obj in objs], box_pixels(objs, hw))

    def keys(self, maps: np.ndarray) -> dict[str, Any]:
        """The single-env info keys for these objects and ``maps`` ``(K, H, W)``: ``objects``
        (dicts) and ``saliency_objects`` (each object's share of each map)."""
        return {"objects": self.dicts, "saliency_objects": box_mass(maps, self.boxes)}


class ExplainedEnv(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Explain every observation the agent is about to act on.

    After ``reset`` and each ``step``, ``info`` holds:

    * ``info["saliency"]``: float32 ``(K, H, W)`` in [0, 1], one map per action;
    * ``info["saliency_action"]``: the agent's preferred (arg-max) action (with an agent);
    * ``info["action_probs"]``: float32 ``(K,)`` (with an agent);
    * where the game's objects are known (an annotator is registered for it, see
      :mod:`vmask_live.objects`; Ms. Pac-Man), ``info["objects"]``: a list of
      ``{"category", "id", "box"}`` dicts, ``box`` = ``[x0, y0, x1, y1]`` in observation pixels
      (``x1``/``y1`` exclusive), and ``info["saliency_objects"]``: ``{object name: (K,) float32}``,
      each object's share of each action's map mass (boxes dilated by 2 pixels; overlapping boxes
      both count shared pixels). Other envs, and ``objects=False``, get neither key.

    Observations, rewards, termination and the spaces pass through unchanged. ``render()``
    returns the base env's frame with the overlay (and the side panel when ``panel=True``), so
    Gymnasium's ``RecordVideo`` and ``HumanRendering`` stacked on top show it.

    Args:
        env: a pixel env whose observations are what the explainer was trained on (e.g. after
            ``AtariPreprocessing`` + ``FrameStackObservation``); its ``render_mode`` should be
            ``"rgb_array"`` for overlays.
        explainer: a checkpoint path, ``"default:NAME"``, an ``Explainer`` or a runtime.
        agent: optional agent (see :func:`vmask_live.load_agent`, or a live SB3 model) for the
            action and probabilities; the explainer must have been trained for it.
        saliency_key: the ``info`` key for the maps (the other keys are fixed).
        view: what ``render()`` shows (:class:`~vmask_live.render.ViewState`).
        panel: add the side panel with action probabilities to ``render()``.
        backend: inference backend when ``explainer`` is a path (``auto``, ``onnx``, ``torch``…).
        allow_mismatch: use an explainer with an agent it was not trained for (its maps then
            explain another network's decisions; off by default).
        objects: add the object keys where the game's objects are known (one RAM read and a few
            numpy sums per step).

    Raises:
        ObservationError: the env's observations (shape, dtype, value range) or action count do
            not match the explainer's or agent's checkpoint; also on any later observation that is
            not finite or out of range.
        PairingError: the explainer was trained for another agent.

    Example:
        >>> import vmask_live as vm
        >>> from vmask_live.testing import tiny_explainer
        >>> env = vm.ExplainedEnv(vm.make_env("Beacon", render_mode="rgb_array"), tiny_explainer())
        >>> obs, info = env.reset(seed=0)
        >>> info["saliency"].shape, info["saliency"].dtype
        ((5, 84, 84), dtype('float32'))
        >>> env.render().shape
        (336, 336, 3)
        >>> "objects" in info  # Beacon has no RAM objects; Ms. Pac-Man has
        False
    """

    def __init__(
        self,
        env: gym.Env[ObsType, ActType],
        explainer: ExplainerSpec,
        agent: Any | None = None,
        *,
        saliency_key: str = "saliency",
        view: ViewState | None = None,
        panel: bool = False,
        backend: str = "auto",
        allow_mismatch: bool = False,
        objects: bool = True,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            explainer=explainer,
            agent=agent,
            saliency_key=saliency_key,
            view=view,
            panel=panel,
            backend=backend,
            allow_mismatch=allow_mismatch,
            objects=objects,
        )
        gym.Wrapper.__init__(self, env)
        self._core = ExplainCore(
            env.observation_space,
            env.action_space,
            explainer,
            agent,
            backend,
            allow_mismatch,
            objects,
            action_names=action_names(env) if isinstance(env.action_space, gym.spaces.Discrete) else None,
        )
        self.explainer: SaliencyExplainer = self._core.explainer
        self.agent: Agent | None = self._core.agent
        self.obs_format = self.explainer.obs_format
        self.saliency_key = saliency_key
        self.view = view or ViewState()
        self.panel = panel
        self.last_obs: np.ndarray | None = None
        self.last_saliency: np.ndarray | None = None
        self.last_probs: np.ndarray | None = None
        self.annotator: game_objects.Annotator | None = game_objects.annotator_for(env) if objects else None
        self.last_objects: list[GameObject] | None = None

    def _explain(self, obs: ObsType, info: dict[str, Any]) -> dict[str, Any]:
        for key in (self.saliency_key, "saliency_action", "action_probs"):
            if key in info:
                raise ConfigError(
                    f"info already has a {key!r} entry; pass another saliency_key= or unwrap the other explainer"
                )
        for key in OBJECT_KEYS if self.annotator is not None else ():
            if key in info:
                raise ConfigError(f"info already has a {key!r} entry; pass objects=False or unwrap the other explainer")
        raw = np.asarray(obs)[None]
        annotator, hw = self.annotator, self.obs_format.chw[1:]
        prepare = None
        if annotator is not None:

            def prepare() -> PreparedObjects:
                return PreparedObjects.of(game_objects.annotate(self.env, annotator) or [], hw)

        out, prepared = self._core.call_with(raw, prepare)
        maps = out["saliency"][0]
        self.last_obs, self.last_saliency = self._core.to_explainer(raw)[0], maps
        info = dict(info)
        info[self.saliency_key] = maps
        if "action_probs" in out:
            self.last_probs = out["action_probs"][0]
            info["saliency_action"] = int(out["saliency_action"][0])
            info["action_probs"] = out["action_probs"][0]
        if prepared is not None:
            self.last_objects = prepared.objects
            info.update(prepared.keys(maps))
        return info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._explain(obs, info)

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._explain(obs, info)

    def counterfactual(self) -> tuple[np.ndarray, int] | None:
        """The current state with the shown action's region replaced by the reference, and the
        agent's action on it (``None`` without an agent)."""
        if self.agent is None or self.last_saliency is None or self.last_probs is None:
            return None
        import torch

        from vmask_live.overlay import overlay

        a = self.view.action if self.view.action is not None else int(np.argmax(self.last_probs))
        x = self.obs_format.to_model(np.asarray(self.last_obs)[None])
        m = torch.from_numpy(self.last_saliency[a][None])
        cf = overlay(x, 1 - m, self.explainer.reference(x))
        cf_action = int(self.agent.act(self.agent.obs_format.to_raw(cf))[0][0])
        return cf[0, -1].numpy(), cf_action

    def object_counterfactual(self, name: str) -> ObjectCounterfactual | None:
        """The current state with object ``name``'s box (dilated as in ``saliency_objects``)
        replaced by the explainer's reference, the agent's action on it and the change of the
        shown action's probability (``None`` without an agent or when no such object is on screen)."""
        if self.agent is None or self.last_probs is None or not self.last_objects:
            return None
        obj = next((o for o in self.last_objects if o.name == name), None)
        if obj is None:
            return None
        import torch

        from vmask_live.overlay import overlay

        a = self.view.action if self.view.action is not None else int(np.argmax(self.last_probs))
        x = self.obs_format.to_model(np.asarray(self.last_obs)[None])
        keep = ~object_masks([obj], x.shape[-2:])[obj.name]
        cf = overlay(x, torch.from_numpy(keep.astype(np.float32))[None], self.explainer.reference(x))
        actions, probs, _ = self.agent.act(self.agent.obs_format.to_raw(cf))
        return ObjectCounterfactual(
            obj.name, cf[0, -1].numpy(), int(actions[0]), a, float(self.last_probs[a]), float(probs[0][a])
        )

    def render(self) -> RenderFrame | list[RenderFrame] | None:
        """The base env's frame with the overlay (and the panel when ``panel=True``)."""
        return self.render_frame(panel=self.panel)

    def render_frame(
        self, scale: int = 1, fps: float | None = None, panel: bool = True
    ) -> RenderFrame | list[RenderFrame] | None:
        """Compose the display frame at ``scale`` with an FPS line (used by ``play`` and ``record``)."""
        frame = self.env.render()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            return frame  # human / ansi modes: nothing to draw on
        cf = self.counterfactual() if self.view.mode == "counterfactual" else None
        ocf = None
        if self.view.mode == "object" and self.view.object_name is not None:
            ocf = self.object_counterfactual(self.view.object_name)
        return compose(
            frame,
            self.last_saliency,
            self.last_probs,
            self.explainer.action_names,
            self.view,
            scale=scale,
            fps=fps,
            counterfactual=cf,
            show_panel=panel,
            objects=self.last_objects,
            object_counterfactual=ocf,
            obs_hw=self.obs_format.chw[1:],
        )
