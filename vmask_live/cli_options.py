"""Typer options generated from the job config dataclasses: one source of options, defaults and help.

Every field of a config becomes one ``--kebab-case`` option whose default is the field's default
and whose help is the field's docstring (the string literal right after the field, as in
CleanRL's ``Args``). Bools become ``--x/--no-x``, ``X | None`` stays optional, ``dict`` fields take
a JSON object and a nested config dataclass (``TrainConfig.loss``) is flattened into its own
fields. Adding an option to a command is adding a field with a docstring to its config.

Where a command's spelling differs from the field name (``train-agent --steps`` for
``PPOConfig.total_steps``), the command passes a :class:`Flag`. A command that runs one of several
configs (``train-agent``: ``PPOConfig`` or ``BCConfig``) gets the union of their options; an
option whose configs disagree on the default defaults to ``None`` ("the config's own default").

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class JobConfig:
    ...     total_steps: int = 10
    ...     '''Steps to run.'''
    ...     fast: bool = False
    ...     '''Skip the slow checks.'''
    >>> opts = ConfigOptions(JobConfig, flags={"total_steps": Flag("steps")})
    >>> [o.decls for o in opts.options]
    [('--steps',), ('--fast/--no-fast',)]
    >>> opts.build({"steps": 3, "fast": True})
    JobConfig(total_steps=3, fast=True)
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import re
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Flag", "Option", "ConfigOptions", "field_docs", "config_fields"]

_SCALARS = (bool, int, float, str)


@dataclasses.dataclass(frozen=True)
class Flag:
    """How one config field appears on one command, where it differs from the generated option."""

    name: str | None = None
    """The option's name in snake_case (``"steps"`` → ``--steps``); default: the field's name."""
    negative: str | None = None
    """A bool's off switch in snake_case (``"stochastic"`` → ``--deterministic/--stochastic``)."""
    required: bool = False
    """The option has no default: the command refuses to run without it."""
    hidden: bool = False
    """Not on the command line: the config's default is always used."""


@dataclasses.dataclass(frozen=True)
class Option:
    """One generated option and the config field(s) it sets."""

    name: str
    """Python identifier and snake_case spelling: ``a_max`` for ``--a-max``."""
    decls: tuple[str, ...]
    """Typer's parameter declarations, e.g. ``("--resume/--no-resume",)``."""
    annotation: Any
    """The option's type for typer (``int``, ``str | None``...)."""
    default: Any
    """The option's default; ``...`` when required."""
    help: str
    targets: tuple[tuple[str | None, tuple[str, ...]], ...]
    """``(config label, field path)`` pairs the value goes to; a path is ``("loss", "kind")`` for a
    nested field; the label is None for a single-config command."""
    config_default: bool = False
    """``None`` means "not given": the field keeps its config's own default."""
    json: bool = False
    """The value is a JSON object on the command line (a ``dict`` field)."""

    def parameter(self) -> inspect.Parameter:
        """The keyword-only parameter typer reads this option from."""
        import typer

        kw: dict[str, Any] = {"help": self.help}
        if self.json:
            kw["metavar"] = "JSON"
        return inspect.Parameter(
            self.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(self.default, *self.decls, **kw),
            annotation=self.annotation,
        )


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring of each field of dataclass ``cls`` (and its bases), read once from the source.

    Returns:
        ``{field name: docstring}`` for the fields that have one (``inspect.cleandoc``-ed).
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # no source (e.g. a frozen install): no help rather than a crash
            continue
        node = ast.parse(source).body[0]
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt, nxt in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def _help_text(doc: str, spelling: Mapping[str, str]) -> str:
    """A field docstring as one line of CLI help: reST roles and double backticks made plain, and
    ``field`` names of the command's configs spelled as their options (``total_steps`` -> ``--steps``)."""
    from rich.markup import escape

    text = _ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1] if '~' in m.group(0) else m.group(1)}`", doc)
    text = _LITERAL.sub(lambda m: f"`{spelling.get(m.group(1), m.group(1))}`", text)
    return escape(" ".join(text.split()))


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; ``X`` -> ``(X, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return ...


def config_fields(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any, Any, str]]:
    """Every leaf field of ``cls`` with nested config dataclasses flattened.

    Returns:
        ``(path, type, default, docstring)`` per field; ``path`` is ``("loss", "kind")`` for the
        ``kind`` field of a nested ``loss: LossConfig``.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            out += config_fields(tp, (*prefix, f.name))
        else:
            out.append(((*prefix, f.name), tp, _field_default(f), docs.get(f.name, "")))
    return out


def _kebab(name: str) -> str:
    return "--" + name.replace("_", "-")


class ConfigOptions:
    """The typer options of one command, generated from its config dataclass(es).

    Args:
        configs: the config class, or ``{label: class}`` for a command that runs one of several
            (the label picks the class in :meth:`build`; it prefixes help that is not shared).
        flags: per-command spelling, keyed by field path (``"total_steps"``, ``"loss.kind"``).

    Raises:
        TypeError: a field whose type has no option form (hide it with ``Flag(hidden=True)``), two
            fields of one config on one option name, or a flag for a field no config has.
    """

    def __init__(self, configs: type | Mapping[str, type], flags: Mapping[str, Flag] | None = None) -> None:
        self.configs: dict[str | None, type] = (
            {None: configs} if isinstance(configs, type) else {str(k): v for k, v in configs.items()}
        )
        self.flags = dict(flags or {})
        self.options = self._generate()

    def _generate(self) -> list[Option]:
        seen_flags: set[str] = set()
        # option name -> [(label, path, type, default, doc, flag)]
        groups: dict[str, list[tuple[str | None, tuple[str, ...], Any, Any, str, Flag]]] = {}
        for label, cls in self.configs.items():
            names_here: set[str] = set()
            for path, tp, default, doc in config_fields(cls):
                key = ".".join(path)
                flag = self.flags.get(key, Flag())
                if key in self.flags:
                    seen_flags.add(key)
                if flag.hidden:
                    continue
                name = flag.name or path[-1]
                if name in names_here:
                    raise TypeError(f"{cls.__name__}: two fields on option {_kebab(name)}; rename one with a Flag")
                names_here.add(name)
                groups.setdefault(name, []).append((label, path, tp, default, doc, flag))
        unknown = set(self.flags) - seen_flags
        if unknown:
            raise TypeError(f"Flags for fields no config has: {sorted(unknown)}")
        self._spelling = {m[1][-1]: _kebab(name) for name, members in groups.items() for m in members}
        return [self._option(name, members) for name, members in groups.items()]

    def _option(self, name: str, members: list) -> Option:
        where = ", ".join(f"{self.configs[m[0]].__name__}.{'.'.join(m[1])}" for m in members)
        bases = {_split_optional(m[2])[0] for m in members}
        if len(bases) > 1:
            raise TypeError(f"Option {_kebab(name)} has different types: {where}")
        (base,) = bases
        optional = any(_split_optional(m[2])[1] for m in members)
        is_json = typing.get_origin(base) is dict or base is dict
        if not is_json and base not in _SCALARS:
            raise TypeError(f"No option form for {where} of type {base!r}; hide it with Flag(hidden=True)")
        flag: Flag = members[0][5]
        required = any(m[5].required for m in members)
        defaults = [m[3] for m in members]
        # one default when the configs agree on it; else (or for a JSON object) None = "each config's own"
        config_default = is_json or any(d != defaults[0] for d in defaults)
        default = ... if required else (None if config_default else defaults[0])
        if base is bool:
            negative = flag.negative or f"no_{name}"
            decls: tuple[str, ...] = (f"{_kebab(name)}/{_kebab(negative)}",)
        else:
            decls = (_kebab(name),)
        annotation: Any = str if is_json else base
        if optional or config_default:
            annotation = annotation | None
        return Option(
            name=name,
            decls=decls,
            annotation=annotation,
            default=default,
            help=self._help(members, config_default and not is_json),
            targets=tuple((m[0], m[1]) for m in members),
            config_default=config_default,
            json=is_json,
        )

    def _help(self, members: list, list_defaults: bool) -> str:
        if any(not m[4] for m in members):
            return ""  # a field without a docstring: tests/test_cli_configs.py asks for one
        docs = [_help_text(m[4], self._spelling) for m in members]
        # prefix the config's label where the option is not the same for every config
        labelled = len(self.configs) > 1 and (len(members) < len(self.configs) or len(set(docs)) > 1)
        text = " ".join(f"{m[0]}: {d}" for m, d in zip(members, docs, strict=True)) if labelled else docs[0]
        if list_defaults:
            text += " (default: " + ", ".join(f"{m[0]} {m[3]}" for m in members) + ")"
        return text

    @property
    def names(self) -> list[str]:
        """The option names (python identifiers), in field order."""
        return [o.name for o in self.options]

    def parameters(self, extra: Sequence[inspect.Parameter] = ()) -> list[inspect.Parameter]:
        """The command's parameters: ``extra`` (its own, non-config options) then the generated ones.

        Raises:
            TypeError: an ``extra`` parameter has the name of a generated option.
        """
        clash = {p.name for p in extra} & set(self.names)
        if clash:
            raise TypeError(f"Command options {sorted(clash)} are also config fields; rename them with a Flag")
        return [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in extra] + [o.parameter() for o in self.options]

    def build(self, values: Mapping[str, Any], label: str | None = None) -> Any:
        """The config for parsed option ``values`` (``{option name: value}``).

        Args:
            values: parsed values; names that are not generated options are ignored.
            label: which config to build, for a command with several.

        Raises:
            typer.BadParameter: a JSON option that is not a JSON object.
        """
        if label is None and len(self.configs) > 1:
            raise TypeError(f"Pass which config to build: one of {list(self.configs)}")
        cls = self.configs[label]
        kwargs: dict[str, Any] = {}
        for opt in self.options:
            if opt.name not in values:
                continue
            value = values[opt.name]
            if value is None and opt.config_default:
                continue
            if opt.json and value is not None:
                value = _parse_json(opt, value)
            for target_label, path in opt.targets:
                if target_label == label:
                    node = kwargs
                    for part in path[:-1]:
                        node = node.setdefault(part, {})
                    node[path[-1]] = value
        return _construct(cls, kwargs)


def _parse_json(opt: Option, value: str) -> Any:
    import typer

    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise typer.BadParameter(f"expected a JSON object, got {value!r} ({err})", param_hint=opt.decls[0]) from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter(f"expected a JSON object, got {value!r}", param_hint=opt.decls[0])
    return parsed


def _construct(cls: type, kwargs: dict[str, Any]) -> Any:
    """``cls(**kwargs)`` with nested config dataclasses built from their sub-dicts."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if f.name in kwargs and dataclasses.is_dataclass(tp) and isinstance(tp, type):
            kwargs[f.name] = _construct(tp, kwargs[f.name])
    return cls(**kwargs)
