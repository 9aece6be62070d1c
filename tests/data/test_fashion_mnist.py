"""Finding and loading Fashion-MNIST: search order over synthetic IDX sets in tmp dirs,
validation errors naming the file, and (marked `data`) the real dataset when present."""

import numpy as np
import pytest

from tinygen.data import CLASSES, DataError, find_fashion_mnist, load_fashion_mnist, write_idx
from tinygen.data import fashion_mnist as fm

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def make_set(directory, n_train=12, n_test=7, gz=True, seed=0, skip=()):
    """Write a small synthetic Fashion-MNIST set; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": ((np.arange(n_test) * 3) % 10).astype(np.uint8),
    }
    for name, a in arrays.items():
        if name not in skip:
            write_idx(directory / (name + (".gz" if gz else "")), a)
    return directory


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real data anywhere: empty env, cache and system dirs point into tmp_path, and
    no download (it would fetch the real files into the cache on an online machine)."""
    monkeypatch.delenv("TINYGEN_DATA", raising=False)
    monkeypatch.setenv("TINYGEN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(fm, "SYSTEM_DIRS", (tmp_path / "system" / "fashion-mnist",))
    return tmp_path


def test_classes():
    assert len(CLASSES) == 10
    assert CLASSES[0] == "T-shirt/top" and CLASSES[9] == "Ankle boot"


# --- search order --------------------------------------------------------------------

def test_nothing_found_lists_every_place(isolated):
    with pytest.raises(DataError) as e:
        find_fashion_mnist()
    msg = str(e.value)
    assert "$TINYGEN_DATA:" not in msg  # unset, so not a place searched
    assert "set $TINYGEN_DATA" in msg  # but suggested
    assert str(isolated / "xdg-cache" / "tinygen" / "fashion-mnist") in msg
    assert str(isolated / "system" / "fashion-mnist") in msg
    assert "does not exist" in msg


def test_nothing_found_with_env_lists_env_dirs(isolated, monkeypatch):
    monkeypatch.setenv("TINYGEN_DATA", str(isolated / "data"))
    with pytest.raises(DataError) as e:
        find_fashion_mnist()
    msg = str(e.value)
    assert f"$TINYGEN_DATA: {isolated / 'data'} " in msg
    assert str(isolated / "data" / "fashion-mnist") in msg
    # a named $TINYGEN_DATA is the only place looked at (no silent other copy)
    assert str(isolated / "xdg-cache") not in msg and str(isolated / "system") not in msg
    assert "unset $TINYGEN_DATA" in msg


def test_system_dir_found(isolated):
    system = make_set(isolated / "system" / "fashion-mnist")
    assert find_fashion_mnist() == system


def test_cache_beats_system(isolated):
    make_set(isolated / "system" / "fashion-mnist")
    cache = make_set(isolated / "xdg-cache" / "tinygen" / "fashion-mnist")
    assert find_fashion_mnist() == cache


def test_cache_defaults_to_home_without_xdg(isolated, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    cache = make_set(isolated / "home" / ".cache" / "tinygen" / "fashion-mnist")
    assert fm.cache_dir() == cache
    assert find_fashion_mnist() == cache


def test_relative_xdg_cache_home_is_ignored(isolated, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert fm.cache_dir() == isolated / "home" / ".cache" / "tinygen" / "fashion-mnist"


def test_env_beats_cache(isolated, monkeypatch):
    make_set(isolated / "xdg-cache" / "tinygen" / "fashion-mnist")
    env = make_set(isolated / "data")
    monkeypatch.setenv("TINYGEN_DATA", str(env))
    assert find_fashion_mnist() == env


def test_env_subdirectory(isolated, monkeypatch):
    sub = make_set(isolated / "data" / "fashion-mnist")
    monkeypatch.setenv("TINYGEN_DATA", str(isolated / "data"))
    assert find_fashion_mnist() == sub


def test_env_without_files_is_an_error_not_another_copy(isolated, monkeypatch):
    """Issue 11: $TINYGEN_DATA naming a missing or incomplete folder used to fall back
    silently to another copy (or the embedded subset)."""
    make_set(isolated / "system" / "fashion-mnist")
    incomplete = make_set(isolated / "data")
    next(incomplete.glob("t10k-labels*")).unlink()
    for folder in (isolated / "data", isolated / "missing"):
        monkeypatch.setenv("TINYGEN_DATA", str(folder))
        with pytest.raises(DataError, match="TINYGEN_DATA"):
            find_fashion_mnist()
        with pytest.raises(DataError, match=str(folder)):
            load_fashion_mnist("test")  # no embedded-subset fallback either


def test_root_beats_everything(isolated, monkeypatch):
    make_set(isolated / "system" / "fashion-mnist")
    make_set(isolated / "xdg-cache" / "tinygen" / "fashion-mnist")
    monkeypatch.setenv("TINYGEN_DATA", str(make_set(isolated / "data")))
    root = make_set(isolated / "mine")
    assert find_fashion_mnist(root) == root
    assert find_fashion_mnist(str(root)) == root


def test_root_subdirectory(isolated):
    sub = make_set(isolated / "mine" / "fashion-mnist")
    assert find_fashion_mnist(isolated / "mine") == sub


def test_root_without_files_is_an_error_naming_it(isolated):
    make_set(isolated / "system" / "fashion-mnist")  # would be found without a root
    root = isolated / "empty"
    root.mkdir()
    with pytest.raises(DataError) as e:
        find_fashion_mnist(root)
    msg = str(e.value)
    assert f"root argument: {root} (has none of the files)" in msg
    assert "system" not in msg.split("needed")[0]


def test_partial_set_is_skipped_and_reported(isolated):
    partial = make_set(isolated / "system" / "fashion-mnist", skip=("t10k-labels-idx1-ubyte",))
    with pytest.raises(DataError) as e:
        find_fashion_mnist()
    assert f"{partial} (missing t10k-labels-idx1-ubyte)" in str(e.value)


def test_raw_and_gz_may_mix(isolated):
    d = make_set(isolated / "mix", gz=False, skip=NAMES[:2])
    make_set(d, gz=True, skip=NAMES[2:])
    assert find_fashion_mnist(d) == d
    images, labels = load_fashion_mnist("train", d)
    assert images.shape == (12, 28, 28)


# --- loading ---------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_load_synthetic(isolated, gz):
    root = make_set(isolated / "mine", gz=gz)
    images, labels = load_fashion_mnist("train", root)
    assert images.dtype == np.uint8 and images.shape == (12, 28, 28)
    assert labels.dtype == np.int64 and labels.shape == (12,)
    np.testing.assert_array_equal(labels, np.arange(12) % 10)
    images, labels = load_fashion_mnist("test", root)
    assert images.shape == (7, 28, 28)
    np.testing.assert_array_equal(labels, (np.arange(7) * 3) % 10)


def test_load_uses_search(isolated, monkeypatch):
    env = make_set(isolated / "data", n_train=5)
    monkeypatch.setenv("TINYGEN_DATA", str(env))
    images, labels = load_fashion_mnist()
    assert images.shape == (5, 28, 28)


def test_bad_split(isolated):
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation", make_set(isolated / "mine"))


def replace_file(root, name, array):
    write_idx(root / (name + ".gz"), array)
    return root / (name + ".gz")


@pytest.mark.parametrize("bad, match", [
    (np.zeros((12, 28, 27), np.uint8), r"shape \(N, 28, 28\)"),
    (np.zeros((12, 784), np.uint8), r"shape \(N, 28, 28\)"),
    (np.zeros((12, 28, 28), np.float32), "uint8"),
])
def test_bad_images(isolated, bad, match):
    root = make_set(isolated / "mine")
    path = replace_file(root, "train-images-idx3-ubyte", bad)
    with pytest.raises(DataError, match=match) as e:
        load_fashion_mnist("train", root)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((12, 1), np.uint8), r"shape \(N,\)"),
    (np.zeros(11, np.uint8), "11 labels for 12 images"),
    (np.array([0] * 11 + [10], np.uint8), "label 10 at index 11"),
    (np.array([0] * 3 + [-1] + [0] * 8, np.int8), "label -1 at index 3"),
    (np.zeros(12, np.float32), "integers"),
])
def test_bad_labels(isolated, bad, match):
    root = make_set(isolated / "mine")
    path = replace_file(root, "train-labels-idx1-ubyte", bad)
    with pytest.raises(DataError, match=match) as e:
        load_fashion_mnist("train", root)
    assert str(path) in str(e.value)


def test_corrupt_file_error_names_it(isolated):
    root = make_set(isolated / "mine")
    path = root / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="gzip") as e:
        load_fashion_mnist("test", root)
    assert str(path) in str(e.value)


# --- the real dataset ------------------------------------------------------------------

def real_dataset_dir():
    try:
        return find_fashion_mnist()
    except DataError as e:
        pytest.skip(f"real Fashion-MNIST not installed (set $TINYGEN_DATA or install "
                    f"Debian's dataset-fashion-mnist): {e}")


@pytest.mark.data
@pytest.mark.parametrize("split, n", [("train", 60000), ("test", 10000)])
def test_real_dataset(split, n):
    root = real_dataset_dir()
    images, labels = load_fashion_mnist(split, root)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [n // 10] * 10)
    assert images.min() == 0 and images.max() == 255
