"""``vmask-live evaluate``: every saliency method on the same test states, in one run.

The test states come from a dataset's test split (``data``) or straight from an env (``env``):
the agent plays it and the states it visits are stored under ``out/states`` (a dataset made by
:func:`vmask_live.dataset.collect`, on seeds away from the ones ``collect`` uses by default, so
they are not an explainer's training states).

Writes to ``out/``: ``report.md`` (the table, with the paper's Table 1 row for MsPacman),
``results.json`` / ``results.csv``, ``curves.png`` (insertion and deletion), ``grid.png`` (the same
frames overlaid by every method, like the paper's Figure 2), ``counterfactual.png`` and
``radar.png``. Where the states have game objects (a dataset collected with an object
annotator, :mod:`vmask_live.objects`), every method is also scored on them
(:mod:`vmask_live.object_metrics`: mass on the actors and each category against the shuffled
control, pointing game), beside a uniform map (the area shares) and a static layout prior, with
how often the agent's action flips when each category is removed; ``report.md`` gets an "Objects"
table. Each method's result is saved under ``out/methods/`` as soon as it is done, keyed by
everything that produced it (states, agent, explainer weights and reference, settings, package
version), so an interrupted evaluation resumes with the methods that are missing and a changed
run never reports stale numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vmask_live.atomic import atomic_write_bytes, atomic_write_text
from vmask_live.checkpoint import tensors_sha256
from vmask_live.errors import DatasetError, ObservationError, PairingError
from vmask_live.methods import METHODS, CountingAgent, MethodSpec, build_method, check_requirements
from vmask_live.metrics import EMPTY_MAP_MAX, METRICS_VERSION, evaluate_maps, normalise, rescale
from vmask_live.object_metrics import (
    ACTORS,
    ObjectSettings,
    category_flips,
    object_scores,
    region_areas,
    region_masks,
    shuffle_partners,
    static_prior_maps,
    uniform_maps,
)
from vmask_live.report import csv_text, markdown_table, metric_columns
from vmask_live.settings import SettingChecks

__all__ = ["EvaluateConfig", "evaluate", "PAPER_MSPACMAN"]

log = logging.getLogger(__name__)

#: Paper Table 1, MsPacman (Acc / Del / Ins / LLE / Sp).
PAPER_MSPACMAN = {
    "visionmask": (98.7, 17.0, 62.8, 0.2, 89.5),
    "explainer": (97.6, 19.6, 59.2, 0.22, 81.2),
    "rise": (92.6, 26.2, 45.7, 0.01, 0.59),
    "lime": (84.5, 32.7, 37.7, 9.1, 96.6),
    "greydanus": (46.1, 39.1, 14.2, 0.17, 57.4),
    "sarfa": (42.4, 18.8, 15.6, 0.13, 66.5),
}


#: Name of the row that scores the env's relevant-pixel mask itself (envs that provide one).
GROUND_TRUTH = "ground truth (ceiling)"

#: How to get the checkpoint a trained method runs (the ``MethodSpec.checkpoint`` options).
CHECKPOINT_HINTS = {
    "explainer": "a checkpoint from `vmask-live train`",
    "stalder": "a checkpoint trained with `vmask-live train --loss-kind stalder`",
}

#: Env mode plays on ``seed + PLAY_SEED_OFFSET``: away from the seeds ``collect`` uses by default,
#: so the states are not those a bundled or freshly trained explainer was trained on.
PLAY_SEED_OFFSET = 10_000

#: Rows of the Objects table that score fixed maps instead of a method's.
UNIFORM = "uniform map (area share)"
STATIC_PRIOR = "static prior (other episodes' actor positions)"

#: Parallel envs when playing: states from 10 games at once, and episodes 0-9 all start together,
#: so every 80/10/10 split bucket (``episode % 10``) of ``out/states`` holds states however long
#: the episodes are.
PLAY_ENVS = 10


@dataclass
class EvaluateConfig:
    """Compare saliency methods on the same test states (a dataset's test split, or an env's play)."""

    data: str = ""
    """Dataset folder from ``vmask-live collect``: its test split is used. Exclusive with ``env``."""
    env: str = ""
    """Evaluate straight from this env instead of ``data``: the agent plays it
    (``play_steps`` states on seed ``seed + 10000``, stored in ``out/states``) and ``n`` of the
    states it visits are the test states."""
    agent: str = ""
    """The agent (``default:NAME``, path). With ``data``: the agent that collected it. With
    ``env``: defaults to the bundled ``default:ENV``."""
    explainer: str = ""
    """VisionMask checkpoint (also gives the reference value used by every method). Defaults to the
    bundled ``default:ENV`` only when the agent is the bundled ``default:ENV``."""
    stalder: str | None = None
    """Checkpoint trained with ``--loss-kind stalder`` for the Explainer row (optional)."""
    methods: str = "visionmask"
    """Comma-separated names from :data:`vmask_live.methods.METHODS`, or ``all`` (every method
    whose checkpoint is given: explainer only with ``stalder``)."""
    n: int = 500
    """Test states (a seeded sample of the test split, or of the played states)."""
    lle_n: int = 50
    """States used for LLE (it explains N neighbours per state: costly for perturbation methods);
    0 skips LLE."""
    lle_eps: float = 0.05
    """LLE neighbourhood: neighbours are ``clip(s + U(-eps, eps))`` in model space."""
    lle_neighbours: int = 10
    """Neighbours per state for LLE."""
    insertion_steps: int = 50
    """Steps of the insertion and deletion curves."""
    rise_masks: int = 2000
    """RISE masks per state (agent passes per frame)."""
    lime_samples: int = 300
    """LIME samples per state (agent passes per frame)."""
    ig_steps: int = 32
    """Integrated Gradients steps per state (agent forward + backward passes per frame)."""
    object_dilate: int = 2
    """Where the states have game objects: their boxes are dilated by this many observation pixels
    for the Objects table (sprites are small and move between the stacked frames)."""
    play_steps: int | None = None
    """With ``env``: states to play before sampling ``n`` of them (default ``max(10·n, 2000)``)."""
    allow_mismatch: bool = False
    """Evaluate an explainer trained for another agent anyway (its maps explain another network)."""
    out: str = "runs/eval"
    """Report folder: ``report.md``, ``results.json``/``.csv``, figures, cached method results."""
    seed: int = 0
    """Seed of the test-state sample (and, with ``env``, of the play: ``seed + 10000``)."""


def _checkpoint_given(cfg: EvaluateConfig, spec: MethodSpec) -> bool:
    """Whether the trained explainer ``spec`` runs is available (``explainer`` always resolves)."""
    return spec.checkpoint in (None, "explainer") or bool(getattr(cfg, str(spec.checkpoint)))


def _method_names(cfg: EvaluateConfig) -> tuple[list[str], list[str]]:
    """The selected method names and the unknown ones."""
    if cfg.methods.strip() == "all":
        return [name for name, spec in METHODS.items() if _checkpoint_given(cfg, spec)], []
    names = list(dict.fromkeys(m.strip() for m in cfg.methods.split(",") if m.strip()))
    return [m for m in names if m in METHODS], [m for m in names if m not in METHODS]


def _default_agent(cfg: EvaluateConfig, agent_given: bool) -> str:
    if cfg.agent or agent_given or not cfg.env:
        return cfg.agent
    return f"default:{cfg.env}"


def _default_explainer(cfg: EvaluateConfig, agent_spec: str) -> str:
    """The bundled explainer only goes with the bundled agent it was trained for."""
    if cfg.explainer:
        return cfg.explainer
    return agent_spec if agent_spec.startswith("default:") else ""


def _validate(cfg: EvaluateConfig, agent_given: bool) -> list[str]:
    """Check every setting, type then value; returns the selected methods.

    Raises:
        ConfigError: listing every bad setting at once, each as "expected ..., got ...".
    """
    c = SettingChecks("evaluate")
    if cfg.data and cfg.env:
        c.add(
            "data, env",
            "exactly one source of test states",
            got=f"both data={cfg.data!r} and env={cfg.env!r}",
            hint="pass a dataset folder (--data) or an env to play (--env), not both",
        )
    elif not cfg.data and not cfg.env:
        c.add(
            "data, env",
            "a source of test states",
            got="neither",
            hint="pass a dataset folder from `vmask-live collect` (--data DIR) or an env for the agent to play "
            "(--env NAME, e.g. --env Beacon)",
        )
    if cfg.env:
        from vmask_live.envs import canonical_name, known_envs

        try:
            canonical_name(cfg.env)
        except ValueError:
            c.add("env", f"one of {', '.join(known_envs())} (any case)", cfg.env, "see `vmask-live envs`")
    c.integer("n", cfg.n, 1, what="test states")
    c.integer("lle_n", cfg.lle_n, 0, what="LLE states; 0 skips LLE")
    c.integer("lle_neighbours", cfg.lle_neighbours, 1, what="LLE neighbours")
    c.integer("insertion_steps", cfg.insertion_steps, 1, what="insertion/deletion steps")
    c.integer("rise_masks", cfg.rise_masks, 1, what="RISE masks")
    c.integer("lime_samples", cfg.lime_samples, 1, what="LIME samples")
    c.integer("ig_steps", cfg.ig_steps, 1, what="Integrated Gradients steps")
    c.number("lle_eps", cfg.lle_eps, low=0, low_open=True)
    c.integer("object_dilate", cfg.object_dilate, 0, what="box dilation in pixels")
    c.integer("play_steps", cfg.play_steps, 1, optional=True)
    names, unknown = _method_names(cfg)
    if unknown:
        c.add(
            "methods",
            f"comma-separated names from {', '.join(METHODS)}, or 'all'",
            cfg.methods,
            f"unknown: {', '.join(unknown)}",
        )
    elif not names:
        c.add("methods", f"at least one of {', '.join(METHODS)}, or 'all'", cfg.methods)
    for name in names:
        spec = METHODS[name]
        if not _checkpoint_given(cfg, spec):
            option = str(spec.checkpoint)
            c.add(
                option,
                f"{CHECKPOINT_HINTS[option]} (method {name!r} needs it)",
                getattr(cfg, option),
                f"pass --{option.replace('_', '-')}",
            )
    agent_spec = _default_agent(cfg, agent_given)
    if not agent_spec and not agent_given:
        c.add("agent", f"the agent that collected {cfg.data or 'the dataset'!r}", cfg.agent, "pass --agent")
    if (agent_spec or agent_given) and not _default_explainer(cfg, agent_spec):
        c.add(
            "explainer",
            f"an explainer trained for agent {agent_spec or 'given'!r}",
            cfg.explainer,
            "pass --explainer: the bundled explainer is the default only with the bundled agent it was trained for "
            "(--agent default:ENV)",
        )
    c.raise_if_any()
    return names


def _check_fit(exp: Any, spec: str, agent: Any, agent_spec: str, what: str) -> None:
    """An explainer must read the agent's observations and have one map per agent action."""
    c, h, w = agent.obs_format.chw
    if tuple(exp.obs_format.chw) != (c, h, w):
        raise ObservationError(
            f"{what} {spec!r} was trained on observations of shape {tuple(exp.obs_format.shape)} "
            f"({'x'.join(map(str, exp.obs_format.chw))} in model space), but agent {agent_spec!r} and its states "
            f"have shape {tuple(agent.obs_format.shape)} ({c}x{h}x{w}): expected {c}x{h}x{w}, got "
            f"{'x'.join(map(str, exp.obs_format.chw))}. It belongs to another env or preprocessing; pass the "
            "explainer trained for this agent (`vmask-live train --data DATA --agent AGENT`)"
        )
    if exp.n_actions != agent.n_actions:
        raise PairingError(
            f"{what} {spec!r} has {exp.n_actions} maps (one per action: {', '.join(exp.action_names)}), but agent "
            f"{agent_spec!r} has {agent.n_actions} actions: expected K = {agent.n_actions}, got K = {exp.n_actions}. "
            "It was trained for another agent; pass the explainer trained for this agent "
            "(`vmask-live train --data DATA --agent AGENT`)"
        )


def _check_dataset(ds: Any, agent: Any, agent_spec: str) -> None:
    """The test states must be this agent's: its actions are the labels every metric scores."""
    from vmask_live.pairing import agent_hash

    given = agent_hash(agent)
    made_by = ds.manifest.get("agent_hash")
    fix = (
        f"Evaluate on this agent's own play (`vmask-live evaluate --env {ds.env} --agent {agent_spec} ...`) "
        f"or collect a dataset with it (`vmask-live collect --env {ds.env} --agent {agent_spec} --out DIR`)"
    )
    if made_by != given:
        source = ds.manifest.get("agent")
        raise DatasetError(
            f"Dataset {str(ds.path)!r} was collected with agent {made_by}"
            + (f" ({source})" if source else "")
            + f", but the given agent {agent_spec!r} hashes to {given}: its actions (the labels every metric "
            f"scores) are another network's. {fix}"
        )
    if tuple(ds.obs_format.chw) != tuple(agent.obs_format.chw) or ds.n_actions != agent.n_actions:
        raise DatasetError(
            f"Dataset {str(ds.path)!r} holds observations {tuple(ds.obs_format.shape)} with {ds.n_actions} actions, "
            f"but agent {agent_spec!r} expects {tuple(agent.obs_format.shape)} with {agent.n_actions}. {fix}"
        )
    ds.check_agent_outputs(agent, f"agent {agent_spec!r}")


def _has_annotator(env_name: str) -> bool:
    """Whether ``collect`` stores objects for ``env_name`` (its game has a registered annotator)."""
    from vmask_live.envs import make_env
    from vmask_live.objects import annotator_for

    probe = make_env(env_name)
    try:
        return annotator_for(probe) is not None
    finally:
        probe.close()


def _play_states(cfg: EvaluateConfig, agent: Any, agent_spec: str, out: Path) -> Any:
    """Let the agent play ``cfg.env`` into ``out/states`` (reused when made by the same play)."""
    from vmask_live.dataset import FORMAT, LOCK_NAME, CollectConfig, Dataset, collect
    from vmask_live.envs import canonical_name
    from vmask_live.pairing import agent_hash

    steps = cfg.play_steps or max(10 * cfg.n, 2000)
    folder = out / "states"
    play = CollectConfig(
        env=canonical_name(cfg.env),
        agent=agent_spec,
        out=str(folder),
        steps=steps,
        n_envs=PLAY_ENVS,
        seed=cfg.seed + PLAY_SEED_OFFSET,
    )
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError):
            manifest = {}
        if manifest.get("format") != FORMAT:
            raise DatasetError(
                f"{str(folder)!r} exists and is not a dataset evaluate played; pick another --out or remove it"
            )
        made = manifest.get("config") or {}
        same = (
            manifest.get("complete")
            and manifest.get("env") == play.env
            and manifest.get("agent_hash") == agent_hash(agent)
            and manifest.get("n_samples") == steps
            and all(made.get(k) == getattr(play, k) for k in ("steps", "n_envs", "seed", "deterministic"))
            and not made.get("env_kwargs")
            # states played before the game had an object annotator lack objects: play again
            and ("object_categories" in manifest) == _has_annotator(play.env)
        )
        if same:
            try:
                return Dataset(folder)
            except DatasetError as err:  # damaged shards: play again rather than fail
                log.warning("%s; playing again", err)
        else:
            log.warning("%s holds states of another play (agent, env, seed or steps); playing again", folder)
        shutil.rmtree(folder)
    elif folder.exists():
        # An interrupted play leaves shards, temporary files and collect's lock without a manifest.
        if any(not (p.name.endswith((".npy", ".tmp")) or p.name == LOCK_NAME) for p in folder.iterdir()):
            raise DatasetError(f"{str(folder)!r} exists and is not a dataset evaluate played; pick another --out")
        shutil.rmtree(folder)
    log.info("playing %d states of %s with agent %s into %s", steps, play.env, agent_spec, folder)
    return collect(play, agent=agent, progress=False)


def _read_states(ds: Any, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """States ``idx`` of ``ds`` in model space, their actions and (where stored) relevant masks."""
    fields = ("obs", "actions", "relevant") if ds.has_relevant else ("obs", "actions")
    d = ds.get(idx, fields)
    relevant = torch.as_tensor(d["relevant"]) if ds.has_relevant else None
    return ds.obs_format.to_model(d["obs"]), torch.as_tensor(d["actions"]), relevant


@dataclass
class _ObjectStates:
    """The test states' game objects, as the object metrics use them."""

    settings: ObjectSettings
    categories: list[str]
    regions: dict[str, torch.Tensor]
    """Each state's region masks (:func:`~vmask_live.object_metrics.region_masks`)."""
    shuffled: dict[str, torch.Tensor]
    """The region masks of each state's partner from another episode (the shuffled control)."""
    prior: torch.Tensor
    """The static prior map of each state (mean actor mask of other episodes)."""
    digest: str
    """Id of the objects and the pairing, for the cache key."""


def _object_states(ds: Any, idx: np.ndarray, settings: ObjectSettings) -> _ObjectStates | None:
    """The objects of states ``idx`` with their shuffled partners and static prior, drawn from a
    seeded pool of all of ``ds``'s states (``None`` when ``ds`` stores no objects)."""
    if not getattr(ds, "has_objects", False):
        return None
    hw = ds.obs_format.chw[1:]
    categories = ds.object_categories
    own = ds.get(idx, ("objects", "episodes"))
    pool = np.sort(np.random.default_rng(settings.seed).choice(len(ds), min(settings.pool, len(ds)), replace=False))
    pooled = ds.get(pool, ("objects", "episodes"))
    partners = shuffle_partners(own["episodes"], pooled["episodes"], settings.seed)

    def masks(rows: np.ndarray) -> dict[str, torch.Tensor]:
        return region_masks(rows, categories, hw, settings.dilate, settings.hud_categories)

    # The pool's actor masks only, in chunks: all regions of 2000 states would take ~100 MB.
    pool_actors = torch.cat([masks(pooled["objects"][i : i + 256])[ACTORS] for i in range(0, len(pool), 256)])
    h = hashlib.sha256(np.ascontiguousarray(own["objects"]).tobytes())
    h.update(np.ascontiguousarray(pooled["objects"][partners]).tobytes())
    return _ObjectStates(
        settings,
        categories,
        masks(own["objects"]),
        masks(pooled["objects"][partners]),
        static_prior_maps(own["episodes"], pooled["episodes"], pool_actors),
        h.hexdigest()[:16],
    )


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _states_id(x: torch.Tensor, a: torch.Tensor) -> str:
    h = hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes())
    h.update(a.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _reference_id(reference: Any) -> str:
    image = getattr(reference, "image", None)
    return _digest(
        {"meta": reference.to_meta(), "image": tensors_sha256({"image": image}) if image is not None else None}
    )


def _cache_key(
    cfg: EvaluateConfig, name: str, common: dict[str, Any], checkpoints: dict[str, str | None], backend: str
) -> dict[str, Any]:
    """A method's cache key: the run's (``common``), its settings and, for a method that runs a
    trained checkpoint (VisionMask, Stalder's Explainer), that checkpoint's weights hash and the
    inference backend. The other methods never see the explainer, so a new explainer leaves their
    results valid (its reference, which they do use, is in ``common``)."""
    spec = METHODS[name]
    key = {"method": name, "code": spec.version, **common, "settings": {k: getattr(cfg, k) for k in spec.settings}}
    if spec.checkpoint is not None:
        key[str(spec.checkpoint)] = checkpoints[str(spec.checkpoint)]
        key["backend"] = backend
    key["by_action"] = True  # results hold the per-action breakdown (older caches lack it)
    return key


def _load_cached(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The cached result when it was made by exactly ``key``, else None (logging why it is stale)."""
    if not path.exists():
        return None
    try:
        cached = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        cached = {}
    old = cached.get("key") if isinstance(cached, dict) else None
    if old == key and isinstance(cached.get("result"), dict):
        return cached["result"]
    if isinstance(old, dict):
        diff = [f"{k}={old.get(k)!r} (now {v!r})" for k, v in key.items() if old.get(k) != v]
        why = "it was computed with " + ", ".join(diff)
    else:
        why = "it records nothing of what produced it (an older vmask-live)"
    log.warning("Cached result %s is stale: %s; recomputing", path, why)
    return None


def evaluate(
    cfg: EvaluateConfig,
    agent: Any = None,
    progress: bool = True,
    compile_explainer: Callable[[Any], Any] | None = None,
) -> Path:
    """Run the comparison; returns the path of ``report.md``.

    Everything that can be checked is checked before any work: the settings, the optional
    packages of the selected methods, that each explainer fits the agent (observation shape,
    K) and was trained for it, and that a dataset was collected by this agent.

    Args:
        cfg: the job's settings.
        agent: an already loaded agent to use instead of ``cfg.agent``.
        progress: show a progress bar.
        compile_explainer: turns a plain :class:`~vmask_live.explainer.Explainer` into the
            runtime whose maps and timings are reported (the CLI passes
            ``vmask_live.load_explainer`` with ``backend="auto"``: ONNX Runtime on a CPU); by
            default the explainer runs as it is (eager torch). The core never imports the
            backends itself.

    Raises:
        ConfigError: bad settings (all of them in one message).
        MissingExtraError: a selected method needs an optional package that is not installed.
        ObservationError, PairingError: an explainer that does not fit or was trained for another agent.
        DatasetError: a dataset collected by another agent.
    """
    job = _load_inputs(cfg, agent)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    states = _test_states(cfg, job, out)
    compile_ = compile_explainer or (lambda exp: exp)
    vmask = compile_(job.vmask)
    explainers = {"explainer": vmask, "stalder": compile_(job.stalder) if job.stalder is not None else None}
    key = _run_key(cfg, job, states, vmask.reference)
    results, grid_maps, reused = _run_methods(cfg, job, states, explainers, key, out, progress)
    for name, res in results.items():
        empty = _empty_actions(res, vmask.action_names)
        if empty:
            log.warning("%s: the maps of %s are empty; see report.md", METHODS[name].display_name, ", ".join(empty))
    if states.relevant is not None:
        results[GROUND_TRUTH] = _ground_truth(cfg, job.agent, states, vmask.reference)
    objects = _object_summary(job.agent, states, vmask.reference)
    reference_picks = _reference_picks(job.agent, states, vmask.reference)
    x4, a4 = states.x[:4], states.a[:4]
    counterfactual = _counterfactual(job.agent, vmask, x4, grid_maps)

    header = _header(cfg, states.source, key["n"], key["lle_n"], vmask.reference)
    if reused:
        when = [f"{name} ({results[name].get('measured_at', 'an older run')})" for name in reused]
        header += (
            f" Reused from `methods/`, computed by an earlier run with the same inputs (their ms/frame were timed "
            f"then, maybe on a busier or another machine): {', '.join(when)}."
        )
    resolved = {
        "agent": job.agent_label,
        "explainer": job.explainer_spec,
        "stalder": cfg.stalder,
        "states": str(states.ds.path),
        "key": key,
    }
    _write_markdown(out, states.ds.env, header, results, objects, (vmask.action_names, reference_picks))
    _write_tables(out, cfg, resolved, results, objects, reference_picks)
    plt = _pyplot()
    _plot_curves(plt, out, results)
    _plot_grid(plt, out, grid_maps, x4, a4, vmask.action_names)
    _plot_counterfactual(plt, out, x4, counterfactual, vmask.action_names)
    _plot_radar(plt, out, results)
    return out / "report.md"


@dataclass
class _Inputs:
    """What one evaluation compares, loaded and checked by :func:`_load_inputs`."""

    names: list[str]
    """The selected methods."""
    agent: Any
    agent_label: str
    """How the report names the agent (its spec, or its class when passed in)."""
    explainer_spec: str
    vmask: Any
    """The VisionMask explainer (plain :class:`~vmask_live.explainer.Explainer`)."""
    stalder: Any | None
    """The ``--stalder`` explainer, when a selected method runs it."""
    ds: Any | None
    """The ``data`` dataset (None: the agent plays ``env``)."""


@dataclass
class _TestStates:
    ds: Any
    """The dataset the states come from (``data``, or the one played into ``out/states``)."""
    x: torch.Tensor
    a: torch.Tensor
    relevant: torch.Tensor | None
    source: str
    """Where the states come from, for the report."""
    objects: _ObjectStates | None = None
    """The states' game objects (datasets collected with an object annotator)."""


def _load_inputs(cfg: EvaluateConfig, agent: Any) -> _Inputs:
    """Check the settings and optional packages, load the agent, dataset and explainers, and check
    that they belong together (shapes, K, the explainers' and the dataset's agent)."""
    from vmask_live.agents import load_agent
    from vmask_live.dataset import Dataset
    from vmask_live.explainer import load_explainer
    from vmask_live.pairing import check_pairing

    names = _validate(cfg, agent is not None)
    check_requirements(names)
    agent_spec = _default_agent(cfg, agent is not None)
    explainer_spec = _default_explainer(cfg, agent_spec)
    agent = agent if agent is not None else load_agent(agent_spec)
    agent_label = agent_spec or type(agent).__name__
    ds = Dataset(cfg.data) if cfg.data else None
    if ds is not None:
        _check_dataset(ds, agent, agent_label)
    vmask = load_explainer(explainer_spec, backend="none")
    _check_fit(vmask, explainer_spec, agent, agent_label, "Explainer")
    stalder = None
    if cfg.stalder and any(METHODS[name].checkpoint == "stalder" for name in names):  # _validate: given
        stalder = load_explainer(cfg.stalder, backend="none")
        _check_fit(stalder, str(cfg.stalder), agent, agent_label, "Explainer (--stalder)")
    check_pairing(vmask, agent, allow_mismatch=cfg.allow_mismatch)
    if stalder is not None:
        check_pairing(stalder, agent, allow_mismatch=cfg.allow_mismatch)
    return _Inputs(names, agent, agent_label, explainer_spec, vmask, stalder, ds)


def _test_states(cfg: EvaluateConfig, job: _Inputs, out: Path) -> _TestStates:
    """A seeded sample of the dataset's test split, or of the states the agent visits playing ``env``."""
    settings = ObjectSettings(dilate=cfg.object_dilate, seed=cfg.seed)
    if job.ds is not None:
        idx = job.ds.sample_indices("test", cfg.n, cfg.seed)
        x, a, relevant = _read_states(job.ds, idx)
        objects = _object_states(job.ds, idx, settings)
        return _TestStates(job.ds, x, a, relevant, f"the test split of `{cfg.data}`", objects)
    ds = _play_states(cfg, job.agent, job.agent_label, out)
    # Freshly played: none of these states were trained on, so all of them are test states.
    idx = np.sort(np.random.default_rng(cfg.seed).choice(len(ds), min(cfg.n, len(ds)), replace=False))
    x, a, relevant = _read_states(ds, idx)
    source = (
        f"the {len(ds)} states `{job.agent_label}` visited playing {ds.env} "
        f"(play seed {cfg.seed + PLAY_SEED_OFFSET}, stored in `{ds.path}`)"
    )
    return _TestStates(ds, x, a, relevant, source, _object_states(ds, idx, settings))


def _run_key(cfg: EvaluateConfig, job: _Inputs, states: _TestStates, reference: Any) -> dict[str, Any]:
    """Everything every method's result depends on (each method's cache key adds its own settings,
    and for the methods that run a trained explainer its weights and backend: ``_cache_key``)."""
    from vmask_live import __version__
    from vmask_live.pairing import agent_hash

    n_used = len(states.a)
    key = {
        "version": __version__,
        "metrics": METRICS_VERSION,
        "dataset": states.ds.identity,
        "states": _states_id(states.x, states.a),
        "n": n_used,
        "requested_n": cfg.n,
        "seed": cfg.seed,
        "agent": agent_hash(job.agent),
        "reference": _reference_id(reference),
        "lle_n": min(cfg.lle_n, n_used),
        "lle_eps": cfg.lle_eps,
        "lle_neighbours": cfg.lle_neighbours,
        "insertion_steps": cfg.insertion_steps,
    }
    if states.objects is not None:  # absent without objects, so those runs keep their caches
        obj = states.objects
        key["objects"] = {**obj.settings.to_dict(), "categories": obj.categories, "states": obj.digest}
    return key


def _run_methods(
    cfg: EvaluateConfig,
    job: _Inputs,
    states: _TestStates,
    explainers: dict[str, Any],
    common: dict[str, Any],
    out: Path,
    progress: bool,
) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray], list[str]]:
    """Each method's result (cached in ``out/methods``, or computed and cached), its maps of the
    first four states (for the grid figure), and the names of the methods whose cached result was
    reused."""
    from rich.progress import Progress

    checkpoints = {
        "explainer": job.vmask.weights_hash(),
        "stalder": job.stalder.weights_hash() if job.stalder is not None else None,
    }
    backend = str(getattr(explainers["explainer"], "backend", "torch"))  # the runtime that made the maps
    reference = explainers["explainer"].reference
    x, a = states.x, states.a
    (out / "methods").mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    grid_maps: dict[str, np.ndarray] = {}
    reused: list[str] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("methods", total=len(job.names))
        for name in job.names:
            path = out / "methods" / f"{name}.json"
            spec = METHODS[name]
            counting = CountingAgent(job.agent)
            settings = {k: getattr(cfg, k) for k in spec.settings}
            method = build_method(name, counting, reference, explainers.get(str(spec.checkpoint)), **settings)
            key = _cache_key(cfg, name, common, checkpoints, backend)
            cached = _load_cached(path, key)
            if cached is not None:
                results[name] = cached
                reused.append(name)
            else:
                results[name] = _measure(cfg, name, method, counting, job.agent, states, reference, common, bar, task)
                atomic_write_text(path, json.dumps({"key": key, "result": results[name]}))
            grid_maps[name] = normalise(_unit_maps(name, method.attribute(x[:4], a[:4]).float())).numpy()
            bar.advance(task)
    return results, grid_maps, reused


def _unit_maps(name: str, maps: torch.Tensor) -> torch.Tensor:
    """The maps as masks in [0, 1]: as they are for a method whose maps are masks, else min-max
    rescaled per map (object masses and the qualitative grid; see :attr:`MethodSpec.gives_masks`)."""
    return maps if METHODS[name].gives_masks else rescale(maps)


def _measure(
    cfg: EvaluateConfig,
    name: str,
    method: Any,
    counting: CountingAgent,
    agent: Any,
    states: _TestStates,
    reference: Any,
    common: dict[str, Any],
    bar: Any,
    task: Any,
) -> dict[str, Any]:
    """One method's metrics on the test states, its time per frame and agent passes per frame."""
    x, a, n_used, n_lle = states.x, states.a, common["n"], common["lle_n"]
    bar.update(task, description=f"{name}: timing")
    t0 = time.perf_counter()
    maps = torch.cat([method.attribute(x[i : i + 16], a[i : i + 16]).float() for i in range(0, n_used, 16)])
    ms = 1000 * (time.perf_counter() - t0) / n_used
    passes = counting.states / n_used
    bar.update(task, description=f"{name}: metrics")
    res = evaluate_maps(
        agent,
        x,
        a,
        maps,
        reference,
        states.relevant,
        cfg.insertion_steps,
        with_lle=False,
        rescale_maps=not METHODS[name].gives_masks,
        per_action=True,
    )
    if n_lle:
        lle_res = evaluate_maps(
            agent,
            x[:n_lle],
            a[:n_lle],
            method.attribute,
            reference,
            None,
            2,
            cfg.lle_eps,
            cfg.lle_neighbours,
            with_lle=True,
        )
        res.update(lle=lle_res["lle"], lle_eps=cfg.lle_eps, lle_neighbours=cfg.lle_neighbours)
    res.update(lle_n=n_lle, ms_per_frame=ms, agent_passes_per_frame=passes)
    res["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if states.objects is not None:
        res.update(object_scores(_unit_maps(name, maps), states.objects.regions, states.objects.shuffled))
    return res


def _object_summary(agent: Any, states: _TestStates, reference: Any) -> dict[str, Any] | None:
    """What the Objects table shows beside the methods: the area shares (a uniform map's mass),
    the static layout prior's scores, and how often removing each category flips the agent's action."""
    obj = states.objects
    if obj is None:
        return None
    n, hw = len(states.a), tuple(states.x.shape[-2:])
    return {
        "settings": obj.settings.to_dict(),
        "categories": obj.categories,
        "areas": region_areas(obj.regions),
        "rows": {
            UNIFORM: object_scores(uniform_maps(n, hw), obj.regions, obj.shuffled, with_pointing=False),
            STATIC_PRIOR: object_scores(obj.prior, obj.regions, obj.shuffled),
        },
        "category_flips": category_flips(agent, states.x, states.a, obj.regions, reference),
    }


@torch.inference_mode()
def _reference_picks(agent: Any, states: _TestStates, reference: Any) -> dict[str, float]:
    """Per chosen action, the % of its test states in which the agent picks it on the reference
    alone (all state information removed). There, deleting pixels moves the state toward a frame
    that still yields the action, so deletion falls only where a partial deletion leads the agent
    elsewhere; and VisionMask's loss is met by an empty map unless the deletion term
    (``--lambda-del``) asks for more."""
    picks = []
    for i in range(0, len(states.a), 64):
        xb = states.x[i : i + 64]
        picks.append(agent(reference(xb).expand_as(xb)).argmax(1))
    same = (torch.cat(picks) == states.a).float()
    return {str(k): 100 * float(same[states.a == k].mean()) for k in torch.unique(states.a).tolist()}


def _ground_truth(cfg: EvaluateConfig, agent: Any, states: _TestStates, reference: Any) -> dict[str, Any]:
    """The ceiling: the env's own relevant-pixel mask used as a saliency map (a perfect
    explanation); insertion and deletion cannot separate methods that come close to it."""
    assert states.relevant is not None
    x, a, relevant = states.x, states.a, states.relevant
    oracle = evaluate_maps(agent, x, a, relevant.float(), reference, relevant, cfg.insertion_steps, with_lle=False)
    return {**oracle, "ms_per_frame": 0.0, "agent_passes_per_frame": 0.0}


def _counterfactual(agent: Any, vmask: Any, x4: torch.Tensor, grid_maps: dict[str, np.ndarray]) -> dict[str, Any]:
    """The first state with the first method's region removed, and the agent's action before and after."""
    from vmask_live.overlay import overlay

    m = torch.from_numpy(grid_maps[next(iter(grid_maps))][:1])
    cf = overlay(x4[:1], 1 - m, vmask.reference(x4[:1]))
    with torch.inference_mode():
        before, after = int(agent(x4[:1]).argmax()), int(agent(cf).argmax())
    return {"state": cf, "before": before, "after": after}


def _header(cfg: EvaluateConfig, source: str, n_used: int, n_lle: int, reference: Any) -> str:
    """The report's description of what was measured, with the counts actually used."""
    short = f" (asked for {cfg.n}; only {n_used} were available)" if n_used < cfg.n else ""
    if n_lle:
        lle = f"LLE on {n_lle} states, ε = {cfg.lle_eps}, N = {cfg.lle_neighbours}"
        if n_lle < cfg.lle_n:
            lle += f" (asked for {cfg.lle_n})"
    else:
        lle = "LLE not computed (lle_n = 0)"
    return (
        f"{n_used} test states{short}, a seeded sample (seed {cfg.seed}) of {source}; reference `{reference!r}`; "
        f"insertion/deletion with {cfg.insertion_steps} steps; {lle}."
    )


def _label(name: str) -> str:
    """How figures and the report name a result row: the method's display name."""
    return METHODS[name].display_name if name in METHODS else name


def _object_columns(categories: list[str]) -> dict[str, str]:
    """Result keys of the Objects table with their headers (see :func:`~vmask_live.object_metrics.object_scores`)."""
    cols = {
        "object_score": "Object score ↑",
        "actor_mass": "Actor mass",
        "actor_mass_shuffled": "Actor mass, shuffled",
        "actor_pointing": "Pointing",
        "actor_pointing_shuffled": "Pointing, shuffled",
    }
    for c in categories:
        cols[f"mass:{c}"] = f"{c} mass"
        cols[f"mass_shuffled:{c}"] = f"{c} mass, shuffled"
    return cols


def _object_rows(results: dict[str, dict[str, Any]], objects: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rows of the Objects table: each method that has object scores, then the fixed-map rows."""
    rows = {name: r for name, r in results.items() if "object_score" in r}
    return {**rows, **objects["rows"]}


def _object_markdown(results: dict[str, dict[str, Any]], objects: dict[str, Any]) -> list[str]:
    """The report's Objects section (SPEC §2, "Object mass")."""
    cfg = objects["settings"]
    hud = ", ".join(cfg["hud_categories"])
    cols = _object_columns(objects["categories"])
    rows = [[n, *(r.get(k) for k in cols)] for n, r in _object_rows(results, objects).items()]
    areas = objects["areas"]
    area_text = ", ".join(f"{k.split(':', 1)[1]} {v:.1f}%" for k, v in areas.items())
    flips = objects["category_flips"]
    flip_text = "; ".join(
        f"{c} {f['flip_rate']:.1f}% of {f['states']} states" if f["states"] else f"{c}: never present"
        for c, f in flips.items()
    )
    return [
        "",
        "## Objects",
        "",
        f"Mass (%) of each method's map of the agent's action on the game's objects (boxes from RAM, dilated "
        f"{cfg['dilate']} px; actors = every category but {hud}). *Shuffled*: the same map scored against the "
        f"objects of a state from another episode (seeded pairing, seed {cfg['seed']}): mass that survives "
        "shuffling is layout bias, not tracking. **Object score = actor mass − shuffled actor mass.** The "
        f"`{UNIFORM}` row scores a constant map, whose mass is the area share; the `{STATIC_PRIOR}` row "
        "scores the mean actor mask of other episodes' states, i.e. knowing the usual layout without looking.",
        "",
        *markdown_table(["method", *cols.values()], rows),
        "",
        f"Area shares: {area_text}.",
        "",
        f"Agent's action flips when one category's boxes are replaced by the reference: {flip_text}.",
    ]


def _empty_actions(result: dict[str, Any], action_names: list[str], least: int = 3) -> list[str]:
    """The actions (chosen in at least ``least`` test states) whose maps are empty in at least
    half of them, as ``"NAME (x of n states)"``: the explainer explains them by nothing."""
    found = []
    for k, row in result.get("by_action", {}).items():
        n, empty = int(row["n"]), round(row["empty_maps"] * row["n"] / 100)
        if n >= least and 2 * empty >= n:
            found.append(f"{action_names[int(k)]} ({empty} of {n} states)")
    return found


def _by_action_markdown(
    results: dict[str, dict[str, Any]], action_names: list[str], reference_picks: dict[str, float]
) -> list[str]:
    """The "By the chosen action" section: deletion / insertion of every method by the action the
    agent chose; for each checkpoint method (VisionMask, Stalder's Explainer) all its metrics by
    action with the map area and the share of empty maps (a warning line for actions whose maps
    are empty); and which actions the reference alone yields."""
    measured = {name: res["by_action"] for name, res in results.items() if res.get("by_action")}
    if not measured:
        return []
    actions = sorted(reference_picks, key=int)
    counts = {k: int(next(iter(measured.values()))[k]["n"]) for k in actions}
    lines = [
        "",
        "## By the chosen action",
        "",
        "Deletion ↓ / insertion ↑ on the test states where the agent chose each action:",
        "",
    ]
    header = ["method", *(f"{action_names[int(k)]} ({counts[k]} states)" for k in actions)]
    rows = [
        [name, *(f"{r[k]['deletion']:.3g} / {r[k]['insertion']:.3g}" if k in r else None for k in actions)]
        for name, r in measured.items()
    ]
    lines += markdown_table(header, rows)
    lines += ["", "The agent picks the action on the reference alone (all state information removed) in:", ""]
    lines += ["- " + ", ".join(f"{action_names[int(k)]}: {reference_picks[k]:.0f}%" for k in actions)]
    if any(v >= 50 for v in reference_picks.values()):
        lines += [
            "",
            "Deleting pixels moves a state toward the reference; where the reference yields the chosen action, "
            "the action's probability falls only if a partial deletion leads the agent elsewhere, so those "
            "states' deletion is the hard part of the overall score.",
        ]
    for name, breakdown in measured.items():
        if name not in METHODS or METHODS[name].checkpoint is None:
            continue
        cols = metric_columns(breakdown.values(), require="all")
        lines += ["", f"### {METHODS[name].display_name} by the chosen action", ""]
        table = [
            [action_names[int(k)], int(r["n"]), *(r[c] for c in cols), r["map_area"], r["empty_maps"]]
            for k, r in sorted(breakdown.items(), key=lambda kv: int(kv[0]))
        ]
        lines += markdown_table(["action", "states", *cols.values(), "map area %", "empty maps %"], table)
        empty = _empty_actions(results[name], action_names)
        if empty:
            lines += [
                "",
                f"**Warning: the maps of {', '.join(empty)} are empty** (largest value below {EMPTY_MAP_MAX}): "
                "the explainer keeps nothing of these states. This happens when the reference alone already "
                "yields the action (the loss is then met by an empty map); retraining with `--lambda-del 1` "
                "gives such maps pixels (docs/ablation-beacon.md).",
            ]
    return lines


def _write_markdown(
    out: Path,
    env: str,
    header: str,
    results: dict[str, dict[str, Any]],
    objects: dict[str, Any] | None = None,
    actions: tuple[list[str], dict[str, float]] | None = None,
) -> None:
    """``report.md``: the table of every metric any method has, method costs, the paper's numbers,
    the checkpoint methods' metrics by the chosen action (``actions``: the action names and how
    often the reference alone yields each; warning of empty maps) and (where the
    states have game objects) the Objects table."""
    cols = metric_columns(results.values(), require="any")
    lines = [f"# Saliency methods on {env}", "", header, ""]
    rows = [[name, *(r.get(k) for k in cols)] for name, r in results.items()]
    lines += markdown_table(["method", *cols.values()], rows)
    lines += ["", "Methods (cost per explained frame):", ""]
    lines += [f"- `{n}`: {METHODS[n].display_name}; {METHODS[n].cost}" for n in results if n in METHODS]
    if env == "MsPacman":
        lines += ["", "Paper Table 1, MsPacman (their agent, not ours): Acc / Del / Ins / LLE / Sp", ""]
        lines += [f"- {_label(k)}: " + " / ".join(map(str, v)) for k, v in PAPER_MSPACMAN.items()]
    if "relevant_area" in next(iter(results.values())):
        lines += [
            "",
            f"Relevant area (what a uniform map scores on GT mass): "
            f"{next(iter(results.values()))['relevant_area']:.2f}%. The `{GROUND_TRUTH}` row scores the env's "
            "relevant-pixel mask itself, a perfect explanation: insertion/deletion cannot separate methods "
            "that come within about a point of it.",
        ]
    if actions is not None:
        lines += _by_action_markdown(results, *actions)
    if objects is not None:
        lines += _object_markdown(results, objects)
    lines += [
        "",
        "![curves](curves.png)",
        "",
        "![grid](grid.png)",
        "",
        "![counterfactual](counterfactual.png)",
        "",
        "![radar](radar.png)",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))


def _write_tables(
    out: Path,
    cfg: EvaluateConfig,
    resolved: dict[str, Any],
    results: dict[str, dict[str, Any]],
    objects: dict[str, Any] | None = None,
    reference_picks: dict[str, float] | None = None,
) -> None:
    """``results.json`` (settings, what they resolved to, every result with its curves and its
    metrics by the chosen action, the object summary, how often the reference alone yields each
    chosen action) and ``results.csv`` (with the object columns and fixed-map rows where there are objects)."""
    saved: dict[str, Any] = {"config": asdict(cfg), "resolved": resolved, "results": results}
    if objects is not None:
        saved["objects"] = objects
    if reference_picks is not None:
        saved["reference_picks"] = reference_picks
    atomic_write_text(out / "results.json", json.dumps(saved, indent=1))
    cols = list(metric_columns(results.values(), require="any"))
    table = dict(results)
    if objects is not None:
        cols += list(_object_columns(objects["categories"]))
        table.update(objects["rows"])
    rows = [[name, *(r.get(k) for k in cols)] for name, r in table.items()]
    atomic_write_bytes(out / "results.csv", csv_text(["method", *cols], rows).encode())


def _pyplot() -> Any:
    """``matplotlib.pyplot`` drawing off-screen (evaluate runs on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_curves(plt: Any, out: Path, results: dict[str, dict[str, Any]]) -> None:
    """``curves.png``: every method's insertion and deletion curves."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, r in results.items():
        t = np.linspace(0, 1, len(r["insertion_curve"]))
        style = {"color": "k", "linestyle": "--"} if name == GROUND_TRUTH else {}
        axes[0].plot(t, r["insertion_curve"], label=_label(name), **style)
        axes[1].plot(t, r["deletion_curve"], label=_label(name), **style)
    for ax, title in zip(axes, ("insertion (higher is better)", "deletion (lower is better)"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("fraction of pixels")
        ax.set_ylabel("p(a)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=90)
    plt.close(fig)


def _plot_grid(
    plt: Any,
    out: Path,
    grid_maps: dict[str, np.ndarray],
    x4: torch.Tensor,
    a4: torch.Tensor,
    action_names: list[str],
) -> None:
    """``grid.png``: the same frames overlaid by every method (the paper's Figure 2)."""
    from vmask_live.render import blend

    frames = (x4[:, -1].numpy() * 255).astype(np.uint8)
    fig, axes = plt.subplots(len(frames), len(grid_maps) + 1, figsize=(1.6 * (len(grid_maps) + 1), 1.7 * len(frames)))
    axes = np.atleast_2d(axes)
    for i, f in enumerate(frames):
        rgb = np.repeat(f[..., None], 3, 2)
        axes[i, 0].imshow(rgb)
        axes[i, 0].set_title(action_names[int(a4[i])][:10] if i == 0 else "", fontsize=7)
        for j, (name, maps) in enumerate(grid_maps.items()):
            axes[i, j + 1].imshow(blend(rgb, maps[i], 0.7))
            if i == 0:
                axes[i, j + 1].set_title(_label(name), fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "grid.png", dpi=90)
    plt.close(fig)


def _plot_counterfactual(
    plt: Any, out: Path, x4: torch.Tensor, counterfactual: dict[str, Any], action_names: list[str]
) -> None:
    """``counterfactual.png``: a state beside itself with its salient region removed (see :func:`_counterfactual`)."""
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.3))
    axes[0].imshow(x4[0, -1], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"state: agent picks {action_names[counterfactual['before']]}", fontsize=8)
    axes[1].imshow(counterfactual["state"][0, -1], cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"its region removed: agent picks {action_names[counterfactual['after']]}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "counterfactual.png", dpi=90)
    plt.close(fig)


def _plot_radar(plt: Any, out: Path, results: dict[str, dict[str, Any]]) -> None:
    """``radar.png``: each method's five paper metrics, scaled between the worst and best method."""
    results = {k: v for k, v in results.items() if k != GROUND_TRUTH}
    keys = [("accuracy", False), ("deletion", True), ("insertion", False), ("lle", True), ("sparseness", False)]
    keys = [(k, low) for k, low in keys if all(k in r for r in results.values())]  # no LLE when lle_n = 0
    angles = np.linspace(0, 2 * np.pi, len(keys), endpoint=False).tolist()
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(polar=True)
    for name, r in results.items():
        vals = []
        for k, lower_better in keys:
            col = np.array([rr[k] for rr in results.values()], float)
            lo, hi = col.min(), col.max()
            v = (r[k] - lo) / (hi - lo) if hi > lo else 1.0
            vals.append(1 - v if lower_better else v)
        ax.plot(angles + angles[:1], vals + vals[:1], label=_label(name))
    ax.set_xticks(angles)
    labels = {"accuracy": "Acc", "deletion": "1-Del", "insertion": "Ins", "lle": "1-LLE", "sparseness": "Sp"}
    ax.set_xticklabels([labels[k] for k, _ in keys])
    ax.set_yticklabels([])
    ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.3, 0))
    fig.tight_layout()
    fig.savefig(out / "radar.png", dpi=90)
    plt.close(fig)
