"""Drawing saliency for people: colour maps, alpha blending, the contrast and counterfactual
views, game-object boxes and the side panel. One module used by ``ExplainedEnv.render()``, the
live Pygame window and the video recorder, so all three show the same pixels. Drawing uses OpenCV
only (no display).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from vmask_live.objects import GameObject, is_item, object_mass, union_mass

__all__ = [
    "ViewState",
    "VIEW_MODES",
    "ObjectCounterfactual",
    "colorize",
    "blend",
    "contrast_map",
    "draw_boxes",
    "object_lines",
    "compose",
    "panel",
]

VIEW_MODES = ("action", "contrast", "counterfactual", "object")
PANEL_WIDTH = 230
TOP_OBJECTS = 3
"""How many objects the panel lists under the shown map."""
BOX_COLORS = {"player": (255, 255, 0), "ghost": (255, 0, 255), "fruit": (0, 255, 0)}
"""RGB outline per object category (others: :data:`BOX_OTHER`; the selected object: white)."""
BOX_OTHER = (0, 200, 255)
BOX_SELECTED = (255, 255, 255)


@dataclass
class ViewState:
    """What the overlay shows.

    Attributes:
        mode: ``action`` (one action's map), ``contrast`` ("why a and not b"),
            ``counterfactual`` (the state with a's region replaced by the reference) or
            ``object`` (the state with one game object's box replaced by the reference).
        action: the action whose map is shown (None: the agent's chosen action).
        versus: b of the contrast (None: the runner-up action).
        overlay: draw the overlay at all.
        alpha: maximum opacity of the colour map.
        boxes: outline the game objects (where the game's objects are known).
        object_name: the object the ``object`` mode removes (:attr:`GameObject.name`).
    """

    mode: str = "action"
    action: int | None = None
    versus: int | None = None
    overlay: bool = True
    alpha: float = 0.6
    boxes: bool = False
    object_name: str | None = None


class ObjectCounterfactual(NamedTuple):
    """The state with one object removed and what the agent does on it.

    Attributes:
        name: the removed object.
        obs: grey observation ``(H, W)`` in [0, 1] (the newest frame) with the object's box replaced.
        action: the agent's action on it.
        target: the action whose probability is compared (the shown action).
        p_before: ``p(target)`` on the real state.
        p_after: ``p(target)`` without the object.
    """

    name: str
    obs: np.ndarray
    action: int
    target: int
    p_before: float
    p_after: float


def colorize(m: np.ndarray) -> np.ndarray:
    """``(H, W)`` in [0, 1] -> RGB uint8 with the ``turbo`` colour map."""
    u8 = np.clip(m * 255.0, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(u8, cv2.COLORMAP_TURBO)[..., ::-1]


def blend(frame: np.ndarray, m: np.ndarray, alpha: float = 0.6, color: np.ndarray | None = None) -> np.ndarray:
    """Blend a map onto an RGB frame; opacity grows with saliency so low-saliency pixels stay raw.

    ``m`` is resized (bilinear) to the frame: the observation is assumed to be a resize of the
    whole rendered frame, as Atari preprocessing and the ground-truth env do.
    """
    h, w = frame.shape[:2]
    mr = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    mr = np.clip(mr, 0.0, 1.0)
    col = colorize(mr) if color is None else np.broadcast_to(np.asarray(color, np.uint8), frame.shape)
    a = (alpha * mr)[..., None]
    return (frame.astype(np.float32) * (1 - a) + col.astype(np.float32) * a).astype(np.uint8)


def contrast_map(maps: np.ndarray, a: int, b: int) -> np.ndarray:
    """Where the a-map exceeds the b-map ("why a and not b"), rescaled to [0, 1]."""
    d = np.clip(maps[a] - maps[b], 0, None)
    peak = float(d.max())
    return d / peak if peak > 0 else d


def draw_boxes(
    img: np.ndarray, objects: Sequence[GameObject], obs_hw: Sequence[int], selected: str | None = None
) -> np.ndarray:
    """Outline ``objects`` (boxes in observation pixels ``obs_hw``) on ``img``, scaled to its size.

    Returns a new image; the ``selected`` object (by name) is drawn in white, thicker.
    """
    out = np.ascontiguousarray(img).copy()
    h, w = out.shape[:2]
    sy, sx = h / obs_hw[0], w / obs_hw[1]
    thin = 1 if h < 400 else 2
    for obj in sorted(objects, key=lambda o: o.name == selected):  # the selected one on top
        x0, y0, x1, y1 = obj.box
        c0, r0 = int(np.floor(x0 * sx)), int(np.floor(y0 * sy))
        c1, r1 = min(int(np.ceil(x1 * sx)), w) - 1, min(int(np.ceil(y1 * sy)), h) - 1
        c0, r0 = max(c0, 0), max(r0, 0)
        if c1 < c0 or r1 < r0:
            continue  # off screen
        chosen = obj.name == selected
        color = BOX_SELECTED if chosen else BOX_COLORS.get(obj.category, BOX_OTHER)
        cv2.rectangle(out, (c0, r0), (c1, r1), color, thin + 1 if chosen else thin)
    return out


def object_lines(m: np.ndarray, objects: Sequence[GameObject], label: str, top: int = TOP_OBJECTS) -> list[str]:
    """Panel lines naming the ``top`` objects that hold most of map ``m`` (``(H, W)``), with shares."""
    single = [o for o in objects if not is_item(o.category)]
    shares = {name: float(v[0]) for name, v in object_mass(m[None], single).items()}
    for category in sorted({o.category for o in objects if is_item(o.category)}):  # all pills as one line
        shares[f"{category}s"] = float(union_mass(m[None], [o for o in objects if o.category == category])[0])
    ranked = sorted((item for item in shares.items() if item[1] >= 0.005), key=lambda item: -item[1])[:top]
    lines = [f"{label[:12]} <- objects:"]
    lines += [f"  {name[:14]}: {share:.0%}" for name, share in ranked] or ["  none on objects"]
    return lines


def _text(
    img: np.ndarray, s: str, org: tuple[int, int], scale: float = 0.5, color=(235, 235, 235), thick: int = 1
) -> None:
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def panel(
    height: int,
    names: Sequence[str],
    probs: np.ndarray | None,
    chosen: int | None,
    shown: int | None,
    lines: Sequence[str] = (),
) -> np.ndarray:
    """The side panel: action names with probability bars, the chosen action marked, status lines."""
    img = np.full((height, PANEL_WIDTH, 3), 24, np.uint8)
    _text(img, "action probabilities", (10, 22), 0.5, (200, 200, 200))
    row = min(26, max(14, (height - 120) // max(len(names), 1)))
    for i, name in enumerate(names):
        y = 40 + i * row
        p = float(probs[i]) if probs is not None else 0.0
        color = (80, 200, 120) if i == chosen else (110, 140, 200)
        cv2.rectangle(img, (95, y), (95 + int(p * 120), y + row - 6), color, -1)
        mark = ">" if i == shown else " "
        _text(
            img,
            f"{mark}{i + 1} {name[:10]}",
            (6, y + row - 9),
            0.42,
            (255, 255, 255) if i == chosen else (190, 190, 190),
        )
        if probs is not None:
            _text(img, f"{p:.2f}", (95 + 4, y + row - 9), 0.38, (20, 20, 20) if p > 0.25 else (220, 220, 220))
    y = 40 + len(names) * row + 10
    for line in lines:
        _text(img, line, (8, y), 0.45)
        y += 20
    return img


def _grey(obs: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A grey ``(H, W)`` observation in [0, 1] as an RGB image of the frame's size (nearest)."""
    grey = (np.clip(obs, 0, 1) * 255).astype(np.uint8)
    return cv2.resize(np.repeat(grey[..., None], 3, 2), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def compose(
    frame: np.ndarray,
    maps: np.ndarray | None,
    probs: np.ndarray | None,
    names: Sequence[str],
    view: ViewState,
    scale: int = 1,
    fps: float | None = None,
    counterfactual: tuple[np.ndarray, int] | None = None,
    show_panel: bool = True,
    objects: Sequence[GameObject] | None = None,
    object_counterfactual: ObjectCounterfactual | None = None,
    obs_hw: Sequence[int] | None = None,
) -> np.ndarray:
    """The full display frame: the env frame (scaled) with the overlay, and the side panel.

    Args:
        frame: RGB ``(h, w, 3)`` from ``env.render()``.
        maps: ``(K, H, W)`` saliency (None: no overlay yet).
        probs: ``(K,)`` agent probabilities (None without an agent).
        view: what to show.
        counterfactual: (grey observation ``(H, W)`` in [0, 1] with the region replaced, the action
            the agent takes on it), for the counterfactual mode.
        objects: the state's game objects (None: the game's objects are not known); the panel
            then lists the top objects of the shown map, and ``view.boxes`` outlines them.
        object_counterfactual: the state without ``view.object_name``, for the object mode.
        obs_hw: observation size the object boxes refer to (default: the maps' ``(H, W)``).
    """
    chosen = int(np.argmax(probs)) if probs is not None else None
    shown = view.action if view.action is not None else chosen
    if frame.shape[2] == 4:
        frame = frame[..., :3]
    out = frame
    lines: list[str] = []
    selected = view.object_name if view.mode == "object" else None
    if maps is not None and view.overlay:
        if shown is None:
            shown = int(np.argmax(maps.reshape(maps.shape[0], -1).mean(1)))
        shown_map, label = maps[shown], names[shown]
        if view.mode == "contrast":
            order = np.argsort(-probs) if probs is not None else np.argsort(-maps.reshape(maps.shape[0], -1).mean(1))
            b = view.versus if view.versus is not None else int(next(k for k in order if k != shown))
            shown_map, label = contrast_map(maps, shown, b), f"{names[shown][:5]}-{names[b][:5]}"
            out = blend(frame, shown_map, view.alpha)
            lines.append(f"why {names[shown][:9]} not {names[b][:9]}")
        elif view.mode == "counterfactual" and counterfactual is not None:
            cf, cf_action = counterfactual
            out = _grey(cf, frame.shape)
            lines.append(f"{names[shown][:9]} region removed")
            lines.append(f"agent now: {names[cf_action][:12]}")
        elif view.mode == "object" and object_counterfactual is not None:
            ocf = object_counterfactual
            out = _grey(ocf.obs, frame.shape)
            lines.append(f"without {ocf.name[:14]}")
            lines.append(f"agent now: {names[ocf.action][:12]}")
            lines.append(f"p({names[ocf.target][:8]}) {ocf.p_before:.2f}->{ocf.p_after:.2f}")
            lines.append(f"  delta p {ocf.p_after - ocf.p_before:+.2f}")
        else:
            out = blend(frame, maps[shown], view.alpha)
            lines.append(f"map: {names[shown][:14]}")
            if view.mode == "object" and selected is not None:
                lines.append(f"{selected[:14]} not on screen" if objects is not None else "no game objects")
        if objects is not None:
            lines += object_lines(shown_map, objects, label)
    elif not view.overlay:
        lines.append("overlay off")
    if scale != 1:
        out = cv2.resize(out, (out.shape[1] * scale, out.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    hw = obs_hw if obs_hw is not None else (maps.shape[1:] if maps is not None else None)
    if objects is not None and hw is not None and (view.boxes or selected is not None):
        drawn = (
            [o for o in objects if not is_item(o.category)]
            if view.boxes
            else [o for o in objects if o.name == selected]
        )
        out = draw_boxes(out, drawn, hw, selected)
    if fps is not None:
        lines.append(f"{fps:5.1f} FPS")
    if not show_panel:
        return np.ascontiguousarray(out)
    side = panel(out.shape[0], names, probs, chosen, shown, lines)
    return np.ascontiguousarray(np.concatenate([out, side], axis=1))
