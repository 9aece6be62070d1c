"""IDX reader/writer: round trips for every type code, and a DataError for every way a
file can be broken, each naming the file."""

import gzip
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygen.data import DataError, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def sample_array(dtype, shape=(3, 4, 5), seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


# --- round trips ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_each_dtype(tmp_path, dtype, compress):
    a = sample_array(dtype)
    path = tmp_path / "a.idx"
    write_idx(path, a, compress=compress)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.dtype.isnative
    assert b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    assert b.flags.writeable


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), compress=st.booleans())
def test_round_trip_hypothesis(tmp_path, data, compress):
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
                      label="shape")
    a = data.draw(hnp.arrays(dtype, shape), label="array")
    path = tmp_path / "h.idx"
    write_idx(path, a, compress=compress)
    b = read_idx(path)
    assert b.dtype == a.dtype and b.shape == a.shape
    # Bytes compare equal NaN payloads too.
    assert b.tobytes() == np.ascontiguousarray(a).tobytes()


def test_big_endian_and_noncontiguous_input(tmp_path):
    a = np.arange(24, dtype=">i4").reshape(4, 6)[:, ::2]
    write_idx(tmp_path / "x.idx", a)
    b = read_idx(tmp_path / "x.idx")
    assert b.dtype == np.int32
    np.testing.assert_array_equal(b, a)


def test_header_layout(tmp_path):
    a = np.zeros((2, 3), dtype=np.int16)
    write_idx(tmp_path / "x.idx", a)
    raw = (tmp_path / "x.idx").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0B, 2])
    assert raw[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert len(raw) == 12 + 2 * 3 * 2


def test_compress_default_follows_name(tmp_path):
    a = sample_array(np.uint8)
    write_idx(tmp_path / "a.gz", a)
    write_idx(tmp_path / "a.idx", a)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a.idx").read_bytes()[:2] == b"\x00\x00"


def test_gzip_detected_by_magic_not_name(tmp_path):
    a = sample_array(np.float32)
    write_idx(tmp_path / "plain-name", a, compress=True)
    write_idx(tmp_path / "looks.gz", a, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain-name"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "looks.gz"), a)


def test_gzip_output_is_deterministic(tmp_path):
    a = sample_array(np.uint8)
    write_idx(tmp_path / "1.gz", a)
    write_idx(tmp_path / "2.gz", a)
    assert (tmp_path / "1.gz").read_bytes() == (tmp_path / "2.gz").read_bytes()


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a.idx"
    write_idx(path, sample_array(np.uint8, seed=1))
    write_idx(path, sample_array(np.uint8, seed=2))  # overwrite in place
    np.testing.assert_array_equal(read_idx(path), sample_array(np.uint8, seed=2))
    assert sorted(os.listdir(tmp_path)) == ["a.idx"]


def test_write_failure_keeps_old_file_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "a.idx"
    old = sample_array(np.uint8, seed=1)
    write_idx(path, old)

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        write_idx(path, sample_array(np.uint8, seed=2))
    monkeypatch.undo()
    np.testing.assert_array_equal(read_idx(path), old)
    assert sorted(os.listdir(tmp_path)) == ["a.idx"]


@pytest.mark.parametrize("bad", [np.zeros(3, dtype=np.int64), np.zeros(3, dtype=bool),
                                 np.zeros(3, dtype=np.float16), np.zeros(3, dtype=np.uint16)])
def test_write_rejects_unsupported_dtype(tmp_path, bad):
    with pytest.raises(ValueError, match="no IDX type code"):
        write_idx(tmp_path / "x.idx", bad)
    assert not os.listdir(tmp_path)


# --- malformed files -----------------------------------------------------------------

def write_raw(tmp_path, raw, name="bad.idx"):
    path = tmp_path / name
    path.write_bytes(raw)
    return path


CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
         np.float32: 0x0D, np.float64: 0x0E}


def good_bytes(dtype=np.uint8, shape=(4, 5)):
    """A valid raw IDX file, built by hand (independently of write_idx)."""
    a = sample_array(dtype, shape)
    header = bytes([0, 0, CODES[dtype], a.ndim]) + np.asarray(a.shape, ">i4").tobytes()
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_reads_hand_built_file(tmp_path, dtype):
    path = write_raw(tmp_path, good_bytes(dtype))
    a = read_idx(path)
    assert a.dtype == dtype
    np.testing.assert_array_equal(a, sample_array(dtype, (4, 5)))
    write_idx(tmp_path / "w.idx", a)
    assert (tmp_path / "w.idx").read_bytes() == good_bytes(dtype)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.idx"
    with pytest.raises(DataError, match="no such file") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="directory") as e:
        read_idx(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_data(tmp_path, compress):
    raw = good_bytes(np.int32, (4, 5))[:-3]
    if compress:
        raw = gzip.compress(raw)
    path = write_raw(tmp_path, raw)
    with pytest.raises(DataError, match=r"truncated data.*needs 80 bytes, got 77") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_truncated_file_by_a_few_bytes(tmp_path):
    path = tmp_path / "a.idx"
    write_idx(path, sample_array(np.float64))
    raw = path.read_bytes()
    path.write_bytes(raw[:-5])
    with pytest.raises(DataError, match="truncated") as e:
        read_idx(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("n", [0, 2, 3])
def test_truncated_magic(tmp_path, n):
    path = write_raw(tmp_path, good_bytes()[:n])
    with pytest.raises(DataError, match="truncated header") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_truncated_dims(tmp_path):
    path = write_raw(tmp_path, good_bytes()[:9])  # 4 magic + 5 of 8 dimension bytes
    with pytest.raises(DataError, match="truncated header.*12 bytes.*got 9") as e:
        read_idx(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("magic", [b"\x01\x00", b"\x00\x01", b"\xff\xff"])
def test_bad_magic(tmp_path, magic):
    path = write_raw(tmp_path, magic + good_bytes()[2:])
    with pytest.raises(DataError, match="bad magic") as e:
        read_idx(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("code", [0x00, 0x07, 0x0A, 0x0F, 0xFF])
def test_unknown_type_code(tmp_path, code):
    raw = bytearray(good_bytes())
    raw[2] = code
    path = write_raw(tmp_path, bytes(raw))
    with pytest.raises(DataError, match=f"unknown IDX type code 0x{code:02X}") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_negative_dimension(tmp_path):
    raw = bytes([0, 0, 0x08, 1]) + (-1).to_bytes(4, "big", signed=True)
    path = write_raw(tmp_path, raw)
    with pytest.raises(DataError, match="negative") as e:
        read_idx(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("compress", [False, True])
def test_trailing_garbage(tmp_path, compress):
    raw = good_bytes() + b"garbage"
    if compress:
        raw = gzip.compress(raw)
    path = write_raw(tmp_path, raw)
    with pytest.raises(DataError, match="7 bytes of trailing garbage") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_garbage_after_gzip_stream(tmp_path):
    path = write_raw(tmp_path, gzip.compress(good_bytes()) + b"garbage!")
    with pytest.raises(DataError, match="corrupt gzip") as e:
        read_idx(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("cut", [1, 4, 8, 20])
def test_truncated_gzip_stream(tmp_path, cut):
    path = write_raw(tmp_path, gzip.compress(good_bytes(np.float32, (10, 10)))[:-cut])
    with pytest.raises(DataError, match="gzip") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_gzip_bad_crc(tmp_path):
    raw = bytearray(gzip.compress(good_bytes()))
    raw[-8] ^= 0xFF  # the CRC32 is the 4 bytes before the final 4-byte length
    path = write_raw(tmp_path, bytes(raw))
    with pytest.raises(DataError, match="corrupt gzip.*CRC") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_gzip_corrupt_deflate_data(tmp_path):
    raw = bytearray(gzip.compress(good_bytes(np.float32, (20, 20))))
    raw[10] ^= 0xFF  # first byte of the deflate stream after the 10-byte gzip header
    raw[11] ^= 0xFF
    path = write_raw(tmp_path, bytes(raw))
    with pytest.raises(DataError, match="gzip") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_gzip_header_only(tmp_path):
    path = write_raw(tmp_path, b"\x1f\x8b")
    with pytest.raises(DataError, match="gzip") as e:
        read_idx(path)
    assert str(path) in str(e.value)
