"""Sequential fine-tuning: the lower bound every CL method is compared against."""

from __future__ import annotations

from AlphaBrain.training.continual_learning.algorithms.base import CLAlgorithm
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm


@register_algorithm("sequential", aliases=("none", "ft", "finetune"))
class Sequential(CLAlgorithm):
    """Train on each task in turn with no protection against forgetting (all hooks are no-ops)."""

    name = "sequential"
