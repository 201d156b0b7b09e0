"""The live loop behind ``vmask-live play`` (Pygame window) and ``vmask-live record`` (video).

:class:`LiveSession` runs an agent in an :class:`ExplainedEnv` and composes display frames; the
window and the recorder consume the same frames. Keys in the window: space pause, right arrow
single step, 1..9 show action k's map (0: back to the chosen action), c contrast, f
counterfactual, o overlay on/off, b game-object boxes on/off, x remove one game object (each press
the next object, after the last back to the map), r start/stop recording, s screenshot, q/Esc quit.
Where the game's objects are known (Ms. Pac-Man), the panel lists the objects holding most of the
shown map.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vmask_live.errors import MissingExtraError, NoDisplayError, PairingError
from vmask_live.interrupt import sigterm_as_interrupt
from vmask_live.objects import is_item
from vmask_live.render import ViewState
from vmask_live.settings import SettingChecks

__all__ = ["LiveConfig", "LiveSession", "play", "record", "NoDisplayError"]


def _explainer_meta(explainer: Any) -> dict[str, Any]:
    """The metadata of an explainer given as an object or as a checkpoint path (read, not loaded)."""
    from vmask_live.checkpoint import read_meta
    from vmask_live.explainer import checkpoint_path
    from vmask_live.pairing import explainer_meta

    if isinstance(explainer, (str, os.PathLike)):
        try:
            return read_meta(checkpoint_path(explainer), "explainer")
        except Exception:  # noqa: BLE001 - only for a hint; the pairing error itself is raised anyway
            return {}
    return explainer_meta(explainer)


@dataclass
class LiveConfig:
    """Options shared by ``play`` and ``record``."""

    env: str = "MsPacman"
    """Env name (see ``vmask-live envs``)."""
    agent: str | None = None
    """Agent path or ``default:NAME`` (None: the bundled default for ``env``)."""
    explainer: str | None = None
    """Explainer checkpoint or ``default:NAME`` (None: the bundled default for ``env``)."""
    backend: str = "auto"
    """Explainer backend: auto (the fastest here) | onnx | torch | torch-compile | tensorrt | none (eager)."""
    scale: int | None = None
    """Display scale of the rendered frame (None: about 840 px high)."""
    fps: float = 30.0
    """Frame rate cap of the window (0: uncapped) and of the video."""
    episodes: int = 1
    """Episodes to play."""
    max_steps: int | None = None
    """Stop after this many steps (None: whole episodes)."""
    seed: int = 0
    """Seed of the first episode's reset (episode i: seed + i) and of the action sampling."""
    deterministic: bool = True
    """Act by arg-max (the bundled MsPacman agent scores higher so) instead of sampling from the policy."""
    allow_mismatch: bool = False
    """Use an explainer with an agent it was not trained for (its maps then explain another network)."""
    boxes: bool = False
    """Outline the game objects from the start (where the game's objects are known; key b toggles)."""

    def validate(self) -> None:
        """Check every setting, type then value.

        Raises:
            ConfigError: listing every bad setting at once, each as "expected ..., got ...".
        """
        c = SettingChecks("play/record")
        c.integer("episodes", self.episodes, 1)
        c.integer("max_steps", self.max_steps, 1, optional=True, what="None: whole episodes")
        c.integer("scale", self.scale, 1, optional=True, what="None: about 840 px high")
        c.number("fps", self.fps, low=0, what="0: uncapped")
        c.choice("backend", self.backend, ("auto", "onnx", "torch", "torch-compile", "tensorrt", "none"))
        c.flag("boxes", self.boxes)
        c.raise_if_any()


class LiveSession:
    """Agent + ExplainedEnv + view state; :meth:`frames` yields composed RGB frames."""

    def __init__(self, cfg: LiveConfig, agent: Any = None, explainer: Any = None) -> None:
        import vmask_live as vm
        from vmask_live.envs import canonical_name

        cfg.validate()
        self.cfg = cfg
        name = cfg.env if cfg.env.startswith("ALE/") else canonical_name(cfg.env)
        own_agent = agent is not None or cfg.agent is not None
        if agent is None:
            agent = vm.load_agent(cfg.agent or f"default:{name}")
        explainer = explainer if explainer is not None else (cfg.explainer or f"default:{name}")
        try:
            self.env = vm.ExplainedEnv(
                vm.make_env(name, render_mode="rgb_array"),
                explainer,
                agent=agent,
                backend=cfg.backend,
                allow_mismatch=cfg.allow_mismatch,
            )
        except PairingError as err:
            bundled_explainer = cfg.explainer is None and explainer == f"default:{name}"
            if not own_agent and not bundled_explainer:
                trained_for = (_explainer_meta(explainer).get("train_config") or {}).get("agent")
                hint = f" (it was trained for {trained_for})" if trained_for else ""
                raise PairingError(
                    f"--explainer {cfg.explainer or type(explainer).__name__} was given without --agent, so the "
                    f"bundled {name} agent was used, and the explainer does not belong to it; pass --agent with the "
                    f"agent the explainer was trained for{hint}. {err}"
                ) from None
            if not (own_agent and bundled_explainer):
                raise
            raise PairingError(
                f"--agent {cfg.agent or type(agent).__name__} was given without --explainer, and the bundled "
                f"{name} explainer belongs to the bundled agent, not to this one; pass --explainer with an "
                f"explainer trained for this agent. {err}"
            ) from None
        self.agent = self.env.agent
        self.view: ViewState = self.env.view
        self.view.boxes = cfg.boxes
        self.rng = np.random.default_rng(cfg.seed)
        self.paused = False
        self.steps = 0
        self.episode = 0
        self.score = 0.0
        self.info: dict[str, Any] = {}
        self.reset()
        probe = self.env.env.render()
        self.scale = cfg.scale or max(1, 840 // probe.shape[0])

    def reset(self) -> None:
        _, self.info = self.env.reset(seed=self.cfg.seed + self.episode)
        self.score = 0.0

    def act(self) -> int:
        probs = self.info["action_probs"]
        if self.cfg.deterministic:
            return int(np.argmax(probs))
        return int(self.rng.choice(len(probs), p=probs / probs.sum()))

    def step(self) -> bool:
        """One env step; returns True when the episode ended."""
        _, reward, terminated, truncated, self.info = self.env.step(self.act())
        self.steps += 1
        self.score += float(reward)
        return bool(terminated or truncated)

    def frame(self, fps: float | None = None) -> np.ndarray:
        return self.env.render_frame(scale=self.scale, fps=fps)

    def done(self) -> bool:
        return self.episode >= self.cfg.episodes or (
            self.cfg.max_steps is not None and self.steps >= self.cfg.max_steps
        )

    def frames(self) -> Iterator[np.ndarray]:
        """Frames of whole runs (``episodes`` / ``max_steps`` limits), for recording."""
        self.reset()
        yield self.frame()
        while not self.done():
            ended = self.step()
            yield self.frame()  # every step's frame, an episode's last one included
            if ended:
                self.episode += 1
                if not self.done():
                    self.reset()
                    yield self.frame()  # the next episode's first

    def handle_key(self, key: str) -> str | None:
        """Apply a key (pygame key name); returns an action for the caller (quit, record, …)."""
        k = self.env.explainer.n_actions
        if key in ("q", "escape"):
            return "quit"
        if key == "space":
            self.paused = not self.paused
        elif key == "right":
            return "single-step"
        elif key.isdigit():
            n = int(key)
            self.view.action = None if n == 0 or n > k else n - 1
            self.view.mode = "action"
        elif key == "c":
            self.view.mode = "action" if self.view.mode == "contrast" else "contrast"
        elif key == "f":
            self.view.mode = "action" if self.view.mode == "counterfactual" else "counterfactual"
        elif key == "o":
            self.view.overlay = not self.view.overlay
        elif key == "b":
            self.view.boxes = not self.view.boxes
        elif key == "x":
            self._next_object()
        elif key in ("r", "s"):
            return {"r": "record", "s": "screenshot"}[key]
        return None

    def _next_object(self) -> None:
        """Select the next object on screen for the object counterfactual; after the last, leave it."""
        names = [obj.name for obj in self.env.last_objects or [] if not is_item(obj.category)]
        current = self.view.object_name if self.view.mode == "object" else None
        i = names.index(current) + 1 if current in names else 0  # a vanished object restarts the cycle
        if i < len(names):
            self.view.mode, self.view.object_name = "object", names[i]
        else:  # past the last object, or none on screen: back to the map
            self.view.mode, self.view.object_name = "action", None

    def close(self) -> None:
        self.env.close()


def _open_window(size: tuple[int, int]):
    if (
        not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
        and not os.environ.get("SDL_VIDEODRIVER")
    ):
        raise NoDisplayError(
            "No display available for the Pygame window (DISPLAY is not set). Record a video instead with "
            "`vmask-live record --env NAME --out run.mp4`, or run headless with SDL_VIDEODRIVER=dummy"
        )
    try:
        import pygame
    except ImportError as err:
        raise MissingExtraError('pygame is not installed; run `pip install "pygame-ce>=2.4"`') from err
    pygame.display.init()  # video only: no audio device needed
    try:
        screen = pygame.display.set_mode(size)
    except pygame.error as err:
        raise NoDisplayError(f"Cannot open a window ({err}); use `vmask-live record` or SDL_VIDEODRIVER=dummy") from err
    pygame.display.set_caption("vmask-live")
    return pygame, screen


def play(
    cfg: LiveConfig,
    agent: Any = None,
    explainer: Any = None,
    keys: Sequence[tuple[int, str]] = (),
    out_dir: str | os.PathLike = ".",
) -> dict[str, Any]:
    """Run the live window until quit or the limits; returns stats and the last displayed frame.

    Args:
        keys: scripted key presses ``(step, key name)`` (for tests and demos).
        out_dir: where ``r`` recordings and ``s`` screenshots go.
    """
    import cv2

    from vmask_live.wrappers.video_writer import VideoRecorder

    session = LiveSession(cfg, agent, explainer)
    session.reset()
    first = session.frame(fps=0.0)
    pygame, screen = _open_window((first.shape[1], first.shape[0]))
    clock = pygame.time.Clock()
    recorder: VideoRecorder | None = None
    scripted: dict[int, list[str]] = {}
    for step, key in keys:
        scripted.setdefault(step, []).append(key)
    out_dir = Path(out_dir)
    frame, fps, tick, quit_ = first, 0.0, 0, False
    screenshots: list[str] = []
    start = time.perf_counter()
    try:
        while not quit_:
            events = pygame.event.get()
            pressed = [pygame.key.name(e.key) for e in events if e.type == pygame.KEYDOWN]
            quit_ = any(e.type == pygame.QUIT for e in events)
            pressed += scripted.pop(tick, [])
            single = False
            for key in pressed:
                what = session.handle_key(key)
                if what == "quit":
                    quit_ = True
                elif what == "single-step":
                    single = True
                elif what == "record":
                    if recorder is None:
                        recorder = VideoRecorder(
                            out_dir / f"vmask-live-{time.strftime('%Y%m%d-%H%M%S')}.mp4", cfg.fps or 30
                        )
                    else:
                        recorder.close()
                        recorder = None
                elif what == "screenshot":
                    path = out_dir / f"vmask-live-{time.strftime('%Y%m%d-%H%M%S')}-{tick}.png"
                    cv2.imwrite(str(path), frame[..., ::-1])
                    screenshots.append(str(path))
            if not session.paused or single:
                if session.step():
                    session.episode += 1
                    if session.done():
                        break
                    session.reset()
                if cfg.max_steps is not None and session.steps >= cfg.max_steps:
                    quit_ = True
            frame = session.frame(fps=fps)
            surf = pygame.surfarray.make_surface(frame.swapaxes(0, 1))
            screen.blit(surf, (0, 0))
            pygame.display.flip()
            if recorder is not None:
                recorder.write(frame)
            clock.tick(cfg.fps if cfg.fps else 0)
            tick += 1
            fps = tick / max(time.perf_counter() - start, 1e-9)
        shown = pygame.surfarray.array3d(screen).swapaxes(0, 1).copy()
    finally:
        if recorder is not None:
            recorder.close()
        pygame.display.quit()
        session.close()
    return {
        "steps": session.steps,
        "frames": tick,
        "fps": fps,
        "episodes": session.episode,
        "score": session.score,
        "surface": shown,
        "screenshots": screenshots,
    }


def record(
    cfg: LiveConfig, out: str | os.PathLike, agent: Any = None, explainer: Any = None, progress: bool = True
) -> dict[str, Any]:
    """Write the composed frames of ``episodes`` (or ``max_steps``) to a video file.

    The video is finalised (playable) however the run ends: normally, on an exception, on Ctrl-C
    or on SIGTERM (``kill``), which raises ``KeyboardInterrupt`` after the file is closed.
    """
    from rich.progress import Progress

    from vmask_live.wrappers.video_writer import VideoRecorder, check_writable

    cfg.validate()
    check_writable(out)
    session = LiveSession(cfg, agent, explainer)
    total = cfg.max_steps
    try:
        with (
            sigterm_as_interrupt(f"terminated (SIGTERM); {out} holds the frames recorded before it, if any"),
            VideoRecorder(out, cfg.fps or 30) as rec,
            Progress(disable=not progress, transient=True) as bar,
        ):
            task = bar.add_task(f"recording {cfg.env}", total=total)
            for frame in session.frames():
                rec.write(frame)
                bar.update(task, completed=session.steps)
    finally:
        session.close()
    return {
        "path": str(out),
        "frames": rec.frames,
        "steps": session.steps,
        "episodes": session.episode,
        "score": session.score,
    }
