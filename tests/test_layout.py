"""One name per op family in every layer: a newcomer finds an op's Function, reference,
numba kernel, CUDA launcher, CUDA source and tests by the family's name alone
(``git grep``/``ls`` on that name)."""
import re
from pathlib import Path

import pytest

from tinygen.backend import kernels as K

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {
    "ops": "tinygen/ops/{}.py",
    "reference": "tinygen/backend/reference/{}.py",
    "numba": "tinygen/backend/numba_kernels/{}.py",
    "cuda": "tinygen/backend/cuda_kernels/{}.py",
    "cu": "kernels/{}.cu",
    "tests": "tests/ops/{}",
}
# (family, layer) -> why that family has no file there.  The test fails when one of
# these appears, so the list only shrinks, deliberately.
ABSENT = {
    ("pooling", "cu"): "pooling runs the reference's xp functions on the GPU (no kernels yet)",
    ("spectral_norm", "numba"): "its mat-vecs are BLAS calls already; kernels._ALIASES",
    ("wavenet", "ops"): "the generation step is a model's, tinygen/models/wavenet/",
    ("wavenet", "tests"): "tests/models/test_wavenet*.py and tests/backend/cuda/",
    # The activations' fused passes serve Functions of ops/elementwise.py; on the GPU the
    # reference serves them (kernels._ALIASES).
    ("activations", "ops"): "the Functions are in tinygen/ops/elementwise.py",
    ("activations", "cuda"): "cupy's elementwise ops through the reference",
    ("activations", "cu"): "cupy's elementwise ops through the reference",
    ("activations", "tests"): "tests/ops/test_fused_activations.py",
    # An array and a number (x * 0.9, 1 - x): the constant ops of ops/elementwise.py.
    ("elementwise", "cuda"): "cupy's own arithmetic through the reference",
    ("elementwise", "cu"): "cupy's own arithmetic through the reference",
    ("elementwise", "tests"): "tests/ops/test_elementwise.py",
    # The optimizers' fused updates serve tinygen/optim/.
    ("optim", "ops"): "the optimizers are tinygen/optim/, not differentiable ops",
    ("optim", "cuda"): "cupy's elementwise ops through the reference",
    ("optim", "cu"): "cupy's elementwise ops through the reference",
    ("optim", "tests"): "tests/optim/",
    ("softmax_cross_entropy", "cuda"): "cupy's array ops through the reference",
    ("softmax_cross_entropy", "cu"): "cupy's array ops through the reference",
    ("sigmoid_cross_entropy", "cuda"): "cupy's elementwise ops through the reference",
    ("sigmoid_cross_entropy", "cu"): "cupy's elementwise ops through the reference",
    # Matrix products: cuBLAS through cupy's matmul on the GPU (kernels._ALIASES).
    ("linalg", "cuda"): "cupy's matmul (cuBLAS) through the reference",
    ("linalg", "cu"): "cupy's matmul (cuBLAS) through the reference",
    ("linalg", "tests"): "tests/ops/test_linalg.py, tests/backend/test_cpu_threads.py",
    # The autograd engine's gradient sums and sum_to (tinygen/autograd/), not an op's.
    ("sums", "ops"): "the engine's and sum_to's: tinygen/autograd/engine.py, primitives.py",
    ("sums", "cuda"): "cupy's add and sum through the reference",
    ("sums", "cu"): "cupy's add and sum through the reference",
    ("sums", "tests"): "tests/backend/test_sums.py",
}


@pytest.mark.parametrize("family", sorted(K.CONTRACTS))
def test_every_layer_of_a_family_uses_its_name(family):
    for layer, pattern in LAYERS.items():
        path = ROOT / pattern.format(family)
        if (family, layer) in ABSENT:
            assert not path.exists(), \
                f"{path} exists now: delete ({family!r}, {layer!r}) from ABSENT"
        else:
            assert path.exists(), f"the {family} family has no {pattern.format(family)}"


def test_no_family_goes_by_another_name():
    # batch norm used to be ops/normalization.py and tests/ops/norm/ (with pooling's and
    # spectral norm's tests in it)
    assert not (ROOT / "tinygen/ops/normalization.py").exists()
    assert not (ROOT / "tests/ops/norm").exists()


def test_the_architecture_page_has_a_row_for_every_family():
    """docs/architecture.md's family table (what a newcomer reads first) names every
    family of ``kernels.CONTRACTS``, and no other."""
    text = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \|", text, flags=re.M)
    assert sorted(rows) == sorted(K.CONTRACTS)
