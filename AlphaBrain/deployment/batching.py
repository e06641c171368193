"""The policy server's inference thread: requests in through a queue, one forward per batch, replies out as futures.

The event loop only reads frames and sends replies; decoding, the policy call and encoding run
here, so a slow forward never holds up other connections, health checks or new handshakes.

Batching (`batch_wait_ms` > 0): once a request arrives, the thread waits up to that long for
more (from any connection, or pipelined on one), takes whatever else is already queued, up to
`max_batch`, and answers them with one `policy.infer_batch(...)` call. With 0 (the default)
every request is its own forward, as before batching existed. A policy without `infer_batch`,
or a batch that fails (a malformed request among good ones), is answered one request at a
time, so every request still gets its own reply or its own error message.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from typing import Any

from AlphaBrain.deployment import msgpack_numpy
from AlphaBrain.utils.errors import UserError

__all__ = ["DEFAULT_MAX_BATCH", "InferenceThread"]

DEFAULT_MAX_BATCH = 64
logger = logging.getLogger("alphabrain.deployment.server")
_STOP = object()


class InferenceThread:
    """Answers raw request frames (`submit`) with reply bytes, or the error text to send as a text frame."""

    def __init__(self, policy: Any, *, batch_wait_ms: float = 0.0, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if not batch_wait_ms >= 0:
            raise UserError(f"--batch-wait-ms must be a number >= 0, got {batch_wait_ms!r}.")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.policy = policy
        self.batch_wait_s = float(batch_wait_ms) / 1000.0
        self.max_batch = int(max_batch)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stats = {"requests": 0, "forwards": 0, "largest_batch": 0}

    # ------------------------------------------------------------------ lifecycle (any thread)
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="policy-infer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in progress, drop the queued requests, end the thread."""
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, message: Any, conn_id: int, request_no: int) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._stats["requests"] += 1
        self._queue.put((message, conn_id, request_no, future))
        return future

    def stats(self) -> dict:
        """requests received, forwards run (policy calls), largest batch served; plus the settings."""
        with self._lock:
            return {**self._stats, "batch_wait_ms": self.batch_wait_s * 1000.0, "max_batch": self.max_batch}

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            deadline = time.monotonic() + self.batch_wait_s
            while self.batch_wait_s > 0 and len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._serve(batch)
        while True:  # whatever is left will not be answered: its connections are closing
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                item[3].cancel()

    def _serve(self, batch: list) -> None:
        start = time.perf_counter()
        try:
            answers: list[Any] = [self._decode(message, conn, no) for message, conn, no, _ in batch]
            todo = [i for i, a in enumerate(answers) if isinstance(a, dict)]
            replies = self._infer([answers[i] for i in todo], [batch[i][1:3] for i in todo])
            for i, reply in zip(todo, replies):
                answers[i] = self._encode(reply, batch[i][1], start)
        except Exception as exc:  # a bug here must not leave connections waiting forever
            logger.exception("inference thread: a batch of %d request(s) failed", len(batch))
            answers = [f"{type(exc).__name__}: {exc} (server-side bug; the traceback is in the server log)"] * len(batch)
        for (_, _, _, future), answer in zip(batch, answers):
            if not future.cancelled():
                future.set_result(answer)

    def _decode(self, message: Any, conn_id: int, request_no: int) -> dict | bytes | str:
        """The observation dict, or the finished answer (an ack, an error text)."""
        if isinstance(message, str):
            return _reject(conn_id, request_no, "ValueError: expected a binary msgpack frame, got a text frame.")
        try:
            obs = msgpack_numpy.unpackb(message)
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return _reject(conn_id, request_no, f"ValueError: malformed request: not a msgpack-numpy message ({detail}).")
        if not isinstance(obs, dict):
            return _reject(
                conn_id, request_no,
                f"ValueError: malformed request: expected a msgpack map of observation keys, got {type(obs).__name__}.",
            )
        if "__ctrl__" in obs:
            return msgpack_numpy.packb({"__ack__": str(obs["__ctrl__"])})
        return obs

    def _infer(self, observations: list[dict], origins: list[tuple[int, int]]) -> list[Any]:
        """One reply (dict) or error text per observation."""
        infer_batch = getattr(self.policy, "infer_batch", None)
        if len(observations) > 1 and callable(infer_batch):
            self._count_forward(len(observations))
            try:
                replies = infer_batch(observations)
            except Exception:  # which request? answer them one by one: each gets its own error or reply
                replies = None
            if isinstance(replies, list) and len(replies) == len(observations):
                return replies
        return [self._infer_one(obs, conn, no) for obs, (conn, no) in zip(observations, origins)]

    def _infer_one(self, obs: dict, conn_id: int, request_no: int) -> Any:
        self._count_forward(1)
        try:
            return self.policy.infer(obs)
        except (ValueError, UserError) as exc:  # the request's fault (how InferencePolicy reports bad input)
            return _reject(conn_id, request_no, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # the policy's fault: full traceback in the server log only
            logger.exception("connection %d: request %d failed inside the policy", conn_id, request_no)
            return f"{type(exc).__name__}: {exc} (internal policy error; the traceback is in the server log)"

    def _count_forward(self, size: int) -> None:
        with self._lock:
            self._stats["forwards"] += 1
            self._stats["largest_batch"] = max(self._stats["largest_batch"], size)

    @staticmethod
    def _encode(reply: Any, conn_id: int, start: float) -> bytes | str:
        if isinstance(reply, str):  # already an error text
            return reply
        if not isinstance(reply, dict):
            logger.error("connection %d: policy returned %s, not a dict", conn_id, type(reply).__name__)
            return f"TypeError: the policy returned {type(reply).__name__}, not a dict (server-side bug)"
        reply = dict(reply)
        reply["server_timing"] = {"infer_ms": (time.perf_counter() - start) * 1000.0}
        try:
            return msgpack_numpy.packb(reply)
        except (TypeError, ValueError) as exc:
            logger.error("connection %d: reply cannot be encoded: %s", conn_id, exc)
            return f"TypeError: the policy's reply cannot be encoded ({exc}) (server-side bug)"


def _reject(conn_id: int, request_no: int, text: str) -> str:
    logger.warning("connection %d: request %d rejected: %s", conn_id, request_no, text)
    return text
