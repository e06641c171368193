"""Methods that keep per-task parameters or reshape the weights per task: PackNet's weight ownership, one LoRA
adapter per task, and merging task vectors back into one model. Importing the package registers them."""

from AlphaBrain.training.continual_learning.algorithms.dynamic_based.lora_per_task import LoraPerTask
from AlphaBrain.training.continual_learning.algorithms.dynamic_based.packnet import PackNet
from AlphaBrain.training.continual_learning.algorithms.dynamic_based.weight_merge import WeightMerge

__all__ = ["LoraPerTask", "PackNet", "WeightMerge"]
