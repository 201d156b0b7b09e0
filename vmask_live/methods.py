"""The saliency methods vmask-live knows, in one registry: what each is, needs and costs.

Everything that lists methods reads :data:`METHODS`: ``vmask-live evaluate`` (``--methods``, the
up-front check for missing packages, the report), ``benchmarks/bench_methods.py`` and the shared
invariant tests (``tests/test_methods.py``). The implementations live in
:mod:`vmask_live.baselines`; every one has the same interface,
``method.attribute(x, actions) -> (B, H, W)`` (:class:`~vmask_live.baselines.SaliencyMethod`).

Adding a method is one :class:`MethodSpec` (append it to ``_BUILT_IN`` below, or register it
from outside the package)::

    from vmask_live.methods import CAPTUM, MethodSpec, register_method

    def _smoothgrad(agent, reference, explainer):
        return SmoothGrad(agent)  # any object with attribute(x, actions) -> (B, H, W)

    register_method(
        MethodSpec(
            name="smoothgrad",
            display_name="SmoothGrad",
            factory=_smoothgrad,
            cost="50 agent forward + backward passes per frame",
            requires=(CAPTUM,),
            value_range=(0.0, math.inf),
        )
    )

``vmask-live evaluate --methods smoothgrad`` then runs it, and the invariant tests cover it.
A setting that changes its maps (like ``rise_masks``) is a keyword of the factory named in
``settings`` and a field of :class:`~vmask_live.evaluate.EvaluateConfig` of the same name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from vmask_live.baselines import (
    LIME,
    RISE,
    SARFA,
    ExplainerMethod,
    GradCAM,
    Greydanus,
    IntegratedGradients,
    SaliencyMethod,
    VanillaGradient,
)
from vmask_live.errors import MissingExtraError
from vmask_live.overlay import Reference

__all__ = [
    "Requirement",
    "MethodSpec",
    "METHODS",
    "CAPTUM",
    "SKLEARN",
    "register_method",
    "method_spec",
    "build_method",
    "check_requirements",
    "CountingAgent",
]


class Requirement(NamedTuple):
    """A package a method imports: its module, its pip distribution, the vmask-live extra with it."""

    module: str
    distribution: str
    extra: str


# captum and scikit-learn are core dependencies; the empty `baselines` extra is kept in
# pyproject.toml, so `pip install "vmask-live[baselines]"` still works (it installs the core).
CAPTUM = Requirement("captum", "captum", "baselines")
SKLEARN = Requirement("sklearn", "scikit-learn", "baselines")

#: The options of ``vmask-live evaluate`` that give the trained explainer a method runs.
CHECKPOINT_OPTIONS = ("explainer", "stalder")


@dataclass(frozen=True)
class MethodSpec:
    """One saliency method: how to build it and what it needs and costs."""

    name: str
    """The name ``--methods`` takes, the key of results and cache files (lower case, ``_``)."""
    display_name: str
    """How reports and figures name it (``"Grad-CAM"``)."""
    factory: Callable[..., SaliencyMethod]
    """``factory(agent, reference, explainer, **settings)`` -> the method. ``agent`` is a
    module from model-space states to logits, ``reference`` the value that replaces removed
    pixels, ``explainer`` the trained explainer (only for methods with ``checkpoint``)."""
    cost: str
    """What one explained frame costs, in agent passes (reported next to the measured count)."""
    checkpoint: str | None = None
    """The evaluate option giving the trained explainer it runs: ``"explainer"`` (VisionMask)
    or ``"stalder"`` (Stalder et al.'s Explainer, ``--stalder``); None when it needs none."""
    requires: tuple[Requirement, ...] = ()
    """Packages it imports, checked before any work so a missing one names its pip command."""
    settings: tuple[str, ...] = ()
    """Keywords of ``factory`` that change its maps: fields of ``EvaluateConfig`` of the same
    name and part of the cache key of its results."""
    value_range: tuple[float, float] | None = None
    """Bounds every map is promised to keep (``(0, 1)``, ``(0, inf)``); None for signed maps."""
    version: int = 1
    """Bumped when a change of the method's code changes its maps: part of the cache key of its
    results, so ``evaluate`` never reuses maps of the older code."""

    def __post_init__(self) -> None:
        problems = []
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            problems.append(f"`name` to be lower case letters, digits and '_', got {self.name!r}")
        if self.checkpoint not in (None, *CHECKPOINT_OPTIONS):
            problems.append(f"`checkpoint` to be None or one of {CHECKPOINT_OPTIONS}, got {self.checkpoint!r}")
        if self.value_range is not None and not self.value_range[0] < self.value_range[1]:
            problems.append(f"`value_range` to be (low, high) with low < high, got {self.value_range!r}")
        if problems:
            raise ValueError(f"Invalid MethodSpec {self.name!r}: expected " + "; expected ".join(problems))

    @property
    def gives_masks(self) -> bool:
        """Whether its maps are masks in [0, 1] (``value_range``), scored as they are; other maps are
        min-max normalised per map before accuracy (SPEC: "for methods whose maps are not in [0, 1]")."""
        return self.value_range is not None and 0 <= self.value_range[0] and self.value_range[1] <= 1

    @property
    def needs_checkpoint(self) -> bool:
        """Whether it runs a trained explainer (VisionMask, Stalder et al.'s Explainer)."""
        return self.checkpoint is not None


def _visionmask(agent: nn.Module, reference: Reference, explainer: SaliencyMethod) -> ExplainerMethod:
    return ExplainerMethod(explainer)


def _greydanus(agent: nn.Module, reference: Reference, explainer: object) -> Greydanus:
    return Greydanus(agent)


def _sarfa(agent: nn.Module, reference: Reference, explainer: object) -> SARFA:
    return SARFA(agent)


def _rise(agent: nn.Module, reference: Reference, explainer: object, *, rise_masks: int = 2000) -> RISE:
    return RISE(agent, reference, n_masks=rise_masks)


def _lime(agent: nn.Module, reference: Reference, explainer: object, *, lime_samples: int = 300) -> LIME:
    return LIME(agent, reference, n_samples=lime_samples)


def _gradient(agent: nn.Module, reference: Reference, explainer: object) -> VanillaGradient:
    return VanillaGradient(agent)


def _gradcam(agent: nn.Module, reference: Reference, explainer: object) -> GradCAM:
    return GradCAM(agent)


def _integrated_gradients(
    agent: nn.Module, reference: Reference, explainer: object, *, ig_steps: int = 32
) -> IntegratedGradients:
    return IntegratedGradients(agent, n_steps=ig_steps)


_BUILT_IN = (
    MethodSpec(
        "visionmask",
        "VisionMask",
        _visionmask,
        "1 explainer pass per batch, no agent pass",
        checkpoint="explainer",
        value_range=(0.0, 1.0),
    ),
    MethodSpec(
        "explainer",
        "Explainer (Stalder et al. 2022)",
        _visionmask,
        "1 explainer pass per batch, no agent pass",
        checkpoint="stalder",
        value_range=(0.0, 1.0),
    ),
    MethodSpec(
        "greydanus",
        "Greydanus et al. 2018",
        _greydanus,
        "1 + (H/5)·(W/5) agent passes per frame (290 at 84x84), batched",
        value_range=(0.0, math.inf),
    ),
    MethodSpec(
        "sarfa",
        "SARFA (Puri et al. 2020)",
        _sarfa,
        "1 + (H/5)·(W/5) agent passes per frame (290 at 84x84), batched",
        value_range=(0.0, 1.0),
    ),
    MethodSpec(
        "rise",
        "RISE (Petsiuk et al. 2018)",
        _rise,
        "rise_masks agent passes per frame (2000 by default)",
        settings=("rise_masks",),
        value_range=(0.0, math.inf),
    ),
    MethodSpec(
        "lime",
        "LIME (Ribeiro et al. 2016)",
        _lime,
        "lime_samples agent passes per frame (300 by default) and a Lasso fit",
        requires=(CAPTUM, SKLEARN),
        settings=("lime_samples",),
    ),
    MethodSpec(
        "gradient",
        "Vanilla gradient",
        _gradient,
        "1 agent forward + backward pass per frame",
        requires=(CAPTUM,),
        value_range=(0.0, math.inf),
    ),
    MethodSpec(
        "gradcam",
        "Grad-CAM",
        _gradcam,
        "1 agent forward + backward pass per frame",
        requires=(CAPTUM,),
        value_range=(0.0, math.inf),
    ),
    MethodSpec(
        "integrated_gradients",
        "Integrated Gradients",
        _integrated_gradients,
        "ig_steps agent forward + backward passes per frame (32 by default)",
        requires=(CAPTUM,),
        settings=("ig_steps",),
        value_range=(0.0, math.inf),
    ),
)

#: Every method by name, in the order reports list them (the paper's first).
METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec:
    """Add a method to :data:`METHODS` (``replace=True`` to redefine a name); returns ``spec``."""
    if not isinstance(spec, MethodSpec):
        raise TypeError(f"Expected a MethodSpec, got {type(spec).__name__}")
    if spec.name in METHODS and not replace:
        raise ValueError(f"Method {spec.name!r} is already registered; pass replace=True to redefine it")
    METHODS[spec.name] = spec
    return spec


for _spec in _BUILT_IN:
    register_method(_spec)


def method_spec(name: str) -> MethodSpec:
    """The spec of a method by name; raises ``ValueError`` naming the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method {name!r}; expected one of {', '.join(METHODS)}") from None


def build_method(
    name: str,
    agent: nn.Module,
    reference: Reference,
    explainer: SaliencyMethod | None = None,
    **settings: int,
) -> SaliencyMethod:
    """Construct a method by name.

    Args:
        name: a key of :data:`METHODS`.
        agent: model-space states ``(B, C, H, W)`` -> logits.
        reference: the value that replaces removed pixels (RISE, LIME).
        explainer: the trained explainer, for methods with a ``checkpoint`` (visionmask, explainer).
        **settings: method settings (``rise_masks=50``); each method takes its own and ignores
            those of the others, so one set of settings serves every method.

    Raises:
        ValueError: an unknown method, or a trained one without ``explainer``.
        TypeError: a setting no method takes.
    """
    spec = method_spec(name)
    known = {s for m in METHODS.values() for s in m.settings}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"Unknown method settings {unknown}; expected some of {sorted(known)}")
    if spec.needs_checkpoint and explainer is None:
        raise ValueError(f"Method {name!r} needs a trained explainer checkpoint")
    method = spec.factory(agent, reference, explainer, **{k: v for k, v in settings.items() if k in spec.settings})
    return CheckedMethod(method, agent)


def _agent_attr(agent: Any, name: str) -> Any:
    """``agent.name``, looking through wrappers such as :class:`CountingAgent` (None if absent)."""
    while agent is not None:
        value = getattr(agent, name, None)
        if value is not None:
            return value
        agent = getattr(agent, "agent", None)
    return None


class CheckedMethod:
    """A saliency method whose ``attribute`` checks its inputs first, as :meth:`Explainer.attribute
    <vmask_live.explainer.ExplainerBase.attribute>` does: model-space states of the agent's format
    (``(B, C, H, W)`` floats in [0, 1], finite) and ``B`` actions in ``[0, K)``. Raw 0-255 pixels or
    a negative action would otherwise give plausible maps of another input or another action."""

    def __init__(self, method: Any, agent: Any) -> None:
        self.method = method
        self.obs_format = _agent_attr(agent, "obs_format")
        self.n_actions = _agent_attr(agent, "n_actions")

    def attribute(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        from vmask_live.explainer import check_actions
        from vmask_live.observations import ObservationError

        if self.obs_format is not None:
            self.obs_format.check_model(x)
        elif isinstance(x, torch.Tensor) and x.numel() and (x.min() < 0 or x.max() > 1):
            raise ObservationError(
                f"Expected model-space states in [0, 1], got values in [{float(x.min()):.4g}, {float(x.max()):.4g}]; "
                "convert raw observations with obs_format.to_model(obs)"
            )
        n = int(self.n_actions) if self.n_actions is not None else int(actions.max()) + 1 if actions.numel() else 1
        check_actions(actions, x.shape[0], n)
        return self.method.attribute(x, actions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.method, name)


def check_requirements(names: Iterable[str]) -> None:
    """Raise one :class:`MissingExtraError` naming every missing package of the given methods."""
    from vmask_live._optional import require

    missing: dict[Requirement, list[str]] = {}
    for name in names:
        for req in method_spec(name).requires:
            try:
                require(req.module, req.extra)
            except MissingExtraError:
                missing.setdefault(req, []).append(name)
    if missing:
        dists = ", ".join(dict.fromkeys(r.distribution for r in missing))
        users = list(dict.fromkeys(m for ms in missing.values() for m in ms))
        extras = ",".join(dict.fromkeys(r.extra for r in missing))
        who = f"Methods {', '.join(users)} need" if len(users) > 1 else f"Method {users[0]} needs"
        raise MissingExtraError(
            f"{who} {dists}, which {'is' if len(missing) == 1 else 'are'} not installed; run "
            f'`pip install "vmask-live[{extras}]"` (or leave {"them" if len(users) > 1 else "it"} out of --methods)'
        )


class CountingAgent(nn.Module):
    """Wraps an agent and counts what it is asked: ``calls`` (forward calls) and ``states``
    (states in them, i.e. agent passes). Gradients flow through it."""

    def __init__(self, agent: nn.Module) -> None:
        super().__init__()
        self.agent = agent
        self.calls = 0
        self.states = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.states += x.shape[0]
        return self.agent(x)

    def reset(self) -> None:
        """Zero both counts."""
        self.calls = self.states = 0
