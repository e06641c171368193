"""The `framework.action_model` block of the OFT policies (LlamaOFT, PaliGemmaOFT)."""

from __future__ import annotations

from dataclasses import dataclass

from AlphaBrain.model.core.config import ActionModelConfig
from AlphaBrain.model.core.losses import CHUNK_LOSSES


@dataclass
class OFTActionModelConfig(ActionModelConfig):
    """`framework.action_model` of the OFT policies (head: `model/modules/oft_head.py`); `action_horizon` is inherited."""

    num_action_queries: int = 0  # 0 = one query per chunk step (OFT); K = K queries decoded jointly
    hidden_dim: int = 1024
    num_layers: int = 2
    dropout: float = 0.0
    loss: str = "l1"
    query_init_std: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_int("num_action_queries", 0, 256)
        self.check_int("hidden_dim", 8, 16384)
        self.check_int("num_layers", 0, 16)
        self.check_float("dropout", 0.0, 0.9)
        self.check_choice("loss", CHUNK_LOSSES)
        self.check_float("query_init_std", 0.0, 10.0, low_inclusive=False)
