"""The contract every VLA policy satisfies, and the base of the policies whose head regresses the chunk.

A policy takes a *list of sample dicts* (see DESIGN.md, "A training sample", and
`AlphaBrain/model/core/batch.py`). The methods are

    forward(examples)               -> {"action_loss": scalar tensor, ...}      (training)
    per_sample_action_loss(examples)-> Tensor[B]                                (unreduced, same computation)
    action_outputs(examples)        -> Tensor[B, horizon, action_dim]           (differentiable, for distillation)
    predict_action(examples)        -> np.ndarray[B, horizon, action_dim]       (normalized, no grad, eval mode)

`forward` reduces exactly what `per_sample_action_loss` computes (the mean over
the batch), so algorithms that rank samples by loss (MIR) see the same numbers
the optimizer sees. The trainer gives learning rates per *top-level child
module* (`trainer.learning_rate.<child name>`), so policies keep their parts
as clearly named direct children.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
import torch.nn as nn

from AlphaBrain.dataloader.spec import DataSpec
from AlphaBrain.model.core.batch import PolicyBatch, collate_examples
from AlphaBrain.model.core.config import ActionModelConfig, to_plain
from AlphaBrain.model.core.losses import masked_chunk_loss
from AlphaBrain.utils.errors import ConfigError

A = TypeVar("A", bound=ActionModelConfig)


class BaseVLAPolicy(nn.Module, abc.ABC):
    """Base class of every VLA policy (see the module docstring for the contract).

    Subclasses implement `from_config`, `per_sample_action_loss` and `_predict`.
    """

    #: True for policies that cannot be built without downloaded backbone weights.
    #: Contract tests run on every registered policy where this is False.
    needs_pretrained_weights: ClassVar[bool] = False

    def __init__(self, data_spec: DataSpec, action_horizon: int | None = None) -> None:
        super().__init__()
        if not isinstance(data_spec, DataSpec):
            raise TypeError(f"data_spec must be a DataSpec, got {type(data_spec).__name__}")
        self.data_spec = data_spec
        self.action_horizon = int(action_horizon if action_horizon is not None else data_spec.action_horizon)
        self.action_dim = int(data_spec.action_dim)
        self.state_dim = int(data_spec.state_dim)
        self.num_cameras = int(data_spec.num_cameras)

    # ---- construction -----------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def from_config(cls, cfg: Any, data_spec: DataSpec) -> "BaseVLAPolicy":
        """Build from the whole run config (reads `cfg.framework`) and the data's shapes."""

    @staticmethod
    def check_action_horizon(configured: int, data_spec: DataSpec) -> None:
        """The dataset's chunk length must equal `framework.action_model.action_horizon`."""
        if configured != data_spec.action_horizon:
            raise ConfigError(
                f"framework.action_model.action_horizon = {configured} but the dataset gives action chunks "
                f"of {data_spec.action_horizon} steps (DataSpec.action_horizon); build the dataset with the "
                f"same horizon."
            )

    @classmethod
    def head_config(cls, block: Mapping[str, Any], data_spec: DataSpec, config_cls: type[A]) -> A:
        """`framework.action_model` of the framework block `block`, parsed as `config_cls` (action_horizon
        defaults to the dataset's chunk length) and checked against the data. Large policies call it before
        building their backbone, so a typo in the head block fails in a second rather than after loading
        gigabytes of weights."""
        head = to_plain(block.get("action_model"))
        if head is None:
            head = {}
        if isinstance(head, Mapping) and "action_horizon" not in head:
            # Unset: take the dataset's chunk length rather than a default that may disagree with it.
            head = {**head, "action_horizon": data_spec.action_horizon}
        config = config_cls.from_block(head)
        cls.check_action_horizon(config.action_horizon, data_spec)
        return config

    # ---- the contract -----------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @abc.abstractmethod
    def per_sample_action_loss(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Unreduced action loss, one value per sample: Tensor[B] (with grad in training)."""

    def forward(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        """Training step loss: {"action_loss": mean of `per_sample_action_loss`}."""
        per_sample = self.per_sample_action_loss(examples)
        return {"action_loss": per_sample.mean()}

    @abc.abstractmethod
    def _predict(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Action chunks [B, horizon, action_dim]; called in eval mode under no_grad."""

    def action_outputs(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """The policy's differentiable output for distillation methods (DER++, LwF): Tensor[B, horizon, action_dim].

        Runs in the current mode with autograd. For a head that regresses the chunk
        this is the predicted chunk; a stochastic head (flow matching, diffusion)
        overrides it with an output that is a deterministic function of the sample,
        e.g. the velocity at a noise and time seeded by the sample's identity, so that
        a stored output can be matched later.
        """
        return self._predict(examples)

    def predict_action(self, examples: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Normalized action chunks as float32 numpy [B, horizon, action_dim].

        Runs in eval mode (no augmentation, no dropout) without gradients, and puts
        the module back in the mode it was in, so a mid-training evaluation does
        not change training behaviour.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                actions = self._predict(examples)
        finally:
            self.train(was_training)
        return actions.detach().to("cpu", torch.float32).numpy()

    def collate(
        self,
        examples: Sequence[Mapping[str, Any]],
        *,
        require_action: bool,
        image_size: tuple[int, int] | None = None,
    ) -> PolicyBatch:
        """Collate samples for this policy (shapes from its DataSpec) onto its device.

        Images are resized to `image_size` (default: the DataSpec's stored frame size).
        """
        return collate_examples(
            examples,
            num_cameras=self.num_cameras,
            state_dim=self.state_dim,
            image_size=tuple(image_size) if image_size is not None else tuple(self.data_spec.image_size),
            action_horizon=self.action_horizon,
            action_dim=self.action_dim,
            device=self.device,
            require_action=require_action,
        )

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


class ChunkRegressionPolicy(BaseVLAPolicy):
    """A policy whose head regresses the whole chunk (TinyVLA, NeuroVLA, the OFT policies).

    Subclasses implement `_chunk(examples, require_action=...) -> (batch, chunk)` and keep
    their `framework.action_model` block in `self.action_config`; its `loss` (l1, mse or
    huber) on the valid steps is the training loss, and the chunk itself is the prediction
    and the distillation output.
    """

    action_config: Any

    @abc.abstractmethod
    def _chunk(self, examples: Sequence[Mapping[str, Any]], *, require_action: bool) -> tuple[PolicyBatch, torch.Tensor]:
        """(collated batch, predicted chunk [B, horizon, action_dim])."""

    def per_sample_action_loss(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        batch, pred = self._chunk(examples, require_action=True)
        return masked_chunk_loss(pred, batch.action, batch.action_mask, self.action_config.loss)

    def _predict(self, examples: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        return self._chunk(examples, require_action=False)[1]
