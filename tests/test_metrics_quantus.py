"""Our sparseness and LLE against an independent implementation (Quantus 0.6.0, Hedström et al. 2023).

Quantus's outputs on fixed inputs are recorded in ``data/quantus_reference.json`` by
``data/make_quantus_reference.py`` (Quantus is not a dependency: it pulls the GUI opencv build).
When Quantus is importable the same comparison also runs live.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from vmask_live.metrics import lle, sparseness

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
import make_quantus_reference as ref  # noqa: E402

RECORDED = json.loads((DATA / "quantus_reference.json").read_text())


def _ours(inputs: dict) -> tuple[list[float], list[float]]:
    maps = torch.tensor(inputs["maps"], dtype=torch.float32)
    x, a = torch.tensor(inputs["x"]), torch.tensor(inputs["actions"])
    lle_scores = lle(ref.explain, x, a, eps=ref.EPS, n_neighbours=ref.N_NEIGHBOURS, seed=ref.SEED)
    return sparseness(maps).tolist(), lle_scores.tolist()


def test_inputs_are_the_recorded_ones():
    assert ref.cases() == RECORDED["inputs"]


def test_sparseness_and_lle_match_recorded_quantus():
    sp, lle_scores = _ours(RECORDED["inputs"])
    # Quantus adds 1e-7 to every attribution before the Gini index: agreement to ~1e-4 %.
    assert sp == pytest.approx(RECORDED["sparseness_percent"], abs=1e-3)
    assert lle_scores == pytest.approx(RECORDED["lle"], rel=1e-5)
    assert RECORDED["sparseness_percent"][1] == pytest.approx(100 * (144 - 6) / 144, abs=1e-3)  # one blob
    assert RECORDED["sparseness_percent"][2] == pytest.approx(0.0, abs=1e-6)  # uniform map


@pytest.mark.skipif(importlib.util.find_spec("quantus") is None, reason="Quantus not installed (see module doc)")
def test_sparseness_and_lle_match_live_quantus():
    live = ref.quantus_scores(ref.cases())
    sp, lle_scores = _ours(ref.cases())
    assert sp == pytest.approx(live["sparseness_percent"], abs=1e-3)
    assert lle_scores == pytest.approx(live["lle"], rel=1e-5)
