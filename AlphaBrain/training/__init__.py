"""Training: the continual-learning trainer and its helpers."""
