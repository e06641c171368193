"""Serve a policy over websockets, wire-compatible with openpi's websocket policy protocol.

    python -m AlphaBrain.deployment.policy_server --run-dir results/Checkpoints/<run_id> --checkpoint last \
        [--host 127.0.0.1] [--port 5694] [--device cpu] [--batch-wait-ms 0]

Protocol (one websocket connection per client, any number of clients):

1. On connect the server sends one binary frame: the policy's metadata, a
   msgpack map (run_id, checkpoint, action_horizon, action_dim, state_dim,
   num_cameras, image_size, camera_keys, ...).
2. Each request is one binary frame, a msgpack-numpy map (the encoding of
   `openpi_client.msgpack_numpy`, see `AlphaBrain.deployment.msgpack_numpy`):

       images                  list of HxWx3 uint8 arrays (or one array [n_cams, H, W, 3]), or openpi-style
       observation/image       HxWx3 uint8 (+ observation/wrist_image for a second camera)
       state                   float[state_dim], raw proprioception (or observation/state)
       prompt                  str, the task instruction

3. Each reply is one binary frame, a msgpack-numpy map:

       actions                 float32 [action_horizon, action_dim], raw action units
       policy_timing           {"infer_ms": ...}   time inside the policy
       server_timing           {"infer_ms": ...}   time the server spent on the request (decode + infer + encode)

4. A request that fails (undecodable bytes, a missing key, a wrong state size,
   an error inside the policy) is answered with one *text* frame holding the
   error message (no traceback; the traceback of an unexpected error goes to
   the server log). Unlike openpi, the connection stays open and the next
   request is served normally.

A control message `{"__ctrl__": name, ...}` (sent by some openpi-derived
clients around episodes) is acknowledged with `{"__ack__": name}`.

`GET /healthz` on the same port answers HTTP 200 "OK" (used by
`policy_client.wait_for_server`); `GET /stats` answers a JSON object: requests
received, forwards run, largest batch, the batching settings. Decoding, inference
and encoding run in one inference thread (batching.py), so the event loop keeps
answering other connections, pings and health checks while a forward runs. With
`--batch-wait-ms W` > 0, requests that arrive within W ms of each other (from
concurrent clients, or pipelined on one connection: replies come back in request
order) are served by one batched forward.
"""

from __future__ import annotations

import argparse
import asyncio
import http
import itertools
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from AlphaBrain.deployment import msgpack_numpy
from AlphaBrain.deployment.batching import DEFAULT_MAX_BATCH, InferenceThread
from AlphaBrain.deployment.ports import PortInUseError, bind_error, check_port_free
from AlphaBrain.utils.cli import ArgumentParser, float_arg, int_arg, run_main
from AlphaBrain.utils.errors import UserError

__all__ = ["DEFAULT_PORT", "PolicyServer", "PortInUseError", "ServerHandle", "main"]

DEFAULT_PORT = 5694
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
logger = logging.getLogger("alphabrain.deployment.server")


def _peer(ws: Any) -> str:
    addr = getattr(ws, "remote_address", None)
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)


class ServerHandle:
    """A server running in a background thread: `.port` (the bound one), `.url`, `.stop()`."""

    def __init__(self, server: PolicyServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return int(self._server.port)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop listening, and join the thread (idempotent)."""
        self._server.request_stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"policy server thread did not stop within {timeout} s")

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PolicyServer:
    """Serves `policy.infer(obs) -> dict` to websocket clients (protocol in the module docstring).

    `policy` is any object with `infer(dict) -> dict`; `metadata` defaults to
    `policy.metadata` when it has one. `port=0` picks a free port (read it from
    `.port` once started).
    """

    def __init__(
        self,
        policy: Any,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        metadata: dict | None = None,
        *,
        max_message_bytes: int | None = DEFAULT_MAX_MESSAGE_BYTES,
        batch_wait_ms: float = 0.0,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if not callable(getattr(policy, "infer", None)):
            raise TypeError(f"policy must have an infer(obs) -> dict method, got {type(policy).__name__}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise UserError(f"port must be an integer in 0..65535 (0 = any free port), got {port!r}.")
        self.policy = policy
        self.host = host
        self.port = port
        if metadata is None:
            metadata = getattr(policy, "metadata", None) or {}
        if not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        self.metadata = dict(metadata)
        try:
            self._packed_metadata = msgpack_numpy.packb(self.metadata)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metadata cannot be sent over msgpack: {exc}") from None
        self.max_message_bytes = max_message_bytes
        self._inference = InferenceThread(policy, batch_wait_ms=batch_wait_ms, max_batch=max_batch)
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stop_requested = False
        self._lock = threading.Lock()

    @property
    def stats(self) -> dict:
        """What `GET /stats` answers: requests received, forwards run, largest batch, batching settings."""
        return self._inference.stats()

    def _process_request(self, connection: Any, request: Any) -> Any:
        """websockets `process_request`: answer GET /healthz and /stats, let the rest go on to the handshake."""
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if path == "/stats":
            return connection.respond(http.HTTPStatus.OK, json.dumps(self.stats) + "\n")
        return None

    # ------------------------------------------------------------------ connections (event loop)
    async def _handler(self, ws: Any) -> None:
        import websockets

        conn_id = next(self._ids)
        peer = _peer(ws)
        logger.info("connection %d from %s opened", conn_id, peer)
        counts = {"served": 0, "errors": 0}
        # Requests are read as they come (a client may pipeline several) and answered in order by
        # the writer, so one connection's requests can share a batch.
        replies: asyncio.Queue = asyncio.Queue()
        writer = asyncio.create_task(self._send_replies(ws, replies, counts))
        received = 0
        try:
            await ws.send(self._packed_metadata)
            async for message in ws:
                received += 1
                await replies.put(asyncio.wrap_future(self._inference.submit(message, conn_id, received)))
        except websockets.ConnectionClosed:
            pass  # the client went away mid-request or mid-episode; other connections are unaffected
        finally:
            await replies.put(None)
            await writer
            code = getattr(ws, "close_code", None)
            logger.info("connection %d from %s closed (code %s) after %d replies, %d errors",
                        conn_id, peer, code, counts["served"], counts["errors"])

    @staticmethod
    async def _send_replies(ws: Any, replies: asyncio.Queue, counts: dict) -> None:
        import websockets

        while True:
            pending = await replies.get()
            if pending is None:
                return
            try:
                reply = await pending
                await ws.send(reply)
            except (websockets.ConnectionClosed, asyncio.CancelledError):
                continue  # gone, or the server is stopping: drain the rest without sending
            counts["errors" if isinstance(reply, str) else "served"] += 1

    async def run(self, on_ready: Callable[[int], None] | None = None) -> None:
        """Serve until `request_stop()` (or the task is cancelled)."""
        import websockets.asyncio.server as ws_server

        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            if self._stop_requested:
                self._stop.set()
        self._inference.start()
        try:
            try:
                server = await ws_server.serve(
                    self._handler, self.host, self.port,
                    process_request=self._process_request, compression=None, max_size=self.max_message_bytes,
                )
            except OSError as exc:
                raise bind_error(self.host, self.port, exc) from None
            try:
                self.port = int(server.sockets[0].getsockname()[1])
                logger.info("policy server listening on ws://%s:%d (health check: http://%s:%d/healthz)",
                            self.host, self.port, self.host, self.port)
                if on_ready is not None:
                    on_ready(self.port)
                await self._stop.wait()
            finally:
                server.close()  # closes every open connection too (close code 1001, going away)
                await server.wait_closed()
                logger.info("policy server on port %d stopped", self.port)
        finally:
            self._inference.stop()

    def request_stop(self) -> None:
        """Ask a running server to stop (thread-safe; also before it has started)."""
        with self._lock:
            self._stop_requested = True
            loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop closed in between: already stopped
                pass

    def serve_forever(self) -> None:
        """Serve in this thread until SIGINT/SIGTERM (or `request_stop()` from another thread)."""

        async def main() -> None:
            loop = asyncio.get_running_loop()
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    try:
                        loop.add_signal_handler(sig, self.request_stop)
                    except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
                        pass
            await self.run()

        asyncio.run(main())

    def start_in_thread(self, timeout: float = 30.0) -> ServerHandle:
        """Start serving in a daemon thread; returns once the port is bound (errors are raised here)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def target() -> None:
            try:
                asyncio.run(self.run(on_ready=lambda _port: ready.set()))
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
                failure.append(exc)
            finally:
                ready.set()

        thread = threading.Thread(target=target, name=f"policy-server-{self.port}", daemon=True)
        thread.start()
        if not ready.wait(timeout):
            self.request_stop()
            raise RuntimeError(f"policy server did not start within {timeout} s")
        if failure:
            thread.join(timeout)
            raise failure[0]
        return ServerHandle(self, thread)


# ---------------------------------------------------------------------------------------------- CLI
def build_arg_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m AlphaBrain.deployment.policy_server",
        description=(
            "Serve one checkpoint of a continual-learning run over websockets (openpi-compatible protocol: "
            "msgpack-numpy requests {images | observation/image [+ observation/wrist_image], state | "
            "observation/state (raw), prompt}, replies {actions: float32 [horizon, action_dim], raw units}; "
            "errors come back as text frames; GET /healthz answers 200). Logs go to stderr."
        ),
        epilog=(
            "Examples:\n"
            "  python -m AlphaBrain.deployment.policy_server --run-dir results/Checkpoints/my_run --checkpoint last\n"
            "  python -m AlphaBrain.deployment.policy_server --run-dir results/Checkpoints/my_run \\\n"
            "      --checkpoint task_2_id2_steps_3000 --port 5695 --device cuda:0 2> server.log\n"
            "Protocol and client examples: docs/deployment/policy_server.md"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--run-dir", required=True, metavar="DIR",
                        help="the training run: results/Checkpoints/<run_id> (needs config.yaml, "
                             "dataset_statistics.json, checkpoints/)")
    parser.add_argument("--checkpoint", default="last", metavar="NAME|PATH",
                        help='"last" (default), a checkpoint name such as task_2_id2_steps_3000, "task_<k>" '
                             "(stream position k), or a path to a *_pytorch_model.pt / *_merged.pt file or *_lora_adapter dir")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 exposes the "
                             "server to the network, without authentication)")
    parser.add_argument("--port", type=int_arg(0, 65535), default=DEFAULT_PORT,
                        help=f"TCP port (default {DEFAULT_PORT}; 0 = any free port, printed at start)")
    parser.add_argument("--device", default="cpu", help="torch device for the model: cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--embodiment", default=None,
                        help="statistics entry to use when the run mixes embodiments (default: the run's only one)")
    parser.add_argument("--allow-foreign-statistics", action="store_true", default=None,
                        help="serve even if the run's dataset_statistics.json was computed on other data than the "
                             "run trained on (refused by default)")
    parser.add_argument("--cache-merged", action="store_true",
                        help="LoRA checkpoints: also write the merged weights to <prefix>_merged.pt (reused by later "
                             "loads); by default the adapter is merged in memory only")
    parser.add_argument("--torch-threads", type=int_arg(1), default=None, metavar="N",
                        help="torch intra-op threads (default: torch's choice; set 1-2 when running several servers)")
    parser.add_argument("--batch-wait-ms", type=float_arg(0), default=0.0, metavar="W",
                        help="batch requests: after one arrives, wait up to W ms for more (from any client) and "
                             "answer them with one forward, at most %d per batch (default 0: one forward per "
                             "request). A few ms pays off with many concurrent clients; GET /stats counts the "
                             "forwards" % DEFAULT_MAX_BATCH)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    return run_main(_serve, args)


def _serve(args: argparse.Namespace) -> None:
    """main() after parsing: check the port, load the checkpoint, serve until interrupted."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    check_port_free(args.host, args.port)  # before the (slow) model load
    if args.torch_threads is not None:
        import torch

        torch.set_num_threads(args.torch_threads)
    from AlphaBrain.deployment.policy import load_policy

    start = time.perf_counter()
    policy = load_policy(args.run_dir, args.checkpoint, device=args.device, embodiment=args.embodiment,
                         cache_merged=args.cache_merged, allow_foreign_statistics=args.allow_foreign_statistics)
    meta = policy.metadata
    logger.info(
        "loaded run %s checkpoint %s in %.1f s: %d camera(s) %s, state_dim %d, action chunk %dx%d, device %s",
        meta["run_id"], meta["checkpoint"], time.perf_counter() - start, meta["num_cameras"],
        meta["image_size"], meta["state_dim"], meta["action_horizon"], meta["action_dim"], args.device,
    )
    if args.batch_wait_ms > 0:
        logger.info("batching: requests within %g ms share a forward (at most %d)", args.batch_wait_ms,
                    DEFAULT_MAX_BATCH)
    PolicyServer(policy, host=args.host, port=args.port, batch_wait_ms=args.batch_wait_ms).serve_forever()

if __name__ == "__main__":
    sys.exit(main())
