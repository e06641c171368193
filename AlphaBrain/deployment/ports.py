"""Binding a server port: is it free, and what to tell the user when it is not."""

from __future__ import annotations

import errno
import socket

from AlphaBrain.utils.errors import UserError

__all__ = ["PortInUseError", "bind_error", "check_port_free"]


class PortInUseError(UserError):
    """The requested host:port cannot be bound."""


def bind_error(host: str, port: int, exc: OSError) -> UserError:
    if exc.errno == errno.EADDRINUSE:
        return PortInUseError(
            f"Port {port} on {host} is already in use (another policy server, or another program, holds it). "
            f"Pick a free one with --port (e.g. --port {port + 1}), or stop the process using it."
        )
    if exc.errno == errno.EACCES:
        return PortInUseError(f"No permission to bind port {port} on {host}; use a port above 1023 with --port.")
    if exc.errno == errno.EADDRNOTAVAIL:
        return UserError(f"Cannot bind {host}:{port}: {host} is not an address of this machine; use --host 127.0.0.1.")
    return UserError(f"Cannot bind {host}:{port}: {exc.strerror or exc}.")


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUseError now if host:port cannot be bound (same socket options as the server)."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"Cannot resolve host {host!r}: {exc}; use --host 127.0.0.1.") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            raise bind_error(host, port, exc) from None
