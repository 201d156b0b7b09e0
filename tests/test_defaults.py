"""The bundled checkpoints: real frames through ExplainedEnv, metrics on shipped test states."""

from pathlib import Path

import numpy as np
import pytest
import torch

import vmask_live as vm
from vmask_live.metrics import evaluate_maps

DEFAULTS = Path(vm.__file__).parent / "defaults"


@pytest.mark.parametrize("env_name", ["Beacon", "MsPacman", "Seaquest", "Enduro"])
def test_bundled_checkpoints_run_real_steps(env_name):
    agent = vm.load_agent(f"default:{env_name}")
    explainer = vm.load_explainer(f"default:{env_name}")
    env = vm.ExplainedEnv(vm.make_env(env_name, render_mode="rgb_array"), explainer, agent=agent, panel=True)
    obs, info = env.reset(seed=0)
    k = env.action_space.n
    for _ in range(5):
        assert info["saliency"].shape == (k, 84, 84)
        obs, _, _, _, info = env.step(info["saliency_action"])
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[1] > env.env.render().shape[1]
    assert (DEFAULTS / env_name / "PROVENANCE.md").stat().st_size > 500
    for f in ("agent.safetensors", "explainer.safetensors"):
        assert (DEFAULTS / env_name / f).stat().st_size < 10 * 2**20


def test_mspacman_explainer_meets_the_quality_targets_on_shipped_test_states():
    data = np.load(Path(__file__).parent / "data" / "mspacman_test_states.npz")
    agent = vm.load_agent("default:MsPacman")
    explainer = vm.load_explainer("default:MsPacman")
    x = explainer.obs_format.to_model(data["obs"])
    with torch.inference_mode():
        a = agent(x).argmax(1)
    assert (a.numpy() == data["actions"]).all()  # the shipped labels are this agent's actions
    res = evaluate_maps(agent, x, a, explainer.attribute, explainer.reference, with_lle=False)
    print(res)
    acc_min, ins_min, del_max = data["thresholds"].tolist()
    assert res["accuracy"] >= acc_min
    assert res["insertion"] >= ins_min
    assert res["deletion"] <= del_max
