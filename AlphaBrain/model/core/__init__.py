"""The lowest layer of `AlphaBrain.model`: what backbones, modules and policies all build on.

    config.py   `BlockConfig` (self-validating YAML blocks), `ActionModelConfig`, `to_plain`
    batch.py    `PolicyBatch`, `collate_examples` (sample dicts -> tensors)
    losses.py   `masked_chunk_loss`, `CHUNK_LOSSES`

Import order inside the package: core < backbones, modules < policies < registry.
Nothing here imports from any other part of `AlphaBrain.model`.
"""

from AlphaBrain.model.core.batch import PolicyBatch, collate_examples
from AlphaBrain.model.core.config import ActionModelConfig, BlockConfig, to_plain
from AlphaBrain.model.core.losses import CHUNK_LOSSES, masked_chunk_loss

__all__ = [
    "CHUNK_LOSSES",
    "ActionModelConfig",
    "BlockConfig",
    "PolicyBatch",
    "collate_examples",
    "masked_chunk_loss",
    "to_plain",
]
