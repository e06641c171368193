"""A synchronous client for the policy server (same interface as openpi_client's WebsocketClientPolicy).

    from AlphaBrain.deployment.policy_client import PolicyClient, wait_for_server

    wait_for_server("127.0.0.1", 5694, timeout=120)          # GET /healthz until it answers 200
    with PolicyClient(port=5694) as policy:
        meta = policy.get_server_metadata()                  # action_horizon, action_dim, image_size, ...
        reply = policy.infer({"images": [img], "state": state, "prompt": "push the red block left"})
        chunk = reply["actions"]                             # float32 [action_horizon, action_dim], raw units
        replies = policy.infer_batch([obs_a, obs_b])         # pipelined; one forward on a batching server

The request and reply keys are those of `AlphaBrain.deployment.policy`. An
error reply from the server (a text frame) raises `PolicyServerError` with the
server's message; the connection stays usable. Connecting retries with backoff
until `timeout` seconds have passed, then raises `PolicyServerUnavailable`.
"""

from __future__ import annotations

import http.client
import time
from typing import Any

from AlphaBrain.deployment import msgpack_numpy

__all__ = ["PolicyClient", "PolicyServerError", "PolicyServerUnavailable", "wait_for_server"]


class PolicyServerError(RuntimeError):
    """The server answered a request with an error message (a text frame), or dropped the connection."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PolicyServerUnavailable(ConnectionError):
    """No policy server answered before the deadline."""


def _uri(host: str, port: int | None) -> str:
    uri = host if host.startswith(("ws://", "wss://")) else f"ws://{host}"
    return uri if port is None else f"{uri}:{port}"


def _no_proxy_kwargs() -> dict:
    """websockets >= 15 routes connections through $HTTP(S)_PROXY unless told not to; a local server must not be."""
    import inspect

    from websockets.sync.client import connect

    return {"proxy": None} if "proxy" in inspect.signature(connect).parameters else {}


def _backoff(attempt: int) -> float:
    return min(0.05 * (2 ** attempt), 1.0)


class PolicyClient:
    """Connects to a policy server, reads its metadata, and sends one observation per `infer` call.

    `timeout` bounds the connection attempts (seconds, retried with backoff);
    `request_timeout` bounds each `infer` round trip (None: wait as long as
    the server computes). Not thread-safe: use one client per thread.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = 5694,
        timeout: float = 30.0,
        *,
        request_timeout: float | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.uri = _uri(host, port)
        self.request_timeout = request_timeout
        self._packer = msgpack_numpy.Packer()
        self._ws, self._metadata = self._connect(float(timeout))

    def _connect(self, timeout: float) -> tuple[Any, dict]:
        from websockets.exceptions import InvalidHandshake, InvalidURI
        from websockets.sync.client import connect

        no_proxy = _no_proxy_kwargs()

        deadline = time.monotonic() + max(timeout, 0.0)
        attempt, last_error = 0, None
        while True:
            remaining = deadline - time.monotonic()
            try:
                ws = connect(self.uri, open_timeout=max(min(remaining, 10.0), 0.5), compression=None,
                             max_size=None, **no_proxy)
            except InvalidURI as exc:
                raise ValueError(f"invalid policy server address {self.uri!r}: {exc}") from None
            except (OSError, TimeoutError, InvalidHandshake) as exc:  # refused, not listening yet, starting up
                last_error = exc
            else:
                try:
                    first = ws.recv(timeout=max(remaining, 5.0))
                except Exception as exc:  # closed or silent right after the handshake
                    ws.close()
                    last_error = exc
                else:
                    if isinstance(first, str):
                        ws.close()
                        raise PolicyServerError(f"policy server at {self.uri} sent an error instead of metadata: {first}")
                    return ws, msgpack_numpy.unpackb(first)
            if time.monotonic() >= deadline:
                break
            time.sleep(min(_backoff(attempt), max(deadline - time.monotonic(), 0.0)))
            attempt += 1
        where = self.uri.removeprefix("ws://")
        raise PolicyServerUnavailable(
            f"no policy server answered on {where} after {timeout:g} s; see server.log "
            f"(last error: {type(last_error).__name__}: {last_error})"
        )

    def get_server_metadata(self) -> dict:
        """The metadata dict the server sent on connect."""
        return self._metadata

    @property
    def metadata(self) -> dict:
        return self._metadata

    def infer(self, obs: dict) -> dict:
        """Send one observation; return the reply dict (`actions`, timings)."""
        return self.infer_batch([obs])[0]

    def infer_batch(self, batch: list[dict]) -> list[dict]:
        """Send several observations at once (pipelined on this connection); their replies, in order.

        A server started with --batch-wait-ms > 0 answers them with one forward. An error reply
        raises PolicyServerError once every reply has been read, so the connection stays in step.
        """
        from websockets.exceptions import ConnectionClosed

        try:
            for obs in batch:
                self._ws.send(self._packer.pack(obs))
            replies = [self._ws.recv(timeout=self.request_timeout) for _ in batch]
        except ConnectionClosed as exc:
            raise PolicyServerError(
                f"the policy server at {self.uri} closed the connection ({exc}); see server.log"
            ) from None
        except TimeoutError:
            raise PolicyServerError(
                f"no reply from the policy server at {self.uri} within {self.request_timeout} s"
            ) from None
        errors = [r for r in replies if isinstance(r, str)]
        if errors:
            raise PolicyServerError(errors[0])
        return [msgpack_numpy.unpackb(r) for r in replies]

    def reset(self) -> None:
        """No client-side state to reset (openpi BasePolicy interface)."""

    def close(self) -> None:
        ws, self._ws = getattr(self, "_ws", None), None
        if ws is not None:
            ws.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; close() is the real API
        try:
            self.close()
        except Exception:
            pass


def healthz(host: str, port: int, timeout: float = 2.0) -> bool:
    """One GET /healthz: True when it answers 200."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_for_server(host: str = "127.0.0.1", port: int = 5694, timeout: float = 60.0) -> bool:
    """Poll GET /healthz (with backoff) until it answers 200 or `timeout` seconds pass."""
    deadline = time.monotonic() + max(timeout, 0.0)
    attempt = 0
    while True:
        remaining = deadline - time.monotonic()
        if healthz(host, port, timeout=max(min(remaining, 2.0), 0.1)):
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(_backoff(attempt), remaining))
        attempt += 1
