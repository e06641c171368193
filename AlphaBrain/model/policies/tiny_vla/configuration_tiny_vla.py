"""The YAML blocks of TinyVLA (`framework.name: TinyVLA`, overlay `configs/continual_learning/models/tiny.yaml`):

    framework:
      tiny: {image_size, vision_channels, vision_groups, vision_feature_channels, vision_dim,
             film, text_buckets, text_embed_dim, text_dim, text_ngrams, state_dim_hidden, random_shift}
            -> TinyVLAConfig
      action_model: {action_horizon, hidden_dim, num_layers, dropout, loss,
                     head, flow_steps, flow_repeats, flow_noise_seed}
            -> TinyActionModelConfig
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from AlphaBrain.model.core.config import ActionModelConfig, BlockConfig
from AlphaBrain.model.core.losses import CHUNK_LOSSES

#: `framework.action_model.head`: "mlp" regresses the chunk (loss: `loss`), "flow" learns the
#: distribution of chunks by flow matching (modules/flow_chunk_head.py; loss: velocity MSE).
TINY_HEADS: tuple[str, ...] = ("mlp", "flow")


@dataclass
class TinyVLAConfig(BlockConfig):
    """The `framework.tiny` block."""

    yaml_path: ClassVar[str] = "framework.tiny"

    image_size: int = 64
    vision_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    vision_groups: int = 8
    vision_feature_channels: int = 32
    vision_dim: int = 256
    film: bool = True
    text_buckets: int = 4096
    text_embed_dim: int = 64
    text_dim: int = 128
    text_ngrams: int = 2
    state_dim_hidden: int = 64
    random_shift: int = 4

    def __post_init__(self) -> None:
        self.check_int("image_size", 16, 512)
        self.check_int_list("vision_channels", 4, 1024, min_len=1, max_len=6)
        self.check_int("vision_groups", 1, 64)
        for ch in self.vision_channels:
            self.require(
                ch % min(self.vision_groups, ch) == 0, "vision_groups",
                f"does not divide the channel count {ch} in {self._where('vision_channels')} = {self.vision_channels}; "
                "GroupNorm needs every channel count to be a multiple of it.",
            )
        self.check_int("vision_feature_channels", 1, 1024)
        self.check_int("vision_dim", 8, 4096)
        self.check_bool("film")
        self.check_int("text_buckets", 16, 1_000_000)
        self.check_int("text_embed_dim", 4, 1024)
        self.check_int("text_dim", 4, 2048)
        self.check_int("text_ngrams", 1, 3)
        self.check_int("state_dim_hidden", 4, 2048)
        self.check_int("random_shift", 0, self.image_size // 4)


@dataclass
class TinyActionModelConfig(ActionModelConfig):
    """The `framework.action_model` block of TinyVLA; `action_horizon` is inherited."""

    hidden_dim: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    loss: str = "l1"
    head: str = "mlp"
    flow_steps: int = 10
    flow_repeats: int = 4
    flow_noise_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_int("hidden_dim", 8, 8192)
        self.check_int("num_layers", 1, 8)
        self.check_float("dropout", 0.0, 0.9)
        self.check_choice("loss", CHUNK_LOSSES)
        self.check_choice("head", TINY_HEADS)
        self.check_int("flow_steps", 1, 1000)
        self.check_int("flow_repeats", 1, 64)
        self.check_int("flow_noise_seed", 0, 2**31 - 1)
