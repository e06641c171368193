"""Task-conditioned checkpoints (per-task masks / parameter sets): loading, per-request task selection, evaluation."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from AlphaBrain.deployment.policy import InferencePolicy
from AlphaBrain.evaluation.cl_eval import evaluate_run
from AlphaBrain.evaluation.matrix import load_matrix
from AlphaBrain.model import task_conditioning
from AlphaBrain.model.task_conditioning import WeightMasks, conditioning_state
from AlphaBrain.runs import RunDir, load_run_model
from AlphaBrain.utils.errors import UserError

HEAD = "action_model.body.0.weight"  # the first layer of TinyVLA's MLP head


def conditioned_copy(run_dir, dest, owners_of):
    """A copy of `run_dir` whose task-end checkpoints carry WeightMasks `owners_of(position, shape)` on the head."""
    shutil.copytree(run_dir, dest)
    run = RunDir(dest)
    for ckpt in run.checkpoints():
        model = torch.load(ckpt.model_file, weights_only=True)
        masks = WeightMasks({HEAD: owners_of(ckpt.position, model[HEAD].shape)}, list(range(ckpt.position + 1)))
        meta, tensors = conditioning_state(masks)
        marker = json.loads(ckpt.prefix.with_name(ckpt.prefix.name + "_cl_state.json").read_text())
        marker["algorithm"].update(meta)
        tensor_file = ckpt.prefix.with_name(ckpt.prefix.name + "_cl_state.safetensors")
        old = load_file(str(tensor_file)) if tensor_file.exists() else {}
        save_file({**old, **tensors}, str(tensor_file))
        if tensor_file.name not in marker["files"]:
            marker["files"].append(tensor_file.name)
        ckpt.prefix.with_name(ckpt.prefix.name + "_cl_state.json").write_text(json.dumps(marker))
    return dest


def random_owners(position, shape):
    return torch.randint(0, position + 2, shape, generator=torch.Generator().manual_seed(position), dtype=torch.uint8)


@pytest.fixture(scope="module")
def masked_run(push_run, tmp_path_factory):
    return conditioned_copy(push_run, tmp_path_factory.mktemp("masked") / "r", random_owners)


def observation(loaded, instruction, seed=0):
    rng = np.random.default_rng(seed)
    spec = loaded.data_spec
    return {"images": [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(spec.num_cameras)],
            "state": rng.normal(size=spec.state_dim), "prompt": instruction}


def test_select_task_puts_that_tasks_mask_on_the_weights(masked_run):
    loaded = load_run_model(masked_run, "last")
    assert loaded.task_conditioned == "weight_masks" and RunDir(masked_run).task_conditioned() == "weight_masks"
    full = dict(loaded.model.named_parameters())[HEAD].detach().clone()
    owners = random_owners(2, full.shape)
    for position, (name, instruction) in enumerate(loaded.stream_tasks):
        for key in ({"task": name}, {"task": None, "instruction": instruction}):
            assert loaded.select_task(**key) == position
            keep = (owners >= 1) & (owners <= position + 1)
            assert torch.equal(dict(loaded.model.named_parameters())[HEAD], torch.where(keep, full, torch.zeros_like(full)))
    with pytest.raises(UserError, match="is not one this run trained on.*tasks: push_the_red"):
        loaded.select_task("push the red block up")


def test_a_task_the_checkpoint_has_not_trained_gets_the_model_as_trained(masked_run):
    loaded = load_run_model(masked_run, "task_0")
    full = dict(loaded.model.named_parameters())[HEAD].detach().clone()
    name0, name2 = loaded.stream_tasks[0][0], loaded.stream_tasks[2][0]
    assert loaded.select_task(name0) == 0
    assert not torch.equal(dict(loaded.model.named_parameters())[HEAD], full)
    assert loaded.select_task(name2) == task_conditioning.AS_TRAINED
    assert torch.equal(dict(loaded.model.named_parameters())[HEAD], full)


def test_a_batch_of_several_tasks_is_answered_per_task(masked_run):
    policy = InferencePolicy.from_loaded(load_run_model(masked_run, "last"))
    loaded = load_run_model(masked_run, "last")
    assert policy.metadata["task_conditioned"] == "weight_masks" and len(policy.metadata["tasks"]) == 3
    batch = [observation(loaded, text, seed=i) for i, (_, text) in enumerate(loaded.stream_tasks * 2)]
    batch[1]["task_name"] = loaded.stream_tasks[1][0]
    together = [r["actions"] for r in policy.infer_batch(batch)]
    alone = [policy.infer(obs)["actions"] for obs in batch]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="not one this run trained on"):
        policy.infer({**batch[0], "prompt": "do a backflip"})


def test_evaluation_runs_every_cell_with_its_own_task(push_run, masked_run, tmp_path, monkeypatch):
    selected = []
    real = WeightMasks.select
    monkeypatch.setattr(WeightMasks, "select", lambda self, model, position: selected.append(position)
                        or real(self, model, position))
    result = evaluate_run(masked_run, "synthetic_push3", trials=2, out_dir=tmp_path / "eval", max_steps=6)
    assert result["matrix"]["task_conditioned"] == "weight_masks"
    assert json.loads((tmp_path / "eval" / "matrix.json").read_text())["task_conditioned"] == "weight_masks"
    assert load_matrix(tmp_path / "eval").task_conditioned == "weight_masks"
    assert sorted(set(selected)) == [0, 1, 2]

    # Masks that keep every weight for every task: the same matrix as the run without them.
    everything = conditioned_copy(push_run, tmp_path / "all", lambda p, shape: torch.ones(shape, dtype=torch.uint8))
    for m in (1, 3):
        same = evaluate_run(everything, "synthetic_push3", trials=3, out_dir=tmp_path / f"all{m}", max_steps=12,
                            envs_per_worker=m)
        plain = evaluate_run(push_run, "synthetic_push3", trials=3, out_dir=tmp_path / f"plain{m}", max_steps=12,
                             envs_per_worker=m)
        assert same["matrix"]["success"] == plain["matrix"]["success"]
        assert plain["matrix"]["task_conditioned"] is None


def test_packnet_run_keeps_every_tasks_model_through_later_checkpoints(train_push, tmp_path):
    """End to end: a PackNet run, its checkpoints loaded by name, each task selected: task j's answers are the
    same from every checkpoint k >= j, so its matrix column is constant below the diagonal (BWT exactly 0)."""
    run = train_push(tmp_path, "pn", "continual_learning.algorithm.name=packnet", steps=4)
    policies = {k: InferencePolicy.from_loaded(load_run_model(run, f"task_{k}")) for k in range(3)}
    loaded = load_run_model(run, "last")
    for j, (name, text) in enumerate(loaded.stream_tasks):
        obs = {**observation(loaded, text, seed=j), "task_name": name}
        answers = [policies[k].infer(obs)["actions"] for k in range(j, 3)]
        assert all(np.array_equal(a, answers[0]) for a in answers[1:]), f"task {j} changed after it was trained"
    result = evaluate_run(run, "synthetic_push3", trials=2, out_dir=tmp_path / "eval", max_steps=12)
    assert result["matrix"]["task_conditioned"] == "weight_masks"
    success = np.array(result["matrix"]["success"], dtype=float)
    for j in range(3):
        assert len(set(success[j:, j])) == 1
    assert result["metrics"]["bwt"] == 0.0


def test_the_policy_server_answers_with_the_named_tasks_parameters(masked_run):
    from AlphaBrain.deployment.policy_client import PolicyClient, PolicyServerError
    from AlphaBrain.deployment.policy_server import PolicyServer

    loaded = load_run_model(masked_run, "last")
    local = InferencePolicy.from_loaded(load_run_model(masked_run, "last"))
    with PolicyServer(InferencePolicy.from_loaded(loaded), port=0).start_in_thread() as handle:
        with PolicyClient(port=handle.port, timeout=30) as client:
            meta = client.get_server_metadata()
            assert meta["task_conditioned"] == "weight_masks"
            assert meta["tasks"] == [name for name, _ in loaded.stream_tasks]
            for j, (name, _) in enumerate(loaded.stream_tasks):
                obs = {**observation(loaded, "an instruction the run never saw", seed=j), "task_name": name}
                np.testing.assert_array_equal(client.infer(obs)["actions"], local.infer(obs)["actions"])
            with pytest.raises(PolicyServerError, match="is not one this run trained on"):
                client.infer(observation(loaded, "do a backflip"))
