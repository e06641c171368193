"""msgpack with numpy arrays, in the wire format of openpi-client's `msgpack_numpy`.

An array travels as a msgpack map with *binary* keys

    {b"__ndarray__": True, b"data": <raw bytes, C order>, b"dtype": "<f4", b"shape": [H, W, 3]}

and a numpy scalar (np.float32(1.5), np.bool_(True), ...) as

    {b"__npgeneric__": True, b"data": <the Python value>, b"dtype": "<f4"}

`dtype` is numpy's `dtype.str` (byte order + kind + item size), so the reader
rebuilds exactly the dtype that was sent. Everything else is plain msgpack
(dicts, lists, str, bytes, int, float, bool, None). This is the encoding both
ends of openpi's websocket policy protocol use, so `openpi_client` and this
module read each other's messages.

No pickle, ever: object arrays (which msgpack-numpy would pickle), structured
(void) and complex dtypes are refused on both sides with a ValueError, and a
received array whose byte count does not match its shape and dtype is refused
too. Unpacked arrays are writable copies, not views of the message buffer.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

__all__ = ["UNSUPPORTED_KINDS", "Packer", "pack_array", "packb", "unpack_array", "unpackb"]

#: dtype kinds that cannot be sent: object (would need pickle), void/structured, complex (as in openpi).
UNSUPPORTED_KINDS = ("O", "V", "c")

_ND, _GEN = "__ndarray__", "__npgeneric__"


def _check_kind(dtype: np.dtype, where: str) -> None:
    if dtype.kind in UNSUPPORTED_KINDS:
        what = {"O": "object arrays would need pickle", "V": "structured/void dtypes", "c": "complex dtypes"}
        raise ValueError(
            f"{where}: numpy dtype {dtype} is not supported over msgpack ({what[dtype.kind]}); "
            "convert to a numeric, bool or string array first."
        )


def pack_array(obj: Any) -> Any:
    """msgpack `default` hook: numpy arrays and scalars -> the openpi map; anything else unchanged.

    msgpack calls this only for objects it cannot pack natively; an unknown type
    left unchanged makes msgpack raise TypeError naming it.
    """
    if isinstance(obj, np.ndarray):
        _check_kind(obj.dtype, "pack")
        return {
            b"__ndarray__": True,
            b"data": obj.tobytes(order="C"),
            b"dtype": obj.dtype.str,
            b"shape": list(obj.shape),
        }
    if isinstance(obj, np.generic):
        _check_kind(obj.dtype, "pack")
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _field(obj: dict, name: str) -> Any:
    for key in (name.encode(), name):  # openpi sends bytes keys; accept str keys from hand-written peers
        if key in obj:
            return obj[key]
    raise ValueError(f"malformed numpy payload: missing field {name!r}")


def _dtype(obj: dict) -> np.dtype:
    raw = _field(obj, "dtype")
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str):
        raise ValueError(f"malformed numpy payload: dtype must be a string like '<f4', got {type(raw).__name__}")
    try:
        dtype = np.dtype(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"malformed numpy payload: unknown dtype {raw!r} ({exc})") from None
    _check_kind(dtype, "unpack")
    return dtype


def unpack_array(obj: dict) -> Any:
    """msgpack `object_hook`: the openpi map -> numpy array/scalar; any other map unchanged."""
    if b"__ndarray__" in obj or _ND in obj:
        dtype = _dtype(obj)
        data, shape = _field(obj, "data"), _field(obj, "shape")
        if not isinstance(data, (bytes, bytearray)):
            raise ValueError(f"malformed numpy payload: data must be bytes, got {type(data).__name__}")
        if not isinstance(shape, (list, tuple)) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
        ):
            raise ValueError(f"malformed numpy payload: shape must be a list of non-negative ints, got {shape!r}")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if expected != len(data):
            raise ValueError(
                f"malformed numpy payload: {len(data)} data bytes, but shape {list(shape)} of {dtype} needs {expected}"
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    if b"__npgeneric__" in obj or _GEN in obj:
        dtype = _dtype(obj)
        try:
            return dtype.type(_field(obj, "data"))
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"malformed numpy scalar payload for dtype {dtype}: {exc}") from None
    return obj


def Packer(**kwargs: Any) -> msgpack.Packer:
    """A reusable msgpack.Packer that understands numpy (cheaper than packb in a loop)."""
    return msgpack.Packer(default=pack_array, **kwargs)


def packb(obj: Any, **kwargs: Any) -> bytes:
    """Serialize `obj` (dicts, lists, scalars, numpy arrays) to msgpack bytes."""
    return msgpack.packb(obj, default=pack_array, **kwargs)


def unpackb(data: bytes, **kwargs: Any) -> Any:
    """Deserialize msgpack bytes; numpy payloads come back as (writable) numpy arrays/scalars."""
    return msgpack.unpackb(data, object_hook=unpack_array, **kwargs)
