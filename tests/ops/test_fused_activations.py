"""The fused activation paths (issue 12): each activation's backward is one node
(TanhGrad, SigmoidGrad, LeakyReLUGrad, ReLUGrad, SoftplusGrad,
GatedActivationGrad) whose forward is one numba pass.  Pinned here:

* the numba kernels equal the numpy reference bit for bit (float32 and float64);
* in float64 the fused gradient, and the gradient of the gradient, equal the
  unfused ones written with plain tinygen ops (the formulas the ops used before);
* gradcheck and gradgradcheck through the fused nodes.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.backend.kernels import use_impl
from tinygen.backend.numba_kernels import activations as fast
from tinygen.backend.numba_kernels.chunks import PARALLEL_THRESHOLD as PARALLEL
from tinygen.backend.reference import activations as ref
from tinygen.testing import gradcheck, gradgradcheck

# Unfused: the derivative written with ordinary differentiable tinygen ops.
UNFUSED = {
    "tanh": (F.tanh, lambda x, g: g * (1.0 - tg.tanh(x) * tg.tanh(x))),
    "sigmoid": (F.sigmoid, lambda x, g: g * tg.sigmoid(x) * (1.0 - tg.sigmoid(x))),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2),
                   lambda x, g: g * tg.tensor((x.numpy() > 0) * 0.8 + 0.2)),
    "relu": (F.relu, lambda x, g: g * tg.tensor((x.numpy() > 0) * 1.0)),
    "softplus": (lambda x: F.softplus(x, beta=1.5, threshold=6.0),
                 lambda x, g: g * (tg.tensor((x.numpy() * 1.5 > 6.0) * 1.0)
                                   + tg.tensor((x.numpy() * 1.5 <= 6.0) * 1.0)
                                   * tg.sigmoid(x * 1.5))),
}


def _data(shape, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3
    x.flat[:3] = [0.0, 40.0, -40.0][:x.size]      # the kink and the saturated tails
    return x.astype(dtype), rng.standard_normal(shape).astype(dtype)


def _ulps(a, b):
    """|a - b| in units of b's last place (float32), worst element; NaNs and infinities
    must match."""
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.array_equal(a[np.isinf(b)], b[np.isinf(b)])
    a, b = a[np.isfinite(b)].astype(np.float64), b[np.isfinite(b)].astype(np.float64)
    spacing = np.spacing(np.abs(b).astype(np.float32)).astype(np.float64)
    return float(np.max(np.abs(a - b) / spacing, initial=0.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [7, PARALLEL - 3, PARALLEL + 5])   # one piece, and pieces shared out
def test_numba_kernels_equal_the_reference(dtype, size):
    x, g = _data((size,), 0, dtype)
    x[3:5] = [-0.0, np.nan]
    y_sig, y_tanh = ref.sigmoid_forward(x), np.tanh(x)
    (y_leaky, mask_leaky), (y_relu, mask_relu) = fast.leaky_relu_forward(x, 0.2), fast.relu_forward(x)
    pairs = [
        (y_leaky, ref.leaky_relu_forward(x, 0.2)[0]),
        (mask_leaky, ref.leaky_relu_forward(x, 0.2)[1]),
        (fast.leaky_relu_backward(g, mask_leaky, 0.2), ref.leaky_relu_backward(g, mask_leaky, 0.2)),
        (fast.sigmoid_backward(g, y_sig), ref.sigmoid_backward(g, y_sig)),
        (fast.tanh_backward(g, y_tanh), ref.tanh_backward(g, y_tanh)),
        (fast.relu_backward(g, mask_relu), ref.relu_backward(g, mask_relu)),
        (y_relu, ref.relu_forward(x)[0]),
        (mask_relu, ref.relu_forward(x)[1]),
        (fast.tanh_forward(x), ref.tanh_forward(x)),
    ]
    exp_based = [
        (fast.sigmoid_forward(x), y_sig),
        (fast.softplus_forward(x, 1.5, 6.0), ref.softplus_forward(x, 1.5, 6.0)),
        (fast.softplus_backward(g, x, 1.5, 6.0), ref.softplus_backward(g, x, 1.5, 6.0)),
    ]
    if dtype == np.float64:
        pairs += exp_based    # float64 takes the reference itself
    for a, b in pairs:
        assert a.dtype == b.dtype and a.dtype in (dtype, np.uint8) and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
        assert np.array_equal(np.signbit(a), np.signbit(b))     # -0 and NaN's sign too
    if dtype == np.float32:   # our vectorisable exp vs numpy's: a few ulp, NaNs alike
        for a, b in exp_based:
            assert a.dtype == b.dtype == dtype and a.shape == b.shape
            assert _ulps(a, b) <= 4


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tanh_forward_shared_out_is_numpys_tanh_bit_for_bit(monkeypatch, dtype, compiled):
    """numpy's tanh run on slices by two threads: every element as np.tanh gives it,
    from an unaligned start too (its SIMD loop's edges fall elsewhere).  The slices run
    numpy's loop from a numba kernel (``_ufunc_loops``, through share_rows), or, where
    that loop is not found, np.tanh called per slice (parallel_range)."""
    import numba

    from tinygen.backend.numba_kernels import _ufunc_loops, chunks

    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    if not compiled:
        monkeypatch.setattr(_ufunc_loops, "loop", lambda ufunc, dtype: None)
    elif _ufunc_loops.loop(np.tanh, dtype) is None:
        pytest.skip("numpy's tanh loop not found (another ufunc layout)")
    pieces, shared = [], []
    original = chunks.map_chunks
    monkeypatch.setattr(chunks, "map_chunks", lambda work, ranges, blas=True:
                        pieces.append(ranges) or original(work, ranges, blas))
    monkeypatch.setattr(fast, "share_rows", lambda kernel, n, size, *args:
                        shared.append(n) or chunks.share_rows(kernel, n, size, *args))
    x = _data((3 * PARALLEL + 11,), 5, dtype)[0]
    x[7:10] = [-0.0, np.nan, np.inf]
    for view in (x, x[1:], x[:PARALLEL + 3].reshape(1, -1)):
        pieces.clear()
        shared.clear()
        y = fast.tanh_forward(view)
        if compiled:
            assert shared == [view.size] and not pieces
        else:
            assert len(pieces) == 1 and len(pieces[0]) > 1 and not shared   # (shared out)
        assert y.dtype == dtype and y.shape == view.shape
        np.testing.assert_array_equal(y, np.tanh(view))
        assert np.array_equal(np.signbit(y), np.signbit(np.tanh(view)))
    assert fast.tanh_forward(x[::2]).shape == x[::2].shape          # strided: numpy's, whole
    np.testing.assert_array_equal(fast.tanh_forward(x[::2]), np.tanh(x[::2]))


@pytest.mark.parametrize("ufunc", [np.tanh, np.exp, np.negative])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ufunc_loop_called_from_numba_equals_the_ufunc(ufunc, dtype):
    """A ufunc's own loop, found in its PyUFuncObject and run by a numba kernel on
    slices of every length from 0 (the SIMD loop's tails) and unaligned starts: the
    ufunc's bits, nothing written outside the slice."""
    from tinygen.backend.numba_kernels import _ufunc_loops

    found = _ufunc_loops.loop(ufunc, dtype)
    if found is None:
        pytest.skip("the ufunc's loop not found (another ufunc layout)")
    x = _data((300,), 2, dtype)[0]
    x[[5, 6, 7]] = [np.nan, -0.0, -np.inf]
    for lo, hi in [(0, 300), (1, 300), (3, 3), (3, 4), (5, 40), (17, 250)]:
        out = np.full_like(x, 7.0)
        _ufunc_loops.unary(*found, x[lo:hi], out[lo:hi])
        np.testing.assert_array_equal(out[lo:hi], ufunc(x[lo:hi]))
        assert np.array_equal(np.signbit(out[lo:hi]), np.signbit(ufunc(x[lo:hi])))
        assert (out[:lo] == 7).all() and (out[hi:] == 7).all()


def test_ufunc_loop_lookup_refuses_what_it_cannot_check(monkeypatch):
    """No loop for a binary ufunc, a signature the ufunc lacks, or fields that do not
    read as the ufunc's own (another object layout: the header size wrong here)."""
    from tinygen.backend.numba_kernels import _ufunc_loops

    monkeypatch.setattr(_ufunc_loops, "_found", {})
    assert _ufunc_loops.loop(np.add, np.float32) is None
    assert _ufunc_loops.loop(np.tanh, np.int64) is None
    monkeypatch.setattr(_ufunc_loops, "_HEADER", _ufunc_loops._HEADER + 8)
    assert _ufunc_loops.loop(np.tanh, np.float32) is None


def test_float32_sigmoid_is_within_3_ulp_of_the_exact_value():
    """The numba sigmoid (its own exp) against float64 truth, over the whole range:
    tails down to subnormals and zero, infinities, NaN, signed zeros."""
    x = np.concatenate([np.linspace(-110, 110, 40001), [0.0, -0.0, np.inf, -np.inf, np.nan,
                        1e-30, -1e-30, -87.5, -88.5, -100.0, -103.9, -104.5]]).astype(np.float32)
    exact = (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32)
    for size_x in (x, np.tile(x, PARALLEL // x.size + 1)):     # one piece, and pieces shared out
        y = fast.sigmoid_forward(size_x)[:x.size]
        assert _ulps(y, exact) <= 3
    assert fast.sigmoid_forward(np.float32([np.inf, -np.inf]) ).tolist() == [1.0, 0.0]
    assert fast.sigmoid_forward(np.float32([-104.0]))[0] == 0.0
    assert 0 < fast.sigmoid_forward(np.float32([-100.0]))[0] < np.finfo(np.float32).tiny


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(sorted(UNFUSED)), st.lists(st.integers(1, 5), min_size=1, max_size=3),
       st.integers(0, 2**16))
def test_fused_equals_unfused_in_float64(name, shape, seed):
    op, unfused_grad = UNFUSED[name]
    x_np, g_np = _data(tuple(shape), seed, np.float64)
    h_np = np.random.default_rng(seed + 1).standard_normal(shape)
    for impl in ("numba", "reference"):
        with use_impl(impl):
            x = tg.tensor(x_np, requires_grad=True)
            g = tg.tensor(g_np, requires_grad=True)
            (fused,) = tg.grad(op(x), x, grad_outputs=g, create_graph=True)
            plain = unfused_grad(x, g)
            np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-13, atol=1e-15)
            # second order: the gradient of <h, dy/dx . g> w.r.t. x and g
            second = tg.grad(fused, (x, g), grad_outputs=tg.tensor(h_np), allow_unused=True)
            expected = tg.grad(plain, (x, g), grad_outputs=tg.tensor(h_np), allow_unused=True)
            for a, b in zip(second, expected):     # None: zero (leaky_relu's d/dx)
                a = np.zeros_like(x_np) if a is None else a.numpy()
                b = np.zeros_like(x_np) if b is None else b.numpy()
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(UNFUSED))
def test_fused_nodes_gradcheck_and_gradgradcheck(name):
    op = UNFUSED[name][0]
    x = np.random.default_rng(3).standard_normal((3, 4))
    x[np.abs(x) < 0.05] = 0.5                     # away from leaky_relu's kink
    assert gradcheck(op, [tg.tensor(x, requires_grad=True)])
    assert gradgradcheck(op, [tg.tensor(x, requires_grad=True)])


def _unfused_gate(x):
    a, b = tg.split(x, x.shape[1] // 2, 1)
    return tg.tanh(a) * tg.sigmoid(b)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(0, 2**16))
def test_fused_gate_equals_unfused_in_float64(n, half, length, seed):
    """GatedActivationGrad (fused first derivative, closed-form second) against the
    gate written as tanh(a) * sigmoid(b) with plain ops, to second order."""
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal((n, 2 * half, length)) * 2
    g_np = rng.standard_normal((n, half, length))
    h_np = rng.standard_normal(x_np.shape)
    for impl in ("numba", "reference"):
        with use_impl(impl):
            results = []
            for op in (F.gated_activation, _unfused_gate):
                x = tg.tensor(x_np, requires_grad=True)
                g = tg.tensor(g_np, requires_grad=True)
                (dx,) = tg.grad(op(x), x, grad_outputs=g, create_graph=True)
                results.append([dx.numpy()] + [
                    t.numpy() for t in tg.grad(dx, (x, g), grad_outputs=tg.tensor(h_np))])
            for a, b in zip(*results):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_fused_gate_gradgradcheck():
    x = tg.tensor(np.random.default_rng(5).standard_normal((2, 4, 3)), requires_grad=True)
    assert gradcheck(F.gated_activation, [x])
    assert gradgradcheck(F.gated_activation, [x])


def test_backward_is_one_node():
    """The fused backward is a node of the gradient's graph, not a branch on grad mode."""
    x = tg.tensor(np.linspace(-2, 2, 6).reshape(1, 6), requires_grad=True)
    for op, node in ((F.sigmoid, "SigmoidGrad"), (F.tanh, "TanhGrad"),
                     (lambda t: F.leaky_relu(t, 0.1), "LeakyReLUGrad"), (F.relu, "ReLUGrad"),
                     (F.softplus, "SoftplusGrad"), (F.gated_activation, "GatedActivationGrad")):
        y = op(x)
        v = tg.tensor(np.ones(y.shape), requires_grad=True)  # leaky_relu's: linear in v only
        (g,) = tg.grad(y, x, grad_outputs=v, create_graph=True)
        assert type(g.grad_fn).__name__ == node


def test_float32_softplus_is_within_3_ulp_of_the_exact_value():
    """The numba softplus (its own exp and log1p) against float64 truth, beta = 1 (so z
    = x is not rounded), from the tail where it is exp(x) to the linear region."""
    x = np.concatenate([np.linspace(-110, 30, 40001), np.geomspace(1e-30, 1, 300),
                        -np.geomspace(1e-30, 1, 300), [0.0, -0.0, np.inf, -np.inf, np.nan,
                                                       19.99, 20.01]]).astype(np.float32)
    x64 = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        exact = np.where(x64 > 20, x64, np.logaddexp(0, x64)).astype(np.float32)
    for size_x in (x, np.tile(x, PARALLEL // x.size + 1)):     # one piece, and pieces shared out
        assert _ulps(fast.softplus_forward(size_x, 1.0, 20.0)[:x.size], exact) <= 3


def test_float32_gate_is_within_a_few_ulp_of_the_exact_value():
    """The numba gate (its own tanh and sigmoid) against the float64 oracle, over both
    branches of tanh (|a| below and above 0.625), the tails, infinities and NaN; the
    one piece, and pieces shared out among threads."""
    from tinygen.backend.numba_kernels import gated_activation as fast_gate
    from tinygen.backend.reference import gated_activation as ref_gate

    grid = np.concatenate([np.linspace(-12, 12, 24001), np.geomspace(1e-30, 0.7, 500),
                           -np.geomspace(1e-30, 0.7, 500), [0.625, -0.625, 0.0, -0.0,
                           np.inf, -np.inf, np.nan, 40.0, -40.0, -100.0]]).astype(np.float32)
    rng = np.random.default_rng(0)
    for a in (grid[-12000:], np.tile(grid, PARALLEL // grid.size)):     # one piece, and pieces shared out
        b = rng.permutation(a)
        x3 = np.stack([a, b])[None]                       # (1, 2, Q)
        exact = ref_gate.gated_forward(x3.astype(np.float64)).astype(np.float32)
        assert _ulps(fast_gate.gated_forward(x3), exact) <= 5
        g = rng.standard_normal((1, a.size)).astype(np.float32)
        exact = ref_gate.gated_backward(g.astype(np.float64), x3.astype(np.float64))
        got = fast_gate.gated_backward(g, x3)
        finite = np.isfinite(exact)
        # 1 - t^2 cancels in float32 as |a| grows (numpy's float32 too): absolute error
        # ~ eps |g|, relative error small elsewhere
        np.testing.assert_allclose(got[finite], exact[finite], rtol=2e-6,
                                   atol=2e-7 * np.abs(g).max())
    tanh_only = np.stack([grid, np.full_like(grid, 40.0)])[None]   # sigmoid(40) == 1
    y = fast_gate.gated_forward(tanh_only)[0]
    assert _ulps(y, np.tanh(grid.astype(np.float64)).astype(np.float32)) <= 2
    assert np.signbit(y[grid.size - 7]) and y[grid.size - 6] == 1.0  # tanh(-0), tanh(inf)


def test_one_thread_runs_large_arrays_without_the_pool(monkeypatch):
    """At one thread a large array is one kernel call (np.tanh for tanh): no
    parallel_range, no closures, no numpy slices (its per-call overhead, ~20 us on
    a fwd+bwd of 2^20 elements)."""
    import numba

    from tinygen.backend.numba_kernels import activations, chunks

    def pool(*args, **kwargs):
        raise AssertionError("one thread went through the pool")

    monkeypatch.setattr(numba, "get_num_threads", lambda: 1)
    monkeypatch.setattr(activations, "parallel_range", pool)
    monkeypatch.setattr(chunks, "parallel_range", pool)
    monkeypatch.setattr(chunks, "map_chunks", pool)
    x = _data((PARALLEL + 5,), 5, np.float32)[0]
    g = _data((PARALLEL + 5,), 6, np.float32)[0]
    y = fast.tanh_forward(x)
    np.testing.assert_array_equal(y, np.tanh(x))
    np.testing.assert_array_equal(fast.tanh_backward(g, y), ref.tanh_backward(g, y))
    np.testing.assert_array_equal(fast.relu_forward(x)[0], ref.relu_forward(x)[0])
    s = fast.sigmoid_forward(x)
    assert _ulps(s, ref.sigmoid_forward(x)) <= 4
    np.testing.assert_array_equal(fast.sigmoid_backward(g, s), ref.sigmoid_backward(g, s))


def test_wide_vectors_compile_the_loop_with_512_bit_vectors(monkeypatch):
    """A loop that calls ``_vmath.wide_vectors()`` is vectorised with 512-bit registers
    where the CPU has them (LLVM's tuning would pick 256), with the same results."""
    import llvmlite.binding as llvm
    from numba import njit

    from tinygen.backend.numba_kernels import _vmath

    if not llvm.get_host_cpu_features().get("avx512f"):
        pytest.skip("no AVX-512 here")
    x = _data((1000,), 4, np.float32)[0]
    compiled = {}
    for wide in (False, True):
        monkeypatch.setattr(_vmath, "WIDE", wide)
        kernel = njit(error_model="numpy", fastmath={"contract"})(fast._sigmoid_f32_loop)
        out = np.empty_like(x)
        kernel(x, out)                          # (compiled now, with WIDE as set)
        compiled[wide] = (list(kernel.inspect_asm().values())[0], out)
    assert "zmm" in compiled[True][0] and "zmm" not in compiled[False][0]
    np.testing.assert_array_equal(compiled[True][1], compiled[False][1])


# --- ReLU and LeakyReLU: the packed bit mask kept for the backward -----------------------------
MASKED = {"relu": (lambda m, x: m.relu_forward(x), lambda m, g, mask: m.relu_backward(g, mask),
                   lambda g, x: g * (x > 0).astype(g.dtype)),
          "leaky_relu": (lambda m, x: m.leaky_relu_forward(x, 0.2),
                         lambda m, g, mask: m.leaky_relu_backward(g, mask, 0.2),
                         lambda g, x: np.where(x > 0, g, g * g.dtype.type(0.2)))}


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(MASKED)), st.sampled_from([np.float32, np.float64]),
       st.one_of(st.integers(0, 1100), st.integers(PARALLEL - 300, PARALLEL + 300)),
       st.integers(0, 2**16))
def test_masked_kernels_equal_the_reference_and_the_saved_array_formula(name, dtype, size, seed):
    """The numba kernels' mask is the reference's, bit for bit, and unpacks to x > 0
    (sizes that are no multiple of 8, 32 or 256, and large ones shared out among
    threads); the backward through the mask gives the bits the formula on the saved
    array gives (g * (x > 0); -0, NaN and infinities in g and x included)."""
    forward, backward, formula = MASKED[name]
    x, g = _data((size,), seed, dtype)
    specials = np.array([-0.0, np.nan, np.inf, -np.inf, 0.0], dtype)
    x[size // 3:size // 3 + 5] = specials[:max(0, min(5, size - size // 3))]
    g[size // 2:size // 2 + 5] = specials[::-1][:max(0, min(5, size - size // 2))]
    (y, mask), (y_ref, mask_ref) = forward(fast, x), forward(ref, x)
    assert mask.dtype == np.uint8 and mask.shape == (-(-size // 256) * 32,)
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_array_equal(ref._unpack(mask, x.shape), x > 0)
    np.testing.assert_array_equal(y, y_ref)
    with np.errstate(invalid="ignore"):    # (inf * 0 is NaN, as in the kernels)
        expected, from_ref = formula(g, x), backward(ref, g, mask_ref)
    for got in (backward(fast, g, mask), from_ref):
        assert got.dtype == dtype and got.shape == g.shape
        np.testing.assert_array_equal(got, expected)
        assert np.array_equal(np.signbit(got), np.signbit(expected))


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["relu", "leaky_relu"]),
       st.lists(st.integers(2, 23), min_size=2, max_size=3), st.integers(0, 2**16))
def test_masked_gradients_of_non_contiguous_inputs_to_second_order(name, shape, seed):
    """float64, a non-contiguous input (a transposed view) and a non-contiguous random
    upstream gradient, shapes of a few partial and full mask blocks: the fused gradient
    and the gradient of the gradient (through the mask, a constant input of the Grad
    node) equal the unfused formulas, in both CPU implementations."""
    op, unfused_grad = UNFUSED[name]
    rng = np.random.default_rng(seed)
    x_np = rng.standard_normal(shape[::-1]) * 3
    g_np = rng.standard_normal(shape[::-1]).T     # (non-contiguous as an array too)
    h_np = rng.standard_normal(shape)
    for impl in ("numba", "reference"):
        with use_impl(impl):
            base = tg.tensor(x_np, requires_grad=True)
            x = base.T
            assert not x.data.flags.c_contiguous
            g = tg.tensor(g_np, requires_grad=True)
            (fused,) = tg.grad(op(x), base, grad_outputs=g, create_graph=True)
            plain = unfused_grad(x, g).T
            np.testing.assert_array_equal(fused.numpy(), plain.numpy())
            second = tg.grad(fused, (base, g), grad_outputs=tg.tensor(h_np.T), allow_unused=True,
                             retain_graph=True)
            expected = tg.grad(plain, (base, g), grad_outputs=tg.tensor(h_np.T),
                               allow_unused=True)
            for a, b in zip(second, expected):     # None: zero (the mask's d/dx)
                a = np.zeros_like(x_np) if a is None else a.numpy()
                b = np.zeros_like(x_np) if b is None else b.numpy()
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
            # third order: the Grad node's backward is itself, through the same mask
            h = tg.tensor(h_np.T, requires_grad=True)
            (third,) = tg.grad(fused, g, grad_outputs=h, create_graph=True)
            k_np = rng.standard_normal(shape)
            (fourth,) = tg.grad(third, h, grad_outputs=tg.tensor(k_np))
            np.testing.assert_array_equal(fourth.numpy(), MASKED[name][2](k_np, x_np.T).T)


@pytest.mark.parametrize("name", sorted(MASKED))
def test_masked_gradcheck_with_odd_sizes_and_random_upstream(name):
    """gradcheck / gradgradcheck (random upstream gradients) through the mask, at a size
    no multiple of 8, 32 or 256 (a full block and a partial one), non-contiguous."""
    op = UNFUSED[name][0]
    x = np.random.default_rng(7).standard_normal((13, 23))
    x[np.abs(x) < 0.05] = 0.5                     # away from the kink
    assert gradcheck(lambda t: op(t.T), [tg.tensor(x, requires_grad=True)])
    assert gradgradcheck(lambda t: op(t.T), [tg.tensor(x, requires_grad=True)])


@pytest.mark.parametrize("impl", ["numba", "reference"])
def test_masked_backward_names_a_wrong_mask(impl):
    module = fast if impl == "numba" else ref
    g = np.ones((3, 100), np.float32)
    for mask in (np.zeros(32, np.uint8), np.zeros(64, np.float32), np.zeros((2, 32), np.uint8)):
        with pytest.raises(ValueError, match=r"packed uint8 mask of 64 bytes .* shape \(3, 100\)"):
            module.relu_backward(g, mask)
        with pytest.raises(ValueError, match="packed uint8 mask"):
            module.leaky_relu_backward(g, mask, 0.2)


def test_relu_and_leaky_relu_keep_only_the_mask():
    """What the nodes keep for backward: the mask (a 32nd of a float32 input's bytes),
    not the input or output; released by the backward."""
    x = tg.tensor(np.random.default_rng(0).standard_normal((64, 300)).astype(np.float32),
                  requires_grad=True)
    for op in (F.relu, lambda t: F.leaky_relu(t, 0.2)):
        y = op(x)
        (kept,) = y.grad_fn.saved_arrays()
        assert kept.dtype == np.uint8 and kept.nbytes == 75 * 32 < x.data.nbytes // 30
        y.backward(tg.tensor(np.ones(y.shape, np.float32)))
        assert y.grad_fn.saved_arrays() == []
