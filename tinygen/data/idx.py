"""Reader and writer for the IDX format (the format of MNIST and Fashion-MNIST).

An IDX file is

    0x00 0x00 <type code> <ndim>          4-byte magic
    ndim big-endian int32 sizes           one per dimension
    prod(sizes) items, big-endian         the data, row-major

optionally gzip-compressed as a whole. Compression is detected by the gzip magic bytes
(0x1f 0x8b), never by the file name, so a renamed file still reads.

The reader is strict: every malformed file raises DataError naming the file and the
problem (bad magic, unknown type code, truncated data, trailing bytes, corrupt gzip).
Silently reading a short file would hand a model zero-padded or misaligned images.
"""

import gzip
import os
import tempfile
import zlib

import numpy as np

from .errors import DataError

# type code -> big-endian dtype on disk. The array returned is native-endian.
TYPE_CODES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_DTYPE = {dt.newbyteorder("="): code for code, dt in TYPE_CODES.items()}

_GZIP_MAGIC = b"\x1f\x8b"
_INT32_MAX = 2**31 - 1


def read_idx(path):
    """Read an IDX file (raw or gzip-compressed) into a native-endian numpy array.

    Raises DataError, naming the file, when it is missing or malformed.
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    if raw[:2] == _GZIP_MAGIC:
        raw = _gunzip(path, raw)
    return _parse(path, raw)


def write_idx(path, array, compress=None):
    """Write `array` to `path` in IDX format, atomically.

    compress: True for gzip, False for raw; None (default) means gzip exactly when the
    file name ends in ".gz". The data goes to a temporary file in the same directory
    that is then renamed over `path`, so a reader never sees a half-written file.
    Supported dtypes: uint8, int8, int16, int32, float32, float64 (any byte order).
    """
    path = os.fspath(path)
    array = np.asarray(array)
    code = _CODE_OF_DTYPE.get(array.dtype.newbyteorder("="))
    if code is None:
        supported = ", ".join(str(dt.newbyteorder("=")) for dt in TYPE_CODES.values())
        raise ValueError(f"write_idx({path!r}): dtype {array.dtype} has no IDX type code "
                         f"(supported: {supported})")
    if array.ndim > 255:
        raise ValueError(f"write_idx({path!r}): {array.ndim} dimensions; IDX allows at most 255")
    if any(n > _INT32_MAX for n in array.shape):
        raise ValueError(f"write_idx({path!r}): shape {array.shape} has a size that does not "
                         f"fit in an int32")
    if compress is None:
        compress = path.endswith(".gz")

    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    body = np.ascontiguousarray(array, dtype=TYPE_CODES[code]).tobytes()
    payload = header + body
    if compress:
        # mtime=0 and no stored name: the same array always gives the same bytes.
        payload = gzip.compress(payload, mtime=0)
    _atomic_write(path, payload)


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an IDX file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from e


def _gunzip(path, raw):
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"{path}: truncated gzip stream (the file ends before the "
                        f"compressed data does; re-download it)") from None
    except (OSError, zlib.error) as e:
        # gzip.BadGzipFile (an OSError) covers bad CRC, bad length and trailing bytes
        # after the gzip member; zlib.error covers a corrupt deflate stream.
        raise DataError(f"{path}: corrupt gzip stream ({e})") from e


def _parse(path, raw):
    if len(raw) < 4:
        raise DataError(f"{path}: truncated header: expected at least 4 bytes of IDX magic, "
                        f"got {len(raw)}")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: bad magic {raw[:4].hex(' ')}: an IDX file starts with "
                        f"00 00 <type code> <ndim>")
    code, ndim = raw[2], raw[3]
    disk_dtype = TYPE_CODES.get(code)
    if disk_dtype is None:
        known = ", ".join(f"0x{c:02X}" for c in TYPE_CODES)
        raise DataError(f"{path}: unknown IDX type code 0x{code:02X} (known: {known})")

    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated header: expected {header_len} bytes for "
                        f"{ndim} dimensions, got {len(raw)}")
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if any(n < 0 for n in shape):
        raise DataError(f"{path}: negative dimension size in shape {shape}")

    count = 1
    for n in shape:
        count *= n
    expected = count * disk_dtype.itemsize
    got = len(raw) - header_len
    if got < expected:
        raise DataError(f"{path}: truncated data: shape {shape} of {disk_dtype.newbyteorder('=')} "
                        f"needs {expected} bytes, got {got}")
    if got > expected:
        raise DataError(f"{path}: {got - expected} bytes of trailing garbage after the "
                        f"{expected} data bytes of shape {shape}")

    data = np.frombuffer(raw, dtype=disk_dtype, count=count, offset=header_len)
    # astype copies, so the result is writable and owns native-endian memory.
    return data.astype(disk_dtype.newbyteorder("=")).reshape(shape)


def _atomic_write(path, payload):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; give it the permissions open() would have.
        umask = os.umask(0o022)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
