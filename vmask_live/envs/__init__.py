"""The environments vmask-live knows, in one registry: :func:`make_env` and ``vmask-live envs``.

Each env is an :class:`EnvSpec`: its name (and aliases), a ``make`` function that returns it
with the preprocessing its agents expect, its family, what it needs installed and, where known
without making it, its action names. :func:`make_env`, :func:`canonical_name`,
:func:`known_envs` (``vmask-live envs``) and :func:`action_names` all read :data:`ENVS`.

A new family plugs in with one spec per env, e.g. Highway (in this module, or from outside)::

    import gymnasium as gym
    from vmask_live.envs import EnvSpec, register_env

    def make_highway(*, render_mode=None, training=False, **kwargs):
        import highway_env  # noqa: F401  (registers highway-fast-v0 with Gymnasium)

        obs = {"type": "GrayscaleObservation", "observation_shape": (84, 84), "stack_size": 4,
               "weights": [0.2989, 0.5870, 0.1140]}
        return gym.make("highway-fast-v0", render_mode=render_mode, config={"observation": obs}, **kwargs)

    register_env(EnvSpec(
        name="Highway",
        make=make_highway,
        family="highway",
        description="highway-env's highway-fast-v0, 4 stacked 84x84 grey frames",
        requires=("highway_env",),  # checked first: a missing one names the pip command
        extra="highway",            # pip install "vmask-live[highway]"
    ))

More Atari games are one line each: add them to
:data:`~vmask_live.envs.atari.ATARI_GAMES`, or ``register_env(atari_spec("Qbert", "ALE/Qbert-v5"))``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from vmask_live.envs.atari import ATARI_GAMES, make_atari
from vmask_live.envs.beacon import ACTION_NAMES as BEACON_ACTIONS
from vmask_live.envs.beacon import BEACON_ID, BeaconEnv, make_beacon
from vmask_live.envs.highway import ACTION_NAMES as HIGHWAY_ACTIONS
from vmask_live.envs.highway import HIGHWAY_ID, make_highway
from vmask_live.envs.vizdoom import make_vizdoom
from vmask_live.errors import ConfigError

__all__ = [
    "EnvSpec",
    "ENVS",
    "register_env",
    "env_spec",
    "atari_spec",
    "make_env",
    "known_envs",
    "canonical_name",
    "action_names",
    "BeaconEnv",
]

if BEACON_ID not in gym.registry:
    gym.register(BEACON_ID, entry_point="vmask_live.envs.beacon:BeaconEnv")


@dataclass(frozen=True)
class EnvSpec:
    """One environment the CLI and :func:`make_env` know."""

    name: str
    """The CLI name (``"MsPacman"``); matched case-insensitively, also with a ``-v0`` suffix."""
    make: Callable[..., gym.Env]
    """``make(render_mode=None, training=False, **kwargs)`` -> the env with the preprocessing its
    agents expect (``training=True`` adds training-only wrappers, where the family has any)."""
    family: str
    """``"atari"``, ``"ground_truth"``, ... (envs of one family share ``make`` and preprocessing)."""
    description: str
    """One line for ``vmask-live envs``."""
    needs: str = ""
    """What must be installed, for ``vmask-live envs``; by default the ``extra``'s pip command,
    or "built in"."""
    requires: tuple[str, ...] = ()
    """Modules ``make`` imports, checked before making so a missing one names the pip command."""
    extra: str | None = None
    """The ``vmask-live[extra]`` that installs ``requires`` (None when they come with vmask-live)."""
    aliases: tuple[str, ...] = ()
    """Other names accepted for it (a Gymnasium or ALE id), case-insensitive."""
    ground_truth: bool = False
    """Its ``info["relevant_mask"]`` marks the pixels that decide the expert's action."""
    action_names: tuple[str, ...] | None = None
    """Its action names when known without making it; None: read from the env once."""

    def __post_init__(self) -> None:
        if self.requires and self.extra is None:
            raise ValueError(
                f"EnvSpec {self.name!r}: expected `extra` naming the vmask-live extra that installs "
                f"{', '.join(self.requires)}, got None"
            )

    @property
    def needs_text(self) -> str:
        """``needs``, or what it defaults to."""
        if self.needs:
            return self.needs
        return f'pip install "vmask-live[{self.extra}]"' if self.extra else "built in"


#: Every env by CLI name, in the order ``vmask-live envs`` lists them.
ENVS: dict[str, EnvSpec] = {}
_LOOKUP: dict[str, str] = {}  # lower-cased name, name-v0 or alias -> CLI name


def _keys(spec: EnvSpec) -> set[str]:
    return {spec.name.lower(), f"{spec.name.lower()}-v0", *(a.lower() for a in spec.aliases)}


def register_env(spec: EnvSpec, *, replace: bool = False) -> EnvSpec:
    """Add an env to :data:`ENVS` (``replace=True`` to redefine a name); returns ``spec``.

    Raises:
        ValueError: the name or an alias is taken by another env.
    """
    if not isinstance(spec, EnvSpec):
        raise TypeError(f"Expected an EnvSpec, got {type(spec).__name__}")
    if spec.name in ENVS and not replace:
        raise ValueError(f"Env {spec.name!r} is already registered; pass replace=True to redefine it")
    taken = sorted(k for k in _keys(spec) if _LOOKUP.get(k, spec.name) != spec.name)
    if taken:
        raise ValueError(f"Env {spec.name!r}: names {taken} already belong to {sorted({_LOOKUP[k] for k in taken})}")
    if spec.name in ENVS:
        for key in _keys(ENVS[spec.name]):
            del _LOOKUP[key]
        _probed_action_names.cache_clear()
    ENVS[spec.name] = spec
    _LOOKUP.update(dict.fromkeys(_keys(spec), spec.name))
    return spec


def atari_spec(name: str, ale_id: str) -> EnvSpec:
    """The spec of an Atari game with RL-Zoo preprocessing (:func:`~vmask_live.envs.atari.make_atari`)."""
    return EnvSpec(
        name=name,
        make=functools.partial(make_atari, ale_id),
        family="atari",
        description=f"Atari {ale_id} with RL-Zoo preprocessing",
        needs="ale-py, installed with vmask-live",
        aliases=(ale_id,),
    )


for _spec in (
    EnvSpec(
        name="Beacon",
        make=make_beacon,
        family="ground_truth",
        description="the ground-truth env: reach the beacon among clutter",
        aliases=(BEACON_ID,),
        ground_truth=True,
        action_names=tuple(BEACON_ACTIONS),
    ),
    EnvSpec(
        name="BeaconTextured",
        make=functools.partial(make_beacon, texture=48),
        family="ground_truth",
        description="Beacon on per-pixel grey noise instead of black: no pixel equals the reference",
        ground_truth=True,
        action_names=tuple(BEACON_ACTIONS),
    ),
    *(atari_spec(name, ale_id) for name, ale_id in ATARI_GAMES.items()),
    EnvSpec(
        name="Highway",
        make=make_highway,
        family="highway",
        description=f"highway-env's {HIGHWAY_ID}, 4 stacked 64x128 grey frames of the road",
        requires=("highway_env",),
        extra="highway",
        aliases=(HIGHWAY_ID,),
        action_names=HIGHWAY_ACTIONS,
    ),
    EnvSpec(
        name="VizDoom",
        make=functools.partial(make_vizdoom, "basic"),
        family="vizdoom",
        description="VizDoom's basic scenario (shoot the monster), 4 stacked 84x84 grey frames",
        requires=("vizdoom",),
        extra="vizdoom",
        aliases=("VizdoomBasic-v1",),
        action_names=("MOVE_LEFT", "MOVE_RIGHT", "ATTACK"),
    ),
    EnvSpec(
        name="VizDoomDefend",
        make=functools.partial(make_vizdoom, "defend_the_center"),
        family="vizdoom",
        description="VizDoom's defend_the_center scenario, 4 stacked 84x84 grey frames",
        requires=("vizdoom",),
        extra="vizdoom",
        aliases=("VizdoomDefendCenter-v1",),
        action_names=("TURN_LEFT", "TURN_RIGHT", "ATTACK"),
    ),
):
    register_env(_spec)


def env_spec(name: str) -> EnvSpec:
    """The spec of an env by name or alias (case-insensitive).

    Raises:
        ConfigError: an unknown name; the message lists the known ones.
    """
    known = _LOOKUP.get(name.lower())
    if known is None:
        raise ConfigError(f"Unknown env {name!r}; known envs: {', '.join(ENVS)} (see `vmask-live envs`)")
    return ENVS[known]


def known_envs() -> dict[str, str]:
    """CLI name -> what it is and what it needs installed."""
    return {name: f"{spec.description} ({spec.needs_text})" for name, spec in ENVS.items()}


def canonical_name(name: str) -> str:
    """Case-insensitive CLI name (``mspacman`` -> ``MsPacman``); raises for unknown names."""
    return env_spec(name).name


def _is_other_ale_game(name: str) -> bool:
    """Any ALE id works with the Atari preprocessing, registered or not."""
    return name.startswith("ALE/") and name.lower() not in _LOOKUP


def make_env(name: str, *, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """Make an environment by name with the preprocessing its agents expect.

    Args:
        name: a name from :func:`known_envs` (case-insensitive) or an ALE id.
        render_mode: ``"rgb_array"`` for frames to draw overlays on.
        **kwargs: forwarded to the env's ``make`` (``training=True`` adds Atari training wrappers).

    Raises:
        ConfigError: an unknown name.
        MissingExtraError: a package the env needs is not installed (the message names the pip command).
    """
    if _is_other_ale_game(name):
        return make_atari(name, render_mode=render_mode, **kwargs)
    spec = env_spec(name)
    if spec.requires:
        from vmask_live._optional import require

        for module in spec.requires:
            require(module, str(spec.extra))
    return spec.make(render_mode=render_mode, **kwargs)


def action_names(env: gym.Env | str) -> list[str]:
    """Human names of a discrete action space, from an env or an env name.

    An env gives its own (``get_action_meanings()``: ALE's meanings, Beacon's names), else the
    indices. A name gives its spec's ``action_names``, or those of an env made once and cached.
    """
    if isinstance(env, str):
        spec = None if _is_other_ale_game(env) else env_spec(env)
        if spec is not None and spec.action_names is not None:
            return list(spec.action_names)
        return list(_probed_action_names(spec.name if spec is not None else env))
    base = env.unwrapped
    if hasattr(base, "get_action_meanings"):
        return list(base.get_action_meanings())
    return [str(i) for i in range(int(env.action_space.n))]  # type: ignore[attr-defined]


@functools.cache
def _probed_action_names(name: str) -> tuple[str, ...]:
    env = make_env(name)
    try:
        return tuple(action_names(env))
    finally:
        env.close()
