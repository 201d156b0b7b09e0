"""The overlay of paper eq. 1 and its references (SPEC §1), checked on small exact examples."""

import numpy as np
import pytest
import torch

from vmask_live.errors import ConfigError
from vmask_live.overlay import Reference, default_blur, gaussian_blur, overlay


def _states(b=2, c=3, h=5, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand((b, c, h, w), generator=g),
        torch.rand((b, c, h, w), generator=g),
        torch.rand((b, h, w), generator=g),
    )


# overlay -----------------------------------------------------------------------------------------


def test_full_mask_keeps_the_state_and_empty_mask_gives_the_reference():
    # multiples of 1/8 are exact in float32, so the blend must reproduce them bit for bit
    s = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4) % 8 / 8
    r = (7 - torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4) % 8) / 8
    ones, zeros = torch.ones(2, 4, 4), torch.zeros(2, 4, 4)
    assert torch.equal(overlay(s, ones, r), s)
    assert torch.equal(overlay(s, zeros, r), r)


def test_overlay_is_the_convex_blend_of_eq_1():
    s, r, m = _states()
    torch.testing.assert_close(overlay(s, m, r), s * m[:, None] + r * (1 - m[:, None]), rtol=0, atol=1e-6)


def test_kept_state_and_complement_add_up_to_state_plus_reference():
    s, r, m = _states(seed=1)
    torch.testing.assert_close(overlay(s, m, r) + overlay(s, 1 - m, r), s + r, rtol=0, atol=1e-6)


def test_binary_mask_takes_each_pixel_from_the_state_or_the_reference():
    s, r, _ = _states(seed=2)
    m = torch.zeros(2, 5, 6)
    m[:, 1:3, 2:5] = 1
    out, comp = overlay(s, m, r), overlay(s, 1 - m, r)
    keep = m.bool()[:, None].expand_as(s)
    assert torch.equal(out[keep], s[keep]) and torch.equal(out[~keep], r[~keep])
    assert torch.equal(comp[keep], r[keep]) and torch.equal(comp[~keep], s[~keep])


def test_one_mask_applies_to_every_stacked_frame():
    s, r, m = _states(b=2, c=4)
    out = overlay(s, m, r)
    assert out.shape == (2, 4, 5, 6)
    for c in range(4):
        torch.testing.assert_close(out[:, c], s[:, c] * m + r[:, c] * (1 - m), rtol=0, atol=1e-6)


def test_k_masks_per_state_give_k_masked_states():
    s, r, _ = _states(b=2, c=4)
    m = torch.rand((2, 3, 5, 6), generator=torch.Generator().manual_seed(3))
    out = overlay(s, m, r)
    assert out.shape == (2, 3, 4, 5, 6)
    for b in range(2):
        for k in range(3):
            assert torch.equal(out[b, k], overlay(s[b : b + 1], m[b : b + 1, k], r[b : b + 1])[0])


def test_reference_shapes_broadcast_alike():
    s, r, m = _states(b=3, c=2)
    one = r[:1]
    want = overlay(s, m, one.expand_as(s))
    assert torch.equal(overlay(s, m, one), want)  # (1, C, H, W)
    assert torch.equal(overlay(s, m, one[0]), want)  # (C, H, W)
    mk = torch.rand((3, 4, 5, 6), generator=torch.Generator().manual_seed(4))
    assert torch.equal(overlay(s, mk, one[0]), overlay(s, mk, one.expand_as(s)))


def test_bad_mask_rank_is_refused():
    s, r, _ = _states()
    with pytest.raises(ValueError, match=r"Expected masks of shape \(B, H, W\) or \(B, K, H, W\), got \(2, 5\)"):
        overlay(s, torch.ones(2, 5), r)


# references --------------------------------------------------------------------------------------


def test_black_reference_is_zero_so_the_overlay_is_s_times_m():
    s, _, m = _states()
    ref = Reference("black")
    r = ref(s)
    assert r.shape == (1, 3, 5, 6) and r.dtype == s.dtype and not r.any()
    torch.testing.assert_close(overlay(s, m, r), s * m[:, None], rtol=0, atol=0)


def test_mean_reference_is_the_per_channel_value_everywhere():
    s, _, _ = _states(c=2)
    ref = Reference.from_data("mean", mean=np.array([0.25, 0.75], np.float32))
    r = ref(s)
    assert r.shape == (1, 2, 1, 1)
    full = r.expand_as(s)
    assert torch.equal(full[:, 0], torch.full((2, 5, 6), 0.25)) and torch.equal(full[:, 1], torch.full((2, 5, 6), 0.75))
    assert torch.equal(overlay(s, torch.zeros(2, 5, 6), r), full)


def test_background_reference_is_the_stored_image_whatever_the_state():
    bg = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6) / 60
    ref = Reference.from_data("background", background=bg)
    s1, s2 = _states(c=2, seed=5)[0], _states(c=2, seed=6)[0]
    assert torch.equal(ref(s1), torch.from_numpy(bg)[None]) and torch.equal(ref(s2), ref(s1))
    assert torch.equal(overlay(s1, torch.zeros(2, 5, 6), ref(s1)), torch.from_numpy(bg)[None].expand_as(s1))
    assert ref.to_meta() == {"kind": "background", "blur_kernel": None, "blur_sigma": None}


def test_blur_reference_is_the_blurred_state():
    s = torch.rand((2, 2, 20, 20), generator=torch.Generator().manual_seed(7))
    ref = Reference("blur", blur_kernel=5, blur_sigma=1.5)
    r = ref(s)
    assert r.shape == s.shape
    assert torch.equal(r, gaussian_blur(s, 5, 1.5))
    assert r.std() < s.std()  # smoother than the state


@pytest.mark.parametrize(
    "kind, kwargs, message",
    [
        ("median", {}, r"Expected reference kind in \('background', 'black', 'mean', 'blur'\), got 'median'"),
        ("background", {}, "Reference 'background' needs an image"),
        ("mean", {}, "Reference 'mean' needs an image"),
    ],
)
def test_bad_references_are_refused(kind, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Reference(kind, **kwargs)


# blur --------------------------------------------------------------------------------------------


def test_blur_of_a_point_is_the_normalised_gaussian_kernel():
    size, sigma = 7, 1.5
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 10] = 1.0
    y = gaussian_blur(x, size, sigma)[0, 0]
    t = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    want = torch.zeros(21, 21)
    want[7:14, 7:14] = k[:, None] * k[None, :]
    torch.testing.assert_close(y, want, rtol=0, atol=1e-7)
    assert abs(float(y.sum()) - 1.0) < 1e-6


def test_blur_keeps_constants_and_channels_apart():
    x = torch.zeros(1, 2, 12, 12)
    x[:, 0] = 0.4
    x[0, 1, 6, 6] = 1.0
    y = gaussian_blur(x, 5, 1.0)
    torch.testing.assert_close(y[0, 0], torch.full((12, 12), 0.4), rtol=0, atol=1e-6)  # reflect padding, sum 1
    assert y[0, 1].max() < 1.0 and abs(float(y[0, 1].sum()) - 1.0) < 1e-6  # channel 1 did not mix with 0


def _nearest_odd(x: float) -> int:
    return min(range(1, 200, 2), key=lambda k: abs(k - x))


@pytest.mark.parametrize("height", [10, 64, 84, 96, 100, 160, 210])
def test_blur_kernel_is_the_paper_kernel_scaled_by_height_over_210(height):
    size, sigma = default_blur(height)
    assert size == max(3, _nearest_odd(39 * height / 210)) and size % 2 == 1
    assert sigma == pytest.approx(15 * height / 210, abs=1e-3)


def test_blur_for_84x84_is_kernel_15_sigma_6_as_documented():
    # README and the Reference docstring: 39 / 15 at 210 px scaled by 84/210 = 15.6 / 6.0; the nearest
    # odd kernel is 15 (rounding 15.6 to 16 and then up to odd gave 17)
    assert default_blur(84) == (15, 6.0)
    assert default_blur(210) == (39, 15.0)
    ref = Reference.from_data("blur", height=84)
    assert ref.to_meta() == {"kind": "blur", "blur_kernel": 15, "blur_sigma": 6.0}
    assert repr(ref) == "Reference('blur', kernel=15, sigma=6.0)"
