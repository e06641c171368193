"""Continual learning: algorithms, task streams and the continual trainer.

Re-exports for the import paths users already know:
`from AlphaBrain.training.continual_learning import CLAlgorithm, CLContext, ReplayBuffer`.
"""

from AlphaBrain.training.continual_learning.algorithms import CLAlgorithm, CLContext, ReplayBuffer

__all__ = ["CLAlgorithm", "CLContext", "ReplayBuffer"]
