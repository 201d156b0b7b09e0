"""Shared fixtures: real tiny models trained inside the test run on the ground-truth env."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    os.environ["VMASK_LIVE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def beacon_agent(tmp_path_factory):
    """Behaviour-cloned Beacon agent (trained once per session) and its metrics."""
    from vmask_live.agents import load_agent
    from vmask_live.train_agent import BCConfig, train_bc

    path = tmp_path_factory.mktemp("agent") / "agent.safetensors"
    _, metrics = train_bc(BCConfig(out=str(path), seed=0), progress=False)
    return load_agent(path), metrics, path


@pytest.fixture(scope="session")
def beacon_data(beacon_agent, tmp_path_factory):
    """A collected Beacon dataset (6000 states, ~60 episodes)."""
    from vmask_live.dataset import CollectConfig, collect

    out = tmp_path_factory.mktemp("data") / "beacon"
    return collect(
        CollectConfig(env="Beacon", out=str(out), steps=6000, shard_size=2000, seed=0),
        agent=beacon_agent[0],
        progress=False,
    )


@pytest.fixture(scope="session")
def beacon_explainer(beacon_agent, beacon_data, tmp_path_factory):
    """A VisionMask explainer trained for a few minutes of one CPU core.

    The recipe (paper loss, a_max 0.02, lr 2e-3, 1,200 steps of batch 16) was chosen for margin,
    not for the best maps. Measured on this fixture's agent and data (300 test states), seed 0:
    accuracy 95.7, relevance mass 28.2% against a relevant area of 1.34% (21x); the same pipeline
    with seed 1: 99.0 and 14.7% vs 1.32% (11x). The test asks accuracy >= 90 and mass >= 3x the
    area. The previous 300-step recipe left ~3.0x, and another CPU's float kernels fell below 3x;
    at 600 steps seed 1 reached only 2.4x (its maps were still shrinking).
    """
    from vmask_live.loss import LossConfig
    from vmask_live.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(
        data=str(beacon_data.path),
        out=str(out),
        epochs=12,
        steps_per_epoch=100,
        patience=12,
        batch_size=16,
        width=8,
        lr=2e-3,
        loss=LossConfig(area_loss="abs", a_max=0.02),
    )
    return train(cfg, agent=beacon_agent[0], progress=False)
