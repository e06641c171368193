import msgpack
import numpy as np
import pytest

from AlphaBrain.deployment import msgpack_numpy as mn


@pytest.mark.parametrize(
    "dtype", ["uint8", "int8", "int16", "int32", "int64", "uint16", "float16", "float32", "float64", "bool", ">f4", "<U5", "S3"]
)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 4, 4, 3)])
def test_array_round_trip_keeps_dtype_shape_and_values(dtype, shape):
    rng = np.random.default_rng(0)
    arr = np.asarray(rng.random(shape) * 100).astype(dtype)
    out = mn.unpackb(mn.packb({"x": arr}))["x"]
    assert isinstance(out, np.ndarray)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable  # a copy, not a read-only view of the message


def test_non_contiguous_arrays_are_sent_in_c_order():
    arr = np.arange(24, dtype=np.int32).reshape(4, 6)[:, ::2].T
    np.testing.assert_array_equal(mn.unpackb(mn.packb(arr)), arr)


def test_nested_dicts_lists_and_numpy_scalars():
    msg = {
        "images": [np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)],
        "meta": {"step": np.int64(7), "score": np.float32(0.25), "done": np.bool_(True), "name": "task"},
        "plain": [1, 2.5, None, True, b"raw"],
    }
    out = mn.unpackb(mn.packb(msg))
    assert out["meta"]["step"] == 7 and isinstance(out["meta"]["step"], np.int64)
    assert isinstance(out["meta"]["score"], np.float32) and out["meta"]["score"] == np.float32(0.25)
    assert out["meta"]["done"] is np.True_ or out["meta"]["done"] == np.bool_(True)
    assert out["plain"] == [1, 2.5, None, True, b"raw"]
    assert out["meta"]["name"] == "task"
    np.testing.assert_array_equal(out["images"][1], msg["images"][1])


def test_wire_format_is_openpis():
    """Binary keys, dtype.str and a shape list: what openpi_client.msgpack_numpy reads and writes."""
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = msgpack.unpackb(mn.packb(arr))
    assert raw == {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": "<f4", b"shape": [2, 3]}
    scalar = msgpack.unpackb(mn.packb(np.float32(1.5)))
    assert scalar == {b"__npgeneric__": True, b"data": 1.5, b"dtype": "<f4"}
    # ... and a peer's message in that format decodes (str keys from hand-written peers too)
    peer = msgpack.packb({"a": {"__ndarray__": True, "data": arr.tobytes(), "dtype": "<f4", "shape": [3, 2]}})
    np.testing.assert_array_equal(mn.unpackb(peer)["a"], arr.reshape(3, 2))


def test_interoperates_with_openpi_client_when_installed():
    om = pytest.importorskip("openpi_client.msgpack_numpy")
    msg = {"a": np.arange(5, dtype=np.int16), "s": np.float32(2.0), "n": {"t": "x"}}
    assert mn.packb(msg) == om.packb(msg)
    np.testing.assert_array_equal(mn.unpackb(om.packb(msg))["a"], msg["a"])
    np.testing.assert_array_equal(om.unpackb(mn.packb(msg))["a"], msg["a"])


@pytest.mark.parametrize(
    "bad", [np.array([{"a": 1}, None], dtype=object), np.zeros(2, dtype=[("x", "f4")]), np.zeros(2, np.complex64)]
)
def test_pack_rejects_object_structured_and_complex_arrays(bad):
    with pytest.raises(ValueError, match="not supported"):
        mn.packb({"x": bad})


def test_pack_rejects_unknown_python_objects():
    with pytest.raises(TypeError):
        mn.packb({"x": object()})


def test_unpack_refuses_object_dtype_and_inconsistent_payloads():
    obj = msgpack.packb({b"__ndarray__": True, b"data": b"\0" * 16, b"dtype": "|O", b"shape": [2]})
    with pytest.raises(ValueError, match="object arrays would need pickle"):
        mn.unpackb(obj)
    short = msgpack.packb({b"__ndarray__": True, b"data": b"\0" * 7, b"dtype": "<f4", b"shape": [2]})
    with pytest.raises(ValueError, match="7 data bytes"):
        mn.unpackb(short)
    bad_dtype = msgpack.packb({b"__ndarray__": True, b"data": b"", b"dtype": "not-a-dtype", b"shape": [0]})
    with pytest.raises(ValueError, match="unknown dtype"):
        mn.unpackb(bad_dtype)
    bad_shape = msgpack.packb({b"__ndarray__": True, b"data": b"", b"dtype": "<f4", b"shape": [-1]})
    with pytest.raises(ValueError, match="shape"):
        mn.unpackb(bad_shape)
