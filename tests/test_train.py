"""Training jobs check their settings and run folders before any work, and never lose or overwrite a run."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from vmask_live.errors import ConfigError
from vmask_live.loss import LossConfig
from vmask_live.train import TrainConfig, train
from vmask_live.train_agent import BCConfig, PPOConfig, train_bc, train_ppo


class _Started(Exception):
    """Raised by a stub of the first expensive step: the job got past its checks."""


def _no_work(*args, **kwargs):
    raise _Started


@pytest.fixture(scope="module")
def finished_run(beacon_agent, beacon_data, tmp_path_factory):
    """A one-epoch tiny run folder (explainer, last state, log) and its config; copy it before changing it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    cfg = _tiny(beacon_data, out)
    train(cfg, agent=beacon_agent[0], progress=False)
    return out, cfg


def _tiny(beacon_data, out, **changes) -> TrainConfig:
    base = {"epochs": 1, "steps_per_epoch": 3, "batch_size": 8, "width": 4, "val_samples": 16}
    return TrainConfig(data=str(beacon_data.path), out=str(out), **{**base, **changes})


def _copy(run, tmp_path):
    return shutil.copytree(run, tmp_path / "run")


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"batch_size": -4}, r"batch_size: expected an integer >= 1, got -4"),
        ({"batch_size": 0}, r"batch_size: expected an integer >= 1, got 0"),
        ({"lr": 0.0}, r"lr: expected a finite number > 0, got 0.0"),
        ({"lr": float("inf")}, r"lr: expected a finite number > 0, got inf"),
        ({"epochs": 0}, r"epochs: expected an integer >= 1, got 0"),
        ({"steps_per_epoch": 0}, r"steps_per_epoch: expected an integer >= 1 or None, got 0"),
        ({"width": 0}, r"width: expected an integer >= 1, got 0"),
        ({"input_noise": 1.0}, r"input_noise: expected a number in \[0, 1\), got 1.0"),
        ({"patience": 0}, r"patience: expected an integer >= 1, got 0"),
        ({"max_minutes": -1.0}, r"max_minutes: expected a finite number > 0 or None, got -1.0"),
        ({"arch": "unet"}, r"arch: expected one of 'deeplab', 'fcn', got 'unet'"),
        ({"reference": "white"}, r"reference: expected one of 'background', 'black', 'mean', 'blur', got 'white'"),
        ({"loss": LossConfig(a_max=1.5)}, r"loss.a_max: expected a number in \(0, 1\], got 1.5"),
        ({"loss": LossConfig(lambda_ne=-1.0)}, r"loss.lambda_ne: expected a finite number >= 0, got -1.0"),
        ({"device": "gpu"}, r"device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got 'gpu'"),
    ],
)
def test_each_bad_setting_is_refused_before_anything_loads(tmp_path, changes, message):
    cfg = TrainConfig(data=str(tmp_path / "no-such-dataset"), out=str(tmp_path / "run"), **changes)
    with pytest.raises(ConfigError, match=rf"Invalid train settings \(1\):\n  {message}"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_every_bad_setting_is_listed_at_once(tmp_path):
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), batch_size=0, lr=0, epochs=0, patience=0)
    with pytest.raises(ConfigError, match=r"\(4\):") as err:
        train(cfg, progress=False)
    for name in ("batch_size", "lr", "epochs", "patience"):
        assert f"\n  {name}: expected" in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_says_to_use_cpu(tmp_path):
    cfg = TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), device="cuda")
    with pytest.raises(ConfigError, match=r"device: .*CUDA is not available on this machine.*use --device cpu"):
        train(cfg, progress=False)


def test_agent_job_settings_are_checked_too(tmp_path, monkeypatch):
    import vmask_live.train_agent as ta

    monkeypatch.setattr(ta, "rollout_expert", _no_work)
    monkeypatch.setattr(ta, "_make_vec_env", _no_work)
    bad_bc = BCConfig(out=str(tmp_path / "a.safetensors"), samples=100, batch_size=128, lr=0.0, noise=1.5)
    with pytest.raises(ConfigError, match=r"bc\) settings \(3\):\n  batch_size: expected at most samples \(100\)"):
        train_bc(bad_bc, progress=False)
    bad_ppo = PPOConfig(out=str(tmp_path / "ppo"), total_steps=0, n_envs=0, batch_size=1, learning_rate=-1.0)
    with pytest.raises(ConfigError, match=r"ppo\) settings \(4\):\n  total_steps: expected an integer >= 1, got 0"):
        train_ppo(bad_ppo)
    assert list(tmp_path.iterdir()) == []
    assert BCConfig(samples=None).samples == 10_000 and PPOConfig(total_steps=None).total_steps == 1_000_000


def test_resume_with_changed_settings_is_refused_and_lists_every_difference(beacon_agent, finished_run, tmp_path):
    run, cfg = finished_run
    out = _copy(run, tmp_path)
    before = _files(out)
    changed = replace(cfg, out=str(out), resume=True, lr=2e-3, batch_size=16, loss=replace(cfg.loss, a_max=0.2))
    with pytest.raises(ConfigError, match=r"Cannot resume the run in .* with other settings") as err:
        train(changed, agent=beacon_agent[0], progress=False)
    msg = str(err.value)
    assert "(3 differences)" in msg and "lr: run 0.001, now 0.002" in msg
    assert "batch_size: run 8, now 16" in msg and "loss.a_max: run 0.1, now 0.2" in msg
    assert "Rerun --resume with the run's settings, or start a new run with another --out" in msg
    assert _files(out) == before  # nothing loaded, nothing written


def test_resume_with_changed_width_is_refused_before_weights_load(beacon_agent, finished_run, tmp_path):
    run, cfg = finished_run
    out = _copy(run, tmp_path)
    wider = replace(cfg, out=str(out), resume=True, width=8)
    with pytest.raises(ConfigError, match=r"difference\):\n  width: run 4, now 8\n") as err:
        train(wider, agent=beacon_agent[0], progress=False)
    assert "size mismatch" not in str(err.value) and len(str(err.value).splitlines()) < 6


def test_resume_is_refused_when_the_dataset_was_replaced_under_the_same_path(beacon_agent, tmp_path):
    from vmask_live.dataset import CollectConfig, collect

    def collect_into(folder, seed):  # a fresh collection in the same folder
        shutil.rmtree(folder, ignore_errors=True)
        cfg = CollectConfig(env="Beacon", out=str(folder), steps=600, shard_size=600, seed=seed)
        return collect(cfg, agent=beacon_agent[0], progress=False)

    data = tmp_path / "data"
    first = collect_into(data, seed=0)
    cfg = _tiny(first, tmp_path / "run", val_samples=8)
    train(cfg, agent=beacon_agent[0], progress=False)
    again = collect_into(data, seed=0)
    assert again.identity == first.identity  # the same collection is the same dataset: resuming is fine
    train(replace(cfg, resume=True, epochs=2), agent=beacon_agent[0], progress=False)
    other = collect_into(data, seed=1)  # same agent, size and path: only the states differ
    assert other.identity != first.identity
    before = _files(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"trained with another agent or dataset \(dataset_id .* \(run\) vs"):
        train(replace(cfg, resume=True, epochs=3), agent=beacon_agent[0], progress=False)
    assert _files(tmp_path / "run") == before


def test_resume_may_change_epochs_budget_patience_and_device(beacon_agent, finished_run, tmp_path):
    run, cfg = finished_run
    out = _copy(run, tmp_path)
    longer = replace(cfg, out=str(out), resume=True, epochs=2, max_minutes=5.0, patience=7, device="auto")
    res = train(longer, agent=beacon_agent[0], progress=False)
    assert [h["epoch"] for h in res.history] == [1, 2]


def test_new_run_never_overwrites_another_run_unless_asked(beacon_agent, beacon_data, finished_run, tmp_path):
    run, _ = finished_run
    out = _copy(run, tmp_path)
    before = _files(out)
    with pytest.raises(
        ConfigError, match=r"already holds another training run .*would overwrite .*explainer\.safetensors"
    ):
        train(_tiny(beacon_data, out, seed=1), agent=beacon_agent[0], progress=False)
    (out / "last.safetensors").unlink()  # a finished run's best explainer alone is protected too
    with pytest.raises(ConfigError, match=r"Pass --resume to continue that run, another --out .*--overwrite"):
        train(_tiny(beacon_data, out, seed=1), agent=beacon_agent[0], progress=False)
    assert _files(out) == {k: v for k, v in before.items() if k != "last.safetensors"}

    res = train(_tiny(beacon_data, out, seed=1, overwrite=True), agent=beacon_agent[0], progress=False)
    assert res.explainer.meta["train_config"]["seed"] == 1
    assert len((out / "log.jsonl").read_text().splitlines()) == 1  # the old run's log went with it


def test_explainer_run_folder_must_be_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cfg = TrainConfig(data=str(tmp_path / "no-such-dataset"), out=str(blocker / "run"))
    with pytest.raises(ConfigError, match=r"Cannot write to --out folder .*a-file/run.*Nothing was trained"):
        train(cfg, progress=False)


def test_bc_never_overwrites_an_agent_unless_asked(tmp_path, monkeypatch):
    import vmask_live.train_agent as ta

    monkeypatch.setattr(ta, "rollout_expert", _no_work)
    out = tmp_path / "agent.safetensors"
    out.write_bytes(b"someone's agent")
    with pytest.raises(ConfigError, match=r"Agent checkpoint .*agent\.safetensors' already exists.*--overwrite"):
        train_bc(BCConfig(out=str(out), samples=200), progress=False)
    assert out.read_bytes() == b"someone's agent"
    with pytest.raises(_Started):
        train_bc(BCConfig(out=str(out), samples=200, overwrite=True), progress=False)


def test_agent_output_must_be_writable_before_training(tmp_path, monkeypatch):
    import vmask_live.train_agent as ta

    monkeypatch.setattr(ta, "rollout_expert", _no_work)
    monkeypatch.setattr(ta, "_make_vec_env", _no_work)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"Cannot write to --out folder .*a-file.*Nothing was trained"):
        train_bc(BCConfig(out=str(blocker / "agent.safetensors"), samples=200), progress=False)
    with pytest.raises(ConfigError, match=r"Cannot write to --out folder .*a-file/ppo"):
        train_ppo(PPOConfig(out=str(blocker / "ppo")))


def test_ppo_never_overwrites_a_run_nor_resumes_it_with_other_settings(tmp_path, monkeypatch):
    import vmask_live.train_agent as ta

    monkeypatch.setattr(ta, "_make_vec_env", _no_work)
    out = tmp_path / "ppo"
    out.mkdir()
    (out / "agent.safetensors").write_bytes(b"agent")
    (out / "ppo_100000.zip").write_bytes(b"zip")
    with pytest.raises(ConfigError, match=r"already holds another agent run \(agent\.safetensors, ppo_100000\.zip\)"):
        train_ppo(PPOConfig(out=str(out)))
    (out / "ppo_latest.zip").write_bytes(b"zip")
    (out / "config.json").write_text(json.dumps({**vars(PPOConfig(out=str(out))), "learning_rate": 1e-4}))
    with pytest.raises(ConfigError, match=r"difference\):\n  learning_rate: run 0.0001, now 0.00025\n"):
        train_ppo(PPOConfig(out=str(out), resume=True))
    assert (out / "agent.safetensors").read_bytes() == b"agent"
    with pytest.raises(_Started):  # a longer run with the run's settings is fine
        train_ppo(PPOConfig(out=str(out), resume=True, learning_rate=1e-4, total_steps=2_000_000))
    with pytest.raises(_Started):
        train_ppo(PPOConfig(out=str(out), overwrite=True))
    assert not (out / "agent.safetensors").exists() and not list(out.glob("ppo_*.zip"))


def test_refinement_head_starts_at_zero_so_a_warm_start_keeps_the_maps():
    from vmask_live.explainer_nets import build_explainer

    kw = {"in_channels": 4, "n_actions": 9, "input_size": [84, 84], "width": 8}
    torch.manual_seed(0)
    plain = build_explainer("deeplab", **kw).eval()
    refined = build_explainer("deeplab", refine=True, **kw).eval()
    missing, unexpected = refined.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("refine.") for k in missing) and not unexpected
    x = torch.rand(2, 4, 84, 84)
    with torch.no_grad():
        torch.testing.assert_close(refined(x), plain(x), rtol=0, atol=0)
        refined.refine[-1].bias.fill_(3.0)  # a trained head changes the maps at full resolution
        assert (refined(x) - plain(x)).abs().min() > 0.01


def test_init_warm_starts_a_refined_run_and_refuses_another_network(beacon_agent, beacon_data, finished_run, tmp_path):
    from vmask_live.explainer import load_explainer

    run, _ = finished_run
    start = load_explainer(str(run / "explainer.safetensors"), backend="none")
    cfg = _tiny(beacon_data, tmp_path / "warm", init=str(run / "explainer.safetensors"), refine=True, lr=1e-9)
    result = train(cfg, agent=beacon_agent[0], progress=False)
    assert result.explainer.arch_kwargs["refine"] is True
    warm = result.explainer.net.state_dict()
    for name, value in start.net.state_dict().items():  # lr 1e-9: the warm start is what was trained
        if value.is_floating_point() and "running" not in name:
            torch.testing.assert_close(warm[name], value, atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match=r"--init .* cannot start this run: network deeplab .*width.: 4.*width.: 8"):
        train(
            _tiny(beacon_data, tmp_path / "wide", init=str(run / "explainer.safetensors"), width=8),
            agent=beacon_agent[0],
        )
    with pytest.raises(ConfigError, match="refine: expected False with arch 'fcn'"):
        train(_tiny(beacon_data, tmp_path / "fcn", arch="fcn", refine=True), agent=beacon_agent[0])


def test_diverged_training_stops_with_a_clear_error_and_writes_no_broken_weights(beacon_agent, beacon_data, tmp_path):
    """A learning rate that blows the weights up: the run stops at the first non-finite loss,
    naming the step, instead of training on and saving NaN weights as its best explainer."""
    from vmask_live.errors import TrainingDiverged

    out = tmp_path / "run"
    cfg = _tiny(beacon_data, out, epochs=2, steps_per_epoch=4, checkpoint_every=1, lr=1e30)
    with pytest.raises(TrainingDiverged, match=r"The loss became nan at epoch 1, step [2-4]: training diverged"):
        train(cfg, agent=beacon_agent[0], progress=False)
    assert not (out / "explainer.safetensors").exists()
