import importlib.util

import numpy as np
import pytest
import torch

from vmask_live.export import BackendUnavailable, available_backends, export_explainer, load_runtime, resolve_backend
from vmask_live.testing import tiny_explainer

OBS = np.random.default_rng(0).integers(0, 256, (4, 84, 84), dtype=np.uint8)


def test_auto_picks_onnx_runtime_on_this_cpu():
    pytest.importorskip("onnxruntime")
    assert resolve_backend("auto", "cpu") == ("onnx", "cpu")
    assert "onnx" in available_backends("cpu") and "torch" in available_backends("cpu")


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_backend_parity_with_eager_torch(backend):
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    exp = tiny_explainer()
    ref = exp(OBS)
    rt = load_runtime(exp, backend=backend, device="cpu")
    out = rt(OBS)
    assert out.shape == ref.shape == (4, 5, 84, 84) and out.dtype == np.float32
    assert np.abs(out - ref).max() < 1e-4
    a = ref.reshape(4, 5, -1).argmax(2)
    assert (out.reshape(4, 5, -1).argmax(2) == a).all()
    x = exp.obs_format.to_model(OBS)
    assert torch.allclose(
        rt.attribute(x, torch.tensor([0, 1, 2, 3])), exp.attribute(x, torch.tensor([0, 1, 2, 3])), atol=1e-4
    )


def test_stale_artifact_is_never_used(tmp_path):
    pytest.importorskip("onnxruntime")
    exp = tiny_explainer(seed=0)
    rt = load_runtime(exp, backend="onnx")
    other = tiny_explainer(seed=1)
    path = export_explainer(other, "onnx", tmp_path / "other.onnx")
    with pytest.raises(ValueError, match="exported from other weights"):
        load_runtime(exp, backend="onnx", artifact=path)
    # the cache is keyed by the weights hash: a retrained explainer gets its own artifact
    rt2 = load_runtime(other, backend="onnx")
    assert rt.artifact != rt2.artifact
    assert np.abs(rt2(OBS) - other(OBS)).max() < 1e-4


def test_unavailable_backend_says_how_to_install():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailable, match=r'pip install "vmask-live\[tensorrt\]"'):
        load_runtime(tiny_explainer(), backend="tensorrt")
    with pytest.raises(ValueError, match="Expected backend"):
        load_runtime(tiny_explainer(), backend="tflite")


@pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("torch_tensorrt") is None,
    reason="TensorRT needs an NVIDIA GPU and torch-tensorrt (pip install 'vmask-live[tensorrt]')",
)
def test_tensorrt_parity():
    exp = tiny_explainer()
    rt = load_runtime(exp, backend="tensorrt", device="cuda", batch_size=4)
    ref = exp.to("cpu")(OBS)
    assert np.abs(rt(OBS) - ref).max() < 1e-3
