"""Regenerate ``quantus_reference.json``: Quantus's Sparseness and LocalLipschitzEstimate on fixed inputs.

Quantus is not a project dependency (it requires the GUI ``opencv-python``, which clashes with our
``opencv-python-headless``), so its outputs are recorded here and ``tests/test_metrics_quantus.py``
compares ours against them (and against a live Quantus when one is importable). To regenerate::

    python -m venv --system-site-packages /tmp/qenv
    /tmp/qenv/bin/pip install --no-deps quantus==0.6.0 && /tmp/qenv/bin/pip install pandas scikit-image cachetools
    /tmp/qenv/bin/python tests/data/make_quantus_reference.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

EPS, N_NEIGHBOURS, SEED = 0.05, 6, 0


def cases() -> dict:
    """The fixed inputs (plain lists so the JSON is self-contained)."""
    rng = np.random.default_rng(0)
    maps = rng.random((5, 12, 12)) ** 4  # skewed, like saliency
    maps[1] = 0.0
    maps[1, 3:5, 6:9] = 1.0  # one compact blob
    maps[2] = 0.5  # uniform: Gini 0
    x = rng.random((3, 2, 8, 8)).astype(np.float32)
    return {"maps": maps.tolist(), "x": x.tolist(), "actions": [0, 2, 1]}


def explain(x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """A fixed, smooth, non-linear 'explainer' (B, C, H, W) -> (B, H, W) for the LLE cases."""
    return torch.sigmoid(4 * x.mean(1) ** 2 - 1 + 0.5 * actions.view(-1, 1, 1).to(x.dtype))


def neighbours(x: torch.Tensor) -> torch.Tensor:
    """The neighbours ``vmask_live.metrics.lle`` draws for seed ``SEED`` (B, N, C, H, W)."""
    g = torch.Generator(device="cpu").manual_seed(SEED)
    noise = (torch.rand((x.shape[0], N_NEIGHBOURS, *x.shape[1:]), generator=g) * 2 - 1) * EPS
    return (x.unsqueeze(1) + noise).clamp(0, 1)


def quantus_scores(c: dict) -> dict:
    import quantus
    from quantus.functions.similarity_func import distance_euclidean

    maps = np.asarray(c["maps"], dtype=np.float64)
    sp = quantus.Sparseness(abs=True, normalise=False, disable_warnings=True)
    sparseness = sp(model=None, x_batch=maps[:, None], y_batch=np.zeros(len(maps), int), a_batch=maps[:, None].copy())

    x = torch.tensor(c["x"])
    a = torch.tensor(c["actions"])
    xn = neighbours(x)
    step = iter(range(N_NEIGHBOURS))

    def replay(arr, indices, **kw):  # Quantus draws one neighbour per step for the whole batch
        return xn[:, next(step)].reshape(arr.shape).numpy()

    def explain_func(model, inputs, targets, **kw):
        return explain(torch.as_tensor(inputs), torch.as_tensor(targets)).numpy()[:, None]

    lle = quantus.LocalLipschitzEstimate(
        nr_samples=N_NEIGHBOURS,
        perturb_func=replay,
        norm_numerator=distance_euclidean,
        norm_denominator=distance_euclidean,
        normalise=False,
        abs=False,
        disable_warnings=True,
    )
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 3))
    lle_scores = lle(
        model=model,
        x_batch=x.numpy(),
        y_batch=a.numpy(),
        a_batch=explain(x, a).numpy()[:, None],
        explain_func=explain_func,
        device="cpu",
    )
    return {
        "quantus_version": quantus.__version__,
        "sparseness_percent": [100 * float(v) for v in sparseness],
        "lle": [float(v) for v in lle_scores],
        "eps": EPS,
        "n_neighbours": N_NEIGHBOURS,
        "seed": SEED,
    }


if __name__ == "__main__":
    c = cases()
    out = Path(__file__).with_name("quantus_reference.json")
    out.write_text(json.dumps({**quantus_scores(c), "inputs": c}, indent=None))
    print(out, json.dumps(quantus_scores(c))[:300])
