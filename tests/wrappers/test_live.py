import os

import cv2
import numpy as np
import pytest

from vmask_live.testing import tiny_agent, tiny_explainer
from vmask_live.wrappers.live import LiveConfig, NoDisplayError, play, record


def test_headless_play_draws_the_overlay(monkeypatch, tmp_path):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    cfg = LiveConfig(env="Beacon", fps=0, max_steps=12, scale=2, seed=0)
    keys = [(2, "c"), (4, "f"), (6, "2"), (8, "o"), (9, "o"), (10, "s"), (3, "space"), (4, "space")]
    stats = play(cfg, agent=tiny_agent(), explainer=tiny_explainer(), keys=keys, out_dir=tmp_path)
    assert stats["steps"] == 12 - 1 or stats["steps"] == 12
    surf = stats["surface"]
    assert surf.shape[0] == 336 * 2 and surf.shape[1] > 336 * 2  # scaled frame + side panel
    assert len(stats["screenshots"]) == 1 and os.path.exists(stats["screenshots"][0])
    # the displayed frame with the overlay differs from the raw render where saliency is high
    from vmask_live.wrappers.live import LiveSession

    s = LiveSession(cfg, tiny_agent(), tiny_explainer())
    s.reset()
    raw = cv2.resize(s.env.env.render(), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    shown = s.frame()[:, : raw.shape[1]]
    a = int(np.argmax(s.info["action_probs"]))
    m = cv2.resize(s.info["saliency"][a], raw.shape[1::-1])
    diff = np.abs(shown.astype(int) - raw.astype(int)).sum(-1)
    hi, lo = m >= np.quantile(m, 0.9), m <= np.quantile(m, 0.1)
    assert diff[hi].mean() > diff[lo].mean() + 5


def test_no_display_message_points_to_record(monkeypatch):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(NoDisplayError, match="vmask-live record"):
        play(LiveConfig(env="Beacon", max_steps=2), agent=tiny_agent(), explainer=tiny_explainer())


def test_record_writes_a_readable_video(tmp_path):
    out = tmp_path / "run.mp4"
    stats = record(
        LiveConfig(env="Beacon", max_steps=20, scale=1),
        out,
        agent=tiny_agent(),
        explainer=tiny_explainer(),
        progress=False,
    )
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == stats["frames"] == 21
    assert frames[0].shape[0] == 336 and frames[0].shape[1] > 336
    assert all(f.std() > 5 for f in frames)


def test_record_rejects_unwritable_paths(tmp_path):
    with pytest.raises(OSError, match="does not exist"):
        record(
            LiveConfig(env="Beacon", max_steps=2),
            tmp_path / "nope" / "x.mp4",
            agent=tiny_agent(),
            explainer=tiny_explainer(),
            progress=False,
        )
    with pytest.raises(ValueError, match=".mp4"):
        record(
            LiveConfig(env="Beacon", max_steps=2),
            tmp_path / "x.gif",
            agent=tiny_agent(),
            explainer=tiny_explainer(),
            progress=False,
        )


def test_recorder_finalises_on_exception(tmp_path):
    from vmask_live.wrappers.recording import VideoRecorder

    out = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError):
        with VideoRecorder(out, 10) as rec:
            for _ in range(5):
                rec.write(np.full((64, 80, 3), 128, np.uint8))
            raise RuntimeError("boom")
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


def test_bad_settings_are_refused_before_anything_runs(tmp_path):
    from vmask_live.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"episodes: expected an integer >= 1, got 0; max_steps: expected None \(whole episodes\) or an integer >= 1, got -1"
    ):
        record(LiveConfig(env="Beacon", max_steps=-1, episodes=0), tmp_path / "x.mp4", progress=False)
    assert not (tmp_path / "x.mp4").exists()


def test_own_agent_without_explainer_never_falls_back_to_the_bundled_explainer():
    from vmask_live.errors import PairingError
    from vmask_live.wrappers.live import LiveSession

    with pytest.raises(
        PairingError, match="(?s)without --explainer.*bundled Beacon explainer belongs to the bundled agent"
    ):
        LiveSession(LiveConfig(env="Beacon", backend="torch"), agent=tiny_agent())
    LiveSession(LiveConfig(env="Beacon", backend="torch")).close()  # the bundled pair itself is fine


def test_sigterm_during_record_leaves_a_playable_video(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "term.mp4"
    code = (
        "from vmask_live.testing import tiny_agent, tiny_explainer\n"
        "from vmask_live.wrappers.live import LiveConfig, record\n"
        f"record(LiveConfig(env='Beacon', episodes=10**6, scale=1, fps=0), {str(out)!r}, "
        "agent=tiny_agent(), explainer=tiny_explainer(), progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not out.exists():  # the writer opens the file with the first frame
        time.sleep(0.2)
    time.sleep(3)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "SIGTERM" in err
    cap = cv2.VideoCapture(str(out))
    ok, frame = cap.read()
    assert ok and frame.shape[0] == 84 * 4 and cap.get(cv2.CAP_PROP_FRAME_COUNT) > 5
