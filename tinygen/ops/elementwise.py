"""Elementwise family: arithmetic, unary math, activations, comparisons.

Every backward is written with tinygen ops, so it is itself differentiable.
Masks (relu's, clamp's, ...) enter backward as constants: the derivative of a
mask is zero almost everywhere, which is exactly right for second derivatives.
Binary ops return gradients in the broadcast shape; the engine sums them back.
"""
import numpy as np

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend import array_module, to_device as _array_to_device, normalize_device
from ..backend.kernels import kernels
from ._operands import as_tensor, binary_operands, broadcast_shapes, check_broadcast, \
    is_float, check_same_device
from ..random import default_generator
# clone is an autograd primitive (the engine clones a gradient into .grad under
# create_graph); this family re-exports it.
from ..autograd.primitives import Clone, clone  # noqa: F401


def _const(array):
    """A raw array as a Tensor outside the graph (masks, scale factors)."""
    return Tensor._make(array)


def _mask(condition, like):
    return _const(condition.astype(like.dtype))


# --- arithmetic -------------------------------------------------------------------------
class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        return grad, grad


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        return grad, neg(grad) if self.needs_input_grad[1] else None


class Mul(Function):
    def forward(self, a, b):
        self.save_inputs(0, 1)
        return a * b

    def backward(self, grad):
        a, b = self.saved_inputs()
        # Mul.apply, not grad * b: the operands were checked when the product was made
        # (one dtype, shapes that broadcast to grad's), so the checks are not redone.
        return (Mul.apply(grad, b) if self.needs_input_grad[0] else None,
                Mul.apply(grad, a) if self.needs_input_grad[1] else None)


class Div(Function):
    def forward(self, a, b):
        self.save_inputs(0, 1)
        return a / b

    def backward(self, grad):
        a, b = self.saved_inputs()
        grad_b = None
        if self.needs_input_grad[1]:
            grad_b = neg(grad * a / (b * b))
        return (grad / b if self.needs_input_grad[0] else None), grad_b


class Pow(Function):
    """a ** b with both operands tensors (grad w.r.t. the exponent uses log a)."""

    def forward(self, a, b):
        self.save_inputs(0, 1)
        self.save_outputs(0)
        return a ** b

    def backward(self, grad):
        a, b = self.saved_inputs()
        (out,) = self.saved_outputs()
        grad_a = grad * b * pow(a, b - 1.0) if self.needs_input_grad[0] else None
        grad_b = grad * out * log(a) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class PowConstant(Function):
    """a ** c for a Python-number exponent c (defined for negative a too)."""

    def forward(self, a, exponent):
        self.save_inputs(0)
        self.exponent = exponent
        return a ** a.dtype.type(exponent)

    def backward(self, grad):
        (a,) = self.saved_inputs()
        c = self.exponent
        if c == 0:
            return grad * 0.0
        if c == 1:
            return grad
        if c == 2:
            return grad * a * 2.0
        return grad * pow(a, c - 1) * c


# --- a tensor and a Python number ------------------------------------------------------------
# x * 0.9, x + 1.0, x / 2.0, 1.0 - x: the number is the op's parameter, as PowConstant's
# exponent is, not a 0-d tensor of the graph.  The same numbers as the two-tensor ops
# (numpy casts the number to the tensor's dtype either way; a - c is a + (-c) exactly),
# at ~2 us less per op: no 0-d array and no Tensor made for the number, no dtype and
# broadcast checks between the operands, one input edge instead of two.  A 100-op
# elementwise chain is half such ops, forward and backward.
class AddConstant(Function):
    """a + c."""

    def forward(self, a, c):
        return _elementwise_kernels(a).add_constant(a, c)

    def backward(self, grad):
        return grad


class MulConstant(Function):
    """a * c; its backward is itself (linear in a)."""

    def forward(self, a, c):
        self.c = c
        return _elementwise_kernels(a).mul_constant(a, c)

    def backward(self, grad):
        return MulConstant.apply(grad, c=self.c)


class DivConstant(Function):
    """a / c (divided, not multiplied by 1 / c: the same bits as a tensor divisor)."""

    def forward(self, a, c):
        self.c = c
        return _elementwise_kernels(a).div_constant(a, c)

    def backward(self, grad):
        return DivConstant.apply(grad, c=self.c)


class SubFromConstant(Function):
    """c - a."""

    def forward(self, a, c):
        return _elementwise_kernels(a).sub_from_constant(a, c)

    def backward(self, grad):
        return neg(grad)


def _elementwise_kernels(array):
    """The elementwise family's kernels: numba on the CPU (large arrays shared out among
    threads, else numpy), the array module's own arithmetic on the GPU."""
    return kernels("elementwise", array, "arithmetic")


def _number(value, tensor):
    """Whether ``tensor op value`` takes the constant ops: a float tensor and a Python
    int or float (not a bool; anything else, and an int tensor, take the two-tensor
    path, with its casts and checks)."""
    kind = type(value)
    return (kind is float or kind is int) and isinstance(tensor, Tensor) \
        and tensor.data.dtype.kind == "f"


def _apply_binary(function, name, a, b):
    """Check dtypes and broadcast shapes (errors name both operands), then apply."""
    a, b = binary_operands(a, b, name)
    a_shape, b_shape = a.data.shape, b.data.shape
    if a_shape != b_shape and a_shape and b_shape:  # equal shapes or a scalar: nothing to check
        check_broadcast(name, a_shape, b_shape)
    return function.apply(a, b)


def add(a, b):
    if _number(b, a):
        return AddConstant.apply(a, c=b)
    if _number(a, b):
        return AddConstant.apply(b, c=a)
    return _apply_binary(Add, "add", a, b)


def sub(a, b):
    if _number(b, a):    # (float: a - 0 is a + (-0.0), not a + 0, for a = -0.0)
        return AddConstant.apply(a, c=-float(b))
    if _number(a, b):
        return SubFromConstant.apply(b, c=a)
    return _apply_binary(Sub, "sub", a, b)


def mul(a, b):
    if _number(b, a):
        return MulConstant.apply(a, c=b)
    if _number(a, b):
        return MulConstant.apply(b, c=a)
    return _apply_binary(Mul, "mul", a, b)


def div(a, b):
    if _number(b, a):
        return DivConstant.apply(a, c=b)
    a, b = binary_operands(a, b, "div")
    broadcast_shapes("div", a.shape, b.shape)
    if not is_float(a.dtype):
        a, b = cast(a, np.float32), cast(b, np.float32)
    return Div.apply(a, b)


def pow(a, b):
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if not is_float(a.dtype) and (b < 0 or isinstance(b, float)):
            a = cast(a, np.float32)
        return PowConstant.apply(a, exponent=b)
    return _apply_binary(Pow, "pow", a, b)


# --- unary math ---------------------------------------------------------------------------
class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, grad):
        return neg(grad)


class Abs(Function):
    def forward(self, a):
        xp = array_module(a)
        self.sign = xp.sign(a)
        return xp.abs(a)  # not abs(): this module's abs() shadows the builtin

    def backward(self, grad):
        return grad * _const(self.sign)


class Exp(Function):
    def forward(self, a):
        self.save_outputs(0)
        return array_module(a).exp(a)

    def backward(self, grad):
        (out,) = self.saved_outputs()
        return grad * out


class Log(Function):
    def forward(self, a):
        self.save_inputs(0)
        return array_module(a).log(a)

    def backward(self, grad):
        (a,) = self.saved_inputs()
        return grad / a


class Log1p(Function):
    def forward(self, a):
        self.save_inputs(0)
        return array_module(a).log1p(a)

    def backward(self, grad):
        (a,) = self.saved_inputs()
        return grad / (a + 1.0)


class Sqrt(Function):
    def forward(self, a):
        self.save_outputs(0)
        return array_module(a).sqrt(a)

    def backward(self, grad):
        (out,) = self.saved_outputs()
        return grad / (out * 2.0)


def _activation_kernels(array):
    """numba or the reference on the CPU; the generic reference on the GPU."""
    return kernels("activations", array, "activation")


# Each activation's backward is its own Function (a node of the gradient's graph, as
# Chainer's ReLUGrad2): one fused pass forward, and a backward of its own so that
# higher derivatives go through it like through any other op.
class Tanh(Function):
    def forward(self, a):
        self.save_outputs(0)
        return _activation_kernels(a).tanh_forward(a)

    def backward(self, grad):
        (out,) = self.saved_outputs()
        return TanhGrad.apply(grad, out)


class TanhGrad(Function):
    """g * (1 - y^2) for y = tanh(x): linear in g; d/dy = -2 g y."""

    def forward(self, g, y):
        self.save_inputs(0, 1)
        return _activation_kernels(g).tanh_backward(g, y)

    def backward(self, h):
        g, y = self.saved_inputs()
        dg = TanhGrad.apply(h, y) if self.needs_input_grad[0] else None
        dy = h * g * y * -2.0 if self.needs_input_grad[1] else None
        return dg, dy


class Sigmoid(Function):
    def forward(self, a):
        self.save_outputs(0)
        return _activation_kernels(a).sigmoid_forward(a)

    def backward(self, grad):
        (out,) = self.saved_outputs()
        return SigmoidGrad.apply(grad, out)


class SigmoidGrad(Function):
    """g * y * (1 - y) for y = sigmoid(x): linear in g; d/dy = g (1 - 2y)."""

    def forward(self, g, y):
        self.save_inputs(0, 1)
        return _activation_kernels(g).sigmoid_backward(g, y)

    def backward(self, h):
        g, y = self.saved_inputs()
        dg = SigmoidGrad.apply(h, y) if self.needs_input_grad[0] else None
        dy = h * g * (1.0 - y * 2.0) if self.needs_input_grad[1] else None
        return dg, dy


def neg(x): return Neg.apply(as_tensor(x))
def exp(x): return Exp.apply(_float_input(x, "exp"))
def log(x): return Log.apply(_float_input(x, "log"))
def log1p(x): return Log1p.apply(_float_input(x, "log1p"))
def sqrt(x): return Sqrt.apply(_float_input(x, "sqrt"))
def tanh(x): return Tanh.apply(_float_input(x, "tanh"))
def sigmoid(x): return Sigmoid.apply(_float_input(x, "sigmoid"))


def abs(x):
    return Abs.apply(as_tensor(x))


def sign(x):
    """-1, 0 or 1; not differentiable (its derivative is zero almost everywhere)."""
    x = as_tensor(x)
    return _const(array_module(x.data).sign(x.data))


def _float_input(x, name):
    if type(x) is Tensor and x.data.dtype.kind == "f":    # (the usual case: 0.5 us less)
        return x
    x = as_tensor(x)
    if not is_float(x.dtype):
        x = cast(x, np.float32)
    return x


# --- activations ----------------------------------------------------------------------------
class ReLU(Function):
    def forward(self, a):
        # Kept for backward: the packed bit mask of a > 0 (1 bit per element), not the
        # output (reference/activations.py has the layout).
        out, self.mask = _activation_kernels(a).relu_forward(a)
        return out

    def backward(self, grad):
        # the mask enters as a constant: its derivative is zero a.e.
        return ReLUGrad.apply(grad, _const(self.mask))


class ReLUGrad(Function):
    """g * (x > 0) (the packed mask): linear in g, so its backward is itself."""

    def forward(self, g, mask):
        self.save_inputs(1)
        return _activation_kernels(g).relu_backward(g, mask)

    def backward(self, h):
        (mask,) = self.saved_inputs()
        return ReLUGrad.apply(h, mask), None


class LeakyReLU(Function):
    def forward(self, a, negative_slope):
        self.slope = negative_slope
        # Kept for backward: the packed bit mask of a > 0, not the input (as ReLU).
        out, self.mask = _activation_kernels(a).leaky_relu_forward(a, negative_slope)
        return out

    def backward(self, grad):
        # the mask enters as a constant: the derivative of the slope pattern is zero a.e.
        return LeakyReLUGrad.apply(grad, _const(self.mask), slope=self.slope)


class LeakyReLUGrad(Function):
    """g where x > 0 (the packed mask), else slope * g: linear in g, so its backward
    is itself."""

    def forward(self, g, mask, slope):
        self.slope = slope
        self.save_inputs(1)
        return _activation_kernels(g).leaky_relu_backward(g, mask, slope)

    def backward(self, h):
        (mask,) = self.saved_inputs()
        return LeakyReLUGrad.apply(h, mask, slope=self.slope), None


class ELU(Function):
    def forward(self, a, alpha):
        xp = array_module(a)
        self.alpha = alpha
        self.save_outputs(0)
        self.positive = a > 0
        return xp.where(self.positive, a, alpha * xp.expm1(xp.minimum(a, 0))).astype(a.dtype)

    def backward(self, grad):
        (out,) = self.saved_outputs()
        positive = _mask(self.positive, grad)
        # d/da = 1 for a > 0, alpha * exp(a) = out + alpha otherwise; written with
        # the output so that the second derivative flows through it.
        return grad * (positive + (1.0 - positive) * (out + self.alpha))


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, linear above ``threshold`` like PyTorch."""

    def forward(self, a, beta, threshold):
        self.save_inputs(0)
        self.beta, self.threshold = beta, threshold
        return _activation_kernels(a).softplus_forward(a, beta, threshold)

    def backward(self, grad):
        (a,) = self.saved_inputs()
        return SoftplusGrad.apply(grad, a, beta=self.beta, threshold=self.threshold)


class SoftplusGrad(Function):
    """g * sigmoid(beta x) (g itself where beta x > threshold): linear in g; d/dx is
    g * beta * s (1 - s) below the threshold, 0 above."""

    def forward(self, g, a, beta, threshold):
        self.save_inputs(0, 1)
        self.beta, self.threshold = beta, threshold
        return _activation_kernels(g).softplus_backward(g, a, beta, threshold)

    def backward(self, h):
        g, a = self.saved_inputs()
        params = dict(beta=self.beta, threshold=self.threshold)
        dg = SoftplusGrad.apply(h, a, **params) if self.needs_input_grad[0] else None
        da = None
        if self.needs_input_grad[1]:
            z = a * self.beta
            s = sigmoid(z)
            below = _mask(z.data <= self.threshold, z)
            da = h * g * s * (1.0 - s) * below * self.beta
        return dg, da


def relu(x):
    return ReLU.apply(as_tensor(x))


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU.apply(as_tensor(x), negative_slope=float(negative_slope))


def elu(x, alpha=1.0):
    return ELU.apply(as_tensor(x), alpha=float(alpha))


def softplus(x, beta=1.0, threshold=20.0):
    if beta <= 0:
        raise ValueError(f"softplus: beta must be positive, got {beta}")
    return Softplus.apply(_float_input(x, "softplus"), beta=float(beta), threshold=float(threshold))


# --- clamp, where, maximum, minimum -----------------------------------------------------
class Clamp(Function):
    def forward(self, a, lo, hi):
        xp = array_module(a)
        inside = xp.ones(a.shape, dtype=bool)
        if lo is not None:
            inside &= a >= lo
        if hi is not None:
            inside &= a <= hi
        self.inside = inside
        return xp.clip(a, lo, hi).astype(a.dtype, copy=False)

    def backward(self, grad):
        return grad * _mask(self.inside, grad)


def clamp(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clamp: min {min} is greater than max {max}")
    return Clamp.apply(as_tensor(x), lo=min, hi=max)


clip = clamp


class Where(Function):
    def forward(self, a, b, condition):
        self.condition = condition
        return array_module(a).where(condition, a, b)

    def backward(self, grad):
        zero = _const(array_module(grad.data).zeros((), dtype=grad.dtype))
        cond = _const(self.condition)
        return (where(cond, grad, zero) if self.needs_input_grad[0] else None,
                where(cond, zero, grad) if self.needs_input_grad[1] else None)


def where(condition, a, b):
    """``a`` where ``condition`` holds, else ``b``; differentiable in ``a`` and ``b``."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = as_tensor(a)
    a, b = binary_operands(a, b, "where")
    if isinstance(condition, Tensor):
        check_same_device("where", ("input", a), ("condition", condition))
    cond = condition.data if isinstance(condition, Tensor) else array_module(a.data).asarray(condition)
    if cond.dtype != bool:
        raise TypeError(f"where: condition must be boolean, got {cond.dtype}")
    broadcast_shapes("where", cond.shape, a.shape, b.shape)
    return Where.apply(a, b, condition=cond)


class _Extremum(Function):
    """maximum/minimum: the winner takes the gradient, ties split it evenly."""

    def forward(self, a, b):
        a_wins = self.a_wins(a, b)
        self.share_a = (a_wins + 0.5 * (a == b)).astype(a.dtype)
        return array_module(a).where(a_wins, a, b)

    def backward(self, grad):
        share_a = _const(self.share_a)
        return grad * share_a, grad * (1.0 - share_a)


class Maximum(_Extremum):
    @staticmethod
    def a_wins(a, b):
        return a > b


class Minimum(_Extremum):
    @staticmethod
    def a_wins(a, b):
        return a < b


def maximum(a, b):
    return _apply_binary(Maximum, "maximum", a, b)


def minimum(a, b):
    return _apply_binary(Minimum, "minimum", a, b)


# --- comparisons (not differentiable) -------------------------------------------------------
def _compare(name, fn):
    def compare(a, b):
        a, b = binary_operands(a, b, name)
        broadcast_shapes(name, a.shape, b.shape)
        return _const(fn(a.data, b.data))

    compare.__name__ = name
    compare.__doc__ = f"Elementwise ``{name}`` as a boolean tensor (no gradient)."
    return compare


eq = _compare("eq", lambda a, b: a == b)
ne = _compare("ne", lambda a, b: a != b)
lt = _compare("lt", lambda a, b: a < b)
le = _compare("le", lambda a, b: a <= b)
gt = _compare("gt", lambda a, b: a > b)
ge = _compare("ge", lambda a, b: a >= b)


def logical_not(x):
    x = as_tensor(x)
    return _const(array_module(x.data).logical_not(x.data))


def isfinite(x):
    x = as_tensor(x)
    return _const(array_module(x.data).isfinite(x.data))


# --- dtype / device movement -------------------------------------------------------------------
class Cast(Function):
    def forward(self, a, dtype):
        self.in_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, grad):
        return cast(grad, self.in_dtype)


def cast(x, dtype):
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    if not is_float(dtype):
        return _const(x.data.astype(dtype))  # integer results carry no gradient
    if not is_float(x.dtype):
        return _const(x.data.astype(dtype))
    return Cast.apply(x, dtype=dtype)


class ToDevice(Function):
    def forward(self, a, device):
        from ..backend import device_of

        self.source = device_of(a)
        return _array_to_device(a, device)

    def backward(self, grad):
        return to_device(grad, self.source)


def to_device(x, device):
    device = normalize_device(device)
    if x.device == device:
        return x
    # Function.apply checks that inputs share a device; this op crosses devices
    # on purpose, and has a single input.
    return ToDevice.apply(x, device=device)


# --- dropout ------------------------------------------------------------------------------------
def dropout(x, p=0.5, training=True, generator=None):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    rng = generator if generator is not None else default_generator()
    keep = rng.random(x.shape) >= p
    scale = (keep / (1.0 - p)).astype(x.dtype)
    return x * _const(_array_to_device(scale, x.device))
