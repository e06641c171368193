"""Helpers shared by trainers (optimizers, schedules, checkpoints, PEFT)."""
