"""Annotated video recording with OpenCV (mp4v): the same composed frames as the live window."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from vmask_live.errors import ConfigError

__all__ = ["VideoRecorder", "check_writable"]


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, with a clear message, when ``path`` cannot be written."""
    path = Path(path)
    if path.suffix.lower() not in (".mp4", ".avi"):
        raise ConfigError(f"Expected a video path ending in .mp4 or .avi, got {str(path)!r}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(f"Cannot write {str(path)!r}: folder {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(f"Cannot write {str(path)!r}: permission denied")
    return path


class VideoRecorder:
    """Write RGB frames to a video; always finalised on close, exceptions and Ctrl-C.

    Use as a context manager; the frame size is fixed by the first frame (later frames of
    another size are resized to it).
    """

    def __init__(self, path: str | os.PathLike, fps: float = 30.0) -> None:
        self.path = check_writable(path)
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        """Where frames go until :meth:`close` renames the finished video to ``path``: a file already
        at ``path`` is replaced only by a complete video, and kept when no frame was written."""
        self.fps = float(fps)
        self._writer: Any = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"Expected an RGB frame (H, W, 3), got shape {frame.shape}")
        writer = self._writer
        if writer is None:
            h, w = frame.shape[:2]
            self._size = (w - w % 2, h - h % 2)  # codecs want even sizes
            fourcc = cv2.VideoWriter.fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
            writer = cv2.VideoWriter(str(self.partial), fourcc, self.fps, self._size)
            if not writer.isOpened():
                raise OSError(f"OpenCV could not open a video writer for {str(self.path)!r}")
            self._writer = writer
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
        self.frames += 1

    def close(self) -> None:
        """Finalise the video and move it to ``path`` (nothing is written when no frame came)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self.partial, self.path)

    def __enter__(self) -> VideoRecorder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
