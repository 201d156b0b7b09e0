"""``evaluate``: settings checked up front, explainer/agent/dataset pairing, the per-method cache
keyed by what produced it, and evaluating straight from an env (bundled Beacon agent/explainer)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from vmask_live.errors import ConfigError, DatasetError, MissingExtraError, ObservationError, PairingError
from vmask_live.evaluate import EvaluateConfig, evaluate
from vmask_live.testing import tiny_agent, tiny_explainer

CHEAP = "visionmask,gradient"


@pytest.fixture(scope="module")
def beacon_states(tmp_path_factory):
    """1000 Beacon states collected by the bundled agent (about a second)."""
    from vmask_live.dataset import CollectConfig, collect

    out = tmp_path_factory.mktemp("states") / "beacon"
    cfg = CollectConfig(env="Beacon", agent="default:Beacon", out=str(out), steps=1000, seed=3)
    return collect(cfg, progress=False)


@pytest.fixture(scope="module")
def tiny_paths(tmp_path_factory):
    """An untrained agent and explainers: one that fits Beacon, one of another shape, one of another K."""
    from vmask_live.agents import save_agent
    from vmask_live.observations import ObsFormat

    d = tmp_path_factory.mktemp("tiny")
    kwargs = {"in_channels": 1, "n_actions": 5, "input_size": (84, 84), "width": 4}
    save_agent(d / "agent.safetensors", tiny_agent(), "small_cnn", kwargs)
    tiny_explainer().save(d / "fits.safetensors")
    tiny_explainer(obs_format=ObsFormat((4, 84, 84), "chw")).save(d / "shape.safetensors")
    tiny_explainer(n_actions=9).save(d / "k9.safetensors")
    return d


def _cfg(tmp_path, **kw) -> EvaluateConfig:
    kw.setdefault("methods", CHEAP)
    kw.setdefault("out", str(tmp_path / "eval"))
    return EvaluateConfig(**kw)


def _results(tmp_path) -> dict:
    return json.loads((tmp_path / "eval" / "results.json").read_text())["results"]


def test_bad_settings_reported_together_before_any_work(tmp_path):
    cfg = _cfg(tmp_path, data="d", agent="default:Beacon", n=0, lle_n=-1, rise_masks=0, lime_samples=0, ig_steps=0)
    cfg.methods = "visionmask,bogus"
    with pytest.raises(
        ConfigError,
        match=r"Invalid evaluate settings \(6\):\n  n: expected an integer >= 1 \(test states\), got 0\n"
        r"  lle_n: expected an integer >= 0 \(LLE states; 0 skips LLE\), got -1\n"
        r"  rise_masks: expected an integer >= 1 \(RISE masks\), got 0\n"
        r"  lime_samples: expected an integer >= 1 \(LIME samples\), got 0\n"
        r"  ig_steps: expected an integer >= 1 \(Integrated Gradients steps\), got 0\n"
        r"  methods: expected comma-separated names from visionmask, explainer, greydanus.*, or 'all', "
        r"got 'visionmask,bogus'; unknown: bogus$",
    ):
        evaluate(cfg, progress=False)
    with pytest.raises(
        ConfigError,
        match=r"data, env: expected exactly one source of test states, got both data='d' and env='Beacon'; pass",
    ):
        evaluate(_cfg(tmp_path, data="d", env="Beacon"), progress=False)
    with pytest.raises(
        ConfigError,
        match=r"data, env: expected a source of test states, got neither; pass a dataset folder .*\(--data DIR\) or an env",
    ):
        evaluate(_cfg(tmp_path), progress=False)
    with pytest.raises(
        ConfigError,
        match=r"explainer: expected an explainer trained for agent 'a.zip', got ''; pass --explainer.*only with",
    ):
        evaluate(_cfg(tmp_path, env="Beacon", agent="a.zip"), progress=False)
    with pytest.raises(
        ConfigError,
        match=r"stalder: expected a checkpoint trained with .*--loss-kind stalder.* \(method 'explainer' needs it\), "
        r"got None; pass --stalder",
    ):
        evaluate(_cfg(tmp_path, env="Beacon", methods="visionmask,explainer"), progress=False)
    assert not (tmp_path / "eval").exists()


def test_missing_extra_named_before_any_work(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("captum", "sklearn") else real(name, *a)
    )
    with pytest.raises(
        MissingExtraError,
        match=r"Methods lime, gradient, gradcam, integrated_gradients need captum, scikit-learn, which are not "
        r'installed; run `pip install "vmask-live\[baselines\]"`',
    ):
        evaluate(_cfg(tmp_path, env="Beacon", methods="all", n=1), progress=False)
    assert not (tmp_path / "eval").exists()


def test_explainer_that_does_not_fit_is_refused_up_front(tmp_path, beacon_states, tiny_paths):
    data = str(beacon_states.path)
    with pytest.raises(ObservationError, match=r"expected 1x84x84, got 4x84x84.*pass the explainer trained for"):
        evaluate(
            _cfg(tmp_path, data=data, agent="default:Beacon", explainer=str(tiny_paths / "shape.safetensors")),
            progress=False,
        )
    with pytest.raises(PairingError, match=r"expected K = 5, got K = 9"):
        evaluate(
            _cfg(tmp_path, data=data, agent="default:Beacon", explainer=str(tiny_paths / "k9.safetensors")),
            progress=False,
        )


def test_dataset_of_another_agent_is_refused(tmp_path, beacon_states, tiny_paths):
    cfg = _cfg(
        tmp_path,
        data=str(beacon_states.path),
        agent=str(tiny_paths / "agent.safetensors"),
        explainer=str(tiny_paths / "fits.safetensors"),
        allow_mismatch=True,
    )
    with pytest.raises(
        DatasetError,
        match=r"was collected with agent \w+ \(default:Beacon\), but the given agent .* hashes to \w+: its actions .*"
        r"`vmask-live evaluate --env Beacon --agent .*agent.safetensors",
    ):
        evaluate(cfg, progress=False)


def test_pairing_mismatch_refused_unless_allowed(tmp_path, tiny_paths):
    cfg = _cfg(
        tmp_path,
        env="Beacon",
        agent=str(tiny_paths / "agent.safetensors"),
        explainer="default:Beacon",
        methods="visionmask",
        n=2,
        lle_n=1,
        play_steps=200,
    )
    with pytest.raises(PairingError, match=r"(?s)was trained for agent \w+.*hashes to .*--allow-mismatch"):
        evaluate(cfg, progress=False)
    assert not (tmp_path / "eval").exists()
    cfg.allow_mismatch = True
    evaluate(cfg, progress=False)
    assert "| visionmask |" in (tmp_path / "eval" / "report.md").read_text()


def test_cache_reused_only_for_exactly_the_same_run(tmp_path, beacon_states, tiny_paths, caplog, monkeypatch):
    cfg = _cfg(tmp_path, data=str(beacon_states.path), agent="default:Beacon", explainer="default:Beacon", n=4)
    evaluate(cfg, progress=False)
    report = (tmp_path / "eval" / "report.md").read_text()
    # lle_n = 50 asks for more states than n: the header states the count actually used
    assert "4 test states" in report and "LLE on 4 states, ε = 0.05, N = 10 (asked for 50)" in report
    cached = tmp_path / "eval" / "methods" / "visionmask.json"

    def plant() -> None:  # a marker value that only a reused cache can report
        d = json.loads(cached.read_text())
        d["result"]["accuracy"] = 12345.0
        cached.write_text(json.dumps(d))

    plant()
    evaluate(cfg, progress=False)
    assert _results(tmp_path)["visionmask"]["accuracy"] == 12345.0
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "Reused from `methods/`, computed by an earlier run" in report and "visionmask (20" in report

    plant()
    cfg.n = 6
    with caplog.at_level(logging.WARNING, logger="vmask_live.evaluate"):
        evaluate(cfg, progress=False)
    res = _results(tmp_path)
    assert res["visionmask"]["n"] == 6 and res["visionmask"]["accuracy"] != 12345.0 and res["gradient"]["n"] == 6
    assert "visionmask.json is stale: it was computed with" in caplog.text and "n=4 (now 6)" in caplog.text

    plant()
    cfg.explainer, cfg.allow_mismatch = str(tiny_paths / "fits.safetensors"), True
    evaluate(cfg, progress=False)
    assert _results(tmp_path)["visionmask"]["accuracy"] != 12345.0

    # another explainer with the same reference: only the methods that run it are recomputed
    import torch

    from vmask_live.explainer import Explainer

    other = Explainer.load("default:Beacon")

    def nudge_explainer() -> None:  # new weights, the same reference
        with torch.no_grad():
            for p in other.net.parameters():
                p.add_(0.01)
        other.save(tmp_path / "other.safetensors")

    nudge_explainer()
    cfg.explainer, cfg.allow_mismatch = str(tmp_path / "other.safetensors"), False
    evaluate(cfg, progress=False)
    plant()
    gradient = tmp_path / "eval" / "methods" / "gradient.json"
    g = json.loads(gradient.read_text())
    g["result"]["accuracy"] = 54321.0
    gradient.write_text(json.dumps(g))
    nudge_explainer()
    evaluate(cfg, progress=False)
    assert _results(tmp_path)["visionmask"]["accuracy"] != 12345.0
    assert _results(tmp_path)["gradient"]["accuracy"] == 54321.0
    # a change of a method's code (its registry version) makes its cached maps stale
    from dataclasses import replace

    from vmask_live.methods import METHODS

    monkeypatch.setitem(METHODS, "gradient", replace(METHODS["gradient"], version=METHODS["gradient"].version + 1))
    evaluate(cfg, progress=False)
    assert _results(tmp_path)["gradient"]["accuracy"] != 54321.0

    cached.write_text(json.dumps({**_results(tmp_path)["visionmask"], "accuracy": 12345.0}))  # an older cache file
    evaluate(cfg, progress=False)
    assert _results(tmp_path)["visionmask"]["accuracy"] != 12345.0


def test_evaluate_straight_from_env_with_bundled_models(tmp_path):
    cfg = _cfg(tmp_path, env="beacon", n=4, lle_n=0)
    report = evaluate(cfg, progress=False).read_text()
    assert "| visionmask |" in report and "| gradient |" in report and "| ground truth (ceiling) |" in report
    # the registry's display names and cost notes explain the rows
    assert "- `gradient`: Vanilla gradient; 1 agent forward + backward pass per frame" in report
    assert "states `default:beacon` visited playing Beacon" in report and "LLE not computed" in report
    assert "## Objects" not in report  # Beacon has no object annotator: no object metrics
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["resolved"]["explainer"] == "default:beacon"
    manifest = tmp_path / "eval" / "states" / "manifest.json"
    assert json.loads(manifest.read_text())["n_samples"] == 2000
    before = manifest.stat().st_mtime_ns
    evaluate(cfg, progress=False)  # a rerun reuses the played states
    assert manifest.stat().st_mtime_ns == before


def test_cli_evaluate_from_env_and_source_errors(tmp_path):
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "OMP_NUM_THREADS": "1"}

    def cli(*args):
        cmd = [sys.executable, "-m", "vmask_live.cli", "evaluate", *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    out = tmp_path / "eval"
    proc = cli("--env", "Beacon", "--n", "2", "--lle-n", "1", "--play-steps", "200", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "| visionmask |" in (out / "report.md").read_text()
    proc = cli("--env", "Beacon", "--data", str(tmp_path), "--out", str(out))
    assert proc.returncode == 2 and "got both data=" in proc.stderr and "Traceback" not in proc.stderr


def test_report_breaks_the_explainer_down_by_action_and_warns_of_empty_maps(tmp_path, beacon_states, caplog):
    """An explainer that keeps nothing for one action (the reference alone yields it) scores well
    overall; the per-action table shows it and the report warns, naming the action."""
    import torch

    from vmask_live.explainer import Explainer

    cfg = _cfg(tmp_path, data=str(beacon_states.path), agent="default:Beacon", explainer="default:Beacon")
    cfg.methods, cfg.n, cfg.lle_n = "visionmask", 60, 0
    evaluate(cfg, progress=False)
    res = _results(tmp_path)["visionmask"]
    rows = res["by_action"]
    assert sum(r["n"] for r in rows.values()) == res["n"] >= 20  # the dataset's test split: 25 states
    assert all(r["empty_maps"] == 0 for r in rows.values())  # the bundle: no empty maps
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "### VisionMask by the chosen action" in report and "Warning" not in report
    # Beacon's empty screen yields NOOP: the report says so for every NOOP state, and for no other action
    picks = json.loads((tmp_path / "eval" / "results.json").read_text())["reference_picks"]
    assert picks.keys() == rows.keys() and picks["0"] == 100 and all(v == 0 for k, v in picks.items() if k != "0")
    assert "- NOOP: 100%, RIGHT: 0%" in report and "Deleting pixels moves a state toward the reference" in report

    common = max(rows, key=lambda k: rows[k]["n"])
    exp = Explainer.load("default:Beacon")
    with torch.no_grad():
        exp.net.refine[2].bias[int(common)] -= 100.0  # that action's maps: sigmoid(-100) = 0
    exp.save(tmp_path / "empty.safetensors")
    cfg.explainer = str(tmp_path / "empty.safetensors")
    with caplog.at_level(logging.WARNING, logger="vmask_live.evaluate"):
        evaluate(cfg, progress=False)
    rows = _results(tmp_path)["visionmask"]["by_action"]
    assert rows[common]["empty_maps"] == 100 and rows[common]["map_area"] < 0.01
    assert all(r["empty_maps"] == 0 for k, r in rows.items() if k != common)
    name = exp.action_names[int(common)]
    n = rows[common]["n"]
    warning = f"the maps of {name} ({n} of {n} states) are empty"
    assert warning in (tmp_path / "eval" / "report.md").read_text().replace("**", "")
    assert f"the maps of {name} ({n} of {n} states) are empty" in caplog.text
