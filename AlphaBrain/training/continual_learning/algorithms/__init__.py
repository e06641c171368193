"""Continual-learning algorithms behind the single `CLAlgorithm` hook interface.

Importing this package registers every built-in algorithm in
`ALGORITHM_REGISTRY`; `build_cl_algorithm(cfg)` picks one from the YAML.
"""

from AlphaBrain.training.continual_learning.algorithms.base import HOOKS, CLAlgorithm, CLContext
from AlphaBrain.training.continual_learning.algorithms.registry import (
    ALGORITHM_REGISTRY,
    algorithm_names,
    build_cl_algorithm,
    get_algorithm_class,
    register_algorithm,
    resolve_algorithm_spec,
)
from AlphaBrain.training.continual_learning.algorithms.replay_buffer import ReplayBuffer
from AlphaBrain.training.continual_learning.algorithms import sequential as _sequential  # noqa: F401  (registers)
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based import ER, MIR, Multitask, AGEM, DERPP
from AlphaBrain.training.continual_learning.algorithms.regularization_based import EWC, SI, LwF
from AlphaBrain.training.continual_learning.algorithms import dynamic_based as _dynamic_based  # noqa: F401  (registers)

__all__ = [
    "HOOKS",
    "CLAlgorithm",
    "CLContext",
    "ALGORITHM_REGISTRY",
    "algorithm_names",
    "build_cl_algorithm",
    "get_algorithm_class",
    "register_algorithm",
    "resolve_algorithm_spec",
    "ReplayBuffer",
    "ER",
    "MIR",
    "Multitask",
    "EWC",
    "SI",
    "AGEM",
    "DERPP",
    "LwF",
]
