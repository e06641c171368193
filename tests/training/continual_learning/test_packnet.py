"""PackNet: owned weights bitwise frozen, pruned weights exactly 0, owner maps, per-task models from a checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cl_toys import ToyPolicy, context, json_round_trip, micro_batches, start_task
from safetensors.torch import load_file
from test_mid_task import test_crash_inside_a_task_then_resume_is_bitwise_identical as crash_and_resume

from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path
from AlphaBrain.model.task_conditioning import WeightMasks, conditioning_from_checkpoint
from AlphaBrain.runs import RunDir
from AlphaBrain.training.continual_learning.algorithms import build_cl_algorithm
from AlphaBrain.training.continual_learning.algorithms.dynamic_based.packnet import PackNet, keep_largest, prunable
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import ConfigError

RUN_STEPS = 6  # default retrain_fraction 0.25: steps 0..3 train the free weights, pruning at step 4, 4..5 retrain
FAST = ["framework.tiny.image_size=32", "framework.tiny.vision_channels=[16,16,16]",
        "framework.tiny.vision_feature_channels=8", "framework.tiny.vision_dim=64",
        "datasets.vla_data.per_device_batch_size=4", "trainer.logging_frequency=1"]


def packnet_config(root: Path, dataset: Path, *extra: str, model: str = "tiny", steps: int = RUN_STEPS):
    fast = FAST if model == "tiny" else ["datasets.vla_data.per_device_batch_size=2"]
    return load_run_config([BASE_CONFIG, model_overlay_path(model)], [
        f"run_root_dir={root}", "run_id=run", f"continual_learning.task_sequence={dataset}",
        f"continual_learning.steps_per_task={steps}", "continual_learning.replay.enabled=false",
        "continual_learning.algorithm.name=packnet", "trainer.optimizer.weight_decay=0.1", *fast, *extra])


class Watch:
    """Checks PackNet's invariants after every optimizer step of a real run, against each task's end weights."""

    def __init__(self, trainer: ContinualVLATrainer):
        self.algo, self.model = trainer.algorithm, trainer.unwrapped
        self.ends: list[dict[str, torch.Tensor]] = []   # weights at the end of each task (after its pruning)
        self.violations: list[str] = []
        self.retrain_steps: dict[int, int] = {}
        step, end = self.algo.after_optimizer_step, self.algo.on_task_end

        def after_step(model):
            step(model)
            self.check()

        def on_end(ctx):
            end(ctx)
            self.ends.append({n: p.detach().clone() for n, p in self.model.named_parameters()})

        self.algo.after_optimizer_step, self.algo.on_task_end = after_step, on_end

    def check(self) -> None:
        algo, task = self.algo, self.algo.task
        params = dict(self.model.named_parameters())
        if algo.pruned:
            self.retrain_steps[task] = self.retrain_steps.get(task, 0) + 1
        for name, p in params.items():
            if name not in algo.owners:
                if task > 0 and not torch.equal(p, self.ends[0][name]):
                    self.violations.append(f"task {task}: non-prunable {name} moved after task 0")
                continue
            owner = algo.owners[name]
            for earlier, end in enumerate(self.ends):
                mine = owner == earlier + 1
                if not torch.equal(p[mine], end[name][mine]):
                    self.violations.append(f"task {task}: {name} weights of task {earlier} moved")
            if algo.pruned and not bool((p[owner == 0] == 0).all()):
                self.violations.append(f"task {task}: pruned entries of {name} are not 0")


@pytest.fixture(scope="module")
def watched_run(synthetic_dataset, tmp_path_factory):
    trainer = ContinualVLATrainer(packnet_config(tmp_path_factory.mktemp("packnet"), synthetic_dataset))
    trainer.prepare_training()
    watch = Watch(trainer)
    run = trainer.train()
    return run, watch


def final_parts(run: Path, k: int = 2) -> tuple[dict, dict, dict]:
    prefix = run / "checkpoints" / f"task_{k}_id{k}_steps_{(k + 1) * RUN_STEPS}"
    state = json.loads(Path(f"{prefix}_cl_state.json").read_text())["algorithm"]
    return state, load_file(f"{prefix}_cl_state.safetensors"), torch.load(f"{prefix}_pytorch_model.pt", weights_only=True)


def test_owned_weights_stay_bitwise_frozen_and_pruned_weights_stay_zero(watched_run):
    run, watch = watched_run
    assert not watch.violations, watch.violations[:5]
    assert watch.retrain_steps == {0: 2, 1: 2, 2: 2}  # pruning at step round(6 * 0.75) = 4 of every task
    # Training did something each task: every task's kept weights moved away from 0 (they start free, at 0 after task 0).
    for k in (1, 2):
        state, tensors, weights = final_parts(run, k)
        owner = tensors["conditioning.owner.action_model.body.0.weight"]
        assert bool((weights["action_model.body.0.weight"][owner == k + 1] != 0).any())


def test_owner_maps_give_each_task_an_equal_share(watched_run):
    state, tensors, weights = final_parts(watched_run[0])
    assert state["tasks_done"] == [0, 1, 2] and state["pruned"] is False and state["task"] is None
    assert state["task_conditioning"] == {"kind": "weight_masks", "positions": [0, 1, 2]}
    owners = {k[len("conditioning.owner."):]: v for k, v in tensors.items()}
    assert set(owners) == {n for n, w in weights.items() if w.dim() >= 2}
    for name, owner in owners.items():
        n = owner.numel()
        first = math.floor(n / 3 + 0.5)
        second = math.floor((n - first) / 2 + 0.5)
        counts = [int((owner == v).sum()) for v in range(4)]
        assert counts == [0, first, second, n - first - second], name  # auto: the last task keeps what is left


def test_checkpoint_masks_select_each_tasks_model(watched_run):
    from AlphaBrain.model.synthetic import synthetic_examples
    from AlphaBrain.runs import load_run_model

    run = watched_run[0]
    state, tensors, final = final_parts(run)
    cond = conditioning_from_checkpoint(state, tensors)
    assert isinstance(cond, WeightMasks) and cond.positions == [0, 1, 2]
    loaded = load_run_model(run, "last")
    selected, by_hand = loaded.model, load_run_model(run, "last").model
    examples = synthetic_examples(loaded.data_spec, 3)
    for ex in examples:
        ex.pop("action"), ex.pop("action_mask")
    for k in (0, 1, 2):
        cond.select(selected, k)
        _, _, at_end = final_parts(run, k)
        params = dict(selected.named_parameters())
        for name, p in params.items():
            # Task k's model is exactly the model as it stood at the end of task k: nothing of it moved later.
            assert torch.equal(p, at_end[name]), (k, name)
        with torch.no_grad():
            for name, p in by_hand.named_parameters():
                owner = cond.owners.get(name)
                p.copy_(final[name] if owner is None else final[name] * ((owner >= 1) & (owner <= k + 1)))
        torch.manual_seed(0)
        a = selected.predict_action(examples)
        torch.manual_seed(0)
        b = by_hand.predict_action(examples)
        assert (a == b).all(), k
    cond.select(selected, -5)  # a position without a mask: the model as trained
    assert all(torch.equal(p, final[n]) for n, p in selected.named_parameters())


def test_crash_after_pruning_then_resume_is_bitwise_identical(make_config, synthetic_dataset, tmp_path):
    """test_mid_task runs PackNet at its defaults, where the mid-task checkpoint it resumes from (task 1, after step 4)
    comes right before the pruning step; with retrain_fraction 0.5 task 1 prunes at its step 3, so that checkpoint
    holds a pruned task in its retrain phase."""
    extra = ("continual_learning.algorithm.retrain_fraction=0.5",)
    crash_and_resume("packnet", extra, make_config, synthetic_dataset, tmp_path)
    mid = RunDir(tmp_path / "b" / "run").mid_task_dir / "task_1_id1_steps_10_cl_state.json"
    state = json.loads(mid.read_text())["algorithm"]
    assert state["pruned"] is True and state["task"] == 1


# ---------------------------------------------------------------- pieces, by hand
def test_keep_largest_keeps_exactly_n_with_ties_in_order():
    w = torch.tensor([[0.0, 3.0, -3.0, 0.5], [0.0, 0.0, 2.0, 0.0]])
    free = torch.tensor([[True, True, True, True], [True, True, False, True]])
    assert keep_largest([w], [free], 1)[0].tolist() == [[False, True, False, False], [False] * 4]
    kept = keep_largest([w], [free], 4)[0]  # 3, -3, 0.5 and the first of the free zeros
    assert kept.tolist() == [[True, True, True, True], [False] * 4]
    assert int(keep_largest([w], [free], 6)[0].sum()) == 6 and not keep_largest([w], [free], 9)[0][1, 2]
    a, b = keep_largest([w[0], w[1]], [free[0], free[1]], 3)  # global: across tensors
    assert a.tolist() == [False, True, True, True] and not b.any()


def test_hooks_by_hand_with_gradient_accumulation_and_weight_decay():
    model = ToyPolicy()
    algo = PackNet(retrain_fraction=0.5, prune_scope="global")
    opt = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.5)
    ends = []
    for task in range(3):
        ctx = start_task(algo, context(task, model, accumulation=2))
        for _step, micro in micro_batches(ctx, ctx.steps):
            batch = ctx.task_dataset.batch(4, start=4 * micro)
            algo.observe(batch, task)
            model(batch)["action_loss"].backward()
            algo.after_backward(model)
            if ctx.is_optimizer_step:
                opt.step()
                opt.zero_grad()
                algo.after_optimizer_step(model)
        algo.on_task_end(ctx)
        ends.append({n: p.detach().clone() for n, p in model.named_parameters()})
        for n, p in model.named_parameters():
            owner = algo.owners.get(n)
            for earlier, end in enumerate(ends[:-1]):
                if owner is None:
                    assert torch.equal(p, ends[0][n])
                else:
                    assert torch.equal(p[owner == earlier + 1], end[n][owner == earlier + 1])
    total = sum(o.numel() for o in algo.owners.values())
    shares = [sum(int((o == v).sum()) for o in algo.owners.values()) for v in (1, 2, 3)]
    assert sum(shares) == total and shares[0] == math.floor(total / 3 + 0.5)  # global scope: shares over all weights
    assert set(algo.owners) == {n for n, p in model.named_parameters() if prunable(p)}
    again = PackNet(retrain_fraction=0.5, prune_scope="global")
    again.load_state_dict(json_round_trip(algo.state_dict()))
    again.load_tensor_state_dict(algo.tensor_state_dict())
    assert again.tasks_done == [0, 1, 2] and all(torch.equal(again.owners[n], o) for n, o in algo.owners.items())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_frozen_entries_keep_their_bits_in_any_dtype(dtype):
    model = torch.nn.Linear(6, 5).to(dtype)
    algo = PackNet(retrain_fraction=0.5)
    ctx = start_task(algo, context(0, model))
    ctx.step = algo.prune_step(ctx.steps)
    algo.observe([], 0)  # prunes: the weight keeps 1/3 of its entries, the others are 0 and frozen
    kept = algo.owners["weight"] == 1
    assert int(kept.sum()) == 10 and bool((model.weight[~kept] == 0).all())
    before = model.weight.detach().clone()
    model.weight.grad = torch.full_like(model.weight, float("nan"))
    model.bias.grad = torch.ones_like(model.bias)
    algo.after_backward(model)
    bits = model.weight.grad.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[model.weight.element_size()])
    assert bool((bits[~kept] == 0).all()) and bool(model.weight.grad[kept].isnan().all())
    with torch.no_grad():
        model.weight.add_(-1.0)  # an optimizer step that moves every entry (weight decay, momentum)
        model.bias.add_(1.0)
    algo.after_optimizer_step(model)
    assert bool((model.weight[~kept].view(-1) == 0).all()) and not bool(torch.signbit(model.weight[~kept]).any())
    assert torch.equal(model.weight[kept], before[kept] - 1.0)
    assert bool((model.bias != 0).all())  # biases train during task 0


@pytest.mark.parametrize("params, pattern", [
    ({"prune_ratio": 1.0}, r"algorithm\.prune_ratio must be strictly between 0 and 1, got 1\.0.*\"auto\""),
    ({"prune_ratio": "half"}, r"algorithm\.prune_ratio .*got 'half'"),
    ({"prune_ratio": True}, r"algorithm\.prune_ratio .*got True"),
    ({"retrain_fraction": 1}, r"algorithm\.retrain_fraction must be a number in \[0, 1\), got 1"),
    ({"retrain_fraction": -0.1}, r"algorithm\.retrain_fraction .*got -0\.1"),
    ({"prune_scope": "per_layer"}, r"algorithm\.prune_scope must be one of layer, global, got 'per_layer'"),
    ({"prune_last_task": True}, r"algorithm\.prune_last_task=true needs a number for prune_ratio"),
    ({"prune_rate": 0.5}, r'"continual_learning\.algorithm\.prune_rate".*Did you mean "prune_ratio"'),
])
def test_bad_hyperparameters_name_the_key(params, pattern):
    with pytest.raises(ConfigError, match=pattern):
        PackNet.from_config(params)


def test_last_task_pruning_and_task_limit():
    algo = PackNet(prune_ratio=0.25, prune_last_task=True)
    assert [algo.keep_share(k, 3) for k in range(3)] == [0.75, 0.75, 0.75]
    assert PackNet(prune_ratio=0.25).keep_share(2, 3) == 1.0
    assert [PackNet().keep_share(k, 4) for k in range(4)] == [0.25, 1 / 3, 0.5, 1.0]
    assert [PackNet(retrain_fraction=r).prune_step(6) for r in (0.0, 0.25, 0.5, 0.99)] == [6, 4, 3, 1]
    ctx = context(0, ToyPolicy())
    ctx.num_tasks = 255
    with pytest.raises(ConfigError, match="at most 254 tasks.*has 255"):
        start_task(PackNet(), ctx)
    with pytest.raises(ConfigError, match="no trainable weight matrix"):
        start_task(PackNet(), context(0, ToyPolicy(freeze_body=True).requires_grad_(False)))


def test_resume_with_another_model_is_refused():
    algo = PackNet()
    algo.on_task_end(start_task(algo, context(0, ToyPolicy())))
    other = torch.nn.Sequential(torch.nn.Linear(3, 4))
    again = PackNet()
    again.load_state_dict(json_round_trip(algo.state_dict()))
    again.load_tensor_state_dict(algo.tensor_state_dict())
    with pytest.raises(ConfigError, match="owner maps were written for other trainable weights"):
        start_task(again, context(1, other))
    with pytest.raises(ConfigError, match="no .*owner maps"):
        again.load_tensor_state_dict({})


def test_yaml_builds_it_and_deepspeed_zero_is_refused():
    from omegaconf import OmegaConf

    from AlphaBrain.training.trainer_utils.backends import DeepSpeedBackend, check_algorithm

    cfg = OmegaConf.create({"continual_learning": {"algorithm": {"name": "packnet", "prune_ratio": 0.5}}})
    algo = build_cl_algorithm(cfg)
    assert isinstance(algo, PackNet) and algo.hparams["prune_ratio"] == 0.5 and algo.needs_param_grad
    trainer = OmegaConf.create({"gradient_accumulation_steps": 1, "gradient_clipping": None})
    with pytest.raises(ConfigError, match='"packnet".*reads param.grad'):
        check_algorithm(algo, DeepSpeedBackend({"zero_optimization": {"stage": 2}}, trainer, micro_batch_size=4))


# ---------------------------------------------------------------- a large framework
@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory) -> Path:
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("data") / "two_tasks"
    return write_synthetic_dataset(root, num_tasks=2, episodes_per_task=2, episode_length=12, image_size=(32, 32),
                                   cameras=("image", "wrist_image"), state_dim=8, action_dim=7, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True])
def test_qwengr00t_tiny_full_and_lora(lora, two_tasks, tmp_path):
    cfg = packnet_config(tmp_path, two_tasks, f"lora.enabled={str(lora).lower()}", model="qwengr00t_tiny", steps=4)
    trainer = ContinualVLATrainer(cfg)
    trainer.prepare_training()
    watch = Watch(trainer)
    trainer.train()
    assert not watch.violations, watch.violations[:5]
    owners = trainer.algorithm.owners
    trainable = {n for n, p in trainer.unwrapped.named_parameters() if p.requires_grad and p.dim() >= 2}
    assert set(owners) == trainable
    assert any(".lora_A." in n for n in owners) == lora
    assert all(not bool((o == 0).any()) for o in owners.values())  # auto: the last task keeps what is left
