"""Replay methods: keep a memory of past-task samples and train on it alongside the current task."""

from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.er import ER
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.agem import AGEM
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.derpp import DERPP
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.mir import MIR
from AlphaBrain.training.continual_learning.algorithms.rehearsal_based.multitask import Multitask

__all__ = ["ER", "MIR", "Multitask", "AGEM", "DERPP"]
