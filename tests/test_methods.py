"""Invariants every saliency method keeps, driven by the one registry (Captum's test table style).

Every method in :data:`vmask_live.methods.METHODS` is built on a tiny agent and explainer with
small settings and run on real Beacon observations. A new method gets these tests by registering.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch

import vmask_live as vm
from vmask_live.baselines import SaliencyMethod
from vmask_live.errors import ObservationError
from vmask_live.evaluate import EvaluateConfig
from vmask_live.methods import METHODS, CountingAgent, MethodSpec, build_method, method_spec, register_method
from vmask_live.metrics import evaluate_maps
from vmask_live.overlay import Reference
from vmask_live.testing import BEACON_FORMAT, tiny_agent, tiny_explainer

#: Small values of every method setting, so the whole table runs in seconds.
SMALL = {"rise_masks": 50, "lime_samples": 30, "ig_steps": 4}


@pytest.fixture(scope="module")
def beacon_batch() -> tuple[torch.Tensor, torch.Tensor]:
    env = vm.make_env("Beacon")
    x = BEACON_FORMAT.to_model(np.stack([env.reset(seed=seed)[0] for seed in range(3)]))
    return x, torch.tensor([2, 0, 3])


class _Sharpened(torch.nn.Module):
    """The tiny agent with its logits scaled up: untrained, its logits barely depend on the state,
    and LIME's Lasso fit would shrink every weight to zero (an all-zero map proves nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self.agent = tiny_agent()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 100 * self.agent(x)


def _build(name: str) -> tuple[SaliencyMethod, CountingAgent]:
    for req in METHODS[name].requires:
        pytest.importorskip(req.module)
    agent = CountingAgent(_Sharpened())
    return build_method(name, agent, Reference("black"), explainer=tiny_explainer(), **SMALL), agent


def test_registry_settings_are_evaluate_settings_with_the_same_defaults():
    fields = {f.name for f in dataclasses.fields(EvaluateConfig)}
    for name, spec in METHODS.items():
        assert spec.name == name
        for setting in spec.settings:
            assert setting in fields, f"{name}: setting {setting!r} is not an EvaluateConfig field"
            assert setting in SMALL, f"{name}: add a small value for {setting!r} to SMALL"
            default = inspect.signature(spec.factory).parameters[setting].default
            assert default == getattr(EvaluateConfig(), setting), f"{name}: {setting} defaults differ"


@pytest.mark.parametrize("name", list(METHODS))
def test_batched_equals_per_example_and_maps_are_well_formed(name, beacon_batch):
    x, a = beacon_batch
    spec = METHODS[name]
    method, agent = _build(name)
    x_before = x.clone()

    batched = method.attribute(x, a)

    assert batched.shape == (3, 84, 84) and batched.dtype == torch.float32
    assert torch.isfinite(batched).all() and not batched.requires_grad
    assert batched.abs().max() > 0, "an all-zero map: the invariants below would hold vacuously"
    assert torch.equal(x, x_before), "the method changed its input"
    if spec.value_range is not None:
        low, high = spec.value_range
        assert batched.min() >= low - 1e-6 and batched.max() <= high + 1e-6, (batched.min(), batched.max())
    # Trained explainers cost no agent pass; every other method asks the agent about each frame.
    assert (agent.states == 0) if spec.needs_checkpoint else (agent.states >= len(a))

    # A map depends only on its own state. The methods with randomness (RISE's masks, LIME's
    # samples) draw the same seeded samples for every state, so this holds for them too, and the
    # perturbation methods explain state by state: their maps are equal to the last bit. Methods
    # that run a network on the whole batch (the explainers, gradients, Grad-CAM) differ by float
    # rounding of batched vs single-state convolutions (about 1e-7 of the map's scale).
    single = torch.cat([method.attribute(x[i : i + 1], a[i : i + 1]) for i in range(len(a))])
    scale = batched.abs().max().clamp_min(1e-12)
    torch.testing.assert_close(single, batched, rtol=1e-4, atol=1e-5 * float(scale))
    # and a rerun gives the same maps (evaluate caches results keyed by their settings)
    torch.testing.assert_close(method.attribute(x, a), batched, rtol=1e-5, atol=1e-6 * float(scale))


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_works_inside_the_metrics(name, beacon_batch):
    """Evaluate's one metrics path, LLE included (it calls the method on neighbour states)."""
    x, a = beacon_batch
    method, _ = _build(name)
    res = evaluate_maps(_Sharpened(), x, a, method.attribute, Reference("black"), n_steps=4, lle_neighbours=2)
    assert 0 <= res["accuracy"] <= 100 and math.isfinite(res["lle"]) and res["lle"] >= 0


def test_build_method_errors_name_the_fix():
    agent, ref = tiny_agent(), Reference("black")
    with pytest.raises(ValueError, match="Unknown method 'shap'; expected one of visionmask, explainer, greydanus"):
        build_method("shap", agent, ref)
    with pytest.raises(ValueError, match="Method 'visionmask' needs a trained explainer checkpoint"):
        build_method("visionmask", agent, ref)
    with pytest.raises(TypeError, match=r"Unknown method settings \['rise_mask'\]"):
        build_method("rise", agent, ref, rise_mask=3)
    # each method takes its own settings and ignores the others'
    assert build_method("rise", agent, ref, rise_masks=7, lime_samples=3).n_masks == 7
    with pytest.raises(ValueError, match="Unknown method 'shap'"):
        method_spec("shap")


def test_a_registered_method_is_known_everywhere(monkeypatch):
    import vmask_live.methods as methods

    monkeypatch.setattr(methods, "METHODS", dict(METHODS))

    class Uniform:
        def attribute(self, x, actions):
            return torch.full((x.shape[0], *x.shape[-2:]), 0.5)

    spec = MethodSpec("uniform", "Uniform", lambda agent, ref, exp: Uniform(), "free", value_range=(0.0, 1.0))
    methods.register_method(spec)
    assert methods.method_spec("uniform") is spec
    out = methods.build_method("uniform", tiny_agent(), Reference("black"), rise_masks=5)
    assert out.attribute(torch.zeros(2, 1, 84, 84), torch.tensor([0, 1])).shape == (2, 84, 84)
    with pytest.raises(ObservationError, match=r"shape \(B, 1, 84, 84\), got shape \(2, 1, 8, 8\)"):
        out.attribute(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]))  # not the agent's states
    with pytest.raises(ValueError, match="'uniform' is already registered; pass replace=True"):
        methods.register_method(spec)
    assert "uniform" not in METHODS  # the module's table was patched, not this one


@pytest.mark.parametrize("name", ["gradient", "rise", "greydanus"])
def test_baselines_check_states_and_actions(name):
    from vmask_live.errors import ConfigError

    method = build_method(name, tiny_agent(), Reference("black"), rise_masks=8)
    x = torch.rand(2, 1, 84, 84)
    with pytest.raises(ObservationError, match=r"values in \[0, 1\]"):
        method.attribute(x * 255, torch.tensor([0, 1]))  # raw pixels
    with pytest.raises(ConfigError, match=r"actions in \[0, 4\]"):
        method.attribute(x, torch.tensor([0, -1]))  # would explain the last action


def test_method_spec_validates_itself():
    with pytest.raises(ValueError, match=r"expected `name` to be lower case.*got 'Bad Name'"):
        MethodSpec("Bad Name", "Bad", lambda *a: None, "free")
    with pytest.raises(ValueError, match=r"`checkpoint` to be None or one of .*got 'vm'"):
        MethodSpec("bad", "Bad", lambda *a: None, "free", checkpoint="vm")
    with pytest.raises(TypeError, match="Expected a MethodSpec, got dict"):
        register_method({"name": "x"})  # type: ignore[arg-type]


def test_explainer_attribute_checks_states_and_actions():
    from vmask_live.errors import ConfigError, ObservationError
    from vmask_live.testing import tiny_explainer

    exp = tiny_explainer()  # Beacon format, 5 actions
    x, a = torch.rand(2, 1, 84, 84), torch.tensor([0, 4])
    assert exp.attribute(x, a).shape == (2, 84, 84)
    with pytest.raises(ObservationError, match=r"shape \(B, 1, 84, 84\)"):
        exp.attribute(torch.rand(2, 1, 96, 96), a)  # would be resampled silently
    with pytest.raises(ObservationError, match=r"values in \[0, 1\]"):
        exp.attribute(x * 255, a)  # raw pixels in model space
    with pytest.raises(ConfigError, match=r"actions in \[0, 4\] \(5 maps\), got values in \[-1, 0\]"):
        exp.attribute(x, torch.tensor([0, -1]))  # a negative index would pick the last action's map
    with pytest.raises(ConfigError, match=r"\(2,\) integer tensor"):
        exp.attribute(x, torch.tensor([0]))
