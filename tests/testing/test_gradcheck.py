"""gradcheck's two modes: the element-wise one finds the wrong element, the fast one
(one random direction per input) catches the same planted bugs at real shapes in two
evaluations per input, and both pass correct ops."""
import numpy as np
import pytest

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.autograd.function import Function
from tinygen.autograd.tensor import Tensor
from tinygen.testing import GradcheckError, check_grads, f64, gradcheck, gradgradcheck


# --- planted bugs: each Function's forward is right, its backward wrong -------------------
class ScaleTwoWrongFactor(Function):
    def forward(self, a):
        return 2 * a

    def backward(self, grad):
        return grad * 2.1


class MatmulTransposedBackward(Function):
    def forward(self, a, b):
        self.save_inputs(0, 1)
        return a @ b

    def backward(self, grad):
        a, b = self.saved_inputs()
        return grad @ b, a.T @ grad  # the first should be grad @ b.T


class TanhOneElementDropped(Function):
    def forward(self, a):
        self.save_outputs(0)
        return np.tanh(a)

    def backward(self, grad):
        (y,) = self.saved_outputs()
        g = grad * (1 - y * y)
        mask = np.ones(g.shape)
        mask.reshape(-1)[g.data.size // 2] = 0.0  # one element's gradient lost
        return g * Tensor._make(mask)


class CubeRawBackward(Function):
    """First derivative right, but computed on raw arrays: not differentiable again,
    so its second derivative is wrong (zero)."""

    def forward(self, a):
        self.save_inputs(0)
        return a ** 3

    def backward(self, grad):
        (a,) = self.saved_inputs()
        return Tensor._make(grad.data * 3 * a.data ** 2)


def _real(rng, *shape):
    return f64(rng.standard_normal(shape))


PLANTED = {
    "wrong factor": (lambda a: ScaleTwoWrongFactor.apply(a), [(32, 32)]),
    "transposed matmul": (lambda a, b: MatmulTransposedBackward.apply(a, b), [(24, 24), (24, 24)]),
    "one element dropped": (lambda a: TanhOneElementDropped.apply(a), [(16, 64)]),
}


@pytest.mark.parametrize("name", ["wrong factor", "transposed matmul"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_mode_catches_planted_bugs_at_real_shapes(name, seed):
    fn, shapes = PLANTED[name]
    rng = np.random.default_rng(seed)
    inputs = [_real(rng, *s) for s in shapes]
    with pytest.raises(GradcheckError, match=r"fast mode\) failed for inputs\[0\]"):
        gradcheck(fn, inputs, fast_mode=True, seed=seed)


def test_fast_mode_catches_one_wrong_element_of_1024_with_high_probability():
    # Along a random unit direction the error of one element is scaled by that
    # direction's component there (~1/32 here), so a lone wrong element is caught
    # unless the draw puts little weight on it: 19 of the first 20 seeds catch it.
    # (The element-wise mode is the certain one; several seeds raise the odds.)
    fn, shapes = PLANTED["one element dropped"]
    caught = 0
    for seed in range(10):
        x = _real(np.random.default_rng(seed), *shapes[0])
        caught += not gradcheck(fn, x, fast_mode=True, seed=seed, raise_exception=False)
    assert caught >= 8


@pytest.mark.parametrize("name", list(PLANTED))
def test_element_mode_locates_the_planted_bug(name):
    fn, shapes = PLANTED[name]
    rng = np.random.default_rng(0)
    inputs = [f64(rng.standard_normal(tuple(min(s, 3) for s in shape))) for shape in shapes]
    with pytest.raises(GradcheckError, match=r"failed for inputs\[0\] .* at index \("):
        gradcheck(fn, inputs)


def test_the_element_mode_names_the_dropped_element():
    x = f64(np.linspace(-1, 1, 6).reshape(2, 3))
    with pytest.raises(GradcheckError, match=r"inputs\[0\] \(shape \(2, 3\)\) at index \(1, 0\)"):
        gradcheck(lambda a: TanhOneElementDropped.apply(a), x)


def test_fast_gradgradcheck_catches_a_backward_that_is_not_differentiable():
    x = _real(np.random.default_rng(3), 20, 20)
    assert gradcheck(lambda a: CubeRawBackward.apply(a), x, fast_mode=True)  # first order ok
    with pytest.raises(GradcheckError, match="fast mode"):
        gradgradcheck(lambda a: CubeRawBackward.apply(a), x, fast_mode=True)


def _counted(fn):
    calls = []

    def wrapped(*args):
        calls.append(1)
        return fn(*args)

    return wrapped, calls


def test_fast_mode_passes_right_ops_at_real_shapes_in_two_evaluations_per_input():
    rng = np.random.default_rng(5)
    # a DCGAN-sized conv block: conv, batch norm, leaky relu (away from its kink)
    x, w = _real(rng, 4, 8, 16, 16), f64(rng.standard_normal((16, 8, 3, 3)) * 0.1)
    gamma, beta = f64(1 + 0.1 * rng.standard_normal(16)), _real(rng, 16)

    def block(x, w, gamma, beta):
        y = F.conv2d(x, w, padding=1, stride=2)
        return F.leaky_relu(F.batch_norm(y, None, None, gamma, beta, training=True), 0.2)

    fn, calls = _counted(block)
    assert gradcheck(fn, (x, w, gamma, beta), fast_mode=True)
    # one for the analytic gradient, one for the kink check, then two per input
    assert len(calls) == 2 + 2 * 4
    a, b = _real(rng, 24, 24), _real(rng, 24, 24)
    assert check_grads(lambda a, b: (a @ b).tanh(), (a, b), fast_mode=True)


def test_fast_mode_reports_a_kink():
    x = f64(np.zeros(5))
    with pytest.raises(GradcheckError, match="lies on a kink along the random direction"):
        gradcheck(lambda a: a.relu(), x, fast_mode=True)


def test_fast_mode_works_on_the_fake_gpu():
    from tinygen.testing.fake_cuda import fake_cuda

    with fake_cuda():
        x = f64(np.linspace(-1, 1, 12).reshape(3, 4)).to("cuda")
        assert x.device == "cuda"
        assert gradcheck(lambda a: (a.tanh() * a).sum(1), x.detach().requires_grad_(),
                         fast_mode=True)
