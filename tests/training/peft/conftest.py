"""A minimal VLMPolicy for the LoRA tests: the tiny Qwen2.5-VL backbone + a mean-pooled linear head.

The LoRA helpers only see `model.lora_target` and the module tree, so a plain
head keeps these tests about LoRA rather than about an architecture.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.backbones.qwen2_5_vl import QwenVLBackbone
from AlphaBrain.model.core.losses import masked_chunk_loss
from AlphaBrain.model.policies.common.vlm_policy import VLMPolicy


class PooledHeadPolicy(VLMPolicy):
    backbone_cls = QwenVLBackbone

    def __init__(self, data_spec: DataSpec, vlm: QwenVLBackbone) -> None:
        super().__init__(data_spec, vlm, data_spec.action_horizon)
        self.action_model = nn.Linear(vlm.hidden_size + data_spec.state_dim, self.action_horizon * self.action_dim)

    @classmethod
    def from_config(cls, cfg: Any, data_spec: DataSpec) -> "PooledHeadPolicy":
        return cls(data_spec, cls.build_backbone(cls.framework_block(cfg)))

    def _chunk(self, examples, require_action):
        batch, feats = self.encode(examples, require_action=require_action)
        mask = feats.mask.unsqueeze(-1).to(feats.hidden.dtype)
        pooled = (feats.hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        out = self.action_model(torch.cat([pooled.float(), batch.state], dim=-1))
        return batch, out.view(-1, self.action_horizon, self.action_dim)

    def per_sample_action_loss(self, examples):
        batch, pred = self._chunk(examples, True)
        return masked_chunk_loss(pred, batch.action, batch.action_mask)

    def _predict(self, examples):
        return self._chunk(examples, False)[1]


TINY_QWEN = {"init": "random", "size": "tiny"}


@pytest.fixture
def spec() -> DataSpec:
    return DataSpec(state_dim=4, action_dim=3, action_horizon=4, num_cameras=2, image_size=(32, 32))


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build_policy(spec: DataSpec, seed: int = 0, **qwenvl) -> PooledHeadPolicy:
    torch.manual_seed(seed)
    return PooledHeadPolicy.from_config({"framework": {"qwenvl": {**TINY_QWEN, **qwenvl}}}, spec)
