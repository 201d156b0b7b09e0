"""Stable-Baselines3 ``.zip`` agents without running code from the file.

SB3's own ``PPO.load`` un-pickles (cloudpickle) every ``:serialized:`` field of the zip's
``data`` entry, so loading a stranger's zip runs whatever the file contains. This module reads
the same zip with :mod:`zipfile` and plain JSON, ignoring every ``:serialized:`` value and using
the readable fields SB3 writes beside it (the spaces' ``_shape``/``dtype``/``n``/``low``/``high``,
the policy class's module and ``__init__`` name, a plain ``policy_kwargs``), and loads
``policy.pth`` with ``torch.load(..., weights_only=True)``.

Only architectures we can rebuild exactly from our own nets are accepted: SB3's Atari
``CnnPolicy`` (NatureCNN features extractor, no extra policy layers) for PPO, A2C and DQN with a
Discrete action space. Anything else is refused with a :class:`~vmask_live.errors.CheckpointError`
that names what was found and the opt-in, ``trust_pickle=True`` (CLI ``vmask-live --trust-agent-file COMMAND``),
which uses SB3's own loader for people who accept running the file's code.

:func:`agent_from_sb3_weights` is the one place where SB3 weights become a
:class:`~vmask_live.agents.NatureCNN`; :func:`load_sb3_zip` (files) and
:func:`agent_from_sb3_model` (live SB3 models) both go through it. Usage::

    from vmask_live.sb3_zip import load_sb3_zip

    agent = load_sb3_zip("ppo_breakout.zip")  # a frozen TorchAgent; nothing un-pickled
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vmask_live.errors import CheckpointError
from vmask_live.observations import ObsFormat

if TYPE_CHECKING:
    from vmask_live.agents import TorchAgent

__all__ = [
    "TRUST_HINT",
    "SB3ZipContents",
    "read_sb3_zip",
    "load_sb3_zip",
    "agent_from_sb3_weights",
    "agent_from_sb3_model",
]

TRUST_HINT = (
    "if you trust this file, load it with `load_agent(path, trust_pickle=True)` (CLI `vmask-live --trust-agent-file COMMAND`), "
    "which uses SB3's own loader and runs any code the file contains"
)

# Policy classes (module, class name as in the readable ``__init__`` repr) -> network family.
_KNOWN_POLICIES = {
    ("stable_baselines3.common.policies", "ActorCriticCnnPolicy"): "actor_critic",
    ("stable_baselines3.dqn.policies", "CnnPolicy"): "dqn",
}
_FAMILY_ALGOS = {"actor_critic": ("PPO", "A2C"), "dqn": ("DQN",)}
_SB3_NATURE_CNN = "stable_baselines3.common.torch_layers.NatureCNN"

# policy_kwargs that do not change the actor's / Q-network's forward pass once the state dict is
# known to hold only NatureCNN + one linear head (optimiser, init, value-side and continuous-only knobs).
_INERT_POLICY_KWARGS = {
    "net_arch",
    "activation_fn",
    "ortho_init",
    "share_features_extractor",
    "optimizer_class",
    "optimizer_kwargs",
    "use_sde",
    "log_std_init",
    "full_std",
    "use_expln",
    "squash_output",
    "n_critics",
}
_STATE_PREFIXES = {
    # family -> (features-extractor prefixes, first found wins; head prefix; prefixes that are not the actor)
    "actor_critic": (
        ("pi_features_extractor.", "features_extractor."),
        "action_net.",
        ("features_extractor.", "vf_features_extractor.", "value_net.", "mlp_extractor.value_net."),
    ),
    "dqn": (("q_net.features_extractor.",), "q_net.q_net.0.", ("q_net_target.",)),
}
_MAX_DATA_BYTES = 64 * 2**20  # the JSON ``data`` entry of an Atari model is ~100 kB


@dataclass(frozen=True)
class SB3ZipContents:
    """What :func:`read_sb3_zip` found in an SB3 zip (readable fields only, nothing un-pickled).

    Attributes:
        path: the zip.
        algo: ``"PPO"``, ``"A2C"`` or ``"DQN"`` (PPO and A2C share a policy; told apart by ``clip_range``).
        family: ``"actor_critic"`` or ``"dqn"``.
        policy_class: ``module.ClassName`` of the SB3 policy.
        obs_format: the observation format SB3 stored (channel-first, as ``VecTransposeImage`` gives).
        n_actions: K.
        normalize_images: SB3's ``normalize_images`` policy setting (divide uint8 images by 255).
        policy_kwargs: the readable policy kwargs.
        num_timesteps: training steps recorded in the zip (None if absent).
        sb3_version: the SB3 version that wrote the zip (None if absent).
        state_dict: the policy weights (``policy.pth``).
    """

    path: Path
    algo: str
    family: str
    policy_class: str
    obs_format: ObsFormat
    n_actions: int
    normalize_images: bool
    policy_kwargs: dict[str, Any]
    num_timesteps: int | None
    sb3_version: str | None
    state_dict: dict[str, torch.Tensor] = field(repr=False)


def _refuse(path: Path | str, got: str, cause: str) -> CheckpointError:
    return CheckpointError(
        f"Cannot load {str(path)!r} as an SB3 agent without running code from it: expected a "
        f"Stable-Baselines3 CnnPolicy (NatureCNN features extractor, one linear action head) of PPO, A2C "
        f"or DQN with a Discrete action space, got {got}. Likely cause: {cause}. Fix: convert the policy "
        f"to a torch.nn.Module and use `load_agent(module, obs_format=..., n_actions=..., input_scale=...)`; "
        f"or, {TRUST_HINT}"
    )


def _readable(entry: Any) -> dict[str, Any]:
    """The readable side of a ``data`` entry: a plain dict, or a serialised one minus its pickle."""
    if not isinstance(entry, dict):
        return {}
    return {k: v for k, v in entry.items() if k not in (":serialized:", ":type:")}


def _class_name(entry: Any) -> tuple[str, str]:
    """(module, class name) of a serialised class from the readable ``__module__`` and ``__init__`` fields."""
    fields = _readable(entry)
    match = re.match(r"<function ([\w.]+)\.__init__ at ", str(fields.get("__init__", "")))
    return str(fields.get("__module__", "?")), match.group(1) if match else "?"


def _numbers(text: Any) -> list[float]:
    """The values shown in numpy's (possibly ``...``-abridged) repr of a bounds array."""
    return [float(v) for v in re.findall(r"-?(?:\d+\.?\d*(?:e[+-]?\d+)?|inf|nan)", str(text))]


def _obs_format(path: Path, data: dict[str, Any]) -> tuple[ObsFormat, bool]:
    """The stored observation space as an :class:`ObsFormat`, and whether its bounds are exactly [0, 255]."""
    import gymnasium as gym

    space = data.get("observation_space")
    fields = _readable(space)
    type_name = str(space.get(":type:", "?")) if isinstance(space, dict) else type(space).__name__
    shape = fields.get("_shape")
    if "spaces.box.Box" not in type_name or not isinstance(shape, list) or len(shape) not in (2, 3):
        raise _refuse(
            path,
            f"an observation space of type {type_name} with shape {shape}",
            "the agent does not take images (MlpPolicy / MultiInputPolicy)",
        )
    if fields.get("dtype") != "uint8":
        raise _refuse(
            path,
            f"a {fields.get('dtype')} observation space {tuple(shape)}",
            "the zip stores float image bounds only as an abridged repr, so their scale cannot be read "
            "safely; the safe loader takes uint8 image spaces only",
        )
    low = _numbers(fields.get("low_repr") or fields.get("low"))
    high = _numbers(fields.get("high_repr") or fields.get("high"))
    bounds_0_255 = bool(low) and bool(high) and set(low) == {0.0} and set(high) == {255.0}
    box = gym.spaces.Box(0, 255, tuple(int(d) for d in shape), np.uint8)
    return ObsFormat.from_space(box), bounds_0_255


def _n_actions(path: Path, data: dict[str, Any]) -> int:
    space = data.get("action_space")
    fields = _readable(space)
    type_name = str(space.get(":type:", "?")) if isinstance(space, dict) else type(space).__name__
    if "spaces.discrete.Discrete" not in type_name or "n" not in fields:
        raise _refuse(path, f"an action space of type {type_name}", "the agent does not pick one of K actions")
    if str(fields.get("start", "0")) != "0":
        raise _refuse(
            path,
            f"a Discrete action space starting at {fields['start']}",
            "actions are offset; an agent's outputs index actions from 0",
        )
    return int(str(fields["n"]))


def _check_policy_kwargs(path: Path, kwargs: dict[str, Any]) -> bool:
    """Refuse kwargs that change the forward pass in ways the weights do not show; returns normalize_images."""
    problems = []
    fe_class = kwargs.get("features_extractor_class")
    if fe_class is not None and _SB3_NATURE_CNN not in str(fe_class):
        problems.append(f"features_extractor_class={fe_class}")
    fe_kwargs = kwargs.get("features_extractor_kwargs") or {}
    if not isinstance(fe_kwargs, dict) or set(fe_kwargs) - {"features_dim", "normalized_image"}:
        problems.append(f"features_extractor_kwargs={fe_kwargs}")
    normalize = kwargs.get("normalize_images", True)
    if not isinstance(normalize, bool):
        problems.append(f"normalize_images={normalize!r}")
    known = _INERT_POLICY_KWARGS | {"features_extractor_class", "features_extractor_kwargs", "normalize_images"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        problems.append(f"policy_kwargs {unknown} whose effect the safe loader does not know")
    if problems:
        raise _refuse(path, "; ".join(problems), "a custom network or policy setting")
    return bool(normalize)


def read_sb3_zip(path: str | os.PathLike) -> SB3ZipContents:
    """Read an SB3 zip's readable metadata and policy weights; nothing in it is un-pickled or run.

    Args:
        path: an SB3 ``model.save(...)`` zip.

    Returns:
        The algorithm, policy class, spaces and weights.

    Raises:
        CheckpointError: not a readable SB3 zip, or a policy other than PPO/A2C/DQN ``CnnPolicy``.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = sorted({"data", "policy.pth"} - names)
            if missing:
                raise CheckpointError(
                    f"Expected an SB3 zip with 'data' and 'policy.pth' entries, got {str(path)!r} without "
                    f"{missing} (entries: {sorted(names)[:8]}); likely cause: not a Stable-Baselines3 "
                    "`model.save(...)` file; fix: pass the zip SB3 wrote"
                )
            info = archive.getinfo("data")
            if info.file_size > _MAX_DATA_BYTES:
                raise CheckpointError(
                    f"Expected a JSON 'data' entry of at most {_MAX_DATA_BYTES} bytes in {str(path)!r}, "
                    f"got {info.file_size}; the file is not an SB3 zip or was crafted"
                )
            raw_data = archive.read("data")
            policy_bytes = archive.read("policy.pth")
            version = None
            if "_stable_baselines3_version" in names:  # absent before SB3 0.9; readable all the same
                version = archive.read("_stable_baselines3_version").decode(errors="replace").strip() or None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as err:
        raise CheckpointError(
            f"Cannot read {str(path)!r} as a zip file ({err}); the file is corrupt, truncated or not an "
            "SB3 model; re-download or re-save it"
        ) from err
    try:
        data = json.loads(raw_data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"Expected JSON in the 'data' entry of {str(path)!r}, got unreadable bytes ({err}); "
            "the zip is corrupt or was not written by SB3 >= 0.9"
        ) from err
    if not isinstance(data, dict):
        raise CheckpointError(f"Expected a JSON object in the 'data' entry of {str(path)!r}, got {type(data).__name__}")

    module, cls = _class_name(data.get("policy_class"))
    family = _KNOWN_POLICIES.get((module, cls))
    if family is None:
        raise _refuse(
            path,
            f"policy class {module}.{cls}",
            "an MlpPolicy / MultiInputPolicy, another algorithm, or a custom policy class",
        )
    algo = "DQN" if family == "dqn" else ("PPO" if "clip_range" in data else "A2C")
    obs_format, bounds_0_255 = _obs_format(path, data)
    n_actions = _n_actions(path, data)
    policy_kwargs = _readable(data.get("policy_kwargs"))
    normalize_images = _check_policy_kwargs(path, policy_kwargs)

    try:
        state = torch.load(io.BytesIO(policy_bytes), weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - the weights-only unpickler raises many types for bad bytes
        raise CheckpointError(
            f"Cannot read the weights 'policy.pth' in {str(path)!r} with torch.load(weights_only=True) "
            f"({type(err).__name__}: {str(err)[:200]}); the entry is corrupt or holds more than tensors; "
            f"{TRUST_HINT}"
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"Expected 'policy.pth' in {str(path)!r} to be a state dict of tensors, got {type(state).__name__}"
        )
    timesteps = data.get("num_timesteps")
    return SB3ZipContents(
        path=path,
        algo=algo,
        family=family,
        policy_class=f"{module}.{cls}",
        obs_format=obs_format,
        n_actions=n_actions,
        # SB3 divides by 255 exactly when normalize_images is on and the space is a [0, 255] uint8 image.
        normalize_images=normalize_images and bounds_0_255,
        policy_kwargs=policy_kwargs,
        num_timesteps=int(timesteps) if isinstance(timesteps, int) else None,
        sb3_version=version,
        state_dict=state,
    )


def agent_from_sb3_weights(
    state_dict: dict[str, torch.Tensor],
    family: str,
    obs_format: ObsFormat,
    n_actions: int,
    sb3_divides_by_255: bool,
    *,
    source: str = "SB3 policy",
    action_names: Sequence[str] | None = None,
    info: dict[str, Any] | None = None,
) -> TorchAgent:
    """SB3 ``CnnPolicy`` weights -> a frozen :class:`~vmask_live.agents.TorchAgent` over a NatureCNN.

    The actor of PPO/A2C (``pi_features_extractor`` + ``action_net``; the value side is dropped)
    or the online ``q_net`` of DQN. Sizes come from the weights' shapes; every weight must be
    accounted for, so an unknown architecture is refused rather than half-loaded.

    Args:
        state_dict: the SB3 policy's ``state_dict()`` (``policy.pth``).
        family: ``"actor_critic"`` (PPO, A2C) or ``"dqn"``.
        obs_format: the observation format SB3 stored (its channel-first image space).
        n_actions: K.
        sb3_divides_by_255: whether SB3's ``preprocess_obs`` divides inputs by 255 (uint8
            ``[0, 255]`` image space and ``normalize_images``); if not, the net gets raw values.
        source: what to call the weights in error messages (a path).
        action_names: a name per action.
        info: extra provenance stored on the agent's ``info`` attribute.

    Returns:
        The frozen agent; its ``forward`` gives SB3's raw action logits (PPO/A2C) or Q-values (DQN)
        on model-space inputs. ``agent.info["arch_kwargs"]`` rebuilds the net for
        :func:`~vmask_live.agents.save_agent` (arch ``"nature_cnn"``).

    Raises:
        CheckpointError: weights that are not exactly NatureCNN + one linear head.
    """
    from vmask_live.agents import NatureCNN, TorchAgent  # agents imports this module lazily

    if family not in _STATE_PREFIXES:
        raise ValueError(f"Expected family 'actor_critic' or 'dqn', got {family!r}")
    fe_candidates, head, ignored = _STATE_PREFIXES[family]
    fe = next((p for p in fe_candidates if any(k.startswith(p) for k in state_dict)), fe_candidates[0])
    mapping = {"cnn.": fe + "cnn.", "linear.": fe + "linear.", "action_net.": head}
    ours: dict[str, torch.Tensor] = {}
    used = set()
    for our_prefix, their_prefix in mapping.items():
        for key, value in state_dict.items():
            if key.startswith(their_prefix):
                ours[our_prefix + key[len(their_prefix) :]] = value
                used.add(key)
    unknown = sorted(k for k in state_dict if k not in used and not any(k.startswith(p) for p in ignored if p != fe))
    got = f"weights {sorted(state_dict)[:6]}{'…' if len(state_dict) > 6 else ''}"
    if unknown:
        raise _refuse(
            source,
            f"weights NatureCNN + one linear head do not use: {unknown[:6]}{'…' if len(unknown) > 6 else ''}",
            "extra policy layers (net_arch), a custom features extractor, or another algorithm",
        )
    try:
        in_channels = int(ours["cnn.0.weight"].shape[1])
        features = int(ours["linear.0.weight"].shape[0])
        head_out = int(ours["action_net.weight"].shape[0])
    except (KeyError, IndexError) as err:
        raise _refuse(source, got, f"no NatureCNN features extractor / action head ({err} missing)") from err
    c, h, w = obs_format.chw
    if head_out != n_actions or in_channels != c:
        raise _refuse(
            source,
            f"a net for {in_channels} input channels and {head_out} actions while the spaces say {c} channels "
            f"and {n_actions} actions",
            "the weights and the stored spaces disagree (an edited or mixed-up file)",
        )
    try:
        net = NatureCNN(in_channels, n_actions, (h, w), features)
        net.load_state_dict(ours, strict=True)
    except RuntimeError as err:  # missing/unexpected keys or shape mismatches
        raise _refuse(source, f"{got} that do not fit NatureCNN ({str(err)[:300]})", "a custom network") from err
    arch_kwargs = {"in_channels": c, "n_actions": n_actions, "input_size": [h, w], "features": features}
    # SB3 divides uint8 images by 255 inside the policy and model space already is /255; when it
    # does not divide, the net was trained on raw values, so it gets model space * scale.
    scale = 1.0 if sb3_divides_by_255 else float(obs_format.scale)
    agent = TorchAgent(net, obs_format, n_actions, scale, action_names)
    agent.info = {"arch": "nature_cnn", "arch_kwargs": arch_kwargs, "family": family, **(info or {})}
    return agent.freeze()


def load_sb3_zip(
    path: str | os.PathLike, algo: str | None = None, action_names: Sequence[str] | None = None
) -> TorchAgent:
    """Load an SB3 PPO/A2C/DQN ``CnnPolicy`` zip as a frozen :class:`~vmask_live.agents.TorchAgent`.

    Nothing in the file is un-pickled: see the module docstring.

    Args:
        path: the zip.
        algo: ``"PPO"``, ``"A2C"`` or ``"DQN"`` to insist on (checked against the file; PPO and A2C
            share a policy, so either accepts the other); None detects it.
        action_names: a name per action.

    Returns:
        The agent; ``agent.info`` records the algorithm, policy class, SB3 version and
        ``num_timesteps`` of the file, and the NatureCNN ``arch_kwargs``.

    Raises:
        CheckpointError: unreadable file, or an architecture the safe loader does not know.
    """
    contents = read_sb3_zip(path)
    if algo is not None:
        wanted = algo.upper()
        if wanted not in ("PPO", "A2C", "DQN"):
            raise CheckpointError(f"Expected algo 'PPO', 'A2C' or 'DQN', got {algo!r}")
        if wanted not in _FAMILY_ALGOS[contents.family]:
            raise CheckpointError(
                f"Expected a {wanted} zip (as algo={algo!r} says), got a {contents.algo} policy "
                f"({contents.policy_class}) in {str(path)!r}; fix: drop the algo argument or pass the right file"
            )
    return agent_from_sb3_weights(
        contents.state_dict,
        contents.family,
        contents.obs_format,
        contents.n_actions,
        contents.normalize_images,
        source=str(path),
        action_names=action_names,
        info={
            "source": "sb3_zip",
            "algo": contents.algo,
            "policy_class": contents.policy_class,
            "sb3_version": contents.sb3_version,
            "num_timesteps": contents.num_timesteps,
        },
    )


def agent_from_sb3_model(model: Any, action_names: Sequence[str] | None = None) -> TorchAgent:
    """Copy a live SB3 PPO/A2C/DQN ``CnnPolicy`` model into a frozen NatureCNN :class:`~vmask_live.agents.TorchAgent`.

    Same conversion as :func:`load_sb3_zip` (through :func:`agent_from_sb3_weights`), for a model
    already in memory (e.g. right after training).

    Raises:
        CheckpointError: a policy or features extractor other than SB3's ``CnnPolicy`` / NatureCNN.
    """
    import gymnasium as gym
    from stable_baselines3.common.preprocessing import is_image_space

    policy = model.policy
    cls = type(policy)
    family = _KNOWN_POLICIES.get((cls.__module__, cls.__name__))
    if family == "dqn":
        fe = getattr(getattr(policy, "q_net", None), "features_extractor", None)
    else:
        fe = getattr(policy, "pi_features_extractor", getattr(policy, "features_extractor", None))
    fe_name = f"{type(fe).__module__}.{type(fe).__name__}"
    source = f"{type(model).__name__} model in memory"
    if family is None or fe_name != _SB3_NATURE_CNN:
        raise _refuse(
            source, f"policy {cls.__module__}.{cls.__name__} with features extractor {fe_name}", "a custom policy"
        )
    if not isinstance(model.action_space, gym.spaces.Discrete) or int(model.action_space.start) != 0:
        raise _refuse(source, f"action space {model.action_space}", "the agent does not pick one of K actions")
    n = int(model.action_space.n)
    divides = bool(policy.normalize_images) and is_image_space(model.observation_space)
    return agent_from_sb3_weights(
        {k: v.detach().cpu() for k, v in policy.state_dict().items()},
        family,
        ObsFormat.from_space(model.observation_space),
        n,
        divides,
        source=source,
        action_names=action_names,
        info={
            "source": "sb3_model",
            "algo": type(model).__name__,
            "policy_class": f"{cls.__module__}.{cls.__name__}",
            "num_timesteps": int(getattr(model, "num_timesteps", 0)),
        },
    )
