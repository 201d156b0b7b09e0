"""Datasets of agent-visited states, stored as memory-mappable ``.npy`` shards.

A dataset folder holds ``manifest.json`` and, per shard ``i``, ``obs_i.npy`` (uint8 raw
observations), ``actions_i.npy`` (the agent's arg-max action, the label), ``logits_i.npy``,
``episodes_i.npy`` and, when the env reports it, ``relevant_i.npy`` (bool masks). Shards and the
manifest are written atomically (temporary file + rename), so an interrupted ``collect`` loses at
most the shard in progress and ``--resume`` continues from the manifest. The 80/10/10 split is by
episode (``episode % 10``: 0-7 train, 8 val, 9 test), so resuming never reshuffles it.
``background.npy`` is the per-pixel median of training observations in model space (the default
overlay reference); ``mean.npy`` the per-channel mean.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vmask_live.checkpoint import atomic_write_text
from vmask_live.errors import DatasetError
from vmask_live.observations import ObsFormat
from vmask_live.pairing import agent_hash

__all__ = ["CollectConfig", "collect", "Dataset", "DatasetError", "SPLITS"]

SPLITS = ("train", "val", "test")
FORMAT = "vmask-live-dataset"


@dataclass
class CollectConfig:
    """Collect states visited by an agent."""

    env: str = "Beacon"
    """Env name (see ``vmask-live envs``)."""
    agent: str = ""
    """Agent spec for :func:`vmask_live.load_agent` (``default:NAME``, path)."""
    out: str = "data/beacon"
    """Dataset folder."""
    steps: int = 20_000
    """Number of states to store."""
    n_envs: int = 8
    """Parallel envs (one batched agent call per step)."""
    shard_size: int = 5_000
    seed: int = 0
    deterministic: bool = False
    """Act by arg-max; the default samples from the agent's softmax for diversity (labels are arg-max)."""
    resume: bool = False
    env_kwargs: dict[str, Any] = field(default_factory=dict)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)


def collect(cfg: CollectConfig, agent=None, progress: bool = True) -> Dataset:
    """Run ``agent`` in ``cfg.env`` and store its states (resumable, atomic shards)."""
    import gymnasium as gym

    from vmask_live.agents import load_agent
    from vmask_live.envs import action_names, canonical_name, make_env

    agent = agent if agent is not None else load_agent(cfg.agent)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    env_name = canonical_name(cfg.env)
    manifest_path = out / "manifest.json"
    a_hash = agent_hash(agent)
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if not cfg.resume:
            raise DatasetError(
                f"{str(out)!r} already holds a dataset; pass --resume to continue it or pick another --out"
            )
        if manifest["env"] != env_name or manifest["agent_hash"] != a_hash:
            raise DatasetError(
                f"Cannot resume {str(out)!r}: it was collected on env {manifest['env']!r} with agent "
                f"{manifest['agent_hash']}, not env {env_name!r} with agent {a_hash}"
            )
    else:
        manifest = {
            "format": FORMAT,
            "version": 1,
            "env": env_name,
            "agent": cfg.agent,
            "agent_hash": a_hash,
            "shards": [],
            "n_samples": 0,
            "next_episode": 0,
            "complete": False,
            "config": asdict(cfg),
        }

    fns = [lambda: make_env(cfg.env, **cfg.env_kwargs) for _ in range(cfg.n_envs)]
    envs = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    single = envs.single_observation_space
    fmt = ObsFormat.from_space(single)
    if fmt.chw != agent.obs_format.chw:
        raise DatasetError(f"Agent expects observations {agent.obs_format.shape}, env {cfg.env!r} gives {single.shape}")
    probe = make_env(cfg.env, **cfg.env_kwargs)
    manifest.update(obs_format=fmt.to_dict(), n_actions=agent.n_actions, action_names=action_names(probe))
    probe.close()

    shard_idx = len(manifest["shards"])
    obs, info = envs.reset(seed=cfg.seed + 1000 * shard_idx)
    rng = np.random.default_rng(cfg.seed + shard_idx)
    episodes = np.arange(cfg.n_envs) + manifest["next_episode"]
    next_episode = int(episodes.max()) + 1
    buf: dict[str, list] = {k: [] for k in ("obs", "actions", "logits", "episodes", "relevant")}

    def flush() -> None:
        nonlocal shard_idx
        if not buf["obs"]:
            return
        arrays = {k: np.concatenate(v) for k, v in buf.items() if v}
        for k, arr in arrays.items():
            _save_npy(out / f"{k}_{shard_idx:05d}.npy", arr)
        n = len(arrays["obs"])
        manifest["shards"].append({"index": shard_idx, "n": n})
        manifest["n_samples"] += n
        # Unfinished episodes continue under new ids after a resume: ids stay unique per episode part.
        manifest["next_episode"] = next_episode + cfg.n_envs
        atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
        shard_idx += 1
        for v in buf.values():
            v.clear()

    interrupted = False

    def _on_term(signum, frame):  # a `kill` flushes like Ctrl-C
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _on_term)
    done = manifest["n_samples"]
    from rich.progress import Progress

    try:
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task(f"collect {env_name}", total=cfg.steps, completed=done)
            pending = sum(len(x) for x in buf["obs"])
            while done + pending < cfg.steps:
                actions, _, logits = agent.act(obs, deterministic=cfg.deterministic, rng=rng)
                take = min(cfg.n_envs, cfg.steps - done - pending)
                buf["obs"].append(np.asarray(obs[:take]).copy())
                buf["actions"].append(logits[:take].argmax(1).astype(np.int64))
                buf["logits"].append(logits[:take].astype(np.float32))
                buf["episodes"].append(episodes[:take].copy())
                if "relevant_mask" in info:
                    buf["relevant"].append(np.asarray(info["relevant_mask"][:take], bool))
                obs, _, term, trunc, info = envs.step(actions)
                for i in np.flatnonzero(term | trunc):
                    episodes[i] = next_episode
                    next_episode += 1
                pending += take
                bar.update(task, advance=take)
                if pending >= cfg.shard_size:
                    flush()
                    done, pending = manifest["n_samples"], 0
            flush()
    except KeyboardInterrupt:
        interrupted = True
        flush()
    finally:
        signal.signal(signal.SIGTERM, old)
        envs.close()
    if interrupted:
        raise KeyboardInterrupt(
            f"collect interrupted; {manifest['n_samples']} states saved in {out}, rerun with --resume"
        )
    ds = Dataset(out)
    ds.finalise()
    return ds


class Dataset:
    """Read access to a collected dataset (memory-mapped shards)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        mpath = self.path / "manifest.json"
        if not mpath.exists():
            raise DatasetError(
                f"{str(self.path)!r} is not a dataset folder (no manifest.json); run `vmask-live collect`"
            )
        self.manifest = json.loads(mpath.read_text())
        if self.manifest.get("format") != FORMAT:
            raise DatasetError(f"{str(mpath)!r} is not a vmask-live dataset manifest")
        if not self.manifest["shards"]:
            raise DatasetError(f"Dataset {str(self.path)!r} is empty; run `vmask-live collect` first")
        self.obs_format = ObsFormat.from_dict(self.manifest["obs_format"])
        self._shards = []
        for s in self.manifest["shards"]:
            i = s["index"]
            arrays = {}
            for k in ("obs", "actions", "logits", "episodes", "relevant"):
                p = self.path / f"{k}_{i:05d}.npy"
                if p.exists():
                    arrays[k] = np.load(p, mmap_mode="r")
            self._shards.append(arrays)
        self._offsets = np.cumsum([0] + [len(s["obs"]) for s in self._shards])
        self.actions = np.concatenate([s["actions"] for s in self._shards])
        self.episodes = np.concatenate([s["episodes"] for s in self._shards])
        self.has_relevant = all("relevant" in s for s in self._shards)

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def env(self) -> str:
        return self.manifest["env"]

    @property
    def n_actions(self) -> int:
        return int(self.manifest["n_actions"])

    @property
    def action_names(self) -> list[str]:
        return list(self.manifest["action_names"])

    def split(self, name: str) -> np.ndarray:
        """Sample indices of ``train``, ``val`` or ``test`` (by episode: 80/10/10)."""
        if name not in SPLITS:
            raise ValueError(f"Expected split in {SPLITS}, got {name!r}")
        bucket = self.episodes % 10
        sel = {"train": bucket < 8, "val": bucket == 8, "test": bucket == 9}[name]
        idx = np.flatnonzero(sel)
        if len(idx) == 0:
            raise DatasetError(
                f"Split {name!r} of {str(self.path)!r} is empty ({len(self)} states, "
                f"{len(np.unique(self.episodes))} episodes); collect more episodes"
            )
        return idx

    def get(self, idx: np.ndarray, fields: tuple[str, ...] = ("obs", "actions")) -> dict[str, np.ndarray]:
        """Gather samples (any order) into in-memory arrays."""
        idx = np.asarray(idx)
        order = np.argsort(idx, kind="stable")
        sidx = idx[order]
        shard = np.searchsorted(self._offsets, sidx, side="right") - 1
        out = {}
        for k in fields:
            parts = [np.asarray(self._shards[s][k][sidx[shard == s] - self._offsets[s]]) for s in np.unique(shard)]
            arr = np.concatenate(parts)
            res = np.empty_like(arr)
            res[order] = arr
            out[k] = res
        return out

    def sample_split(self, split: str, n: int, seed: int = 0, device: str = "cpu"):
        """A seeded sample of ``n`` states of a split in model space.

        Returns:
            ``(x, actions, relevant)``: ``(n, C, H, W)`` float, ``(n,)`` long, and the bool relevant
            masks ``(n, H, W)`` when the env reports them (else ``None``).
        """
        idx = self.split(split)
        idx = np.sort(np.random.default_rng(seed).choice(idx, min(n, len(idx)), replace=False))
        fields = ("obs", "actions", "relevant") if self.has_relevant else ("obs", "actions")
        d = self.get(idx, fields)
        x = self.obs_format.to_model(d["obs"], device)
        a = torch.as_tensor(d["actions"], device=device)
        relevant = torch.as_tensor(d["relevant"], device=device) if self.has_relevant else None
        return x, a, relevant

    def finalise(self, max_samples: int = 4096) -> None:
        """Compute the background (per-pixel median) and mean of training observations."""
        train = self.split("train")
        pick = train[np.linspace(0, len(train) - 1, min(max_samples, len(train))).astype(int)]
        x = self.obs_format.to_model(self.get(pick, ("obs",))["obs"])
        background = x.median(dim=0).values.numpy().astype(np.float32)
        mean = x.mean(dim=(0, 2, 3)).numpy().astype(np.float32)
        _save_npy(self.path / "background.npy", background)
        _save_npy(self.path / "mean.npy", mean)
        self.manifest["complete"] = True
        self.manifest["counts"] = {s: int(len(self.split(s))) for s in SPLITS}
        atomic_write_text(self.path / "manifest.json", json.dumps(self.manifest, indent=1))

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """(background ``(C, H, W)``, mean ``(C,)``) in model space."""
        if not (self.path / "background.npy").exists():
            self.finalise()
        return np.load(self.path / "background.npy"), np.load(self.path / "mean.npy")
