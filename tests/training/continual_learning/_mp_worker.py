"""One rank of a multi-process CL run, launched by test_multiprocess.py under torchrun.

    python -m torch.distributed.run --nproc_per_node 2 _mp_worker.py --mode trainer|deepspeed --config CFG.yaml --out DIR

Builds `ContinualVLATrainer` from a resolved run config (written by the test), trains
(mode trainer: the accelerate/DDP backend; mode deepspeed: the same loop on a DeepSpeed ZeRO-2
engine), and writes DIR/rank<r>.pt: the parameters before and after training, the
algorithm's JSON and tensor state, and (deepspeed) what each backward left in param.grad.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repo, when run as a script

from omegaconf import OmegaConf  # noqa: E402

from AlphaBrain.training.continual_learning.train import ContinualVLATrainer  # noqa: E402


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def spy(algorithm, record: dict) -> None:
    """Record, through the hooks' public results only, what replay each step used and what MIR captured."""
    modify_batch, after_backward = algorithm.modify_batch, algorithm.after_backward

    def recording_modify_batch(batch, task_id):
        out = modify_batch(batch, task_id)
        record["replayed"].append(
            [(int(s["task_id"]), int(s["episode_index"]), int(s["frame_index"])) for s in out if s["task_id"] != task_id]
        )
        record["cache_sizes"].append(len(getattr(algorithm, "cache", ())))  # MIR's replay cache
        return out

    def recording_after_backward(model):
        grads = getattr(algorithm, "captured_grads", None)  # MIR: what its register_hook copies saw
        if grads:
            record["captured_grad_norms"].append(float(sum(g.float().norm() for g in grads.values())))
        # What backward left in param.grad (ZeRO-2: nothing, gradients live in the engine's buffers).
        record["grads_after_backward"].append(sum(p.grad is not None for p in model.parameters() if p.requires_grad))
        after_backward(model)

    algorithm.modify_batch, algorithm.after_backward = recording_modify_batch, recording_after_backward


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("trainer", "deepspeed"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = OmegaConf.load(args.config)
    ds_config = json.loads(os.environ["MP_DS_CONFIG"]) if args.mode == "deepspeed" else None
    # Accelerator(cpu=True) joins the torchrun process group (gloo); DeepSpeed reuses it.
    trainer = ContinualVLATrainer(cfg, deepspeed_config=ds_config)
    rank = trainer.accelerator.process_index
    record: dict = {"world_size": trainer.accelerator.num_processes, "replayed": [], "captured_grad_norms": [],
                    "cache_sizes": [], "grads_after_backward": []}
    trainer.prepare_training()
    spy(trainer.algorithm, record)
    record["init"] = snapshot(trainer.unwrapped)
    trainer.train()
    model = trainer.unwrapped
    if args.mode == "deepspeed":
        record["zero_stage"] = trainer.backend.engine.zero_optimization_stage()
    record["params"] = snapshot(model)
    record["last_refresh"] = getattr(trainer.algorithm, "last_refresh", None)
    record["algo_state"] = json.dumps(trainer.algorithm.state_dict(), sort_keys=True)
    record["algo_tensors"] = {k: v.detach().cpu().clone() for k, v in trainer.algorithm.tensor_state_dict().items()}
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(record, args.out / f"rank{rank}.pt")
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
