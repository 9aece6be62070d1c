"""Save and load nested structures of arrays and tensors without pickle.

    tinygen.save("ckpt.npz", {"model": model.state_dict(), "step": 1200})
    state = tinygen.load("ckpt.npz")

The file is an ordinary ``.npz`` (a zip of ``.npy`` files) that numpy alone can
read.  Every array leaf becomes an entry ``a0, a1, ...``; the nested structure
around them is a JSON document stored as one more entry, ``__tinygen__`` (a
uint8 array of UTF-8 bytes)::

    {"kind": "tinygen.save", "version": 1, "root": <node>}

A node is plain JSON for ``None``, bools, ints, finite floats, strings and lists;
everything else is a JSON object tagged by ``"$t"``:

    {"$t": "dict", "items": [[key, node], ...]}      keys are str or int, order kept
    {"$t": "tuple", "items": [node, ...]}
    {"$t": "float", "value": "nan" | "inf" | "-inf"}  JSON has no nan/inf
    {"$t": "ndarray" | "tensor", "key": "a3", "dtype": "<f4", "shape": [2, 3]}

dtype and shape are recorded so that ``load`` notices an entry whose ``.npy``
header does not match what was written.  Tensors come back as leaf tensors with
``requires_grad=False``, on the CPU or on the device passed to ``load``; numpy
scalars come back as Python numbers.  GPU tensors and arrays are saved as numpy arrays.

Why no pickle: unpickling runs arbitrary code, and a checkpoint is exactly the
kind of file people download from strangers.  ``load`` reads with
``allow_pickle=False`` and refuses object arrays.

Writes are atomic (``atomic_open``): a temp file in the destination's directory
is written, flushed, fsync'ed and then renamed over the destination, so a crash
or an error mid-way leaves the previous file intact.
"""
import contextlib
import json
import math
import os
import tempfile
import zipfile
import zlib

import numpy as np

from .autograd.tensor import Tensor
from .backend import normalize_device, to_device, to_numpy
from .backend.cuda import is_cupy_array, require_available

__all__ = ["save", "load", "atomic_open", "AtomicWriteError", "CheckpointError", "FORMAT_VERSION"]

FORMAT_KIND = "tinygen.save"
FORMAT_VERSION = 1
META_ENTRY = "__tinygen__"

# np.savez grew ``allow_pickle`` in numpy 2.x; pass it where it exists so that
# writing can never pickle either (we refuse object arrays before that anyway).
try:
    import inspect
    _SAVEZ_TAKES_ALLOW_PICKLE = "allow_pickle" in inspect.signature(np.savez).parameters
except (TypeError, ValueError):  # pragma: no cover - exotic numpy builds
    _SAVEZ_TAKES_ALLOW_PICKLE = False

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class CheckpointError(ValueError):
    """A file that ``load`` cannot read as a tinygen checkpoint (corrupt, truncated,
    not an npz, unknown format version, ...).  The message names the file."""


# --- atomic writes ----------------------------------------------------------------
def _current_umask():
    # os.umask can only be read by setting it, which races with other threads
    # creating files; Linux exposes it read-only in /proc.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path, mode="wb", encoding=None, newline=None):
    """Open ``path`` for writing so that it is replaced all at once or not at all.

    Yields a file object on a temp file in the same directory (same filesystem, so
    the final ``os.replace`` is atomic).  When the block ends normally the file is
    flushed, fsync'ed and renamed over ``path``; when it raises, the temp file is
    removed and an existing ``path`` is left untouched.  ``mode`` is ``"wb"``
    (bytes) or ``"w"``/``"wt"`` (text, UTF-8 unless ``encoding`` says otherwise).

    A symlink at ``path`` is followed (its target is replaced, like ``open`` would
    write through it).  The new file gets the old file's permissions, or the
    usual ``0o666 & ~umask`` for a new one (``mkstemp`` alone would give 0600).
    """
    if mode not in ("wb", "w", "wt"):
        raise ValueError(f"atomic_open supports modes 'wb', 'w' and 'wt', got {mode!r}")
    dest = os.path.realpath(os.fspath(path))
    directory, name = os.path.split(dest)
    if isinstance(dest, bytes):
        prefix, suffix = b"." + name + b".", b".tmp"
    else:
        prefix, suffix = "." + name + ".", ".tmp"
    try:
        perms = os.stat(dest).st_mode & 0o7777
    except OSError:
        perms = 0o666 & ~_current_umask()

    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    except OSError as e:
        raise _write_error(dest, e) from None
    f = None
    try:
        if "b" in mode:
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
        yield f
        if not f.closed:  # the caller may have closed it; then the data was flushed
            f.flush()
            os.fsync(f.fileno())
            f.close()
        os.chmod(tmp, perms)
        os.replace(tmp, dest)
    except BaseException as e:
        # Unlink first: closing can raise again (ENOSPC while flushing the buffer), and
        # a temp file left behind would keep the disk full for the retry.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        with contextlib.suppress(OSError):
            if f is None:
                os.close(fd)
            else:
                f.close()
        if isinstance(e, OSError):
            raise _write_error(dest, e) from None
        raise
    _fsync_directory(directory)


class AtomicWriteError(OSError):
    """Writing a file failed (disk full, read-only, no permission); names the target, not
    the temp file, and nothing of the temp file is left behind."""

    def __str__(self):
        return self.strerror


def _write_error(dest, e):
    reason = e.strerror or str(e)
    return AtomicWriteError(e.errno, f"cannot write {dest!r}: {reason}")


    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); best effort elsewhere."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        dfd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# --- save -------------------------------------------------------------------------
def _is_path(x):
    return isinstance(x, (str, os.PathLike))


def _sub(path, key):
    return f"{path}[{key!r}]"


class _Encoder:
    """Turns a nested structure into a JSON node and a list of arrays."""

    def __init__(self):
        self.arrays = {}
        self._active = set()  # ids of containers on the current path (cycle check)

    def _array(self, arr, tag, path):
        if arr.dtype.hasobject:
            raise TypeError(
                f"cannot save {path}: object-dtype arrays are refused (they would need pickle)"
            )
        if isinstance(arr, np.ma.MaskedArray):
            raise TypeError(f"cannot save {path}: masked arrays are not supported (the mask would be lost)")
        arr = np.asarray(arr)
        key = f"a{len(self.arrays)}"
        self.arrays[key] = arr
        return {"$t": tag, "key": key, "dtype": arr.dtype.str, "shape": list(arr.shape)}

    def encode(self, x, path):
        # Order matters: bool before int (bool is an int), numpy scalars before
        # float (np.float64 is a float), Tensor before everything.
        if x is None or x is True or x is False:
            return x
        if isinstance(x, Tensor):
            return self._array(x.numpy(), "tensor", path)
        if is_cupy_array(x):  # a raw GPU array (optimizer state, buffers): saved as numpy
            return self._array(to_numpy(x), "ndarray", path)
        if isinstance(x, np.ndarray):
            return self._array(x, "ndarray", path)
        if isinstance(x, np.generic):
            if isinstance(x, np.bool_):
                return bool(x)
            if isinstance(x, np.integer):
                return int(x)
            if isinstance(x, np.floating):
                return self._float(float(x))
            if isinstance(x, np.str_):
                return str(x)
            raise TypeError(
                f"cannot save {path}: numpy scalar of dtype {x.dtype} is not supported "
                "(wrap it in a 0-d array: np.asarray(x))"
            )
        if isinstance(x, bool):  # a bool subclass other than True/False cannot exist
            return bool(x)       # pragma: no cover
        if isinstance(x, int):
            return int(x)
        if isinstance(x, float):
            return self._float(float(x))
        if isinstance(x, str):
            return str(x)
        if isinstance(x, (dict, list, tuple)):
            if id(x) in self._active:
                raise ValueError(f"cannot save {path}: circular reference")
            self._active.add(id(x))
            try:
                return self._container(x, path)
            finally:
                self._active.discard(id(x))
        raise TypeError(
            f"cannot save {path}: unsupported type {type(x).__module__}.{type(x).__qualname__} "
            "(supported: dict with str or int keys, list, tuple, None, bool, int, float, str, "
            "numpy scalars and arrays, Tensor)"
        )

    def _container(self, x, path):
        if isinstance(x, dict):
            items = []
            for k, v in x.items():
                # int keys too: optimizer state is keyed by parameter index, as in PyTorch.
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise TypeError(
                        f"cannot save {_sub(path, k)}: dict keys must be str or int, got "
                        f"{type(k).__qualname__}"
                    )
                items.append([k if isinstance(k, str) else int(k), self.encode(v, _sub(path, k))])
            return {"$t": "dict", "items": items}
        items = [self.encode(v, f"{path}[{i}]") for i, v in enumerate(x)]
        return {"$t": "tuple", "items": items} if isinstance(x, tuple) else items

    @staticmethod
    def _float(v):
        if math.isfinite(v):
            return v
        return {"$t": "float", "value": "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")}


def save(path, obj):
    """Write ``obj`` (a nested structure of arrays and tensors) to ``path``.

    Both ``save(path, obj)`` and PyTorch's ``save(obj, path)`` are accepted: the
    argument that is a ``str`` or ``os.PathLike`` is the path.  ``path`` is used
    as given (no ``.npz`` is appended).  Hence a bare string cannot be saved as
    the whole object (``save("a", "b")`` is ambiguous); put it in a list or dict.  The write is atomic.  Raises
    ``TypeError`` naming the key path (e.g. ``state['layers'][2]``) of a value
    that cannot be saved; nothing is written then.
    """
    if _is_path(path) == _is_path(obj):
        raise TypeError(
            "save(path, obj) (or save(obj, path)) needs exactly one argument that is a "
            "path (str or os.PathLike) and one object to save; got "
            f"{type(path).__qualname__} and {type(obj).__qualname__}"
        )
    if not _is_path(path):
        path, obj = obj, path

    # Encode everything first: an unsupported value deep inside fails before any
    # file is created.
    enc = _Encoder()
    root = enc.encode(obj, "state")
    doc = {"kind": FORMAT_KIND, "version": FORMAT_VERSION, "root": root}
    # ensure_ascii keeps lone surrogates in strings round-trippable (escaped \udxxx).
    meta = json.dumps(doc, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    entries = {META_ENTRY: np.frombuffer(meta.encode("utf-8"), dtype=np.uint8)}
    entries.update(enc.arrays)
    kwargs = {"allow_pickle": False} if _SAVEZ_TAKES_ALLOW_PICKLE else {}
    with atomic_open(path, "wb") as f:
        np.savez(f, **entries, **kwargs)  # a file object: numpy appends no ".npz"


# --- load -------------------------------------------------------------------------
class _Decoder:
    def __init__(self, npz, filename, device):
        self.npz = npz
        self.filename = filename
        self.device = device
        self.names = set(npz.zip.namelist())

    def fail(self, what):
        return CheckpointError(f"{self.filename!r} is not a valid tinygen checkpoint: {what}")

    def decode(self, node, path):
        if node is None or isinstance(node, (bool, int, str)):
            return node
        if isinstance(node, float):
            return node
        if isinstance(node, list):
            return [self.decode(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict):  # pragma: no cover - json gives no other types
            raise self.fail(f"unexpected JSON value at {path}")
        tag = node.get("$t")
        if tag == "dict":
            items = self._items(node, path)
            out = {}
            for pair in items:
                if not (isinstance(pair, list) and len(pair) == 2
                        and isinstance(pair[0], (str, int)) and not isinstance(pair[0], bool)):
                    raise self.fail(f"malformed dict item at {path}")
                key = pair[0]
                if key in out:
                    raise self.fail(f"duplicate key {key!r} at {path}")
                out[key] = self.decode(pair[1], _sub(path, key))
            return out
        if tag == "tuple":
            return tuple(self.decode(v, f"{path}[{i}]") for i, v in enumerate(self._items(node, path)))
        if tag == "float":
            value = node.get("value")
            if value not in _NONFINITE:
                raise self.fail(f"bad float value {value!r} at {path}")
            return _NONFINITE[value]
        if tag in ("ndarray", "tensor"):
            arr = self._array(node, path)
            return Tensor._make(to_device(arr, self.device)) if tag == "tensor" else arr
        raise self.fail(f"unknown node {tag!r} at {path}")

    def _items(self, node, path):
        items = node.get("items")
        if not isinstance(items, list):
            raise self.fail(f"malformed {node.get('$t')} at {path}")
        return items

    def _array(self, node, path):
        key, dtype, shape = node.get("key"), node.get("dtype"), node.get("shape")
        if not (isinstance(key, str) and isinstance(dtype, str) and isinstance(shape, list)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
            raise self.fail(f"malformed array reference at {path}")
        member = key + ".npy"
        if key == META_ENTRY or member not in self.names:
            raise self.fail(f"{path} refers to array {key!r}, which is not in the file")
        try:
            want_dtype = np.dtype(dtype)
        except TypeError:
            raise self.fail(f"bad dtype {dtype!r} recorded for {path}") from None
        if want_dtype.hasobject:
            raise self.fail(f"{path} is an object array (refused: loading it would need pickle)")
        nbytes = math.prod(shape) * want_dtype.itemsize
        if self.npz.zip.getinfo(member).file_size < nbytes:
            raise self.fail(f"entry {key!r} ({path}) is shorter than its recorded shape {tuple(shape)}")
        arr = _read_member(self.npz.zip, member)
        if arr.dtype.str != dtype or list(arr.shape) != shape:
            raise self.fail(
                f"entry {key!r} ({path}) holds {arr.dtype.str} {arr.shape}, expected "
                f"{dtype} {tuple(shape)}"
            )
        return arr


def _read_member(zf, member):
    """Read one ``.npy`` member fully; also insists that the whole member is
    consumed, because zipfile checks the CRC only on reaching the member's end."""
    with zf.open(member) as f:
        arr = np.lib.format.read_array(f, allow_pickle=False)
        if f.read(1):
            raise ValueError(f"trailing bytes after the array data in {member}")
    return arr


# What corrupted input can make numpy/zipfile/json raise while we parse it
# (zipfile: NotImplementedError for a flipped compression method or version,
# RuntimeError for a flipped "encrypted" flag).
_CORRUPT = (zipfile.BadZipFile, zlib.error, ValueError, KeyError, EOFError, OSError,
            UnicodeDecodeError, OverflowError, MemoryError, TypeError, IndexError,
            NotImplementedError, RuntimeError)


def load(path, device="cpu"):
    """Read a file written by ``save``; returns the saved structure.

    Tensors are created on ``device`` ('cpu' or 'cuda'); plain arrays stay numpy
    arrays.  Arrays are read fully into memory and the file is closed before returning.
    Raises ``FileNotFoundError`` for a missing file and ``CheckpointError`` (a
    ``ValueError``) naming the file for anything that is not a readable tinygen
    checkpoint.  Never unpickles anything.
    """
    if not _is_path(path):
        raise TypeError(f"load(path) expects a str or os.PathLike, got {type(path).__qualname__}")
    filename = os.fspath(path)
    device = normalize_device(device)
    if device == "cuda":
        require_available()  # before reading anything
    # We open the file ourselves so that it is closed on every path (np.load
    # leaks its handle when the zip's central directory is unreadable).
    with open(filename, "rb") as fh, contextlib.ExitStack() as stack:
        try:
            npz = np.load(fh, allow_pickle=False)
        except _CORRUPT as e:
            # Neither zip nor .npy: np.load refuses (it would otherwise unpickle); its
            # message then advises allow_pickle=True, which a checkpoint must never need.
            why = "" if "pickle" in str(e) else f": {e}"
            raise CheckpointError(f"{filename!r} is not an npz archive (not a file written "
                                  f"by tinygen.save; truncated or corrupt?){why}") from e
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{filename!r} is a single .npy array, not a tinygen checkpoint")
        stack.enter_context(npz)
        dec = _Decoder(npz, filename, device)
        try:
            doc = _read_meta(npz, dec)
            return dec.decode(doc["root"], "state")
        except CheckpointError:
            raise
        except RecursionError as e:
            raise dec.fail("structure nested too deeply") from e
        except _CORRUPT as e:
            raise dec.fail(f"{type(e).__name__}: {e}") from e


def _read_meta(npz, dec):
    member = META_ENTRY + ".npy"
    if member not in dec.names:
        raise dec.fail(f"no {META_ENTRY!r} entry (is it an npz written by something else?)")
    raw = _read_member(npz.zip, member)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise dec.fail(f"{META_ENTRY!r} entry is not a 1-d uint8 array")
    try:
        doc = json.loads(raw.tobytes().decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise dec.fail(f"bad JSON in {META_ENTRY!r}: {e}") from e
    if not isinstance(doc, dict) or doc.get("kind") != FORMAT_KIND:
        raise dec.fail(f"{META_ENTRY!r} does not describe a {FORMAT_KIND!r} document")
    version = doc.get("version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise dec.fail(
            f"unsupported format version {version!r} (this tinygen reads version {FORMAT_VERSION})"
        )
    if "root" not in doc:
        raise dec.fail(f"{META_ENTRY!r} has no 'root'")
    return doc


def _refuse_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")
