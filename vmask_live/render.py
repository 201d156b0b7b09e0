"""Drawing saliency for people: colour maps, alpha blending, the contrast and counterfactual
views, and the side panel. One module used by ``ExplainedEnv.render()``, the live Pygame window
and the video recorder, so all three show the same pixels. Drawing uses OpenCV only (no display).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["ViewState", "VIEW_MODES", "colorize", "blend", "contrast_map", "compose", "panel"]

VIEW_MODES = ("action", "contrast", "counterfactual")
PANEL_WIDTH = 230


@dataclass
class ViewState:
    """What the overlay shows.

    Attributes:
        mode: ``action`` (one action's map), ``contrast`` ("why a and not b") or
            ``counterfactual`` (the state with a's region replaced by the reference).
        action: the action whose map is shown (None: the agent's chosen action).
        versus: b of the contrast (None: the runner-up action).
        overlay: draw the overlay at all.
        alpha: maximum opacity of the colour map.
    """

    mode: str = "action"
    action: int | None = None
    versus: int | None = None
    overlay: bool = True
    alpha: float = 0.6


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
) -> np.ndarray:
    """The full display frame: the env frame (scaled) with the overlay, and the side panel.

    Args:
        frame: RGB ``(h, w, 3)`` from ``env.render()``.
        maps: ``(K, H, W)`` saliency (None: no overlay yet).
        probs: ``(K,)`` agent probabilities (None without an agent).
        view: what to show.
        counterfactual: (grey observation ``(H, W)`` in [0, 1] with the region replaced, the action
            the agent takes on it), for the counterfactual mode.
    """
    chosen = int(np.argmax(probs)) if probs is not None else None
    shown = view.action if view.action is not None else chosen
    if frame.shape[2] == 4:
        frame = frame[..., :3]
    out = frame
    lines: list[str] = []
    if maps is not None and view.overlay:
        if shown is None:
            shown = int(np.argmax(maps.reshape(maps.shape[0], -1).mean(1)))
        if view.mode == "contrast":
            order = np.argsort(-probs) if probs is not None else np.argsort(-maps.reshape(maps.shape[0], -1).mean(1))
            b = view.versus if view.versus is not None else int(next(k for k in order if k != shown))
            out = blend(frame, contrast_map(maps, shown, b), view.alpha)
            lines.append(f"why {names[shown][:9]} not {names[b][:9]}")
        elif view.mode == "counterfactual" and counterfactual is not None:
            cf, cf_action = counterfactual
            grey = (np.clip(cf, 0, 1) * 255).astype(np.uint8)
            out = cv2.resize(
                np.repeat(grey[..., None], 3, 2), (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST
            )
            lines.append(f"{names[shown][:9]} region removed")
            lines.append(f"agent now: {names[cf_action][:12]}")
        else:
            out = blend(frame, maps[shown], view.alpha)
            lines.append(f"map: {names[shown][:14]}")
    elif not view.overlay:
        lines.append("overlay off")
    if scale != 1:
        out = cv2.resize(out, (out.shape[1] * scale, out.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    if fps is not None:
        lines.append(f"{fps:5.1f} FPS")
    if not show_panel:
        return np.ascontiguousarray(out)
    side = panel(out.shape[0], names, probs, chosen, shown, lines)
    return np.ascontiguousarray(np.concatenate([out, side], axis=1))
