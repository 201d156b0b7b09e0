"""``ExplainedEnv``: VisionMask saliency for every observation, in ``info`` and in ``render()``."""

from __future__ import annotations

import os
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from vmask_live.observations import ObservationError, ObsFormat
from vmask_live.render import ViewState, compose

__all__ = ["ExplainedEnv", "resolve_explainer", "check_compatible"]


def resolve_explainer(explainer: Any, backend: str = "auto"):
    """A checkpoint path / ``default:NAME``, an ``Explainer`` or a runtime -> a callable runtime.

    A plain ``Explainer`` is compiled for ``backend`` too (``auto``: the fastest here);
    ``backend="none"`` keeps it as it is (eager torch).
    """
    from vmask_live.explainer import Explainer, load_explainer

    if isinstance(explainer, (str, os.PathLike, Explainer)):
        return load_explainer(explainer, backend=backend)
    if not callable(explainer) or not hasattr(explainer, "obs_format"):
        raise TypeError(
            f"Expected an explainer (checkpoint path, Explainer or Runtime), got {type(explainer).__name__}"
        )
    return explainer


def check_compatible(space: gym.Space, action_space: gym.Space, explainer: Any, agent: Any | None) -> ObsFormat:
    """Check env, explainer and agent agree on observation shape and action count (all problems at once)."""
    fmt = ObsFormat.from_space(space)
    problems = []
    if not isinstance(action_space, gym.spaces.Discrete):
        problems.append(f"expected a Discrete action space, got {action_space}")
    elif int(action_space.n) != explainer.n_actions:
        problems.append(f"explainer has K={explainer.n_actions} maps but the env has {int(action_space.n)} actions")
    if tuple(explainer.obs_format.shape) != fmt.shape:
        problems.append(
            f"explainer expects observations of shape {tuple(explainer.obs_format.shape)}, "
            f"the env gives {fmt.shape} (same preprocessing/frame stack as in training?)"
        )
    if agent is not None:
        if agent.n_actions != explainer.n_actions:
            problems.append(f"agent has {agent.n_actions} actions, explainer K={explainer.n_actions}")
        if tuple(agent.obs_format.chw) != tuple(fmt.chw):
            problems.append(f"agent expects observations {tuple(agent.obs_format.shape)}, the env gives {fmt.shape}")
    if problems:
        raise ObservationError("Incompatible env/explainer/agent: " + "; ".join(problems))
    return fmt


class ExplainedEnv(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Explain every observation the agent is about to act on.

    After ``reset`` and each ``step``, ``info`` holds:

    * ``info["saliency"]``: float32 ``(K, H, W)`` in [0, 1], one map per action;
    * ``info["saliency_action"]``: the agent's preferred (arg-max) action (with an agent);
    * ``info["action_probs"]``: float32 ``(K,)`` (with an agent).

    Observations, rewards, termination and the spaces pass through unchanged. ``render()``
    returns the base env's frame with the overlay (and the side panel when ``panel=True``), so
    Gymnasium's ``RecordVideo`` and ``HumanRendering`` stacked on top show it.

    Args:
        env: a pixel env whose observations are what the explainer was trained on (e.g. after
            ``AtariPreprocessing`` + ``FrameStackObservation``); its ``render_mode`` should be
            ``"rgb_array"`` for overlays.
        explainer: a checkpoint path, ``"default:NAME"``, an ``Explainer`` or a runtime.
        agent: optional agent (see :func:`vmask_live.load_agent`) for the action and probabilities.
        saliency_key: the ``info`` key for the maps (the other keys are fixed).
        view: what ``render()`` shows (:class:`~vmask_live.render.ViewState`).
        panel: add the side panel with action probabilities to ``render()``.
        backend: inference backend when ``explainer`` is a path (``auto``, ``onnx``, ``torch``…).

    Example:
        >>> import vmask_live as vm
        >>> from vmask_live.testing import tiny_explainer
        >>> env = vm.ExplainedEnv(vm.make_env("Beacon", render_mode="rgb_array"), tiny_explainer())
        >>> obs, info = env.reset(seed=0)
        >>> info["saliency"].shape, info["saliency"].dtype
        ((5, 84, 84), dtype('float32'))
        >>> env.render().shape
        (336, 336, 3)
    """

    def __init__(
        self,
        env: gym.Env,
        explainer: Any,
        agent: Any | None = None,
        *,
        saliency_key: str = "saliency",
        view: ViewState | None = None,
        panel: bool = False,
        backend: str = "auto",
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, explainer=explainer, agent=agent, saliency_key=saliency_key, view=view, panel=panel, backend=backend
        )
        gym.Wrapper.__init__(self, env)
        self.explainer = resolve_explainer(explainer, backend)
        if isinstance(agent, (str, os.PathLike)):
            from vmask_live.agents import load_agent

            agent = load_agent(agent)
        self.agent = agent
        self.obs_format = check_compatible(env.observation_space, env.action_space, self.explainer, agent)
        self.saliency_key = saliency_key
        self.view = view or ViewState()
        self.panel = panel
        self.last_obs: np.ndarray | None = None
        self.last_saliency: np.ndarray | None = None
        self.last_probs: np.ndarray | None = None

    def _explain(self, obs: np.ndarray, info: dict[str, Any]) -> dict[str, Any]:
        for key in (self.saliency_key, "saliency_action", "action_probs"):
            if key in info:
                raise KeyError(
                    f"info already has a {key!r} entry; pass another saliency_key= or unwrap the other explainer"
                )
        batch = np.asarray(obs)[None]
        maps = self.explainer(batch)[0]
        self.last_obs, self.last_saliency = obs, maps
        info = dict(info)
        info[self.saliency_key] = maps
        if self.agent is not None:
            actions, probs, _ = self.agent.act(batch)
            self.last_probs = probs[0]
            info["saliency_action"] = int(actions[0])
            info["action_probs"] = probs[0]
        return info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._explain(obs, info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._explain(obs, info)

    def counterfactual(self) -> tuple[np.ndarray, int] | None:
        """The current state with the shown action's region replaced by the reference, and the
        agent's action on it (``None`` without an agent)."""
        if self.agent is None or self.last_saliency is None:
            return None
        import torch

        from vmask_live.overlay import overlay

        a = self.view.action if self.view.action is not None else int(np.argmax(self.last_probs))
        x = self.obs_format.to_model(np.asarray(self.last_obs)[None])
        m = torch.from_numpy(self.last_saliency[a][None])
        cf = overlay(x, 1 - m, self.explainer.reference(x))
        cf_action = int(self.agent.act(self.obs_format.to_raw(cf))[0][0])
        return cf[0, -1].numpy(), cf_action

    def render(self) -> Any:
        """The base env's frame with the overlay (and the panel when ``panel=True``)."""
        return self.render_frame(panel=self.panel)

    def render_frame(self, scale: int = 1, fps: float | None = None, panel: bool = True) -> Any:
        """Compose the display frame at ``scale`` with an FPS line (used by ``play`` and ``record``)."""
        frame = self.env.render()
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            return frame  # human / ansi modes: nothing to draw on
        cf = self.counterfactual() if self.view.mode == "counterfactual" else None
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
        )
