"""Datasets are never silently mixed, truncated or half-made (fast: Beacon and an untrained tiny agent)."""

from __future__ import annotations

import json
import os
import re
import socket

import numpy as np
import pytest

from vmask_live.dataset import CollectConfig, Dataset, collect
from vmask_live.errors import ConfigError, DatasetError
from vmask_live.observations import ObsFormat
from vmask_live.testing import tiny_agent

ATARI_FORMAT = ObsFormat((4, 84, 84), "chw", 255.0)


def _cfg(tmp_path, **changes) -> CollectConfig:
    """4 envs x 10 steps: 4 episodes (Beacon episodes last 100 steps), 2 shards."""
    base = {"env": "Beacon", "out": str(tmp_path / "d"), "steps": 40, "n_envs": 4, "shard_size": 20}
    return CollectConfig(**{**base, **changes})


@pytest.fixture
def small(tmp_path):
    """A finished 40-state dataset and its config."""
    cfg = _cfg(tmp_path)
    return collect(cfg, agent=tiny_agent(), progress=False), cfg


def test_second_collect_into_a_locked_folder_fails_naming_the_holder(tmp_path):
    pytest.importorskip("fcntl")
    cfg = _cfg(tmp_path)
    agent = tiny_agent()
    orig, seen = agent.act, []

    def act_and_collect_again(*args, **kw):
        if not seen:  # while the first collect runs and holds the lock
            with pytest.raises(DatasetError, match=rf"in use by another collect \(PID {os.getpid()} on host") as err:
                collect(_cfg(tmp_path), agent=tiny_agent(), progress=False)
            seen.append(str(err.value))
        return orig(*args, **kw)

    agent.act = act_and_collect_again
    ds = collect(cfg, agent=agent, progress=False)
    assert seen and socket.gethostname() in seen[0] and f"(`kill {os.getpid()}`)" in seen[0]
    assert len(ds) == 40 and ds.complete  # the first collect was not disturbed


def test_lock_is_released_when_collect_is_interrupted(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    cfg = _cfg(tmp_path)
    agent = tiny_agent()

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    agent.act = interrupted
    with pytest.raises(KeyboardInterrupt):
        collect(cfg, agent=agent, progress=False)
    lock = tmp_path / "d" / ".lock"
    assert lock.exists()
    with open(lock) as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held
        assert f.read() == ""  # the holder's PID is cleared on release


def test_truncated_shard_is_reported_on_open_and_resume_recollects_it(small):
    ds, cfg = small
    shard = ds.path / "obs_00001.npy"
    shard.write_bytes(shard.read_bytes()[:5000])
    with pytest.raises(DatasetError, match=r"obs_00001\.npy is truncated \(5000 of \d+ bytes\).*--resume"):
        Dataset(ds.path)
    cfg.resume = True
    with pytest.warns(UserWarning, match="re-collecting 20 states"):
        again = collect(cfg, agent=tiny_agent(), progress=False)
    assert len(again) == 40 and len(Dataset(ds.path)) == 40


def test_missing_shard_is_reported_on_open(small):
    ds, _ = small
    (ds.path / "actions_00000.npy").unlink()
    with pytest.raises(DatasetError, match=r"is damaged: actions_00000\.npy is missing.*delete the folder"):
        Dataset(ds.path)


def test_shard_of_another_shape_is_reported_on_open(small):
    ds, _ = small
    np.save(ds.path / "logits_00000.npy", np.zeros((20, 3), np.float32))
    with pytest.raises(DatasetError, match=r"logits_00000\.npy holds shape \(20, 3\), the manifest records \(20, 5\)"):
        Dataset(ds.path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("obs_format"), r"lacks the key\(s\) 'obs_format'"),
        (lambda m: m["obs_format"].pop("layout"), r"obs_format lacks the key 'layout'"),
        (lambda m: m["shards"][0].pop("n"), r"shards\[0\] lacks the key\(s\) 'n'"),
        (lambda m: m.update(version=7), r"format version 7; this vmask-live reads version 1"),
        (lambda m: m["shards"].append(dict(m["shards"][0])), r"lists a shard twice"),
        (lambda m: m.update(n_samples=m["n_samples"] + 1), r"says n_samples \d+, but its shards hold \d+ states"),
    ],
)
def test_manifest_missing_keys_are_named(small, edit, message):
    ds, _ = small
    path = ds.path / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=message):
        Dataset(ds.path)


def test_small_collect_gives_three_non_empty_disjoint_splits(small):
    ds, _ = small
    assert len(np.unique(ds.episodes)) == 4  # all episodes unfinished, all in bucket "train" by id
    assert ds.complete and sum(ds.manifest["counts"].values()) == 40
    eps = {s: set(ds.episodes[ds.split(s)]) for s in ("train", "val", "test")}
    assert all(eps.values()) and not (
        eps["train"] & eps["val"] or eps["train"] & eps["test"] or eps["val"] & eps["test"]
    )


def test_too_few_steps_fail_before_collecting(tmp_path):
    with pytest.raises(ConfigError, match=r"steps=2 gives at most 2 episode\(s\).*use --steps 3 or more"):
        collect(_cfg(tmp_path, steps=2), agent=tiny_agent(), progress=False)
    assert not (tmp_path / "d").exists()


def test_too_few_episodes_leave_an_incomplete_dataset_that_says_how_to_finish(tmp_path):
    cfg = _cfg(tmp_path, steps=50, n_envs=1, shard_size=50)  # one unfinished 100-step episode
    with pytest.raises(
        DatasetError, match=r"only 1 episode\(s\).*--resume --steps 200 \(or more\).*--n-envs 3 or more"
    ):
        collect(cfg, agent=tiny_agent(), progress=False)
    partial = Dataset(tmp_path / "d")
    with pytest.raises(DatasetError, match=r"is incomplete .*only 1 episode.*--resume` and a larger --steps"):
        partial.split("train")
    with pytest.raises(DatasetError, match="is incomplete"):
        partial.statistics()
    cfg.resume, cfg.steps = True, 200
    full = collect(cfg, agent=tiny_agent(), progress=False)
    assert full.complete and len(full) == 200 and all(len(full.split(s)) for s in ("train", "val", "test"))


def test_resume_with_other_settings_lists_every_difference(small):
    ds, cfg = small
    changed = _cfg(
        ds.path.parent,
        resume=True,
        steps=30,
        n_envs=2,
        shard_size=10,
        seed=1,
        deterministic=True,
        env_kwargs={"clutter": 3},
    )
    with pytest.raises(DatasetError, match="Cannot resume .* with other settings") as err:
        collect(changed, agent=tiny_agent(seed=1), progress=False)
    msg = str(err.value)
    for diff in (
        "agent_hash: manifest ",
        "n_envs: manifest 4, now 2",
        "shard_size: manifest 20, now 10",
        "seed: manifest 0, now 1",
        "deterministic: manifest false, now true",
        'env_kwargs: manifest {}, now {"clutter": 3}',
        "steps: manifest 40, now 30 (the folder already holds 40 states",
    ):
        assert diff in msg, msg
    assert "\n" not in msg and "only --steps may change" in msg
    cfg.resume, cfg.steps = True, 60  # a larger --steps extends the dataset
    assert len(collect(cfg, agent=tiny_agent(), progress=False)) == 60


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 0, r"Invalid collect settings \(1\):\n  steps: expected an integer >= 1, got 0"),
        ("n_envs", 0, r"\n  n_envs: expected an integer >= 1, got 0"),
        ("shard_size", 0, r"\n  shard_size: expected an integer >= 1, got 0"),
        ("seed", -1, r"\n  seed: expected an integer >= 0, got -1"),
        ("seed", 1.5, r"\n  seed: expected an integer >= 0, got 1\.5"),
        ("steps", True, r"\n  steps: expected an integer >= 1, got True"),
    ],
)
def test_bad_setting_is_refused_up_front(tmp_path, field, value, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(tmp_path, **{field: value})
    cfg = _cfg(tmp_path)
    setattr(cfg, field, value)  # changed after construction: collect validates again
    with pytest.raises(ConfigError, match=message):
        collect(cfg, agent=tiny_agent(), progress=False)
    assert not (tmp_path / "d").exists()


def test_every_bad_setting_is_listed_at_once(tmp_path):
    with pytest.raises(ConfigError, match=r"Invalid collect settings \(4\):\n") as err:
        _cfg(tmp_path, steps=0, n_envs=0, shard_size=0, seed=-2)
    assert re.findall(r"^  (\w+): expected", str(err.value), re.M) == ["steps", "n_envs", "shard_size", "seed"]


def test_agent_with_other_action_count_is_refused_before_stepping(tmp_path):
    pytest.importorskip("ale_py")
    agent = tiny_agent(obs_format=ATARI_FORMAT, n_actions=9)
    with pytest.raises(ConfigError, match=r"the agent has 9 actions, env 'Breakout' has 4.*--env"):
        collect(_cfg(tmp_path, env="Breakout", steps=8, n_envs=1), agent=agent, progress=False)
    assert not (tmp_path / "d").exists()


def test_agent_with_other_observations_is_refused(tmp_path):
    agent = tiny_agent(obs_format=ATARI_FORMAT, n_actions=5)
    with pytest.raises(
        ConfigError, match=r"expects observations of shape \(4, 84, 84\).*env 'Beacon' gives \(84, 84\)"
    ):
        collect(_cfg(tmp_path), agent=agent, progress=False)


def test_same_weights_with_another_input_scale_is_refused_by_train_and_evaluate(beacon_agent, beacon_data, tmp_path):
    """The weight hash matches, but the agent sees its inputs x255: its actions are no longer the
    labels. Both jobs compare the stored logits and refuse, naming the likely cause."""
    from vmask_live.agents import TorchAgent
    from vmask_live.evaluate import EvaluateConfig, evaluate
    from vmask_live.pairing import agent_hash
    from vmask_live.train import TrainConfig, train

    agent = beacon_agent[0]
    beacon_data.check_agent_outputs(agent)  # the collecting agent passes
    scaled = TorchAgent(agent.module, agent.obs_format, agent.n_actions, 255.0, agent.action_names).freeze()
    assert agent_hash(scaled) == agent_hash(agent)
    message = r"has the weights that collected dataset .* but computes other outputs .*input_scale"
    with pytest.raises(DatasetError, match=message):
        train(
            TrainConfig(data=str(beacon_data.path), out=str(tmp_path / "run"), epochs=1), agent=scaled, progress=False
        )
    assert not (tmp_path / "run" / "explainer.safetensors").exists()
    from vmask_live.testing import tiny_explainer

    explainer = tiny_explainer().save(tmp_path / "explainer.safetensors")
    cfg = EvaluateConfig(
        data=str(beacon_data.path), explainer=str(explainer), allow_mismatch=True, methods="gradient", n=4, lle_n=0
    )
    cfg.out = str(tmp_path / "eval")
    with pytest.raises(DatasetError, match=message):
        evaluate(cfg, agent=scaled, progress=False)


def test_collect_warns_when_sampling_plays_a_near_random_walk(beacon_agent, tmp_path):
    """Sampling from a nearly flat softmax (an untrained net here; Q-values in practice) visits a
    random walk's states, not the agent's: collect says so and names --deterministic. A trained
    policy, or --deterministic, collects without the warning."""
    import warnings

    from vmask_live.testing import tiny_agent

    with pytest.warns(UserWarning, match=r"differed from the agent's arg-max .* in \d+% of 200 steps.*--deterministic"):
        collect(CollectConfig(env="Beacon", out=str(tmp_path / "flat"), steps=200), agent=tiny_agent(), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = CollectConfig(env="Beacon", out=str(tmp_path / "greedy"), steps=200, deterministic=True)
        collect(cfg, agent=tiny_agent(), progress=False)
        collect(CollectConfig(env="Beacon", out=str(tmp_path / "bc"), steps=200), agent=beacon_agent[0], progress=False)
