"""The ``vmask-live`` command line. Each command only builds a config and calls the job function."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.table import Table

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
        table.add_row(name, what)
    Console().print(table)


@app.command()
def info(checkpoint: Path = typer.Argument(..., help="An explainer or agent .safetensors checkpoint")) -> None:
    """Print a checkpoint's metadata (architecture, K, input shape, training config, metrics)."""
    from vmask_live.checkpoint import read_meta

    with _job():
        meta = read_meta(checkpoint)
    Console().print_json(json.dumps(meta))


@app.command("train-agent")
def train_agent(
    env: str = typer.Option("Beacon", help="Env name (see `vmask-live envs`)"),
    algo: Algo = typer.Option(Algo.bc, help="ppo (SB3, Atari) or bc (clone the ground-truth expert)"),
    out: Path = typer.Option(Path("runs/agent"), help="Run folder (ppo) or agent checkpoint file (bc)"),
    steps: int | None = typer.Option(
        None, help="ppo: total agent steps (default 1,000,000); bc: expert samples (default 10,000)"
    ),
    seed: int = 0,
    n_envs: int = typer.Option(8, help="ppo: parallel envs"),
    subprocess: bool = typer.Option(True, help="ppo: run envs in worker processes"),
    resume: bool = typer.Option(False, help="ppo: continue from the latest checkpoint in --out"),
    eval_episodes: int = typer.Option(10, help="ppo: full-game evaluation episodes at the end"),
    export_checkpoint: Path | None = typer.Option(
        None, help="ppo: skip training; export and evaluate this SB3 checkpoint (e.g. --out/ppo_600000.zip)"
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing agent / run in --out"),
) -> None:
    """Train an agent to explain: SB3 PPO on Atari, or behaviour cloning on the ground-truth env."""
    from vmask_live.agents import TRUST_AGENT_FILES
    from vmask_live.train_agent import BCConfig, PPOConfig, evaluate_agent, export_ppo, train_bc, train_ppo

    with _job():
        if algo == Algo.bc:
            path = out if out.suffix == ".safetensors" else out / "agent.safetensors"
            _, metrics = train_bc(BCConfig(env=env, out=str(path), samples=steps, seed=seed, overwrite=overwrite))
            console.print(f"agent saved to {path}: {metrics}")
            return
        cfg = PPOConfig(
            env=env,
            out=str(out),
            total_steps=steps,
            n_envs=n_envs,
            seed=seed,
            subprocess=subprocess,
            resume=resume,
            eval_episodes=eval_episodes,
            overwrite=overwrite,
        )
        cfg.validate()
        zip_path = export_checkpoint or train_ppo(cfg)
        agent_path = out / "agent.safetensors"
        trust = TRUST_AGENT_FILES["on"]
        export_ppo(zip_path, agent_path, trust_pickle=trust)
        scores = (
            {
                mode: evaluate_agent(
                    agent_path, env, eval_episodes, seed=seed + 100, deterministic=(mode == "deterministic")
                )
                for mode in ("deterministic", "stochastic")
            }
            if eval_episodes > 0
            else {}
        )
        export_ppo(zip_path, agent_path, {"eval": scores}, trust_pickle=trust)
        console.print(f"agent saved to {agent_path}; evaluation: {scores}")


@app.command()
def collect(
    env: str = typer.Option(..., help="Env name"),
    agent: str = typer.Option(..., help="Agent: default:NAME, .safetensors or SB3 .zip"),
    out: Path = typer.Option(..., help="Dataset folder"),
    steps: int = typer.Option(50_000, help="States to store"),
    n_envs: int = 8,
    shard_size: int = 5_000,
    seed: int = 0,
    deterministic: bool = typer.Option(False, help="Act by arg-max instead of sampling"),
    resume: bool = False,
) -> None:
    """Collect a dataset of agent-visited states (sharded, resumable) with an 80/10/10 episode split."""
    from vmask_live.dataset import CollectConfig
    from vmask_live.dataset import collect as run

    with _job():
        ds = run(
            CollectConfig(
                env=env,
                agent=agent,
                out=str(out),
                steps=steps,
                n_envs=n_envs,
                shard_size=shard_size,
                seed=seed,
                deterministic=deterministic,
                resume=resume,
            )
        )
    console.print(f"{len(ds)} states in {out}: {ds.manifest['counts']}")


@app.command()
def train(
    data: Path = typer.Option(..., help="Dataset folder from `collect`"),
    agent: str = typer.Option(..., help="The agent the dataset was collected with"),
    out: Path = typer.Option(Path("runs/explainer"), help="Run folder"),
    arch: str = "deeplab",
    width: int = 16,
    reference: str = typer.Option("background", help="background | black | mean | blur"),
    a_max: float = 0.1,
    area_loss: str = typer.Option("abs", help="abs | hinge | stalder"),
    lambda_ne: float = 1.0,
    lambda_area: float = 1.0,
    lambda_tv: float = 0.0,
    lambda_l1: float = typer.Option(0.0, help="Plain L1 pull of every map toward empty (the authors' code: 1.0)"),
    loss_kind: str = typer.Option("visionmask", help="visionmask | explainer (Stalder et al.)"),
    input_noise: float = typer.Option(0.0, help="Train the explainer on states + U(-x, x) noise (robustness, LLE)"),
    lr: float = 1e-3,
    batch_size: int = 32,
    epochs: int = 10,
    steps_per_epoch: int | None = None,
    patience: int = 3,
    max_minutes: float | None = None,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = typer.Option(False, help="Replace another run's explainer in --out instead of refusing"),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N | auto"),
) -> None:
    """Train a VisionMask explainer against the frozen agent."""
    from vmask_live.loss import LossConfig
    from vmask_live.train import TrainConfig
    from vmask_live.train import train as run

    with _job():
        cfg = TrainConfig(
            data=str(data),
            agent=agent,
            out=str(out),
            arch=arch,
            width=width,
            reference=reference,
            loss=LossConfig(
                a_max=a_max,
                area_loss=area_loss,
                lambda_ne=lambda_ne,
                lambda_area=lambda_area,
                lambda_tv=lambda_tv,
                lambda_l1=lambda_l1,
                kind=loss_kind,
            ),
            input_noise=input_noise,
            lr=lr,
            batch_size=batch_size,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            patience=patience,
            max_minutes=max_minutes,
            seed=seed,
            resume=resume,
            overwrite=overwrite,
            device=device,
        )
        res = run(cfg)
    console.print(f"best explainer: {res.path} ({res.seconds:.0f} s, {res.samples_per_s:.0f} samples/s)")


@app.command()
def evaluate(
    data: Path | None = typer.Option(None, help="Dataset folder from `collect` (its test split is used); or --env"),
    env: str | None = typer.Option(
        None, help="Evaluate straight from this env instead of --data: the agent plays it (saved to OUT/states)"
    ),
    agent: str | None = typer.Option(
        None, help="The agent: with --data the one that collected it; with --env default: the bundled default:ENV"
    ),
    explainer: str | None = typer.Option(
        None, help="VisionMask checkpoint (default: the bundled one, only with the bundled agent default:ENV)"
    ),
    stalder: str | None = typer.Option(
        None, help="Explainer (Stalder et al.) checkpoint: `train --loss-kind explainer`"
    ),
    methods: str = typer.Option("visionmask", help="Comma-separated methods, or 'all'"),
    rise_masks: int = typer.Option(2000, help="RISE masks per state"),
    lime_samples: int = typer.Option(300, help="LIME samples per state"),
    lle_n: int = typer.Option(50, help="States used for LLE (N neighbours each); 0 skips LLE"),
    n: int = typer.Option(500, help="Test states"),
    play_steps: int | None = typer.Option(
        None, help="With --env: states to play before sampling --n of them (default max(10·n, 2000))"
    ),
    allow_mismatch: bool = typer.Option(
        False, "--allow-mismatch", help="Evaluate an explainer trained for another agent anyway"
    ),
    out: Path = typer.Option(Path("runs/eval"), help="Report folder"),
    seed: int = 0,
) -> None:
    """Compare saliency methods side by side on the same test states; writes report.md/json/csv.

    Test states: the test split of --data, or straight from --env with no dataset to collect first.

    With --env the agent (default: the bundled default:ENV) plays the env for --play-steps states (seed + 10000, stored in OUT/states, reused by reruns) and --n of the states it visits are sampled.

    Example: vmask-live evaluate --env MsPacman --methods all --n 8 --out runs/eval

    Each method's result is cached in OUT/methods and reused only when the states, agent, explainer and settings all match.
    """
    from functools import partial

    from vmask_live.evaluate import EvaluateConfig
    from vmask_live.evaluate import evaluate as run
    from vmask_live.export import load_explainer

    with _job():
        report = run(
            EvaluateConfig(
                data=str(data) if data is not None else "",
                env=env or "",
                agent=agent or "",
                explainer=explainer or "",
                stalder=stalder,
                methods=methods,
                n=n,
                out=str(out),
                seed=seed,
                rise_masks=rise_masks,
                lime_samples=lime_samples,
                lle_n=lle_n,
                play_steps=play_steps,
                allow_mismatch=allow_mismatch,
            ),
            compile_explainer=partial(load_explainer, backend="auto"),
        )
    console.print(f"report: {report}")


@app.command()
def ablate(
    data: Path = typer.Option(..., help="Dataset folder"),
    agent: str = typer.Option(..., help="The dataset's agent"),
    out: Path = typer.Option(Path("runs/ablation"), help="Sweep folder (finished variants are skipped)"),
    base: str = typer.Option("{}", help='TrainConfig fields as JSON, e.g. \'{"epochs": 3, "width": 8}\''),
    groups: str = typer.Option("all", help="area loss, a_max, reference, components, architecture, loss, robustness"),
    n: int = 300,
) -> None:
    """Run the paper's ablations (area loss, a_max, reference, loss components, architecture)."""
    from vmask_live.ablation import AblationConfig
    from vmask_live.ablation import ablate as run

    with _job():
        path = run(AblationConfig(data=str(data), agent=agent, out=str(out), base=json.loads(base), groups=groups, n=n))
    console.print(f"table: {path}")


def _live_cfg(env, agent, explainer, backend, scale, fps, episodes, max_steps, seed, deterministic, allow_mismatch):
    from vmask_live.wrappers.live import LiveConfig

    cfg = LiveConfig(
        env=env,
        agent=agent,
        explainer=explainer,
        backend=backend,
        scale=scale,
        fps=fps,
        episodes=episodes,
        max_steps=max_steps,
        seed=seed,
        deterministic=deterministic,
        allow_mismatch=allow_mismatch,
    )
    cfg.validate()
    return cfg


_ALLOW_MISMATCH_HELP = "Use the explainer with an agent it was not trained for (its maps then explain another network)"


@app.command()
def play(
    env: str = typer.Option("MsPacman", help="Env name"),
    agent: str | None = typer.Option(None, help="Agent (default: the bundled one for --env)"),
    explainer: str | None = typer.Option(None, help="Explainer (default: the bundled one for --env)"),
    backend: str = typer.Option("auto", help="auto | onnx | torch | tensorrt"),
    scale: int | None = typer.Option(None, help="Window scale of the game frame"),
    fps: float = typer.Option(30.0, help="Frame-rate cap (0: uncapped)"),
    episodes: int = 1,
    max_steps: int | None = None,
    seed: int = 0,
    deterministic: bool = typer.Option(True, "--deterministic/--stochastic", help="Arg-max or sampled actions"),
    allow_mismatch: bool = typer.Option(False, help=_ALLOW_MISMATCH_HELP),
) -> None:
    """Watch the agent play with its saliency overlay in a Pygame window.

    With --agent, pass --explainer too: the bundled explainer belongs to the bundled agent only.

    Keys: space pause, → single step, 1..9 action k's map (0 chosen), c contrast, f counterfactual,
    o overlay, r record, s screenshot, q/Esc quit.
    """
    from vmask_live.wrappers.live import play as run

    with _job():
        cfg = _live_cfg(
            env, agent, explainer, backend, scale, fps, episodes, max_steps, seed, deterministic, allow_mismatch
        )
        stats = run(cfg)
    console.print(
        f"{stats['steps']} steps, {stats['episodes']} episodes, score {stats['score']:.0f}, {stats['fps']:.1f} FPS"
    )


@app.command()
def record(
    out: Path = typer.Option(..., help="Video file (.mp4)"),
    env: str = typer.Option("MsPacman", help="Env name"),
    agent: str | None = None,
    explainer: str | None = None,
    backend: str = "auto",
    scale: int | None = None,
    fps: float = 30.0,
    episodes: int = 1,
    max_steps: int | None = None,
    seed: int = 0,
    deterministic: bool = typer.Option(True, "--deterministic/--stochastic", help="Arg-max or sampled actions"),
    allow_mismatch: bool = typer.Option(False, help=_ALLOW_MISMATCH_HELP),
) -> None:
    """Record the overlay video of the agent playing (finalised even on Ctrl-C or SIGTERM)."""
    from vmask_live.wrappers.live import record as run

    with _job(interrupted=f"interrupted; {out} was finalised"):
        cfg = _live_cfg(
            env, agent, explainer, backend, scale, fps, episodes, max_steps, seed, deterministic, allow_mismatch
        )
        stats = run(cfg, out)
    console.print(f"wrote {stats['path']}: {stats['frames']} frames, score {stats['score']:.0f}")


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
        if batch is None and backend == "tensorrt":
            batch = 1
        if out is None:
            out = default_artifact_path(exp, backend, batch, precision, beside_checkpoint=True)
        path = export_explainer(exp, backend, out, batch_size=batch, precision=precision, device=device)
    console.print(f"wrote {path} (+ {path.name}.json)")


if __name__ == "__main__":
    app()
