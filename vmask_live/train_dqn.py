"""DQN from scratch (Stable-Baselines3) for the envs whose paper agents are DQNs: Highway, VizDoom.

The job reads top to bottom: check the settings and the run folder, train SB3's ``DQN`` with the
``CnnPolicy`` (the DQN-Nature torso), convert the final model into our agent checkpoint (safetensors
+ JSON, read from the SB3 zip without un-pickling by :func:`vmask_live.sb3_zip.load_sb3_zip`), play
``eval_episodes`` greedy episodes and record the scores in the checkpoint.

Hyperparameters a field leaves at ``None`` come from the env family's preset
(:data:`DQN_PRESETS`): highway-env's documented CNN recipe for Highway, a small-buffer recipe for
VizDoom that learns ``basic`` on a CPU in minutes. DQN runs here are short, so there is no resume
(the replay buffer is not saved): a killed run is started again.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from vmask_live.atomic import atomic_path, atomic_write_text
from vmask_live.settings import SettingChecks

__all__ = ["DQNConfig", "DQN_PRESETS", "run_train_dqn"]

DQN_PRESETS: dict[str, dict[str, Any]] = {
    # highway-env's own "highway_dqn_cnn" example (short-sighted gamma, fast target updates)
    "highway": {
        "total_steps": 100_000,
        "buffer_size": 15_000,
        "learning_starts": 200,
        "learning_rate": 5e-4,
        "gamma": 0.8,
        "train_freq": 1,
        "target_update_interval": 50,
        "exploration_fraction": 0.7,
        "exploration_final_eps": 0.05,
        "reward_scale": 1.0,
    },
    # Doom's rewards are in the hundreds (basic: -1 per tic, +101 for the kill): scaled to ~1
    "vizdoom": {
        "total_steps": 100_000,
        "buffer_size": 30_000,
        "learning_starts": 2_000,
        "learning_rate": 1e-4,
        "gamma": 0.99,
        "train_freq": 4,
        "target_update_interval": 1_000,
        "exploration_fraction": 0.2,
        "exploration_final_eps": 0.05,
        "reward_scale": 0.01,
    },
}
"""Per env family: the value of each :class:`DQNConfig` field left at ``None``. Other families
(Atari, the ground-truth envs) use the ``vizdoom`` preset."""
FALLBACK_PRESET = "vizdoom"


@dataclass
class DQNConfig:
    """DQN (SB3, ``CnnPolicy``) from scratch on one env; ``None`` fields take the env family's preset."""

    env: str = "VizDoom"
    """Env name (see ``vmask-live envs``): Highway, VizDoom, VizDoomDefend, ..."""
    out: str = "runs/dqn"
    """Run folder: SB3 checkpoints (``dqn_latest.zip``), train log, the final ``agent.safetensors``."""
    total_steps: int | None = None
    """Agent steps (None: the preset's, 100 000 for Highway and VizDoom)."""
    buffer_size: int | None = None
    """Replay buffer size in transitions (each holds two observations: ~56 KB at 4x84x84)."""
    learning_starts: int | None = None
    """Random-action steps that fill the buffer before the first update."""
    batch_size: int = 32
    """Transitions per gradient step."""
    learning_rate: float | None = None
    """Adam learning rate (constant)."""
    gamma: float | None = None
    """Discount factor."""
    train_freq: int | None = None
    """Agent steps between gradient steps."""
    target_update_interval: int | None = None
    """Agent steps between copies of the online network into the target network."""
    exploration_fraction: float | None = None
    """Share of ``total_steps`` over which epsilon falls from 1 to ``exploration_final_eps``."""
    exploration_final_eps: float | None = None
    """Epsilon after the decay."""
    reward_scale: float | None = None
    """Training rewards are multiplied by this (scores are logged and evaluated unscaled)."""
    seed: int = 0
    """Seed of the env, the network and the exploration; evaluation uses seed + 100."""
    checkpoint_every: int = 10_000
    """Agent steps between atomic SB3 checkpoints and train-log rows."""
    eval_episodes: int = 10
    """Greedy evaluation episodes at the end (0: none)."""
    overwrite: bool = False
    """Start a new run in ``out`` even though it holds another run (its files are deleted first)."""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N."""
    threads: int | None = None
    """CPU threads for torch (None: torch's default, one per core). 1 is much faster when other
    jobs keep the cores busy: measured on a shared 2-core CPU, 12 gradient steps/s with 1 thread
    against 1 with 2."""

    def validate(self) -> None:
        """Check every setting, type then value.

        Raises:
            ConfigError: listing every bad setting at once, each as "expected ..., got ...".
        """
        c = SettingChecks("train-agent (dqn)")
        c.text("env", self.env, "an env name (see `vmask-live envs`)")
        c.text("out", self.out, "a run folder")
        c.integer("total_steps", self.total_steps, 1, optional=True)
        c.integer("buffer_size", self.buffer_size, 1, optional=True)
        c.integer("learning_starts", self.learning_starts, 0, optional=True)
        c.integer("batch_size", self.batch_size, 1)
        c.number("learning_rate", self.learning_rate, low=0, low_open=True, optional=True)
        c.number("gamma", self.gamma, low=0, high=1, optional=True)
        c.integer("train_freq", self.train_freq, 1, optional=True)
        c.integer("target_update_interval", self.target_update_interval, 1, optional=True)
        c.number("exploration_fraction", self.exploration_fraction, low=0, high=1, optional=True)
        c.number("exploration_final_eps", self.exploration_final_eps, low=0, high=1, optional=True)
        c.number("reward_scale", self.reward_scale, low=0, low_open=True, optional=True)
        c.integer("seed", self.seed, 0)
        c.integer("checkpoint_every", self.checkpoint_every, 1)
        c.integer("eval_episodes", self.eval_episodes, 0)
        c.flag("overwrite", self.overwrite)
        c.device("device", self.device)
        c.integer("threads", self.threads, 1, optional=True)
        c.raise_if_any()

    def resolved(self) -> DQNConfig:
        """A copy with every ``None`` field set from the env family's preset.

        Raises:
            ConfigError: an unknown env name.
        """
        from vmask_live.envs import env_spec

        preset = DQN_PRESETS.get(env_spec(self.env).family, DQN_PRESETS[FALLBACK_PRESET])
        filled = {f.name: preset[f.name] for f in fields(self) if getattr(self, f.name) is None and f.name in preset}
        return replace(self, **filled)


def _check_folder(cfg: DQNConfig, out: Path) -> None:
    from vmask_live.train_agent import refuse_other_run

    existing = [*out.glob("dqn_*.zip"), out / "agent.safetensors"] if out.is_dir() else []
    refuse_other_run(out, existing, cfg.overwrite, resumable=False)  # the replay buffer is not saved


def _make_vec_env(cfg: DQNConfig):
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from vmask_live.envs import make_env

    scale = float(cfg.reward_scale if cfg.reward_scale is not None else 1.0)

    def _init() -> gym.Env:
        env: gym.Env = Monitor(make_env(cfg.env, training=True))  # records raw scores, before reward scaling
        if scale != 1.0:
            env = gym.wrappers.TransformReward(env, lambda r: float(r) * scale)
        env.reset(seed=cfg.seed)
        env.action_space.seed(cfg.seed)
        return env

    return DummyVecEnv([_init])


def _save_sb3(model: Any, path: Path) -> None:
    """``model.save(path)`` atomically: a kill never leaves a half-written checkpoint."""
    with atomic_path(path, suffix=".zip") as tmp:  # SB3 would add ".zip" to a name that lacks it
        model.save(tmp)


def _export(zip_path: Path, out: Path, cfg: DQNConfig, info: dict[str, Any]) -> Path:
    from vmask_live.agents import save_agent
    from vmask_live.envs import action_names
    from vmask_live.sb3_zip import load_sb3_zip

    agent = load_sb3_zip(zip_path, algo="DQN", action_names=action_names(cfg.env))
    meta = {
        "trained_by": "vmask-live train-agent --algo dqn",
        "config": asdict(cfg),
        "env": cfg.env,
        "num_timesteps": agent.info.get("num_timesteps"),
        **info,
    }
    return save_agent(out, agent, "nature_cnn", agent.info["arch_kwargs"], meta)


def run_train_dqn(cfg: DQNConfig) -> tuple[Path, dict[str, Any]]:
    """The ``vmask-live train-agent --algo dqn`` job: train, export to ``out/agent.safetensors``, evaluate.

    Returns:
        ``(agent checkpoint, metrics)``: ``metrics["train"]`` (steps, seconds, steps per second,
        episodes, mean score of the last 20 training episodes) and, when ``eval_episodes`` > 0,
        ``metrics["eval"]`` (greedy scores, :func:`vmask_live.train_agent.evaluate_agent`).

    Raises:
        ConfigError: a bad setting (all of them listed), an unknown env, or a run in ``out`` that
            would be overwritten.
        MissingExtraError: the env's optional extra is not installed (the message names the pip command).
    """
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    from vmask_live.train import ensure_writable_folder
    from vmask_live.train_agent import evaluate_agent

    cfg.validate()
    cfg = cfg.resolved()
    out = Path(cfg.out)
    _check_folder(cfg, out)
    ensure_writable_folder(out)
    for stale in [*out.glob("dqn_*.zip"), out / "agent.safetensors", out / "train_log.jsonl"]:
        stale.unlink(missing_ok=True)  # only reached for a new run or with overwrite
    atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2))
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)

    venv = _make_vec_env(cfg)
    model = DQN(
        "CnnPolicy",
        venv,
        learning_rate=float(cfg.learning_rate),  # type: ignore[arg-type]
        buffer_size=int(cfg.buffer_size),  # type: ignore[arg-type]
        learning_starts=int(cfg.learning_starts),  # type: ignore[arg-type]
        batch_size=cfg.batch_size,
        gamma=float(cfg.gamma),  # type: ignore[arg-type]
        train_freq=int(cfg.train_freq),  # type: ignore[arg-type]
        gradient_steps=1,
        target_update_interval=int(cfg.target_update_interval),  # type: ignore[arg-type]
        exploration_fraction=float(cfg.exploration_fraction),  # type: ignore[arg-type]
        exploration_final_eps=float(cfg.exploration_final_eps),  # type: ignore[arg-type]
        seed=cfg.seed,
        device=cfg.device,
        verbose=0,
    )
    ckpt = out / "dqn_latest.zip"
    log_path = out / "train_log.jsonl"
    start = time.time()
    scores: list[float] = []

    class _Progress(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.last_ckpt = 0

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    scores.append(float(info["episode"]["r"]))
            if self.num_timesteps - self.last_ckpt >= cfg.checkpoint_every:
                self.last_ckpt = self.num_timesteps
                _save_sb3(self.model, ckpt)
                recent = scores[-20:]
                row = {
                    "steps": self.num_timesteps,
                    "wall_s": round(time.time() - start, 1),
                    "charts/score_last20": sum(recent) / max(len(recent), 1),
                    "charts/episodes": len(scores),
                    "charts/epsilon": round(float(model.exploration_rate), 4),
                }
                with log_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
            return True

    model.learn(total_timesteps=int(cfg.total_steps), callback=_Progress(), progress_bar=False)  # type: ignore[arg-type]
    _save_sb3(model, ckpt)
    venv.close()
    seconds = time.time() - start
    recent = scores[-20:]
    metrics: dict[str, Any] = {
        "train": {
            "steps": int(model.num_timesteps),
            "seconds": round(seconds, 1),
            "steps_per_s": round(model.num_timesteps / max(seconds, 1e-9), 1),
            "episodes": len(scores),
            "score_last20": sum(recent) / max(len(recent), 1),
        }
    }
    agent_path = _export(ckpt, out / "agent.safetensors", cfg, metrics)
    if cfg.eval_episodes > 0:
        metrics["eval"] = evaluate_agent(
            agent_path, cfg.env, cfg.eval_episodes, seed=cfg.seed + 100, deterministic=True
        )
        _export(ckpt, agent_path, cfg, metrics)
    return agent_path, metrics
