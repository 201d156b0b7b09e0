"""SB3 zips load without un-pickling: same outputs as SB3, crafted payloads never run, unknown nets refused."""

from __future__ import annotations

import base64
import json
import pickle
import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch

from vmask_live.agents import TorchAgent, agent_from_sb3, load_agent
from vmask_live.errors import CheckpointError
from vmask_live.sb3_zip import read_sb3_zip

STATES = np.random.default_rng(0).integers(0, 256, (8, 4, 84, 84), dtype=np.uint8)


class _ImageEnv(gym.Env):
    """Channel-last uint8 frames (as Atari wrappers give them); SB3 stores the transposed space."""

    def __init__(self, shape: tuple[int, ...] = (84, 84, 4)) -> None:
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(5)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def _make(algo: str, policy: str = "CnnPolicy", env: gym.Env | None = None, **kwargs):
    import stable_baselines3 as sb3

    cls = getattr(sb3, algo)
    if algo == "DQN":
        kwargs = {"buffer_size": 100, "learning_starts": 0, **kwargs}
    return cls(policy, env or _ImageEnv(), device="cpu", seed=0, **kwargs)


@pytest.fixture(scope="module")
def sb3_zips(tmp_path_factory):
    """Untrained PPO, A2C and DQN CnnPolicy models saved by SB3: {algo: (model, zip path)}."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("sb3")
    out = {}
    for algo in ("PPO", "A2C", "DQN"):
        model = _make(algo)
        model.save(folder / f"{algo.lower()}.zip")
        out[algo] = (model, folder / f"{algo.lower()}.zip")
    return out


def _sb3_outputs(policy, obs: torch.Tensor) -> torch.Tensor:
    """SB3's own raw action logits (actor) or Q-values for uint8 observations."""
    if hasattr(policy, "q_net"):
        return policy.q_net(obs)
    features = policy.extract_features(obs)
    if isinstance(features, tuple):  # separate actor / critic extractors: (pi, vf)
        features = features[0]
    return policy.action_net(policy.mlp_extractor.forward_actor(features))


def _with_data(src, dst, edit) -> None:
    """Copy an SB3 zip, rewriting its JSON ``data`` entry with ``edit(dict)``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            payload = zin.read(item.filename)
            if item.filename == "data":
                data = json.loads(payload)
                edit(data)
                payload = json.dumps(data).encode()
            zout.writestr(item, payload)


class _WritesMarker:
    """Un-pickling this runs ``open(marker, "w")``: the stand-in for a malicious payload."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _serialized(obj) -> dict:
    return {":type:": "<class 'NoneType'>", ":serialized:": base64.b64encode(pickle.dumps(obj)).decode()}


@pytest.mark.parametrize("algo", ["PPO", "A2C", "DQN"])
def test_safe_loader_matches_sb3_exactly(sb3_zips, algo):
    import stable_baselines3 as sb3

    model, path = sb3_zips[algo]
    agent = load_agent(path)
    assert isinstance(agent, TorchAgent) and agent.n_actions == 5
    assert agent.obs_format.shape == (4, 84, 84) and agent.obs_format.layout == "chw"
    assert agent.info["algo"] == algo and agent.input_scale == 1.0
    reloaded = getattr(sb3, algo).load(path, device="cpu")  # SB3's own loader on our own file
    obs = torch.as_tensor(STATES)
    with torch.no_grad():
        ours = agent(agent.obs_format.to_model(STATES))
        for policy in (model.policy, reloaded.policy):
            assert torch.equal(ours, _sb3_outputs(policy, obs))
        if algo != "DQN":
            dist = reloaded.policy.get_distribution(obs).distribution.logits
            assert (torch.log_softmax(ours, 1) - dist).abs().max() < 1e-6
    actions, _ = reloaded.predict(STATES, deterministic=True)
    assert (ours.argmax(1).numpy() == actions).all()
    # the live-model converter is the same code path and gives the same agent
    with torch.no_grad():
        assert torch.equal(agent_from_sb3(model)(agent.obs_format.to_model(STATES)), ours)


@pytest.mark.parametrize("algo", ["PPO", "DQN"])
def test_one_policy_has_one_hash_however_it_is_loaded(sb3_zips, algo):
    """An explainer paired with the zip stays paired with SB3's own loader and with the live model."""
    from vmask_live.pairing import agent_hash
    from vmask_live.wrappers.explained_env import resolve_agent

    model, path = sb3_zips[algo]
    safe = agent_hash(load_agent(path))
    assert agent_hash(load_agent(path, trust_pickle=True)) == safe
    assert agent_hash(resolve_agent(model)) == safe  # the live model, as ExplainedEnv(agent=model) takes it
    _, other = sb3_zips["DQN" if algo == "PPO" else "PPO"]  # (PPO and A2C start from the same seed)
    assert agent_hash(load_agent(other)) != safe


def test_export_ppo_uses_the_safe_loader(sb3_zips, tmp_path, monkeypatch):
    from stable_baselines3.common import save_util

    from vmask_live.train_agent import export_ppo

    model, path = sb3_zips["PPO"]
    run = tmp_path / "run"
    run.mkdir()
    (run / "ppo.zip").write_bytes(path.read_bytes())
    (run / "config.json").write_text(json.dumps({"env": "Beacon"}))  # 5 actions, like the test env

    def _no_unpickling(*args, **kwargs):
        raise AssertionError("SB3's unpickling loader was called")

    monkeypatch.setattr(save_util, "json_to_data", _no_unpickling)
    out = export_ppo(run / "ppo.zip", tmp_path / "agent.safetensors")
    back = load_agent(out)
    with torch.no_grad():
        assert torch.equal(back(back.obs_format.to_model(STATES)), _sb3_outputs(model.policy, torch.as_tensor(STATES)))


def test_crafted_payload_never_runs_without_trust_pickle(sb3_zips, tmp_path):
    _, path = sb3_zips["PPO"]
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted.zip"
    _with_data(path, crafted, lambda d: d.update(action_noise=_serialized(_WritesMarker(marker))))
    agent = load_agent(crafted)  # a standard CnnPolicy otherwise: loads, payload ignored
    assert isinstance(agent, TorchAgent) and not marker.exists()

    # a payload in the policy class itself: refused, still not run
    refused = tmp_path / "refused.zip"
    _with_data(path, refused, lambda d: d.update(policy_class=_serialized(_WritesMarker(marker))))
    with pytest.raises(CheckpointError, match="trust_pickle=True"):
        load_agent(refused)
    assert not marker.exists()

    # only the explicit opt-in reaches SB3's loader, which runs the payload
    load_agent(crafted, trust_pickle=True)
    assert marker.exists()


def test_mlp_policy_is_refused_naming_the_opt_in(tmp_path):
    env = _ImageEnv((36, 36, 1))
    path = tmp_path / "mlp.zip"
    _make("PPO", "MlpPolicy", env, policy_kwargs={"net_arch": [8]}).save(path)
    with pytest.raises(CheckpointError, match=r"ActorCriticPolicy.*trust_pickle=True.*--trust-agent-file"):
        load_agent(path)


def test_extra_policy_layers_and_wrong_algo_are_refused(sb3_zips, tmp_path):
    path = tmp_path / "deep.zip"
    _make(
        "PPO", policy_kwargs={"net_arch": {"pi": [16], "vf": []}, "features_extractor_kwargs": {"features_dim": 8}}
    ).save(path)
    with pytest.raises(CheckpointError, match=r"mlp_extractor\.policy_net.*trust_pickle=True"):
        load_agent(path)
    with pytest.raises(CheckpointError, match="Expected a DQN zip"):
        load_agent(sb3_zips["PPO"][1], algo="DQN")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(sb3_zips["PPO"][1].read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_agent(broken)


def test_value_side_layers_are_ignored(tmp_path):
    """A value-only MLP (net_arch vf=[16]) leaves the actor NatureCNN + action_net: loadable."""
    model = _make("A2C", policy_kwargs={"net_arch": {"pi": [], "vf": [16]}, "share_features_extractor": False})
    path = tmp_path / "a2c.zip"
    model.save(path)
    assert read_sb3_zip(path).algo == "A2C"
    agent = load_agent(path)
    with torch.no_grad():
        assert torch.equal(
            agent(agent.obs_format.to_model(STATES)), _sb3_outputs(model.policy, torch.as_tensor(STATES))
        )


@pytest.mark.parametrize("algo", ["PPO", "A2C", "DQN"])
def test_every_loading_route_gives_the_same_logits_and_input_gradients(sb3_zips, algo):
    """The trusted (pickle) and live-model agents give the raw action-head outputs, as the converted
    zip does: normalised log-probabilities would have the same softmax but other input gradients,
    so gradient-based saliency would explain another function."""
    from vmask_live.agents import SB3Agent

    model, path = sb3_zips[algo]
    safe, live = load_agent(path), SB3Agent(model).freeze()
    x = safe.obs_format.to_model(STATES[:2])
    grads = []
    for agent in (safe, live):
        xi = x.clone().requires_grad_(True)
        out = agent(xi)
        out[:, 1].sum().backward()
        grads.append((out.detach(), xi.grad))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-7)
