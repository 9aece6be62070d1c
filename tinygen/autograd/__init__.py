"""Tensor, Function and the backward engine."""
from .tensor import Tensor  # noqa: F401
from .function import Function  # noqa: F401
from .grad_mode import no_grad, enable_grad, is_grad_enabled, set_grad_enabled  # noqa: F401
from .functional import grad  # noqa: F401
