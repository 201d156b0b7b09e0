import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vmask_live as vm
from vmask_live.envs import canonical_name, known_envs
from vmask_live.envs.beacon import ACTION_NAMES, BeaconEnv


def test_beacon_passes_env_checker_and_reports_relevant_pixels():
    env = vm.make_env("Beacon", render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    obs, info = env.reset(seed=3)
    assert obs.shape == (84, 84) and obs.dtype == np.uint8
    mask = info["relevant_mask"]
    assert mask.dtype == bool and mask.shape == (84, 84)
    # the relevant pixels are exactly the runner and the beacon
    assert set(np.unique(obs[mask])) <= {0, 200, 255}
    assert (obs == 255).sum() > 0 and np.all(mask[obs == 255])
    assert env.render().shape == (336, 336, 3)


def test_textured_beacon_has_no_black_background_but_the_same_relevant_pixels():
    env = vm.make_env("beacontextured")
    obs, info = env.reset(seed=3)
    black, _ = vm.make_env("Beacon").reset(seed=3)
    assert np.median(obs) > 10 and np.median(black) == 0
    mask = info["relevant_mask"]
    assert (obs == 255).sum() > 0 and np.all(mask[obs == 255])  # the runner is still relevant
    assert env.unwrapped.texture == 48
    with pytest.raises(ValueError, match="texture"):
        BeaconEnv(texture=300)


def test_beacon_expert_collects_beacons():
    env = BeaconEnv(max_steps=200)
    env.reset(seed=0)
    total = 0.0
    for _ in range(200):
        _, r, _, trunc, info = env.step(info_action := env.expert_action())
        assert info_action in range(5)
        total += r
    assert total >= 3  # the expert reaches several beacons


def test_expert_rule():
    assert ACTION_NAMES[BeaconEnv.expert_action_from(np.array([2, 2]), np.array([5, 0]))] == "RIGHT"
    assert ACTION_NAMES[BeaconEnv.expert_action_from(np.array([5, 2]), np.array([5, 0]))] == "UP"
    assert ACTION_NAMES[BeaconEnv.expert_action_from(np.array([5, 0]), np.array([5, 0]))] == "NOOP"


def test_unknown_env_lists_known_ones():
    with pytest.raises(ValueError, match="known envs: Beacon, BeaconTextured, MsPacman"):
        vm.make_env("Pacman3000")
    assert canonical_name("mspacman") == "MsPacman"
    assert "MsPacman" in known_envs()


def test_mspacman_real_frames():
    env = vm.make_env("MsPacman", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    assert obs.std() > 0
    assert env.render().shape == (210, 160, 3)
    assert env.action_space.n == 9
    env.close()
