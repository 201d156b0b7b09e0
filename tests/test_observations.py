import gymnasium as gym
import numpy as np
import pytest
import torch

from vmask_live.observations import ObservationError, ObsFormat


@pytest.mark.parametrize(
    ("shape", "layout", "chw"),
    [
        ((84, 84), "hw", (1, 84, 84)),
        ((4, 84, 84), "chw", (4, 84, 84)),
        ((64, 48, 3), "hwc", (3, 64, 48)),
        ((3, 16, 16), "chw", (3, 16, 16)),  # small images: both ends are <= 16
        ((16, 16, 3), "hwc", (3, 16, 16)),
        ((10, 10, 4), "hwc", (4, 10, 10)),  # MinAtar
    ],
)
def test_layouts(shape, layout, chw):
    fmt = ObsFormat.from_space(gym.spaces.Box(0, 255, shape, np.uint8))
    assert fmt.layout == layout and fmt.chw == chw
    obs = np.random.default_rng(0).integers(0, 256, (2, *shape), dtype=np.uint8)
    x = fmt.to_model(obs)
    assert x.shape == (2, *chw) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(fmt.to_raw(x), obs)


def test_ambiguous_and_tiny_images_are_refused():
    with pytest.raises(ObservationError, match=r"Cannot tell the channel axis of observation shape \(4, 4, 4\)"):
        ObsFormat.from_space(gym.spaces.Box(0, 255, (4, 4, 4), np.uint8))
    with pytest.raises(ObservationError, match=r"at least 8x8 pixels, got 6x6"):
        ObsFormat.from_space(gym.spaces.Box(0, 255, (4, 6, 6), np.uint8))


def test_model_space_batches_are_checked():
    fmt = ObsFormat((4, 84, 84), "chw")
    fmt.check_model(torch.rand(2, 4, 84, 84))
    for bad, message in [
        (torch.rand(2, 4, 96, 96), r"shape \(B, 4, 84, 84\), got shape \(2, 4, 96, 96\)"),
        (torch.rand(2, 4, 84, 84) * 255, r"values in \[0, 1\], got values in"),
        (torch.full((1, 4, 84, 84), float("nan")), "NaN"),
        (torch.zeros(1, 4, 84, 84, dtype=torch.uint8), "floating-point"),
    ]:
        with pytest.raises(ObservationError, match=message):
            fmt.check_model(bad)


def test_non_pixel_spaces_get_clear_errors():
    with pytest.raises(ObservationError, match="pixel observation space"):
        ObsFormat.from_space(gym.spaces.Box(-1, 1, (4,), np.float32))
    with pytest.raises(ObservationError, match="Dict space"):
        ObsFormat.from_space(gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (84, 84), np.uint8)}))
    with pytest.raises(ObservationError, match="pixel observation space"):
        ObsFormat.from_space(gym.spaces.Discrete(3))
    with pytest.raises(ObservationError, match="finite low < high"):
        ObsFormat.from_space(gym.spaces.Box(0, np.inf, (84, 84), np.float32))
    # pixels normalised to [-1, 1]: every rebuilt observation (counterfactual views, LLE neighbours)
    # would be clamped to [0, 1] and lose its negative half
    with pytest.raises(ObservationError, match=r"Expected non-negative pixel values .* low -1; map them to \[0, 1\]"):
        ObsFormat.from_space(gym.spaces.Box(-1.0, 1.0, (84, 84), np.float32))


def test_wrong_observation_shape_is_reported():
    fmt = ObsFormat((4, 84, 84), "chw")
    with pytest.raises(ObservationError, match=r"Expected observations of shape \(4, 84, 84\).*got .*\(1, 84, 84\)"):
        fmt.check(np.zeros((1, 84, 84), np.uint8), batched=False)


def test_unbatched_and_channel_last_observations_say_what_to_do():
    fmt = ObsFormat((4, 84, 84), "chw")
    with pytest.raises(ObservationError, match=r"single observation: pass a batch of one, obs\[None\]"):
        fmt.check(np.zeros((4, 84, 84), np.uint8), batched=True)
    with pytest.raises(ObservationError, match=r"channel-last.*np.moveaxis\(obs, -1, -3\).*VecTransposeImage"):
        fmt.check(np.zeros((2, 84, 84, 4), np.uint8), batched=True)


def test_dtype_range_and_finiteness_are_checked_per_batch():
    fmt = ObsFormat((84, 84), "hw")
    assert fmt.dtype == "uint8" and fmt.high == 255.0
    with pytest.raises(ObservationError, match=r"expected dtype uint8, got float32.*scale_obs=True"):
        fmt.check(np.full((1, 84, 84), 0.5, np.float32), batched=True)
    float_fmt = ObsFormat.from_space(gym.spaces.Box(0.0, 1.0, (84, 84), np.float32))
    assert (float_fmt.dtype, float_fmt.low, float_fmt.high, float_fmt.scale) == ("float32", 0.0, 1.0, 1.0)
    obs = np.full((2, 84, 84), 0.5, np.float32)
    float_fmt.check(obs, batched=True)
    obs[1, 3, 4] = np.nan
    with pytest.raises(ObservationError, match="1 of 14112 values are NaN or infinite"):
        float_fmt.check(obs, batched=True)
    with pytest.raises(ObservationError, match=r"expected values in \[0.0, 1.0\], got values in \[0, 255\]"):
        float_fmt.check(np.full((1, 84, 84), 255.0, np.float32) * (np.arange(84) > 0), batched=True)
    with pytest.raises(ObservationError, match="expected floating-point pixels"):
        float_fmt.check(np.zeros((1, 84, 84), np.uint8), batched=True)


def test_space_adapter_refuses_a_scaled_env_and_transposes_channel_last():
    fmt = ObsFormat((4, 84, 84), "chw")
    with pytest.raises(ObservationError, match=r"expects uint8 \(4, 84, 84\) in \[0, 255\].*float32.*scale_obs=True"):
        fmt.adapter(gym.spaces.Box(0.0, 1.0, (4, 84, 84), np.float32))
    adapt = fmt.adapter(gym.spaces.Box(0, 255, (84, 84, 4), np.uint8))
    obs = np.random.default_rng(0).integers(0, 256, (3, 84, 84, 4), dtype=np.uint8)
    out = adapt(obs)
    assert out.shape == (3, 4, 84, 84)
    np.testing.assert_array_equal(out[:, 2], obs[..., 2])
    with pytest.raises(ObservationError, match=r"shape \(84, 84\)"):
        fmt.adapter(gym.spaces.Box(0, 255, (84, 84), np.uint8))


def test_old_checkpoint_formats_get_uint8_defaults():
    old = ObsFormat.from_dict({"shape": [4, 84, 84], "layout": "chw", "scale": 255.0})
    assert (old.dtype, old.low, old.high) == ("uint8", 0.0, 255.0)
    assert ObsFormat.from_dict(old.to_dict()) == old


def test_dict_space_error_says_how_to_pick_the_image():
    space = gym.spaces.Dict(
        {"state": gym.spaces.Box(-1, 1, (3,)), "pixels": gym.spaces.Box(0, 255, (84, 84), np.uint8)}
    )
    with pytest.raises(ObservationError, match=r"TransformObservation\(env, lambda o: o\['pixels'\]"):
        ObsFormat.from_space(space)
