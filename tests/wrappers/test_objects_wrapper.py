"""Game objects in ``ExplainedEnv``'s info, the vector forms and the live window (keys b and x).

A fake Ms. Pac-Man annotator with fixed boxes makes the expected shares and pixels computable by
hand; one test runs the real RAM annotator where it is installed.
"""

import dataclasses

import cv2
import gymnasium as gym
import numpy as np
import pytest

import vmask_live as vm
import vmask_live.objects as game_objects
from vmask_live.errors import ConfigError
from vmask_live.objects import ANNOTATORS, GameObject, object_mass
from vmask_live.observations import ObsFormat
from vmask_live.render import blend, draw_boxes, object_lines, panel
from vmask_live.testing import tiny_agent, tiny_explainer

FMT = ObsFormat((4, 84, 84), "chw")
OBJECTS = [
    GameObject("player", 0, (10.0, 20.0, 16.0, 26.0)),
    GameObject("ghost", 1, (40.5, 40.0, 46.0, 46.5)),
    GameObject("ghost", 2, (60.0, 8.0, 66.0, 14.0)),
]
# the boxes dilated by 2 observation pixels, as rows and columns (what object_mass counts)
REGIONS = {
    "player": (slice(18, 28), slice(8, 18)),
    "ghost 1": (slice(38, 49), slice(38, 48)),
    "ghost 2": (slice(6, 16), slice(58, 68)),
}


def _pair(seed=0):
    agent = tiny_agent(seed, obs_format=FMT, n_actions=9)
    return tiny_explainer(seed, obs_format=FMT, n_actions=9, agent=agent), agent


def _pacman(**kw):
    explainer, agent = _pair()
    return vm.ExplainedEnv(vm.make_env("MsPacman", render_mode="rgb_array"), explainer, agent=agent, **kw)


@pytest.fixture
def fake_annotator(monkeypatch):
    """Register a fake Ms. Pac-Man annotator (fixed boxes) that records the RAM it is given."""
    try:  # the real one registers on import: import it first so that ours replaces it
        import vmask_live.atari_objects  # noqa: F401
    except ImportError:
        pass
    calls = []

    def annotate(ram):
        calls.append(np.array(ram))
        return list(OBJECTS)

    monkeypatch.setitem(ANNOTATORS, "MsPacman", annotate)
    return calls


def _by_hand(maps, name):
    rows, cols = REGIONS[name]
    return maps[:, rows, cols].sum((1, 2)) / maps.sum((1, 2))


# ExplainedEnv -----------------------------------------------------------------------------------


def test_object_keys_on_ms_pacman_steps(fake_annotator):
    env = _pacman()
    _, info = env.reset(seed=0)
    for step in range(4):
        assert info["objects"] == [
            {"category": "player", "id": 0, "box": [10.0, 20.0, 16.0, 26.0]},
            {"category": "ghost", "id": 1, "box": [40.5, 40.0, 46.0, 46.5]},
            {"category": "ghost", "id": 2, "box": [60.0, 8.0, 66.0, 14.0]},
        ]
        # one RAM read per reset/step, of the state the observation shows
        assert len(fake_annotator) == step + 1
        ram = fake_annotator[-1]
        assert ram.shape == (128,) and ram.dtype == np.uint8
        assert np.array_equal(ram, env.unwrapped.ale.getRAM())
        shares, maps = info["saliency_objects"], info["saliency"]
        assert list(shares) == ["player", "ghost 1", "ghost 2"]
        for name, share in shares.items():
            assert share.shape == (9,) and share.dtype == np.float32
            assert (share >= 0).all() and (share <= 1).all()
            np.testing.assert_allclose(share, _by_hand(maps, name), rtol=1e-5)
        assert "saliency_action" in info and "lives" in info  # the other keys stay
        _, _, _, _, info = env.step(info["saliency_action"])


def test_real_ms_pacman_annotator():
    pytest.importorskip("vmask_live.atari_objects")
    env = _pacman()
    _, info = env.reset(seed=0)
    for _ in range(3):
        assert info["objects"], "the real annotator found no objects"
        for obj in info["objects"]:
            assert set(obj) == {"category", "id", "box"}
            x0, y0, x1, y1 = obj["box"]
            assert 0 <= x0 <= x1 <= 84 and 0 <= y0 <= y1 <= 84
        names = [GameObject(o["category"], o["id"], tuple(o["box"])).name for o in info["objects"]]
        assert set(info["saliency_objects"]) == set(names)
        for share in info["saliency_objects"].values():
            assert share.shape == (9,) and share.dtype == np.float32 and ((share >= 0) & (share <= 1)).all()
        _, _, _, _, info = env.step(0)


def test_no_object_keys_when_off_or_unknown(fake_annotator, monkeypatch):
    env = _pacman(objects=False)
    _, info = env.reset(seed=0)
    _, _, _, _, info2 = env.step(0)
    assert not {"objects", "saliency_objects"} & (set(info) | set(info2)) and not fake_annotator
    monkeypatch.setitem(ANNOTATORS, "Beacon", fake_annotator.append)  # not an ALE env: never asked
    beacon = vm.ExplainedEnv(vm.make_env("Beacon", render_mode="rgb_array"), tiny_explainer(), agent=tiny_agent())
    _, info = beacon.reset(seed=0)
    _, _, _, _, info2 = beacon.step(0)
    assert not {"objects", "saliency_objects"} & (set(info) | set(info2)) and not fake_annotator
    assert beacon.annotator is None and beacon.last_objects is None
    with pytest.raises(ConfigError, match="Expected `objects` to be a bool, got str"):
        _pacman(objects="yes")


def test_an_existing_objects_key_is_not_overwritten(fake_annotator):
    class Tagged(gym.Wrapper):
        def reset(self, **kw):
            obs, info = self.env.reset(**kw)
            return obs, {**info, "objects": "mine"}

    explainer, agent = _pair()
    env = vm.ExplainedEnv(Tagged(vm.make_env("MsPacman")), explainer, agent=agent)
    with pytest.raises(ConfigError, match="info already has a 'objects' entry; pass objects=False"):
        env.reset(seed=0)
    env = vm.ExplainedEnv(Tagged(vm.make_env("MsPacman")), explainer, agent=agent, objects=False)
    assert env.reset(seed=0)[1]["objects"] == "mine"


# vector forms -----------------------------------------------------------------------------------


def test_gymnasium_vector_env_masks_the_annotated_sub_envs(fake_annotator, monkeypatch):
    venv = gym.vector.SyncVectorEnv([lambda: vm.make_env("MsPacman") for _ in range(2)])
    real = game_objects.annotator_for
    # only sub-env 1 is annotated, so the masks have something to say
    monkeypatch.setattr(game_objects, "annotator_for", lambda env: real(env) if env is venv.envs[1] else None)
    explainer, agent = _pair()
    env = vm.ExplainedVectorEnv(venv, explainer, agent=agent, backend="none")
    _, infos = env.reset(seed=0)
    for _ in range(2):
        assert infos["objects"].dtype == object and infos["objects"].shape == (2,)
        assert infos["objects"][0] is None and infos["objects"][1] == [o.to_dict() for o in OBJECTS]
        assert infos["_objects"].tolist() == [False, True] and infos["_saliency_objects"].tolist() == [False, True]
        shares = infos["saliency_objects"]
        assert set(shares) == {"player", "ghost 1", "ghost 2", "_player", "_ghost 1", "_ghost 2"}
        for name in ("player", "ghost 1", "ghost 2"):
            assert shares[name].shape == (2, 9) and shares[name].dtype == np.float32
            assert not shares[name][0].any() and shares[f"_{name}"].tolist() == [False, True]
            np.testing.assert_allclose(shares[name][1], _by_hand(infos["saliency"][1], name), rtol=1e-5)
        _, _, _, _, infos = env.step(np.zeros(2, dtype=np.int64))
    assert len(fake_annotator) == 3  # sub-env 1's RAM only: reset and two steps
    off = vm.ExplainedVectorEnv(venv, explainer, agent=agent, backend="none", objects=False)
    assert "objects" not in off.reset(seed=0)[1]


def test_async_vector_env_sub_envs_are_read_in_their_workers(fake_annotator):
    venv = gym.vector.AsyncVectorEnv([lambda: vm.make_env("MsPacman") for _ in range(2)], context="fork")
    sync = gym.vector.SyncVectorEnv([lambda: vm.make_env("MsPacman") for _ in range(2)])
    try:
        explainer, agent = _pair()
        env = vm.ExplainedVectorEnv(venv, explainer, agent=agent, backend="none")
        ref = vm.ExplainedVectorEnv(sync, explainer, agent=agent, backend="none")
        (_, infos), (_, want) = env.reset(seed=0), ref.reset(seed=0)
        for _ in range(3):
            assert infos["_objects"].tolist() == [True, True]
            assert list(infos["objects"]) == [[o.to_dict() for o in OBJECTS]] * 2
            for name in ("player", "ghost 1", "ghost 2"):
                np.testing.assert_array_equal(infos["saliency_objects"][name], want["saliency_objects"][name])
            actions = np.array([3, 1])
            infos, want = env.step(actions)[4], ref.step(actions)[4]
        # the annotator ran here on the workers' RAM, the same bytes as the in-process envs'
        assert len(fake_annotator) == 16  # (2 async + 2 sync) x (reset + 3 steps)
        for k in range(4):
            got, ref_ram = fake_annotator[4 * k : 4 * k + 2], fake_annotator[4 * k + 2 : 4 * k + 4]
            assert all(r.shape == (128,) and r.dtype == np.uint8 for r in got)
            np.testing.assert_array_equal(np.stack(got), np.stack(ref_ram))
        off = vm.ExplainedVectorEnv(venv, explainer, agent=agent, backend="none", objects=False)
        assert "objects" not in off.reset(seed=0)[1]
    finally:
        venv.close()
        sync.close()


def _bare_pacman():  # Atari preprocessing without vmask-live's ObjectRam wrapper
    from vmask_live.envs.atari import register_ale

    register_ale()
    env = gym.make("ALE/MsPacman-v5", frameskip=1, repeat_action_probability=0.0)
    return gym.wrappers.FrameStackObservation(gym.wrappers.AtariPreprocessing(env, frame_skip=4), 4)


def test_worker_envs_without_the_ram_method_get_no_object_keys(fake_annotator):
    venv = gym.vector.AsyncVectorEnv([_bare_pacman], context="fork")
    try:
        explainer, agent = _pair()
        env = vm.ExplainedVectorEnv(venv, explainer, agent=agent, backend="none")
        _, infos = env.reset(seed=0)
        assert infos["saliency"].shape == (1, 9, 84, 84) and "objects" not in infos
        assert "objects" not in env.step(np.zeros(1, dtype=np.int64))[4]  # the worker is alive
        assert not fake_annotator
    finally:
        venv.close()


def test_sb3_subproc_vec_env_gets_the_single_env_keys(fake_annotator):
    from stable_baselines3.common.vec_env import SubprocVecEnv

    explainer, agent = _pair()
    venv = SubprocVecEnv([lambda: vm.make_env("MsPacman") for _ in range(2)], start_method="fork")
    try:
        env = vm.wrappers.ExplainedVecEnv(venv, explainer, agent=agent, backend="none")
        env.reset()
        _, _, _, infos = env.step(np.zeros(2, dtype=np.int64))
        for info in [*env.reset_infos, *infos]:
            assert info["objects"] == [o.to_dict() for o in OBJECTS]
            for name, share in info["saliency_objects"].items():
                np.testing.assert_array_equal(share, object_mass(info["saliency"], OBJECTS)[name])
        assert len(fake_annotator) == 4  # two sub-envs, reset and one step
    finally:
        venv.close()


def test_sb3_dummy_vec_env_gets_the_single_env_keys(fake_annotator):
    from stable_baselines3.common.vec_env import DummyVecEnv

    explainer, agent = _pair()
    venv = DummyVecEnv([lambda: vm.make_env("MsPacman") for _ in range(2)])
    env = vm.wrappers.ExplainedVecEnv(venv, explainer, agent=agent, backend="none")
    env.reset()
    _, _, _, infos = env.step(np.zeros(2, dtype=np.int64))
    for info in [*env.reset_infos, *infos]:
        assert info["objects"] == [o.to_dict() for o in OBJECTS]
        want = object_mass(info["saliency"], OBJECTS)
        assert set(info["saliency_objects"]) == set(want)
        for name, share in info["saliency_objects"].items():
            assert share.shape == (9,)
            np.testing.assert_array_equal(share, want[name])
    off = vm.wrappers.ExplainedVecEnv(venv, explainer, agent=agent, backend="none", objects=False)
    off.reset()
    assert "objects" not in off.reset_infos[0] and "objects" not in off.step(np.zeros(2, dtype=np.int64))[3][0]


# live window: the panel's object lines, b (boxes) and x (remove one object) --------------------------


def _up(img, scale=2):
    return img.repeat(scale, 0).repeat(scale, 1)


def test_headless_play_shows_objects_boxes_and_object_counterfactuals(fake_annotator, monkeypatch, tmp_path):
    import vmask_live.wrappers.live_app as live

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    shots = []

    class RecordingSession(live.LiveSession):
        def frame(self, fps=None):
            out = super().frame(fps)
            shots.append(
                (
                    dataclasses.replace(self.view),
                    fps,
                    out.copy(),
                    self.env.env.render().copy(),
                    self.info["saliency"].copy(),
                    self.info["action_probs"].copy(),
                    np.asarray(self.env.last_obs).copy(),
                )
            )
            return out

    monkeypatch.setattr(live, "LiveSession", RecordingSession)
    explainer, agent = _pair()
    names = explainer.action_names
    keys = [(0, "b"), (2, "x"), (3, "b"), (3, "x"), (4, "x"), (5, "x")]
    cfg = live.LiveConfig(env="MsPacman", fps=0, max_steps=8, scale=2, seed=0)
    live.play(cfg, agent=agent, explainer=explainer, keys=keys, out_dir=tmp_path)
    at = dict(enumerate(shots[1:]))  # tick -> what was displayed after that tick's keys and step
    assert len(at) == 8

    views = [(at[t][0].mode, at[t][0].object_name, at[t][0].boxes) for t in range(8)]
    assert views == [
        ("action", None, True),
        ("action", None, True),
        ("object", "player", True),  # x: the first object...
        ("object", "ghost 1", False),  # ...the next (and b: boxes off)...
        ("object", "ghost 2", False),
        ("action", None, False),  # ...after the last, back to the map
        ("action", None, False),
        ("action", None, False),
    ]
    player_corner = (100, 38)  # box (10, 20, ...) in a 420x320 game area: row 20*5, column floor(10*320/84)
    for t in range(8):
        view, fps, out, raw, maps, probs, obs = at[t]
        h, w = raw.shape[0] * 2, raw.shape[1] * 2
        game, side = out[:, :w], out[:, w:]
        chosen = int(np.argmax(probs))
        shares_lines = object_lines(maps[chosen], OBJECTS, names[chosen])
        if view.mode == "action":
            want = _up(blend(raw, maps[chosen], view.alpha))
            if view.boxes:
                assert not np.array_equal(game, want), t  # the boxes are drawn...
                want = draw_boxes(want, OBJECTS, (84, 84))
                assert tuple(game[player_corner]) == (255, 255, 0), t  # ...in yellow for the player
            assert np.array_equal(game, want), t
            lines = [f"map: {names[chosen]}", *shares_lines]
        else:  # the state with the selected object's (dilated) box set to the black reference
            rows, cols = REGIONS[view.object_name]
            cf = obs.copy()
            cf[:, rows, cols] = 0
            grey = cv2.resize(cf[-1], (raw.shape[1], raw.shape[0]), interpolation=cv2.INTER_NEAREST)
            # with b on all boxes are drawn, the selected one white; with b off only the selected one
            shown = OBJECTS if view.boxes else [o for o in OBJECTS if o.name == view.object_name]
            want = draw_boxes(_up(np.repeat(grey[..., None], 3, 2)), shown, (84, 84), view.object_name)
            assert np.abs(game.astype(int) - want.astype(int)).max() <= 1, t
            if view.object_name == "ghost 1":  # its box (40.5, 40, ...) outlined in white even with b off
                assert tuple(game[200, 154]) == (255, 255, 255), t
            assert (game[..., 0] == game[..., 1]).mean() > 0.95, t  # grey apart from the white outline
            action, p_cf, _ = agent.act(cf[None])
            p0, p1 = float(probs[chosen]), float(p_cf[0, chosen])
            lines = [
                f"without {view.object_name}",
                f"agent now: {names[int(action[0])]}",
                f"p({names[chosen]}) {p0:.2f}->{p1:.2f}",
                f"  delta p {p1 - p0:+.2f}",
                *shares_lines,
            ]
        assert shares_lines[0] == f"{names[chosen]} <- objects:" and len(shares_lines) == 4, t
        assert np.array_equal(side, panel(h, names, probs, chosen, chosen, [*lines, f"{fps:5.1f} FPS"])), t


def test_x_without_objects_stays_on_the_map():
    from vmask_live.wrappers.live_app import LiveConfig, LiveSession

    session = LiveSession(LiveConfig(env="Beacon", backend="none"), agent=tiny_agent(), explainer=tiny_explainer())
    try:
        session.handle_key("x")
        assert session.view.mode == "action" and session.view.object_name is None
        session.handle_key("b")
        assert session.view.boxes
        frame = session.frame()
        session.handle_key("b")
        assert np.array_equal(frame, session.frame())  # no objects: b draws nothing
    finally:
        session.close()
