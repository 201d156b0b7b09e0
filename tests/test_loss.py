import math

import pytest
import torch

from vmask_live.loss import LossConfig, area_loss, contrastive_terms, negative_entropy, total_variation, visionmask_loss


def test_contrastive_terms_on_known_logit_matrix():
    # K = 2, target a = 0. Z[i, j]: logit of action j on the state kept by map i.
    Z = torch.tensor([[[2.0, 0.0], [1.0, 3.0]]])
    a = torch.tensor([0])
    l_pos, l_neg = contrastive_terms(Z, a)
    # row a = [2, 0]: CE = -log(e^2 / (e^2 + 1))
    assert l_pos.item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)), abs=1e-6)
    # column a = [2, 1]: CE = -log(e^2 / (e^2 + e^1))
    assert l_neg.item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + math.exp(1))), abs=1e-6)


def test_negative_entropy_uniform_and_peaked():
    k = 4
    uniform = torch.zeros(1, k, k)
    # each row uniform: Σ_j p log p = -log K; K rows; / K² -> -log(K) / K
    assert negative_entropy(uniform).item() == pytest.approx(-math.log(k) / k, abs=1e-6)
    peaked = torch.full((1, k, k), -50.0)
    peaked[:, :, 0] = 50.0
    assert negative_entropy(peaked).item() == pytest.approx(0.0, abs=1e-6)


def test_area_losses():
    masks = torch.zeros(1, 2, 4, 4)
    masks[0, 0] = 0.5  # area 0.5
    cfg_abs = LossConfig(a_max=0.1, area_loss="abs")
    assert area_loss(masks, cfg_abs).item() == pytest.approx((0.4 + 0.1) / 2)
    cfg_hinge = LossConfig(a_max=0.1, area_loss="hinge")
    assert area_loss(masks, cfg_hinge).item() == pytest.approx(0.4 / 2)
    cfg_st = LossConfig(a_max=0.1, area_loss="stalder", area_min=0.05)
    # target map 0: 0.5 above 0.1 -> 0.4; other map (area 0) pushed to 0 -> 0
    assert area_loss(masks, cfg_st, torch.tensor([0])).item() == pytest.approx(0.4)
    assert area_loss(masks, cfg_st, torch.tensor([1])).item() == pytest.approx(0.5 + 0.05)


def test_total_variation_constant_is_zero():
    assert total_variation(torch.ones(2, 3, 8, 8)).item() == 0.0


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="area_loss"):
        LossConfig(area_loss="l2")


class _CountingAgent(torch.nn.Module):
    def __init__(self, k):
        super().__init__()
        self.lin = torch.nn.Linear(2 * 8 * 8, k)
        self.calls = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return self.lin(x.flatten(1))


@pytest.mark.parametrize("kind", ["visionmask", "stalder", "explainer"])
def test_all_masked_states_go_through_one_agent_call(kind):
    torch.manual_seed(0)
    B, K = 3, 4
    agent = _CountingAgent(K)
    s = torch.rand(B, 2, 8, 8)
    masks = torch.rand(B, K, 8, 8, requires_grad=True)
    loss, terms = visionmask_loss(
        agent, s, torch.tensor([0, 1, 3]), masks, torch.zeros(1, 2, 8, 8), LossConfig(kind=kind, lambda_tv=0.1)
    )
    assert agent.calls == [B * 2 * K] if kind == "visionmask" else agent.calls == [B * 3]
    loss.backward()
    assert masks.grad is not None and masks.grad.abs().sum() > 0
    assert "loss/total" in terms


def test_l1_term_adds_the_mean_mask():
    torch.manual_seed(0)
    agent, s, a = _CountingAgent(2), torch.rand(2, 2, 8, 8), torch.tensor([0, 1])
    masks, r = torch.rand(2, 2, 8, 8), torch.zeros(1, 2, 8, 8)
    base, _ = visionmask_loss(agent, s, a, masks, r, LossConfig())
    with_l1, terms = visionmask_loss(agent, s, a, masks, r, LossConfig(lambda_l1=2.0))
    assert terms["loss/l1"] == pytest.approx(masks.mean().item())
    assert (with_l1 - base).item() == pytest.approx(2.0 * masks.mean().item(), abs=1e-5)


class _RunnerOnBeacon(torch.nn.Module):
    """Two actions, NOOP and MOVE, on 1x4x4 states: pixel A is the runner, pixel B the beacon.
    ``logit(NOOP) = 1``, ``logit(MOVE) = 3·(x_B - x_A)``: NOOP on the full state (runner on the
    beacon) and on the black reference, MOVE once the runner alone is removed."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        flat = x.flatten(1)
        move = 3.0 * (flat[:, 1] - flat[:, 0])
        return torch.stack([torch.ones_like(move), move], dim=1)


def test_deletion_term_asks_the_map_of_an_action_the_reference_yields_to_cover_its_evidence():
    agent = _RunnerOnBeacon()
    s = torch.zeros(1, 1, 4, 4)
    s[0, 0, 0, 0] = 1.0  # A
    s[0, 0, 0, 1] = 1.0  # B
    r, a = torch.zeros(1, 1, 4, 4), torch.tensor([0])
    cfg = dict(lambda_ne=0.0, lambda_area=0.0)

    def grad(lambda_del):
        masks = torch.zeros(1, 2, 4, 4, requires_grad=True)
        loss, terms = visionmask_loss(agent, s, a, masks, r, LossConfig(lambda_del=lambda_del, **cfg))
        loss.backward()
        assert masks.grad is not None
        return masks.grad[0, 0], terms

    g0, terms0 = grad(0.0)
    calls = agent.calls
    g1, terms1 = grad(1.0)
    assert agent.calls == calls + 1  # no extra agent pass
    assert "loss/del" not in terms0
    # empty NOOP map: its complement is the full state, where p(NOOP) = e / (e + 1)
    p = math.e / (math.e + 1)
    assert terms1["loss/del"] == pytest.approx(-math.log(1 - p), abs=1e-5)
    d = g1 - g0
    assert d[0, 0].item() < -0.5  # keeping the runner lowers the loss
    assert d[0, 1].item() > 0.5  # keeping the beacon alone raises it
    assert d.flatten()[2:].abs().max().item() == 0.0  # background pixels: no pull either way


def test_deletion_term_is_refused_with_the_stalder_loss():
    from vmask_live.errors import ConfigError
    from vmask_live.train import TrainConfig

    with pytest.raises(ConfigError, match="lambda_del"):
        TrainConfig(data="d", agent="a", out="o", loss=LossConfig(kind="stalder", lambda_del=1.0)).validate()
