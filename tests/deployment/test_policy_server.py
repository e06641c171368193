"""The websocket server and client over a dummy policy (no model): protocol, errors, robustness."""

import http.client
import socket
import threading

import numpy as np
import pytest
from websockets.sync.client import connect

from AlphaBrain.deployment import msgpack_numpy as mn
from AlphaBrain.deployment.policy_client import (
    PolicyClient,
    PolicyServerError,
    PolicyServerUnavailable,
    healthz,
    wait_for_server,
)
from AlphaBrain.deployment.policy_server import (
    PolicyServer,
    PortInUseError,
    check_port_free,
)


class EchoPolicy:
    """actions = the state repeated over a 4-step chunk; mirrors how a real policy validates input."""

    metadata = {"action_horizon": 4, "action_dim": 3, "state_dim": 3, "image_size": [8, 8], "run_id": "dummy"}

    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def infer(self, obs):
        with self.lock:
            self.calls += 1
        if obs.get("prompt") == "crash":
            raise RuntimeError("the model exploded")
        if "state" not in obs:
            raise ValueError("missing 'state'")
        state = np.asarray(obs["state"], np.float32)
        if state.shape != (3,):
            raise ValueError(f"'state': got {state.size} values, this policy takes state_dim=3.")
        return {"actions": np.tile(state, (4, 1)), "prompt_seen": obs.get("prompt", "")}


def _raw(handle):
    """A bare websocket connection (no client-side conveniences); returns (connection, metadata)."""
    ws = connect(handle.url, compression=None, max_size=None, proxy=None, open_timeout=10)
    return ws, mn.unpackb(ws.recv(timeout=10))


def _obs(x=1.0, prompt="go"):
    return {"state": np.array([x, 2 * x, 3 * x], np.float32), "prompt": prompt,
            "images": [np.zeros((8, 8, 3), np.uint8)]}


@pytest.fixture
def server():
    policy = EchoPolicy()
    handle = PolicyServer(policy, port=0).start_in_thread()
    handle.policy = policy
    yield handle
    handle.stop()


def test_metadata_on_connect_and_infer_round_trip(server):
    assert server.port > 0 and server.host == "127.0.0.1"
    with PolicyClient(port=server.port, timeout=10) as client:
        assert client.get_server_metadata() == EchoPolicy.metadata
        reply = client.infer(_obs(2.0, "push"))
    assert reply["actions"].dtype == np.float32 and reply["actions"].shape == (4, 3)
    np.testing.assert_array_equal(reply["actions"][-1], [2.0, 4.0, 6.0])
    assert reply["prompt_seen"] == "push"
    assert reply["server_timing"]["infer_ms"] >= 0


def test_explicit_metadata_overrides_the_policys():
    with PolicyServer(EchoPolicy(), port=0, metadata={"custom": np.int64(3)}).start_in_thread() as handle:
        with PolicyClient(port=handle.port, timeout=10) as client:
            assert client.get_server_metadata() == {"custom": 3}


def test_garbage_bytes_get_a_text_error_and_the_connection_keeps_serving(server):
    ws, _ = _raw(server)
    try:
        for bad, expected in [
            (b"\xc1\xc1\xc1 not msgpack", "malformed request"),
            (mn.packb(42), "expected a msgpack map"),
            ("a text frame", "expected a binary msgpack frame"),
            (mn.packb({"prompt": "no state"}), "missing 'state'"),
        ]:
            ws.send(bad)
            reply = ws.recv(timeout=10)
            assert isinstance(reply, str) and expected in reply, reply
        ws.send(mn.packb(_obs(1.0)))
        reply = ws.recv(timeout=10)
        assert isinstance(reply, bytes)
        np.testing.assert_array_equal(mn.unpackb(reply)["actions"][0], [1.0, 2.0, 3.0])
    finally:
        ws.close()


def test_error_reply_raises_policy_server_error_and_client_stays_usable(server):
    with PolicyClient(port=server.port, timeout=10) as client:
        with pytest.raises(PolicyServerError, match="state_dim=3"):
            client.infer({"state": np.zeros(5, np.float32), "prompt": "x"})
        with pytest.raises(PolicyServerError) as info:
            client.infer(_obs(prompt="crash"))
        assert "the model exploded" in info.value.message and "Traceback" not in info.value.message
        assert isinstance(info.value, RuntimeError)  # what openpi's client raises, for callers catching that
        assert client.infer(_obs(3.0))["actions"][0, 0] == 3.0


def test_control_messages_are_acknowledged(server):
    ws, _ = _raw(server)
    ws.send(mn.packb({"__ctrl__": "episode_start", "__task__": "t"}))
    assert mn.unpackb(ws.recv(timeout=10)) == {"__ack__": "episode_start"}
    ws.close()
    assert server.policy.calls == 0


def test_concurrent_clients_get_their_own_answers(server):
    errors, results = [], {}

    def run(k):
        try:
            with PolicyClient(port=server.port, timeout=10) as client:
                results[k] = [float(client.infer(_obs(k * 100 + i))["actions"][0, 0]) for i in range(10)]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert results == {k: [float(k * 100 + i) for i in range(10)] for k in range(3)}


def test_a_second_client_is_served_while_the_first_is_connected(server):
    with PolicyClient(port=server.port, timeout=10) as first, PolicyClient(port=server.port, timeout=10) as second:
        assert first.infer(_obs(1.0))["actions"][0, 0] == 1.0
        assert second.infer(_obs(2.0))["actions"][0, 0] == 2.0
        assert first.infer(_obs(3.0))["actions"][0, 0] == 3.0


def test_client_vanishing_mid_episode_does_not_hurt_the_server(server):
    ws, _ = _raw(server)
    ws.send(mn.packb(_obs(1.0)))
    ws.close_socket()  # gone without a closing handshake, its reply still pending
    gentle, _ = _raw(server)
    gentle.send(mn.packb(_obs(1.0)))
    gentle.close()  # closed while its request is in flight
    with PolicyClient(port=server.port, timeout=10) as client:
        assert client.infer(_obs(5.0))["actions"][0, 0] == 5.0
    assert server.running


def test_healthz_answers_200_ok(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    assert response.status == 200 and response.read().decode().strip() == "OK"
    conn.close()
    assert healthz("127.0.0.1", server.port)
    assert wait_for_server("127.0.0.1", server.port, timeout=5)


def _unused_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_nothing_listening_fails_within_the_deadline():
    port = _unused_port()
    assert wait_for_server("127.0.0.1", port, timeout=0.3) is False
    with pytest.raises(PolicyServerUnavailable, match=rf"no policy server answered on 127\.0\.0\.1:{port} after 0\.3 s; see server\.log"):
        PolicyClient(port=port, timeout=0.3)


def test_binding_a_taken_port_names_it_and_suggests_another():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"Port {port} on 127\.0\.0\.1 is already in use.*--port"):
            PolicyServer(EchoPolicy(), port=port).start_in_thread()
        with pytest.raises(PortInUseError, match=str(port)):
            check_port_free("127.0.0.1", port)


def test_stop_closes_connections_and_frees_the_port():
    handle = PolicyServer(EchoPolicy(), port=0).start_in_thread()
    client = PolicyClient(port=handle.port, timeout=10)
    handle.stop()
    assert not handle.running
    with pytest.raises(PolicyServerError, match="closed the connection"):
        client.infer(_obs())
    client.close()
    assert not healthz("127.0.0.1", handle.port, timeout=1)
    check_port_free("127.0.0.1", handle.port)  # bindable again
    handle.stop()  # idempotent


def test_openpi_client_talks_to_the_server_unchanged(server):
    openpi = pytest.importorskip("openpi_client.websocket_client_policy")
    client = openpi.WebsocketClientPolicy(host="127.0.0.1", port=server.port)
    assert client.get_server_metadata()["run_id"] == "dummy"
    assert client.infer(_obs(4.0))["actions"].shape == (4, 3)
    with pytest.raises(RuntimeError, match="state_dim=3"):
        client.infer({"state": [1.0], "prompt": "x"})
    assert client.infer(_obs(6.0))["actions"][0, 0] == 6.0  # still connected after the error
