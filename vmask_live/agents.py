"""Agent adapters: one interface, "model-space observation batch -> action logits".

VisionMask back-propagates through the frozen agent, so every adapter is a differentiable
``torch.nn.Module`` whose ``forward`` takes float ``(B, C, H, W)`` in [0, 1] (see
:mod:`vmask_live.observations`) and returns ``(B, K)`` logits (policy logits for PPO/A2C,
Q-values for DQN). Adapters exist for Stable-Baselines3 models, for any ``torch.nn.Module``, and
for our own agent checkpoints (safetensors + JSON; never unpickled).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from vmask_live.checkpoint import CheckpointError, load_state, read_checkpoint, save_checkpoint
from vmask_live.errors import ConfigError
from vmask_live.observations import ObsFormat

AgentT = TypeVar("AgentT", bound="Agent")

__all__ = ["Agent", "TorchAgent", "SB3Agent", "NatureCNN", "SmallCNN", "KeypointCNN", "load_agent", "save_agent"]


class Agent(nn.Module):
    """Base adapter. Subclasses implement :meth:`forward` on model-space tensors.

    Attributes:
        obs_format: the raw observation format the agent was trained on.
        n_actions: K.
        action_names: a name per action (for panels and reports).
    """

    def __init__(self, obs_format: ObsFormat, n_actions: int, action_names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.obs_format = obs_format
        self.n_actions = int(n_actions)
        self.action_names = list(action_names) if action_names else [str(i) for i in range(n_actions)]
        self.info: dict[str, Any] = {}
        """Provenance recorded with the agent (training config, evaluation scores)."""
        if len(self.action_names) != self.n_actions:
            raise ValueError(f"Expected {n_actions} action names, got {len(self.action_names)}")

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def freeze(self: AgentT) -> AgentT:
        """Eval mode and no parameter gradients (gradients still flow to the inputs)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    @torch.inference_mode()
    def act(
        self, obs: np.ndarray, deterministic: bool = True, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw observation batch -> (actions, probabilities, logits) as numpy arrays.

        Raises:
            ObservationError: the batch's shape, dtype, range or finiteness is not what the agent
                was trained on.
        """
        self.obs_format.check(obs, batched=True)
        logits = self(self.obs_format.to_model(obs, self.device)).float()
        probs = torch.softmax(logits, dim=1).cpu().numpy()
        if deterministic:
            actions = probs.argmax(axis=1)
        else:
            rng = rng or np.random.default_rng()
            u = rng.random((probs.shape[0], 1))
            actions = np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), self.n_actions - 1)
        return actions.astype(np.int64), probs.astype(np.float32), logits.cpu().numpy()


class TorchAgent(Agent):
    """Any ``torch.nn.Module`` mapping observations to logits.

    Args:
        module: the network.
        obs_format: raw observation format (``ObsFormat.from_space(env.observation_space)``).
        n_actions: K.
        input_scale: the module receives ``x * input_scale`` (255 if it expects raw pixel values).
    """

    def __init__(
        self,
        module: nn.Module,
        obs_format: ObsFormat,
        n_actions: int,
        input_scale: float = 1.0,
        action_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(obs_format, n_actions, action_names)
        self.module = module
        self.input_scale = float(input_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x * self.input_scale if self.input_scale != 1.0 else x)


class SB3Agent(Agent):
    """A Stable-Baselines3 model: policy logits (PPO/A2C) or Q-values (DQN)."""

    def __init__(self, model: Any, action_names: Sequence[str] | None = None) -> None:
        import gymnasium as gym

        space = model.observation_space  # SB3 stores the channel-first (transposed) image space
        if not isinstance(model.action_space, gym.spaces.Discrete):
            raise ValueError(f"Expected a discrete action space, got {model.action_space}")
        super().__init__(ObsFormat.from_space(space), int(model.action_space.n), action_names)
        self.policy = model.policy
        self.is_q = hasattr(self.policy, "q_net")
        self._model = model

    def pairing_state(self) -> dict[str, torch.Tensor]:
        """The weights that identify this agent (:func:`~vmask_live.pairing.agent_hash`): those of the
        NatureCNN agent the same policy converts to, so that a zip loaded with or without
        ``trust_pickle`` and the live model hash alike; the whole policy where it does not convert."""
        from vmask_live.sb3_zip import agent_from_sb3_model

        try:
            return agent_from_sb3_model(self._model).state_dict()
        except CheckpointError:
            return self.state_dict()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        obs = x * self.obs_format.scale  # SB3's preprocess_obs divides image spaces by 255 itself
        if self.is_q:
            return self.policy.q_net(obs)
        policy = self.policy
        if all(hasattr(policy, name) for name in ("action_net", "mlp_extractor", "pi_features_extractor")):
            # The action head's raw output, as the converted NatureCNN agent gives: the
            # distribution's logits are normalised (log-probabilities), which have the same softmax
            # but other input gradients, so gradient-based methods would explain another function.
            from stable_baselines3.common.policies import BaseModel

            features = BaseModel.extract_features(policy, obs, policy.pi_features_extractor)
            return policy.action_net(policy.mlp_extractor.forward_actor(features))
        return policy.get_distribution(obs).distribution.logits


class NatureCNN(nn.Module):
    """The DQN-Nature / SB3 ``CnnPolicy`` torso with a linear action head (weights import from SB3)."""

    def __init__(
        self, in_channels: int, n_actions: int, input_size: Sequence[int] = (84, 84), features: int = 512
    ) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, in_channels, *input_size)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features), nn.ReLU())
        self.action_net = nn.Linear(features, n_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.action_net(self.linear(self.cnn(x)))


class SmallCNN(nn.Module):
    """A small CNN for behaviour cloning on the ground-truth env (trains in seconds on a CPU)."""

    def __init__(self, in_channels: int, n_actions: int, input_size: Sequence[int] = (84, 84), width: int = 16) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, in_channels, *input_size)).shape[1]
        self.head = nn.Sequential(nn.Linear(n_flat, 128), nn.ReLU(), nn.Linear(128, n_actions))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cnn(x))


class KeypointCNN(nn.Module):
    """A CNN with a spatial-softmax keypoint layer (Levine et al. 2016): conv features -> per-channel
    expected (x, y) positions -> MLP -> logits. It learns "where are the objects" from few samples,
    so behaviour cloning of the ground-truth expert generalises in seconds on a CPU."""

    def __init__(
        self,
        in_channels: int,
        n_actions: int,
        input_size: Sequence[int] = (84, 84),
        width: int = 16,
        keypoints: int = 8,
    ) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, keypoints, 3, padding=1),
        )
        self.head = nn.Sequential(nn.Linear(3 * keypoints, 128), nn.ReLU(), nn.Linear(128, n_actions))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x)
        b, k, h, w = f.shape
        attn = torch.softmax(f.flatten(2), dim=2).view(b, k, h, w)
        ys = torch.linspace(-1, 1, h, device=x.device)
        xs = torch.linspace(-1, 1, w, device=x.device)
        px = (attn.sum(2) * xs).sum(2)
        py = (attn.sum(3) * ys).sum(2)
        peak = f.flatten(2).amax(2)  # whether the object is present at all
        return self.head(torch.cat([px, py, peak.tanh()], dim=1))


AGENT_ARCHS: dict[str, type[nn.Module]] = {"nature_cnn": NatureCNN, "small_cnn": SmallCNN, "keypoint_cnn": KeypointCNN}


def save_agent(
    path: str | os.PathLike,
    agent: TorchAgent,
    arch: str,
    arch_kwargs: dict[str, Any],
    info: dict[str, Any] | None = None,
) -> Path:
    """Save a :class:`TorchAgent` built from one of :data:`AGENT_ARCHS` as our agent checkpoint."""
    meta = {
        "format": "agent",
        "arch": arch,
        "arch_kwargs": arch_kwargs,
        "obs_format": agent.obs_format.to_dict(),
        "n_actions": agent.n_actions,
        "action_names": agent.action_names,
        "input_scale": agent.input_scale,
        "info": info or {},
    }
    tensors = {f"module.{k}": v for k, v in agent.module.state_dict().items()}
    return save_checkpoint(path, tensors, meta)


def _output_problem(agent: Agent) -> tuple[str, str] | None:
    """``(what came, fix)`` when the agent's output on one all-zero observation is not finite
    ``(1, n_actions)`` logits, else None.

    One cheap forward pass at load time turns a wrong ``n_actions``, a ``(logits, value)`` tuple or
    a wrong ``obs_format`` into a clear error here, not an AttributeError deep inside a method.
    """
    p = next(agent.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    x = torch.zeros((1, *agent.obs_format.chw), device=device, dtype=dtype)
    try:
        # no_grad, not inference_mode: a module that caches tensors or materialises lazy layers on
        # its first call must not keep inference tensors, which would break the explainer's backward
        with torch.no_grad():
            out = agent(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        return (
            f"{type(err).__name__} ({str(err)[:200]}) on a zero batch of shape {tuple(x.shape)}",
            "check that obs_format is the env's raw observation format and that the module takes float "
            "(B, C, H, W) batches",
        )
    wrap = "wrap it so that forward returns the policy logits only"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)}", wrap
    if not isinstance(out, torch.Tensor):
        return f"a {type(out).__name__}", wrap
    shape = tuple(out.shape)
    if len(shape) == 2 and shape[0] == 1 and shape[1] != agent.n_actions:
        return (
            str(shape),
            f"pass n_actions={shape[1]} if the env has {shape[1]} actions, else wrap the module so that "
            "forward returns the policy head's logits",
        )
    if shape != (1, agent.n_actions):
        return f"shape {shape} for a batch of 1", wrap
    if not torch.isfinite(out).all():
        return "non-finite values (NaN or inf) on an all-zero observation", "check the weights and input_scale"
    return None


_AGENT_META_KEYS = ("arch_kwargs", "obs_format", "n_actions")


def _load_agent_checkpoint(path: Path) -> TorchAgent:
    tensors, meta = read_checkpoint(path, "agent")
    if meta.get("arch") not in AGENT_ARCHS:
        raise CheckpointError(f"Unknown agent architecture {meta.get('arch')!r} in {str(path)!r}")
    missing = [key for key in _AGENT_META_KEYS if key not in meta]
    if missing:
        raise CheckpointError(
            f"Agent checkpoint {str(path)!r} has incomplete metadata: no {', '.join(map(repr, missing))} "
            f"(expected {list(_AGENT_META_KEYS)}); the file was not written by vmask-live's save_agent or "
            "was edited; fix: re-save the agent with save_agent (or `vmask-live train-agent`)"
        )
    try:
        module = AGENT_ARCHS[meta["arch"]](**meta["arch_kwargs"])
        load_state(module, tensors, "module.", path)
        agent = TorchAgent(
            module,
            ObsFormat.from_dict(meta["obs_format"]),
            meta["n_actions"],
            meta.get("input_scale", 1.0),
            meta.get("action_names"),
        )
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # RuntimeError: weights of other shapes
        raise CheckpointError(
            f"Agent checkpoint {str(path)!r} has metadata that does not fit its weights: {err!r}; the file "
            "was edited or mixed up; fix: re-save the agent with save_agent (or `vmask-live train-agent`)"
        ) from err
    agent.info = meta.get("info", {})
    agent.freeze()
    problem = _output_problem(agent)
    if problem is not None:
        raise CheckpointError(
            f"Expected agent checkpoint {str(path)!r} to give (B, {agent.n_actions}) action logits, as its "
            f"metadata's n_actions={agent.n_actions} says, got {problem[0]}; the weights and the metadata "
            "disagree (an edited or mixed-up file); fix: re-save the agent with save_agent"
        )
    return agent


def _load_sb3(path: Path, algo: str | None, trust_pickle: bool = False) -> Agent:
    """An SB3 zip: rebuilt from its weights without un-pickling (default), or SB3's own loader.

    ``trust_pickle=True`` runs ``PPO.load``/``A2C.load``/``DQN.load``, which un-pickle the zip's
    ``data`` entry and so run any code the file contains: only for files you trust.
    """
    if not trust_pickle:
        from vmask_live.sb3_zip import load_sb3_zip

        return load_sb3_zip(path, algo)

    import stable_baselines3 as sb3

    algos = [algo.upper()] if algo else ["PPO", "A2C", "DQN"]
    errors = []
    for name in algos:
        cls = getattr(sb3, name, None)
        if cls is None:
            raise ConfigError(f"Unknown SB3 algorithm {name!r}; expected PPO, A2C or DQN")
        try:
            model = cls.load(
                str(path),
                device="cpu",
                custom_objects={
                    "learning_rate": 0.0,
                    "lr_schedule": lambda _: 0.0,
                    "clip_range": lambda _: 0.0,
                    "exploration_schedule": lambda _: 0.0,
                },
            )
        except Exception as err:  # noqa: BLE001 - try the next algorithm, report all at the end
            errors.append(f"{name}: {type(err).__name__}: {str(err)[:120]}")
            continue
        return SB3Agent(model).freeze()
    raise CheckpointError(f"Cannot load {str(path)!r} as an SB3 model ({'; '.join(errors)}); pass --algo")


TRUST_AGENT_FILES = {"on": False}
"""Process-wide default of ``load_agent(trust_pickle=None)``; the CLI's ``--trust-agent-file`` sets it
for every command of that process. Off unless a person asks for it."""

MODULE_AGENT_HINT = (
    "vm.load_agent(module, obs_format=ObsFormat.from_space(env.observation_space), "
    "n_actions=env.action_space.n, input_scale=255.0 if the module takes raw pixel values (as CleanRL's "
    "Atari agents, which divide by 255 inside) else 1.0 (it takes [0, 1])); "
    "ObsFormat is vmask_live.observations.ObsFormat"
)


def default_path(name: str, kind: str) -> Path:
    """Path of a bundled default checkpoint (``kind`` is ``agent`` or ``explainer``)."""
    from vmask_live.envs import canonical_name

    env = canonical_name(name)
    path = Path(__file__).parent / "defaults" / env / f"{kind}.safetensors"
    if not path.is_file():
        bundled = sorted(p.name for p in (Path(__file__).parent / "defaults").glob("*") if p.is_dir())
        raise FileNotFoundError(
            f"No bundled default {kind} for {env!r}; bundled defaults exist for {bundled}. "
            f"Train one (`vmask-live train-agent` / `vmask-live train`) and pass its path"
        )
    return path


def load_agent(
    spec: str | os.PathLike | nn.Module,
    *,
    algo: str | None = None,
    obs_format: ObsFormat | None = None,
    n_actions: int | None = None,
    input_scale: float | None = None,
    trust_pickle: bool | None = None,
) -> Agent:
    """Load an agent.

    Args:
        spec: ``"default:NAME"`` (bundled), a ``.safetensors`` agent checkpoint of ours, an SB3
            ``.zip`` (PPO, A2C or DQN), or a ``torch.nn.Module`` mapping a float ``(B, C, H, W)``
            batch to ``(B, K)`` logits (then ``obs_format``, ``n_actions`` and ``input_scale``
            are required).
        algo: the SB3 algorithm of a ``.zip`` when it is not PPO/A2C/DQN auto-detected.
        trust_pickle: for a ``.zip``: ``False`` (default) rebuilds SB3's Atari ``CnnPolicy``
            (PPO, A2C, DQN) from the zip's weights and readable metadata without un-pickling
            anything (:mod:`vmask_live.sb3_zip`) and refuses other architectures; ``True`` uses
            SB3's own ``.load``, which un-pickles the file and so runs any code in it (CLI
            ``vmask-live --trust-agent-file COMMAND``): only for files you trust. ``None``: the
            process-wide :data:`TRUST_AGENT_FILES` (off unless the CLI flag set it).
        obs_format: for a module: the env's raw observation format,
            ``ObsFormat.from_space(env.observation_space)``.
        n_actions: for a module: K, ``env.action_space.n``.
        input_scale: for a module: what it expects, as a multiple of model space ([0, 1]):
            ``255.0`` when it takes raw pixel values (CleanRL's Atari agents divide by 255
            inside), ``1.0`` when it takes [0, 1]. Required: a wrong guess silently changes
            every logit.

    Example:
        >>> import torch, vmask_live as vm
        >>> from vmask_live.observations import ObsFormat
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(84 * 84, 5))
        >>> agent = vm.load_agent(net, obs_format=ObsFormat((84, 84), "hw"), n_actions=5, input_scale=255.0)
        >>> agent.n_actions
        5

    Returns:
        A frozen :class:`Agent`.

    Raises:
        ConfigError: a module without ``obs_format``/``n_actions``/``input_scale``, or one whose
            output on a zero batch is not finite ``(1, n_actions)`` logits (one forward pass checks).
        CheckpointError: an unreadable, incomplete or inconsistent checkpoint or SB3 zip.
    """
    if isinstance(spec, Agent):
        return spec.freeze()
    if isinstance(spec, nn.Module):
        missing = [
            name
            for name, value in (("obs_format", obs_format), ("n_actions", n_actions), ("input_scale", input_scale))
            if value is None
        ]
        if missing:
            raise ConfigError(f"Wrapping a torch.nn.Module as an agent needs {', '.join(missing)}: {MODULE_AGENT_HINT}")
        assert obs_format is not None and n_actions is not None and input_scale is not None  # checked above
        agent = TorchAgent(spec, obs_format, n_actions, input_scale).freeze()
        problem = _output_problem(agent)
        if problem is not None:
            got, fix = problem
            raise ConfigError(f"Expected the agent module to return (B, {n_actions}) action logits, got {got}; {fix}")
        return agent
    text = str(spec)
    if text.startswith("default:"):
        return _load_agent_checkpoint(default_path(text.split(":", 1)[1], "agent"))
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"Agent file {text!r} does not exist")
    if path.suffix == ".zip":
        return _load_sb3(path, algo, TRUST_AGENT_FILES["on"] if trust_pickle is None else trust_pickle)
    return _load_agent_checkpoint(path)


def agent_from_sb3(model: Any, action_names: Sequence[str] | None = None) -> TorchAgent:
    """Copy a live SB3 ``CnnPolicy`` PPO/A2C/DQN model into a :class:`NatureCNN` agent (no pickles to ship).

    The same conversion as loading an SB3 zip (:func:`vmask_live.sb3_zip.agent_from_sb3_weights`):
    raw action logits (PPO/A2C) or Q-values (DQN); ``agent.info["arch_kwargs"]`` feeds
    :func:`save_agent` with arch ``"nature_cnn"``.
    """
    from vmask_live.sb3_zip import agent_from_sb3_model

    return agent_from_sb3_model(model, action_names)
