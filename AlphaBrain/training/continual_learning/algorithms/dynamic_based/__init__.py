"""Methods that change the architecture per task (planned)."""
from AlphaBrain.training.continual_learning.algorithms.dynamic_based.weight_merge import WeightMerge  # noqa: F401
