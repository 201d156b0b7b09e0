import os

import cv2
import numpy as np
import pytest

from vmask_live.testing import tiny_agent, tiny_explainer
from vmask_live.wrappers.live_app import LiveConfig, NoDisplayError, play, record


def _up(img: np.ndarray, scale: int = 2) -> np.ndarray:
    """Nearest-neighbour upscaling, as the live window scales the game frame."""
    return img.repeat(scale, 0).repeat(scale, 1)


def test_headless_play_applies_each_key_to_the_view_and_the_frame(monkeypatch, tmp_path):
    import dataclasses

    import vmask_live.wrappers.live_app as live
    from vmask_live.render import blend, contrast_map

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    shots = []  # one per displayed frame: (steps, view, paused, frame, raw render, maps, probs, model obs)

    class RecordingSession(live.LiveSession):
        def frame(self, fps=None):
            out = super().frame(fps)
            obs = self.env.obs_format.to_model(self.env.last_obs[None])[0, -1].numpy()
            shots.append(
                (
                    self.steps,
                    dataclasses.replace(self.view),
                    self.paused,
                    out.copy(),
                    self.env.env.render().copy(),
                    self.info["saliency"].copy(),
                    self.info["action_probs"].copy(),
                    obs,
                )
            )
            return out

    monkeypatch.setattr(live, "LiveSession", RecordingSession)
    cfg = LiveConfig(env="Beacon", fps=0, max_steps=12, scale=2, seed=0)
    keys = [(2, "c"), (4, "f"), (6, "2"), (8, "o"), (9, "o"), (10, "s"), (3, "space"), (4, "space")]
    # seed 5: the untrained maps are nearly flat, and only with some seeds does the chosen action's map
    # (4) exceed the runner-up's (0), so that the contrast view has something to draw
    stats = play(cfg, agent=tiny_agent(5), explainer=tiny_explainer(5), keys=keys, out_dir=tmp_path)

    # one step per tick except the paused tick 3; max_steps ends the run, not the (longer) episode
    assert stats["steps"] == 12 and stats["frames"] == 13 and stats["episodes"] == 0
    assert len(shots) == 1 + 13  # the first frame, then one per tick
    at = dict(enumerate(shots[1:]))  # tick -> what was displayed after that tick's keys and step
    assert [at[t][0] for t in range(13)] == [1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert [t for t in range(13) if at[t][2]] == [3]  # space pauses at tick 3, space resumes at tick 4

    def view(t):
        v = at[t][1]
        return v.mode, v.action, v.overlay

    expected_views = {0: ("action", None, True), 2: ("contrast", None, True), 4: ("counterfactual", None, True)}
    expected_views.update({6: ("action", 1, True), 8: ("action", 1, False), 9: ("action", 1, True)})
    current = expected_views[0]
    for t in range(13):
        current = expected_views.get(t, current)
        assert view(t) == current, t

    for t in range(13):
        _, v, _, out, raw, maps, probs, obs = at[t]
        h, w = raw.shape[:2]
        assert out.shape[0] == 2 * h and out.shape[1] > 2 * w  # scaled frame + side panel
        game = out[:, : 2 * w]
        chosen = int(np.argmax(probs))
        if not v.overlay:  # "o": the game area is exactly the raw render
            assert np.array_equal(game, _up(raw)), t
            continue
        assert not np.array_equal(game, _up(raw)), t
        if v.mode == "contrast":  # "c": why the chosen action and not the runner-up
            runner_up = int(np.argsort(-probs)[1])
            assert np.array_equal(game, _up(blend(raw, contrast_map(maps, chosen, runner_up), v.alpha))), t
        elif v.mode == "counterfactual":  # "f": grey state with the chosen map's region set to the black reference
            cf = (np.clip(obs * (1 - maps[chosen]), 0, 1) * 255).astype(np.uint8)
            want = cv2.resize(cf, (w, h), interpolation=cv2.INTER_NEAREST)
            assert np.array_equal(game[..., 0], game[..., 1]) and np.array_equal(game[..., 0], game[..., 2]), t
            assert np.abs(game[..., 0].astype(int) - _up(want).astype(int)).max() <= 1, t
        else:  # "2" selects action 1's map, otherwise the chosen action's
            shown = chosen if v.action is None else v.action
            assert np.array_equal(game, _up(blend(raw, maps[shown], v.alpha))), t
            if v.action is not None:  # the selected map is not the chosen action's, so the key shows
                assert not np.array_equal(game, _up(blend(raw, maps[chosen], v.alpha))), t

    # "s" at tick 10 saves the frame on screen then (tick 9's); the window shows the last frame
    assert len(stats["screenshots"]) == 1 and os.path.exists(stats["screenshots"][0])
    assert np.array_equal(cv2.imread(stats["screenshots"][0])[..., ::-1], at[9][3])
    assert np.array_equal(stats["surface"], at[12][3])


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
    assert not (tmp_path / ".run.partial.mp4").exists()  # finished: moved to out
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
    from vmask_live.wrappers.video_writer import VideoRecorder

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
        ConfigError,
        match=r"Invalid play/record settings \(2\):\n  episodes: expected an integer >= 1, got 0\n"
        r"  max_steps: expected an integer >= 1 or None \(None: whole episodes\), got -1$",
    ):
        record(LiveConfig(env="Beacon", max_steps=-1, episodes=0), tmp_path / "x.mp4", progress=False)
    assert not (tmp_path / "x.mp4").exists()


def test_own_agent_without_explainer_never_falls_back_to_the_bundled_explainer():
    from vmask_live.errors import PairingError
    from vmask_live.wrappers.live_app import LiveSession

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
        "from vmask_live.wrappers.live_app import LiveConfig, record\n"
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


def test_record_keeps_every_episodes_last_frame_and_never_half_replaces_a_video(tmp_path, monkeypatch):
    import vmask_live.wrappers.live_app as live

    out = tmp_path / "two.mp4"
    cfg = LiveConfig(env="Beacon", episodes=2, scale=1, backend="torch")
    stats = record(cfg, out, progress=False)  # the bundled Beacon pair reaches the beacon in a few dozen steps
    assert stats["episodes"] == 2
    assert stats["frames"] == stats["steps"] + 2  # each episode's first frame, then one per step
    before = out.read_bytes()

    class Stop(live.LiveSession):
        def frames(self):
            raise KeyboardInterrupt  # stopped before the first frame
            yield

    monkeypatch.setattr(live, "LiveSession", Stop)
    with pytest.raises(KeyboardInterrupt):
        record(cfg, out, progress=False)
    assert out.read_bytes() == before  # the old video is intact
