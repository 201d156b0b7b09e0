import hashlib
import importlib.util
import json

import numpy as np
import pytest
import torch

from vmask_live.errors import UnsafeFileError
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


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sidecar(path):
    return path.with_name(path.name + ".json")


def test_corrupt_cached_artifact_is_rebuilt():
    pytest.importorskip("onnxruntime")
    exp = tiny_explainer(seed=3)
    art = load_runtime(exp, backend="onnx").artifact
    art.write_bytes(art.read_bytes()[: art.stat().st_size // 2])  # a torn write / disk damage
    rt = load_runtime(exp, backend="onnx")
    assert rt.artifact == art and np.abs(rt(OBS) - exp(OBS)).max() < 1e-4
    assert json.loads(_sidecar(art).read_text())["sha256"] == _sha256(art)
    # damaged before its hash was taken: the hash matches, onnxruntime raises InvalidProtobuf on
    # load; the cache rebuilds it once instead of failing on every later run
    art.write_bytes(art.read_bytes()[:1000])
    side = json.loads(_sidecar(art).read_text())
    _sidecar(art).write_text(json.dumps({**side, "sha256": _sha256(art)}))
    with pytest.warns(RuntimeWarning, match="could not be loaded.*rebuilding"):
        rt = load_runtime(exp, backend="onnx")
    assert np.abs(rt(OBS) - exp(OBS)).max() < 1e-4


def test_tampered_artifact_is_never_loaded(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from vmask_live.export import onnx_backend

    exp, other = tiny_explainer(seed=0), tiny_explainer(seed=1)
    mine = export_explainer(exp, "onnx", tmp_path / "mine.onnx")
    theirs = export_explainer(other, "onnx", tmp_path / "theirs.onnx")
    loaded = []  # (path, whether its bytes had the SHA-256 its sidecar records) per backend load
    real_load = onnx_backend.load

    def spy(path, *args, **kwargs):
        loaded.append((path, json.loads(_sidecar(path).read_text())["sha256"] == _sha256(path)))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(onnx_backend, "load", spy)
    mine.write_bytes(theirs.read_bytes())  # swapped for another (valid) model behind our sidecar
    with pytest.raises(UnsafeFileError, match=r"bytes changed since export.*refused.*vmask-live export"):
        load_runtime(exp, backend="onnx", artifact=mine)
    side = json.loads(_sidecar(theirs).read_text())
    del side["sha256"]  # exported by an older vmask-live, or not by us
    _sidecar(theirs).write_text(json.dumps(side))
    with pytest.raises(UnsafeFileError, match="records no SHA-256"):
        load_runtime(other, backend="onnx", artifact=theirs)
    _sidecar(theirs).unlink()
    with pytest.raises(UnsafeFileError, match="no metadata sidecar"):
        load_runtime(other, backend="onnx", artifact=theirs)
    assert loaded == []

    # the same tampering in the cache: the entry is rebuilt, and only our own bytes are loaded
    cached = load_runtime(exp, backend="onnx").artifact
    cached.write_bytes(mine.read_bytes())
    loaded.clear()
    rt = load_runtime(exp, backend="onnx")
    assert loaded == [(cached, True)]
    assert np.abs(rt(OBS) - exp(OBS)).max() < 1e-4 and np.abs(rt(OBS) - other(OBS)).max() > 1e-3


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


def test_load_explainer_is_the_one_loader(tmp_path):
    from vmask_live.errors import ConfigError
    from vmask_live.explainer import Explainer
    from vmask_live.export import Runtime, load_explainer

    exp = tiny_explainer()
    path = exp.save(tmp_path / "e.safetensors")
    plain = load_explainer(path, backend="none")
    assert type(plain) is Explainer and plain.path == path and np.abs(plain(OBS) - exp(OBS)).max() < 1e-6
    assert load_explainer(exp, backend="none") is exp
    rt = load_explainer(str(path), backend="torch", device="cpu")
    assert isinstance(rt, Runtime) and rt.backend == "torch" and np.abs(rt(OBS) - exp(OBS)).max() < 1e-5
    assert load_explainer(rt, backend="onnx") is rt  # already loaded for inference: used as it is
    default = load_explainer("default:Beacon", backend="none")
    assert isinstance(default, Explainer) and default.path.parent.name == "Beacon"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_explainer(tmp_path / "missing.safetensors")
    with pytest.raises(ConfigError, match=r"got int, which lacks n_actions, action_names.*vm.load_explainer"):
        load_explainer(3)  # type: ignore[arg-type]


def test_the_auto_backend_is_onnx_runtime_on_a_cpu():
    pytest.importorskip("onnxruntime")
    import vmask_live as vm

    rt = vm.load_explainer("default:Beacon", device="cpu")
    assert rt.backend == "onnx" and rt.artifact.suffix == ".onnx"


def test_the_core_loader_refuses_to_pick_a_backend():
    from vmask_live.errors import ConfigError
    from vmask_live.explainer import Explainer, load_explainer

    assert isinstance(load_explainer("default:Beacon", backend="none"), Explainer)
    with pytest.raises(ConfigError, match=r"backend='none'.*got backend='auto'.*vmask_live.load_explainer\(spec"):
        load_explainer("default:Beacon")


def test_default_artifact_path_names_cache_entries_and_cli_exports(tmp_path):
    from vmask_live.errors import ConfigError
    from vmask_live.export import cache_dir, default_artifact_path

    exp = tiny_explainer()
    key = exp.weights_hash()[:16]
    assert default_artifact_path(exp, "onnx") == cache_dir() / f"{key}-onnx-dyn-fp32.onnx"
    assert default_artifact_path(exp, "tensorrt", 1, "fp16") == cache_dir() / f"{key}-tensorrt-b1-fp16.ep"
    # beside the checkpoint only when there is one
    assert default_artifact_path(exp, "onnx", beside_checkpoint=True) == default_artifact_path(exp, "onnx")
    exp.save(tmp_path / "e.safetensors")
    assert default_artifact_path(exp, "onnx", 4, beside_checkpoint=True) == tmp_path / "e.onnx-b4-fp32.onnx"
    with pytest.raises(ConfigError, match="resolve 'auto' first"):
        default_artifact_path(exp, "auto")


def test_runtime_attribute_returns_on_the_input_device_with_static_batches():
    exp = tiny_explainer()
    rt = load_runtime(exp, backend="torch", device="cpu")
    rt.batch_size = 3  # as a static-shape engine: chunks of 3, the last one padded
    x = exp.obs_format.to_model(OBS)
    actions = torch.tensor([4, 3, 2, 1])
    got = rt.attribute(x, actions)
    assert got.shape == (4, 84, 84) and got.device == x.device and not got.is_inference()
    assert torch.allclose(got, exp.attribute(x, actions), atol=1e-5)


def test_docstring_examples_run():
    import doctest

    from vmask_live.export import runtime

    res = doctest.testmod(runtime)
    assert res.attempted > 0 and res.failed == 0


def test_static_batch_onnx_runs_any_batch_like_the_dynamic_one(tmp_path):
    pytest.importorskip("onnxruntime")
    exp = tiny_explainer(seed=5)
    obs = np.random.default_rng(1).integers(0, 256, (6, 84, 84), dtype=np.uint8)
    dynamic = load_runtime(exp, backend="onnx", device="cpu")
    assert dynamic.batch_size is None
    cached = load_runtime(exp, backend="onnx", device="cpu", batch_size=4)  # built in the cache
    path = export_explainer(exp, "onnx", tmp_path / "b4.onnx", batch_size=4)
    named = load_runtime(exp, backend="onnx", device="cpu", artifact=path)  # batch size adopted from the file
    for rt in (cached, named):
        for n in (1, 6):  # padded up to 4, and chunked as 4 + 2 (padded)
            out = rt(obs[:n])
            assert out.shape == (n, 5, 84, 84)
            np.testing.assert_allclose(out, dynamic(obs[:n]), atol=1e-5)
        assert rt.batch_size == 4


def test_artifact_built_with_other_settings_is_refused(tmp_path):
    pytest.importorskip("onnxruntime")
    from vmask_live.errors import ConfigError

    exp = tiny_explainer(seed=6)
    b4 = export_explainer(exp, "onnx", tmp_path / "b4.onnx", batch_size=4)
    with pytest.raises(
        ConfigError,
        match=r"built with batch_size=4, asked batch_size=1.*refused.*vmask-live export .*--batch 1 .*drop the batch_size",
    ):
        load_runtime(exp, backend="onnx", batch_size=1, artifact=b4)
    dyn = export_explainer(exp, "onnx", tmp_path / "dyn.onnx")
    with pytest.raises(ConfigError, match=r"built with a dynamic batch, asked batch_size=4"):
        load_runtime(exp, backend="onnx", batch_size=4, artifact=dyn)
    # an older vmask-live recorded fp16 beside an fp32 ONNX model: the sidecar's claim is refused
    side = json.loads(_sidecar(b4).read_text())
    _sidecar(b4).write_text(json.dumps({**side, "precision": "fp16"}))
    with pytest.raises(ValueError, match=r"claims precision 'fp16', which onnx artifacts never have.*re-export"):
        load_runtime(exp, backend="onnx", artifact=b4)
    assert load_runtime(exp, backend="onnx", batch_size=4, precision="fp32", artifact=b4.with_name("new.onnx"))


def test_fp16_on_onnx_is_refused_not_recorded(tmp_path):
    pytest.importorskip("onnxruntime")
    from vmask_live.errors import ConfigError

    exp = tiny_explainer()
    fp16_only_on_tensorrt = r"got 'fp16': ONNX Runtime runs fp32 only here; use the TensorRT backend for fp16"
    with pytest.raises(ConfigError, match=fp16_only_on_tensorrt):
        export_explainer(exp, "onnx", tmp_path / "h.onnx", precision="fp16")
    with pytest.raises(ConfigError, match=fp16_only_on_tensorrt):
        load_runtime(exp, backend="onnx", precision="fp16")
    with pytest.raises(ConfigError, match=r"eager torch runs fp32 only"):
        load_runtime(exp, backend="torch", precision="fp16")
    assert not list(tmp_path.iterdir())  # no model, no sidecar claiming fp16
