"""Fixtures for the runner tests: a tiny Experiment on the embedded (real) subset, and
a data directory holding that subset as the four IDX files."""
import os
import sys

import numpy as np
import pytest

from tinygen.data import load_embedded_subset, write_idx

# --import-mode=importlib puts no test folder on sys.path; kill_driver.py imports the
# experiment the same way
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tiny_experiment import TINY, TinyExperiment  # noqa: E402,F401 - registers it


@pytest.fixture
def tiny():
    return TINY


@pytest.fixture(scope="session")
def subset_dir(tmp_path_factory):
    """A directory with the embedded subset written as the four Fashion-MNIST files."""
    d = tmp_path_factory.mktemp("fmnist-subset")
    for split, (images_name, labels_name) in (
            ("train", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")),
            ("test", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))):
        images, labels = load_embedded_subset(split)
        write_idx(d / (images_name + ".gz"), images)
        write_idx(d / (labels_name + ".gz"), labels.astype(np.uint8))
    return d


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Never touch the network from these tests."""
    monkeypatch.setenv("TINYGEN_OFFLINE", "1")
