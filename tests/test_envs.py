import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vmask_live as vm
import vmask_live.envs as envs
from vmask_live.envs import EnvSpec, action_names, canonical_name, known_envs
from vmask_live.envs.beacon import ACTION_NAMES, BeaconEnv
from vmask_live.errors import ConfigError, MissingExtraError


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
    with pytest.raises(ConfigError, match="known envs: Beacon, BeaconTextured, MsPacman"):
        vm.make_env("Pacman3000")
    assert canonical_name("mspacman") == "MsPacman"
    assert "MsPacman" in known_envs()


def test_names_aliases_and_what_vmask_live_envs_lists():
    assert canonical_name("ALE/MsPacman-v5") == canonical_name("mspacman-v0") == "MsPacman"
    assert canonical_name("vmask_live/Beacon-v0") == canonical_name("BEACON") == "Beacon"
    listed = known_envs()
    assert listed["Beacon"] == "the ground-truth env: reach the beacon among clutter (built in)"
    assert listed["MsPacman"] == "Atari ALE/MsPacman-v5 with RL-Zoo preprocessing (ale-py, installed with vmask-live)"
    assert {n for n, s in envs.ENVS.items() if s.ground_truth} == {"Beacon", "BeaconTextured"}
    assert {s.family for s in envs.ENVS.values()} == {"ground_truth", "atari", "highway", "vizdoom"}


def test_action_names_from_a_name_match_those_of_the_env():
    assert action_names("beacon") == action_names(vm.make_env("Beacon")) == ACTION_NAMES
    pacman = vm.make_env("MsPacman")
    assert action_names("MsPacman") == action_names(pacman) == pacman.unwrapped.get_action_meanings()
    assert len(action_names("MsPacman")) == 9
    assert action_names("ALE/Pong-v5")[:2] == ["NOOP", "FIRE"]  # an ALE id also works (made once, cached)


@pytest.fixture
def registry(monkeypatch):
    """A copy of the env registry, so a test can register envs without leaking them."""
    monkeypatch.setattr(envs, "ENVS", dict(envs.ENVS))
    monkeypatch.setattr(envs, "_LOOKUP", dict(envs._LOOKUP))
    return envs


def test_a_new_family_plugs_in_with_one_spec(registry):
    def make_corridor(*, render_mode=None, training=False, **kwargs):
        return BeaconEnv(render_mode=render_mode, clutter=0, **kwargs)

    registry.register_env(
        EnvSpec("Corridor", make_corridor, "toy", "Beacon without clutter", aliases=("toy/Corridor-v1",))
    )
    env = vm.make_env("corridor", max_steps=5)
    assert isinstance(env, BeaconEnv) and env.max_steps == 5 and env.n_clutter == 0
    assert canonical_name("TOY/corridor-v1") == "Corridor" and "Corridor" in known_envs()
    assert known_envs()["Corridor"] == "Beacon without clutter (built in)"
    assert action_names("Corridor") == ACTION_NAMES  # read from the env: the spec names none
    with pytest.raises(ValueError, match=r"names \['beacon'\] already belong to \['Beacon'\]"):
        registry.register_env(EnvSpec("Other", make_corridor, "toy", "x", aliases=("Beacon",)))
    with pytest.raises(ValueError, match="'Corridor' is already registered; pass replace=True"):
        registry.register_env(EnvSpec("Corridor", make_corridor, "toy", "x"))


def test_an_env_whose_package_is_missing_names_the_pip_command(registry):
    spec = EnvSpec("Doom", lambda **kw: None, "vizdoom", "VizDoom basic", requires=("no_such_mod",), extra="vizdoom")
    registry.register_env(spec)
    assert known_envs()["Doom"] == 'VizDoom basic (pip install "vmask-live[vizdoom]")'
    with pytest.raises(
        MissingExtraError, match=r'no_such_mod is not installed; run `pip install "vmask-live\[vizdoom\]"`'
    ):
        vm.make_env("doom")
    with pytest.raises(ValueError, match="expected `extra` naming the vmask-live extra"):
        EnvSpec("Doom2", lambda **kw: None, "vizdoom", "x", requires=("vizdoom",))


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
