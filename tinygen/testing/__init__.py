"""Public testing helpers, for tinygen's own tests and for users' own ops.

* ``gradcheck`` / ``gradgradcheck`` / ``check_grads``: finite-difference checks of
  first and second derivatives in float64, element by element or (``fast_mode=True``)
  along one random direction per input;
* ``compare_impls``: one function run on every kernel implementation (numpy
  reference, numba, CUDA when available), outputs and gradients compared;
* ``f64``, ``rel_error``, ``assert_close``: float64 leaves and comparisons;
* ``strategies``: hypothesis strategies for shapes, axes and tensors.

``tinygen.testing.fake_cuda`` (imported on its own) makes tinygen see a numpy-backed
'cuda' device, to test device plumbing on machines without a GPU.
"""
from .gradcheck import gradcheck, gradgradcheck, check_grads, GradcheckError  # noqa: F401
from .compare import compare_impls, ImplMismatch, f64, rel_error, assert_close  # noqa: F401
