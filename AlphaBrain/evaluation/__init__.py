"""Evaluation of continual-learning runs: matrices of per-checkpoint, per-task scores."""
