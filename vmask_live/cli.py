"""The ``vmask-live`` command line. Each command only builds a config and calls the job function.

A job command's options are generated from its config dataclass (:mod:`vmask_live.cli_options`):
one per field, with the field's default and docstring; a new option is a new field with a
docstring. What differs from the field (a rename, a required option) is a ``Flag`` here.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.table import Table

from vmask_live.ablation import AblationConfig
from vmask_live.cli_options import ConfigOptions, Flag
from vmask_live.dataset import CollectConfig
from vmask_live.distill import DistillConfig
from vmask_live.evaluate import EvaluateConfig
from vmask_live.train import TrainConfig
from vmask_live.train_agent import BCConfig, PPOConfig
from vmask_live.train_dqn import DQNConfig
from vmask_live.wrappers.live_app import LiveConfig

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Live VisionMask saliency for pixel RL agents.",
)
console = Console(stderr=True, soft_wrap=True)  # an error stays on one line, whatever the width


class Algo(str, Enum):
    ppo = "ppo"
    bc = "bc"
    distill = "distill"
    dqn = "dqn"


_DEBUG = {"on": False}

_FILE_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
"""File-system errors are the user's to fix (a path, a permission); every other exception that is
not a :class:`~vmask_live.errors.VmaskError` is a bug and keeps its traceback."""


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of every error, user errors included"),
    trust_agent_file: bool = typer.Option(
        False,
        "--trust-agent-file",
        help="Load SB3 .zip agents with SB3's own loader, which runs the pickled code inside the file (only for "
        "files you trust; by default the weights are read without unpickling and only SB3's Atari CnnPolicy "
        "is supported)",
    ),
) -> None:
    from vmask_live.agents import TRUST_AGENT_FILES

    _DEBUG["on"] = debug
    TRUST_AGENT_FILES["on"] = trust_agent_file


@contextmanager
def _job(interrupted: str | None = None) -> Iterator[None]:
    """Turn the project's own errors and file errors into one ``error:`` line (exit 2) and Ctrl-C /
    SIGTERM into exit 130; with ``--debug`` they keep their traceback."""
    from vmask_live.errors import VmaskError

    try:
        yield
    except KeyboardInterrupt as err:
        console.print(f"[yellow]{interrupted or err or 'interrupted'}[/]")
        if _DEBUG["on"]:
            raise
        raise typer.Exit(130) from None
    except (VmaskError, *_FILE_ERRORS) as err:
        if _DEBUG["on"]:
            raise
        _fail(err)


def _fail(err: Exception) -> None:
    console.print("[bold red]error:[/] " + rich_escape(str(err)))
    raise typer.Exit(2) from None


@app.command()
def envs() -> None:
    """List the environment names the CLI understands and what each needs installed."""
    from vmask_live.envs import known_envs

    table = Table("name", "what it is / needs")
    for name, what in known_envs().items():
        table.add_row(name, rich_escape(what))
    Console().print(table)


@app.command()
def info(checkpoint: Path = typer.Argument(..., help="An explainer or agent .safetensors checkpoint")) -> None:
    """Print a checkpoint's metadata (architecture, K, input shape, training config, metrics)."""
    from vmask_live.checkpoint import read_meta

    with _job():
        meta = read_meta(checkpoint)
    Console().print_json(json.dumps(meta))


def _config_command(
    name: str, options: ConfigOptions, *, select: str | None = None
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register ``body(cfg, **own)`` as command ``name``.

    The command's options are ``body``'s own (typer options after ``cfg``: ``record --out``,
    ``train-agent --algo``...) followed by one per config field (:mod:`vmask_live.cli_options`).
    ``cfg`` is built and validated under :func:`_job`, so a bad setting is one ``error:`` line;
    ``select`` names the own option whose value picks the config of a multi-config command.
    """

    def decorate(body: Callable[..., None]) -> Callable[..., None]:
        own = list(inspect.signature(body, eval_str=True).parameters.values())[1:]
        params = options.parameters(own)
        CONFIG_COMMANDS[name] = (options, select)

        def callback(**values: Any) -> None:
            rest = {p.name: values.pop(p.name) for p in own}
            with _job():
                cfg = build_config(name, {**values, **rest})
            body(cfg, **rest)

        callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        callback.__name__ = callback.__qualname__ = body.__name__
        callback.__doc__ = body.__doc__
        app.command(name)(callback)
        return body

    return decorate


CONFIG_COMMANDS: dict[str, tuple[ConfigOptions, str | None]] = {}
"""``{command: (its generated options, the option that picks the config or None)}``."""


def build_config(command: str, values: dict[str, Any]) -> Any:
    """The validated config command ``command`` runs for parsed option ``values`` (no work done).

    Raises:
        ConfigError: a bad setting (all of them listed).
    """
    options, select = CONFIG_COMMANDS[command]
    label = values[select] if select else None
    cfg = options.build(values, label.value if isinstance(label, Enum) else label)
    if hasattr(cfg, "validate"):  # every bad setting is listed before any work starts
        cfg.validate()
    return cfg


_TRAIN_AGENT = ConfigOptions(
    {"ppo": PPOConfig, "bc": BCConfig, "distill": DistillConfig, "dqn": DQNConfig},
    flags={"total_steps": Flag("steps"), "samples": Flag("steps")},
)


@_config_command("train-agent", _TRAIN_AGENT, select="algo")
def train_agent(
    cfg: PPOConfig | BCConfig | DistillConfig | DQNConfig,
    algo: Algo = typer.Option(
        Algo.bc,
        help="ppo (SB3, Atari), distill (a rollout planner distilled with DAgger, Atari), dqn (SB3 DQN from "
        "scratch: Highway, VizDoom) or bc (clone the ground-truth expert)",
    ),
    export_checkpoint: Path | None = typer.Option(
        None, help="ppo: skip training; export and evaluate this SB3 checkpoint (e.g. --out/ppo_600000.zip)"
    ),
) -> None:
    """Train an agent to explain: SB3 PPO or planner distillation on Atari, behaviour cloning on the ground-truth env."""
    from vmask_live.agents import TRUST_AGENT_FILES
    from vmask_live.train_agent import run_train_agent

    with _job():
        path, metrics = run_train_agent(cfg, export_checkpoint=export_checkpoint, trust_pickle=TRUST_AGENT_FILES["on"])
    if isinstance(cfg, BCConfig):
        console.print(f"agent saved to {path}: {metrics}")
        if not metrics["reached_min_agreement"]:
            n = len(metrics["attempts"])
            console.print(
                f"[bold red]error:[/] the agent agrees with the expert on {metrics['heldout_agreement']:.1%} of "
                f"held-out states, below --min-agreement {cfg.min_agreement:.1%}, after {n} attempt{'s' * (n > 1)}: "
                "it has not learned the task, and maps that explain it would explain its mistakes. It is saved "
                "for inspection only. Retrain with another --seed or more --restarts (or a lower --min-agreement "
                "if this agreement is what you want)."
            )
            raise typer.Exit(1)
    else:
        console.print(f"agent saved to {path}; evaluation: {metrics}")


_REQUIRED = Flag(required=True)


@_config_command("collect", ConfigOptions(CollectConfig, flags=dict.fromkeys(("env", "agent", "out"), _REQUIRED)))
def collect(cfg: CollectConfig) -> None:
    """Collect a dataset of agent-visited states (sharded, resumable) with an 80/10/10 episode split."""
    from vmask_live.dataset import collect as run

    with _job():
        ds = run(cfg)
    console.print(f"{len(ds)} states in {cfg.out}: {ds.manifest['counts']}")


@_config_command(
    "train",
    ConfigOptions(TrainConfig, flags={"data": _REQUIRED, "agent": _REQUIRED, "loss.kind": Flag("loss_kind")}),
)
def train(cfg: TrainConfig) -> None:
    """Train a VisionMask explainer against the frozen agent."""
    from vmask_live.train import train as run

    with _job():
        res = run(cfg)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or os.environ.get("RANK", "0") == "0":  # one line per torchrun job
        console.print(f"best explainer: {res.path} ({res.seconds:.0f} s, {res.samples_per_s:.0f} samples/s)")


@_config_command("evaluate", ConfigOptions(EvaluateConfig))
def evaluate(cfg: EvaluateConfig) -> None:
    """Compare saliency methods side by side on the same test states; writes report.md/json/csv.

    Test states: the test split of --data, or straight from --env with no dataset to collect first.

    With --env the agent (default: the bundled default:ENV) plays the env for --play-steps states (seed + 10000, stored in OUT/states, reused by reruns) and --n of the states it visits are sampled.

    Example: vmask-live evaluate --env MsPacman --methods all --n 8 --out runs/eval

    Each method's result is cached in OUT/methods and reused only when the states, agent, explainer and settings all match.
    """
    from functools import partial

    from vmask_live.evaluate import evaluate as run
    from vmask_live.export import load_explainer

    with _job():
        report = run(cfg, compile_explainer=partial(load_explainer, backend="auto"))
    console.print(f"report: {report}")


@_config_command("ablate", ConfigOptions(AblationConfig, flags={"data": _REQUIRED, "agent": _REQUIRED}))
def ablate(cfg: AblationConfig) -> None:
    """Run the paper's ablations (area loss, a_max, reference, loss components, architecture)."""
    from vmask_live.ablation import ablate as run

    with _job():
        path = run(cfg)
    console.print(f"table: {path}")


_LIVE = ConfigOptions(LiveConfig, flags={"deterministic": Flag(negative="stochastic")})


@_config_command("play", _LIVE)
def play(cfg: LiveConfig) -> None:
    """Watch the agent play with its saliency overlay in a Pygame window.

    With --agent, pass --explainer too: the bundled explainer belongs to the bundled agent only.

    Keys: space pause, → single step, 1..9 action k's map (0 chosen), c contrast, f counterfactual,
    o overlay, b object boxes, x remove one object, r record, s screenshot, q/Esc quit.
    """
    from vmask_live.wrappers.live_app import play as run

    with _job():
        stats = run(cfg)
    console.print(
        f"{stats['steps']} steps, {stats['episodes']} episodes, score {stats['score']:.0f}, {stats['fps']:.1f} FPS"
    )


@_config_command("record", _LIVE)
def record(
    cfg: LiveConfig,
    out: Path = typer.Option(..., help="Video file (.mp4)"),
    overwrite: bool = typer.Option(False, help="Replace an existing video file at --out"),
) -> None:
    """Record the overlay video of the agent playing (finalised even on Ctrl-C or SIGTERM)."""
    from vmask_live.errors import ConfigError
    from vmask_live.wrappers.live_app import record as run

    with _job(interrupted=f"interrupted; {out} holds the frames recorded before it, if any"):
        if out.exists() and not overwrite:
            raise ConfigError(f"{str(out)!r} already exists; pass --overwrite to replace it, or another --out")
        stats = run(cfg, out)
    console.print(f"wrote {stats['path']}: {stats['frames']} frames, score {stats['score']:.0f}")


_ALLOW_MISMATCH_HELP = "Use the explainer with an agent it was not trained for (its maps then explain another network)"


@app.command()
def export(
    explainer: str = typer.Option(..., help="Explainer checkpoint or default:NAME"),
    backend: str = typer.Option("onnx", help="onnx | tensorrt"),
    precision: str = typer.Option("fp32", help="fp32 | fp16 (TensorRT)"),
    batch: int | None = typer.Option(None, help="Static batch size (TensorRT: default 1; ONNX: dynamic)"),
    out: Path | None = typer.Option(None, help="Artifact path (default: next to the checkpoint)"),
    device: str = "auto",
    agent: str | None = typer.Option(
        None, help="The agent the artifact will run beside: refuse unless the explainer was trained for it"
    ),
    allow_mismatch: bool = typer.Option(False, help=_ALLOW_MISMATCH_HELP),
) -> None:
    """Compile an explainer for low-latency inference (ONNX Runtime or TensorRT)."""
    from vmask_live.agents import load_agent
    from vmask_live.explainer import Explainer
    from vmask_live.export import default_artifact_path, export_explainer, resolve_backend
    from vmask_live.pairing import check_pairing

    with _job():
        exp = Explainer.load(explainer)
        if agent is not None:
            check_pairing(exp, load_agent(agent), allow_mismatch=allow_mismatch)
        backend, device = resolve_backend(backend, device)  # "auto" -> a concrete backend before naming the file
        if out is None:
            out = default_artifact_path(exp, backend, batch, precision, beside_checkpoint=True)
        path = export_explainer(exp, backend, out, batch_size=batch, precision=precision, device=device)
    console.print(f"wrote {path} (+ {path.name}.json)")


if __name__ == "__main__":
    app()
