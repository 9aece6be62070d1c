"""tinygen.serialization: pickle-free .npz save/load, atomic writes, corrupt files."""
import json
import math
import os
import pathlib
import pickle
import tempfile

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from tinygen.autograd.tensor import Tensor
from tinygen import serialization
from tinygen.serialization import CheckpointError, atomic_open, load, save


# --- helpers ------------------------------------------------------------------------
def assert_same(a, b, path="state"):
    """Exact structural equality: same types, same order, arrays bit for bit
    (so nan == nan and -0.0 != 0.0).  Never uses == on Tensors."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, Tensor):
        assert b.is_leaf and not b.requires_grad, path
        assert_same(a.numpy(), b.numpy(), path)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{path}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        assert a.tobytes() == b.tobytes(), path
    elif isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b)), path
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys/order differ"
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def leftovers(directory):
    return sorted(p.name for p in pathlib.Path(directory).iterdir() if p.name.endswith(".tmp"))


DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64, np.uint64,
          np.float16, np.float32, np.float64, np.complex64, np.complex128, ">f8", "<U3"]
ARRAY_DTYPES = st.sampled_from(DTYPES).map(np.dtype)
arrays = ARRAY_DTYPES.flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
)
tensors = st.sampled_from([np.float32, np.float64, np.int64, np.bool_]).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
).map(Tensor._make)

leaves = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
          | st.floats(allow_nan=True, allow_infinity=True)
          | st.text(alphabet=st.characters(codec=None), max_size=8)  # incl. lone surrogates
          | arrays | tensors)
structures = st.recursive(
    leaves,
    lambda children: (st.lists(children, max_size=4)
                      | st.lists(children, max_size=4).map(tuple)
                      | st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=12,
)


# --- round trips --------------------------------------------------------------------
@given(structures)
def test_round_trip_nested_structures(obj):
    if isinstance(obj, str):  # save("p", "text") is ambiguous by design (two paths)
        obj = [obj]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ckpt.npz")
        save(path, obj)
        assert_same(obj, load(path))
        assert os.listdir(d) == ["ckpt.npz"]


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=6))
def test_floats_round_trip_including_nan_inf(xs):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f.npz")
        save(path, {"xs": xs})
        assert_same({"xs": xs}, load(path))


def test_tensors_come_back_as_leaf_tensors(tmp_path):
    a = Tensor(np.arange(6, dtype=np.float64).reshape(2, 3), requires_grad=True)
    b = Tensor._make(np.array(3, dtype=np.int64))
    c = Tensor._make(np.zeros((0, 4), dtype=np.float32))
    save(tmp_path / "t.npz", {"a": a, "b": b, "c": c})
    out = load(tmp_path / "t.npz")
    for k, t in {"a": a, "b": b, "c": c}.items():
        assert type(out[k]) is Tensor
        assert out[k].is_leaf and not out[k].requires_grad
        assert out[k].dtype == t.dtype and out[k].shape == t.shape
        np.testing.assert_array_equal(out[k].numpy(), t.numpy())


def test_types_keys_order_and_numpy_scalars(tmp_path):
    obj = {"z": 1, "a": (1, 2.5, [None, True]), "m": "ünï€😀", "": -0.0,
           "np": [np.float32(1.5), np.int64(-7), np.bool_(True), np.str_("s"), np.float64("nan")]}
    save(tmp_path / "x", obj)
    out = load(tmp_path / "x")
    assert list(out) == ["z", "a", "m", "", "np"]
    assert out["a"] == (1, 2.5, [None, True]) and type(out["a"]) is tuple
    assert math.copysign(1, out[""]) == -1
    f, i, b, s, n = out["np"]
    assert (type(f), type(i), type(b), type(s)) == (float, int, bool, str)
    assert (f, i, b, s) == (1.5, -7, True, "s") and math.isnan(n)


def test_both_argument_orders(tmp_path):
    obj = {"w": np.ones(3, np.float32)}
    save(tmp_path / "a.npz", obj)                    # save(path, obj) with a PathLike
    save(obj, str(tmp_path / "b.npz"))               # PyTorch order with a str
    assert_same(load(tmp_path / "a.npz"), load(str(tmp_path / "b.npz")))


@pytest.mark.parametrize("args", [("a.npz", "b.npz"), ("a.npz", pathlib.Path("b")), ({"x": 1}, [1])])
def test_ambiguous_arguments_are_refused(args):
    with pytest.raises(TypeError, match="path"):
        save(*args)


def test_no_npz_suffix_is_appended(tmp_path):
    save(tmp_path / "model.ckpt", {"x": np.zeros(2)})
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]
    save(tmp_path / "model.ckpt", {"x": np.zeros(2)})  # overwrite works too


def test_file_is_a_plain_npz_readable_by_numpy(tmp_path):
    save(tmp_path / "c.npz", {"w": np.arange(4)})
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["__tinygen__", "a0"]
        doc = json.loads(z["__tinygen__"].tobytes())
        np.testing.assert_array_equal(z["a0"], np.arange(4))
    assert doc["version"] == serialization.FORMAT_VERSION and doc["kind"] == "tinygen.save"


# --- unsupported values -------------------------------------------------------------
@pytest.mark.parametrize("obj, where", [
    ({"layers": [1, 2, object()]}, "state['layers'][2]"),
    ({"a": {3.5: 1}}, "state['a'][3.5]"),
    ({"a": (1, {2j})}, "state['a'][1]"),
    ([np.array([1, "x"], dtype=object)], "state[0]"),
    ({"b": b"bytes"}, "state['b']"),
    ({"c": np.complex64(1j)}, "state['c']"),
])
def test_unsupported_values_name_the_key_path(tmp_path, obj, where):
    with pytest.raises(TypeError) as info:
        save(tmp_path / "x.npz", obj)
    assert where in str(info.value)
    assert os.listdir(tmp_path) == []


def test_int_keys_round_trip_like_optimizer_state(tmp_path):
    state = {"state": {0: {"step": 3, "exp_avg": np.ones(2)}, 1: {}}, "param_groups": []}
    save(tmp_path / "o.npz", state)
    back = load(tmp_path / "o.npz")
    assert list(back["state"]) == [0, 1]
    np.testing.assert_array_equal(back["state"][0]["exp_avg"], np.ones(2))


def test_circular_structure_is_refused(tmp_path):
    a = [1]
    a.append(a)
    with pytest.raises(ValueError, match="circular"):
        save(tmp_path / "x.npz", a)


# --- atomicity ----------------------------------------------------------------------
@pytest.fixture
def existing(tmp_path):
    path = tmp_path / "ckpt.npz"
    save(path, {"old": np.arange(5)})
    return path, path.read_bytes()


def test_failure_deep_in_structure_leaves_old_file(existing):
    path, before = existing
    big = {"w": np.ones(1000), "deep": [[{"ok": 1, "bad": {1, 2}}]]}
    with pytest.raises(TypeError, match=r"state\['deep'\]\[0\]\[0\]\['bad'\]"):
        save(path, big)
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_failure_inside_savez_leaves_old_file(existing, monkeypatch):
    path, before = existing
    seen = []

    def broken_savez(f, **entries):
        f.write(b"PK\x03\x04 half a zip")  # some bytes reach the temp file first
        seen.extend(leftovers(path.parent))
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save(path, {"new": np.zeros(3)})
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []
    assert len(seen) == 1 and seen[0].startswith(".ckpt.npz.")  # the temp file was beside the target
    monkeypatch.undo()
    assert_same(load(path), {"old": np.arange(5)})


def test_atomic_open_replaces_on_success_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    with atomic_open(target, "w") as f:
        f.write('{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target, "w") as f:
            f.write('{"a": 2')
            raise KeyboardInterrupt
    assert target.read_text() == '{"a": 1}'
    assert leftovers(tmp_path) == []
    with atomic_open(target, "wb") as f:
        f.write(b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError):
        with atomic_open(target, "ab"):
            pass


def test_atomic_open_permissions_follow_umask_or_old_file(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "new.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    os.chmod(tmp_path / "new.bin", 0o640)
    with atomic_open(tmp_path / "new.bin") as f:
        f.write(b"y")
    assert (tmp_path / "new.bin").stat().st_mode & 0o777 == 0o640


# --- corrupt and foreign files ------------------------------------------------------
@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.npz"
    save(path, {"w": np.arange(4096, dtype=np.float32), "b": Tensor._make(np.ones(7)), "n": 3})
    return path


def expect_checkpoint_error(path):
    with pytest.raises(CheckpointError) as info:
        load(path)
    assert path.name in str(info.value)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_truncated_file(good):
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    expect_checkpoint_error(good)


def test_bytes_overwritten_in_the_middle(good):
    data = bytearray(good.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 16] = b"\xff" * 16
    good.write_bytes(bytes(data))
    expect_checkpoint_error(good)


@pytest.mark.parametrize("frac", [0.02, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9])
def test_any_single_corrupted_byte_is_detected(good, frac):
    data = bytearray(good.read_bytes())
    i = int(len(data) * frac)
    data[i] ^= 0x5A
    good.write_bytes(bytes(data))
    expect_checkpoint_error(good)


def test_plain_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, I am not a checkpoint\n")
    expect_checkpoint_error(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    expect_checkpoint_error(path)


def test_single_npy_file(tmp_path):
    path = tmp_path / "arr.npy"
    np.save(path, np.arange(3))
    expect_checkpoint_error(path)


def test_npz_without_tinygen_entry(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, w=np.arange(3))
    assert "__tinygen__" in expect_checkpoint_error(path)


def write_npz(path, meta, **arrays):
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    with open(path, "wb") as f:
        np.savez(f, __tinygen__=np.frombuffer(raw, np.uint8), **arrays)


def test_object_array_npz_is_refused_without_unpickling(tmp_path, monkeypatch):
    def no_pickle(*a, **k):
        raise AssertionError("pickle was used")

    # A foreign npz holding only a pickled object array ...
    foreign = tmp_path / "objects.npz"
    np.savez(foreign, evil=np.array([{"a": 1}, None], dtype=object))
    # ... and one whose metadata points at a pickled object array.
    sneaky = tmp_path / "sneaky.npz"
    write_npz(sneaky, {"kind": "tinygen.save", "version": 1,
                       "root": {"$t": "ndarray", "key": "a0", "dtype": "|O", "shape": [2]}},
              a0=np.array([{"a": 1}, None], dtype=object))
    sneaky2 = tmp_path / "sneaky2.npz"  # lies about the dtype in the JSON
    write_npz(sneaky2, {"kind": "tinygen.save", "version": 1,
                        "root": {"$t": "ndarray", "key": "a0", "dtype": "<f8", "shape": [2]}},
              a0=np.array([{"a": 1}, None], dtype=object))
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    for path in (foreign, sneaky, sneaky2):
        expect_checkpoint_error(path)


def test_load_never_uses_pickle(good, monkeypatch):
    def no_pickle(*a, **k):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    out = load(good)
    assert out["n"] == 3 and type(out["b"]) is Tensor


@pytest.mark.parametrize("meta, what", [
    (b"{not json", "JSON"),
    (b"\xff\xfe", "JSON"),
    ({"kind": "tinygen.save", "version": 99, "root": None}, "version 99"),
    ({"kind": "something.else", "version": 1, "root": None}, "tinygen.save"),
    ([1, 2], "tinygen.save"),
    ({"kind": "tinygen.save", "version": 1, "root": {"$t": "ndarray", "key": "a7",
                                                     "dtype": "<f8", "shape": [3]}}, "'a7'"),
    ({"kind": "tinygen.save", "version": 1, "root": {"$t": "ndarray", "key": "a0",
                                                     "dtype": "<f8", "shape": [4]}}, "expected"),
    ({"kind": "tinygen.save", "version": 1, "root": {"$t": "weird"}}, "weird"),
    ({"kind": "tinygen.save", "version": 1, "root": {"$t": "float", "value": "1"}}, "float"),
    ({"kind": "tinygen.save", "version": 1}, "root"),
])
def test_bad_metadata(tmp_path, meta, what):
    path = tmp_path / "bad.npz"
    write_npz(path, meta, a0=np.arange(3.0))
    assert what in expect_checkpoint_error(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load(tmp_path / "nope.npz")
    assert "nope.npz" in str(info.value)


def test_load_closes_the_file_and_returns_in_memory_arrays(good, monkeypatch):
    opened = []
    real_open = open

    def tracking_open(*a, **k):
        f = real_open(*a, **k)
        opened.append(f)
        return f

    monkeypatch.setattr("builtins.open", tracking_open)
    out = load(good)
    monkeypatch.undo()
    assert opened and all(f.closed for f in opened)
    assert type(out["w"]) is np.ndarray  # not a memmap
    os.remove(good)  # data is still there after the file is gone
    assert out["w"].sum() == np.arange(4096, dtype=np.float32).sum()


def test_load_of_corrupt_file_closes_it(good, monkeypatch):
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])
    opened = []
    real_open = open

    def tracking_open(*a, **k):
        f = real_open(*a, **k)
        opened.append(f)
        return f

    monkeypatch.setattr("builtins.open", tracking_open)
    with pytest.raises(CheckpointError):
        load(good)
    monkeypatch.undo()
    assert opened and all(f.closed for f in opened)


def test_every_flipped_byte_is_caught_or_harmless(tmp_path):
    """Flip each byte of a small checkpoint in turn: load either raises
    CheckpointError or (for zip bookkeeping such as timestamps and local-header
    fields it does not use) returns exactly the saved data -- never wrong data,
    never another exception."""
    obj = {"w": np.arange(40, dtype=np.float32), "t": Tensor._make(np.ones((2, 3))), "n": 3, "s": "hé"}
    path = tmp_path / "small.npz"
    save(path, obj)
    data = path.read_bytes()
    caught = 0
    for i in range(len(data)):
        corrupt = bytearray(data)
        corrupt[i] ^= 0x81
        path.write_bytes(bytes(corrupt))
        try:
            out = load(path)
        except CheckpointError:
            caught += 1
            continue
        assert_same(obj, out, f"byte {i}")
    assert caught > len(data) // 2


def test_atomic_open_unlinks_its_temp_file_when_the_disk_is_full(tmp_path, monkeypatch):
    """Closing a file whose buffer cannot be flushed raises ENOSPC again; the temp file
    must still go (else the disk stays full), and the error names the target."""
    import errno
    import io

    from tinygen import serialization

    class FullDisk(io.BufferedWriter):
        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, mode, **kw):
        return FullDisk(io.FileIO(fd, "w"))

    target = tmp_path / "ckpt.npz"
    monkeypatch.setattr(serialization.os, "fdopen", fdopen)
    with pytest.raises(OSError) as e:
        with atomic_open(target, "wb") as f:
            f.write(b"x" * 10)
    monkeypatch.undo()
    assert leftovers(tmp_path) == []
    assert e.value.errno == errno.ENOSPC
    assert str(e.value) == f"cannot write {str(target)!r}: No space left on device"
    assert ".tmp" not in str(e.value) and "\n" not in str(e.value)
