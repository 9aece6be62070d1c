"""Named datasets as the training runner and the Experiments load them.

    train, test = load_dataset("fashion-mnist", root=None, limit=1000)
    images, labels = train        # uint8 (1000, 28, 28), int64 (1000,)

One entry point so that `--dataset`, `--data` and `--limit` mean the same thing for
every model family. `limit` keeps the first N training images (Fashion-MNIST's files
are in random class order, so the first N are close to balanced); `test_limit` does the
same for the test split.
"""

import operator

from .errors import DataError
from .fashion_mnist import load_fashion_mnist

DATASETS = ("fashion-mnist",)


def load_dataset(name="fashion-mnist", root=None, limit=None, test_limit=None):
    """`((train_images, train_labels), (test_images, test_labels))` of dataset `name`.

    root: a directory holding the data (no fallback then); None searches the usual
    places and falls back to the embedded subset with a warning (see
    `load_fashion_mnist`).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    limit = _limit(limit, "limit")
    test_limit = _limit(test_limit, "test_limit")
    train = load_fashion_mnist("train", root=root)
    test = load_fashion_mnist("test", root=root)
    return _head(train, limit), _head(test, test_limit)


def _limit(value, name):
    if value is None:
        return None
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}") from None
    if value <= 0:
        raise ValueError(f"{name} must be a positive number of images, got {value}")
    return value


def _head(arrays, n):
    return arrays if n is None else tuple(a[:n] for a in arrays)
