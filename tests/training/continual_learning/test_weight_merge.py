"""weight_merge: the merge rules on hand-made tensors, a 3-task run whose checkpoints are the merged models,
`start_from`, hyperparameter and backend checks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from AlphaBrain.training.continual_learning.algorithms import get_algorithm_class
from AlphaBrain.training.continual_learning.algorithms.dynamic_based import merging
from AlphaBrain.training.continual_learning.algorithms.dynamic_based.weight_merge import WeightMerge
from AlphaBrain.training.continual_learning.train import ContinualVLATrainer
from AlphaBrain.utils.errors import ConfigError


# ---------------------------------------------------------------- merge rules
def test_average_of_identical_task_vectors_is_the_vector_bitwise():
    tau = torch.randn(7, 5, generator=torch.Generator().manual_seed(0)) * 1e-3
    for n in (1, 2, 3, 7):
        assert torch.equal(merging.average([tau] * n), tau)
    assert torch.equal(merging.merge([tau] * 3, "average"), tau)


def test_ties_with_density_one_on_identical_task_vectors_is_the_vector_bitwise():
    tau = torch.randn(64, generator=torch.Generator().manual_seed(1))
    tau[::5] = 0.0  # zeros stay zero: no task votes for them
    for n in (1, 3):
        assert torch.equal(merging.ties([tau] * n, density=1.0), tau)


def test_ties_on_a_hand_computed_example():
    taus = [torch.tensor([0.5, -0.1, 0.3, -0.8]),
            torch.tensor([-0.6, 0.25, 0.1, -0.2]),
            torch.tensor([0.4, 0.05, -0.7, 0.1])]
    # Trim to ceil(0.5 * 4) = 2 entries each, by magnitude.
    trimmed = [merging.trim(t, 0.5) for t in taus]
    expected = [[0.5, 0.0, 0.0, -0.8], [-0.6, 0.25, 0.0, 0.0], [0.4, 0.0, -0.7, 0.0]]
    assert all(torch.equal(t, torch.tensor(e)) for t, e in zip(trimmed, expected))
    # Sums 0.3, 0.25, -0.7, -0.8: signs +, +, -, -.
    assert merging.elect_sign(trimmed).tolist() == [1.0, 1.0, -1.0, -1.0]
    # Entry 0: only the positive values 0.5 and 0.4 agree (the -0.6 is dropped): mean 0.45.
    torch.testing.assert_close(merging.ties(taus, 0.5), torch.tensor([0.45, 0.25, -0.7, -0.8]), rtol=0, atol=1e-7)


def test_ties_entry_where_no_value_agrees_is_zero_and_ties_at_the_threshold_are_kept():
    # Entry 0: +1 and -1 sum to 0, so no sign is elected and nothing agrees.
    merged = merging.ties([torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 3.0])], density=1.0)
    assert merged.tolist() == [0.0, 2.5]
    # density 0.25 of 4 entries keeps 1, but -2 and 2 share the largest magnitude: both are kept.
    assert merging.trim(torch.tensor([1.0, -2.0, 2.0, 0.5]), 0.25).tolist() == [0.0, -2.0, 2.0, 0.0]


@pytest.mark.parametrize("rule", merging.MERGE_RULES)
def test_scaling_multiplies_the_merged_task_vector(rule):
    g = torch.Generator().manual_seed(2)
    base = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)}
    taus = [{k: torch.randn(v.shape, generator=g) for k, v in base.items()} for _ in range(3)]
    one = merging.merged_parameters(base, taus, rule, 1.0, 0.5)
    half = merging.merged_parameters(base, taus, rule, 0.5, 0.5)
    for k in base:
        delta = merging.merge([t[k] for t in taus], rule, 0.5)
        assert torch.equal(one[k], base[k] + delta)
        torch.testing.assert_close(half[k], base[k] + 0.5 * delta, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- a 3-task run
def trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def run_recording(make_config, dataset, root, *extra: str):
    """A 3-task tiny run; the trainable weights right after each on_task_start and right before each merge."""
    cfg = make_config(root, dataset, "continual_learning.replay.enabled=false",
                      "continual_learning.algorithm.name=weight_merge", *extra, steps=3)
    trainer = ContinualVLATrainer(cfg)
    trainer.prepare_training()
    algo, starts, ends = trainer.algorithm, [], []
    task_start, task_end = algo.on_task_start, algo.on_task_end

    def on_task_start(ctx):
        task_start(ctx)
        starts.append(trainable(ctx.model))

    def on_task_end(ctx):
        ends.append(trainable(ctx.model))
        task_end(ctx)

    algo.on_task_start, algo.on_task_end = on_task_start, on_task_end
    return trainer.train(), algo, starts, ends


@pytest.mark.parametrize("extra", [(), ("continual_learning.algorithm.merge_rule=ties",
                                        "continual_learning.algorithm.ties_density=0.5",
                                        "continual_learning.algorithm.scaling=0.8")], ids=["average", "ties"])
def test_each_task_end_checkpoint_is_the_merge_of_the_saved_task_vectors(extra, make_config, synthetic_dataset,
                                                                          tmp_path):
    run, algo, starts, ends = run_recording(make_config, synthetic_dataset, tmp_path, *extra)
    h = algo.hparams
    base = starts[0]
    ckpt = run / "checkpoints"
    for k, steps in enumerate((3, 6, 9)):
        prefix = ckpt / f"task_{k}_id{k}_steps_{steps}"
        weights = torch.load(f"{prefix}_pytorch_model.pt", weights_only=True)
        tensors = load_file(f"{prefix}_cl_state.safetensors")
        state = json.loads(open(f"{prefix}_cl_state.json").read())["algorithm"]
        assert state["tasks"] == list(range(k + 1)) and state["hparams"] == h
        saved_base = {n[len("base."):]: t for n, t in tensors.items() if n.startswith("base.")}
        taus = [{n: tensors[f"task{j}.tau.{n}"] for n in saved_base} for j in range(k + 1)]
        assert len(tensors) == len(saved_base) * (k + 2), "unexpected keys in the tensor state"
        assert saved_base.keys() == base.keys() and all(torch.equal(saved_base[n], base[n]) for n in base)
        # τ_k = θ_end − θ_base, with θ_end the weights before the merge.
        assert all(torch.equal(taus[k][n], ends[k][n] - base[n]) for n in base)
        merged = merging.merged_parameters(saved_base, taus, h["merge_rule"], h["scaling"], h["ties_density"])
        differ = [n for n in base if not torch.equal(weights[n], merged[n])]
        assert not differ, f"task {k}: checkpoint is not θ_base + λ·merge(τ): {differ[:3]}"
    if h["start_from"] == "merged":  # the default: task k+1 starts where task k's merge left the weights
        final = torch.load(ckpt / "task_0_id0_steps_3_pytorch_model.pt", weights_only=True)
        assert all(torch.equal(starts[1][n], final[n]) for n in base)
        assert any(not torch.equal(starts[1][n], base[n]) for n in base)


def test_start_from_base_resets_every_task_to_theta_base(make_config, synthetic_dataset, tmp_path):
    _, algo, starts, ends = run_recording(make_config, synthetic_dataset, tmp_path,
                                          "continual_learning.algorithm.start_from=base")
    base = starts[0]
    for k, start in enumerate(starts):
        assert all(torch.equal(start[n], base[n]) for n in base), f"task {k} did not start from θ_base"
    assert all(any(not torch.equal(end[n], base[n]) for n in base) for end in ends), "a task changed nothing"


# ---------------------------------------------------------------- checks
@pytest.mark.parametrize("key,value,message", [
    ("merge_rule", "mean", r"merge_rule must be one of average, ties, got 'mean'"),
    ("merge_rule", "Ties", r"merge_rule must be one of average, ties, got 'Ties'.*Did you mean \"ties\""),
    ("scaling", 0, r"scaling must be a finite number > 0, got 0\. It is λ"),
    ("scaling", True, r"scaling must be a finite number > 0, got True"),
    ("ties_density", 0.0, r"ties_density must be a finite number in \(0, 1\], got 0\.0"),
    ("ties_density", 1.5, r"ties_density must be a finite number in \(0, 1\], got 1\.5"),
    ("start_from", "scratch", r"start_from must be one of merged, base, got 'scratch'"),
    ("density", 0.5, r'Unknown hyperparameter "continual_learning\.algorithm\.density".*Did you mean "ties_density"'),
])
def test_bad_hyperparameters_name_the_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        get_algorithm_class("weight_merge").from_config({key: value})


def test_backends_with_a_master_copy_of_the_weights_are_refused():
    from AlphaBrain.training.trainer_utils.backends import AccelerateBackend, DeepSpeedBackend, check_algorithm

    trainer = OmegaConf.create({"gradient_accumulation_steps": 1, "gradient_clipping": None})
    algo = WeightMerge()
    for backend in (AccelerateBackend(SimpleNamespace(distributed_type="FSDP"), trainer),
                    DeepSpeedBackend({"zero_optimization": {"stage": 2}}, trainer, micro_batch_size=4)):
        with pytest.raises(ConfigError, match=r'"weight_merge".*writes the weights itself.*plain DDP'):
            check_algorithm(algo, backend)
    check_algorithm(algo, AccelerateBackend(SimpleNamespace(distributed_type="MULTI_CPU"), trainer))


def test_resume_with_other_trainable_parameters_or_broken_tensors_is_refused():
    saved = WeightMerge()
    saved.on_task_start(SimpleNamespace(model=torch.nn.Linear(3, 2)))
    saved.on_task_end(SimpleNamespace(model=torch.nn.Linear(3, 2), task_id=0))
    state, tensors = saved.state_dict(), saved.tensor_state_dict()
    assert sorted(tensors) == ["base.bias", "base.weight", "task0.tau.bias", "task0.tau.weight"]

    resumed = WeightMerge()
    resumed.load_state_dict(state)
    resumed.load_tensor_state_dict(tensors)
    assert resumed.tensor_state_dict().keys() == tensors.keys()
    with pytest.raises(ConfigError, match=r"weight has shape \(2, 4\) now, \(2, 3\) stored"):
        resumed.on_task_start(SimpleNamespace(model=torch.nn.Linear(4, 2)))
    frozen = torch.nn.Linear(3, 2)
    frozen.bias.requires_grad_(False)
    with pytest.raises(ConfigError, match=r"1 stored but not trainable now \(e\.g\. bias\)"):
        resumed.on_task_start(SimpleNamespace(model=frozen))

    broken = WeightMerge()
    broken.load_state_dict(state)
    with pytest.raises(ConfigError, match=r"weight_merge tensors are incomplete.*task0"):
        broken.load_tensor_state_dict({k: v for k, v in tensors.items() if k != "task0.tau.bias"})


@pytest.mark.slow  # three trainings of 3 x 6 steps: about 10 s alone, more on a loaded machine
def test_crash_inside_a_task_then_resume_with_start_from_base_and_ties_is_bitwise_identical(make_config,
                                                                                             synthetic_dataset, tmp_path):
    # test_mid_task.py covers the defaults; here the task start resets the weights and the merge is TIES.
    from test_mid_task import Crash, assert_same_run, crash_at, mid_config

    extra = ("continual_learning.algorithm.start_from=base", "continual_learning.algorithm.merge_rule=ties")
    full = ContinualVLATrainer(mid_config(make_config, tmp_path / "a", synthetic_dataset, "weight_merge", *extra)).train()
    trainer = ContinualVLATrainer(mid_config(make_config, tmp_path / "b", synthetic_dataset, "weight_merge", *extra))
    trainer.prepare_training()
    crash_at(trainer, 11)  # inside task 2, after its mid-task checkpoint of step 10
    with pytest.raises(Crash):
        trainer.train()
    resumed = ContinualVLATrainer(mid_config(make_config, tmp_path / "b", synthetic_dataset, "weight_merge", *extra,
                                             "trainer.is_resume=true"))
    resumed.prepare_training()
    assert resumed.mid_task_resume.ckpt.global_step == 10
    resumed.train()
    assert_same_run(full, tmp_path / "b" / "run")


@pytest.mark.slow
def test_lora_run_merges_the_adapters_and_head_and_its_checkpoint_holds_the_merge(tmp_path):
    """qwengr00t_tiny with LoRA, 2 tasks: τ covers exactly the trainable LoRA matrices and the head, nothing frozen."""
    from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset
    from AlphaBrain.model import build_framework
    from AlphaBrain.model.lora import apply_lora
    from AlphaBrain.runs import RunDir

    data = write_synthetic_dataset(tmp_path / "data", num_tasks=2, episodes_per_task=2, episode_length=12,
                                   image_size=(32, 32), cameras=("image", "wrist_image"), state_dim=8, action_dim=7,
                                   seed=0)
    cfg = load_run_config([BASE_CONFIG, model_overlay_path("qwengr00t_tiny")], [
        f"run_root_dir={tmp_path}", "run_id=lora", f"continual_learning.task_sequence={data}",
        "continual_learning.steps_per_task=2", "datasets.vla_data.per_device_batch_size=2",
        "continual_learning.replay.enabled=false", "continual_learning.algorithm.name=weight_merge",
        "continual_learning.algorithm.merge_rule=ties", "continual_learning.algorithm.ties_density=0.5"])
    trainer = ContinualVLATrainer(cfg)
    trainer.train()
    names = set(trainable(trainer.unwrapped))
    assert names and all("lora_A" in n or "lora_B" in n or not n.startswith("vlm.") for n in names)
    algo, run = trainer.algorithm, RunDir(tmp_path / "lora")
    last = run.checkpoints()[-1]
    tensors = load_file(f"{last.prefix}_cl_state.safetensors")
    assert {k.split(".", 1)[1] for k in tensors if k.startswith("base.")} == names
    assert {k for k in tensors if ".tau." in k} == {f"task{t}.tau.{n}" for t in (0, 1) for n in names}

    fresh = apply_lora(build_framework(cfg, trainer.stream.base_dataset.data_spec), cfg.lora)
    run.restore_weights(fresh, last, lora=True)
    merged = algo.merged()
    restored = trainable(fresh)
    assert restored.keys() == names and all(torch.equal(restored[n], merged[n]) for n in names)
