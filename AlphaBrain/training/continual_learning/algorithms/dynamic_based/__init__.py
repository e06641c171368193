"""Methods that change the architecture per task (planned)."""
from AlphaBrain.training.continual_learning.algorithms.dynamic_based import lora_per_task as _lora_per_task  # noqa: F401  (registers)
