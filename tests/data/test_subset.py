"""The embedded Fashion-MNIST subset: what it holds, when it is served (with a warning),
and `load_dataset` over it."""
import numpy as np
import pytest

from tinygen.data import (
    DataError,
    SubsetWarning,
    find_fashion_mnist,
    load_dataset,
    load_embedded_subset,
    load_fashion_mnist,
)
from tinygen.data import fashion_mnist as fm


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """Every source empty: no env, empty cache and system dirs, no download."""
    monkeypatch.delenv("TINYGEN_DATA", raising=False)
    monkeypatch.setenv("TINYGEN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fm, "SYSTEM_DIRS", (tmp_path / "system",))
    return tmp_path


@pytest.mark.parametrize("split, n", [("train", 3000), ("test", 1000)])
def test_subset_shapes_labels_balance(split, n):
    images, labels = load_embedded_subset(split)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [n // 10] * 10)
    assert images.min() == 0 and images.max() == 255
    # classes interleaved as in the original files, not sorted
    assert len(set(labels[:30].tolist())) > 3


def test_subset_file_is_small_and_licensed():
    assert fm.SUBSET_PATH.stat().st_size < 3_000_000
    text = fm.LICENSE_PATH.read_text()
    assert "MIT" in text and "Zalando" in text and "Permission is hereby granted" in text


def test_fallback_with_warning_when_nothing_found(nowhere):
    with pytest.raises(DataError):
        find_fashion_mnist()  # the directory search itself still fails
    with pytest.warns(SubsetWarning) as record:
        images, labels = load_fashion_mnist("train")
    message = str(record[0].message)
    assert "SMALL EMBEDDED SUBSET" in message
    assert "dataset-fashion-mnist" in message and "$TINYGEN_DATA" in message
    assert str(nowhere / "system") in message  # says where it looked
    np.testing.assert_array_equal(images, load_embedded_subset("train")[0])
    np.testing.assert_array_equal(labels, load_embedded_subset("train")[1])


def test_no_fallback_when_disallowed(nowhere):
    with pytest.raises(DataError, match="not found"):
        load_fashion_mnist("train", allow_subset=False)


def test_no_fallback_for_a_named_root(nowhere):
    missing = nowhere / "my-data"
    with pytest.raises(DataError) as e:
        load_fashion_mnist("train", root=missing)
    assert str(missing) in str(e.value)


def test_corrupt_subset_file_names_it(nowhere, monkeypatch):
    bad = nowhere / "subset.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.setattr(fm, "SUBSET_PATH", bad)
    with pytest.raises(DataError) as e:
        load_embedded_subset("train")
    assert str(bad) in str(e.value)
    monkeypatch.setattr(fm, "SUBSET_PATH", nowhere / "gone.npz")
    with pytest.raises(DataError, match="missing"):
        load_embedded_subset("test")


def test_load_dataset_limits(nowhere):
    with pytest.warns(SubsetWarning):
        (x, y), (xt, yt) = load_dataset("fashion-mnist", limit=100, test_limit=50)
    assert x.shape == (100, 28, 28) and y.shape == (100,)
    assert xt.shape == (50, 28, 28) and yt.shape == (50,)
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="positive"):
        load_dataset(limit=0)


def test_load_dataset_root_error_names_it(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset(root=tmp_path / "nope")
    assert str(tmp_path / "nope") in str(e.value)


@pytest.mark.data
def test_subset_is_the_real_data_at_its_indices():
    try:
        find_fashion_mnist()
    except DataError as e:
        pytest.skip(f"real Fashion-MNIST not installed: {e}")
    with np.load(fm.SUBSET_PATH) as z:
        for split in ("train", "test"):
            images, labels = load_fashion_mnist(split)
            idx = z[f"{split}_indices"]
            np.testing.assert_array_equal(z[f"{split}_images"], images[idx])
            np.testing.assert_array_equal(z[f"{split}_labels"], labels[idx])
