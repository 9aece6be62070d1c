"""Fashion-MNIST: find the four IDX files on this machine and load a split.

Offline first. The files are looked for, in order, in

1. the `root` argument, when one is given (and only there: a caller who names a
   directory wants that data, not a silent fallback to some other copy);
2. `$TINYGEN_DATA`, either the directory itself or `$TINYGEN_DATA/fashion-mnist` (when
   set, only there, for the same reason);
3. the user cache, `$XDG_CACHE_HOME/tinygen/fashion-mnist` (default `~/.cache/...`);
4. Debian's `dataset-fashion-mnist` package, `/usr/share/datasets/fashion-mnist`;
5. a download into the user cache, each file checked against its SHA-256
   (`tinygen.data.download`; skipped fast when offline or with `$TINYGEN_OFFLINE=1`).

Each place is a *source* in `_SOURCES`, tried lazily in order (the download only runs
when nothing before it had the files). A directory counts only when it has all four
files, each either raw or gzipped (`name` or `name.gz`).

When none of them has the data (and no `root` was named), `load_fashion_mnist` serves a
small subset embedded in the package (`fmnist_subset.npz`: 3000 training and 1000 test
images, class-balanced, MIT-licensed like the original, see FASHION_MNIST_LICENSE.txt)
and says so with a `SubsetWarning`: enough to smoke-test a model, not to report results.
"""

import contextlib
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import download
from .errors import DataError
from .idx import read_idx

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# split -> (images file, labels file), without the optional ".gz".
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

DATASET_DIRNAME = "fashion-mnist"
# Where Debian's dataset-fashion-mnist package installs the files. Module-level so that
# tests (and unusual systems) can point it elsewhere.
SYSTEM_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)

IMAGE_SHAPE = (28, 28)

# The embedded subset (built by `python -m tinygen.data.make_subset`).
SUBSET_PATH = Path(__file__).with_name("fmnist_subset.npz")
LICENSE_PATH = Path(__file__).with_name("FASHION_MNIST_LICENSE.txt")


class SubsetWarning(UserWarning):
    """The real Fashion-MNIST was not found: the small embedded subset is used."""


def cache_dir():
    """The per-user cache directory for Fashion-MNIST (it may not exist yet)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says relative paths in $XDG_CACHE_HOME are invalid and to be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "tinygen" / DATASET_DIRNAME


def find_fashion_mnist(root=None):
    """Return the directory holding the four Fashion-MNIST files.

    Raises DataError listing every place searched (and what each lacked) when none has
    them.
    """
    searched = []
    for candidates in _sources(root):
        for label, directory in candidates:
            missing = _missing_files(directory)
            if not missing:
                return directory
            searched.append((label, directory, missing))
    lines = [f"{label}: {directory} ({_describe_missing(directory, missing)})"
             for label, directory, missing in searched]
    named = root is not None or os.environ.get("TINYGEN_DATA")
    hint = ("put the files there" if root is not None else
            "put the files there, or unset $TINYGEN_DATA to search the usual places"
            if os.environ.get("TINYGEN_DATA") else
            "set $TINYGEN_DATA to a directory holding them, or install Debian's "
            "dataset-fashion-mnist package")
    # one named place: one line (the CLI's error line); the whole search: one line each
    sep = "; " if named else "\n  "
    raise DataError(f"Fashion-MNIST not found; searched:{' ' if named else sep}" +
                    sep.join(lines) + ("; " if named else "\n") +
                    f"needed: {', '.join(_all_names())} (each raw or .gz); {hint}")


def load_fashion_mnist(split="train", root=None, allow_subset=True):
    """Load one split as `(images, labels)`: uint8 (N, 28, 28) and int64 (N,).

    split is "train" (60000 images) or "test" (10000). The files are validated: images
    must be 3-D uint8 of 28x28, labels 1-D integers in 0..9, with the same N.

    When the files are found nowhere and `root` is None, the embedded subset (3000
    train / 1000 test images) is returned with a SubsetWarning, unless `allow_subset`
    is False (then the DataError listing the places searched is raised). A named
    `root` never falls back: whoever names a directory wants that data.
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    try:
        directory = find_fashion_mnist(root)
    except DataError as e:
        if root is not None or os.environ.get("TINYGEN_DATA") or not allow_subset:
            raise
        warnings.warn(_subset_warning(e), SubsetWarning, stacklevel=2)
        _note_source(EMBEDDED_SUBSET)
        return load_embedded_subset(split)
    _note_source(str(directory))
    images_name, labels_name = FILES[split]
    images_path = _existing(directory, images_name)
    labels_path = _existing(directory, labels_name)
    images = read_idx(images_path)
    labels = read_idx(labels_path)

    if images.dtype != np.uint8:
        raise DataError(f"{images_path}: images must be uint8, got {images.dtype}")
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{images_path}: images must have shape (N, 28, 28), "
                        f"got {images.shape}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{labels_path}: labels must be integers, got {labels.dtype}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: labels must have shape (N,), got {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} "
                        f"images in {images_path}")
    out_of_range = (labels < 0) | (labels >= len(CLASSES))
    if out_of_range.any():
        where = int(np.argmax(out_of_range))
        raise DataError(f"{labels_path}: label {int(labels[where])} at index {where} is "
                        f"outside 0..{len(CLASSES) - 1}")
    return images, labels.astype(np.int64)


EMBEDDED_SUBSET = "embedded subset"
_RECORDERS = []


@contextlib.contextmanager
def recording_sources():
    """Inside the block, every split loaded notes where it came from (a directory, or
    ``EMBEDDED_SUBSET``) in the list this yields: the runner records it in metrics.json."""
    seen = []
    _RECORDERS.append(seen)
    try:
        yield seen
    finally:
        _RECORDERS.remove(seen)


def _note_source(source):
    for seen in _RECORDERS:
        if source not in seen:
            seen.append(source)


def load_embedded_subset(split="train"):
    """The embedded subset's `split` as `(images, labels)`: uint8 (N, 28, 28), int64 (N,).

    3000 training / 1000 test images, 10% of each class (see make_subset.py).
    """
    if split not in FILES:
        raise ValueError(f"split must be one of {sorted(FILES)}, got {split!r}")
    path = SUBSET_PATH
    try:
        with np.load(path, allow_pickle=False) as npz:
            images = npz[f"{split}_images"]
            labels = npz[f"{split}_labels"]
    except FileNotFoundError:
        raise DataError(f"{path}: the embedded Fashion-MNIST subset is missing from this "
                        f"installation (reinstall tinygen)") from None
    except KeyError as e:
        raise DataError(f"{path}: the embedded subset has no entry {e}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: the embedded subset is corrupt ({e}); reinstall "
                        f"tinygen") from None
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE \
            or labels.shape != images.shape[:1] or labels.dtype.kind not in "iu" \
            or (labels.size and int(labels.max()) >= len(CLASSES)):
        raise DataError(f"{path}: the embedded subset's {split} arrays are malformed "
                        f"(images {images.dtype} {images.shape}, labels {labels.dtype} "
                        f"{labels.shape})")
    return images, labels.astype(np.int64)


def _subset_warning(error):
    searched = str(error).split("\nneeded:")[0].replace("Fashion-MNIST not found; searched",
                                                        "Searched")
    return ("Fashion-MNIST was not found, so tinygen uses the SMALL EMBEDDED SUBSET "
            "(3000 training / 1000 test images, 10% of each class): enough to try a model, "
            "not for results. " + searched + "\nTo get the full data: install Debian's "
            "dataset-fashion-mnist package (apt-get install dataset-fashion-mnist), or set "
            "$TINYGEN_DATA to a directory with the four IDX files, or run once with network "
            f"access (they are downloaded into {cache_dir()}).")


# --- sources ------------------------------------------------------------------------
# A source is a function of `root` returning a list of (label, directory) candidates.
# find_fashion_mnist tries them in order, calling each only when the ones before it
# had nothing (so the download source runs only when it is needed).

def _explicit_root_source(root):
    root = Path(os.fspath(root)).expanduser()
    return [("root argument", root), ("root argument", root / DATASET_DIRNAME)]


def _env_source(root):
    value = os.environ.get("TINYGEN_DATA")
    if not value:
        return []
    base = Path(value).expanduser()
    return [("$TINYGEN_DATA", base), ("$TINYGEN_DATA", base / DATASET_DIRNAME)]


def _cache_source(root):
    return [("user cache", cache_dir())]


def _system_source(root):
    return [("system (Debian dataset-fashion-mnist)", Path(d)) for d in SYSTEM_DIRS]


def _download_source(root):
    directory = cache_dir()
    try:
        download.download_fashion_mnist(directory)
    except download.DownloadError as e:
        return [(f"download into the user cache (failed: {e})", directory)]
    return [("download into the user cache", directory)]


_SOURCES = [_env_source, _cache_source, _system_source, _download_source]


def _sources(root):
    if root is not None:
        yield _explicit_root_source(root)
        return
    if os.environ.get("TINYGEN_DATA"):  # named, like root: that data or an error
        yield _env_source(root)
        return
    for source in _SOURCES:
        yield source(root)


# --- files in a directory ------------------------------------------------------------

def _all_names():
    return [name for pair in FILES.values() for name in pair]


def _find_file(directory, name):
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _existing(directory, name):
    path = _find_file(directory, name)
    if path is None:  # removed between the search and the load
        raise DataError(f"{directory / name}: no such file (nor {name}.gz)")
    return path


def _missing_files(directory):
    return [name for name in _all_names() if _find_file(directory, name) is None]


def _describe_missing(directory, missing):
    if not directory.exists():
        return "does not exist"
    if not directory.is_dir():
        return "not a directory"
    if len(missing) == len(_all_names()):
        return "has none of the files"
    return "missing " + ", ".join(missing)
