"""The CLI is generated from the job configs: every field is an option with the field's default and
docstring, and every command line the docs show parses into a valid config (no work is done)."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from vmask_live.cli import CONFIG_COMMANDS, app, build_config
from vmask_live.cli_options import ConfigOptions, Flag, config_fields
from vmask_live.loss import LossConfig
from vmask_live.train import TrainConfig
from vmask_live.train_agent import BCConfig, PPOConfig

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("vmask_live/defaults/*/*.md"))]
GROUP = typer.main.get_command(app)
COMMANDS = sorted(CONFIG_COMMANDS)


def _field(cfg: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        cfg = getattr(cfg, part)
    return cfg


def _parse(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """A command line (without ``vmask-live``) as (command, parsed values), as click parses it."""
    command = GROUP.commands[argv[0]]  # type: ignore[attr-defined]
    ctx = command.make_context(argv[0], argv[1:])
    return argv[0], dict(ctx.params)


def _required_args(command: str) -> list[str]:
    options, _ = CONFIG_COMMANDS[command]
    required = [o.decls[0] for o in options.options if o.default is ...]
    if command == "record":
        required.append("--out")
    return [a for decl in required for a in (decl, "x")]


def test_every_job_command_is_generated():
    assert COMMANDS == ["ablate", "collect", "evaluate", "play", "record", "train", "train-agent"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_field_is_an_option_with_the_fields_default_and_help(command):
    options, _ = CONFIG_COMMANDS[command]
    covered = set()
    for opt in options.options:
        assert opt.help, f"{command} {opt.decls[0]}: add a docstring to its field {opt.targets}"
        for label, path in opt.targets:
            covered.add((label, path))
            default = _field(options.configs[label](), path)
            if opt.default is ...:  # required: no default to agree with
                continue
            if opt.config_default:  # None = the config's own default, listed in the help when they differ
                assert opt.default is None
                if not opt.json:
                    assert f"{label} {default}" in opt.help
            else:
                assert opt.default == default, f"{command} {opt.decls[0]}: {opt.default!r} != {default!r}"
    for label, cls in options.configs.items():
        for path, _, _, _ in config_fields(cls):
            hidden = options.flags.get(".".join(path), Flag()).hidden
            assert hidden or (label, path) in covered, f"{command}: {cls.__name__}.{'.'.join(path)} has no option"


@pytest.mark.parametrize("command", COMMANDS)
def test_unset_options_build_the_config_defaults(command):
    options, select = CONFIG_COMMANDS[command]
    given = _required_args(command)
    for label, cls in options.configs.items():
        argv = [command, *given, *([f"--{select}", label] if select else [])]
        cfg = build_config(*_parse(argv))
        assert type(cfg) is cls
        required = {path for o in options.options if o.default is ... for _, path in o.targets}
        for path, _, default, _ in config_fields(cls):
            expected = "x" if path in required else default
            assert _field(cfg, path) == expected, f"{command} ({label}): {'.'.join(path)}"


def test_every_config_field_has_a_docstring():
    missing = [
        f"{cls.__name__}.{'.'.join(path)}"
        for options, _ in CONFIG_COMMANDS.values()
        for cls in options.configs.values()
        for path, _, _, doc in config_fields(cls)
        if not doc.strip()
    ]
    assert not missing, f"fields without a docstring (the CLI help): {missing}"


def _doc_command_lines() -> list[tuple[str, str]]:
    """``(file:line, command line)`` for every ``vmask-live`` command line in the docs: code
    blocks (fenced or indented, with ``\\`` continuations) and inline code."""
    lines = []
    for path in DOCS:
        text = path.read_text()
        for m in re.finditer(r"`(vmask-live [^`]+)`", text):
            lineno = text.count("\n", 0, m.start()) + 1
            lines.append((f"{path.relative_to(ROOT)}:{lineno}", m.group(1)))
        in_table = in_fence = False
        rows = text.splitlines()
        i = 0
        while i < len(rows):
            row = rows[i]
            start = i
            if row.startswith("| command |"):
                in_table = True
            elif in_table and row.startswith("|"):  # `record --env E --out x.mp4` next to `vmask-live play ...`
                for snippet in re.findall(r"`([a-z-]+ --[^`]+)`", row.split("|")[1]):
                    if snippet.split()[0] in GROUP.commands:  # type: ignore[attr-defined]
                        lines.append((f"{path.relative_to(ROOT)}:{i + 1}", "vmask-live " + snippet))
            else:
                in_table = False
            if row.startswith("```"):
                in_fence = not in_fence
            code = row.strip()
            if "vmask-live " in code and (in_fence or row.startswith("    ")):
                code = code[code.index("vmask-live ") :]
                while code.endswith("\\") and i + 1 < len(rows):
                    i += 1
                    code = code[:-1] + " " + rows[i].strip()
                lines.append((f"{path.relative_to(ROOT)}:{start + 1}", code))
            i += 1
    return lines


DOC_LINES = _doc_command_lines()


def test_the_docs_show_the_commands():
    shown = " ".join(line for _, line in DOC_LINES)
    for command in [*COMMANDS, "envs", "info", "export"]:
        assert f"vmask-live {command} " in shown + " ", command
    assert len(DOC_LINES) > 20


@pytest.mark.parametrize(("where", "line"), DOC_LINES, ids=[w for w, _ in DOC_LINES])
def test_doc_command_lines_parse_into_valid_configs(where, line):
    argv = shlex.split(line, comments=True)[1:]
    while argv and argv[0] in ("--debug", "--trust-agent-file"):
        argv = argv[1:]
    if "..." in argv or "COMMAND" in argv:  # a placeholder for any command
        return
    assert argv and argv[0] in GROUP.commands, f"{where}: unknown command in {line!r}"  # type: ignore[attr-defined]
    if len(argv) == 1:  # the name of a command in prose, e.g. (`vmask-live ablate`)
        return
    command, values = _parse(argv)
    if command in CONFIG_COMMANDS:
        build_config(command, values)  # validated: every value the docs show is a valid setting


@pytest.mark.parametrize("command", [*COMMANDS, "envs", "info", "export"])
def test_help_of_every_command(command):
    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    options, _ = CONFIG_COMMANDS.get(command, (None, None))
    for opt in options.options if options else ():
        assert opt.decls[0].split("/")[0] in res.output


def test_renamed_and_flattened_options_reach_their_fields():
    _, values = _parse(["train-agent", "--algo", "ppo", "--steps", "256", "--batch-size", "64", "--no-subprocess"])
    ppo = build_config("train-agent", values)
    assert isinstance(ppo, PPOConfig) and ppo.total_steps == 256 and ppo.batch_size == 64 and not ppo.subprocess
    assert ppo.env == "MsPacman" and ppo.out == "runs/agent"
    bc = build_config("train-agent", _parse(["train-agent", "--steps", "300", "--lr", "0.01"])[1])
    assert isinstance(bc, BCConfig) and bc.samples == 300 and bc.lr == 0.01 and bc.batch_size == 128
    assert bc.env == "Beacon" and bc.out == "runs/agent/agent.safetensors"
    argv = [
        "train",
        "--data",
        "d",
        "--agent",
        "a",
        "--loss-kind",
        "explainer",
        "--a-max",
        "0.02",
        "--area-loss",
        "hinge",
    ]
    train = build_config(*_parse(argv))
    assert isinstance(train, TrainConfig) and train.loss == LossConfig(kind="stalder", a_max=0.02, area_loss="hinge")
    assert build_config(*_parse(["play", "--stochastic"])).deterministic is False
    ablate = build_config(*_parse(["ablate", "--data", "d", "--agent", "a", "--base", '{"epochs": 3}']))
    assert ablate.base == {"epochs": 3}
    collect = build_config(*_parse(["collect", "--env", "Beacon", "--agent", "a", "--out", "o", "--env-kwargs", "{}"]))
    assert collect.env_kwargs == {}


def test_bad_json_and_missing_required_options_are_usage_errors(tmp_path):
    res = CliRunner().invoke(
        app, ["ablate", "--data", "d", "--agent", "a", "--out", str(tmp_path), "--base", "{epochs"]
    )
    assert res.exit_code == 2 and "expected a JSON object" in res.output and res.exception is not None
    res = CliRunner().invoke(app, ["collect", "--env", "Beacon", "--agent", "a"])
    assert res.exit_code == 2 and "--out" in res.output


def test_a_new_field_with_a_docstring_is_a_new_option():
    @dataclasses.dataclass
    class JobConfig:
        total_steps: int | None = None
        """Steps (None: all)."""
        fast: bool = True
        """Skip the slow checks."""
        loss: LossConfig = dataclasses.field(default_factory=LossConfig)

    opts = ConfigOptions(JobConfig, flags={"total_steps": Flag("steps"), "loss.kind": Flag("loss_kind")})
    assert [o.decls[0] for o in opts.options][:4] == ["--steps", "--fast/--no-fast", "--a-max", "--area-loss"]
    assert "--loss-kind" in [o.decls[0] for o in opts.options]
    assert opts.options[0].help == "Steps (None: all)." and opts.options[0].default is None
    assert opts.build({"steps": 5, "fast": False, "loss_kind": "explainer"}) == JobConfig(
        5, False, LossConfig(kind="explainer")
    )
    with pytest.raises(TypeError, match="Flags for fields no config has"):
        ConfigOptions(JobConfig, flags={"nope": Flag("x")})
