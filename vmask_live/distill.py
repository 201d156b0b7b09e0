"""Distil the rollout planner into a NatureCNN agent with DAgger rounds (``train-agent --algo distill``).

Round 0: the planner plays and labels every state it visits. Round k > 0: the student (the CNN of
the previous round) plays, the planner's own action replaces the student's with probability
``beta * beta_decay**(k-1)``, and the planner labels every visited state, so the student learns
what to do in the states *it* reaches (Ross et al. 2011; Guo et al. 2014). After each round the
student trains on all labels so far.

Labels are canonical (:func:`vmask_live.planner.canonical_label`): among equally good actions the
one named after the player's motion (from the game's RAM objects, where the game has a table;
``prefer_motion``), then the first of ``prefer_actions`` that is tied, else the lowest-index
non-NOOP action. That keeps equivalent actions from splitting the labels.

Everything a run makes lives in ``out``: ``data/r{round}_c{chunk}.npz`` label chunks (written as
they arrive, atomically), ``student.safetensors`` and ``state.json`` after each round,
``train_log.jsonl``, and at the end ``agent.safetensors`` with its full-game evaluation. A stopped
run resumes from its chunks and last student with ``resume``; at most the chunks in flight are lost.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmask_live.atomic import atomic_path, atomic_write_text
from vmask_live.errors import ConfigError, DatasetError
from vmask_live.planner import PlannerSettings
from vmask_live.settings import SettingChecks

__all__ = ["DistillConfig", "run_distill", "DISTILL_RESUMABLE_FIELDS"]

DISTILL_RESUMABLE_FIELDS = (
    "rounds",
    "states_per_round",
    "chunk",
    "passes",
    "eval_episodes",
    "workers",
    "init",
    "resume",
    "overwrite",
    "out",
)
"""DistillConfig fields that may differ from the run's ``config.json`` on ``resume`` (how long and
how much to train; how labels are made may not change)."""


@dataclass
class DistillConfig:
    """Planner distillation with DAgger (Atari games; the planner needs the emulator's state)."""

    env: str = "MsPacman"
    """Atari env name (see ``vmask-live envs``)."""
    out: str = "runs/agent"
    """Run folder: label chunks, the student after each round, the log, the final agent."""
    rounds: int = 20
    """DAgger rounds (round 0 is the planner alone); raise it with ``resume`` to train longer."""
    states_per_round: int = 6000
    """Planner-labelled states per round, over all workers."""
    chunk: int = 500
    """States per work unit (a kill loses at most the units in flight)."""
    workers: int = 2
    """Processes that play and label (each holds its own emulator and continues its episode)."""
    beta: float = 0.5
    """Round 1's probability of executing the planner's action instead of the student's."""
    beta_decay: float = 0.6
    """beta of round k is ``beta * beta_decay**(k-1)``."""
    passes: float = 8.0
    """Student updates per round, as passes over one round's worth of labels (batches drawn from
    all labels so far)."""
    batch_size: int = 128
    """Samples per Adam step."""
    lr: float = 5e-4
    """Adam learning rate."""
    seed: int = 0
    """Seed of the episodes, the planner and the weights; evaluation uses seed + 100."""
    eval_episodes: int = 10
    """Full-game evaluation episodes at the end (greedy and sampled)."""
    resume: bool = False
    """Continue the run in ``out`` (its chunks and last student); only the fields of
    :data:`DISTILL_RESUMABLE_FIELDS` may change. The chunks of the round in progress are kept."""
    overwrite: bool = False
    """Start a new run in ``out`` even though it holds another run (its files are deleted first)."""
    init: str = ""
    """Agent checkpoint whose weights start the student (a NatureCNN agent for this env, e.g. the
    student of an earlier run); empty: random weights. Ignored on ``resume``."""
    planner: PlannerSettings = field(default_factory=PlannerSettings)

    def validate(self) -> None:
        """Check every setting, type then value.

        Raises:
            ConfigError: listing every bad setting at once, each as "expected ..., got ...".
        """
        c = SettingChecks("train-agent (distill)")
        if not isinstance(self.env, str) or not self.env:
            c.add("env", "an Atari env name (see `vmask-live envs`)", self.env)
        c.integer("rounds", self.rounds, 1)
        c.integer("states_per_round", self.states_per_round, 1)
        c.integer("chunk", self.chunk, 1)
        c.integer("workers", self.workers, 1)
        c.number("beta", self.beta, low=0, high=1)
        c.number("beta_decay", self.beta_decay, low=0, high=1)
        c.number("passes", self.passes, low=0, low_open=True)
        c.integer("batch_size", self.batch_size, 1)
        c.number("lr", self.lr, low=0, low_open=True)
        c.integer("seed", self.seed, 0)
        c.integer("eval_episodes", self.eval_episodes, 0)
        c.flag("resume", self.resume)
        c.flag("overwrite", self.overwrite)
        self.planner.check(c)
        c.raise_if_any()

    def beta_of(self, round_: int) -> float:
        return 1.0 if round_ == 0 else float(self.beta * self.beta_decay ** (round_ - 1))


# ---- worker side: one emulator per process, its episode continues across work units -----------

_WORKER: dict[str, Any] = {}


def _worker_init(env_name: str, settings: dict, seed: int, index_queue: Any) -> None:
    import torch

    from vmask_live.envs import action_names, make_env
    from vmask_live.objects import annotator_for
    from vmask_live.planner import RolloutPlanner

    torch.set_num_threads(1)
    index = int(index_queue.get())
    env = make_env(env_name)
    planner_settings = PlannerSettings(**settings)
    _WORKER.update(
        env=env,
        index=index,
        planner=RolloutPlanner(env, planner_settings, seed=seed * 1000 + index),
        names=action_names(env),
        prefer=planner_settings.preferred_indices(action_names(env)),
        annotator=annotator_for(env),
        rng=np.random.default_rng(seed * 1000 + index + 500),
        episode_seed=seed * 100_000 + index * 10_000,
        obs=None,
    )


def _player_box(annotator: Any, env: Any) -> tuple[float, float, float, float] | None:
    if annotator is None:
        return None
    ram = np.asarray(env.unwrapped.ale.getRAM(), dtype=np.uint8)
    boxes = [o.box for o in annotator(ram) if o.category == "player"]
    return boxes[0] if boxes else None


def _label_chunk(task: dict) -> dict:
    """Play ``task["n"]`` steps (student with planner mixing), label each state; return the arrays."""
    import torch

    from vmask_live.agents import NatureCNN
    from vmask_live.planner import canonical_label, motion_actions

    w = _WORKER
    env, planner, rng = w["env"], w["planner"], w["rng"]
    tol = planner.settings.tie_tolerance
    student = None
    if task["weights"] is not None:
        student = NatureCNN(**task["arch_kwargs"])
        student.load_state_dict({k: torch.from_numpy(v) for k, v in task["weights"].items()})
        student.eval()
    obs_l, label_l, value_l, exec_l, prob_l = [], [], [], [], []
    episodes: list[dict] = []
    for _ in range(task["n"]):
        if w["obs"] is None:
            w["obs"], _ = env.reset(seed=w["episode_seed"])
            w["episode_seed"] += 1
            w.update(score=0.0, steps=0, student_steps=0, prev_box=None)
        obs = np.asarray(w["obs"])
        box = _player_box(w["annotator"], env) if planner.settings.prefer_motion else None
        values = planner.values()
        preferred = motion_actions(w["prev_box"], box, w["names"]) + w["prefer"]
        label = canonical_label(values, preferred, tol)
        prob = np.full(len(values), np.nan, np.float32)
        action = label
        if student is not None:
            with torch.inference_mode():
                x = torch.from_numpy(obs[None]).float() / 255.0
                prob = torch.softmax(student(x), 1)[0].numpy()
            if rng.random() >= task["beta"]:
                action = int(prob.argmax())
                w["student_steps"] += 1
        obs_l.append(obs)
        label_l.append(label)
        value_l.append(values.astype(np.float32))
        exec_l.append(action)
        prob_l.append(prob)
        w["obs"], reward, term, trunc, _ = env.step(action)
        w["prev_box"] = box
        w["score"] += float(reward)
        w["steps"] += 1
        if term or trunc:
            episodes.append(
                {"score": w["score"], "steps": w["steps"], "student_share": w["student_steps"] / max(w["steps"], 1)}
            )
            w["obs"] = None
    return {
        "obs": np.stack(obs_l).astype(np.uint8),
        "label": np.asarray(label_l, np.int64),
        "values": np.stack(value_l),
        "executed": np.asarray(exec_l, np.int64),
        "student_prob": np.stack(prob_l).astype(np.float32),
        "episodes": json.dumps(episodes),
        "worker": w["index"],
    }


# ---- lead side ---------------------------------------------------------------------------------


def _chunk_path(out: Path, round_: int, chunk: int) -> Path:
    return out / "data" / f"r{round_:03d}_c{chunk:03d}.npz"


def _round_chunks(out: Path, round_: int) -> list[Path]:
    return sorted((out / "data").glob(f"r{round_:03d}_c*.npz"))


def _save_chunk(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **{k: v for k, v in result.items() if k != "worker"})


def _load_chunk(path: Path, n_actions: int) -> dict:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in ("obs", "label", "values", "executed", "student_prob", "episodes")}
    except (OSError, ValueError, KeyError) as err:
        raise DatasetError(
            f"Label chunk {str(path)!r} is unreadable ({err}); delete it and resume to label those states again"
        ) from err
    n = len(data["label"])
    if data["obs"].shape[0] != n or data["values"].shape != (n, n_actions) or data["obs"].dtype != np.uint8:
        raise DatasetError(
            f"Label chunk {str(path)!r} holds obs {data['obs'].shape} {data['obs'].dtype} and values "
            f"{data['values'].shape} for {n} labels; expected uint8 obs and (n, {n_actions}) values. Delete it and resume."
        )
    return data


def _load_student(student: Any, path: Path, arch_kwargs: dict[str, Any], names: list[str], fix: str) -> None:
    """Load a NatureCNN agent checkpoint's weights into ``student``, after checking it fits; ``fix``
    ends the error (what to do differs for ``--init`` and for a resumed run's own student)."""
    from vmask_live.checkpoint import read_checkpoint

    tensors, meta = read_checkpoint(path, "agent")
    got = (meta.get("arch"), meta.get("arch_kwargs", {}).get("in_channels"), meta.get("n_actions"))
    want = ("nature_cnn", arch_kwargs["in_channels"], arch_kwargs["n_actions"])
    if got != want or list(meta.get("action_names") or []) != list(names):
        raise ConfigError(
            f"Expected a NatureCNN agent with {want[1]} input channels and the actions {names} to start the "
            f"student, got {str(path)!r}: arch {got[0]!r}, {got[1]} channels, actions {meta.get('action_names')}. "
            + fix
        )
    student.load_state_dict({k.removeprefix("module."): v for k, v in tensors.items()})


def _check_folder(cfg: DistillConfig, out: Path) -> bool:
    """Refuse to clobber another run or to resume with other settings; True when resuming."""
    from vmask_live.train import config_differences, refuse_changed_resume

    cfg_path = out / "config.json"
    if cfg.resume and cfg_path.exists():
        saved = json.loads(cfg_path.read_text())
        diffs = config_differences(saved, asdict(cfg), asdict(DistillConfig()), DISTILL_RESUMABLE_FIELDS)
        refuse_changed_resume(out, diffs, DISTILL_RESUMABLE_FIELDS)
        return True
    from vmask_live.train_agent import refuse_other_run

    refuse_other_run(out, [out / "data", out / "student.safetensors", out / "agent.safetensors"], cfg.overwrite)
    return False


def _train_student(student, data: list[dict], n_updates: int, cfg: DistillConfig, gen) -> float:
    import torch

    obs = np.concatenate([d["obs"] for d in data])
    labels = torch.from_numpy(np.concatenate([d["label"] for d in data]))
    opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)
    student.train()
    total = 0.0
    for _ in range(n_updates):
        idx = torch.randint(0, len(obs), (cfg.batch_size,), generator=gen)
        x = torch.from_numpy(obs[idx.numpy()]).float() / 255.0
        loss = torch.nn.functional.cross_entropy(student(x), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(loss.detach())
    student.eval()
    return total / max(n_updates, 1)


def _stop_workers(pool: Any, futures: Any) -> None:
    """Cancel the queued chunks, so that leaving the pool waits only for the chunks in flight (at
    most two per worker; their labels are not saved). The futures are cancelled here, not only by
    ``shutdown``: the pool's manager thread skips that step once the executor is garbage. Workers
    are not killed: one ended while it writes its result can leave the exit hanging."""
    for future in futures:
        future.cancel()
    pool.shutdown(wait=False, cancel_futures=True)


def run_distill(cfg: DistillConfig, progress: bool = True) -> tuple[Path, dict]:
    """Run (or resume) the distillation; returns ``(agent checkpoint, evaluation)``."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    import torch
    from rich.progress import Progress

    from vmask_live.agents import NatureCNN, TorchAgent, save_agent
    from vmask_live.envs import action_names, make_env
    from vmask_live.interrupt import sigterm_as_interrupt
    from vmask_live.observations import ObsFormat
    from vmask_live.train import ensure_writable_folder
    from vmask_live.train_agent import evaluate_agent

    cfg.validate()
    out = Path(cfg.out)
    probe = make_env(cfg.env)
    if not hasattr(probe.unwrapped, "ale"):
        raise ConfigError(f"--algo distill needs an Atari env (the planner clones the emulator); got {cfg.env!r}")
    fmt = ObsFormat.from_space(probe.observation_space)
    names = action_names(probe)
    probe.close()
    cfg.planner.preferred_indices(names)  # unknown names are refused before any work
    n_actions = len(names)
    resuming = _check_folder(cfg, out)
    ensure_writable_folder(out)
    torch.manual_seed(cfg.seed)
    c, h, w = fmt.chw
    arch_kwargs: dict[str, Any] = {"in_channels": c, "n_actions": n_actions, "input_size": [h, w]}
    student = NatureCNN(**arch_kwargs)
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if resuming and state_path.exists() else {"rounds_done": 0}
    if state["rounds_done"] > 0:
        _load_student(
            student,
            out / "student.safetensors",
            arch_kwargs,
            names,
            f"The run folder {str(out)!r} holds another run's student: pass another --out, or --overwrite to start over",
        )
    elif cfg.init:  # checked before anything in the run folder is deleted or written
        _load_student(
            student,
            Path(cfg.init),
            arch_kwargs,
            names,
            "Pass a student of a distill run on the same env, or leave --init out",
        )
    if not resuming:
        for stale in [*out.glob("data/*.npz"), out / "student.safetensors", out / "agent.safetensors"]:
            stale.unlink(missing_ok=True)
        for stale in (state_path, out / "train_log.jsonl"):
            stale.unlink(missing_ok=True)
    atomic_write_text(out / "config.json", json.dumps(asdict(cfg), indent=2))
    gen = torch.Generator().manual_seed(cfg.seed + state["rounds_done"])
    data: list[dict] = []
    for round_ in range(state["rounds_done"]):  # the round in progress is read when it ends
        data += [_load_chunk(path, n_actions) for path in _round_chunks(out, round_)]
    log_path = out / "train_log.jsonl"
    n_chunks = -(-cfg.states_per_round // cfg.chunk)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for i in range(cfg.workers):
        queue.put(i)
    start = time.time()
    with (
        sigterm_as_interrupt(),
        ProcessPoolExecutor(
            cfg.workers,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(cfg.env, asdict(cfg.planner), cfg.seed + state["rounds_done"], queue),
        ) as pool,
        Progress(disable=not progress, transient=False) as bar,
    ):
        task_bar = bar.add_task("distill", total=cfg.rounds * n_chunks, completed=state["rounds_done"] * n_chunks)
        pending: dict[Any, int] = {}
        try:
            for round_ in range(state["rounds_done"], cfg.rounds):
                beta = cfg.beta_of(round_)
                weights = (
                    None if round_ == 0 else {k: v.detach().numpy().copy() for k, v in student.state_dict().items()}
                )
                todo = [j for j in range(n_chunks) if not _chunk_path(out, round_, j).exists()]
                bar.update(task_bar, completed=round_ * n_chunks + n_chunks - len(todo))
                per = cfg.states_per_round // n_chunks
                pending = {
                    pool.submit(
                        _label_chunk, {"n": per, "weights": weights, "arch_kwargs": arch_kwargs, "beta": beta}
                    ): j
                    for j in todo
                }
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        j = pending.pop(fut)
                        result = fut.result()
                        _save_chunk(_chunk_path(out, round_, j), result)
                        bar.advance(task_bar)
                # every chunk of the round, also those made before a resume with another chunk size
                new = [_load_chunk(path, n_actions) for path in _round_chunks(out, round_)]
                # DAgger's diagnostic: how often the student (before this round's training) picks the
                # planner's label on the states it reached, and how sure it is.
                labels = np.concatenate([d["label"] for d in new])
                probs = np.concatenate([d["student_prob"] for d in new])
                has_student = ~np.isnan(probs[:, 0])
                episodes = [e for d in new for e in json.loads(str(d["episodes"]))]
                data += new
                n_updates = max(1, int(cfg.passes * cfg.states_per_round / cfg.batch_size))
                loss = _train_student(student, data, n_updates, cfg, gen)
                row: dict[str, Any] = {
                    "round": round_,
                    "beta": round(beta, 4),
                    "labels": int(sum(len(d["label"]) for d in data)),
                    "loss": round(loss, 4),
                    "label_hist": np.bincount(labels, minlength=n_actions).tolist(),
                    "wall_s": round(time.time() - start, 1),
                }
                if has_student.any():
                    chosen = probs[has_student].argmax(1)
                    row["student_agreement"] = round(float((chosen == labels[has_student]).mean()), 4)
                    row["student_p_chosen"] = round(float(probs[has_student].max(1).mean()), 4)
                if episodes:
                    row["episodes"] = episodes
                agent = TorchAgent(student, fmt, n_actions, 1.0, names)
                save_agent(out / "student.safetensors", agent, "nature_cnn", arch_kwargs, {"round": round_})
                atomic_write_text(out / "state.json", json.dumps({"rounds_done": round_ + 1}))
                with log_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                bar.console.print(json.dumps({k: v for k, v in row.items() if k != "label_hist"}))
        except BaseException:
            _stop_workers(pool, pending)  # else leaving the pool runs every queued chunk of the round first
            raise
    agent = TorchAgent(student, fmt, n_actions, 1.0, names).freeze()
    info = {"trained_by": "vmask-live train-agent --algo distill", "config": asdict(cfg), "env": cfg.env}
    agent_path = save_agent(out / "agent.safetensors", agent, "nature_cnn", arch_kwargs, info)
    scores = {
        mode: evaluate_agent(
            agent_path, cfg.env, cfg.eval_episodes, seed=cfg.seed + 100, deterministic=(mode == "deterministic")
        )
        for mode in (("deterministic", "stochastic") if cfg.eval_episodes > 0 else ())
    }
    save_agent(agent_path, agent, "nature_cnn", arch_kwargs, {**info, "eval": scores})
    return agent_path, scores
