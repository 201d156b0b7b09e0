"""Training the agents that VisionMask explains.

* ``ppo``: Stable-Baselines3 PPO on Atari with the RL-Zoo hyperparameters.
* ``bc``: behaviour cloning of a scripted expert (the ground-truth env) into a small CNN.

Both end in an agent checkpoint of our own format (safetensors + JSON, see
:mod:`vmask_live.agents`) that never needs unpickling to load.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vmask_live.atomic import atomic_path, atomic_write_text
from vmask_live.errors import CheckpointError, ConfigError
from vmask_live.settings import SettingChecks

if TYPE_CHECKING:
    from vmask_live.distill import DistillConfig
    from vmask_live.train_dqn import DQNConfig

__all__ = [
    "PPOConfig",
    "train_ppo",
    "BCConfig",
    "train_bc",
    "export_ppo",
    "evaluate_agent",
    "refuse_other_run",
    "run_train_agent",
]

PPO_DEFAULT_STEPS = 1_000_000
BC_DEFAULT_SAMPLES = 10_000

PPO_RESUMABLE_FIELDS = (
    "total_steps",
    "checkpoint_every",
    "eval_episodes",
    "subprocess",
    "device",
    "resume",
    "overwrite",
    "out",
)
"""PPOConfig fields that may differ from the run's ``config.json`` on ``resume`` (train longer, save
more often, another device or env runner, a moved folder); any other difference is refused."""


@dataclass
class PPOConfig:
    """PPO on an Atari game (RL-Zoo ``atari`` hyperparameters)."""

    env: str = "MsPacman"
    """Atari env name (see ``vmask-live envs``)."""
    out: str = "runs/agent"
    """Run folder: periodic SB3 checkpoints, eval log, the final agent checkpoint."""
    total_steps: int | None = PPO_DEFAULT_STEPS
    """Agent steps over all envs (x4 emulator frames; None: 1 000 000); raise it with ``resume`` to
    train longer."""
    n_envs: int = 8
    """Parallel envs."""
    n_steps: int = 128
    """Steps per env per rollout."""
    batch_size: int = 256
    """Minibatch size of the PPO update."""
    n_epochs: int = 4
    """Passes over each rollout."""
    learning_rate: float = 2.5e-4
    """Initial learning rate, decayed linearly to 0."""
    clip_range: float = 0.1
    """Initial clip range, decayed linearly to 0."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    seed: int = 0
    """Seed of the envs (env i: seed + i) and of PPO; evaluation uses seed + 100."""
    checkpoint_every: int = 100_000
    """Agent steps between atomic SB3 checkpoints (used by ``resume``)."""
    eval_episodes: int = 10
    """Full-game evaluation episodes at the end."""
    subprocess: bool = True
    """Run the envs in worker processes (SubprocVecEnv)."""
    resume: bool = False
    """Continue from the newest checkpoint in ``out`` (``ppo_latest.zip``) with the run's settings:
    only ``total_steps``, ``checkpoint_every``, ``eval_episodes``, ``subprocess``, ``device`` and
    ``out`` may change (:data:`PPO_RESUMABLE_FIELDS`). Without a checkpoint, a new run starts."""
    overwrite: bool = False
    """Start a new run in ``out`` even though it holds another run: its ``ppo_*.zip`` checkpoints,
    ``agent.safetensors`` and ``train_log.jsonl`` are deleted first."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""

    def __post_init__(self) -> None:
        if self.total_steps is None:
            self.total_steps = PPO_DEFAULT_STEPS

    def validate(self) -> None:
        """Check every setting, type then value.

        Raises:
            ConfigError: listing every bad setting at once, each as "expected ..., got ...".
        """
        c = SettingChecks("train-agent (ppo)")
        if not isinstance(self.env, str) or not self.env:
            c.add("env", "an env name (see `vmask-live envs`)", self.env)
        c.integer("total_steps", self.total_steps, 1)
        c.integer("n_envs", self.n_envs, 1)
        c.integer("n_steps", self.n_steps, 1)
        if self.n_envs == 1 and self.n_steps == 1:
            c.add("n_steps", "n_steps * n_envs > 1 (PPO needs at least 2 samples per rollout)", self.n_steps)
        c.integer("batch_size", self.batch_size, 2)  # SB3 normalises advantages per minibatch
        c.integer("n_epochs", self.n_epochs, 1)
        c.number("learning_rate", self.learning_rate, low=0, low_open=True)
        c.number("clip_range", self.clip_range, low=0, low_open=True)
        c.number("ent_coef", self.ent_coef, low=0)
        c.number("vf_coef", self.vf_coef, low=0)
        c.integer("seed", self.seed, 0)
        c.integer("checkpoint_every", self.checkpoint_every, 1)
        c.integer("eval_episodes", self.eval_episodes, 0)
        c.flag("subprocess", self.subprocess)
        c.flag("resume", self.resume)
        c.flag("overwrite", self.overwrite)
        c.device("device", self.device)
        c.raise_if_any()


def _names(paths: list[Path], limit: int = 4) -> str:
    names = sorted(p.name for p in paths)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _check_ppo_folder(cfg: PPOConfig, out: Path) -> bool:
    """Refuse to overwrite another run in ``out`` or to resume it with other settings.

    Returns:
        True when training resumes from ``out/ppo_latest.zip``.
    """
    from vmask_live.train import config_differences, refuse_changed_resume

    if cfg.resume and (out / "ppo_latest.zip").exists():
        cfg_path = out / "config.json"
        if cfg_path.exists():
            saved = json.loads(cfg_path.read_text())
            diffs = config_differences(saved, asdict(cfg), asdict(PPOConfig()), PPO_RESUMABLE_FIELDS)
            refuse_changed_resume(out, diffs, PPO_RESUMABLE_FIELDS)
        return True
    existing = [*out.glob("ppo_*.zip"), out / "agent.safetensors"] if out.is_dir() else []
    refuse_other_run(out, existing, cfg.overwrite)
    return False


def refuse_other_run(out: Path, files: list[Path], overwrite: bool, *, resumable: bool = True) -> None:
    """Refuse to start a new agent run in ``out`` over ``files`` of another run (those that exist)
    unless ``overwrite``; ``resumable``: the message offers ``--resume`` too.

    Raises:
        ConfigError: naming the files and the ways out.
    """
    existing = [p for p in files if p.exists()]
    if existing and not overwrite:
        resume = "--resume to continue that run, " if resumable else ""
        raise ConfigError(
            f"{str(out)!r} already holds another agent run ({_names(existing)}); a new run would overwrite it. "
            f"Pass {resume}another --out for a new one, or --overwrite (overwrite=True) to replace it."
        )


def _linear(start: float):
    return lambda progress_remaining: progress_remaining * start


def _make_vec_env(cfg: PPOConfig):
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from vmask_live.envs import make_env

    def factory(rank: int):
        def _init():
            env = make_env(cfg.env, training=True)
            env.reset(seed=cfg.seed + rank)
            env.action_space.seed(cfg.seed + rank)
            return env

        return _init

    fns = [factory(i) for i in range(cfg.n_envs)]
    return SubprocVecEnv(fns) if cfg.subprocess and cfg.n_envs > 1 else DummyVecEnv(fns)


def train_ppo(cfg: PPOConfig) -> Path:
    """Train (or resume) PPO; returns the path of the exported agent checkpoint."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from vmask_live.train import ensure_writable_folder

    cfg.validate()
    out = Path(cfg.out)
    resuming = _check_ppo_folder(cfg, out)
    ensure_writable_folder(out)
    if not resuming:  # nothing of another run is here, unless overwrite was asked for
        for stale in [*out.glob("ppo_*.zip"), out / "agent.safetensors", out / "train_log.jsonl"]:
            stale.unlink(missing_ok=True)
    atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2))
    venv = _make_vec_env(cfg)
    ckpt = out / "ppo_latest.zip"
    if resuming:
        model = PPO.load(ckpt, env=venv, device=cfg.device)
        done = model.num_timesteps
    else:
        model = PPO(
            "CnnPolicy",
            venv,
            n_steps=cfg.n_steps,
            batch_size=cfg.batch_size,
            n_epochs=cfg.n_epochs,
            learning_rate=_linear(cfg.learning_rate),
            clip_range=_linear(cfg.clip_range),
            ent_coef=cfg.ent_coef,
            vf_coef=cfg.vf_coef,
            seed=cfg.seed,
            device=cfg.device,
            verbose=0,
        )
        done = 0

    log_path = out / "train_log.jsonl"
    start = time.time()

    class _Progress(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.last_ckpt = done
            self.scores: list[float] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.scores.append(float(info["episode"]["r"]))
            if self.num_timesteps - self.last_ckpt >= cfg.checkpoint_every:
                self.last_ckpt = self.num_timesteps
                _save_sb3(self.model, ckpt)
                _save_sb3(self.model, out / f"ppo_{self.num_timesteps}.zip")
                recent = self.scores[-20:]
                row = {
                    "steps": self.num_timesteps,
                    "wall_s": round(time.time() - start, 1),
                    "charts/score_last20": sum(recent) / max(len(recent), 1),
                    "charts/episodes": len(self.scores),
                }
                with log_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
            return True

    model.learn(
        total_timesteps=max(int(cfg.total_steps or PPO_DEFAULT_STEPS) - done, 0),
        callback=_Progress(),
        reset_num_timesteps=False,
        progress_bar=False,
    )
    _save_sb3(model, ckpt)
    venv.close()
    return ckpt


def _save_sb3(model, path: Path) -> None:
    """``model.save(path)`` atomically: a kill never leaves a half-written checkpoint."""
    with atomic_path(path, suffix=".zip") as tmp:  # SB3 would add ".zip" to a name that lacks it
        model.save(tmp)


@dataclass
class BCConfig:
    """Behaviour cloning of a scripted expert (envs whose info has ``expert_action``)."""

    env: str = "Beacon"
    """Env with a scripted expert (``info["expert_action"]``), e.g. Beacon."""
    out: str = "runs/agent/agent.safetensors"
    """Agent checkpoint to write (safetensors + JSON)."""
    samples: int | None = BC_DEFAULT_SAMPLES
    """Expert-labelled states for training (None: 10 000); another 10% are held out."""
    epochs: int = 14
    """Passes over the expert samples."""
    batch_size: int = 128
    """Samples per Adam step (at most ``samples``)."""
    lr: float = 3e-3
    """Adam learning rate (the last quarter of training at a fifth of it)."""
    width: int = 8
    """Channel width of the agent's CNN."""
    keypoints: int = 8
    """Spatial-softmax keypoints of the agent's CNN. More keypoints clone the expert more reliably
    (32: 96.9-100% on every seed checked) but also track the clutter, which the ground truth says
    is irrelevant: explainers then miss the agent's action more often. With 8, a few seeds and
    thread counts fall into a bad basin (84%), which ``restarts`` recovers from."""
    min_agreement: float = 0.95
    """Held-out agreement with the expert below which a training attempt counts as failed."""
    restarts: int = 2
    """Fresh attempts (new weights and shuffling, same states) after a failed one; the best is kept.
    The held-out states both choose the best attempt and score it, so its agreement is a validation
    figure, slightly optimistic when a restart happened."""
    noise: float = 0.3
    """Probability of a random action while rolling out, so states off the expert's path are seen."""
    seed: int = 0
    """Seed of the rollouts (held-out states: seed + 10000) and of the weights."""
    overwrite: bool = False
    """Replace an existing checkpoint at ``out`` (otherwise the job refuses before training)."""

    def __post_init__(self) -> None:
        if self.samples is None:
            self.samples = BC_DEFAULT_SAMPLES

    def validate(self) -> None:
        """Check every setting, type then value.

        Raises:
            ConfigError: listing every bad setting at once, each as "expected ..., got ...".
        """
        c = SettingChecks("train-agent (bc)")
        if not isinstance(self.env, str) or not self.env:
            c.add("env", "an env name with a scripted expert (e.g. 'Beacon')", self.env)
        c.integer("samples", self.samples, 1)
        c.integer("epochs", self.epochs, 1)
        c.integer("batch_size", self.batch_size, 1)
        samples = self.samples if isinstance(self.samples, int) and self.samples >= 1 else None
        if samples is not None and isinstance(self.batch_size, int) and self.batch_size > samples:
            # otherwise no step is taken and an untrained agent is saved
            c.add("batch_size", f"at most samples ({self.samples})", self.batch_size)
        c.number("lr", self.lr, low=0, low_open=True)
        c.integer("width", self.width, 1)
        c.integer("keypoints", self.keypoints, 1)
        c.number("min_agreement", self.min_agreement, low=0, high=1)
        c.integer("restarts", self.restarts, 0)
        c.number("noise", self.noise, low=0, high=1)
        c.integer("seed", self.seed, 0)
        c.flag("overwrite", self.overwrite)
        c.raise_if_any()


def rollout_expert(env_name: str, n: int, noise: float, seed: int):
    """States visited by the noisy scripted expert, with the expert's action on each."""
    import gymnasium as gym
    import numpy as np

    from vmask_live.envs import make_env

    n_envs = 8
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(env_name) for _ in range(n_envs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    obs, info = envs.reset(seed=seed)
    if "expert_action" not in info:
        raise ConfigError(f"Env {env_name!r} has no scripted expert (no info['expert_action']); use --algo ppo")
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    n_actions = int(getattr(envs.single_action_space, "n"))  # noqa: B009 - Discrete, checked by the env registry
    while sum(len(x) for x in xs) < n:
        expert = np.asarray(info["expert_action"], np.int64)
        xs.append(np.asarray(obs).copy())
        ys.append(expert)
        act = np.where(rng.random(n_envs) < noise, rng.integers(0, n_actions, n_envs), expert)
        obs, _, _, _, info = envs.step(act)
    envs.close()
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def _fit_bc(agent, xt, yt, cfg: BCConfig, seed: int, progress: bool, description: str) -> None:
    """One behaviour-cloning run: Adam at ``cfg.lr``, the last quarter at a fifth of it."""
    import torch
    from rich.progress import track

    opt = torch.optim.Adam(agent.parameters(), lr=cfg.lr)
    steps = len(xt) // cfg.batch_size
    # Constant rate, then the last quarter annealed: OneCycle's long warm-up under-trained this net.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 if i < 0.75 * cfg.epochs * steps else 0.2)
    gen = torch.Generator().manual_seed(seed)
    agent.train()
    for _ in track(range(cfg.epochs), description=description, disable=not progress):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(steps):
            b = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            loss = torch.nn.functional.cross_entropy(agent(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    agent.freeze()


def train_bc(cfg: BCConfig, progress: bool = True):
    """Clone the expert into a :class:`~vmask_live.agents.KeypointCNN`; returns (agent, metrics).

    An attempt whose held-out agreement stays below ``cfg.min_agreement`` is retried from fresh
    weights (``cfg.restarts`` times at most); the best attempt is saved, and ``metrics`` says
    whether it reached the bar (the CLI prints a warning with the fix when it did not)."""
    import torch

    from vmask_live.agents import KeypointCNN, TorchAgent, save_agent
    from vmask_live.envs import action_names, make_env
    from vmask_live.observations import ObsFormat
    from vmask_live.train import ensure_writable_folder

    cfg.validate()
    out = Path(cfg.out)
    if out.is_dir():
        raise ConfigError(
            f"out {str(out)!r} is a folder; expected the path of the agent checkpoint to write, "
            f"e.g. {str(out / 'agent.safetensors')!r}"
        )
    if out.exists() and not cfg.overwrite:
        raise ConfigError(
            f"Agent checkpoint {str(out)!r} already exists; training would overwrite it. Pass another --out, "
            "or --overwrite (overwrite=True) to replace it."
        )
    ensure_writable_folder(out.parent)
    start = time.time()
    samples = int(cfg.samples or BC_DEFAULT_SAMPLES)
    x, y = rollout_expert(cfg.env, samples, cfg.noise, cfg.seed)
    xh, yh = rollout_expert(cfg.env, max(samples // 10, 500), cfg.noise, cfg.seed + 10_000)
    probe = make_env(cfg.env)
    fmt = ObsFormat.from_space(probe.observation_space)
    names = action_names(probe)
    probe.close()
    c, h, w = fmt.chw
    kwargs: dict[str, Any] = {
        "in_channels": c,
        "n_actions": len(names),
        "input_size": [h, w],
        "width": cfg.width,
        "keypoints": cfg.keypoints,
    }
    xt, yt = fmt.to_model(x), torch.as_tensor(y)
    xht = fmt.to_model(xh)
    best: tuple[float, Any, int] | None = None
    attempts: list[dict[str, float | int]] = []
    for attempt in range(cfg.restarts + 1):
        seed = cfg.seed + 1000 * attempt
        torch.manual_seed(seed)
        agent = TorchAgent(KeypointCNN(**kwargs), fmt, len(names), 1.0, names)
        _fit_bc(agent, xt, yt, cfg, seed, progress, f"behaviour cloning (attempt {attempt + 1})")
        with torch.inference_mode():
            held = float((agent(xht).argmax(1).numpy() == yh).mean())
        attempts.append({"seed": seed, "heldout_agreement": held})
        if best is None or held > best[0]:
            best = (held, agent, seed)
        if held >= cfg.min_agreement:
            break
    assert best is not None
    held, agent, seed = best
    with torch.inference_mode():
        tr = float((agent(xt[:2000]).argmax(1) == yt[:2000]).float().mean())
    metrics = {
        "heldout_agreement": held,
        "train_agreement": tr,
        "weights_seed": seed,
        "attempts": attempts,
        "reached_min_agreement": held >= cfg.min_agreement,
        "samples": cfg.samples,
        "seconds": round(time.time() - start, 1),
    }
    save_agent(
        cfg.out,
        agent,
        "keypoint_cnn",
        kwargs,
        {"trained_by": "vmask-live train-agent --algo bc", "config": asdict(cfg), "metrics": metrics, "env": cfg.env},
    )
    if not metrics["reached_min_agreement"]:
        warnings.warn(
            f"Behaviour cloning reached {held:.1%} held-out agreement with the expert, below min_agreement "
            f"{cfg.min_agreement:.1%}, after {len(attempts)} attempt(s); the agent saved to {str(out)!r} has not "
            "learned the task. Retrain with another seed or more restarts.",
            stacklevel=2,
        )

    return agent, metrics


def export_ppo(
    zip_path: str | Path,
    out: str | Path,
    info: dict | None = None,
    *,
    trust_pickle: bool = False,
    env: str | None = None,
) -> Path:
    """Convert an SB3 PPO/A2C ``CnnPolicy`` .zip into our agent checkpoint (no pickle to ship).

    Args:
        zip_path: the SB3 zip (ours from :func:`train_ppo` are standard ``CnnPolicy`` zips).
        out: the agent checkpoint to write (safetensors + JSON).
        info: extra provenance for the checkpoint's metadata.
        trust_pickle: ``False`` (default) reads the zip's weights and readable metadata without
            un-pickling anything (:func:`vmask_live.sb3_zip.load_sb3_zip`); ``True`` uses SB3's
            ``PPO.load``, which runs any code in the file: only for files you trust.
        env: the env the zip was trained on, which names its actions; None: the ``env`` of the
            ``config.json`` beside the zip (written by :func:`train_ppo`).

    Raises:
        CheckpointError: the zip is not an SB3 ``CnnPolicy`` the safe loader can rebuild, or its
            number of actions is not the env's.
        ConfigError: no ``env`` given and no ``config.json`` with one beside the zip.
    """
    from vmask_live.agents import agent_from_sb3, save_agent
    from vmask_live.envs import action_names
    from vmask_live.sb3_zip import load_sb3_zip

    config_path = Path(zip_path).parent / "config.json"
    cfg = json.loads(config_path.read_text()) if config_path.exists() else {}
    env = env or cfg.get("env")
    if not env:
        raise ConfigError(
            f"Expected the env {str(zip_path)!r} was trained on, got no env argument and no config.json with "
            "an 'env' beside the zip; pass env=NAME (CLI --env NAME)"
        )
    names = action_names(env)
    if trust_pickle:
        from stable_baselines3 import PPO

        agent = agent_from_sb3(PPO.load(str(zip_path), device="cpu"))
    else:
        agent = load_sb3_zip(zip_path)
    if agent.n_actions != len(names):
        raise CheckpointError(
            f"Expected an SB3 zip with {env}'s {len(names)} actions, got {agent.n_actions} actions in "
            f"{str(zip_path)!r}; likely cause: the zip was trained on another game; fix: pass the --env the zip "
            "was trained on"
        )
    agent.action_names = names
    return save_agent(
        out,
        agent,
        "nature_cnn",
        agent.info["arch_kwargs"],
        {
            "trained_by": "vmask-live train-agent --algo ppo",
            "config": cfg,
            "num_timesteps": agent.info.get("num_timesteps"),
            **(info or {}),
        },
    )


def evaluate_agent(
    agent_spec,
    env_name: str,
    episodes: int = 10,
    seed: int = 100,
    deterministic: bool = False,
    max_steps: int = 27_000,
    epsilon: float = 0.0,
) -> dict:
    """Mean/std raw game score over full-game episodes (all envs stepped in one batched agent call),
    and ``mean_p_chosen``: the agent's mean probability of the action it picked, over all steps
    (before any epsilon exploration)."""
    import gymnasium as gym
    import numpy as np

    from vmask_live.agents import load_agent
    from vmask_live.envs import make_env

    agent = load_agent(agent_spec)
    envs = gym.vector.SyncVectorEnv(
        [lambda: make_env(env_name) for _ in range(episodes)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    rng = np.random.default_rng(seed)
    scores, active = np.zeros(episodes), np.ones(episodes, bool)
    chosen_prob, chosen_n = 0.0, 0
    for _ in range(max_steps):
        actions, probs, _ = agent.act(obs, deterministic=deterministic, rng=rng)
        # how sure the agent is of the action it picks, on the states it visits
        chosen_prob += float(probs[np.arange(len(actions)), actions][active].sum())
        chosen_n += int(active.sum())
        if epsilon:  # epsilon-greedy evaluation (the DQN protocol): breaks deterministic loops
            explore = rng.random(len(actions)) < epsilon
            actions = np.where(explore, rng.integers(0, agent.n_actions, len(actions)), actions)
        obs, reward, term, trunc, _ = envs.step(actions)
        scores += reward * active
        active &= ~(term | trunc)
        if not active.any():
            break
    envs.close()
    return {
        "episodes": episodes,
        "mean_score": float(scores.mean()),
        "std_score": float(scores.std()),
        "scores": scores.tolist(),
        "deterministic": deterministic,
        "mean_p_chosen": round(chosen_prob / max(chosen_n, 1), 4),
        "steps": chosen_n,
    }


def run_train_agent(
    cfg: PPOConfig | BCConfig | DistillConfig | DQNConfig,
    *,
    export_checkpoint: str | Path | None = None,
    trust_pickle: bool = False,
) -> tuple[Path, dict]:
    """The ``vmask-live train-agent`` job: train an agent and save it as our agent checkpoint.

    ``BCConfig``: behaviour-clone the expert (:func:`train_bc`); an ``out`` that is not a
    ``.safetensors`` file is a folder to write ``agent.safetensors`` in. ``PPOConfig``: train (or
    resume) PPO (:func:`train_ppo`), convert its SB3 zip into ``out/agent.safetensors``, play
    ``eval_episodes`` full games acting greedily and sampling (seeds from ``seed + 100``), and
    convert it again with those scores in its metadata.

    Args:
        cfg: the job's settings; their type picks the algorithm.
        export_checkpoint: PPO only: skip training, convert and evaluate this SB3 zip instead.
        trust_pickle: read the SB3 zip with SB3's own (pickle) loader; see :func:`export_ppo`.

    Returns:
        ``(agent checkpoint, metrics)``: BC's agreement metrics, or PPO's scores per mode
        (``{"deterministic": ..., "stochastic": ...}``, empty when ``eval_episodes`` is 0).

    Raises:
        ConfigError: a bad setting (all of them listed), or a run in ``out`` that would be overwritten.
    """
    from vmask_live.distill import DistillConfig, run_distill
    from vmask_live.train_dqn import DQNConfig, run_train_dqn

    if isinstance(cfg, DistillConfig):
        return run_distill(cfg)
    if isinstance(cfg, DQNConfig):
        return run_train_dqn(cfg)
    if isinstance(cfg, BCConfig):
        out = Path(cfg.out)
        if out.suffix != ".safetensors":
            cfg = replace(cfg, out=str(out / "agent.safetensors"))
        _, metrics = train_bc(cfg)
        return Path(cfg.out), metrics
    cfg.validate()
    zip_path = Path(export_checkpoint) if export_checkpoint else train_ppo(cfg)
    agent_path = Path(cfg.out) / "agent.safetensors"
    export_ppo(zip_path, agent_path, trust_pickle=trust_pickle, env=cfg.env)
    scores = {
        mode: evaluate_agent(
            agent_path, cfg.env, cfg.eval_episodes, seed=cfg.seed + 100, deterministic=(mode == "deterministic")
        )
        for mode in (("deterministic", "stochastic") if cfg.eval_episodes > 0 else ())
    }
    export_ppo(zip_path, agent_path, {"eval": scores}, trust_pickle=trust_pickle, env=cfg.env)
    return agent_path, scores
