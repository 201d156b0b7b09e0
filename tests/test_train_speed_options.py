"""The training speed options: sampled non-target actions, bf16 autocast, channels-last memory.

Each must keep the loss it speeds up (exactly, or within the stated rounding), be checked with the
other settings, and be recorded in the run's checkpoints so that a resume keeps it.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, replace

import pytest
import torch

from vmask_live.errors import ConfigError
from vmask_live.explainer_nets import build_explainer
from vmask_live.loss import LossConfig, contrastive_terms, negative_entropy, visionmask_loss
from vmask_live.train import TrainConfig, config_differences, train, train_step


class _CountingAgent(torch.nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2 * 8 * 8, k)
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return self.lin(x.flatten(1))


def _batch(B: int = 4, K: int = 6):
    torch.manual_seed(0)
    return _CountingAgent(K), torch.rand(B, 2, 8, 8), torch.tensor([0, 5, 2, 3][:B]), torch.zeros(1, 2, 8, 8)


def test_sampled_actions_zero_is_the_paper_loss_term_by_term():
    agent, s, a, r = _batch()
    masks = torch.rand(4, 6, 8, 8)
    loss, terms = visionmask_loss(agent, s, a, masks, r, LossConfig(area_loss="hinge"))
    keep = r.unsqueeze(1) + (s.unsqueeze(1) - r.unsqueeze(1)) * masks.unsqueeze(2)
    drop = r.unsqueeze(1) + (s.unsqueeze(1) - r.unsqueeze(1)) * (1 - masks.unsqueeze(2))
    Z, Zc = agent(keep.flatten(0, 1)).view(4, 6, 6), agent(drop.flatten(0, 1)).view(4, 6, 6)
    l_pos, l_neg = contrastive_terms(Z, a)
    assert terms["loss/pos"] == pytest.approx(l_pos.item(), abs=1e-6)
    assert terms["loss/neg"] == pytest.approx(l_neg.item(), abs=1e-6)
    assert terms["loss/ne"] == pytest.approx(negative_entropy(Zc).item(), abs=1e-7)


def test_sampled_actions_query_2_s_plus_1_states_in_one_call_and_always_train_the_target_map():
    agent, s, a, r = _batch()
    masks = torch.rand(4, 6, 8, 8, requires_grad=True)
    loss, terms = visionmask_loss(agent, s, a, masks, r, LossConfig(sampled_actions=2, lambda_area=0.0))
    assert agent.calls == [4 * 2 * 3]  # 2(S+1) per state instead of 2K = 12
    loss.backward()
    grad_per_map = masks.grad.abs().sum(dim=(-2, -1))  # (B, K)
    assert (grad_per_map[torch.arange(4), a] > 0).all()  # the target map is always among the sampled
    assert ((grad_per_map > 0).sum(dim=1) == 3).all()  # and exactly S others: the rest get no gradient


def test_sampled_entropy_keeps_the_full_terms_scale():
    k = 5
    uniform = torch.zeros(2, 3, k)  # 3 of 5 complement states, each uniform over 5 actions
    assert negative_entropy(uniform).item() == pytest.approx(-math.log(k) / k, abs=1e-6)
    assert negative_entropy(torch.zeros(2, k, k)).item() == pytest.approx(-math.log(k) / k, abs=1e-6)


def test_sampling_is_seeded_by_torchs_generator():
    agent, s, a, r = _batch()
    masks = torch.rand(4, 6, 8, 8)
    torch.manual_seed(3)
    first = visionmask_loss(agent, s, a, masks, r, LossConfig(sampled_actions=2))[1]
    torch.manual_seed(3)
    assert visionmask_loss(agent, s, a, masks, r, LossConfig(sampled_actions=2))[1] == first


def _step_loss(precision: str, channels_last: bool) -> float:
    torch.manual_seed(0)
    net = build_explainer("deeplab", in_channels=4, n_actions=5, input_size=(32, 32), width=8)
    agent = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 4, stride=4), torch.nn.Flatten(), torch.nn.Linear(512, 5))
    x, a = torch.rand(6, 4, 32, 32), torch.tensor([0, 1, 2, 3, 4, 0])
    if channels_last:
        net.to(memory_format=torch.channels_last)
        agent.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    terms = train_step(net, agent, x, a, lambda s: torch.zeros_like(s[:1]), LossConfig(), opt, precision=precision)
    return terms["loss/total"]


def test_channels_last_and_bf16_keep_the_loss():
    fp32 = _step_loss("fp32", False)
    assert _step_loss("fp32", True) == pytest.approx(fp32, rel=1e-5)  # layout only: float rounding
    # bf16 keeps 8 bits of mantissa: measured 0.2% off on this batch; 2% leaves room for other CPUs
    assert _step_loss("bf16", True) == pytest.approx(fp32, rel=2e-2)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"precision": "fp16"}, r"precision: expected one of 'fp32', 'bf16', got 'fp16'"),
        ({"channels_last": "yes"}, r"channels_last: expected True or False, got 'yes'"),
        ({"loss": LossConfig(sampled_actions=-1)}, r"loss.sampled_actions: expected an integer >= 0 \(0: all"),
        (
            {"loss": LossConfig(kind="stalder", sampled_actions=2)},
            r"loss.sampled_actions: expected 0 with loss.kind 'stalder'",
        ),
    ],
)
def test_bad_speed_settings_are_refused_before_anything_loads(tmp_path, changes, message):
    cfg = TrainConfig(data=str(tmp_path / "no-such-dataset"), out=str(tmp_path / "run"), **changes)
    with pytest.raises(ConfigError, match=rf"Invalid train settings \(1\):\n  {message}"):
        train(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def _tiny(beacon_data, out, **changes) -> TrainConfig:
    base = {"epochs": 1, "steps_per_epoch": 3, "batch_size": 8, "width": 4, "val_samples": 16}
    return TrainConfig(data=str(beacon_data.path), out=str(out), **{**base, **changes})


def test_sampling_every_other_action_is_refused_with_the_datasets_k(beacon_agent, beacon_data, tmp_path):
    k = beacon_data.n_actions
    cfg = _tiny(beacon_data, tmp_path / "run", loss=LossConfig(sampled_actions=k - 1))
    with pytest.raises(ConfigError, match=rf"sampled_actions: expected at most {k - 2} .*use --sampled-actions 0"):
        train(cfg, agent=beacon_agent[0], progress=False)


def test_speed_options_train_are_recorded_and_resume_keeps_them(beacon_agent, beacon_data, tmp_path):
    agent = beacon_agent[0]
    fast = _tiny(
        beacon_data, tmp_path / "run", precision="bf16", channels_last=True, loss=LossConfig(sampled_actions=2)
    )
    res = train(fast, agent=agent, progress=False)
    # the session's agent is shared with other tests: train hands it back in its own memory layout
    assert all(p.is_contiguous() for p in agent.parameters())
    saved = res.explainer.meta["train_config"]
    assert (saved["precision"], saved["channels_last"], saved["loss"]["sampled_actions"]) == ("bf16", True, 2)
    assert math.isfinite(res.history[0]["val/loss"])
    out = shutil.copytree(tmp_path / "run", tmp_path / "copy")
    with pytest.raises(ConfigError, match=r"precision: run 'bf16', now 'fp32'"):
        train(replace(fast, out=str(out), resume=True, epochs=2, precision="fp32"), agent=agent, progress=False)
    # the memory layout only places the run, like --device: a resume may change it
    res = train(replace(fast, out=str(out), resume=True, epochs=2, channels_last=False), agent=agent, progress=False)
    assert [h["epoch"] for h in res.history] == [1, 2]


def test_runs_recorded_before_the_speed_options_resume_with_their_defaults():
    now = asdict(TrainConfig())
    old = {k: v for k, v in now.items() if k not in ("precision", "channels_last")}
    old["loss"] = {k: v for k, v in now["loss"].items() if k != "sampled_actions"}
    assert config_differences(old, now, now, ()) == []
    assert config_differences(old, {**now, "precision": "bf16"}, now, ()) == ["precision: run 'fp32', now 'bf16'"]
