import gymnasium as gym
import numpy as np
import pytest
import torch

from vmask_live.observations import ObservationError, ObsFormat


@pytest.mark.parametrize(
    ("shape", "layout", "chw"),
    [((84, 84), "hw", (1, 84, 84)), ((4, 84, 84), "chw", (4, 84, 84)), ((64, 48, 3), "hwc", (3, 64, 48))],
)
def test_layouts(shape, layout, chw):
    fmt = ObsFormat.from_space(gym.spaces.Box(0, 255, shape, np.uint8))
    assert fmt.layout == layout and fmt.chw == chw
    obs = np.random.default_rng(0).integers(0, 256, (2, *shape), dtype=np.uint8)
    x = fmt.to_model(obs)
    assert x.shape == (2, *chw) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(fmt.to_raw(x), obs)


def test_non_pixel_spaces_get_clear_errors():
    with pytest.raises(ObservationError, match="pixel observation space"):
        ObsFormat.from_space(gym.spaces.Box(-1, 1, (4,), np.float32))
    with pytest.raises(ObservationError, match="Dict space"):
        ObsFormat.from_space(gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (84, 84), np.uint8)}))
    with pytest.raises(ObservationError, match="pixel observation space"):
        ObsFormat.from_space(gym.spaces.Discrete(3))
    with pytest.raises(ObservationError, match="finite high"):
        ObsFormat.from_space(gym.spaces.Box(0, np.inf, (84, 84), np.float32))


def test_wrong_observation_shape_is_reported():
    fmt = ObsFormat((4, 84, 84), "chw")
    with pytest.raises(ObservationError, match=r"Expected observations of shape \(4, 84, 84\).*got \(1, 84, 84\)"):
        fmt.check(np.zeros((1, 84, 84), np.uint8), batched=False)
