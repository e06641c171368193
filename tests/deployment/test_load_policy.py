"""load_policy on a real (tiny) trained run, in process and behind the server and its CLI."""

import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from AlphaBrain.config.loader import BASE_CONFIG, load_run_config, model_overlay_path
from AlphaBrain.dataloader import Normalizer
from AlphaBrain.deployment.policy import load_policy
from AlphaBrain.runs import load_run_model, resolve_checkpoint
from AlphaBrain.deployment.policy_client import PolicyClient, PolicyServerError
from AlphaBrain.deployment.policy_server import PolicyServer, main
from AlphaBrain.utils.errors import UserError

INSTRUCTION = "push the red block left"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """3 tasks x 2 steps on a LIBERO-shaped synthetic dataset: 2 cameras, state 8, action 7 (gripper last)."""
    from AlphaBrain.dataloader.synthetic import write_synthetic_dataset
    from AlphaBrain.training.continual_learning.train import ContinualVLATrainer

    root = tmp_path_factory.mktemp("deploy")
    data = write_synthetic_dataset(root / "data", num_tasks=3, episodes_per_task=2, episode_length=12,
                                   image_size=(32, 32), state_dim=8, action_dim=7,
                                   cameras=("image", "wrist_image"), seed=0)
    cfg = load_run_config(
        [BASE_CONFIG, model_overlay_path("tiny")],
        [f"run_root_dir={root / 'runs'}", "run_id=served", f"continual_learning.task_sequence={data}",
         "continual_learning.steps_per_task=2", "datasets.vla_data.per_device_batch_size=4",
         "framework.tiny.image_size=32", "framework.tiny.vision_channels=[16,16,16]",
         "framework.tiny.vision_feature_channels=8", "framework.tiny.vision_dim=64"],
    )
    return ContinualVLATrainer(cfg).train()


@pytest.fixture(scope="module")
def policy(trained_run):
    return load_policy(trained_run, "last")


def _stats(run):
    return json.loads((run / "dataset_statistics.json").read_text())["synthetic"]


def _raw_obs(run, seed=0, size=32):
    rng = np.random.default_rng(seed)
    st = _stats(run)["state"]
    state = rng.uniform(st["q01"], st["q99"])  # raw units, inside the training range
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(2)]
    return {"images": images, "state": state, "prompt": INSTRUCTION}


def test_metadata_describes_the_run(policy, trained_run):
    meta = policy.metadata
    assert meta["run_id"] == "served" and meta["checkpoint"].startswith("task_2_id2_steps_")
    assert (meta["action_horizon"], meta["action_dim"], meta["state_dim"], meta["num_cameras"]) == (8, 7, 8, 2)
    assert meta["image_size"] == [32, 32] and len(meta["camera_keys"]) == 2


def test_infer_returns_a_raw_action_chunk_with_a_binary_gripper(policy, trained_run):
    obs = _raw_obs(trained_run)
    reply = policy.infer(obs)
    actions = reply["actions"]
    assert actions.dtype == np.float32 and actions.shape == (8, 7)
    assert reply["policy_timing"]["infer_ms"] > 0
    act = _stats(trained_run)["action"]
    mask = np.asarray(act["mask"])
    assert mask.tolist() == [True] * 6 + [False]  # the synthetic gripper axis is binary
    assert set(np.unique(actions[:, ~mask])) <= {0.0, 1.0}
    lo, hi = np.asarray(act["q01"])[mask], np.asarray(act["q99"])[mask]
    assert np.all(actions[:, mask] >= lo - 1e-6) and np.all(actions[:, mask] <= hi + 1e-6)
    # exactly the manual pipeline: normalize state -> predict_action -> unnormalize
    loaded = load_run_model(trained_run, "last")
    norm = Normalizer(_stats(trained_run))
    expected = norm.unnormalize_action(loaded.model.predict_action(
        [{"image": obs["images"], "state": norm.normalize_state(obs["state"]), "lang": INSTRUCTION}])[0])
    np.testing.assert_allclose(actions, expected, atol=1e-6)


def test_infer_batch_gives_the_replies_of_one_call_each(policy, trained_run):
    batch = [_raw_obs(trained_run, seed=s) for s in range(5)]
    replies = policy.infer_batch(batch)
    assert len(replies) == 5
    for obs, reply in zip(batch, replies):
        # one forward over 5 rows may round differently from 5 forwards of one (BLAS kernels), nothing more
        np.testing.assert_allclose(reply["actions"], policy.infer(obs)["actions"], atol=1e-5)
    with pytest.raises(ValueError, match=r"^request 1 of 2: missing 'prompt'"):
        policy.infer_batch([batch[0], {k: v for k, v in batch[1].items() if k != "prompt"}])
    assert policy.infer_batch([]) == []


def test_openpi_style_keys_and_other_image_sizes_are_accepted(policy, trained_run):
    obs = _raw_obs(trained_run, seed=1)
    openpi = {"observation/image": obs["images"][0], "observation/wrist_image": obs["images"][1],
              "observation/state": obs["state"].astype(np.float32), "prompt": INSTRUCTION}
    np.testing.assert_allclose(policy.infer(openpi)["actions"], policy.infer(obs)["actions"], atol=1e-5)
    stacked = dict(obs, images=np.stack(obs["images"]))
    np.testing.assert_array_equal(policy.infer(stacked)["actions"], policy.infer(obs)["actions"])
    big = _raw_obs(trained_run, seed=1, size=64)  # resized to the model's input
    assert policy.infer(big)["actions"].shape == (8, 7)


@pytest.mark.parametrize("change, message", [
    (lambda o: o.update(state=np.zeros(5)), "got 5 values, this policy takes state_dim=8"),
    (lambda o: o.update(images=o["images"][:1]), "got 1 camera image"),
    (lambda o: o.pop("prompt"), "missing 'prompt'"),
    (lambda o: o.pop("state"), "missing 'state'"),
    (lambda o: o.pop("images"), "missing camera images"),
    (lambda o: o.update(images=[im.astype(np.float32) for im in o["images"]]), "uint8"),
    (lambda o: o.update(images=[im.transpose(2, 0, 1) for im in o["images"]]), "channels-first"),
    (lambda o: o.update(state=np.full(8, np.nan)), "NaN"),
    (lambda o: o.update(prompt=3), "expected the instruction as a str"),
    (lambda o: (o.pop("images"), o.update({"observation/image": np.zeros((8, 8, 3), np.uint8)})),
     "missing 'observation/wrist_image'"),
])
def test_bad_requests_raise_value_errors_that_say_what_to_fix(policy, trained_run, change, message):
    obs = _raw_obs(trained_run)
    change(obs)
    with pytest.raises(ValueError, match=re.escape(message)):
        policy.infer(obs)


def test_checkpoint_names_paths_and_positions_resolve(trained_run):
    ckpts = sorted((trained_run / "checkpoints").glob("*_pytorch_model.pt"))
    first, last = ckpts[0], ckpts[-1]
    prefix = first.name[: -len("_pytorch_model.pt")]
    assert resolve_checkpoint(trained_run, "last") == last.resolve()
    assert resolve_checkpoint(trained_run, "task_0") == first.resolve()
    assert resolve_checkpoint(trained_run, prefix) == first.resolve()
    assert resolve_checkpoint(trained_run, f"{prefix}_cl_state.json") == first.resolve()
    assert resolve_checkpoint(trained_run, str(first)) == first.resolve()
    assert resolve_checkpoint(trained_run, f"checkpoints/{first.name}") == first.resolve()
    with pytest.raises(UserError, match=r'Unknown checkpoint "task_0_id0_steps_99".*Did you mean.*Available: task_0'):
        resolve_checkpoint(trained_run, "task_0_id0_steps_99")
    with pytest.raises(UserError, match="No complete checkpoint for task position 7"):
        resolve_checkpoint(trained_run, "task_7")
    assert load_policy(trained_run, "task_0").metadata["checkpoint"] == prefix


def test_missing_statistics_or_config_is_a_user_error_with_the_fix(trained_run, tmp_path):
    copy = tmp_path / "served"
    shutil.copytree(trained_run, copy)
    first = sorted((copy / "checkpoints").glob("task_0_*_cl_state.json"))[0]
    first.unlink()  # as after a crash mid-save
    with pytest.raises(UserError, match="is incomplete"):
        resolve_checkpoint(copy, first.name.replace("_cl_state.json", ""))
    (copy / "dataset_statistics.json").unlink()
    with pytest.raises(UserError) as info:
        load_policy(copy, "last")
    text = str(info.value)
    assert "python scripts/run_continual_learning_scripts/compute_dataset_statistics.py" in text
    assert f"--config {copy / 'config.yaml'} --out {copy / 'dataset_statistics.json'}" in text
    (copy / "config.yaml").unlink()
    with pytest.raises(UserError, match="not a training run dir"):
        load_policy(copy, "last")


def test_serving_needs_no_dataset_thanks_to_policy_spec(trained_run, tmp_path):
    from AlphaBrain.utils.errors import DatasetError

    copy = tmp_path / "moved"
    shutil.copytree(trained_run, copy)
    spec = json.loads((copy / "policy_spec.json").read_text())
    assert spec["data_spec"]["num_cameras"] == 2 and spec["camera_keys"] == ["observation.images.image", "observation.images.wrist_image"]
    data_dir = str(load_run_model(trained_run).cfg.continual_learning.task_sequence)
    config = copy / "config.yaml"
    config.write_text(config.read_text().replace(data_dir, str(tmp_path / "gone")))  # the data is not on this machine
    loaded = load_run_model(copy, "last")
    assert loaded.data_spec.action_dim == 7 and loaded.camera_keys == spec["camera_keys"]
    (copy / "policy_spec.json").unlink()  # a run from before policy_spec.json: falls back to the dataset
    with pytest.raises(DatasetError, match="no policy_spec.json"):
        load_run_model(copy, "last")


def test_foreign_weights_are_a_user_error(trained_run, tmp_path):
    import torch

    bad = tmp_path / "other_pytorch_model.pt"
    torch.save({"not.a.layer": torch.zeros(1)}, bad)
    with pytest.raises(UserError, match="does not fit the TinyVLA model.*another architecture"):
        load_policy(trained_run, str(bad))


def test_served_policy_answers_and_reports_bad_requests(policy, trained_run):
    with PolicyServer(policy, port=0).start_in_thread() as handle, PolicyClient(port=handle.port, timeout=10) as client:
        assert client.get_server_metadata() == policy.metadata
        obs = _raw_obs(trained_run, seed=2)
        reply = client.infer(obs)
        np.testing.assert_allclose(reply["actions"], policy.infer(obs)["actions"], atol=1e-6)
        with pytest.raises(PolicyServerError, match="this policy takes state_dim=8"):
            client.infer(dict(obs, state=np.zeros(3)))
        assert client.infer(obs)["actions"].shape == (8, 7)  # still serving


def test_cli_rejects_bad_input_before_loading(tmp_path, capsys):
    assert main(["--run-dir", str(tmp_path), "--port", "0"]) == 2
    assert "not a training run dir" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "--checkpoint" in capsys.readouterr().out


def test_cli_serves_until_terminated(trained_run):
    proc = subprocess.Popen(
        [sys.executable, "-m", "AlphaBrain.deployment.policy_server", "--run-dir", str(trained_run),
         "--checkpoint", "task_1", "--port", "0", "--torch-threads", "1"],
        stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    log, port, deadline = [], None, time.monotonic() + 60
    try:
        while port is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                log.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                break
            match = re.search(r"listening on ws://127\.0\.0\.1:(\d+)", log[-1])
            port = int(match.group(1)) if match else None
        assert port is not None, "".join(log)
        with PolicyClient(port=port, timeout=10) as client:
            assert client.get_server_metadata()["checkpoint"].startswith("task_1_id1_steps_")
            assert client.infer(_raw_obs(trained_run))["actions"].shape == (8, 7)
    finally:
        proc.terminate()
        code = proc.wait(timeout=20)
    assert code == 0
    while not lines.empty():
        log.append(lines.get())
    text = "".join(log)
    assert "loaded run served checkpoint task_1_id1_steps_" in text and "closed (code 1000) after 1 replies" in text
