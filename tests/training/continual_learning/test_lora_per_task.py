"""lora_per_task: one LoRA adapter (and head) per task on a frozen backbone, selected by task at evaluation.

The trainer tests run QwenGR00T tiny with LoRA (rank 8) on a 3-task synthetic dataset written here;
the hook tests drive the algorithm by hand on a toy module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from AlphaBrain.config.loader import BASE_CONFIG, config_to_yaml, load_run_config, model_overlay_path
from AlphaBrain.model.task_conditioning import ParameterSets, conditioning_from_checkpoint
from AlphaBrain.runs import RunDir, load_run_model
from AlphaBrain.runs.checkpoints import load_cl_tensors
from AlphaBrain.training.continual_learning.algorithms import CLContext, get_algorithm_class
from AlphaBrain.training.continual_learning.algorithms.dynamic_based.lora_per_task import LoraPerTask
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import ConfigError

from test_mid_task import Crash, crash_at
from test_multiprocess import REPO, WORKER, assert_ranks_agree, free_port

STEPS = 3


@pytest.fixture(scope="module")
def three_tasks(tmp_path_factory) -> Path:
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("data") / "three_tasks"
    return write_synthetic_dataset(root, num_tasks=3, episodes_per_task=2, episode_length=12, image_size=(32, 32),
                                   cameras=("image", "wrist_image"), state_dim=8, action_dim=7, seed=0)


def lora_config(root: Path, dataset: Path, *extra: str, steps: int = STEPS):
    return load_run_config([BASE_CONFIG, model_overlay_path("qwengr00t_tiny")], [
        f"run_root_dir={root}", "run_id=run", f"continual_learning.task_sequence={dataset}",
        f"continual_learning.steps_per_task={steps}", "datasets.vla_data.per_device_batch_size=4",
        "continual_learning.replay.enabled=false", "continual_learning.algorithm.name=lora_per_task", *extra,
    ])


def per_task_names(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if "lora_" in n or p.requires_grad}


@pytest.fixture(scope="module")
def trained(three_tasks, tmp_path_factory):
    """A 3-task run; the weights outside the per-task set, before training and at every task end."""
    cfg = lora_config(tmp_path_factory.mktemp("runs"), three_tasks)
    trainer = ContinualVLATrainer(cfg)
    trainer.prepare_training()
    model = trainer.unwrapped
    names = per_task_names(model)

    def frozen() -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in model.named_parameters() if n not in names}

    records = [frozen()]
    task_end = trainer.algorithm.on_task_end

    def recording_task_end(ctx):
        task_end(ctx)
        records.append(frozen())

    trainer.algorithm.on_task_end = recording_task_end
    run = RunDir(trainer.train())
    return SimpleNamespace(cfg=cfg, run=run, spec=trainer.stream.base_dataset.data_spec, names=names, frozen=records)


def predict(model, spec) -> np.ndarray:
    from AlphaBrain.model.synthetic import synthetic_examples

    requests = synthetic_examples(spec, 3, seed=7)
    for ex in requests:
        ex.pop("action"), ex.pop("action_mask")
    torch.manual_seed(0)  # the flow-matching head starts from noise: the same noise for every model compared
    return model.predict_action(requests)


def test_every_task_keeps_its_adapter_and_select_gives_that_tasks_model(trained):
    ckpts = trained.run.checkpoints()
    assert [c.position for c in ckpts] == [0, 1, 2]
    final = ckpts[-1]
    cond = conditioning_from_checkpoint(final.state["algorithm"], load_cl_tensors(final))
    assert isinstance(cond, ParameterSets) and cond.positions == [0, 1, 2]
    assert set(cond.parameter_names()) == trained.names
    assert any("lora_A" in n for n in trained.names) and any(n.startswith("action_model.") for n in trained.names)
    # Three different adapters (a vacuous test would pass with one set copied three times).
    b = next(n for n in cond.parameter_names() if "lora_B" in n)
    assert not torch.equal(cond.sets[0][b], cond.sets[1][b]) and not torch.equal(cond.sets[1][b], cond.sets[2][b])

    # As evaluation loads it: the final checkpoint, adapters kept injected, switched by task name.
    loaded = load_run_model(trained.run.path, "last")
    assert loaded.task_conditioned == "parameter_sets"
    model = loaded.model
    shared = {n: p.detach().clone() for n, p in model.named_parameters() if n not in trained.names}
    for k, ckpt in enumerate(ckpts):
        assert loaded.select_task(loaded.stream_tasks[k][0]) == k
        params = dict(model.named_parameters())
        assert all(torch.equal(params[n], cond.sets[k][n]) for n in trained.names), f"select({k}) put other values in"
        assert all(torch.equal(params[n], t) for n, t in shared.items()), f"select({k}) touched a shared weight"
        alone = load_run_model(trained.run.path, ckpt.prefix.name).model  # task k's checkpoint on its own
        assert all(torch.equal(params[n], p) for n, p in alone.named_parameters()), f"task {k}: weights differ"
        # Bitwise: the same weights in the same modules, run by the same CPU kernels on the same inputs and noise.
        np.testing.assert_array_equal(predict(model, trained.spec), predict(alone, trained.spec))


def test_backbone_base_weights_never_change(trained):
    start, *task_ends = trained.frozen
    assert len(task_ends) == 3 and len(start) > 0
    assert any(".base_layer." in n for n in start)  # the adapted linear layers' own weights are among them
    for k, weights in enumerate(task_ends):
        differ = [n for n in start if not torch.equal(start[n], weights[n])]
        assert not differ, f"frozen weights changed by the end of task {k}: {differ[:3]}"


def test_checkpoint_state_lists_tasks_and_start_values(trained):
    final = trained.run.checkpoints()[-1]
    state = final.state["algorithm"]
    assert state["tasks"] == [0, 1, 2] and state["hparams"] == {"per_task_head": True, "init": "fresh"}
    assert state["task_conditioning"] == {"kind": "parameter_sets", "positions": [0, 1, 2]}
    tensors = load_cl_tensors(final)
    initial = {k[len("initial."):]: v for k, v in tensors.items() if k.startswith("initial.")}
    assert set(initial) == trained.names
    assert all(not v.any() for n, v in initial.items() if "lora_B" in n)  # a fresh adapter starts as the identity


def test_refused_without_lora(make_config, synthetic_dataset, tmp_path):
    cfg = make_config(tmp_path, synthetic_dataset, "continual_learning.algorithm.name=lora_per_task",
                      "continual_learning.replay.enabled=false")
    with pytest.raises(ConfigError, match=r"lora\.enabled=false.*Set lora\.enabled=true"):
        ContinualVLATrainer(cfg).prepare_training()
    assert not (tmp_path / "run").exists()
    assert get_algorithm_class("lora_per_task").requires_lora


@pytest.mark.slow
def test_crash_inside_a_task_then_resume_is_bitwise_identical(three_tasks, tmp_path):
    """Mid-task checkpoints every 2 steps; a crash after global step 7 (inside task 1) resumes from step 6."""
    from safetensors.torch import load_file

    mid = ("trainer.save_interval=2", "trainer.keep_last=0")
    full = RunDir(ContinualVLATrainer(lora_config(tmp_path / "a", three_tasks, *mid, steps=4)).train())
    trainer = ContinualVLATrainer(lora_config(tmp_path / "b", three_tasks, *mid, steps=4))
    trainer.prepare_training()
    crash_at(trainer, 7)
    with pytest.raises(Crash):
        trainer.train()
    resumed = ContinualVLATrainer(lora_config(tmp_path / "b", three_tasks, *mid, "trainer.is_resume=true", steps=4))
    resumed.prepare_training()
    assert resumed.mid_task_resume.ckpt.global_step == 6
    run = RunDir(resumed.train())
    for a, b in zip(full.checkpoints(), run.checkpoints(), strict=True):
        assert a.prefix.name == b.prefix.name
        assert a.state["algorithm"] == b.state["algorithm"]
        for suffix in ("_lora_adapter/adapter_model.safetensors", "_cl_state.safetensors"):
            ta, tb = load_file(f"{a.prefix}{suffix}"), load_file(f"{b.prefix}{suffix}")
            assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), (b.prefix.name, suffix)
        ha = torch.load(f"{a.prefix}_action_model.pt", weights_only=True)
        hb = torch.load(f"{b.prefix}_action_model.pt", weights_only=True)
        assert ha.keys() == hb.keys() and all(torch.equal(ha[k], hb[k]) for k in ha), b.prefix.name



@pytest.mark.slow
def test_two_processes_keep_ranks_identical(three_tasks, tmp_path):
    """DDP over gloo, 3 tasks x 2 steps: both ranks reset, train and store the same adapters."""
    config, out = tmp_path / "config.yaml", tmp_path / "ranks"
    config.write_text(config_to_yaml(lora_config(tmp_path / "runs", three_tasks, steps=2)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(WORKER), "--mode", "trainer", "--config", str(config), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert_ranks_agree(ranks)
    assert json.loads(ranks[0]["algo_state"])["tasks"] == [0, 1, 2]


# ------------------------------------------------------------------ the hooks by hand, on a toy module
class Toy(torch.nn.Module):
    """Names as in a LoRA run: an adapter (lora_A / lora_B), a frozen base weight, a trainable head."""

    def __init__(self) -> None:
        super().__init__()
        self.base = torch.nn.Parameter(torch.ones(3), requires_grad=False)
        self.lora_A = torch.nn.Parameter(torch.full((2, 3), 0.5))
        self.lora_B = torch.nn.Parameter(torch.zeros(3, 2))
        self.head = torch.nn.Parameter(torch.zeros(3))


def train_toy(algo: LoraPerTask, model: Toy, tasks: range) -> list[dict[str, torch.Tensor]]:
    """Each task adds its position + 1 to every trainable parameter; the values each task started from."""
    starts = []
    for k in tasks:
        ctx = CLContext(k, model, None, None, None, num_tasks=3)
        algo.ctx = ctx
        algo.on_task_start(ctx)
        starts.append({n: p.detach().clone() for n, p in model.named_parameters()})
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(k + 1)
        algo.on_task_end(ctx)
    return starts


@pytest.mark.parametrize("init", ["fresh", "previous"])
@pytest.mark.parametrize("per_task_head", [True, False])
def test_task_start_resets_or_keeps_the_per_task_set(init, per_task_head):
    algo, model = LoraPerTask(init=init, per_task_head=per_task_head), Toy()
    starts = train_toy(algo, model, range(3))
    per_task = {"lora_A", "lora_B"} | ({"head"} if per_task_head else set())
    assert set(algo.sets[0]) == per_task
    for k in (1, 2):
        for name in per_task:
            expected = starts[0][name] if init == "fresh" else algo.sets[k - 1][name]
            assert torch.equal(starts[k][name], expected), (k, name)
    if not per_task_head:  # the shared head kept training through every task: 1 + 2 + 3
        assert torch.equal(model.head, torch.full((3,), 6.0))
    assert torch.equal(model.base, torch.ones(3))


def test_state_round_trip_and_resume_at_a_later_task():
    algo, model = LoraPerTask(), Toy()
    train_toy(algo, model, range(2))
    state, tensors = json.loads(json.dumps(algo.state_dict())), algo.tensor_state_dict()
    cond = conditioning_from_checkpoint(state, tensors)
    assert cond.positions == [0, 1] and all(torch.equal(cond.sets[1][n], algo.sets[1][n]) for n in algo.sets[1])

    resumed, uninterrupted = LoraPerTask(), Toy()
    resumed.load_state_dict(state)
    resumed.load_tensor_state_dict(tensors)
    starts = train_toy(resumed, uninterrupted, range(2, 3))
    assert torch.equal(starts[0]["lora_A"], torch.full((2, 3), 0.5))  # reset to task 0's start, read from the state
    assert sorted(resumed.sets) == [0, 1, 2]


@pytest.mark.parametrize("key, value", [("per_task_head", False), ("init", "previous")])
def test_resume_with_other_settings_is_refused(key, value):
    algo = LoraPerTask()
    train_toy(algo, Toy(), range(1))
    with pytest.raises(ConfigError, match=f"continual_learning.algorithm.{key}"):
        LoraPerTask(**{key: value}).load_state_dict(algo.state_dict())


def test_model_without_lora_and_bad_init_are_config_errors():
    plain = torch.nn.Linear(2, 2)
    ctx = CLContext(0, plain, None, None, None)
    with pytest.raises(ConfigError, match=r"no LoRA parameters.*lora\.enabled=true"):
        LoraPerTask().on_task_start(ctx)
    with pytest.raises(ConfigError, match=r"continual_learning\.algorithm\.init must be one of fresh, previous"):
        LoraPerTask(init="fersh")


def test_fresh_adapters_are_refused_under_deepspeed():
    """DeepSpeed's optimizer keeps its own copy of the weights, which would undo the in-place reset."""
    from AlphaBrain.training.trainer_utils.backends import check_algorithm

    deepspeed = SimpleNamespace(sharding="DeepSpeed ZeRO stage 2", keeps_param_grad=False)
    with pytest.raises(ConfigError, match=r"writes the weights itself.*master copy"):
        check_algorithm(LoraPerTask(), deepspeed)
    check_algorithm(LoraPerTask(init="previous"), deepspeed)  # writes nothing, so it works there
