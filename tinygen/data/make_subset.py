"""Build the embedded Fashion-MNIST subset, `tinygen/data/fmnist_subset.npz`.

    python -m tinygen.data.make_subset [--data DIR] [--train-per-class 300]
                                       [--test-per-class 100] [--out PATH]

The subset is what `load_fashion_mnist` serves (with a warning) on a machine that has
neither the real files nor a network. It is chosen deterministically from the real data
(found like `load_fashion_mnist` finds it, or in `--data`): for each class, the first
`--train-per-class` training images and the first `--test-per-class` test images of
that class in file order, kept in file order (so classes stay interleaved as in the
original). With the defaults that is 3000 + 1000 images, class-balanced, stored as
compressed uint8 with their labels and their indices into the original files:

    train_images (3000, 28, 28) uint8    train_labels (3000,) uint8    train_indices (3000,) int32
    test_images  (1000, 28, 28) uint8    test_labels  (1000,) uint8    test_indices  (1000,) int32

The images are Zalando Research's, under the MIT licence in FASHION_MNIST_LICENSE.txt
beside the file; the subset is the same every time it is built from the same data.
"""

import argparse
import io
from pathlib import Path

import numpy as np

from .fashion_mnist import CLASSES, SUBSET_PATH, find_fashion_mnist, load_fashion_mnist
from .idx import _atomic_write


def select(labels, per_class):
    """Indices of the first `per_class` samples of each class, in file order."""
    labels = np.asarray(labels)
    chosen = []
    for c in range(len(CLASSES)):
        where = np.flatnonzero(labels == c)[:per_class]
        if len(where) < per_class:
            raise ValueError(f"class {c} has only {len(where)} samples, {per_class} wanted")
        chosen.append(where)
    return np.sort(np.concatenate(chosen)).astype(np.int32)


def build(root=None, train_per_class=300, test_per_class=100):
    arrays = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        images, labels = load_fashion_mnist(split, root=root, allow_subset=False)
        idx = select(labels, per_class)
        arrays[f"{split}_images"] = images[idx]
        arrays[f"{split}_labels"] = labels[idx].astype(np.uint8)
        arrays[f"{split}_indices"] = idx
    return arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="directory holding the four IDX files")
    parser.add_argument("--train-per-class", type=int, default=300)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--out", default=str(SUBSET_PATH))
    args = parser.parse_args(argv)

    source = find_fashion_mnist(args.data)
    arrays = build(args.data, args.train_per_class, args.test_per_class)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    out = Path(args.out)
    _atomic_write(str(out), buffer.getvalue())
    sizes = ", ".join(f"{k} {v.shape}" for k, v in arrays.items() if k.endswith("images"))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB: {sizes}) from {source}")


if __name__ == "__main__":
    main()
