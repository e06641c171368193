"""Loss-penalty methods (EWC, SI, ...): protect parameters important to past tasks."""

from AlphaBrain.training.continual_learning.algorithms.regularization_based.lwf import LwF

__all__ = ["LwF"]
