"""Every CL algorithm under 2 CPU processes: ranks end with identical parameters and agreeing state.

Each test launches `_mp_worker.py` with `torchrun --nproc_per_node 2` (gloo); every rank writes
rank<r>.pt (parameters before/after, the algorithm's state, what replay each step used), and
the test compares the ranks. Two paths:
  - the real trainer (ContinualVLATrainer: Accelerator(cpu=True), DDP over gloo), every
    registered algorithm;
  - the same trainer loop on a DeepSpeed ZeRO-2 engine (backends.DeepSpeedBackend), MIR and ER.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from AlphaBrain.config.loader import config_to_yaml
from AlphaBrain.training.continual_learning.algorithms import algorithm_names
from AlphaBrain.training.continual_learning.algorithms.registry import get_algorithm_class

WORKER = Path(__file__).with_name("_mp_worker.py")
REPO = Path(__file__).resolve().parents[3]
STEPS = 3
# Small settings for whichever of these keys an algorithm declares (the rest keep their defaults).
FAST_HPARAMS = {
    "buffer_size_per_task": 16,
    "mir_refresh_interval": 2,
    "mir_candidate_size": 8,
    "mir_top_k": 4,
    "mir_lora_only": False,
    "fisher_num_samples": 16,
    "fisher_batch_size": 8,
    "agem_mem_batch_size": 4,
    "derpp_mem_batch_size": 4,
}
# State a rank may hold for itself: sampling RNGs, reseeded from (seed, task, rank) at every task start,
# so the copy rank 0 writes into the checkpoint never has to be right for another rank.
PER_RANK_KEYS = {"rng_state"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def algorithm_overrides(name: str) -> list[str]:
    declared = get_algorithm_class(name).HYPERPARAMETERS
    return [
        "continual_learning.replay.enabled=false",
        f"continual_learning.algorithm.name={name}",
        *(f"continual_learning.algorithm.{k}={json.dumps(v)}" for k, v in FAST_HPARAMS.items() if k in declared),
    ]


def launch(mode: str, name: str, make_config, dataset: Path, tmp_path: Path, env: dict | None = None,
           extra: tuple[str, ...] = ()) -> list[dict]:
    """2 ranks of `_mp_worker.py` on the synthetic stream cut to 2 tasks x STEPS steps; each rank's record."""
    out, config = tmp_path / "ranks", tmp_path / "config.yaml"
    cfg = make_config(tmp_path / "runs", dataset, "continual_learning.task_sequence.num_tasks=2",
                      *algorithm_overrides(name), *extra, steps=STEPS, run_id=name)
    config.write_text(config_to_yaml(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(WORKER), "--mode", mode, "--config", str(config), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def without_per_rank(state):
    if isinstance(state, dict):
        return {k: without_per_rank(v) for k, v in state.items() if k not in PER_RANK_KEYS}
    if isinstance(state, list):
        return [without_per_rank(v) for v in state]
    return state


def assert_ranks_agree(ranks: list[dict]) -> None:
    a, b = ranks
    assert a["world_size"] == b["world_size"] == 2
    assert a["params"].keys() == b["params"].keys()
    differ = [k for k in a["params"] if not torch.equal(a["params"][k], b["params"][k])]
    assert not differ, f"parameters differ across ranks after the last step: {differ[:5]}"
    assert any(not torch.equal(a["params"][k], a["init"][k]) for k in a["params"]), "training changed nothing"
    # Tensor state (EWC's Fisher and anchors, SI's Ω, DER++'s stored outputs, ...) must agree:
    # only rank 0 writes the checkpoint, and every rank resumes from it.
    assert a["algo_tensors"].keys() == b["algo_tensors"].keys()
    for key in a["algo_tensors"]:
        assert torch.equal(a["algo_tensors"][key], b["algo_tensors"][key]), f"algorithm tensor {key!r} differs across ranks"
    sa, sb = without_per_rank(json.loads(a["algo_state"])), without_per_rank(json.loads(b["algo_state"]))
    assert sa == sb, "the algorithm's JSON state differs across ranks (beyond per-rank RNG states)"


@pytest.mark.slow
# The runs train the tiny CNN, which has no LoRA: a requires_lora method is refused there (test_lora_per_task.py).
@pytest.mark.parametrize("name", [n for n in algorithm_names() if not get_algorithm_class(n).requires_lora])
def test_trainer_two_processes_keep_ranks_identical(name, make_config, synthetic_dataset, tmp_path):
    """The real trainer (DDP over gloo), 2 tasks x 3 steps: same parameters and state on both ranks."""
    ranks = launch("trainer", name, make_config, synthetic_dataset, tmp_path)
    assert_ranks_agree(ranks)


@pytest.mark.slow
def test_mir_per_step_two_processes_keep_ranks_identical(make_config, synthetic_dataset, tmp_path):
    """MIR's per-step retrieval takes an extra backward on the unwrapped model: it must not desynchronise DDP."""
    ranks = launch("trainer", "mir", make_config, synthetic_dataset, tmp_path,
                   extra=("continual_learning.algorithm.mir_mode=per_step",))
    assert_ranks_agree(ranks)
    assert all(any(rank["replayed"][STEPS:]) for rank in ranks)


@pytest.mark.slow
def test_replay_memory_is_shared_but_each_rank_draws_its_own(make_config, synthetic_dataset, tmp_path):
    """ER: one memory on every rank; the replay samples of a step differ by rank (RNG seeded by seed, task, rank)."""
    a, b = launch("trainer", "er", make_config, synthetic_dataset, tmp_path)
    stored = json.loads(a["algo_state"])["buffer"]["refs"]
    assert stored == json.loads(b["algo_state"])["buffer"]["refs"]
    memory = {(int(t), e, f) for t, rows in stored.items() for _, e, f in rows}
    replay_a, replay_b = a["replayed"][STEPS:], b["replayed"][STEPS:]  # task 1: task 0 is in memory
    assert all(step for step in replay_a + replay_b), "a task-1 step replayed nothing"
    assert {tuple(r) for step in replay_a + replay_b for r in step} <= memory
    assert replay_a != replay_b, "both ranks replayed the same samples: they should draw independent streams"


def deepspeed_env() -> dict:
    if "mir" not in algorithm_names():
        pytest.skip("MIR is not registered")
    pytest.importorskip("deepspeed", reason="DeepSpeed is an optional extra: pip install -e '.[deepspeed]'")
    config = {"zero_optimization": {"stage": 2, "contiguous_gradients": True}}
    return {"MP_DS_CONFIG": json.dumps(config), "DS_ACCELERATOR": "cpu"}


@pytest.mark.slow
def test_deepspeed_zero2_mir_two_processes(make_config, synthetic_dataset, tmp_path):
    """ZeRO-2 on CPU (gloo), the trainer's hook order: param.grad stays None, MIR still captures and refreshes."""
    a, b = ranks = launch("deepspeed", "mir", make_config, synthetic_dataset, tmp_path, env=deepspeed_env())
    for rank in ranks:
        assert rank["zero_stage"] == 2
        # (a) after every engine.backward no parameter holds a .grad: ZeRO-2 moved them into its buffers.
        assert len(rank["grads_after_backward"]) == 2 * STEPS and set(rank["grads_after_backward"]) == {0}
        # (b) MIR's register_hook copies saw a non-zero gradient, and it was used for refreshes.
        assert rank["captured_grad_norms"] and all(n > 0 for n in rank["captured_grad_norms"])
        assert json.loads(rank["algo_state"])["mir"]["last_refresh"] is not None
        assert max(rank["cache_sizes"]) == FAST_HPARAMS["mir_top_k"]  # a refresh filled the cache (emptied at task end)
        # The virtual step moved the parameters: with a zero gradient every Δ would be exactly 0.
        assert any(d != 0 for d in rank["last_refresh"]["delta"])
        # Task-1 steps after the refresh replayed from that cache.
        assert any(rank["replayed"][STEPS:])
    assert_params_identical(a, b)
    # The trainer's checkpoint writer, called after each task, saved rank 0's (= every rank's) final model.
    saved = torch.load(tmp_path / "runs" / "mir" / "checkpoints" / f"task_1_id1_steps_{2 * STEPS}_pytorch_model.pt",
                       weights_only=True)
    assert all(torch.equal(saved[k], a["params"][k]) for k in a["params"])


def assert_params_identical(a: dict, b: dict) -> None:
    differ = [k for k in a["params"] if not torch.equal(a["params"][k], b["params"][k])]
    assert not differ, f"parameters differ across ranks: {differ[:5]}"
    assert any(not torch.equal(a["params"][k], a["init"][k]) for k in a["params"]), "training changed nothing"


def test_deepspeed_zero2_refuses_algorithms_that_read_param_grad():
    from omegaconf import OmegaConf

    from AlphaBrain.training.trainer_utils.backends import DeepSpeedBackend, check_algorithm
    from AlphaBrain.utils.errors import ConfigError

    trainer = OmegaConf.create({"gradient_accumulation_steps": 1, "gradient_clipping": None})
    zero2 = DeepSpeedBackend({"zero_optimization": {"stage": 2}}, trainer, micro_batch_size=4)
    zero0 = DeepSpeedBackend({"zero_optimization": {"stage": 0}}, trainer, micro_batch_size=4)
    needs = [n for n in algorithm_names() if get_algorithm_class(n).needs_param_grad]
    assert {"agem", "si"} <= set(needs)
    for name in needs:
        algo = get_algorithm_class(name).from_config({})
        with pytest.raises(ConfigError, match=f'"{name}".*reads param.grad.*ZeRO stage 2.*stage 0'):
            check_algorithm(algo, zero2)
        if algo.writes_weights:  # PackNet: param.grad is whole there, but DeepSpeed's master weights undo its writes
            with pytest.raises(ConfigError, match=f'"{name}".*writes the weights itself.*master copy'):
                check_algorithm(algo, zero0)
        else:
            check_algorithm(algo, zero0)  # plain data parallel: param.grad is whole
    for name in sorted({"mir", "ewc", "er"} & set(algorithm_names())):  # no param.grad needed (MIR: register_hook)
        check_algorithm(get_algorithm_class(name).from_config({}), zero2)


@pytest.mark.parametrize("kind", ["DEEPSPEED", "FSDP"])
def test_accelerate_sharded_modes_refuse_algorithms_that_read_param_grad(kind):
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from AlphaBrain.training.trainer_utils.backends import AccelerateBackend, check_algorithm
    from AlphaBrain.utils.errors import ConfigError

    trainer = OmegaConf.create({"gradient_accumulation_steps": 1, "gradient_clipping": None})
    sharded = AccelerateBackend(SimpleNamespace(distributed_type=kind), trainer)
    ddp = AccelerateBackend(SimpleNamespace(distributed_type="MULTI_CPU"), trainer)
    for name in [n for n in algorithm_names() if get_algorithm_class(n).needs_param_grad]:
        algo = get_algorithm_class(name).from_config({})
        with pytest.raises(ConfigError, match="reads param.grad.*(DeepSpeed|FSDP).*plain DDP"):
            check_algorithm(algo, sharded)
        check_algorithm(algo, ddp)


def test_deepspeed_flag_of_run_cl_train_on_a_cpu_machine_is_one_clear_error(synthetic_dataset, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this test is about CPU-only machines")
    wrapper = REPO / "scripts" / "run_continual_learning_scripts" / "run_cl_train.sh"
    env = {**os.environ, "ALPHABRAIN_PYTHON": sys.executable}
    for extra, pattern in ((["--deepspeed"], "needs GPUs"), (["--deepspeed", "nope.json"], "nope.json' not found")):
        proc = subprocess.run(["bash", str(wrapper), "--model", "tiny", "--dataset", str(synthetic_dataset), "--smoke",
                               *extra, "--", f"run_root_dir={tmp_path}"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2 and pattern in proc.stderr, proc.stderr[-2000:]
    assert not any(tmp_path.iterdir())


def test_shipped_zero2_config_resolves_accelerate_autos():
    from omegaconf import OmegaConf

    from AlphaBrain.training.trainer_utils.deepspeed_direct import DEFAULT_CONFIG, resolve_config

    trainer = OmegaConf.create({"gradient_accumulation_steps": 4, "gradient_clipping": 1.0})
    config = resolve_config(DEFAULT_CONFIG, trainer, micro_batch_size=8, mixed_precision="bf16")
    assert config["zero_optimization"]["stage"] == 2 and config["zero_optimization"]["contiguous_gradients"]
    assert config["train_micro_batch_size_per_gpu"] == 8 and config["gradient_accumulation_steps"] == 4
    assert config["gradient_clipping"] == 1.0 and "train_batch_size" not in config
    assert config["bf16"]["enabled"] is True and config["fp16"]["enabled"] is False
    assert "auto" not in json.dumps(config)
