"""Methods that change the architecture per task (planned)."""
from AlphaBrain.training.continual_learning.algorithms.dynamic_based.packnet import PackNet  # noqa: F401  (registers)
