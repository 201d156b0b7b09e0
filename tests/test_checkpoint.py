import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vmask_live.agents import load_agent, save_agent
from vmask_live.checkpoint import CheckpointError
from vmask_live.explainer import Explainer, load_explainer
from vmask_live.testing import tiny_agent, tiny_explainer


def test_explainer_round_trip(tmp_path):
    exp = tiny_explainer()
    path = exp.save(tmp_path / "e.safetensors", {"metrics": {"accuracy": 1.0}})
    back = Explainer.load(path)
    obs = np.random.default_rng(0).integers(0, 256, (3, 84, 84), dtype=np.uint8)
    np.testing.assert_allclose(exp(obs), back(obs), atol=1e-6)
    assert back.meta["metrics"] == {"accuracy": 1.0}
    assert back.weights_hash() == exp.weights_hash()
    assert back.obs_format == exp.obs_format and back.reference.kind == "black"


def test_corrupt_truncated_and_foreign_files(tmp_path):
    path = tiny_explainer().save(tmp_path / "e.safetensors")
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_explainer(tmp_path / "trunc.safetensors", backend="none")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_explainer(tmp_path / "junk.safetensors", backend="none")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not a vmask-live checkpoint"):
        load_explainer(tmp_path / "foreign.safetensors", backend="none")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_explainer(tmp_path / "missing.safetensors", backend="none")


def test_agent_checkpoint_is_not_an_explainer(tmp_path):
    agent = tiny_agent()
    path = save_agent(
        tmp_path / "a.safetensors",
        agent,
        "small_cnn",
        {"in_channels": 1, "n_actions": 5, "input_size": [84, 84], "width": 4},
    )
    with pytest.raises(CheckpointError, match="Expected a vmask-live explainer checkpoint, got a 'agent'"):
        load_explainer(path, backend="none")
    back = load_agent(path)
    x = torch.rand(2, 1, 84, 84)
    assert torch.allclose(back(x), agent(x))


def test_missing_weights_are_reported(tmp_path):
    exp = tiny_explainer()
    tensors = exp.tensors()
    tensors.pop(next(iter(tensors)))
    from vmask_live.checkpoint import read_checkpoint, save_checkpoint

    _, meta = read_checkpoint(exp.save(tmp_path / "ok.safetensors"), "explainer")
    save_checkpoint(tmp_path / "bad.safetensors", tensors, meta)
    with pytest.raises(CheckpointError, match="missing keys"):
        load_explainer(tmp_path / "bad.safetensors", backend="none")


def test_explainer_file_whose_names_or_reference_do_not_fit_is_refused(tmp_path):
    from vmask_live.checkpoint import read_checkpoint, save_checkpoint
    from vmask_live.errors import CheckpointError
    from vmask_live.explainer import Explainer
    from vmask_live.testing import tiny_explainer

    path = tiny_explainer().save(tmp_path / "e.safetensors")
    tensors, meta = read_checkpoint(path, "explainer")
    save_checkpoint(tmp_path / "names.safetensors", tensors, {**meta, "action_names": ["A", "B", "C"]})
    with pytest.raises(CheckpointError, match="names 3 actions but its network makes 5 maps"):
        Explainer.load(tmp_path / "names.safetensors")
    save_checkpoint(tmp_path / "ref.safetensors", tensors, {**meta, "reference": {"kind": "blur"}})
    with pytest.raises(CheckpointError, match="has a reference it cannot rebuild"):
        Explainer.load(tmp_path / "ref.safetensors")


def test_non_finite_weights_are_never_written_nor_loaded(tmp_path):
    """NaN weights make maps and actions that look like numbers (evaluate scored such an explainer
    at insertion 21.8): saving refuses them, and a file holding them (written by hand) is refused."""
    from safetensors.torch import load_file

    exp = tiny_explainer()
    path = exp.save(tmp_path / "e.safetensors")
    with torch.no_grad():
        next(exp.net.parameters())[0].fill_(float("nan"))
    with pytest.raises(CheckpointError, match=r"Refusing to write .*e\.safetensors.*hold NaN or infinite values"):
        exp.save(path)
    Explainer.load(path)  # the file already there is kept, finite

    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    name = next(k for k, t in tensors.items() if t.is_floating_point())
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[0] = float("inf")
    save_file(tensors, str(tmp_path / "inf.safetensors"), metadata=metadata)
    with pytest.raises(
        CheckpointError, match=rf"holds NaN or infinite values in {name}: .*diverged run or was damaged"
    ):
        Explainer.load(tmp_path / "inf.safetensors")

    agent = tiny_agent()
    kwargs = {"in_channels": 1, "n_actions": 5, "input_size": (84, 84), "width": 4}
    with torch.no_grad():
        next(agent.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="hold NaN or infinite values"):
        save_agent(tmp_path / "agent.safetensors", agent, "small_cnn", kwargs)
