import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vmask_live as vm
from vmask_live.errors import ConfigError
from vmask_live.observations import ObservationError
from vmask_live.testing import tiny_agent, tiny_explainer


def _env(**kw):
    return vm.ExplainedEnv(vm.make_env("Beacon", render_mode="rgb_array"), tiny_explainer(), **kw)


def test_check_env_passes_on_wrapped_env():
    check_env(_env(agent=tiny_agent()), skip_render_check=False)


def test_info_shapes_and_ranges():
    env = _env(agent=tiny_agent())
    obs, info = env.reset(seed=0)
    for _ in range(3):
        sal = info["saliency"]
        assert sal.shape == (5, 84, 84) and sal.dtype == np.float32
        assert 0.0 <= sal.min() and sal.max() <= 1.0
        assert info["action_probs"].shape == (5,) and info["action_probs"].dtype == np.float32
        assert info["action_probs"].sum() == pytest.approx(1.0, abs=1e-5)
        assert info["saliency_action"] == int(np.argmax(info["action_probs"]))
        assert "relevant_mask" in info  # the base env's keys pass through
        obs, _, _, _, info = env.step(env.action_space.sample())


def test_pass_through_is_exact():
    plain = vm.make_env("Beacon")
    wrapped = _env()
    assert wrapped.observation_space == plain.observation_space and wrapped.action_space == plain.action_space
    o1, _ = plain.reset(seed=7)
    o2, _ = wrapped.reset(seed=7)
    np.testing.assert_array_equal(o1, o2)
    rng = np.random.default_rng(0)
    for _ in range(30):
        a = int(rng.integers(5))
        r1 = plain.step(a)
        r2 = wrapped.step(a)
        np.testing.assert_array_equal(r1[0], r2[0])
        assert r1[1:4] == r2[1:4]


class SquareExplainer:
    """A fake explainer with known maps: 1 inside a square, 0 elsewhere."""

    def __init__(self):
        from vmask_live.overlay import Reference
        from vmask_live.testing import BEACON_FORMAT

        self.obs_format, self.n_actions, self.reference = BEACON_FORMAT, 5, Reference("black")
        self.action_names = ["NOOP", "UP", "RIGHT", "LEFT", "DOWN"]

    def __call__(self, obs):
        maps = np.zeros((obs.shape[0], 5, 84, 84), np.float32)
        maps[:, :, 20:40, 30:60] = 1.0
        return maps

    def attribute(self, x, actions):
        return x[:, 0] * 0


def test_a_users_own_explainer_is_used_as_it_is_and_must_have_every_member():
    from vmask_live.types import SaliencyExplainer

    square = SquareExplainer()
    assert isinstance(square, SaliencyExplainer)
    env = vm.ExplainedEnv(vm.make_env("Beacon", render_mode="rgb_array"), square, backend="onnx")
    assert env.explainer is square

    class NoReference:
        obs_format, n_actions, action_names = square.obs_format, 5, square.action_names
        __call__ = SquareExplainer.__call__

    with pytest.raises(ConfigError, match=r"got NoReference, which lacks reference, attribute of the SaliencyExp"):
        vm.ExplainedEnv(vm.make_env("Beacon"), NoReference())


def test_render_draws_the_overlay_where_saliency_is_high():
    env = vm.ExplainedEnv(vm.make_env("Beacon", render_mode="rgb_array"), SquareExplainer())
    env.reset(seed=0)
    raw, shown = env.env.render(), env.render()
    assert shown.shape == raw.shape == (336, 336, 3)
    diff = np.abs(shown.astype(int) - raw.astype(int)).sum(-1)
    assert diff[4 * 22 : 4 * 38, 4 * 32 : 4 * 58].min() > 30  # inside the square (x4 render scale)
    assert diff[:60].max() == 0 and diff[170:].max() == 0  # zero saliency leaves pixels untouched


def test_frame_stack_composition_and_mismatch_errors():
    stacked = gym.wrappers.FrameStackObservation(vm.make_env("Beacon"), 4)
    from vmask_live.observations import ObsFormat

    fmt = ObsFormat((4, 84, 84), "chw")
    env = vm.ExplainedEnv(stacked, tiny_explainer(obs_format=fmt))
    obs, info = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and info["saliency"].shape == (5, 84, 84)
    with pytest.raises(
        ObservationError, match=r"explainer expects observations uint8 \(84, 84\).*gives uint8 \(4, 84, 84\)"
    ):
        vm.ExplainedEnv(stacked, tiny_explainer())


def test_bad_inputs_get_one_line_errors():
    with pytest.raises(ObservationError, match="K=9 maps but the env has 5 actions"):
        vm.ExplainedEnv(vm.make_env("Beacon"), tiny_explainer(n_actions=9))
    with pytest.raises(ObservationError, match="pixel observation space"):
        vm.ExplainedEnv(gym.make("CartPole-v1"), tiny_explainer())
    with pytest.raises(ObservationError, match="agent has 9 actions"):
        vm.ExplainedEnv(vm.make_env("Beacon"), tiny_explainer(), agent=tiny_agent(n_actions=9))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        vm.ExplainedEnv(vm.make_env("Beacon"), "nope.safetensors")


def test_existing_info_key_is_not_overwritten():
    env = vm.ExplainedEnv(_env(), tiny_explainer())
    with pytest.raises(ConfigError, match="already has a 'saliency' entry"):
        env.reset(seed=0)
    env2 = vm.ExplainedEnv(_env(), tiny_explainer(), saliency_key="saliency2")
    _, info = env2.reset(seed=0)
    assert "saliency" in info and "saliency2" in info


def test_record_video_on_top_shows_the_overlay(tmp_path):
    import cv2

    env = gym.wrappers.RecordVideo(_env(panel=True), str(tmp_path), episode_trigger=lambda e: True, disable_logger=True)
    env.reset(seed=0)
    for _ in range(10):
        env.step(env.action_space.sample())
    env.close()
    videos = list(tmp_path.glob("*.mp4"))
    assert videos, "RecordVideo wrote no video"
    cap = cv2.VideoCapture(str(videos[0]))
    ok, frame = cap.read()
    assert ok and frame.shape[1] > 336  # the panel is part of the rendered frame


def test_vector_env_batches_all_sub_envs():
    calls = []
    exp = tiny_explainer()
    orig = exp.__class__.__call__

    class Counting(exp.__class__):
        def __call__(self, obs):
            calls.append(obs.shape[0])
            return orig(self, obs)

    exp.__class__ = Counting
    venv = gym.vector.SyncVectorEnv([lambda: vm.make_env("Beacon") for _ in range(4)])
    env = vm.ExplainedVectorEnv(venv, exp, agent=tiny_agent(), backend="none")
    _, infos = env.reset(seed=0)
    _, _, _, _, infos = env.step(np.zeros(4, dtype=np.int64))
    assert infos["saliency"].shape == (4, 5, 84, 84) and infos["_saliency"].all()
    assert infos["action_probs"].shape == (4, 5) and infos["saliency_action"].shape == (4,)
    assert calls == [4, 4]  # one batched explainer call per vector step


def test_sb3_vec_env_wrapper():
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: vm.make_env("Beacon") for _ in range(2)])
    env = vm.wrappers.ExplainedVecEnv(venv, tiny_explainer(), agent=tiny_agent())
    env.reset()
    _, _, _, infos = env.step(np.zeros(2, dtype=np.int64))
    assert infos[0]["saliency"].shape == (5, 84, 84) and "action_probs" in infos[1]


def test_sb3_vec_env_refuses_to_overwrite_another_explainers_maps():
    """Sub-envs that are explained already (an ExplainedEnv inside the VecEnv): wrapping the VecEnv
    again would silently replace their maps by the outer explainer's; it is refused instead."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from vmask_live.errors import ConfigError

    inner = DummyVecEnv([lambda: vm.ExplainedEnv(vm.make_env("Beacon"), tiny_explainer()) for _ in range(2)])
    env = vm.wrappers.ExplainedVecEnv(inner, tiny_explainer(), agent=tiny_agent())
    with pytest.raises(ConfigError, match="info of sub-env 0 already has a 'saliency' entry"):
        env.reset()
    plain = DummyVecEnv([lambda: vm.ExplainedEnv(vm.make_env("Beacon"), tiny_explainer()) for _ in range(2)])
    plain.reset()
    _, _, _, infos = plain.step(np.zeros(2, dtype=np.int64))
    assert infos[0]["saliency"].shape == (5, 84, 84)  # on its own the inner explainer works
    with pytest.raises(ConfigError, match="already has a 'saliency' entry"):
        env.step(np.zeros(2, dtype=np.int64))


def test_sb3_vec_env_keys_at_an_episode_end_describe_the_right_state():
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: vm.make_env("Beacon") for _ in range(2)])
    env = vm.wrappers.ExplainedVecEnv(venv, "default:Beacon", agent="default:Beacon", backend="torch")
    env.reset()
    actions = np.array([info["saliency_action"] for info in env.reset_infos])
    for _ in range(300):  # the bundled agent reaches the beacon in a few dozen steps
        obs, _, dones, infos = env.step(actions)
        if dones.any():
            break
        actions = np.array([info["saliency_action"] for info in infos])
    assert dones.any()
    i = int(np.flatnonzero(dones)[0])
    info = infos[i]
    terminal = info["terminal_observation"][None]
    # the wrapper explains both envs in one batch, the check one frame: float kernels differ by ~1e-6
    np.testing.assert_allclose(info["terminal_saliency"], env.explainer(terminal)[0], atol=1e-4)
    np.testing.assert_allclose(info["saliency"], env.explainer(obs[i : i + 1])[0], atol=1e-4)  # the returned obs
    assert np.abs(info["terminal_saliency"] - info["saliency"]).max() > 0.1  # two different states, told apart
    np.testing.assert_allclose(env.reset_infos[i]["saliency"], info["saliency"])
    assert "relevant_mask" in env.reset_infos[i]  # the inner env's own reset keys are kept


def test_vm_wrappers_resolves_in_a_fresh_interpreter():
    import subprocess
    import sys

    code = (
        "import vmask_live as vm; "
        "print(vm.wrappers.ExplainedVecEnv.__name__, vm.export.load_runtime.__name__, vm.load_explainer.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["ExplainedVecEnv", "load_runtime", "vmask_live.export.runtime"]


def test_rl_zoo_channel_last_vec_env_is_transposed_for_a_channel_first_checkpoint():
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    from vmask_live.observations import ObsFormat

    def make():  # RL-Zoo style: (84, 84, 1) frames, stacked channel-last by VecFrameStack
        env = vm.make_env("Beacon")
        return gym.wrappers.TransformObservation(
            env, lambda o: o[..., None], gym.spaces.Box(0, 255, (84, 84, 1), np.uint8)
        )

    venv = VecFrameStack(DummyVecEnv([make for _ in range(2)]), 4)
    assert venv.observation_space.shape == (84, 84, 4)
    fmt = ObsFormat((4, 84, 84), "chw")
    agent = tiny_agent(obs_format=fmt)
    exp = tiny_explainer(obs_format=fmt, agent=agent)
    env = vm.wrappers.ExplainedVecEnv(venv, exp, agent=agent, backend="none")
    obs = env.reset()
    info = env.reset_infos[0]
    np.testing.assert_allclose(info["saliency"], exp(np.moveaxis(obs, -1, -3))[0], atol=1e-6)
    with pytest.raises(ObservationError, match="channel-last.*VecTransposeImage"):
        agent.act(obs)


def test_docstring_example_runs():
    import doctest

    from vmask_live.wrappers import explained_env

    res = doctest.testmod(explained_env)
    assert res.attempted > 0 and res.failed == 0


def test_scaled_float_observations_are_refused_when_the_wrapper_is_built():
    scaled = gym.wrappers.TransformObservation(
        vm.make_env("Beacon"), lambda o: o.astype(np.float32) / 255, gym.spaces.Box(0.0, 1.0, (84, 84), np.float32)
    )
    with pytest.raises(
        ObservationError, match=r"expects observations uint8 .*float32 \(84, 84\) in \[0.0, 1.0\].*scale_obs"
    ):
        vm.ExplainedEnv(scaled, tiny_explainer(), agent=tiny_agent())


def test_non_finite_observations_fail_loudly_instead_of_nan_maps():
    from vmask_live.observations import ObsFormat

    fmt = ObsFormat.from_space(gym.spaces.Box(0.0, 1.0, (84, 84), np.float32))
    broken = gym.wrappers.TransformObservation(
        vm.make_env("Beacon"),
        lambda o: np.where(np.arange(84) == 5, np.nan, o / 255).astype(np.float32),
        gym.spaces.Box(0.0, 1.0, (84, 84), np.float32),
    )
    agent = tiny_agent(obs_format=fmt)
    env = vm.ExplainedEnv(broken, tiny_explainer(obs_format=fmt, agent=agent), agent=agent)
    with pytest.raises(ObservationError, match="84 of 7056 values are NaN or infinite"):
        env.reset(seed=0)


def test_explainer_of_another_agent_is_refused_unless_opted_out():
    from vmask_live.errors import PairingError

    with pytest.raises(
        PairingError,
        match=r"(?s)trained for agent [0-9a-f]{16}.*hashes to [0-9a-f]{16}.*vmask-live collect.*allow_mismatch=True",
    ):
        _env(agent=tiny_agent(seed=1))
    _, info = _env(agent=tiny_agent(seed=1), allow_mismatch=True).reset(seed=0)
    assert info["saliency"].shape == (5, 84, 84)


def test_bundled_explainer_refuses_another_agent():
    from vmask_live.errors import PairingError

    with pytest.raises(PairingError, match="trained for agent"):
        vm.ExplainedEnv(vm.make_env("Beacon"), "default:Beacon", agent=tiny_agent(), backend="torch")


def test_plain_module_as_agent_says_how_to_wrap_it():
    import torch

    from vmask_live.errors import ConfigError

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(84 * 84, 5))
    with pytest.raises(
        ConfigError, match=r"plain torch.nn.Module.*vm.load_agent\(module, obs_format=.*input_scale=255.0"
    ):
        _env(agent=net)
    with pytest.raises(ConfigError, match="needs input_scale"):
        vm.load_agent(net, obs_format=tiny_agent().obs_format, n_actions=5)
    raw_pixels = vm.load_agent(net, obs_format=tiny_agent().obs_format, n_actions=5, input_scale=255.0)
    obs = np.full((1, 84, 84), 255, np.uint8)
    expected = net(torch.full((1, 84, 84), 255.0))  # the module receives raw pixel values
    np.testing.assert_allclose(raw_pixels.act(obs)[2], expected.detach().numpy(), rtol=1e-6)


def test_onnx_explainer_overlaps_the_agent_and_gives_the_sequential_results(monkeypatch):
    import torch

    env = _env(agent=tiny_agent(), backend="onnx")
    assert env._core.concurrent and env.explainer.backend == "onnx"
    threads = torch.get_num_threads()
    obs, info = env.reset(seed=0)
    for _ in range(4):
        np.testing.assert_array_equal(info["saliency"], env.explainer(obs[None])[0])
        actions, probs, _ = env.agent.act(obs[None])
        assert info["saliency_action"] == actions[0]
        np.testing.assert_allclose(info["action_probs"], probs[0], atol=1e-6)
        assert torch.get_num_threads() == threads  # the agent's one-thread block is undone
        obs, _, _, _, info = env.step(info["saliency_action"])

    def broken_act(*args, **kwargs):
        raise ObservationError("agent failed")

    monkeypatch.setattr(env.agent, "act", broken_act)
    with pytest.raises(ObservationError, match="agent failed"):
        env.step(0)
    assert torch.get_num_threads() == threads
    monkeypatch.undo()
    assert env.step(0)[4]["saliency"].shape == (5, 84, 84)  # the worker is free again
    assert not _env(agent=tiny_agent(), backend="torch")._core.concurrent  # torch shares one thread pool


def test_a_pair_of_another_game_with_as_many_actions_is_refused():
    """Ms. Pac-Man and Enduro both have 9 actions and 4x84x84 frames: only the names tell them apart."""
    from vmask_live.dataset import CollectConfig, collect
    from vmask_live.errors import PairingError

    with pytest.raises(
        PairingError, match=r"explainer was made for the actions \['NOOP', 'UP'.*env's actions are \['NOOP', 'FIRE'"
    ):
        vm.ExplainedEnv(vm.make_env("Enduro"), "default:MsPacman", agent="default:MsPacman", backend="torch")
    env = vm.ExplainedEnv(
        vm.make_env("Enduro"), "default:MsPacman", agent="default:MsPacman", backend="torch", allow_mismatch=True
    )
    env.close()
    with pytest.raises(ConfigError, match=r"cannot act in env 'Enduro': the agent was made for the actions"):
        collect(
            CollectConfig(env="Enduro", out="unused", steps=30), agent=vm.load_agent("default:MsPacman"), progress=False
        )


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_work_done_meanwhile_runs_on_the_caller_thread_and_comes_back(backend):
    import threading

    env = _env(agent=tiny_agent(), backend=backend)
    assert env._core.concurrent == (backend == "onnx")
    obs, _ = env.reset(seed=0)
    ran_on = []

    def meanwhile():
        ran_on.append(threading.current_thread())
        return "objects"

    out, extra = env._core.call_with(obs[None], meanwhile)
    assert extra == "objects" and ran_on == [threading.current_thread()]
    plain = env._core(obs[None])
    np.testing.assert_array_equal(out["saliency"], plain["saliency"])
    np.testing.assert_array_equal(out["saliency_action"], plain["saliency_action"])
    assert env._core.call_with(obs[None], None)[1] is None


def test_vector_forms_refuse_a_pair_of_another_game():
    """The vector forms read the sub-envs' action names too: in-process, from worker processes
    (Gymnasium ``AsyncVectorEnv``) and from SB3 VecEnvs."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    from vmask_live.errors import PairingError
    from vmask_live.wrappers import ExplainedVecEnv

    pair = {"explainer": "default:MsPacman", "agent": "default:MsPacman", "backend": "torch"}
    enduro = [lambda: vm.make_env("Enduro")] * 2
    wrong = r"explainer was made for the actions \['NOOP', 'UP'.*env's actions are \['NOOP', 'FIRE'"
    with pytest.raises(PairingError, match=wrong):
        vm.ExplainedVectorEnv(gym.vector.SyncVectorEnv(enduro), **pair)
    workers = gym.vector.AsyncVectorEnv(enduro)
    try:
        with pytest.raises(PairingError, match=wrong):
            vm.ExplainedVectorEnv(workers, **pair)
    finally:
        workers.close()
    with pytest.raises(PairingError, match=wrong):
        ExplainedVecEnv(DummyVecEnv(enduro), **pair)
    mixed = gym.vector.SyncVectorEnv([lambda: vm.make_env("MsPacman"), lambda: vm.make_env("Enduro")])
    with pytest.raises(ConfigError, match="Expected every sub-env to have the same actions"):
        vm.ExplainedVectorEnv(mixed, **pair)
    ok = vm.ExplainedVectorEnv(gym.vector.SyncVectorEnv(enduro), **pair, allow_mismatch=True)
    assert ok.reset(seed=0)[1]["saliency"].shape == (2, 9, 84, 84)
    ok.close()
    right = ExplainedVecEnv(DummyVecEnv([lambda: vm.make_env("MsPacman")] * 2), **pair)
    assert right.reset().shape[0] == 2
