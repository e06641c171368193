"""Loss-penalty methods (EWC, SI, ...): protect parameters important to past tasks."""

from AlphaBrain.training.continual_learning.algorithms.regularization_based.ewc import EWC
from AlphaBrain.training.continual_learning.algorithms.regularization_based.lwf import LwF
from AlphaBrain.training.continual_learning.algorithms.regularization_based.si import SI

__all__ = ["EWC", "SI", "LwF"]
