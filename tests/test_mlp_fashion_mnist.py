"""The README's main job: a 2-layer MLP trained with Adam on the real Fashion-MNIST."""
import json

import pytest

from tinygen.data import DataError, find_fashion_mnist


def _have_dataset():
    try:
        find_fashion_mnist()
        return True
    except DataError:
        return False


@pytest.mark.data
@pytest.mark.skipif(not _have_dataset(), reason="the real Fashion-MNIST is not installed "
                    "(apt-get install dataset-fashion-mnist, or set TINYGEN_DATA)")
def test_mlp_reaches_85_percent_on_real_fashion_mnist(tmp_path):
    from benchmarks import mlp_fashion_mnist

    accuracy = mlp_fashion_mnist.main(["--epochs", "3", "--out", str(tmp_path)])
    assert accuracy > 0.85
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] == accuracy and len(metrics["epochs"]) == 3
    assert (tmp_path / "mlp.npz").is_file()
