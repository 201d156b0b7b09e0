"""Datasets of agent-visited states, stored as memory-mappable ``.npy`` shards.

A dataset folder holds ``manifest.json`` and, per shard ``i``, ``obs_i.npy`` (raw observations),
``actions_i.npy`` (the agent's arg-max action, the label), ``logits_i.npy``, ``episodes_i.npy``
and, when the env reports it, ``relevant_i.npy`` (bool masks). Where the game has an object
annotator (:func:`vmask_live.objects.annotator_for`), ``objects_i.npy`` holds each state's objects:
``(n, MAX_OBJECTS, 6)`` float32 rows ``[category index, id, x0, y0, x1, y1]`` (boxes in observation
pixels, ``x1``/``y1`` exclusive), padded with NaN rows (without the static items of :data:`vmask_live.objects.ITEM_CATEGORIES`); the manifest's ``object_categories`` names
the category indices (append-only, so indices stay valid across shards). ``background.npy`` is the
per-pixel median of training observations in model space (the default overlay reference);
``mean.npy`` the per-channel mean.

Guarantees:

* **One writer.** ``collect`` holds an exclusive lock on ``<out>/.lock`` (``fcntl.flock``, with
  the holder's PID and host written in it) from start to end; a second ``collect`` into the same
  folder fails at once instead of mixing two runs. The lock goes with the process, however it ends.
* **Atomic, verified shards.** Shards and the manifest are written atomically (temporary file +
  rename), so an interrupted ``collect`` loses at most the shard in progress and ``--resume``
  continues from the manifest. :class:`Dataset` checks on open that every shard file the
  manifest lists exists with the recorded length, shape and dtype; ``--resume`` re-collects
  from the first damaged shard.
* **Complete or refused.** A dataset is marked complete only once all ``steps`` states are
  stored and the split is made; the splits and statistics of an incomplete one raise
  :class:`~vmask_live.errors.DatasetError` saying how to finish it.

The split is by episode, so no episode is in two splits, and is a function of the stored
episode ids only, so resuming never reshuffles it: an episode id ``e`` goes to train when
``e % 10 < 8``, to val when ``e % 10 == 8`` and to test when ``e % 10 == 9`` (80/10/10). The
episodes still running when ``collect`` stops count as episodes too; each env starts one, so
``n_envs >= 3`` always gives at least three. With few episodes a bucket can be empty: then an
empty test, val or train split (in that order) takes the newest episode of the largest split.
So three or more episodes always give non-empty train, val and test splits; fewer cannot be
split, and ``collect`` refuses ``steps < 3`` before collecting and, when ``n_envs < 3`` gave
fewer than three episodes, leaves the dataset incomplete and says how to extend it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vmask_live.atomic import atomic_path, atomic_write_text
from vmask_live.errors import ConfigError, DatasetError
from vmask_live.interrupt import sigterm_as_interrupt
from vmask_live.observations import ObsFormat
from vmask_live.pairing import agent_hash
from vmask_live.settings import SettingChecks

__all__ = ["CollectConfig", "collect", "Dataset", "DatasetError", "SPLITS", "MIN_EPISODES", "MAX_OBJECTS"]

SPLITS = ("train", "val", "test")
FORMAT = "vmask-live-dataset"
VERSION = 1
"""The manifest format version this code writes and reads."""
MIN_EPISODES = 3
"""Fewest episodes that can be split into non-empty train, val and test splits."""

LOCK_NAME = ".lock"
_REQUIRED_KEYS = (
    "env",
    "agent_hash",
    "shards",
    "n_samples",
    "next_episode",
    "complete",
    "obs_format",
    "n_actions",
    "action_names",
)
_ARRAYS = ("obs", "actions", "logits", "episodes", "relevant", "objects")
_OPTIONAL_ARRAYS = ("relevant", "objects")
MAX_OBJECTS = 32
"""Object rows stored per state (NaN-padded); an annotator giving more fails the collect."""
# Settings a resume must share with the manifest: they decide what the stored states are.
# `steps` may change (to no fewer than the states already stored); `agent` (the spec string) and
# `out` may too, since the agent is pinned by its weight hash and the folder by the manifest.
_RESUME_FIXED = ("n_envs", "shard_size", "seed", "deterministic", "env_kwargs")


@dataclass
class CollectConfig:
    """Collect states visited by an agent.

    Every field is checked on construction and again by :func:`collect` (see :meth:`validate`).
    """

    env: str = "Beacon"
    """Env name (see ``vmask-live envs``)."""
    agent: str = ""
    """Agent spec for :func:`vmask_live.load_agent` (``default:NAME``, path)."""
    out: str = "data/beacon"
    """Dataset folder."""
    steps: int = 50_000
    """Number of states to store (at least 3: one episode each for train, val and test)."""
    n_envs: int = 8
    """Parallel envs (one batched agent call per step); 3 or more guarantee enough episodes."""
    shard_size: int = 5_000
    """States per shard file."""
    seed: int = 0
    """Seed of the env resets and of the action sampling (a non-negative int)."""
    deterministic: bool = False
    """Act by arg-max; the default samples from the agent's softmax for diversity (labels are arg-max)."""
    resume: bool = False
    """Continue the dataset in ``out`` (same settings; ``steps`` may change, see :func:`collect`)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for :func:`vmask_live.envs.make_env`."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every setting, type then value.

        Raises:
            ConfigError: listing every bad setting at once, each as "expected ..., got ...".
        """
        c = SettingChecks("collect")
        c.integer("steps", self.steps, 1)
        c.integer("n_envs", self.n_envs, 1)
        c.integer("shard_size", self.shard_size, 1)
        c.integer("seed", self.seed, 0)
        c.text("env", self.env, "an env name (see `vmask-live envs`)")
        c.text("agent", self.agent, "an agent spec string (default:NAME or a path)", allow_empty=True)
        if not isinstance(self.out, (str, os.PathLike)) or not str(self.out):
            c.add("out", "a folder path", self.out)
        c.flag("deterministic", self.deterministic)
        c.flag("resume", self.resume)
        if not isinstance(self.env_kwargs, dict):
            c.add("env_kwargs", "a dict of keyword arguments for make_env", self.env_kwargs)
        c.raise_if_any()


def _save_npy(path: Path, arr: np.ndarray) -> None:
    # np.save adds ".npy" to a name that lacks it, so it writes to an open file instead
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def _lock_holder(path: Path) -> tuple[str, str]:
    """(Who holds the lock, how to stop it) from the details the holder wrote into ``path``."""
    try:
        holder = json.loads(path.read_text())
        pid, host = int(holder["pid"]), str(holder["host"])
        where = "" if host == socket.gethostname() else f" on {host}"
        return f"PID {pid} on host {host}, started {holder['started']}", f"`kill {pid}`{where}"
    except (OSError, ValueError, KeyError, TypeError):
        # The holder may not have written its details yet, or the file predates them.
        return "a process that has not written its PID yet", "stop that process"


@contextmanager
def _exclusive_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on ``folder`` (released when the process ends)."""
    try:
        import fcntl
    except ImportError:  # Windows has no flock: concurrent collects are not detected there
        yield
        return
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise DatasetError(
                    f"Cannot lock dataset folder {str(folder)!r} ({err}); its file system may not support "
                    "locks: collect into a local folder and move it afterwards"
                ) from err
            who, stop = _lock_holder(path)
            raise DatasetError(
                f"Dataset folder {str(folder)!r} is in use by another collect ({who}); two collects into one "
                f"folder would mix their states. Wait for it to finish, or stop it ({stop}) and rerun with "
                "--resume to continue its dataset, or collect into another --out"
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(holder).encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _read_manifest(folder: Path) -> dict[str, Any]:
    """Load and structurally check ``folder/manifest.json``."""
    mpath = folder / "manifest.json"
    if not mpath.exists():
        raise DatasetError(f"{str(folder)!r} is not a dataset folder (no manifest.json); run `vmask-live collect`")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(
            f"{str(mpath)!r} is not valid JSON ({err}); the dataset is damaged: delete the folder and collect again"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{str(mpath)!r} is not a vmask-live dataset manifest")
    fix = "it was edited or written by another version: delete the folder and collect again"
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing:
        raise DatasetError(f"{str(mpath)!r} lacks the key(s) {', '.join(map(repr, missing))}; {fix}")
    if manifest.get("version") != VERSION:
        raise DatasetError(
            f"{str(mpath)!r} is a dataset of format version {manifest.get('version')!r}; this vmask-live reads "
            f"version {VERSION}: collect it again with this version"
        )
    for pos, shard in enumerate(manifest["shards"]):
        lacking = [k for k in ("index", "n") if not isinstance(shard, dict) or k not in shard]
        if lacking:
            raise DatasetError(f"{str(mpath)!r}: shards[{pos}] lacks the key(s) {', '.join(map(repr, lacking))}; {fix}")
    indices = [shard["index"] for shard in manifest["shards"]]
    if len(set(indices)) != len(indices):
        raise DatasetError(f"{str(mpath)!r} lists a shard twice (indices {indices}); {fix}")
    stored = sum(int(shard["n"]) for shard in manifest["shards"])
    if manifest.get("n_samples") != stored:
        raise DatasetError(
            f"{str(mpath)!r} says n_samples {manifest.get('n_samples')!r}, but its shards hold {stored} states; {fix}"
        )
    try:
        ObsFormat.from_dict(manifest["obs_format"])
    except KeyError as err:
        raise DatasetError(f"{str(mpath)!r}: obs_format lacks the key {err.args[0]!r}; {fix}") from None
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{str(mpath)!r}: obs_format is invalid ({err}); {fix}") from None
    return manifest


def _expected_array(manifest: dict[str, Any], key: str, n: int) -> tuple[tuple[int, ...] | None, str | None]:
    """Shape and dtype the manifest implies for one shard array (``None``: not checked)."""
    fmt = ObsFormat.from_dict(manifest["obs_format"])
    return {
        "obs": ((n, *fmt.shape), manifest.get("obs_dtype")),
        "actions": ((n,), "int64"),
        "logits": ((n, int(manifest["n_actions"])), "float32"),
        "episodes": ((n,), "int64"),
        "relevant": (None, "bool"),  # mask layout is the env's; its length is checked below
        "objects": ((n, int(manifest.get("max_objects", MAX_OBJECTS)), 6), "float32"),
    }[key]


def _npy_problem(path: Path, shape: tuple[int, ...] | None, n: int, dtype: str | None) -> str | None:
    """What is wrong with one ``.npy`` file, read from its header and size without mapping it."""
    if not path.exists():
        return f"{path.name} is missing"
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            got_shape, _, got_dtype = read(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError) as err:
        return f"{path.name} has no readable .npy header ({size} bytes; {err})"
    need = offset + math.prod(got_shape) * got_dtype.itemsize
    if size < need:
        return f"{path.name} is truncated ({size} of {need} bytes)"
    if (shape is not None and tuple(got_shape) != shape) or (shape is None and (not got_shape or got_shape[0] != n)):
        expected = shape if shape is not None else f"({n}, ...)"
        return f"{path.name} holds shape {tuple(got_shape)}, the manifest records {expected}"
    if dtype is not None and got_dtype != np.dtype(dtype):
        return f"{path.name} holds dtype {got_dtype}, the manifest records {dtype}"
    return None


def _shard_keys(folder: Path, shard: dict[str, Any]) -> list[str]:
    if "arrays" in shard:
        return list(shard["arrays"])
    # Manifests before per-shard array lists: the optional arrays are whatever exists.
    i = shard["index"]
    return [k for k in _ARRAYS if k not in _OPTIONAL_ARRAYS or (folder / f"{k}_{i:05d}.npy").exists()]


def _shard_problems(folder: Path, manifest: dict[str, Any]) -> list[tuple[int, str]]:
    """``(position in manifest["shards"], problem)`` for every damaged shard file."""
    problems = []
    for pos, shard in enumerate(manifest["shards"]):
        i, n = int(shard["index"]), int(shard["n"])
        for key in _shard_keys(folder, shard):
            shape, dtype = _expected_array(manifest, key, n)
            problem = _npy_problem(folder / f"{key}_{i:05d}.npy", shape, n, dtype)
            if problem:
                problems.append((pos, problem))
    return problems


def _damage_message(folder: Path, problems: list[tuple[int, str]]) -> str:
    shown = [p for _, p in problems[:4]] + ([f"and {len(problems) - 4} more"] if len(problems) > 4 else [])
    return (
        f"Dataset {str(folder)!r} is damaged: {'; '.join(shown)}. Rerun the same `vmask-live collect` with "
        "--resume to re-collect from the first damaged shard, or delete the folder and collect again"
    )


def _split_episodes(episodes: np.ndarray) -> dict[str, np.ndarray]:
    """Episode ids of each split (the rule is in the module docstring)."""
    ids = np.unique(episodes)
    bucket = ids % 10
    groups = {"train": list(ids[bucket < 8]), "val": list(ids[bucket == 8]), "test": list(ids[bucket == 9])}
    for name in ("test", "val", "train"):
        if not groups[name]:
            donor = max(groups, key=lambda g: (len(groups[g]), g == "train"))
            if len(groups[donor]) >= 2:
                groups[name].append(groups[donor].pop())  # ids are sorted: pop() takes the newest
    return {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}


def _check_agent_fits(agent: Any, env: Any, env_name: str, agent_spec: str) -> ObsFormat:
    """Raise :class:`ConfigError` unless ``agent`` can act in ``env``; return the env's format."""
    import gymnasium as gym

    problems = []
    space = env.action_space
    if not isinstance(space, gym.spaces.Discrete):
        problems.append(f"env {env_name!r} has the action space {space}, collect needs a Discrete one")
    elif int(space.n) != int(agent.n_actions):
        problems.append(f"the agent has {agent.n_actions} actions, env {env_name!r} has {int(space.n)}")
    else:
        from vmask_live.envs import action_names
        from vmask_live.pairing import action_names_mismatch

        why = action_names_mismatch("the agent", getattr(agent, "action_names", None), action_names(env))
        if why:
            problems.append(why)
    fmt = ObsFormat.from_space(env.observation_space)
    af = agent.obs_format
    if (tuple(af.shape), af.layout) != (fmt.shape, fmt.layout) or not math.isclose(af.scale, fmt.scale):
        problems.append(
            f"the agent expects observations of shape {tuple(af.shape)} ({af.layout}, scale {af.scale:g}), "
            f"env {env_name!r} gives {fmt.shape} ({fmt.layout}, scale {fmt.scale:g})"
        )
    if problems:
        given = f" {agent_spec!r}" if agent_spec else ""
        raise ConfigError(
            f"The agent{given} cannot act in env {env_name!r}: {'; '.join(problems)}. It was probably trained "
            f"on another env: pass --env with the env it was trained on, or an agent trained for {env_name} "
            f"(`vmask-live train-agent --env {env_name}`)"
        )
    return fmt


_NOT_RECORDED = object()


def _show(value: Any) -> str:
    return "(not recorded)" if value is _NOT_RECORDED else json.dumps(value)


def _resume_differences(manifest: dict[str, Any], cfg: CollectConfig, env_name: str, a_hash: str) -> list[str]:
    """``"name: manifest X, now Y"`` for every setting that may not change on resume."""
    config = manifest.get("config")
    recorded: dict[str, Any] = config if isinstance(config, dict) else {}
    before = {"env": manifest["env"], "agent_hash": manifest["agent_hash"]}
    before.update({k: recorded.get(k, _NOT_RECORDED) for k in _RESUME_FIXED})
    now = {"env": env_name, "agent_hash": a_hash}
    # JSON round trip so tuples and lists, or ints and numpy ints, compare as the manifest stores them.
    now.update({k: json.loads(json.dumps(getattr(cfg, k), default=str)) for k in _RESUME_FIXED})
    diffs = [f"{k}: manifest {_show(before[k])}, now {_show(now[k])}" for k in now if before[k] != now[k]]
    stored = int(manifest["n_samples"])
    if cfg.steps < stored:
        diffs.append(
            f"steps: manifest {_show(recorded.get('steps', _NOT_RECORDED))}, now {cfg.steps} "
            f"(the folder already holds {stored} states; steps may change but not below that)"
        )
    return diffs


def collect(cfg: CollectConfig, agent: Any = None, progress: bool = True) -> Dataset:
    """Run ``agent`` in ``cfg.env`` and store its states (locked, resumable, atomic shards).

    Before anything is collected the settings are validated, ``steps >= 3`` is required (the
    split needs three episodes, see the module docstring) and the agent must fit the env: as
    many actions as the env's ``action_space.n`` and its observation format.

    With ``cfg.resume`` the folder's manifest must have been made with the same env, agent
    weights (by hash), ``n_envs``, ``shard_size``, ``seed``, ``deterministic`` and
    ``env_kwargs``; ``steps`` may change, to extend the dataset or finish it early, but not below
    the states already stored; ``agent`` may name the same weights by another path. Damaged
    shards (missing or truncated files) are dropped and re-collected.

    Args:
        cfg: the collect settings.
        agent: an :class:`~vmask_live.agents.Agent`; ``None`` loads ``cfg.agent``.
        progress: show a progress bar.

    Returns:
        The finished, verified :class:`Dataset`.

    Raises:
        ConfigError: invalid settings, fewer than 3 steps, or an agent that does not fit the env.
        DatasetError: the folder is locked by another collect, holds a dataset without
            ``--resume`` or with other settings, or the run gave fewer than 3 episodes (the
            dataset is left incomplete; the message says how to extend it).
        KeyboardInterrupt: on Ctrl-C or SIGTERM, after saving the shard in progress.
    """
    from vmask_live.agents import load_agent
    from vmask_live.envs import action_names, canonical_name, make_env

    cfg.validate()
    if cfg.steps < MIN_EPISODES:
        raise ConfigError(
            f"steps={cfg.steps} gives at most {cfg.steps} episode(s), but the train/val/test split needs at "
            f"least {MIN_EPISODES}; use --steps {MIN_EPISODES} or more (a useful dataset has 30+ episodes)"
        )
    agent = agent if agent is not None else load_agent(cfg.agent)
    env_name = canonical_name(cfg.env)
    probe = make_env(cfg.env, **cfg.env_kwargs)
    try:
        fmt = _check_agent_fits(agent, probe, env_name, cfg.agent)
        env_info = {
            "obs_format": fmt.to_dict(),
            "obs_dtype": str(np.dtype(probe.observation_space.dtype)),
            "n_actions": int(agent.n_actions),
            "action_names": action_names(probe),
        }
    finally:
        probe.close()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(out):
        manifest = _start_manifest(cfg, out, env_name, agent_hash(agent), env_info)
        _collect_into(cfg, out, manifest, agent, env_name, progress)
        ds = Dataset(out)
        n_episodes = len(np.unique(ds.episodes))
        if n_episodes < MIN_EPISODES:
            # Unknown episode lengths: aim past the minimum so one rerun usually suffices.
            more = math.ceil(cfg.steps * (MIN_EPISODES + 1) / n_episodes)
            raise DatasetError(
                f"Collected {len(ds)} states in only {n_episodes} episode(s) with {cfg.n_envs} env(s), but the "
                f"train/val/test split needs at least {MIN_EPISODES}; {str(out)!r} is left incomplete (training "
                f"refuses it). Rerun with --resume --steps {more} (or more) to add episodes, or delete the folder "
                f"and collect with --n-envs {MIN_EPISODES} or more (each env starts an episode)"
            )
        ds.finalise()
    return ds


def _start_manifest(
    cfg: CollectConfig, out: Path, env_name: str, a_hash: str, env_info: dict[str, Any]
) -> dict[str, Any]:
    """A fresh manifest, or the folder's (checked against ``cfg``, damaged shards dropped) on resume."""
    if not (out / "manifest.json").exists():
        return {
            "format": FORMAT,
            "version": VERSION,
            "env": env_name,
            "agent": cfg.agent,
            "agent_hash": a_hash,
            "shards": [],
            "n_samples": 0,
            "next_episode": 0,
            "complete": False,
            "config": asdict(cfg),
            **env_info,
        }
    if not cfg.resume:
        raise DatasetError(f"{str(out)!r} already holds a dataset; pass --resume to continue it or pick another --out")
    manifest = _read_manifest(out)
    diffs = _resume_differences(manifest, cfg, env_name, a_hash)
    if diffs:
        raise DatasetError(
            f"Cannot resume {str(out)!r} with other settings than it was collected with: {'; '.join(diffs)}. "
            "Resume with the manifest's settings (only --steps may change, and --agent may name the same weights "
            "by another path), or collect into another --out"
        )
    problems = _shard_problems(out, manifest)
    if problems:
        first = min(pos for pos, _ in problems)
        dropped = manifest["shards"][first:]
        warnings.warn(
            f"{_damage_message(out, problems)}: re-collecting {sum(int(s['n']) for s in dropped)} states "
            f"of {len(dropped)} shard(s)",
            stacklevel=3,
        )
        for shard in dropped:
            for key in _ARRAYS:
                (out / f"{key}_{int(shard['index']):05d}.npy").unlink(missing_ok=True)
        manifest["shards"] = manifest["shards"][:first]
        manifest["n_samples"] = sum(int(s["n"]) for s in manifest["shards"])
    manifest.update(agent=cfg.agent, config=asdict(cfg), **env_info)
    if manifest["n_samples"] < cfg.steps or problems:
        # Written with the first new shard: a crash while extending leaves it marked incomplete.
        manifest["complete"] = False
        manifest.pop("counts", None)
    return manifest


def _collect_into(
    cfg: CollectConfig, out: Path, manifest: dict[str, Any], agent: Any, env_name: str, progress: bool
) -> None:
    """Step the envs until ``manifest["n_samples"]`` reaches ``cfg.steps``, writing shards.

    Raises:
        KeyboardInterrupt: on Ctrl-C or SIGTERM, after writing the states collected so far.
    """
    import gymnasium as gym

    from vmask_live.envs import make_env
    from vmask_live.objects import annotator_for

    fns = [lambda: make_env(cfg.env, **cfg.env_kwargs) for _ in range(cfg.n_envs)]
    envs = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    writer = _ShardWriter(out, manifest, cfg.n_envs, annotator_for(envs.envs[0]))
    try:
        with sigterm_as_interrupt():  # a `kill` writes the buffered states like Ctrl-C
            try:
                _step_envs(cfg, envs, agent, writer, env_name, progress)
            except KeyboardInterrupt:
                writer.flush()
                raise KeyboardInterrupt(
                    f"collect interrupted; {writer.stored} states saved in {out}, rerun with --resume"
                ) from None
    finally:
        envs.close()


def _step_envs(cfg: CollectConfig, envs: Any, agent: Any, writer: _ShardWriter, env_name: str, progress: bool) -> None:
    """The collect loop: one batched agent call per step of all envs, a shard every ``shard_size`` states."""
    from rich.progress import Progress

    # Seeded by the first shard to write, so a resumed collect does not replay the episodes it has.
    obs, info = envs.reset(seed=cfg.seed + 1000 * writer.index)
    rng = np.random.default_rng(cfg.seed + writer.index)
    off_label = taken = 0  # sampled actions that are not the label (the arg-max)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"collect {env_name}", total=cfg.steps, completed=writer.stored)
        while writer.stored + writer.pending < cfg.steps:
            actions, _, logits = agent.act(obs, deterministic=cfg.deterministic, rng=rng)
            take = min(cfg.n_envs, cfg.steps - writer.stored - writer.pending)
            off_label += int((actions[:take] != logits[:take].argmax(1)).sum())
            taken += take
            writer.add(obs, logits, info, take, writer.annotate(envs, take))
            obs, _, term, trunc, info = envs.step(actions)
            writer.end_episodes(term | trunc)
            bar.update(task, advance=take)
            if writer.pending >= cfg.shard_size:
                writer.flush()
        writer.flush()
    _warn_if_near_random(off_label, taken, agent.n_actions)


def _warn_if_near_random(off_label: int, taken: int, n_actions: int) -> None:
    """Sampling from the softmax of an agent's outputs plays its arg-max action in most steps for
    a policy; for Q-values (DQN) that softmax is close to uniform, and the states are a random
    walk's rather than the agent's. Warn when most sampled actions were not the arg-max."""
    if taken >= 100 and off_label > taken / 2:
        warnings.warn(
            f"The sampled actions differed from the agent's arg-max (the label) in {100 * off_label / taken:.0f}% "
            f"of {taken} steps (uniform play over {n_actions} actions: {100 * (1 - 1 / n_actions):.0f}%): the "
            "softmax of its outputs is nearly flat, as for Q-values (DQN), so these states are closer to a "
            "random walk than to the agent's play. Collect with --deterministic to play the agent's actions",
            stacklevel=5,  # the caller of collect()
        )


class _ShardWriter:
    """Buffers the states a collect visits and writes them as the dataset's next shards.

    :meth:`flush` writes each array of the shard atomically, then the manifest that lists it, so a
    shard is part of the dataset only once all its files are complete. The writer also keeps each
    env's episode id, which the manifest records for a resume.
    """

    def __init__(self, out: Path, manifest: dict[str, Any], n_envs: int, annotator: Any = None) -> None:
        self.out, self.manifest, self.n_envs = out, manifest, n_envs
        self.annotator = annotator
        """The game's object annotator (:func:`vmask_live.objects.annotator_for`), or ``None``."""
        if annotator is not None:
            manifest.setdefault("object_categories", [])
            manifest.setdefault("max_objects", MAX_OBJECTS)
        self.index = max((int(s["index"]) + 1 for s in manifest["shards"]), default=0)  # never an existing shard's
        """Number of the next shard."""
        self.buffer: dict[str, list[np.ndarray]] = {k: [] for k in _ARRAYS}
        self.pending = 0
        """States buffered and not yet written."""
        self.episodes = np.arange(n_envs, dtype=np.int64) + int(manifest["next_episode"])
        """Each env's current episode id."""
        self.next_episode = int(self.episodes.max()) + 1

    @property
    def stored(self) -> int:
        """States written so far (the manifest's ``n_samples``)."""
        return int(self.manifest["n_samples"])

    def add(
        self, obs: Any, logits: np.ndarray, info: dict[str, Any], take: int, objects: list[list[Any]] | None = None
    ) -> None:
        """Buffer the first ``take`` envs' states; the labels are the arg-max of the agent's ``logits``;
        ``objects``: each state's :class:`~vmask_live.objects.GameObject` list, where the game has them."""
        self.buffer["obs"].append(np.asarray(obs[:take]).copy())
        self.buffer["actions"].append(logits[:take].argmax(1).astype(np.int64))
        self.buffer["logits"].append(logits[:take].astype(np.float32))
        self.buffer["episodes"].append(self.episodes[:take].copy())
        if "relevant_mask" in info:
            self.buffer["relevant"].append(np.asarray(info["relevant_mask"][:take], bool))
        if objects is not None:
            self.buffer["objects"].append(self._object_rows(objects))
        self.pending += take

    def annotate(self, envs: Any, take: int) -> list[list[Any]] | None:
        """The objects of the first ``take`` envs' current states (``None``: the game has no annotator).

        Called before the step, so each env's RAM is the state of the observation being stored (with
        same-step autoreset that is the new episode's first state after an episode ends).
        """
        from vmask_live.objects import annotate, is_item

        if self.annotator is None:
            return None
        # static items (Ms. Pac-Man's ~150 pills) are not stored: they are the maze, not what moves
        return [[o for o in annotate(env, self.annotator) or [] if not is_item(o.category)] for env in envs.envs[:take]]

    def _object_rows(self, objects: list[list[Any]]) -> np.ndarray:
        """``(len(objects), max_objects, 6)`` rows ``[category index, id, x0, y0, x1, y1]``, NaN-padded."""
        categories: list[str] = self.manifest["object_categories"]
        m = int(self.manifest["max_objects"])
        rows = np.full((len(objects), m, 6), np.nan, dtype=np.float32)
        for i, objs in enumerate(objects):
            if len(objs) > m:
                raise DatasetError(
                    f"The object annotator gave {len(objs)} objects for one state, more than the {m} a dataset "
                    "stores per state; the annotator is probably reading the wrong RAM bytes (fix it), or raise "
                    "vmask_live.dataset.MAX_OBJECTS for a game with that many objects"
                )
            for j, obj in enumerate(objs):
                if obj.category not in categories:
                    categories.append(obj.category)
                rows[i, j] = (categories.index(obj.category), obj.id, *obj.box)
        return rows

    def end_episodes(self, ended: np.ndarray) -> None:
        """New episode ids for the envs whose episode ended (a bool per env)."""
        for i in np.flatnonzero(ended):
            self.episodes[i] = self.next_episode
            self.next_episode += 1

    def flush(self) -> None:
        """Write the buffered states as the next shard and record it in the manifest."""
        if not self.buffer["obs"]:
            return
        # A Ctrl-C inside add() can leave one array a step longer than the others: drop that step.
        steps = min(len(v) for v in self.buffer.values() if v)
        arrays = {k: np.concatenate(v[:steps]) for k, v in self.buffer.items() if v}
        for k, arr in arrays.items():
            _save_npy(self.out / f"{k}_{self.index:05d}.npy", arr)
        n = len(arrays["obs"])
        self.manifest["shards"].append({"index": self.index, "n": n, "arrays": sorted(arrays)})
        self.manifest["n_samples"] += n
        # Unfinished episodes continue under new ids after a resume: ids stay unique per episode part.
        self.manifest["next_episode"] = self.next_episode + self.n_envs
        atomic_write_text(self.out / "manifest.json", json.dumps(self.manifest, indent=1))
        self.index += 1
        self.pending = 0
        for v in self.buffer.values():
            v.clear()


class Dataset:
    """Read access to a collected dataset (memory-mapped shards), verified on open.

    Opening checks the manifest's keys and that every shard file it lists exists with the
    recorded length, shape and dtype; an incomplete dataset (interrupted or failed ``collect``)
    opens, but its splits and statistics raise :class:`DatasetError` saying how to finish it.

    Args:
        path: the dataset folder.

    Raises:
        DatasetError: no or a malformed manifest, no shards, or a missing or truncated shard file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.manifest = _read_manifest(self.path)
        if not self.manifest["shards"]:
            raise DatasetError(f"Dataset {str(self.path)!r} is empty; run `vmask-live collect` first")
        self.obs_format = ObsFormat.from_dict(self.manifest["obs_format"])
        problems = _shard_problems(self.path, self.manifest)
        if problems:
            raise DatasetError(_damage_message(self.path, problems))
        self._shards = []
        for s in self.manifest["shards"]:
            i = s["index"]
            keys = _shard_keys(self.path, s)
            self._shards.append({k: np.load(self.path / f"{k}_{i:05d}.npy", mmap_mode="r") for k in keys})
        self._offsets = np.cumsum([0] + [len(s["obs"]) for s in self._shards])
        self.actions = np.concatenate([s["actions"] for s in self._shards])
        self.episodes = np.concatenate([s["episodes"] for s in self._shards])
        self.has_relevant = all("relevant" in s for s in self._shards)
        self.has_objects = all("objects" in s for s in self._shards) and "object_categories" in self.manifest
        """Whether every state has its objects stored (``get(idx, ("objects",))``; see the module docstring)."""
        self._split_ids = _split_episodes(self.episodes)
        self._identity: str | None = None

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

    @property
    def object_categories(self) -> list[str]:
        """Names of the category indices in the ``objects`` rows (empty without objects)."""
        return list(self.manifest.get("object_categories", []))

    @property
    def identity(self) -> str:
        """A path-independent id of the stored states: the manifest's identity fields, the collection
        settings (not the paths) and a hash of every stored action and episode number, so that two
        collections differ even with the same agent and size. Caches and resumed runs key on it."""
        if self._identity is None:
            m = self.manifest
            keys = ("format", "version", "env", "agent_hash", "n_samples", "shards", "obs_format", "n_actions")
            config = {k: v for k, v in (m.get("config") or {}).items() if k not in ("out", "agent", "resume")}
            h = hashlib.sha256(json.dumps([{k: m.get(k) for k in keys}, config], sort_keys=True, default=str).encode())
            h.update(np.ascontiguousarray(self.actions).tobytes())
            h.update(np.ascontiguousarray(self.episodes).tobytes())
            self._identity = h.hexdigest()[:16]
        return self._identity

    @property
    def complete(self) -> bool:
        """Whether ``collect`` finished: all states stored, split made, statistics written."""
        return bool(self.manifest["complete"])

    def _require_complete(self) -> None:
        if self.complete:
            return
        planned = (self.manifest.get("config") or {}).get("steps", "?")
        n_episodes = len(np.unique(self.episodes))
        if isinstance(planned, int) and len(self) >= planned and n_episodes < MIN_EPISODES:
            why = (
                f"its {len(self)} states are only {n_episodes} episode(s), fewer than the {MIN_EPISODES} a split needs"
            )
            fix = "a larger --steps"
        else:
            why = f"it holds {len(self)} of {planned} states; its `collect` was interrupted or failed"
            fix = "the same settings"
        raise DatasetError(
            f"Dataset {str(self.path)!r} is incomplete ({why}); finish it with `vmask-live collect --out "
            f"{self.path} --resume` and {fix}, or delete the folder and collect again"
        )

    def _split_indices(self, name: str) -> np.ndarray:
        if name not in SPLITS:
            raise ConfigError(f"Expected split in {SPLITS}, got {name!r}")
        idx = np.flatnonzero(np.isin(self.episodes, self._split_ids[name]))
        if len(idx) == 0:
            raise DatasetError(
                f"Split {name!r} of {str(self.path)!r} is empty ({len(self)} states, "
                f"{len(np.unique(self.episodes))} episodes; a split needs at least {MIN_EPISODES}); "
                "collect more episodes (--resume with a larger --steps)"
            )
        return idx

    def split(self, name: str) -> np.ndarray:
        """Sample indices of ``train``, ``val`` or ``test`` (by episode, 80/10/10; see the module docstring).

        Raises:
            DatasetError: the dataset is incomplete.
        """
        self._require_complete()
        return self._split_indices(name)

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

    def sample_indices(self, split: str, n: int, seed: int = 0) -> np.ndarray:
        """The sorted indices :meth:`sample_split` draws (to read other fields of the same states)."""
        idx = self.split(split)
        return np.sort(np.random.default_rng(seed).choice(idx, min(n, len(idx)), replace=False))

    def sample_split(
        self, split: str, n: int, seed: int = 0, device: str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A seeded sample of ``n`` states of a split in model space.

        Returns:
            ``(x, actions, relevant)``: ``(n, C, H, W)`` float, ``(n,)`` long, and the bool relevant
            masks ``(n, H, W)`` when the env reports them (else ``None``).
        """
        idx = self.sample_indices(split, n, seed)
        fields = ("obs", "actions", "relevant") if self.has_relevant else ("obs", "actions")
        d = self.get(idx, fields)
        x = self.obs_format.to_model(d["obs"], device)
        a = torch.as_tensor(d["actions"], device=device)
        relevant = torch.as_tensor(d["relevant"], device=device) if self.has_relevant else None
        return x, a, relevant

    def finalise(self, max_samples: int = 4096) -> None:
        """Compute the background (per-pixel median) and mean of training observations; mark complete.

        :func:`collect` calls this once all states are stored.
        """
        for name in SPLITS:
            self._split_indices(name)  # every split non-empty, or a DatasetError saying so
        train = self._split_indices("train")
        pick = train[np.linspace(0, len(train) - 1, min(max_samples, len(train))).astype(int)]
        x = self.obs_format.to_model(self.get(pick, ("obs",))["obs"])
        background = x.median(dim=0).values.numpy().astype(np.float32)
        mean = x.mean(dim=(0, 2, 3)).numpy().astype(np.float32)
        _save_npy(self.path / "background.npy", background)
        _save_npy(self.path / "mean.npy", mean)
        self.manifest["complete"] = True
        self.manifest["counts"] = {s: int(len(self._split_indices(s))) for s in SPLITS}
        atomic_write_text(self.path / "manifest.json", json.dumps(self.manifest, indent=1))

    def check_agent_outputs(self, agent: Any, what: str = "agent", n: int = 32, rtol: float = 1e-2) -> None:
        """The agent must give, on the first ``n`` stored states, the logits stored when they were
        collected (the labels are their arg-max). The weight hash (``agent_hash``) cannot see a
        change outside the weights: another ``input_scale``, frame stack or preprocessing.

        ``rtol``: the largest logit difference allowed, relative to the largest stored logit;
        other CPUs or a GPU's TF32 differ by well under 1e-2 of it.

        Raises:
            DatasetError: the agent computes other outputs on the dataset's own states.
        """
        idx = np.arange(min(n, len(self)))
        batch = self.get(idx, ("obs", "logits"))
        with torch.inference_mode():
            actions, _, logits = agent.act(batch["obs"])
        stored = batch["logits"].astype(np.float32)
        diff = float(np.abs(logits - stored).max())
        scale = max(float(np.abs(stored).max()), 1e-6)
        if diff > rtol * scale:
            agree = 100 * float((actions == stored.argmax(1)).mean())
            raise DatasetError(
                f"The {what} has the weights that collected dataset {str(self.path)!r} but computes other outputs "
                f"on its states: the largest logit difference is {diff:.3g} (stored logits up to {scale:.3g}; "
                f"same action in {agree:.0f}% of {len(idx)} states). Something outside the weights changed: the "
                "input scale (input_scale=), the frame stack or the preprocessing. Load the agent as it was "
                "when collecting, or collect again with it"
            )

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """(background ``(C, H, W)``, mean ``(C,)``) in model space.

        Raises:
            DatasetError: the dataset is incomplete.
        """
        self._require_complete()
        if not (self.path / "background.npy").exists():
            self.finalise()
        return np.load(self.path / "background.npy"), np.load(self.path / "mean.npy")
