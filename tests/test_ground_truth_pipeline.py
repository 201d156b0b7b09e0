"""End to end on the ground-truth env: BC agent, dataset, VisionMask explainer, metrics."""

import numpy as np
import pytest
import torch

from vmask_live.dataset import CollectConfig, Dataset, DatasetError, collect
from vmask_live.metrics import evaluate_maps


def test_bc_agent_agrees_with_the_expert(beacon_agent):
    _, metrics, _ = beacon_agent
    assert metrics["heldout_agreement"] >= 0.95, metrics


def test_dataset_split_and_manifest(beacon_data):
    ds = beacon_data
    assert len(ds) == 6000 and ds.has_relevant
    counts = ds.manifest["counts"]
    assert sum(counts.values()) == 6000 and counts["train"] > 4 * counts["test"] > 0
    tr, te = set(ds.episodes[ds.split("train")]), set(ds.episodes[ds.split("test")])
    assert not tr & te  # split by episode
    bg, mean = ds.statistics()
    assert bg.shape == (1, 84, 84) and mean.shape == (1,)
    assert bg.max() < 0.2  # the median removes the moving objects and most clutter


def test_explainer_is_faithful_and_points_at_the_relevant_pixels(beacon_agent, beacon_data, beacon_explainer):
    agent = beacon_agent[0]
    ds = beacon_data
    exp = beacon_explainer.explainer
    idx = ds.split("test")[:300]
    d = ds.get(idx, ("obs", "actions", "relevant"))
    x, a = ds.obs_format.to_model(d["obs"]), torch.as_tensor(d["actions"])
    res = evaluate_maps(
        agent, x, a, exp.attribute, exp.reference, relevant=torch.as_tensor(d["relevant"]), with_lle=False
    )
    print(res)
    assert res["accuracy"] >= 90.0, res
    assert res["relevance_mass"] >= 3 * res["relevant_area"], res
    assert res["insertion"] > res["deletion"], res


def test_collect_resumes_after_interruption(beacon_agent, tmp_path):
    agent = beacon_agent[0]
    cfg = CollectConfig(env="Beacon", out=str(tmp_path / "d"), steps=300, shard_size=100, n_envs=4)
    calls = {"n": 0}
    orig = agent.act

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 40:  # after 160 states: one shard written, one in progress
            raise KeyboardInterrupt
        return orig(*args, **kw)

    agent.act = flaky
    try:
        with pytest.raises(KeyboardInterrupt, match="rerun with --resume"):
            collect(cfg, agent=agent, progress=False)
    finally:
        del agent.act
    partial = Dataset(tmp_path / "d")
    assert 100 <= len(partial) < 300  # the shard in progress was flushed, nothing lost
    with pytest.raises(DatasetError, match="pass --resume"):
        collect(cfg, agent=agent, progress=False)
    cfg.resume = True
    full = collect(cfg, agent=agent, progress=False)
    assert len(full) == 300
    eps = full.episodes
    assert len(np.unique(eps)) >= 4


def test_dataset_from_another_agent_is_refused(beacon_data, tmp_path):
    from vmask_live.testing import tiny_agent
    from vmask_live.train import TrainConfig, train

    with pytest.raises(DatasetError, match="collected with agent"):
        train(TrainConfig(data=str(beacon_data.path), out=str(tmp_path)), agent=tiny_agent(), progress=False)
    with pytest.raises(DatasetError, match="no manifest.json"):
        Dataset(tmp_path)


def _tiny_train_config(beacon_data, out, **changes):
    from vmask_live.train import TrainConfig

    base = {"epochs": 1, "steps_per_epoch": 4, "batch_size": 8, "width": 4, "val_samples": 16}
    return TrainConfig(data=str(beacon_data.path), out=str(out), **{**base, **changes})


def test_training_resumes_from_last_checkpoint(beacon_agent, beacon_data, tmp_path):
    from vmask_live.train import train

    cfg = _tiny_train_config(beacon_data, tmp_path, checkpoint_every=2)
    first = train(cfg, agent=beacon_agent[0], progress=False)
    assert len(first.history) == 1 and (tmp_path / "last.safetensors").exists()
    cfg.epochs, cfg.resume = 2, True
    second = train(cfg, agent=beacon_agent[0], progress=False)
    assert [h["epoch"] for h in second.history] == [1, 2]


def test_input_noise_changes_what_the_explainer_sees_not_the_masked_state(beacon_agent, beacon_data, tmp_path):
    from vmask_live.train import train

    def run(noise, out):
        cfg = _tiny_train_config(beacon_data, out, steps_per_epoch=3, input_noise=noise)
        return train(cfg, agent=beacon_agent[0], progress=False)

    clean, noisy = run(0.0, tmp_path / "clean"), run(0.05, tmp_path / "noisy")
    assert noisy.explainer.meta["train_config"]["input_noise"] == 0.05
    w_clean, w_noisy = clean.explainer.tensors(), noisy.explainer.tensors()
    assert any(not torch.equal(w_clean[k], w_noisy[k]) for k in w_clean)
