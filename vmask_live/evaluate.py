"""``vmask-live evaluate``: every saliency method on the same test states, in one run.

Writes to ``out/``: ``report.md`` (the table, with the paper's Table 1 row for MsPacman),
``results.json`` / ``results.csv``, ``curves.png`` (insertion and deletion), ``grid.png`` (the same
frames overlaid by every method, like the paper's Figure 2), ``counterfactual.png`` and
``radar.png``. Each method's result is saved under ``out/methods/`` as soon as it is done, so an
interrupted evaluation resumes with the methods that are missing.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vmask_live.baselines import METHODS, build_method
from vmask_live.metrics import evaluate_maps, normalise

__all__ = ["EvaluateConfig", "evaluate", "CountingAgent", "PAPER_MSPACMAN"]

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


@dataclass
class EvaluateConfig:
    """Compare saliency methods on a dataset's test split."""

    data: str = "data/beacon"
    agent: str = ""
    explainer: str = ""
    """VisionMask checkpoint (also gives the reference value used by every method)."""
    stalder: str | None = None
    """Checkpoint trained with ``--loss-kind explainer`` for the Explainer row (optional)."""
    methods: str = "all"
    """Comma-separated names from METHODS, or ``all`` (the trained ones need their checkpoints)."""
    n: int = 500
    """Test states (a seeded sample of the test split)."""
    lle_n: int = 50
    """States used for LLE (it explains N neighbours per state: costly for perturbation methods)."""
    lle_eps: float = 0.05
    lle_neighbours: int = 10
    insertion_steps: int = 50
    rise_masks: int = 2000
    lime_samples: int = 300
    out: str = "runs/eval"
    seed: int = 0


class CountingAgent(torch.nn.Module):
    """Wraps an agent and counts the states it is asked about (``states``): agent passes."""

    def __init__(self, agent: torch.nn.Module) -> None:
        super().__init__()
        self.agent, self.states = agent, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.states += x.shape[0]
        return self.agent(x)


def _method_names(cfg: EvaluateConfig) -> list[str]:
    names = list(METHODS) if cfg.methods == "all" else [m.strip() for m in cfg.methods.split(",") if m.strip()]
    if cfg.methods == "all" and not cfg.stalder:
        names.remove("explainer")
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; expected names from {', '.join(METHODS)}")
    return names


def evaluate(cfg: EvaluateConfig, agent: Any = None, progress: bool = True) -> Path:
    """Run the comparison; returns the path of ``report.md``."""
    from rich.progress import Progress

    from vmask_live.agents import load_agent
    from vmask_live.dataset import Dataset
    from vmask_live.explainer import load_explainer

    ds = Dataset(cfg.data)
    agent = agent if agent is not None else load_agent(cfg.agent)
    vmask = load_explainer(cfg.explainer, backend="auto")
    reference = vmask.reference
    names = _method_names(cfg)
    x, a, relevant = ds.sample_split("test", cfg.n, cfg.seed)
    out = Path(cfg.out)
    (out / "methods").mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    grid_maps: dict[str, np.ndarray] = {}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("methods", total=len(names))
        for name in names:
            path = out / "methods" / f"{name}.json"
            explainer = (
                vmask
                if name == "visionmask"
                else (load_explainer(cfg.stalder, backend="auto") if name == "explainer" else None)
            )
            counting = CountingAgent(agent)
            method = build_method(name, counting, reference, explainer, cfg.rise_masks, cfg.lime_samples)
            if path.exists():
                results[name] = json.loads(path.read_text())
            else:
                bar.update(task, description=f"{name}: timing")
                t0 = time.perf_counter()
                maps = torch.cat([method.attribute(x[i : i + 16], a[i : i + 16]).float() for i in range(0, len(a), 16)])
                ms = 1000 * (time.perf_counter() - t0) / len(a)
                passes = counting.states / len(a)
                bar.update(task, description=f"{name}: metrics")
                res = evaluate_maps(agent, x, a, maps, reference, relevant, cfg.insertion_steps, with_lle=False)
                n_lle = min(cfg.lle_n, len(a))
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
                res.update(
                    lle=lle_res["lle"],
                    lle_n=n_lle,
                    lle_eps=cfg.lle_eps,
                    lle_neighbours=cfg.lle_neighbours,
                    ms_per_frame=ms,
                    agent_passes_per_frame=passes,
                )
                path.write_text(json.dumps(res))
                results[name] = res
            grid_maps[name] = normalise(method.attribute(x[:4], a[:4]).float()).numpy()
            bar.advance(task)
    if relevant is not None:
        # The ceiling: the env's own relevant-pixel mask used as a saliency map (a perfect
        # explanation); insertion and deletion cannot separate methods that come close to it.
        oracle = evaluate_maps(agent, x, a, relevant.float(), reference, relevant, cfg.insertion_steps, with_lle=False)
        results[GROUND_TRUTH] = {**oracle, "ms_per_frame": 0.0, "agent_passes_per_frame": 0.0}
    _write_reports(cfg, ds, out, results, grid_maps, x[:4], a[:4], agent, vmask)
    return out / "report.md"


COLUMNS = [
    ("accuracy", "Acc ↑"),
    ("deletion", "Del ↓"),
    ("insertion", "Ins ↑"),
    ("lle", "LLE ↓"),
    ("sparseness", "Sp ↑"),
    ("relevance_mass", "GT mass ↑"),
    ("pointing_game", "Pointing ↑"),
    ("ms_per_frame", "ms/frame"),
    ("agent_passes_per_frame", "agent passes/frame"),
]


def _write_reports(cfg, ds, out: Path, results, grid_maps, x4, a4, agent, vmask) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [(k, h) for k, h in COLUMNS if any(k in r for r in results.values())]
    lines = [
        f"# Saliency methods on {ds.env}",
        "",
        f"{results[next(iter(results))]['n']} test states of `{cfg.data}` (seed {cfg.seed}); reference "
        f"`{vmask.reference!r}`; insertion/deletion with {cfg.insertion_steps} steps; LLE on {cfg.lle_n} states, "
        f"ε = {cfg.lle_eps}, N = {cfg.lle_neighbours}.",
        "",
        "| method | " + " | ".join(h for _, h in cols) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[k]:.3g}" if k in r else "–" for k, _ in cols) + " |")
    if ds.env == "MsPacman":
        lines += ["", "Paper Table 1, MsPacman (their agent, not ours): Acc / Del / Ins / LLE / Sp", ""]
        lines += [f"- {k}: " + " / ".join(map(str, v)) for k, v in PAPER_MSPACMAN.items()]
    if "relevant_area" in next(iter(results.values())):
        lines += [
            "",
            f"Relevant area (what a uniform map scores on GT mass): "
            f"{next(iter(results.values()))['relevant_area']:.2f}%. The `{GROUND_TRUTH}` row scores the env's "
            "relevant-pixel mask itself, a perfect explanation: insertion/deletion cannot separate methods "
            "that come within about a point of it.",
        ]
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
    (out / "report.md").write_text("\n".join(lines))
    (out / "results.json").write_text(json.dumps({"config": asdict(cfg), "results": results}, indent=1))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method"] + [k for k, _ in cols])
        for name, r in results.items():
            w.writerow([name] + [r.get(k, "") for k, _ in cols])

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, r in results.items():
        t = np.linspace(0, 1, len(r["insertion_curve"]))
        style = {"color": "k", "linestyle": "--"} if name == GROUND_TRUTH else {}
        axes[0].plot(t, r["insertion_curve"], label=name, **style)
        axes[1].plot(t, r["deletion_curve"], label=name, **style)
    for ax, title in zip(axes, ("insertion (higher is better)", "deletion (lower is better)"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("fraction of pixels")
        ax.set_ylabel("p(a)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=90)
    plt.close(fig)

    from vmask_live.render import blend

    frames = (x4[:, -1].numpy() * 255).astype(np.uint8)
    fig, axes = plt.subplots(len(frames), len(grid_maps) + 1, figsize=(1.6 * (len(grid_maps) + 1), 1.7 * len(frames)))
    axes = np.atleast_2d(axes)
    for i, f in enumerate(frames):
        rgb = np.repeat(f[..., None], 3, 2)
        axes[i, 0].imshow(rgb)
        axes[i, 0].set_title(vmask.action_names[int(a4[i])][:10] if i == 0 else "", fontsize=7)
        for j, (name, maps) in enumerate(grid_maps.items()):
            axes[i, j + 1].imshow(blend(rgb, maps[i], 0.7))
            if i == 0:
                axes[i, j + 1].set_title(name, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "grid.png", dpi=90)
    plt.close(fig)

    from vmask_live.overlay import overlay

    m = torch.from_numpy(grid_maps[next(iter(grid_maps))][:1])
    cf = overlay(x4[:1], 1 - m, vmask.reference(x4[:1]))
    with torch.inference_mode():
        before, after = int(agent(x4[:1]).argmax()), int(agent(cf).argmax())
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.3))
    axes[0].imshow(x4[0, -1], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title(f"state: agent picks {vmask.action_names[before]}", fontsize=8)
    axes[1].imshow(cf[0, -1], cmap="gray", vmin=0, vmax=1)
    axes[1].set_title(f"its region removed: agent picks {vmask.action_names[after]}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "counterfactual.png", dpi=90)
    plt.close(fig)

    keys = [("accuracy", False), ("deletion", True), ("insertion", False), ("lle", True), ("sparseness", False)]
    angles = np.linspace(0, 2 * np.pi, len(keys), endpoint=False).tolist()
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(polar=True)
    results = {k: v for k, v in results.items() if k != GROUND_TRUTH}
    for name, r in results.items():
        vals = []
        for k, lower_better in keys:
            col = np.array([rr[k] for rr in results.values()], float)
            lo, hi = col.min(), col.max()
            v = (r[k] - lo) / (hi - lo) if hi > lo else 1.0
            vals.append(1 - v if lower_better else v)
        ax.plot(angles + angles[:1], vals + vals[:1], label=name)
    ax.set_xticks(angles)
    ax.set_xticklabels(["Acc", "1-Del", "Ins", "1-LLE", "Sp"])
    ax.set_yticklabels([])
    ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.3, 0))
    fig.tight_layout()
    fig.savefig(out / "radar.png", dpi=90)
    plt.close(fig)
