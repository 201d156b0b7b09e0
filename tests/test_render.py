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


# game objects: boxes, the panel's object lines, the object counterfactual ---------------------------


def _objects():
    from vmask_live.objects import GameObject

    return [GameObject("player", 0, (2.0, 1.0, 4.0, 3.0)), GameObject("ghost", 1, (6.0, 4.0, 8.0, 6.0))]


def test_object_lines_rank_the_objects_by_their_share_of_the_map():
    from vmask_live.render import object_lines

    m = np.zeros((20, 20), np.float32)
    m[4:6, 6:8] = 3.0  # inside ghost 1's box
    m[1:3, 2:4] = 1.0  # inside the player's box
    m[15:17, 15:17] = 1.0  # elsewhere, as much mass as the player's: 12 + 4 + 4 in all
    assert object_lines(m, _objects(), "right") == ["right <- objects:", "  ghost 1: 60%", "  player: 20%"]
    assert object_lines(np.zeros((20, 20), np.float32), _objects(), "up") == ["up <- objects:", "  none on objects"]


def test_object_lines_group_many_small_items_into_one_line():
    from vmask_live.objects import GameObject
    from vmask_live.render import object_lines

    m = np.zeros((20, 20), np.float32)
    pills = [GameObject("pill", i, (float(2 * i), 15.0, float(2 * i + 1), 16.0)) for i in range(8)]
    for i in range(8):
        m[15, 2 * i] = 1.0  # 8 pills with 1/16 of the mass each: one "pills" line with half of it
    m[1:3, 2:4] = 2.0  # the player: the other half
    # the dilated pill boxes overlap: the grouped line counts each pixel once
    lines = object_lines(m, _objects() + pills, "up")
    assert lines == ["up <- objects:", "  player: 50%", "  pills: 50%"]
    assert not any(line.startswith("  pill ") for line in lines)


def test_draw_boxes_outlines_each_box_scaled_to_the_image():
    from vmask_live.render import BOX_COLORS, BOX_SELECTED, draw_boxes

    img = np.zeros((40, 40, 3), np.uint8)  # a 20x20 observation drawn at twice its size
    out = draw_boxes(img, _objects(), (20, 20))
    want = np.zeros((40, 40), bool)
    want[2:6, 4:8] = True
    want[3:5, 5:7] = False  # the player's box (2, 1, 4, 3) -> columns 4..7, rows 2..5, outline only
    assert np.array_equal((out == BOX_COLORS["player"]).all(2), want)
    assert (out[8, 12:16] == BOX_COLORS["ghost"]).all() and (out[8:12, 12] == BOX_COLORS["ghost"]).all()
    assert not img.any()  # not drawn in place
    sel = draw_boxes(img, _objects(), (20, 20), selected="ghost 1")
    assert (sel[8, 12:16] == BOX_SELECTED).all() and np.array_equal(sel[:7], out[:7])


def test_compose_lists_objects_and_draws_boxes_only_when_asked():
    from vmask_live.render import ObjectCounterfactual, draw_boxes, object_lines

    frame, maps = _frame(40, 40), _maps(h=20, w=20)
    objs = _objects()
    plain = compose(frame, maps, PROBS, NAMES, ViewState(), show_panel=False)
    assert np.array_equal(compose(frame, maps, PROBS, NAMES, ViewState(), show_panel=False, objects=objs), plain)
    boxed = compose(frame, maps, PROBS, NAMES, ViewState(boxes=True), scale=2, show_panel=False, objects=objs)
    assert np.array_equal(boxed, draw_boxes(plain.repeat(2, 0).repeat(2, 1), objs, (20, 20)))
    tall, tall_maps = _frame(300, 40), _maps(h=300, w=40)
    out = compose(tall, tall_maps, PROBS, NAMES, ViewState(), objects=objs)
    lines = ["map: right", *object_lines(tall_maps[2], objs, "right")]
    assert np.array_equal(out[:, 40:], panel(300, NAMES, PROBS, 2, 2, lines))
    # the object mode: grey state without the object, its box outlined, the agent's new action and delta p
    cf = np.linspace(0, 1, 300 * 40, dtype=np.float32).reshape(300, 40)
    ocf = ObjectCounterfactual("ghost 1", cf, 3, 2, 0.6, 0.25)
    view = ViewState(mode="object", object_name="ghost 1")
    out = compose(tall, tall_maps, PROBS, NAMES, view, objects=objs, object_counterfactual=ocf)
    grey = np.repeat((cf * 255).astype(np.uint8)[..., None], 3, 2)
    assert np.array_equal(out[:, :40], draw_boxes(grey, objs[1:], (300, 40), "ghost 1"))
    lines = ["without ghost 1", "agent now: left", "p(right) 0.60->0.25", "  delta p -0.35"]
    lines += object_lines(tall_maps[2], objs, "right")
    assert np.array_equal(out[:, 40:], panel(300, NAMES, PROBS, 2, 2, lines))
