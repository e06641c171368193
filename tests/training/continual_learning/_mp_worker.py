"""One rank of a multi-process CL run, launched by test_multiprocess.py under torchrun.

    python -m torch.distributed.run --nproc_per_node 2 _mp_worker.py --mode trainer|deepspeed --config CFG.yaml --out DIR

Builds `ContinualVLATrainer` from a resolved run config (written by the test), trains
(mode trainer: the real accelerate/DDP loop; mode deepspeed: deepspeed_direct.train_stream_deepspeed
with ZeRO-2), and writes DIR/rank<r>.pt: the parameters before and after training, the
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
    trainer = ContinualVLATrainer(cfg)  # Accelerator(cpu=True) joins the torchrun process group (gloo)
    rank = trainer.accelerator.process_index
    record: dict = {"world_size": trainer.accelerator.num_processes, "replayed": [], "captured_grad_norms": [],
                    "cache_sizes": []}
    if args.mode == "trainer":
        trainer.prepare_training()
        spy(trainer.algorithm, record)
        record["init"] = snapshot(trainer.unwrapped)
        trainer.train()
        model = trainer.unwrapped
    else:
        from AlphaBrain.training.trainer_utils.deepspeed_direct import train_stream_deepspeed

        trainer.prepare_training(dry_run=True)
        spy(trainer.algorithm, record)
        record["init"] = snapshot(trainer.model)
        grads_after_backward = []

        def check(engine, info):
            grads = [p.grad for p in engine.module.parameters() if p.requires_grad]
            grads_after_backward.append(sum(g is not None for g in grads))

        # The trainer's own checkpoint writer after each task, as the trainer would call it.
        engine = train_stream_deepspeed(trainer, json.loads(os.environ["MP_DS_CONFIG"]), on_micro_step=check,
                                        after_task=trainer._save_task_checkpoint)
        record["zero_stage"] = engine.zero_optimization_stage()
        record["grads_after_backward"] = grads_after_backward
        model = engine.module
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
