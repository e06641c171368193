"""The YAML blocks of NeuroVLA (`framework.name: NeuroVLA`):

    framework:
      qwenvl: {base_vlm, init, size, image_size, system_prompt, attn_implementation,
               gradient_checkpointing, dtype, max_text_tokens}
              -> QwenVLConfig (model/backbones/qwen2_5_vl.py, shared with QwenGR00T)
      qformer: {num_queries, dim, num_layers, num_heads, mlp_ratio, dropout}
              -> QFormerConfig
      action_model: {action_horizon, hidden_sizes, num_steps, beta, threshold, surrogate_slope,
                     readout_beta, state_hidden, pool, dropout, loss}
              -> SpikingActionModelConfig
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from AlphaBrain.model.backbones.qwen2_5_vl import QwenVLConfig
from AlphaBrain.model.core.config import ActionModelConfig, BlockConfig
from AlphaBrain.model.core.losses import CHUNK_LOSSES

__all__ = ["QFormerConfig", "QwenVLConfig", "SpikingActionModelConfig"]


@dataclass
class QFormerConfig(BlockConfig):
    """The `framework.qformer` block."""

    yaml_path: ClassVar[str] = "framework.qformer"

    num_queries: int = 64  # learned query tokens = tokens handed to the action head (public NeuroVLA: 64)
    dim: int = 768  # the Q-Former's width (public NeuroVLA: 768)
    num_layers: int = 2  # blocks of self-attention + cross-attention + MLP
    num_heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        self.check_int("num_queries", 1, 1024)
        self.check_int("dim", 8, 8192)
        self.check_int("num_layers", 1, 24)
        self.check_int("num_heads", 1, 64)
        self.require(
            self.dim % self.num_heads == 0, "dim",
            f"is not a multiple of {self._where('num_heads')} = {self.num_heads}; attention splits dim evenly across heads.",
        )
        self.check_float("mlp_ratio", 0.25, 16.0)
        self.check_float("dropout", 0.0, 0.9)


@dataclass
class SpikingActionModelConfig(ActionModelConfig):
    """The `framework.action_model` block of NeuroVLA (the spiking head); `action_horizon` is inherited."""

    hidden_sizes: list[int] = field(default_factory=lambda: [1536, 1536])  # LIF layers (public NeuroVLA: 2 x 768)
    num_steps: int = 8  # simulated time steps per forward
    beta: float = 0.9  # membrane leak per step (1 = perfect integrator, 0 = no memory)
    threshold: float = 1.0  # firing threshold
    surrogate_slope: float = 25.0  # fast-sigmoid surrogate slope (snntorch's default)
    readout_beta: float = 0.8  # leak of the non-spiking readout that integrates the last layer's spikes
    state_hidden: int = 128  # width of the proprioception encoder (skipped without state)
    pool: str = "mean"  # how Q-Former tokens become one vector: mean | flatten
    dropout: float = 0.0
    loss: str = "l1"

    POOLS: ClassVar[tuple[str, ...]] = ("mean", "flatten")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_int_list("hidden_sizes", 4, 16384, min_len=1, max_len=8)
        self.check_int("num_steps", 1, 256)
        self.check_float("beta", 0.0, 1.0)
        self.check_float("threshold", 0.0, None, low_inclusive=False)
        self.check_float("surrogate_slope", 0.0, None, low_inclusive=False)
        self.check_float("readout_beta", 0.0, 1.0)
        self.check_int("state_hidden", 1, 8192)
        self.check_choice("pool", self.POOLS)
        self.check_float("dropout", 0.0, 0.9)
        self.check_choice("loss", CHUNK_LOSSES)
