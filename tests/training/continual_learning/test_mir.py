"""MIR: brute-force top-k by Δ, bitwise θ restore, gradient capture by hooks, per_step retrieval and its fill rule, config, state, a trainer run."""

import copy
import json
import logging

import pytest
import torch
from cl_toys import micro_batches, start_task

from AlphaBrain.training.continual_learning.algorithms import MIR, CLContext, build_cl_algorithm
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import ConfigError


@pytest.fixture
def tiny(synthetic_dataset, tmp_path, make_config):
    """The trainer's TinyVLA and stream (dry run: nothing written)."""
    trainer = ContinualVLATrainer(make_config(tmp_path, synthetic_dataset))
    trainer.prepare_training(dry_run=True)
    return trainer.unwrapped, trainer.stream


def start_task_1(model, stream, accum=1, **hp):
    """A MIR whose buffer holds task 0, at the start of task 1 (as the trainer leaves it)."""
    params = {"buffer_size_per_task": 16, "mir_candidate_size": 8, "mir_top_k": 3, **hp}
    algo = MIR.from_config(params)
    algo.bind_runtime(seed=0)
    algo.buffer.populate_from_dataset(0, stream.tasks[0])
    ctx = CLContext(1, model, stream.tasks[1], None, None, num_tasks=3, steps=10, gradient_accumulation_steps=accum)
    return algo, start_task(algo, ctx)


def current_batch(stream, start=0, size=4):
    return [stream.tasks[1][i] for i in range(start, start + size)]


def micro_step(algo, model, batch, accum=1):
    batch = algo.modify_batch(batch, 1)
    (model(batch)["action_loss"] / accum).backward()
    return batch


def test_refresh_caches_the_brute_force_top_k(tiny):
    model, stream = tiny
    model.eval()  # no augmentation: a sample's loss does not depend on the rest of its batch
    algo, _ = start_task_1(model, stream, mir_virtual_lr=0.05)
    batch = current_batch(stream)
    assert micro_step(algo, model, batch) == batch  # the capture step trains on the current task only
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    algo.after_backward(model)

    candidates = algo.last_refresh["candidates"]
    assert len(set(candidates)) == 8
    virtual = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in virtual.named_parameters():
            p.sub_(0.05 * grads[n])
        delta = [
            float(virtual.per_sample_action_loss(s) - model.per_sample_action_loss(s))
            for s in ([x] for x in algo.buffer.decode(candidates))
        ]
    torch.testing.assert_close(torch.tensor(algo.last_refresh["delta"]), torch.tensor(delta), rtol=1e-3, atol=1e-6)
    ranked = sorted(range(8), key=lambda i: -delta[i])
    assert delta[ranked[2]] - delta[ranked[3]] > 1e-4, "top-k boundary too close to compare"
    assert algo.cache == [candidates[i] for i in ranked[:3]]


def test_refresh_leaves_parameters_grads_and_rng_bitwise_unchanged(tiny):
    model, stream = tiny
    model.train()
    algo, _ = start_task_1(model, stream, mir_virtual_lr=0.05)
    micro_step(algo, model, current_batch(stream))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    rng = torch.get_rng_state()
    algo.after_backward(model)

    assert algo.cache and any(d != 0 for d in algo.last_refresh["delta"])  # a real virtual step happened
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(grads[n], p.grad) for n, p in model.named_parameters())
    assert torch.equal(rng, torch.get_rng_state())


def test_both_loss_evaluations_see_the_same_augmentation(tiny):
    model, stream = tiny
    model.train()  # random-shift augmentation on
    algo, _ = start_task_1(model, stream)
    algo.virtual_lr = 0.0  # θ_v == θ: any Δ would come from different noise in the two evaluations
    micro_step(algo, model, current_batch(stream))
    algo.after_backward(model)
    assert algo.last_refresh["delta"] == [0.0] * 8


def test_hooks_capture_the_gradient_of_the_trainers_backward(tiny):
    model, stream = tiny
    algo, ctx = start_task_1(model, stream, mir_refresh_interval=3)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert algo.virtual_params == trainable  # no LoRA in TinyVLA: every trainable parameter

    micro_step(algo, model, current_batch(stream))
    captured = algo.captured_grads
    assert sorted(captured) == sorted(n for n, p in model.named_parameters() if p.grad is not None)
    for n, p in model.named_parameters():
        if n in captured:
            assert torch.equal(captured[n], p.grad), n
    algo.after_backward(model)
    model.zero_grad(set_to_none=True)

    ctx.step = ctx.global_step = 1
    micro_step(algo, model, current_batch(stream, 4))  # not followed by a refresh: nothing copied
    assert algo.captured_grads == {}
    algo.after_backward(model)

    assert algo.cache
    algo.on_task_end(ctx)
    assert all(not p._backward_hooks for p in model.parameters())
    assert algo.cache == []  # the next task starts with a refresh


def test_accumulation_sums_micro_batches_and_refreshes_on_optimizer_steps(tiny):
    model, stream = tiny
    algo, ctx = start_task_1(model, stream, accum=2, mir_refresh_interval=2)
    refreshed = []
    for step, micro in micro_batches(ctx, 5):  # 5 optimizer steps of 2 micro-batches
        if micro == 0:
            model.zero_grad(set_to_none=True)
        micro_step(algo, model, current_batch(stream, 4 * micro), accum=2)
        if step == 0 and micro == 1:  # the capture step's gradient: both micro-batches summed
            for n, p in model.named_parameters():
                if p.grad is not None:
                    torch.testing.assert_close(algo.captured_grads[n], p.grad, rtol=1e-6, atol=0.0)
        algo.after_backward(model)
        if step == 0 and micro == 0:
            assert algo.last_refresh == {}  # half an optimizer step: no refresh yet
        if micro == 1:
            refreshed.append(algo.last_refresh["step"])
    assert refreshed == [0, 0, 2, 2, 4]
    assert algo.state_dict()["mir"]["last_refresh"] == 4


def test_replay_is_drawn_from_the_cache(tiny):
    model, stream = tiny
    algo, _ = start_task_1(model, stream, mir_refresh_interval=100)
    micro_step(algo, model, current_batch(stream))
    algo.after_backward(model)
    cache = set(algo.cache)
    for _ in range(5):
        mixed = algo.modify_batch(current_batch(stream, size=8), 1)  # round(8 * 0.3) = 2 replayed
        replay = mixed[6:]
        assert {(s["task_id"], (0, s["episode_index"], s["frame_index"])) for s in replay} <= cache
        assert all(s["task_id"] == 0 for s in replay)


def test_replay_draws_with_replacement_when_the_cache_is_small_and_says_so_once(tiny, caplog):
    model, stream = tiny
    algo, _ = start_task_1(model, stream, mir_top_k=1, mir_refresh_interval=100)
    micro_step(algo, model, current_batch(stream))
    algo.after_backward(model)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            mixed = algo.modify_batch(current_batch(stream, size=10), 1)  # 3 replay samples from a cache of 1
            assert len(mixed) == 10
            assert len({(s["episode_index"], s["frame_index"]) for s in mixed[7:]}) == 1
    assert [r.message for r in caplog.records if "with replacement" in r.message] == [
        "MIR (amortized): each step replays 3 samples drawn with replacement from a cache of 1 (mir_top_k), so the "
        "same samples repeat within a step; mir_mode=per_step replays distinct top-ranked samples."]


def brute_force_delta(model, kept, candidates, lr):
    """Δ of each candidate under a virtual step on the mean loss of `kept`, computed independently of MIR."""
    virtual = copy.deepcopy(model)
    loss = virtual.per_sample_action_loss(kept).mean()
    grads = torch.autograd.grad(loss, list(virtual.parameters()), allow_unused=True)
    with torch.no_grad():
        for p, g in zip(virtual.parameters(), grads):
            if g is not None:
                p.sub_(lr * g)
        return [float(virtual.per_sample_action_loss([c]) - model.per_sample_action_loss([c])) for c in candidates]


def refs_of(samples):
    return [(s["task_id"], (0, s["episode_index"], s["frame_index"])) for s in samples]


def test_per_step_scores_every_step_and_replays_the_distinct_top_ranked(tiny):
    model, stream = tiny
    model.eval()  # no augmentation: a sample's loss does not depend on the rest of its batch
    algo, ctx = start_task_1(model, stream, mir_mode="per_step", mir_virtual_lr=0.05, mir_top_k=8)
    assert not any(p._backward_hooks for p in model.parameters())  # per_step needs no gradient hooks
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(3):
        ctx.step = ctx.global_step = step
        batch = current_batch(stream, 3 * step, size=10)  # n = round(10 * 0.3) = 3 replayed, 7 kept
        mixed = algo.modify_batch(batch, 1)
        assert mixed[:7] == batch[:7] and len(mixed) == 10
        info = algo.last_refresh
        assert info["step"] == step and len(set(info["candidates"])) == 8  # fresh candidates every step
        delta = brute_force_delta(model, batch[:7], algo.buffer.decode(info["candidates"]), 0.05)
        torch.testing.assert_close(torch.tensor(info["delta"]), torch.tensor(delta), rtol=1e-3, atol=1e-6)
        ranked = sorted(range(8), key=lambda i: -delta[i])
        assert delta[ranked[2]] - delta[ranked[3]] > 1e-5, "top-3 boundary too close to compare"
        assert refs_of(mixed[7:]) == [info["candidates"][i] for i in ranked[:3]]  # top 3 by Δ, distinct
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert algo.cache == [] and algo.refresh_count == 3


def test_per_step_with_a_small_top_k_fills_with_distinct_random_candidates(tiny, caplog):
    model, stream = tiny
    algo, ctx = start_task_1(model, stream, mir_mode="per_step", mir_candidate_size=2, mir_top_k=1)
    with caplog.at_level(logging.WARNING):
        for step in range(2):
            ctx.step = ctx.global_step = step
            mixed = algo.modify_batch(current_batch(stream, size=10), 1)
            info = algo.last_refresh
            # 3 candidates (raised from 2 to the replay count), the best one first, then the others in draw order.
            assert len(info["candidates"]) == 3 and info["top"] == [max(range(3), key=lambda i: info["delta"][i])]
            assert info["replayed"] == info["top"] + [i for i in range(3) if i not in info["top"]]
            assert refs_of(mixed[7:]) == [info["candidates"][i] for i in info["replayed"]]
            assert len(set(refs_of(mixed[7:]))) == 3
    notices = [r.message for r in caplog.records if "MIR (per_step)" in r.message]
    assert notices == [
        "MIR (per_step): mir_candidate_size=2 < 3 replay samples per step; 3 candidates are drawn so that the "
        "replayed samples are distinct.",
        "MIR (per_step): mir_top_k=1 < 3 replay samples per step; each step replays the 1 top-ranked candidates and "
        "2 other distinct candidates drawn uniformly."]


def test_state_dict_round_trip_restores_the_cache_and_the_draws(tiny):
    model, stream = tiny
    algo, ctx = start_task_1(model, stream, mir_refresh_interval=100)
    micro_step(algo, model, current_batch(stream))
    algo.after_backward(model)
    state = json.loads(json.dumps(algo.state_dict()))

    restored = MIR.from_config(state["hparams"])
    restored.load_state_dict(state)
    restored.buffer.attach_source(stream.tasks[1])
    restored.ctx = ctx
    assert restored.cache == algo.cache and restored.state_dict() == state
    for _ in range(3):
        a = algo.modify_batch(current_batch(stream, size=8), 1)
        b = restored.modify_batch(current_batch(stream, size=8), 1)
        assert [(s["episode_index"], s["frame_index"]) for s in a] == [(s["episode_index"], s["frame_index"]) for s in b]


def test_config_validation_and_defaults(synthetic_dataset, tmp_path, make_config):
    with pytest.raises(ConfigError, match="mir_top_k = 9 exceeds mir_candidate_size = 8"):
        MIR.from_config({"mir_top_k": 9, "mir_candidate_size": 8})
    for key, bad in (("mir_refresh_interval", 0), ("mir_candidate_size", 2.5), ("mir_virtual_lr", -1.0),
                     ("mir_virtual_lr", float("nan")), ("mir_lora_only", "yes")):
        with pytest.raises(ConfigError, match=key):
            MIR.from_config({key: bad})
    with pytest.raises(ConfigError, match=r"mir_mode must be one of amortized, per_step, got 'perstep'\. Did you mean"):
        MIR.from_config({"mir_mode": "perstep"})
    assert MIR.DEFAULT_VIRTUAL_LR == 1e-4
    cfg = make_config(tmp_path, synthetic_dataset, "continual_learning.replay.enabled=false",
                      "continual_learning.algorithm.name=mir", "continual_learning.algorithm.mir_virtual_lr=null")
    algo = build_cl_algorithm(cfg)
    assert isinstance(algo, MIR) and algo.virtual_lr == 1e-4
    assert algo.hparams == {"buffer_size_per_task": 500, "replay_batch_ratio": 0.3, "balanced_sampling": False,
                            "mir_mode": "amortized", "mir_refresh_interval": 200, "mir_candidate_size": 16, "mir_top_k": 8,
                            "mir_virtual_lr": 1e-4, "mir_lora_only": True}


class WithLoRA(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.base = torch.nn.Linear(3, 3)
        self.lora_A = torch.nn.Linear(3, 1, bias=False)
        self.frozen = torch.nn.Linear(3, 3).requires_grad_(False)


class FakeTask:
    base_dataset = None

    def __len__(self):
        return 1


def test_lora_only_uses_lora_parameters_or_logs_the_fallback_once(tiny, caplog):
    algo = MIR.from_config({})
    algo.on_task_start(CLContext(0, WithLoRA(), FakeTask(), None, None))
    assert algo.virtual_params == ["lora_A.weight"]
    algo = MIR.from_config({"mir_lora_only": False})
    algo.on_task_start(CLContext(0, WithLoRA(), FakeTask(), None, None))
    assert algo.virtual_params == ["base.weight", "base.bias", "lora_A.weight"]

    model, _ = tiny
    algo = MIR.from_config({})
    with caplog.at_level(logging.WARNING):
        for task in range(2):  # no on_task_end in between (a crashed task): hooks are replaced, never stacked
            algo.on_task_start(CLContext(task, model, FakeTask(), None, None))
    assert sum("no LoRA parameters" in r.message for r in caplog.records) == 1
    assert all(len(p._backward_hooks) == 1 for p in model.parameters())


def test_trainer_run_writes_every_checkpoint_and_resumes_exactly(synthetic_dataset, tmp_path, make_config):
    mir = ["continual_learning.replay.enabled=false", "continual_learning.algorithm.name=mir",
           "continual_learning.algorithm.buffer_size_per_task=16", "continual_learning.algorithm.mir_refresh_interval=2",
           "continual_learning.algorithm.mir_candidate_size=8", "continual_learning.algorithm.mir_top_k=4"]
    trainer = ContinualVLATrainer(make_config(tmp_path / "a", synthetic_dataset, *mir, steps=4))
    run = trainer.train()
    ckpts = run / "checkpoints"
    for k in range(3):
        assert (ckpts / f"task_{k}_id{k}_steps_{4 * (k + 1)}_pytorch_model.pt").is_file()
    state = json.loads((ckpts / "task_2_id2_steps_12_cl_state.json").read_text())["algorithm"]
    # Refreshed during the run; emptied at the task end, so the checkpoint holds nothing rank-specific.
    assert state["name"] == "mir" and state["mir"]["last_refresh"] == 10
    assert state["mir"]["cache"] == [] and trainer.algorithm.last_refresh["top"]
    assert all(not p._backward_hooks for p in trainer.unwrapped.parameters())

    # Killed after task 1, then resumed: the same weights and the same MIR state as the uninterrupted run.
    ContinualVLATrainer(make_config(tmp_path / "b", synthetic_dataset, *mir, steps=4)).train()
    for f in (tmp_path / "b" / "run" / "checkpoints").glob("task_2_*"):
        f.unlink()
    ContinualVLATrainer(make_config(tmp_path / "b", synthetic_dataset, *mir, "trainer.is_resume=true", steps=4)).train()
    a = torch.load(ckpts / "task_2_id2_steps_12_pytorch_model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "run" / "checkpoints" / "task_2_id2_steps_12_pytorch_model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    resumed = json.loads((tmp_path / "b" / "run" / "checkpoints" / "task_2_id2_steps_12_cl_state.json").read_text())
    assert resumed["algorithm"] == state
