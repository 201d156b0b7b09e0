"""Entry points run as subprocesses with tiny sizes (CleanRL style)."""

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "SDL_VIDEODRIVER": "dummy", "OMP_NUM_THREADS": "1"}


def run(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "vmask_live.cli", *args], capture_output=True, text=True, env=ENV, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"vmask-live {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_envs_lists_names():
    out = run("envs").stdout
    assert "Beacon" in out and "MsPacman" in out


def test_collect_train_evaluate_export_info(beacon_agent, tmp_path):
    agent_path = str(beacon_agent[2])
    data, runs, report = tmp_path / "data", tmp_path / "run", tmp_path / "eval"
    run(
        "collect",
        "--env",
        "Beacon",
        "--agent",
        agent_path,
        "--out",
        str(data),
        "--steps",
        "1200",
        "--shard-size",
        "500",
        "--n-envs",
        "8",
    )
    assert json.loads((data / "manifest.json").read_text())["n_samples"] == 1200
    run(
        "train",
        "--data",
        str(data),
        "--agent",
        agent_path,
        "--out",
        str(runs),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "3",
        "--batch-size",
        "8",
        "--width",
        "4",
    )
    ckpt = runs / "explainer.safetensors"
    assert ckpt.exists()
    meta = json.loads(run("info", str(ckpt)).stdout)
    assert meta["n_actions"] == 5 and meta["reference"]["kind"] == "background"
    run(
        "evaluate",
        "--data",
        str(data),
        "--agent",
        agent_path,
        "--explainer",
        str(ckpt),
        "--methods",
        "visionmask,greydanus",
        "--n",
        "8",
        "--out",
        str(report),
    )
    text = (report / "report.md").read_text()
    assert "| visionmask |" in text and "| greydanus |" in text
    ceiling = json.loads((report / "results.json").read_text())["results"]["ground truth (ceiling)"]
    assert ceiling["relevance_mass"] == 100.0 and ceiling["pointing_game"] == 100.0
    for png in ("curves.png", "grid.png", "counterfactual.png", "radar.png"):
        assert (report / png).stat().st_size > 1000
    out = run("export", "--explainer", str(ckpt), "--backend", "onnx").stderr
    assert ".onnx" in out and list(runs.glob("*.onnx.json"))


def test_errors_are_one_line_messages(tmp_path):
    proc = run("play", "--env", "Nope", check=False)
    assert proc.returncode == 2 and "Unknown env 'Nope'" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    proc = run(
        "record",
        "--env",
        "Beacon",
        "--explainer",
        str(bad),
        "--agent",
        str(bad),
        "--out",
        str(tmp_path / "x.mp4"),
        check=False,
    )
    assert proc.returncode == 2 and "corrupt or truncated" in proc.stderr
    proc = run("export", "--explainer", str(bad), "--backend", "tensorrt", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_train_agent_bc_cli_writes_an_agent_and_never_overwrites_one(tmp_path):
    path = tmp_path / "a.safetensors"
    # 500 states and 2 epochs cannot clone the expert perfectly: both attempts miss the bar, so the
    # command fails, and the better attempt is kept for inspection instead of passing for a trained agent
    proc = run(
        "train-agent",
        "--env",
        "Beacon",
        "--algo",
        "bc",
        "--steps",
        "500",
        "--epochs",
        "2",
        "--min-agreement",
        "1.0",
        "--restarts",
        "1",
        "--out",
        str(path),
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "has not learned the task" in proc.stderr and "below --min-agreement 100.0%, after 2 attempts" in proc.stderr
    meta = json.loads(run("info", str(path)).stdout)
    assert meta["format"] == "agent" and meta["arch"] == "keypoint_cnn" and meta["n_actions"] == 5
    metrics = meta["info"]["metrics"]
    assert [a["seed"] for a in metrics["attempts"]] == [0, 1000] and not metrics["reached_min_agreement"]
    assert metrics["heldout_agreement"] == max(a["heldout_agreement"] for a in metrics["attempts"])
    assert meta["arch_kwargs"]["keypoints"] == 8
    again = run("train-agent", "--env", "Beacon", "--algo", "bc", "--steps", "500", "--out", str(path), check=False)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.slow  # MsPacman PPO + a full-game evaluation: ~20 s here, game length set by the agent
def test_train_agent_ppo_tiny_run_exports_and_evaluates(tmp_path):
    out = tmp_path / "ppo"
    run(
        "train-agent",
        "--env",
        "MsPacman",
        "--algo",
        "ppo",
        "--steps",
        "256",
        "--n-envs",
        "2",
        "--eval-episodes",
        "1",
        "--out",
        str(out),
    )
    meta = json.loads(run("info", str(out / "agent.safetensors")).stdout)
    assert meta["arch"] == "nature_cnn" and meta["n_actions"] == 9
    assert meta["info"]["eval"]["deterministic"]["episodes"] == 1 and meta["info"]["num_timesteps"] >= 256


def test_ablate_runs_a_group_and_writes_the_table(beacon_agent, beacon_data, tmp_path):
    base = json.dumps({"width": 4, "batch_size": 8, "epochs": 1, "steps_per_epoch": 2, "val_samples": 16})
    run(
        "ablate",
        "--data",
        str(beacon_data.path),
        "--agent",
        str(beacon_agent[2]),
        "--out",
        str(tmp_path),
        "--groups",
        "architecture",
        "--base",
        base,
        "--n",
        "16",
    )
    table = (tmp_path / "ablation.md").read_text()
    assert "| architecture | fcn |" in table and "GT mass" in table


def _invoke(*args):
    """In-process CLI call (fast) returning click's Result; stdout and stderr together."""
    from typer.testing import CliRunner

    from vmask_live.cli import app

    return CliRunner().invoke(app, list(args))


def test_user_errors_are_one_line_and_bugs_keep_their_traceback(tmp_path, monkeypatch):
    import torch

    empty, pickled = tmp_path / "empty.safetensors", tmp_path / "model.pt"
    empty.touch()
    torch.save({"w": torch.zeros(2)}, pickled)
    for path, message in [
        (empty, "Cannot read .* as a safetensors checkpoint"),
        (pickled, "pickled torch files are never loaded"),
        (tmp_path, "Expected a checkpoint file, got the folder"),
        (tmp_path / "nope.safetensors", "does not exist"),
    ]:
        res = _invoke("info", str(path))
        assert res.exit_code == 2, res.output
        import re

        lines = [line for line in res.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and re.search(message, lines[0]), res.output
    res = _invoke("--debug", "info", str(empty))
    assert res.exit_code != 2 and type(res.exception).__name__ == "CheckpointError"  # --debug: the traceback

    def bug(*_args, **_kw):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr("vmask_live.checkpoint.read_meta", bug)
    res = _invoke("info", str(empty))
    assert isinstance(res.exception, RuntimeError) and "error:" not in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("train", "--data", "nowhere", "--agent", "default:Beacon", "--batch-size", "-4"),
            "batch_size: expected an integer >= 1, got -4",
        ),
        (
            ("train", "--data", "nowhere", "--agent", "default:Beacon", "--batch-size", "0"),
            "batch_size: expected an integer >= 1, got 0",
        ),
        (("collect", "--env", "Beacon", "--agent", "default:Beacon", "--out", "{tmp}/d", "--n-envs", "0"), "n_envs"),
        (
            ("collect", "--env", "Beacon", "--agent", "default:Beacon", "--out", "{tmp}/d", "--shard-size", "0"),
            "shard_size",
        ),
        (
            ("record", "--env", "Beacon", "--out", "{tmp}/x.mp4", "--max-steps", "-1"),
            "max_steps: expected an integer >= 1 or None",
        ),
        (
            ("evaluate", "--data", "nowhere", "--agent", "default:Beacon", "--explainer", "default:Beacon", "--n", "0"),
            "n",
        ),
    ],
)
def test_bad_numeric_options_fail_before_any_work(args, message, tmp_path):
    res = _invoke(*(a.format(tmp=tmp_path) for a in args))
    assert res.exit_code == 2 and res.output.startswith("error:") and message in res.output, res.output
    assert not (tmp_path / "d").exists() and not (tmp_path / "x.mp4").exists()


def test_play_with_own_agent_and_no_explainer_is_refused(tmp_path):
    from vmask_live.agents import save_agent
    from vmask_live.testing import tiny_agent

    kw = {"in_channels": 1, "n_actions": 5, "input_size": [84, 84], "width": 4}
    path = save_agent(tmp_path / "mine.safetensors", tiny_agent(), "small_cnn", kw)
    res = _invoke("play", "--env", "Beacon", "--agent", str(path), "--max-steps", "2", "--backend", "torch")
    assert res.exit_code == 2 and "without --explainer" in res.output and "vmask-live train" in res.output, res.output
    res = _invoke("export", "--explainer", "default:Beacon", "--agent", str(path), "--out", str(tmp_path / "x.onnx"))
    assert res.exit_code == 2 and "trained for agent" in res.output, res.output


def test_play_with_own_explainer_and_no_agent_says_the_bundled_agent_was_used(tmp_path):
    from vmask_live.testing import tiny_explainer

    exp = tiny_explainer()  # explains tiny_agent(), not the bundled Beacon agent
    exp.meta["train_config"] = {"agent": "runs/mine/agent.safetensors"}
    path = exp.save(tmp_path / "mine.safetensors")
    res = _invoke("play", "--env", "Beacon", "--explainer", str(path), "--max-steps", "2", "--backend", "torch")
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and "without --agent, so the bundled Beacon agent was used" in out, res.output
    assert "(it was trained for runs/mine/agent.safetensors)" in out, res.output


def test_record_never_replaces_a_video_unless_asked(tmp_path):
    out = tmp_path / "old.mp4"
    out.write_bytes(b"an earlier video")
    res = _invoke("record", "--env", "Beacon", "--out", str(out), "--max-steps", "2", "--backend", "torch")
    assert res.exit_code == 2 and "already exists; pass --overwrite" in res.output, res.output
    assert out.read_bytes() == b"an earlier video"
    res = _invoke(
        "record", "--env", "Beacon", "--out", str(out), "--max-steps", "2", "--backend", "torch", "--overwrite"
    )
    assert res.exit_code == 0 and out.read_bytes() != b"an earlier video", res.output
