"""The paper's ablations (§4.4) as one sweep: each variant is a switch of the one trainer.

``vmask-live ablate --data DIR --agent A --out DIR`` trains every variant with the same budget
and seed on the same dataset, evaluates it on the same test states, and writes ``ablation.md``
and ``ablation.json``. Variants: area loss (abs / hinge / stalder), a_max (0.1 / 0.2 / 0.4),
reference (background / black / mean / blur), loss components (contrastive only, +NE,
+NE+area, +NE+area+TV), architecture (deeplab / fcn), the Explainer loss of Stalder et al. and (ours)
input-noise training for robustness.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vmask_live.atomic import atomic_write_text
from vmask_live.report import markdown_table, metric_columns
from vmask_live.train import TrainConfig, train

__all__ = ["AblationConfig", "VARIANTS", "ablate"]


def _v(group: str, name: str, **changes: Any) -> tuple[str, str, dict[str, Any]]:
    return group, name, changes


#: (group, name, changes to the base TrainConfig; ``loss.*`` keys change the LossConfig)
VARIANTS = [
    _v("area loss", "abs (eq. 5)", **{"loss.area_loss": "abs"}),
    _v("area loss", "hinge", **{"loss.area_loss": "hinge"}),
    _v("area loss", "stalder (min-max)", **{"loss.area_loss": "stalder"}),
    _v("a_max", "0.1", **{"loss.a_max": 0.1}),
    _v("a_max", "0.2", **{"loss.a_max": 0.2}),
    _v("a_max", "0.4", **{"loss.a_max": 0.4}),
    _v("reference", "background", reference="background"),
    _v("reference", "black", reference="black"),
    _v("reference", "mean", reference="mean"),
    _v("reference", "blur", reference="blur"),
    _v("components", "contrastive only", **{"loss.lambda_ne": 0.0, "loss.lambda_area": 0.0}),
    _v("components", "+NE", **{"loss.lambda_area": 0.0}),
    _v("components", "+NE+area", **{}),
    _v("components", "+NE+area+TV", **{"loss.lambda_tv": 1.0}),
    _v("architecture", "fcn", arch="fcn"),
    _v("loss", "Explainer (Stalder et al.)", **{"loss.kind": "stalder"}),
    _v("robustness", "input noise ±0.05", input_noise=0.05),
]


@dataclass
class AblationConfig:
    """Sweep settings (the base run is a TrainConfig; each variant changes a few fields)."""

    data: str = "data/beacon"
    """Dataset folder from ``vmask-live collect`` (every variant trains and is scored on it)."""
    agent: str = ""
    """The agent the dataset was collected with."""
    out: str = "runs/ablation"
    """Sweep folder: one run folder per variant (finished variants are skipped), ``ablation.md``/``.json``."""
    base: dict | None = None
    """TrainConfig fields shared by every variant (e.g. epochs, steps_per_epoch, width, loss)."""
    n: int = 300
    """Test states for the metrics."""
    groups: str = "all"
    """Comma-separated groups to run, or ``all``."""


def _apply(base: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    cfg = copy.deepcopy(base)
    for key, value in changes.items():
        if key.startswith("loss."):
            setattr(cfg.loss, key[5:], value)
        else:
            setattr(cfg, key, value)
    return cfg


def ablate(cfg: AblationConfig, agent: Any = None, progress: bool = True) -> Path:
    """Run the sweep (skipping variants already done in ``out``) and write the table."""
    from vmask_live.agents import load_agent
    from vmask_live.dataset import Dataset
    from vmask_live.metrics import evaluate_maps
    from vmask_live.overlay import Reference

    agent = agent if agent is not None else load_agent(cfg.agent)
    base = TrainConfig.from_dict({**(cfg.base or {}), "data": cfg.data, "agent": cfg.agent})
    ds = Dataset(cfg.data)
    x, a, relevant = ds.sample_split("test", cfg.n, seed=0)
    # every variant is scored with the background reference, so the columns compare the maps
    bg, mean = ds.statistics()
    ref = Reference.from_data("background", bg, mean, height=ds.obs_format.chw[1])
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    groups = None if cfg.groups == "all" else {g.strip() for g in cfg.groups.split(",")}
    rows = []
    for group, name, changes in VARIANTS:
        if groups is not None and group not in groups:
            continue
        slug = f"{group}-{name}".replace(" ", "_").replace("/", "_").replace("(", "").replace(")", "").replace("+", "p")
        done = out / f"{slug}.json"
        if done.exists():
            rows.append(json.loads(done.read_text()))
            continue
        tcfg = _apply(base, changes)
        key = json.dumps({k: v for k, v in asdict(tcfg).items() if k != "out"}, sort_keys=True)
        same = next((r for r in rows if r.get("config") == key), None)
        if same is not None:  # e.g. "a_max 0.1" is the base run when the base a_max is 0.1: train once
            row = {**same, "group": group, "variant": name, "changes": changes, "same_as": same["variant"]}
            atomic_write_text(done, json.dumps(row))
            rows.append(row)
            continue
        tcfg.out = str(out / slug)
        res = train(tcfg, agent=agent, progress=progress)
        m = evaluate_maps(agent, x, a, res.explainer.attribute, ref, relevant, with_lle=True, lle_neighbours=5)
        row = {
            "group": group,
            "variant": name,
            "changes": changes,
            "config": key,
            "train_seconds": round(res.seconds, 1),
            **{k: v for k, v in m.items() if not k.endswith("_curve")},
        }
        atomic_write_text(done, json.dumps(row))
        rows.append(row)
    cols = metric_columns(rows, require="all")
    lines = [
        f"# Ablations on {ds.env}",
        "",
        f"Base: `{json.dumps({k: v for k, v in asdict(base).items() if k not in ('data', 'agent', 'out')})}`",
        "",
        f"Each variant: same data, seed and budget; metrics on {len(a)} test states with the background reference.",
        "",
    ]
    table = [
        [r["group"], r["variant"], *(r[k] for k in cols)]
        + [f"= {r['same_as']}" if r.get("same_as") else f"{r['train_seconds']:.0f}"]
        for r in rows
    ]
    lines += markdown_table(["group", "variant", *cols.values(), "train s"], table)
    if "relevant_area" in rows[0]:
        lines += ["", f"Relevant area (uniform-map GT mass): {rows[0]['relevant_area']:.2f}%"]
    atomic_write_text(out / "ablation.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "ablation.json", json.dumps(rows, indent=1))
    return out / "ablation.md"
