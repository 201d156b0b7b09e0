"""Training the agents that VisionMask explains.

* ``ppo``: Stable-Baselines3 PPO on Atari with the RL-Zoo hyperparameters.
* ``bc``: behaviour cloning of a scripted expert (the ground-truth env) into a small CNN.

Both end in an agent checkpoint of our own format (safetensors + JSON, see
:mod:`vmask_live.agents`) that never needs unpickling to load.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["PPOConfig", "train_ppo", "BCConfig", "train_bc", "export_ppo", "evaluate_agent"]


@dataclass
class PPOConfig:
    """PPO on an Atari game (RL-Zoo ``atari`` hyperparameters)."""

    env: str = "MsPacman"
    """CLI env name (see ``vmask-live envs``)."""
    out: str = "runs/agent"
    """Run folder: periodic SB3 checkpoints, eval log, the final agent checkpoint."""
    total_steps: int = 1_000_000
    """Agent steps over all envs (x4 emulator frames)."""
    n_envs: int = 8
    n_steps: int = 128
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 2.5e-4
    """Initial learning rate, decayed linearly to 0."""
    clip_range: float = 0.1
    """Initial clip range, decayed linearly to 0."""
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    seed: int = 0
    checkpoint_every: int = 100_000
    """Agent steps between atomic SB3 checkpoints (used by ``resume``)."""
    eval_episodes: int = 10
    """Full-game evaluation episodes at the end."""
    subprocess: bool = True
    """Run the envs in worker processes (SubprocVecEnv)."""
    resume: bool = False
    """Continue from the newest checkpoint in ``out``."""
    device: str = "auto"


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

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    venv = _make_vec_env(cfg)
    ckpt = out / "ppo_latest.zip"
    if cfg.resume and ckpt.exists():
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
                tmp = out / "ppo_latest.tmp.zip"
                self.model.save(tmp)
                tmp.replace(ckpt)  # atomic: a kill never leaves a half-written checkpoint
                self.model.save(out / f"ppo_{self.num_timesteps}.zip")
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
        total_timesteps=max(cfg.total_steps - done, 0),
        callback=_Progress(),
        reset_num_timesteps=False,
        progress_bar=False,
    )
    tmp = out / "ppo_latest.tmp.zip"
    model.save(tmp)
    tmp.replace(ckpt)
    venv.close()
    return ckpt


@dataclass
class BCConfig:
    """Behaviour cloning of a scripted expert (envs whose info has ``expert_action``)."""

    env: str = "Beacon"
    out: str = "runs/beacon-bc/agent.safetensors"
    """Agent checkpoint to write (safetensors + JSON)."""
    samples: int = 10_000
    """Expert-labelled states for training (another 10% are held out)."""
    epochs: int = 14
    batch_size: int = 128
    lr: float = 3e-3
    width: int = 8
    noise: float = 0.3
    """Probability of a random action while rolling out, so states off the expert's path are seen."""
    seed: int = 0


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
        raise ValueError(f"Env {env_name!r} has no scripted expert (no info['expert_action']); use --algo ppo")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    while sum(len(x) for x in xs) < n:
        expert = np.asarray(info["expert_action"], np.int64)
        xs.append(np.asarray(obs).copy())
        ys.append(expert)
        act = np.where(rng.random(n_envs) < noise, rng.integers(0, envs.single_action_space.n, n_envs), expert)
        obs, _, _, _, info = envs.step(act)
    envs.close()
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def train_bc(cfg: BCConfig, progress: bool = True):
    """Clone the expert into a :class:`~vmask_live.agents.KeypointCNN`; returns (agent, metrics)."""
    import torch
    from rich.progress import track

    from vmask_live.agents import KeypointCNN, TorchAgent, save_agent
    from vmask_live.envs import action_names, make_env
    from vmask_live.observations import ObsFormat

    torch.manual_seed(cfg.seed)
    start = time.time()
    x, y = rollout_expert(cfg.env, cfg.samples, cfg.noise, cfg.seed)
    xh, yh = rollout_expert(cfg.env, max(cfg.samples // 10, 500), cfg.noise, cfg.seed + 10_000)
    probe = make_env(cfg.env)
    fmt = ObsFormat.from_space(probe.observation_space)
    names = action_names(probe)
    probe.close()
    c, h, w = fmt.chw
    kwargs = {"in_channels": c, "n_actions": len(names), "input_size": [h, w], "width": cfg.width}
    agent = TorchAgent(KeypointCNN(**kwargs), fmt, len(names), 1.0, names)
    opt = torch.optim.Adam(agent.parameters(), lr=cfg.lr)
    xt, yt = fmt.to_model(x), torch.as_tensor(y)
    steps = len(x) // cfg.batch_size
    # Constant rate, then the last quarter annealed: OneCycle's long warm-up under-trained this net.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 if i < 0.75 * cfg.epochs * steps else 0.2)
    gen = torch.Generator().manual_seed(cfg.seed)
    agent.train()
    for _ in track(range(cfg.epochs), description="behaviour cloning", disable=not progress):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(steps):
            b = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            loss = torch.nn.functional.cross_entropy(agent(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    agent.freeze()
    with torch.inference_mode():
        held = float((agent(fmt.to_model(xh)).argmax(1).numpy() == yh).mean())
        tr = float((agent(xt[:2000]).argmax(1) == yt[:2000]).float().mean())
    metrics = {
        "heldout_agreement": held,
        "train_agreement": tr,
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

    return agent, metrics


def export_ppo(zip_path: str | Path, out: str | Path, info: dict | None = None) -> Path:
    """Convert an SB3 PPO/A2C ``CnnPolicy`` .zip into our agent checkpoint (no pickle to ship)."""
    from stable_baselines3 import PPO

    from vmask_live.agents import agent_from_sb3, save_agent
    from vmask_live.envs import action_names, make_env

    model = PPO.load(str(zip_path), device="cpu")
    cfg = (
        json.loads((Path(zip_path).parent / "config.json").read_text())
        if (Path(zip_path).parent / "config.json").exists()
        else {}
    )
    env = make_env(cfg.get("env", "MsPacman"))
    agent = agent_from_sb3(model, action_names(env))
    env.close()
    fe = model.policy.features_extractor
    kwargs = {
        "in_channels": agent.obs_format.chw[0],
        "n_actions": agent.n_actions,
        "input_size": list(agent.obs_format.chw[1:]),
        "features": fe.features_dim,
    }
    return save_agent(
        out,
        agent,
        "nature_cnn",
        kwargs,
        {
            "trained_by": "vmask-live train-agent --algo ppo",
            "config": cfg,
            "num_timesteps": int(model.num_timesteps),
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
    """Mean/std raw game score over full-game episodes (all envs stepped in one batched agent call)."""
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
    for _ in range(max_steps):
        actions, _, _ = agent.act(obs, deterministic=deterministic, rng=rng)
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
    }
