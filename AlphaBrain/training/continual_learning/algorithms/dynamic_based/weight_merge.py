"""Model merging as a CL method: one task-agnostic model from the task vectors of every task so far.

Task arithmetic (Ilharco et al. 2023, "Editing Models with Task Arithmetic", ICLR) and TIES-Merging
(Yadav et al. 2023, "TIES-Merging: Resolving Interference When Merging Models", NeurIPS).

θ_base is the trainable parameters at the start of task 0. At the end of task k the task vector
τ_k = θ_end − θ_base is kept, and the weights become θ_base + λ · merge(τ_0, ..., τ_k)
(`merging.py`): the task-end checkpoint is the merged model and evaluates like any other, without
task identity. Each task trains from the merged model of the tasks before it (`start_from: merged`)
or from θ_base (`start_from: base`: independent fine-tunes, as task arithmetic assumes).

Trainable means `requires_grad`: with LoRA the task vectors cover the LoRA matrices and the action
head, A and B merged separately (not the product B·A), and every parameter otherwise.

Stored (`<checkpoint>_cl_state.safetensors`, float32, on the CPU while training): θ_base as
"base.<param>" and every τ_k as "task<k>.tau.<param>", so memory and disk grow by one copy of
the trainable parameters per task. The JSON state lists the tasks whose τ is stored.

Multi-process: every rank holds identical weights (DDP), so every rank computes the same τ and the
same merge with no communication. A backend with its own master copy of the weights (DeepSpeed,
FSDP) would overwrite what this method writes at its next step: `writes_weights` makes the trainer
refuse those up front.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from AlphaBrain.training.continual_learning.algorithms.base import CLAlgorithm, CLContext
from AlphaBrain.training.continual_learning.algorithms.dynamic_based.merging import MERGE_RULES, merged_parameters
from AlphaBrain.training.continual_learning.algorithms.hparams import Param, check_choice, check_float
from AlphaBrain.training.continual_learning.algorithms.regularization_based._importance import trainable_parameters
from AlphaBrain.training.continual_learning.algorithms.registry import register_algorithm
from AlphaBrain.utils.errors import ConfigError

START_FROM = ("merged", "base")
_BASE, _TAU = "base.", ".tau."


def cpu_float32(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """{name: detached float32 CPU copy} of the trainable parameters."""
    return {name: p.detach().to("cpu", torch.float32, copy=True) for name, p in trainable_parameters(model)}


@torch.no_grad()
def write_parameters(model: torch.nn.Module, values: Mapping[str, torch.Tensor]) -> None:
    """Copy `values` into the model's trainable parameters in place (each on its own device and dtype)."""
    for name, p in trainable_parameters(model):
        p.copy_(values[name])


@register_algorithm("weight_merge")
class WeightMerge(CLAlgorithm):
    name = "weight_merge"
    writes_weights = True
    HYPERPARAMETERS = {
        "merge_rule": Param("average", check_choice, choices=MERGE_RULES),
        "scaling": Param(1.0, check_float, strict=True,
                         hint=" It is λ in θ_base + λ · merge(τ_0..τ_k); 1 keeps the merged task vector as is."),
        "ties_density": Param(0.2, check_float, strict=True, maximum=1.0,
                              hint=" It is the fraction of each task vector's entries (per parameter, largest "
                                   "magnitude first) that TIES keeps; 1 keeps them all."),
        "start_from": Param("merged", check_choice, choices=START_FROM),
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.base: dict[str, torch.Tensor] = {}
        self.task_vectors: dict[int, dict[str, torch.Tensor]] = {}  # task position -> {param name: τ}
        self._stored_tasks: list[int] = []  # from the JSON state, for `load_tensor_state_dict`

    # ------------------------------------------------------------------ hooks
    def on_task_start(self, ctx: CLContext) -> None:
        if not self.base:  # the first task of the run; a resumed run has θ_base from its checkpoint
            self.base = cpu_float32(ctx.model)
            return
        self._check_model(ctx.model)
        if self.hparams["start_from"] == "base":
            write_parameters(ctx.model, self.base)

    def on_task_end(self, ctx: CLContext) -> None:
        end = cpu_float32(ctx.model)
        self.task_vectors[int(ctx.task_id)] = {name: end[name].sub_(theta) for name, theta in self.base.items()}
        write_parameters(ctx.model, self.merged())

    def merged(self) -> dict[str, torch.Tensor]:
        """θ_base + λ · merge(τ_0..τ_k) over the stored task vectors, in task order (float32, CPU)."""
        h = self.hparams
        taus = [self.task_vectors[k] for k in sorted(self.task_vectors)]
        return merged_parameters(self.base, taus, h["merge_rule"], h["scaling"], h["ties_density"])

    def _check_model(self, model: torch.nn.Module) -> None:
        params = dict(trainable_parameters(model))
        missing, extra = sorted(set(self.base) - set(params)), sorted(set(params) - set(self.base))
        shape = next((n for n in self.base if n in params and params[n].shape != self.base[n].shape), None)
        if missing or extra or shape:
            detail = (f"{len(missing)} stored but not trainable now (e.g. {missing[0]})" if missing else
                      f"{len(extra)} trainable now but not stored (e.g. {extra[0]})" if extra else
                      f"{shape} has shape {tuple(params[shape].shape)} now, {tuple(self.base[shape].shape)} stored")
            raise ConfigError(
                f"weight_merge's θ_base was taken from other trainable parameters than this model has: {detail}. "
                "Resume with the run's own model, LoRA and freezing settings, or start a new run_id."
            )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {**super().state_dict(), "hparams": dict(self.hparams), "tasks": sorted(self.task_vectors)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        # The task vectors do not depend on the merge settings: a resumed run may change them, and every
        # later task end merges all stored vectors with the settings it runs with.
        self._stored_tasks = [int(t) for t in state.get("tasks", [])]
        self.task_vectors = {}

    def tensor_state_dict(self) -> dict[str, torch.Tensor]:
        out = {f"{_BASE}{name}": t for name, t in self.base.items()}
        for k, tau in self.task_vectors.items():
            out.update({f"task{k}{_TAU}{name}": t for name, t in tau.items()})
        return out

    def load_tensor_state_dict(self, tensors: Mapping[str, torch.Tensor]) -> None:
        tasks = self._stored_tasks
        base = {k[len(_BASE):]: v.to(torch.float32) for k, v in tensors.items() if k.startswith(_BASE)}
        vectors = {}
        for task in tasks:
            prefix = f"task{task}{_TAU}"
            vectors[task] = {k[len(prefix):]: v.to(torch.float32) for k, v in tensors.items() if k.startswith(prefix)}
        broken = [f"task{t}" for t, tau in vectors.items() if tau.keys() != base.keys()]
        if (tasks and not base) or broken:
            raise ConfigError(
                f'The checkpoint\'s weight_merge tensors are incomplete ({len(base)} "base.*" tensors; task vectors '
                f"not matching them: {', '.join(broken) or 'none'}). The _cl_state.safetensors file does not match its "
                "_cl_state.json: resume from an intact checkpoint or start a new run_id."
            )
        if base:  # a checkpoint taken before task 0 started (none exists today) would leave θ_base to on_task_start
            self.base = base
        self.task_vectors = vectors

    def __repr__(self) -> str:
        h = self.hparams
        rule = f"ties, density={h['ties_density']:g}" if h["merge_rule"] == "ties" else "average"
        return f"WeightMerge({rule}, scaling={h['scaling']:g}, start_from={h['start_from']})"
