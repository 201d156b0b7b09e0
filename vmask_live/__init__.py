"""vmask-live: live VisionMask saliency for pixel RL agents.

The public API is small and flat::

    import vmask_live as vm
    env = vm.make_env("Beacon", render_mode="rgb_array")
    agent = vm.load_agent("default:MsPacman")
    explainer = vm.load_explainer("default:MsPacman")
    env = vm.ExplainedEnv(env, explainer, agent=agent)

``load_explainer`` (from ``vmask_live.export``) and the wrappers are loaded on first use: the
core package never imports ``vmask_live.export`` or ``vmask_live.wrappers``, which depend on it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from vmask_live.agents import load_agent
from vmask_live.envs import make_env

if TYPE_CHECKING:
    from vmask_live import export as export
    from vmask_live import wrappers as wrappers
    from vmask_live.export import load_explainer
    from vmask_live.wrappers import ExplainedEnv, ExplainedVectorEnv

__all__ = ["make_env", "load_agent", "load_explainer", "ExplainedEnv", "ExplainedVectorEnv", "__version__"]

# Public names served on first use, and the module each comes from.
_LAZY = {
    "load_explainer": "vmask_live.export",
    "ExplainedEnv": "vmask_live.wrappers",
    "ExplainedVectorEnv": "vmask_live.wrappers",
    "export": "vmask_live.export",  # `vm.export.load_runtime` works without an import first
    "wrappers": "vmask_live.wrappers",  # `vm.wrappers.ExplainedVecEnv` likewise
}


def __getattr__(name: str) -> Any:
    # export imports the ONNX/TensorRT backends' machinery, the wrappers gymnasium's wrapper
    # machinery and the renderer; and both import the core, so the core cannot import them.
    if name not in _LAZY:
        raise AttributeError(f"module 'vmask_live' has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name])
    return module if module.__name__ == f"vmask_live.{name}" else getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
