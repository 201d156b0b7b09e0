"""A look-ahead planner for ALE games: short emulator rollouts from cloned states.

The planner scores each action of the current state by restoring the emulator to that state and
playing short rollouts that begin with the action (held, then switched at random times), with a
penalty for a lost life. All actions share the same random continuations (common random numbers),
so two actions with the same effect get exactly the same value; a fixed tie rule then picks one
canonical label among equivalent actions, which is what makes the labels learnable (Ms. Pac-Man
keeps moving whichever of several directions is pressed in a corridor).

Guo et al., "Deep Learning for Real-Time Atari Game Play Using Offline Monte-Carlo Tree Search
Planning" (NeurIPS 2014) distilled a UCT planner into a CNN the same way; :mod:`vmask_live.distill`
does it with DAgger rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vmask_live.errors import ConfigError
from vmask_live.settings import SettingChecks

__all__ = ["PlannerSettings", "RolloutPlanner", "canonical_label", "motion_actions"]


@dataclass
class PlannerSettings:
    """How the rollout planner scores actions."""

    rollouts: int = 3
    """Rollouts per action (the same random continuations for every action)."""
    horizon: int = 16
    """Agent steps per rollout (x frame_skip emulator frames)."""
    switch_prob: float = 0.25
    """Probability per agent step that a rollout switches to a random action (the first action is
    held until the first switch)."""
    life_penalty: float = 1000.0
    """Subtracted from a rollout's score when it loses a life (the rollout ends there)."""
    tie_tolerance: float = 0.0
    """Actions whose value is within this of the best are tied; the tie rule picks among them."""
    frame_skip: int = 4
    """Emulator frames per agent step (as the env's preprocessing)."""
    prefer_motion: bool = True
    """Break ties toward the action named after the player's motion (from the game's RAM objects):
    Ms. Pac-Man keeps moving whichever of several directions is pressed in a corridor. Off: the
    lowest-index tied non-NOOP action (Enduro: FIRE, which accelerates, instead of the steering
    direction the car happens to drift in)."""
    prefer_actions: str = ""
    """Comma-separated action names picked first among tied actions, in this order, after the
    motion rule (Enduro: ``FIRE,RIGHTFIRE,LEFTFIRE``, the actions that accelerate, so a tie between
    steering with and without the gas is labelled with it); empty: none."""
    probe_steps: int = 0
    """Before the rollouts, hold each action for this many agent steps; when every action leaves
    the same RAM, the game ignores input right now (a start or death animation: a third of
    Ms. Pac-Man's states) and every action gets value 0 without rollouts. 0: off."""

    def check(self, c: SettingChecks) -> None:
        c.integer("rollouts", self.rollouts, 1)
        c.integer("horizon", self.horizon, 1)
        c.number("switch_prob", self.switch_prob, low=0, high=1)
        c.number("life_penalty", self.life_penalty, low=0)
        c.number("tie_tolerance", self.tie_tolerance, low=0)
        c.integer("frame_skip", self.frame_skip, 1)
        c.flag("prefer_motion", self.prefer_motion)
        if not isinstance(self.prefer_actions, str):
            c.add("prefer_actions", "comma-separated action names, e.g. 'FIRE,RIGHTFIRE'", self.prefer_actions)
        c.integer("probe_steps", self.probe_steps, 0)

    def preferred_indices(self, action_names: Sequence[str]) -> list[int]:
        """The indices of :attr:`prefer_actions` among ``action_names``.

        Raises:
            ConfigError: a name the env does not have (the env's names listed).
        """
        wanted = [n.strip() for n in self.prefer_actions.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in action_names]
        if unknown:
            raise ConfigError(
                f"planner.prefer_actions: expected names among the env's actions {list(action_names)}, "
                f"got {unknown}. Fix the names in --prefer-actions (comma-separated, e.g. 'FIRE,RIGHTFIRE')."
            )
        return [list(action_names).index(n) for n in wanted]


def canonical_label(values: np.ndarray, preferred: Sequence[int] = (), tolerance: float = 0.0) -> int:
    """The label among the best actions: the first of ``preferred`` that is tied for best, else the
    lowest-index tied action other than 0 (action 0 is NOOP in every ALE game), else 0.

    Args:
        values: (K,) action values.
        preferred: actions to pick first when tied, in order (e.g. :func:`motion_actions`: the
            direction the player already moves in, which the stacked frames show).
        tolerance: values within this of the best count as tied.
    """
    values = np.asarray(values, dtype=np.float64)
    tied = np.flatnonzero(values >= values.max() - tolerance)
    for a in preferred:
        if a in tied:
            return int(a)
    non_noop = tied[tied != 0]
    return int(non_noop[0]) if len(non_noop) else int(tied[0])


def motion_actions(
    before: Sequence[float] | None,
    after: Sequence[float] | None,
    action_names: Sequence[str],
    min_move: float = 0.25,
    wrap: float = 20.0,
) -> list[int]:
    """The actions named after the direction a box moved in, most specific first.

    Args:
        before: the player's box ``(x0, y0, x1, y1)`` a step ago (None: unknown).
        after: its box now.
        action_names: the env's action names (``"UP"``, ``"DOWNLEFT"`` ...).
        min_move: a smaller shift of the centre (pixels) is no motion along that axis.
        wrap: a larger horizontal jump is a wrap through a tunnel (the motion is the other way).

    Returns:
        Indices of e.g. ``UPLEFT`` then ``LEFT`` then ``UP`` for a move up and left (only names the
        env has); empty when the box did not move or either box is unknown.
    """
    if before is None or after is None:
        return []
    dx = (after[0] + after[2] - before[0] - before[2]) / 2
    dy = (after[1] + after[3] - before[1] - before[3]) / 2
    if abs(dx) > wrap:
        dx = -dx
    horizontal = ("RIGHT" if dx > 0 else "LEFT") if abs(dx) >= min_move else ""
    vertical = ("DOWN" if dy > 0 else "UP") if abs(dy) >= min_move else ""
    names = [vertical + horizontal] if horizontal and vertical else []
    names += [n for n in sorted((horizontal, vertical), key=lambda n: -abs(dx if n == horizontal else dy)) if n]
    index = {n: i for i, n in enumerate(action_names)}
    return [index[n] for n in names if n in index]


class RolloutPlanner:
    """Scores the actions of an ALE env's current state; leaves the emulator where it found it.

    Args:
        env: a Gymnasium ALE env (any wrappers); its ``unwrapped.ale`` is used directly.
        settings: rollout settings.
        seed: seeds the random continuations.
    """

    def __init__(self, env: Any, settings: PlannerSettings | None = None, seed: int = 0) -> None:
        base = env.unwrapped
        if not hasattr(base, "ale") or not hasattr(base, "_action_set"):
            raise ConfigError(
                f"The rollout planner needs an ALE env (env.unwrapped.ale); got {type(base).__name__}. "
                "Use an Atari env from `vmask-live envs`."
            )
        self.ale = base.ale
        self.action_set = list(base._action_set)
        self.settings = settings or PlannerSettings()
        c = SettingChecks("planner")
        self.settings.check(c)
        c.raise_if_any()
        self.rng = np.random.default_rng(seed)

    @property
    def n_actions(self) -> int:
        return len(self.action_set)

    def values(self) -> np.ndarray:
        """(K,) mean rollout score of each action from the current emulator state."""
        s = self.settings
        k = self.n_actions
        ale = self.ale
        root = ale.cloneState()
        lives0 = ale.lives()
        switches = self.rng.random((s.rollouts, s.horizon)) < s.switch_prob
        randoms = self.rng.integers(0, k, (s.rollouts, s.horizon))
        totals = np.zeros(k)
        try:
            if s.probe_steps and self._input_ignored(root):
                return totals
            for a in range(k):
                for r in range(s.rollouts):
                    if a or r:
                        ale.restoreState(root)
                    action = a
                    score = 0.0
                    for t in range(s.horizon):
                        if t and switches[r, t]:
                            action = int(randoms[r, t])
                        ale_action = self.action_set[action]
                        for _ in range(s.frame_skip):
                            score += ale.act(ale_action)
                        if ale.lives() < lives0:
                            score -= s.life_penalty
                            break
                        if ale.game_over():
                            break
                    totals[a] += score
        finally:
            ale.restoreState(root)
        return totals / s.rollouts

    def _input_ignored(self, root: Any) -> bool:
        """Whether every action held for ``probe_steps`` leaves the same RAM (restores ``root``)."""
        ale = self.ale
        first = None
        for a in range(self.n_actions):
            ale.restoreState(root)
            for _ in range(self.settings.probe_steps * self.settings.frame_skip):
                ale.act(self.action_set[a])
            ram = ale.getRAM().tobytes()
            if first is None:
                first = ram
            elif ram != first:
                ale.restoreState(root)
                return False
        ale.restoreState(root)
        return True
