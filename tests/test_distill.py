"""The rollout planner and its DAgger distillation (train-agent --algo distill), on real Ms. Pac-Man."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vmask_live.errors import ConfigError
from vmask_live.planner import PlannerSettings, RolloutPlanner, canonical_label, motion_actions

NAMES = ["NOOP", "UP", "RIGHT", "LEFT", "DOWN", "UPRIGHT", "UPLEFT", "DOWNRIGHT", "DOWNLEFT"]


def test_canonical_label_prefers_motion_then_lowest_non_noop():
    v = np.array([5.0, 5.0, 1.0, 5.0, 5.0, 0, 0, 0, 0])
    assert canonical_label(v, [3]) == 3  # LEFT is tied for best and is the motion
    assert canonical_label(v, [2, 4]) == 4  # RIGHT is not tied; DOWN is
    assert canonical_label(v, []) == 1  # no motion: the lowest non-NOOP tied action
    assert canonical_label(np.array([9.0, 1, 1]), [1]) == 0  # a strictly better NOOP wins
    assert canonical_label(np.array([5.0, 2.0, 4.0]), [2], tolerance=1.5) == 2  # within tolerance: tied


def test_motion_actions_directions_and_tunnel_wrap():
    box = (10.0, 10.0, 14.0, 14.0)
    assert motion_actions(box, (8.0, 10.0, 12.0, 14.0), NAMES) == [NAMES.index("LEFT")]
    assert motion_actions(box, (10.0, 13.0, 14.0, 17.0), NAMES) == [NAMES.index("DOWN")]
    # up and to the right, more right than up: the diagonal, then the larger axis first
    assert motion_actions(box, (13.0, 9.0, 17.0, 13.0), NAMES) == [5, 2, 1]
    assert motion_actions(box, box, NAMES) == []
    assert motion_actions(None, box, NAMES) == []
    # a jump across the screen is a wrap through the tunnel: still moving left
    assert motion_actions((1.0, 10.0, 5.0, 14.0), (79.0, 10.0, 83.0, 14.0), NAMES) == [NAMES.index("LEFT")]
    assert motion_actions(box, (8.0, 10.0, 12.0, 14.0), ["NOOP", "FIRE"]) == []  # no such action


def _pacman(seed: int = 3):
    from vmask_live.envs import make_env

    env = make_env("MsPacman")
    env.reset(seed=seed)
    for _ in range(80):  # past the start, where nothing moves yet
        env.step(3)
    return env


def test_planner_values_leave_the_game_untouched_and_are_seeded():
    planned, plain = _pacman(), _pacman()
    ale = planned.unwrapped.ale
    ram = ale.getRAM().copy()
    settings = PlannerSettings(rollouts=2, horizon=6)
    v1 = RolloutPlanner(planned, settings, seed=7).values()
    assert v1.shape == (9,) and np.isfinite(v1).all()
    np.testing.assert_array_equal(ale.getRAM(), ram)
    np.testing.assert_array_equal(RolloutPlanner(planned, settings, seed=7).values(), v1)
    # the game goes on exactly as if nobody had planned (observations and rewards)
    for action in (3, 3, 1, 1, 4, 2):
        a, b = planned.step(action), plain.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4]
    # a penalty that dwarfs the game's rewards shows wherever a rollout loses a life
    worse = RolloutPlanner(planned, PlannerSettings(rollouts=2, horizon=6, life_penalty=1e6), seed=7).values()
    same = RolloutPlanner(planned, settings, seed=7).values()
    assert (worse <= same).all()
    planned.close()
    plain.close()


def test_planner_refuses_a_non_ale_env():
    from vmask_live.envs import make_env

    env = make_env("Beacon")
    with pytest.raises(ConfigError, match="needs an ALE env"):
        RolloutPlanner(env)
    with pytest.raises(ConfigError, match="horizon"):
        RolloutPlanner(make_env("MsPacman"), PlannerSettings(horizon=0))


def _cfg(out, **kw):
    from vmask_live.distill import DistillConfig

    base = dict(
        out=str(out),
        rounds=2,
        states_per_round=24,
        chunk=12,
        workers=1,
        passes=2.0,
        batch_size=8,
        eval_episodes=0,
        planner=PlannerSettings(rollouts=1, horizon=3),
    )
    base.update(kw)
    return DistillConfig(**base)


def test_distill_rounds_resume_and_refusals(tmp_path):
    from vmask_live.agents import load_agent
    from vmask_live.distill import run_distill

    out = tmp_path / "run"
    path, scores = run_distill(_cfg(out), progress=False)
    assert scores == {}
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1]
    assert rows[0]["beta"] == 1.0 and rows[1]["beta"] == 0.5
    assert rows[1]["labels"] == 48 and "student_agreement" in rows[1]  # round 1: the student played
    assert sorted(p.name for p in (out / "data").iterdir()) == [f"r00{r}_c00{c}.npz" for r in (0, 1) for c in (0, 1)]
    agent = load_agent(path)
    assert agent.n_actions == 9 and agent.info["trained_by"].endswith("--algo distill")
    with np.load(out / "data" / "r000_c000.npz") as z:
        assert z["obs"].shape == (12, 4, 84, 84) and z["obs"].dtype == np.uint8
        assert z["values"].shape == (12, 9)
        np.testing.assert_array_equal(z["label"], z["executed"])  # round 0: the planner drives

    # the same folder again without --resume: refused, nothing deleted
    with pytest.raises(ConfigError, match="already holds another agent run"):
        run_distill(_cfg(out), progress=False)
    # resume with a changed label setting: refused
    with pytest.raises(ConfigError, match="horizon"):
        run_distill(_cfg(out, resume=True, planner=PlannerSettings(rollouts=1, horizon=4)), progress=False)
    # a lost chunk of a finished round is not relabelled; one more round only labels that round
    run_distill(_cfg(out, resume=True, rounds=3), progress=False)
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2] and rows[2]["labels"] == 72
    assert len(list((out / "data").iterdir())) == 6


def test_distill_refuses_an_env_without_an_emulator(tmp_path):
    from vmask_live.distill import run_distill

    with pytest.raises(ConfigError, match="needs an Atari env"):
        run_distill(_cfg(tmp_path / "b", env="Beacon"), progress=False)


def test_distill_resume_mid_round_counts_each_chunk_once(tmp_path):
    from vmask_live.distill import run_distill

    out = tmp_path / "run"
    run_distill(_cfg(out, rounds=1), progress=False)
    # a run stopped in round 1 after one of its chunks: the chunk is kept and used once
    (out / "data" / "r001_c000.npz").write_bytes((out / "data" / "r000_c000.npz").read_bytes())
    run_distill(_cfg(out, rounds=2, resume=True, states_per_round=36), progress=False)  # 3 chunks of 12
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["labels"] for r in rows] == [24, 24 + 36]
    assert len(list((out / "data").glob("r001_*.npz"))) == 3


def test_probe_skips_rollouts_only_while_the_game_ignores_input():
    from vmask_live.envs import make_env

    env = make_env("MsPacman")
    env.reset(seed=0)  # the start tune: Ms. Pac-Man cannot move yet
    ram = env.unwrapped.ale.getRAM().copy()
    probed = RolloutPlanner(env, PlannerSettings(rollouts=1, horizon=4, probe_steps=2), seed=0)
    np.testing.assert_array_equal(probed.values(), np.zeros(9))
    np.testing.assert_array_equal(env.unwrapped.ale.getRAM(), ram)
    moving = _pacman()
    settings = PlannerSettings(rollouts=2, horizon=6)
    want = RolloutPlanner(moving, settings, seed=1).values()
    got = RolloutPlanner(moving, PlannerSettings(rollouts=2, horizon=6, probe_steps=2), seed=1).values()
    np.testing.assert_array_equal(got, want)  # the rollouts ran, with the same random continuations
    assert np.ptp(want) > 0


def test_distill_init_starts_from_another_runs_student(tmp_path):
    import torch

    from vmask_live.agents import load_agent, save_agent
    from vmask_live.distill import run_distill
    from vmask_live.testing import tiny_agent

    first, _ = run_distill(_cfg(tmp_path / "a", rounds=1), progress=False)
    # lr 1e-12: the round's Adam steps leave the weights where --init put them
    second, _ = run_distill(_cfg(tmp_path / "b", rounds=1, init=str(first), lr=1e-12), progress=False)
    a, b = load_agent(first), load_agent(second)
    for (name, p), q in zip(a.module.state_dict().items(), b.module.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)
    # an agent of another kind is refused before any labelling
    other = save_agent(tmp_path / "beacon.safetensors", tiny_agent(), "small_cnn", {"in_channels": 1, "n_actions": 5})
    with pytest.raises(ConfigError, match="Expected a NatureCNN agent"):
        run_distill(_cfg(tmp_path / "c", rounds=1, init=str(other)), progress=False)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())  # no config.json left behind
    # nor does it touch a finished run that --overwrite would replace
    before = {f: f.read_bytes() for f in (tmp_path / "a").rglob("*") if f.is_file()}
    with pytest.raises(ConfigError, match="Expected a NatureCNN agent"):
        run_distill(_cfg(tmp_path / "a", rounds=1, init=str(other), overwrite=True), progress=False)
    assert {f: f.read_bytes() for f in (tmp_path / "a").rglob("*") if f.is_file()} == before
    # a resumed run whose own student was replaced by a foreign file says so, and how to go on
    import shutil

    shutil.copy(other, tmp_path / "a" / "student.safetensors")
    with pytest.raises(ConfigError, match="holds another run's student: pass another --out"):
        run_distill(_cfg(tmp_path / "a", rounds=2, resume=True), progress=False)


def test_distill_without_motion_preference_labels_the_lowest_tied_action(tmp_path):
    from vmask_live.distill import run_distill

    def labels(prefer_motion):
        out = tmp_path / f"run-{prefer_motion}"
        settings = PlannerSettings(rollouts=1, horizon=3, prefer_motion=prefer_motion)
        run_distill(_cfg(out, rounds=1, states_per_round=120, chunk=120, planner=settings), progress=False)
        with np.load(out / "data" / "r000_c000.npz") as z:
            return z["label"], [canonical_label(v) for v in z["values"]]

    got, lowest = labels(False)
    np.testing.assert_array_equal(got, lowest)
    got, lowest = labels(True)  # Ms. Pac-Man's motion wins some ties
    assert (got != np.asarray(lowest)).sum() >= 5


def test_distill_prefer_actions_wins_ties_and_unknown_names_are_refused(tmp_path):
    from vmask_live.distill import run_distill

    settings = PlannerSettings(rollouts=1, horizon=3, prefer_motion=False, prefer_actions="DOWNLEFT, LEFT")
    out = tmp_path / "run"
    run_distill(_cfg(out, rounds=1, states_per_round=120, chunk=120, planner=settings), progress=False)
    with np.load(out / "data" / "r000_c000.npz") as z:
        want = [canonical_label(v, [8, 3]) for v in z["values"]]
        np.testing.assert_array_equal(z["label"], want)
        assert (z["label"] == 8).sum() >= 20  # ties at the start of a game: DOWNLEFT, not UP
    with pytest.raises(ConfigError, match=r"prefer_actions.*\['FIRE'\]"):
        run_distill(_cfg(tmp_path / "b", planner=PlannerSettings(prefer_actions="FIRE")), progress=False)
    assert not (tmp_path / "b").exists()


def test_sigterm_stops_a_distill_run_without_running_the_rest_of_its_round(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    code = (
        "from vmask_live.distill import DistillConfig, run_distill\n"
        "from vmask_live.planner import PlannerSettings\n"
        f"cfg = DistillConfig(out={str(out)!r}, rounds=1, states_per_round=24000, chunk=12, workers=2, "
        "eval_episodes=0, planner=PlannerSettings(rollouts=1, horizon=3))\n"
        "if __name__ == '__main__':\n"
        "    run_distill(cfg, progress=False)\n"
    )
    script = tmp_path / "run.py"
    script.write_text(code)
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((out / "data").glob("*.npz")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert list((out / "data").glob("*.npz")), proc.stderr.read() if proc.poll() is not None else "no chunk in 120 s"
    proc.send_signal(signal.SIGTERM)  # the lead process only, as `kill PID` does
    try:
        proc.wait(timeout=30)  # the round's 2,000 chunks take minutes (~0.1 s each); queued ones must not run
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the run went on after SIGTERM") from None
    assert proc.returncode != 0 and "SIGTERM" in proc.stderr.read()
