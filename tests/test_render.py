"""Drawing saliency (``vmask_live.render``): small frames, exact pixels."""

import cv2
import numpy as np
import pytest

from vmask_live.render import PANEL_WIDTH, ViewState, blend, colorize, compose, contrast_map, panel

NAMES = ["noop", "up", "right", "left"]
PROBS = np.array([0.1, 0.2, 0.6, 0.1], np.float32)  # chosen 2, runner-up 1


def _frame(h=8, w=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _maps(k=4, h=8, w=10, seed=1):
    return np.random.default_rng(seed).random((k, h, w)).astype(np.float32)


def _game(out, frame, scale=1):
    """The game area of a composed frame (the panel cut off)."""
    assert out.shape[0] == frame.shape[0] * scale
    return out[:, : frame.shape[1] * scale]


# colorize, blend, contrast_map -------------------------------------------------------------------


def test_colorize_is_the_turbo_colour_map():
    m = np.array([[0.0, 0.5, 1.0]], np.float32)
    rgb = colorize(m)
    assert rgb.shape == (1, 3, 3) and rgb.dtype == np.uint8
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cv2.COLORMAP_TURBO)[0, :, ::-1]
    assert np.array_equal(rgb[0], lut[[0, 127, 255]])
    assert np.array_equal(colorize(np.array([[-1.0, 2.0]])), lut[[0, 255]][None])  # clipped to [0, 1]


def test_blend_leaves_zero_saliency_pixels_raw_and_paints_full_ones():
    frame = _frame()
    m = np.zeros((8, 10), np.float32)
    m[2:4, 3:6] = 1.0
    red = np.array([255, 0, 0], np.uint8)
    out = blend(frame, m, alpha=1.0, color=red)
    assert np.array_equal(out[m == 0], frame[m == 0])
    assert (out[m == 1] == red).all()
    half = blend(frame, m, alpha=0.5, color=red)
    want = (frame[m == 1].astype(np.float32) * 0.5 + red.astype(np.float32) * 0.5).astype(np.uint8)
    assert np.array_equal(half[m == 1], want)
    assert np.array_equal(frame, _frame())  # not drawn in place


def test_blend_resizes_the_map_to_the_frame():
    frame = _frame(16, 20)
    m = np.zeros((8, 10), np.float32)
    out = blend(frame, m + 1.0, alpha=1.0, color=np.array([0, 255, 0], np.uint8))
    assert out.shape == frame.shape and (out == [0, 255, 0]).all()
    assert np.array_equal(blend(frame, m, alpha=1.0), frame)


def test_contrast_map_is_where_a_exceeds_b_scaled_to_one():
    maps = np.zeros((3, 2, 3), np.float32)
    maps[0] = [[0.5, 0.2, 0.0], [0.9, 0.1, 0.4]]
    maps[1] = [[0.1, 0.4, 0.0], [0.5, 0.1, 0.3]]
    c = contrast_map(maps, 0, 1)
    np.testing.assert_allclose(c, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.25]], atol=1e-6)
    assert not contrast_map(maps, 2, 0).any()  # a never exceeds b: all zero, no division by zero


# compose -----------------------------------------------------------------------------------------


def test_zero_saliency_leaves_the_frame_untouched():
    frame = _frame()
    for mode in ("action", "contrast"):
        out = compose(frame, np.zeros((4, 8, 10), np.float32), PROBS, NAMES, ViewState(mode=mode), show_panel=False)
        assert np.array_equal(out, frame), mode


@pytest.mark.parametrize("maps", [None, "random"])
def test_overlay_off_or_no_maps_shows_the_raw_frame(maps):
    frame = _frame()
    view = ViewState(overlay=maps is None)  # no maps yet with the overlay on, or maps with it off
    out = compose(frame, None if maps is None else _maps(), PROBS, NAMES, view, show_panel=False)
    assert np.array_equal(out, frame)


def test_action_mode_shows_the_chosen_action_or_the_selected_one():
    frame, maps = _frame(), _maps()
    out = compose(frame, maps, PROBS, NAMES, ViewState(alpha=0.6), show_panel=False)
    assert np.array_equal(out, blend(frame, maps[2], 0.6))  # argmax of PROBS
    out = compose(frame, maps, PROBS, NAMES, ViewState(action=0, alpha=0.6), show_panel=False)
    assert np.array_equal(out, blend(frame, maps[0], 0.6))
    assert not np.array_equal(out, blend(frame, maps[2], 0.6))


def test_action_mode_without_an_agent_shows_the_largest_map():
    frame, maps = _frame(), _maps()
    maps[3] += 0.5
    out = compose(frame, np.clip(maps, 0, 1), None, NAMES, ViewState(), show_panel=False)
    assert np.array_equal(out, blend(frame, np.clip(maps, 0, 1)[3], 0.6))


def test_contrast_mode_shows_why_a_and_not_the_runner_up():
    frame, maps = _frame(), _maps()
    out = compose(frame, maps, PROBS, NAMES, ViewState(mode="contrast"), show_panel=False)
    assert np.array_equal(out, blend(frame, contrast_map(maps, 2, 1), 0.6))
    raw = maps[2] <= maps[1]  # where the chosen map does not exceed the runner-up's: no colour
    assert raw.any() and np.array_equal(out[raw], frame[raw])
    out = compose(frame, maps, PROBS, NAMES, ViewState(mode="contrast", action=0, versus=3), show_panel=False)
    assert np.array_equal(out, blend(frame, contrast_map(maps, 0, 3), 0.6))


def test_counterfactual_mode_shows_the_grey_state_with_the_region_removed():
    frame = _frame(16, 20)
    cf = np.linspace(0, 1, 80, dtype=np.float32).reshape(8, 10)
    out = compose(
        frame, _maps(), PROBS, NAMES, ViewState(mode="counterfactual"), counterfactual=(cf, 0), show_panel=False
    )
    grey = (cf * 255).astype(np.uint8).repeat(2, 0).repeat(2, 1)
    assert np.array_equal(out, np.repeat(grey[..., None], 3, 2))
    # without a counterfactual (no agent) it falls back to the action map
    out = compose(frame, _maps(), PROBS, NAMES, ViewState(mode="counterfactual"), show_panel=False)
    assert np.array_equal(out, blend(frame, _maps()[2], 0.6))


@pytest.mark.parametrize(
    "view, cf, lines",
    [
        (ViewState(), None, ["map: right"]),
        (ViewState(action=1), None, ["map: up"]),
        (ViewState(mode="contrast"), None, ["why right not up"]),
        (ViewState(mode="counterfactual"), 3, ["right region removed", "agent now: left"]),
        (ViewState(overlay=False), None, ["overlay off"]),
    ],
)
def test_panel_names_what_the_overlay_shows(view, cf, lines):
    frame, maps = _frame(200, 50), _maps(h=200, w=50)  # tall enough for the status lines under 4 actions
    counterfactual = None if cf is None else (np.zeros((200, 50), np.float32), cf)
    out = compose(frame, maps, PROBS, NAMES, view, fps=12.34, counterfactual=counterfactual)
    shown = view.action if view.action is not None else 2
    want = panel(200, NAMES, PROBS, 2, shown, [*lines, " 12.3 FPS"])
    assert np.array_equal(out[:, 50:], want)
    other = panel(200, NAMES, PROBS, 2, shown, ["something else"])
    assert not np.array_equal(out[:, 50:], other)  # the lines are drawn, so the check can fail


def test_panel_width_and_scale():
    frame, maps = _frame(), _maps()
    out = compose(frame, maps, PROBS, NAMES, ViewState(), scale=3)
    assert out.shape == (24, 30 + PANEL_WIDTH, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    small = compose(frame, maps, PROBS, NAMES, ViewState(), show_panel=False)
    assert np.array_equal(_game(out, frame, 3), small.repeat(3, 0).repeat(3, 1))  # nearest-neighbour scaling
    assert compose(frame, maps, PROBS, NAMES, ViewState(), scale=3, show_panel=False).shape == (24, 30, 3)


def test_rgba_frames_lose_their_alpha_channel():
    frame = _frame()
    rgba = np.concatenate([frame, np.full((8, 10, 1), 7, np.uint8)], axis=2)
    out = compose(rgba, _maps(), PROBS, NAMES, ViewState(), show_panel=False)
    assert np.array_equal(out, compose(frame, _maps(), PROBS, NAMES, ViewState(), show_panel=False))
