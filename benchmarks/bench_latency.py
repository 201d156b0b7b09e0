"""Explainer latency per backend and ExplainedEnv overhead, measured side by side in one run.

    python benchmarks/bench_latency.py [--explainer default:MsPacman] [--repeats 200] [--skip-backends]

Prints markdown tables: ms/frame at batch 1 and 16 for each available backend (eager torch,
torch.compile, ONNX Runtime, TensorRT on CUDA) with its map parity to eager torch on the 64 shipped
Ms. Pac-Man test states (max abs difference; share of maps whose most salient pixel is one of eager's, ties within 1e-4), then env+agent step vs ExplainedEnv step
(backend auto; the loops timed side by side, in blocks of 50 steps in turn), the headless play-loop FPS at scale 4 (SDL dummy driver), and the vector form's
throughput at 16 envs against the single-env form, with the CPU time of each part of its step and the
bound that CPU time sets on this machine's cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def _time(fn, repeats: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return 1000 * statistics.median(samples)


def _explainer(spec: str):
    import vmask_live as vm

    try:
        return vm.load_explainer(spec, backend="none"), spec
    except FileNotFoundError:
        from vmask_live.explainer import Explainer
        from vmask_live.explainer_nets import build_explainer
        from vmask_live.observations import ObsFormat
        from vmask_live.overlay import Reference
        from vmask_live.testing import tiny_explainer  # noqa: F401 - only for the format helper

        kw = {"in_channels": 4, "n_actions": 9, "input_size": [84, 84], "width": 16}
        exp = Explainer(
            build_explainer("deeplab", **kw).eval(),
            "deeplab",
            kw,
            ObsFormat((4, 84, 84), "chw"),
            Reference("black"),
            [str(i) for i in range(9)],
        )
        return exp, "untrained deeplab (same architecture as the MsPacman default)"


def _states(shape: tuple[int, ...]) -> np.ndarray:
    """Real Ms. Pac-Man states (the shipped test states) when the shape fits, else seeded noise."""
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "mspacman_test_states.npz")
    if os.path.exists(path):
        obs = np.load(path)["obs"]
        if obs.shape[1:] == tuple(shape):
            return obs
    return np.random.default_rng(0).integers(0, 256, (64, *shape), dtype=np.uint8)


def _same_peak(out: np.ndarray, ref: np.ndarray, tie: float = 1e-4) -> float:
    """Share of maps whose most salient pixel in ``out`` is a most salient pixel of ``ref`` too
    (within ``tie``: sparse maps have many pixels at the same peak value)."""
    out, ref = (m.reshape(*m.shape[:2], -1) for m in (out, ref))
    at_peak = np.take_along_axis(ref, out.argmax(-1)[..., None], -1)[..., 0]
    return float((at_peak >= ref.max(-1) - tie).mean())


def backends_table(spec: str, repeats: int) -> None:
    from vmask_live.export import available_backends, load_runtime

    exp, name = _explainer(spec)
    print(f"\n### Explainer latency ({name}; {torch.get_num_threads()} torch threads)\n")
    print("| backend | batch 1 ms/frame | batch 16 ms/frame | max abs diff vs eager | same most salient pixel |")
    print("|---|---|---|---|---|")
    obs = _states(exp.obs_format.shape)
    obs1, obs16 = obs[:1], obs[:16]
    ref = exp(obs)
    backends = available_backends()
    for b in ["torch", "torch-compile", "onnx", "tensorrt"]:
        if b not in backends:
            print(f"| {b} | unavailable | | |")
            continue
        rt = load_runtime(exp, backend=b)
        t1 = _time(lambda rt=rt: rt(obs1), repeats)
        t16 = _time(lambda rt=rt: rt(obs16), max(20, repeats // 8)) / 16
        out = rt(obs)
        diff = float(np.abs(out - ref).max())
        agree = _same_peak(out, ref)
        print(f"| {b} | {t1:.2f} | {t16:.3f} | {diff:.1e} | {100 * agree:.1f}% |")


def env_table(env_name: str, spec: str, agent_spec: str, repeats: int) -> None:
    import gymnasium as gym

    import vmask_live as vm
    from vmask_live.wrappers.live_app import LiveConfig, LiveSession

    exp, _ = _explainer(spec)
    agent = vm.load_agent(agent_spec)
    print(f"\n### Env step overhead on {env_name} (median of {repeats} steps)\n")
    print("| loop | ms/step |")
    print("|---|---|")
    bare = vm.make_env(env_name)
    obs, _ = bare.reset(seed=0)

    def bare_step():
        nonlocal obs
        a = agent.act(obs[None])[0][0]
        obs, _, term, trunc, _ = bare.step(a)
        if term or trunc:
            obs, _ = bare.reset()

    def wrapped_loop(objects: bool, concurrent: bool = True):
        wrapped = vm.ExplainedEnv(vm.make_env(env_name), exp, agent=agent, objects=objects)
        wrapped._core.concurrent &= concurrent
        info = wrapped.reset(seed=0)[1]

        def wrapped_step():
            nonlocal info
            _, _, term, trunc, info = wrapped.step(info["saliency_action"])
            if term or trunc:
                _, info = wrapped.reset()

        return wrapped_step, getattr(wrapped.explainer, "backend", "torch (eager)")

    # Side by side: blocks of 50 steps of each loop in turn, so that the machine's load hits all
    # alike. Not single steps in turn: switching torch between one thread (the overlapped agent
    # call) and two (the bare loop) re-forms its thread team, ~1 ms that no real loop pays; the
    # first 5 steps of each block are not timed for the same reason.
    loops = {"bare": bare_step}
    loops["wrapped"], rt_backend = wrapped_loop(objects=True)
    loops["no_objects"], _ = wrapped_loop(objects=False)
    loops["sequential"], _ = wrapped_loop(objects=True, concurrent=False)
    samples: dict[str, list[float]] = {name: [] for name in loops}
    block, skip = 50, 5
    for _ in range(max(1, repeats // (block - skip))):
        for name, step in loops.items():
            for i in range(block):
                t = time.perf_counter()
                step()
                if i >= skip:
                    samples[name].append(time.perf_counter() - t)
    ms = {name: 1000 * statistics.median(v) for name, v in samples.items()}
    t_bare, t_wrapped, t_no_objects, t_sequential = ms["bare"], ms["wrapped"], ms["no_objects"], ms["sequential"]
    print(f"| env + agent | {t_bare:.2f} |")
    print(
        f"| ExplainedEnv (explainer backend auto = {rt_backend}) + agent, game objects on | {t_wrapped:.2f} (overhead {t_wrapped - t_bare:.2f}) |"
    )
    print(f"| ExplainedEnv with objects=False + agent | {t_no_objects:.2f} (overhead {t_no_objects - t_bare:.2f}) |")
    print(
        f"| ExplainedEnv, explainer and agent one after the other | {t_sequential:.2f} (overhead {t_sequential - t_bare:.2f}) |"
    )

    session = LiveSession(LiveConfig(env=env_name, scale=4, fps=0), agent=agent, explainer=exp)
    session.reset()
    import pygame

    pygame.display.init()
    first = session.frame(fps=0.0)
    screen = pygame.display.set_mode((first.shape[1], first.shape[0]))
    n = max(100, repeats)
    t = time.perf_counter()
    for _ in range(n):
        pygame.event.get()
        if session.step():
            session.reset()
        frame = session.frame(fps=0.0)
        screen.blit(pygame.surfarray.make_surface(frame.swapaxes(0, 1)), (0, 0))
        pygame.display.flip()
    fps = n / (time.perf_counter() - t)
    pygame.display.quit()
    print(f"| headless play loop at scale 4 ({first.shape[1]}x{first.shape[0]}) | {1000 / fps:.2f} ({fps:.0f} FPS) |")

    n_envs = 16
    venv = vm.ExplainedVectorEnv(
        gym.vector.SyncVectorEnv([lambda: vm.make_env(env_name) for _ in range(n_envs)]), exp, agent=agent
    )
    _, infos = venv.reset(seed=0)
    steps = max(20, repeats // 8)

    def vec_step():
        nonlocal infos
        _, _, _, _, infos = venv.step(infos["saliency_action"])

    t_vec = _time(vec_step, steps, warmup=3)
    per_env = t_vec / n_envs
    print(f"| ExplainedVectorEnv, {n_envs} envs, per env-step | {per_env:.2f} |")
    print(
        f"\nVector form throughput: {1000 / per_env:.0f} env-steps/s vs single {1000 / t_wrapped:.0f} "
        f"({t_wrapped / per_env:.1f}x)"
    )
    vector_bound(venv, env_name, exp, agent, steps, t_wrapped)


def vector_bound(venv, env_name: str, exp, agent, steps: int, t_single: float) -> None:
    """The work of one vector step in CPU time (all threads of the process), by part, and the
    throughput it allows on this machine's cores if the parts overlapped perfectly."""
    import gymnasium as gym

    import vmask_live as vm

    n_envs = venv.num_envs
    plain = gym.vector.SyncVectorEnv([lambda: vm.make_env(env_name) for _ in range(n_envs)])
    obs, _ = plain.reset(seed=0)
    actions = agent.act(obs)[0]

    def emulators():
        nonlocal obs
        obs, *_ = plain.step(actions)

    _, infos = venv.reset(seed=0)

    def whole():
        nonlocal infos
        _, _, _, _, infos = venv.step(infos["saliency_action"])

    parts = {
        f"{n_envs} emulators (SyncVectorEnv.step)": emulators,
        f"agent, batch {n_envs}": lambda: agent.act(obs),
        f"explainer, batch {n_envs}": lambda: exp(obs),
        "whole ExplainedVectorEnv step (+ objects, info)": whole,
    }
    print(f"\n### Where a vector step goes ({n_envs} envs, median of {steps} calls, per env-step)\n")
    print("| part | wall ms | CPU ms (all threads) |")
    print("|---|---|---|")
    cpu: dict[str, float] = {}
    for name, fn in parts.items():
        for _ in range(3):
            fn()
        walls, cpus = [], []
        for _ in range(steps):
            w, c = time.perf_counter(), time.process_time()
            fn()
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
        cpu[name] = 1000 * statistics.median(cpus) / n_envs
        print(f"| {name} | {1000 * statistics.median(walls) / n_envs:.2f} | {cpu[name]:.2f} |")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    best = cpu["whole ExplainedVectorEnv step (+ objects, info)"] / cores
    print(
        f"\nOn {cores} cores the whole step's CPU time allows at best {best:.2f} ms per env-step, "
        f"{t_single / best:.1f}x the single env ({t_single:.2f} ms), even if every part overlapped."
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--explainer", default="default:MsPacman")
    p.add_argument("--agent", default="default:MsPacman")
    p.add_argument("--env", default="MsPacman")
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--skip-env", action="store_true")
    p.add_argument("--skip-backends", action="store_true", help="only the env tables")
    args = p.parse_args()
    if not args.skip_backends:
        backends_table(args.explainer, args.repeats)
    if not args.skip_env:
        env_table(args.env, args.explainer, args.agent, args.repeats)


if __name__ == "__main__":
    main()
