"""vmask-live: live VisionMask saliency for pixel RL agents.

The public API is small and flat::

    import vmask_live as vm
    env = vm.make_env("Beacon", render_mode="rgb_array")
    agent = vm.load_agent("default:MsPacman")
    explainer = vm.load_explainer("default:MsPacman")
    env = vm.ExplainedEnv(env, explainer, agent=agent)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from vmask_live.agents import load_agent
from vmask_live.envs import make_env
from vmask_live.explainer import load_explainer

__all__ = ["make_env", "load_agent", "load_explainer", "ExplainedEnv", "ExplainedVectorEnv", "__version__"]


def __getattr__(name: str) -> Any:
    # The wrappers import gymnasium's wrapper machinery and the renderer: load them on first use.
    if name in ("ExplainedEnv", "ExplainedVectorEnv"):
        from vmask_live import wrappers

        return getattr(wrappers, name)
    if name in ("wrappers", "export"):  # `vm.wrappers.ExplainedVecEnv` works without an import first
        import importlib

        return importlib.import_module(f"vmask_live.{name}")
    raise AttributeError(f"module 'vmask_live' has no attribute {name!r}")
