"""What a policy needs to know about the data it will see."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataSpec:
    """Shapes shared by the dataset and the policy built for it.

    The trainer reads these off the task stream's dataset and passes them to
    `build_framework`, so a model is always sized for the data it trains on.
    """

    state_dim: int
    action_dim: int
    action_horizon: int
    num_cameras: int
    image_size: tuple[int, int]  # (height, width) of the stored camera frames

    def __post_init__(self) -> None:
        for name in ("state_dim", "action_dim", "action_horizon", "num_cameras"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "state_dim" else 1):
                raise ValueError(f"DataSpec.{name} must be a positive integer, got {value!r}")
