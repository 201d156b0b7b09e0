"""Gymnasium wrappers that put VisionMask saliency into ``info`` and onto rendered frames.

Imported as ``vmask_live.wrappers`` (the ``wrappers/`` folder is mapped into the package).
"""

from __future__ import annotations

from vmask_live.wrappers.explained_env import ExplainedEnv
from vmask_live.wrappers.vector import ExplainedVecEnv, ExplainedVectorEnv

__all__ = ["ExplainedEnv", "ExplainedVectorEnv", "ExplainedVecEnv"]
