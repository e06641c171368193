"""Server-side batching (--batch-wait-ms): same answers as unbatched serving, fewer forwards, no blocked loop."""

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from AlphaBrain.deployment.policy_client import PolicyClient, PolicyServerError, healthz
from AlphaBrain.deployment.policy_server import PolicyServer, build_arg_parser


class BatchEchoPolicy:
    """actions = a deterministic function of the state; `infer_batch` is one call, like a batched forward."""

    metadata = {"action_horizon": 4, "action_dim": 3, "state_dim": 3, "image_size": [8, 8], "run_id": "dummy"}

    def __init__(self, gate: threading.Event | None = None):
        self.gate = gate  # when set up, every forward waits for it: a slow forward
        self.batch_sizes: list[int] = []

    def infer(self, obs):
        return self.infer_batch([obs])[0]

    def infer_batch(self, batch):
        if self.gate is not None:
            self.gate.wait(10)
        self.batch_sizes.append(len(batch))
        replies = []
        for obs in batch:
            state = np.asarray(obs["state"], np.float32)
            if state.shape != (3,):
                raise ValueError(f"'state': got {state.size} values, this policy takes state_dim=3.")
            replies.append({"actions": np.outer(np.arange(1, 5, dtype=np.float32), state) + len(obs["prompt"])})
        return replies


def _obs(client: int, k: int):
    return {"state": np.array([client, k, client * k], np.float32), "prompt": f"client {client}"}


def _serve_all(handle, clients=8, requests=5):
    """Every client in its own thread, each with its own connection, all requests in flight together."""
    barrier = threading.Barrier(clients)

    def one(c):
        with PolicyClient(port=handle.port, timeout=10) as client:
            barrier.wait(10)
            return [client.infer(_obs(c, k))["actions"] for k in range(requests)]

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(clients)))


def test_batched_serving_gives_the_unbatched_answers_with_fewer_forwards():
    answers, stats = {}, {}
    for wait_ms in (0.0, 20.0):
        server = PolicyServer(BatchEchoPolicy(), port=0, batch_wait_ms=wait_ms)
        with server.start_in_thread() as handle:
            answers[wait_ms] = _serve_all(handle)
            stats[wait_ms] = server.stats
    for unbatched, batched in zip(answers[0.0], answers[20.0]):
        assert all(np.array_equal(a, b) for a, b in zip(unbatched, batched))
    assert stats[0.0]["requests"] == stats[0.0]["forwards"] == 40 and stats[0.0]["largest_batch"] == 1
    assert stats[20.0]["requests"] == 40 and stats[20.0]["forwards"] < 40 and stats[20.0]["largest_batch"] > 1


def test_pipelined_requests_of_one_client_share_a_forward_and_errors_stay_per_request():
    policy = BatchEchoPolicy()
    server = PolicyServer(policy, port=0, batch_wait_ms=50.0)
    with server.start_in_thread() as handle, PolicyClient(port=handle.port, timeout=10) as client:
        batch = [_obs(1, k) for k in range(6)]
        replies = client.infer_batch(batch)
        assert [np.array_equal(r["actions"], client.infer(o)["actions"]) for r, o in zip(replies, batch)] == [True] * 6
        assert policy.batch_sizes[0] == 6
        bad = {"state": np.zeros(2, np.float32), "prompt": "x"}
        with pytest.raises(PolicyServerError, match="got 2 values"):
            client.infer_batch([_obs(1, 0), bad, _obs(1, 2)])
        assert client.infer(_obs(2, 2))["actions"].shape == (4, 3)  # the connection is still in step
        conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=5)
        conn.request("GET", "/stats")
        stats = json.loads(conn.getresponse().read())
        assert stats["batch_wait_ms"] == 50.0 and stats["forwards"] < stats["requests"]


def test_a_slow_forward_does_not_block_health_checks_or_new_connections():
    gate = threading.Event()
    server = PolicyServer(BatchEchoPolicy(gate), port=0, batch_wait_ms=5.0)
    with server.start_in_thread() as handle:
        with ThreadPoolExecutor(1) as pool:
            with PolicyClient(port=handle.port, timeout=10) as busy:
                pending = pool.submit(busy.infer, _obs(1, 1))
                while server.stats["requests"] < 1:  # the forward is under way (waiting on the gate)
                    threading.Event().wait(0.01)
                assert healthz("127.0.0.1", handle.port, timeout=2.0)
                with PolicyClient(port=handle.port, timeout=5) as other:  # handshake + metadata meanwhile
                    assert other.get_server_metadata()["run_id"] == "dummy"
                assert not pending.done()
                gate.set()
                assert pending.result(10)["actions"].shape == (4, 3)


def test_batch_wait_ms_must_not_be_negative(capsys):
    with pytest.raises(SystemExit):
        build_arg_parser().parse_args(["--run-dir", "x", "--batch-wait-ms", "-1"])
    assert "--batch-wait-ms must be a number >= 0, got '-1'" in capsys.readouterr().err
