"""The conv family's CUDA kernels (kernels/conv.cu, tinygen.backend.cuda_kernels.conv)
against the numpy reference, run on the CPU by the CUDA emulator.

Every case checks all three functions (forward, input gradient = conv_transpose2d,
weight gradient) in float64 (1e-10) and float32 (1e-5), relative to the largest
reference value; the reference always runs in float64 on the same inputs.  Sizes are
odd and not multiples of the tiles (128x128, 64x256, 32x256, 16x256, the halo tiles), the
cases reach every tile shape, several K slices and several column tiles, split K and tap lists longer than
one launch takes.  Geometries and tap lists are
built by tinygen.ops.conv's own helpers, so they are exactly what the ops pass.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen.backend.cuda_kernels import conv as cuda_conv
from tinygen.backend.cuda_kernels import emulator
from tinygen.backend.reference import conv as reference
from tinygen.ops import conv as C
from tinygen.ops import conv_geometry as G
from tinygen.ops import conv_pixelcnn as P
from tinygen.testing import gradcheck, gradgradcheck
from tinygen.testing.fake_cuda import FakeCudaArray, fake_cuda

pytestmark = pytest.mark.usefixtures("emulated")

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}
DTYPES = [np.float64, np.float32]
FUNCTIONS = ("conv2d_forward", "conv2d_input_grad", "conv2d_weight_grad")


# --- building problems the way the ops do -----------------------------------------------------
def conv_problem(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1):
    """(geom, taps) of conv2d(x, w, ...) as tinygen.ops.conv builds them."""
    x, w = np.empty(x_shape), np.empty(w_shape)
    geom = G.conv_geometry(G.Call("conv2d", x, w), x, w, stride, padding, dilation, groups, 2)
    return geom, G.kept_taps(geom, None)


def transpose_problem(x_shape, w_shape, stride=1, padding=0, output_padding=0, groups=1,
                      dilation=1):
    """(geom, taps) of conv_transpose2d(x, w, ...): its forward is conv2d_input_grad."""
    x, w = np.empty(x_shape), np.empty(w_shape)
    geom = G.transpose_geometry(G.Call("conv_transpose2d", x, w), x, w, stride, padding,
                                 output_padding, groups, dilation, 2)
    return geom, G.kept_taps(geom, None)


def causal_problem(n, channels, out_channels, length, k, dilation):
    """(geom, taps) of causal_conv1d: a height-1 conv padded d*(k-1) on the left."""
    x, w = np.empty((n, channels, length)), np.empty((out_channels, channels, k))
    geom = G.conv_geometry(G.Call("causal_conv1d", x, w), x, w, 1,
                            ((dilation * (k - 1), 0),), dilation, 1, 1)
    return geom, G.kept_taps(geom, None)


def cropped(geom, out_width):
    return G.ConvGeometry(geom.stride, geom.padding, geom.dilation, geom.groups, geom.in_size,
                          (geom.out_size[0], out_width), geom.kernel)


def _is_second_pass(name):
    """A launch that sums partial results (split K, weight-gradient splits)."""
    return "reduce" in name or "split_sum" in name


# --- comparing -----------------------------------------------------------------------------
def rel_error(actual, expected):
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    scale = max(np.abs(expected).max(initial=0.0), 1e-300)
    return np.abs(actual.astype(np.float64) - expected).max(initial=0.0) / scale


def random_operands(rng, geom, n, channels, out_channels, dtype):
    """x, weight, grad_y (dtype) for a problem with the given channel counts."""
    x = rng.standard_normal((n, channels) + tuple(geom.in_size)).astype(dtype)
    w = rng.standard_normal((out_channels, channels // geom.groups)
                            + tuple(geom.kernel)).astype(dtype)
    gy = rng.standard_normal((n, out_channels) + tuple(geom.out_size)).astype(dtype)
    return x, w, gy


def check_all(x, w, gy, geom, taps, launches=None):
    """All three CUDA functions equal the float64 reference on these operands; with the
    ``launches`` fixture's list, returns the kernels each function ran (less the second
    passes that sum partial results), one set per function."""
    dtype = x.dtype.type
    x64, w64, gy64 = (a.astype(np.float64) for a in (x, w, gy))
    calls = [
        (lambda: cuda_conv.conv2d_forward(x, w, geom, taps),
         lambda: reference.conv2d_forward(x64, w64, geom, taps)),
        (lambda: cuda_conv.conv2d_input_grad(gy, w, geom, taps),
         lambda: reference.conv2d_input_grad(gy64, w64, geom, taps)),
        (lambda: cuda_conv.conv2d_weight_grad(x, gy, geom, taps),
         lambda: reference.conv2d_weight_grad(x64, gy64, geom, taps)),
    ]
    kernels = []
    for name, (ours, theirs) in zip(FUNCTIONS, calls):
        first = len(launches) if launches is not None else 0
        actual, expected = ours(), theirs()
        if launches is not None:
            kernels.append({k for k, _ in launches[first:] if not _is_second_pass(k)})
        assert type(actual) is np.ndarray and actual.dtype == dtype, name
        assert actual.flags.c_contiguous, name
        error = rel_error(actual, expected)
        assert error <= TOLERANCE[dtype], f"{name}: relative error {error:.3g}"
    return kernels


def run_case(rng, dtype, geom, taps, n, channels, out_channels, weight_mask=None,
             launches=None):
    x, w, gy = random_operands(rng, geom, n, channels, out_channels, dtype)
    if weight_mask is not None:
        w = C._masked_weight(w, weight_mask)
    return check_all(x, w, gy, geom, taps, launches)


@pytest.fixture
def launches(monkeypatch):
    """The (kernel name, grid) of every launch the conv module makes."""
    seen = []
    real = cuda_conv.launch

    def recording(name, grid, block, args):
        seen.append((name, grid))
        return real(name, grid, block, args)

    monkeypatch.setattr(cuda_conv, "launch", recording)
    return seen


# --- dense convolutions --------------------------------------------------------------------
DENSE = {
    # name: (x shape, weight shape, conv2d keyword arguments)
    "3x3 stride 2 padding 1": ((2, 5, 9, 7), (6, 5, 3, 3), dict(stride=2, padding=1)),
    "3x3 per-side padding, stride (2, 1)": ((2, 3, 8, 9), (4, 3, 3, 3),
                                            dict(stride=(2, 1), padding=((2, 0), (1, 2)))),
    "3x3 dilation 2": ((1, 4, 9, 9), (5, 4, 3, 3), dict(padding=2, dilation=2)),
    "3x3 dilation (2, 3) stride 3": ((2, 2, 9, 8), (3, 2, 3, 3),
                                     dict(stride=3, dilation=(2, 3), padding=(1, 2))),
    "groups 2": ((2, 4, 7, 9), (6, 2, 3, 3), dict(groups=2, padding=1)),
    "groups 3 strided 4x3": ((2, 3, 7, 8), (6, 1, 4, 3),
                             dict(groups=3, stride=(2, 3), padding=((2, 1), (0, 2)))),
    "1x1": ((2, 5, 5, 7), (3, 5, 1, 1), {}),
    "1x1 stride 2": ((1, 3, 9, 6), (4, 3, 1, 1), dict(stride=2)),
    "4x4 stride 2 (a DCGAN layer)": ((2, 3, 9, 9), (5, 3, 4, 4), dict(stride=2, padding=1)),
    # M beyond one 64-row tile (forward, weight grad) and input channels for the
    # input gradient on the 64x256 and 32x256 tiles
    "70 output channels": ((1, 3, 5, 6), (70, 3, 3, 1), dict(padding=(1, 0))),
    "50 output channels": ((1, 4, 5, 5), (50, 4, 3, 3), dict(padding=1)),
    "40 input channels": ((1, 40, 5, 5), (3, 40, 3, 3), dict(padding=1)),
    "20 channels each": ((1, 20, 4, 5), (20, 20, 2, 3), dict(padding=((1, 0), (1, 1)))),
    "20 channels each, stride 2": ((1, 20, 7, 9), (20, 20, 2, 3),
                                   dict(stride=2, padding=((1, 0), (1, 1)))),
    "halo over several blocks": ((3, 17, 29, 27), (5, 17, 3, 2),
                                 dict(padding=((2, 1), (0, 1)), dilation=(2, 1))),
    # strided convs with few rows: the halo tiles per stride phase (odd sizes, per-side
    # padding, dilation; phases no tap reaches; an input whose phases are all padding)
    "3x3 stride 2 dilation 2, odd sizes": ((2, 5, 11, 9), (7, 5, 3, 3),
                                           dict(stride=2, dilation=2, padding=((3, 1), (0, 2)))),
    "2x2 stride 3: phases without taps": ((1, 4, 10, 8), (3, 4, 2, 2), dict(stride=3, padding=1)),
    "1x1 stride 2 on a 1x1 input: only padding": ((2, 3, 1, 1), (4, 3, 1, 1),
                                                  dict(stride=2, padding=1)),
    # the halo weight gradient over several column blocks (70 channels) and row blocks
    "1x1 70 -> 20 channels": ((1, 70, 5, 6), (20, 70, 1, 1), {}),
    # the 128x128 tile, with a row edge (130 = 128 + 2)
    "130 output channels": ((2, 15, 9, 9), (130, 15, 3, 3), dict(padding=1)),
    "130 input channels": ((2, 130, 9, 9), (3, 130, 3, 3), dict(padding=1)),
}

# The kernel (less conv_ and the dtype) each function runs, so that the cases above keep
# covering every tile shape whatever the selection rules become.  Forwards and input
# gradients with at most 32 GEMM rows take the halo tile (strided ones per stride phase).
TILES = {
    "1x1": ("halo_m16", "halo_m16", "weight_grad_halo_m16"),
    "1x1 stride 2": ("halo_m16", "halo_m16", "weight_grad_halo_m16"),
    "20 channels each": ("halo_m32", "halo_m32", "weight_grad_halo_m16"),
    "20 channels each, stride 2": ("halo_m32", "halo_m32", "weight_grad_halo_m16"),
    "3x3 dilation (2, 3) stride 3": ("halo_m16", "halo_m16", "weight_grad_halo_m16"),
    "3x3 stride 2 dilation 2, odd sizes": ("halo_m16", "halo_m16", "weight_grad_halo_m16"),
    "1x1 70 -> 20 channels": ("halo_m32", "input_grad_m64", "weight_grad_halo_m16"),
    "40 input channels": ("halo_m16", "input_grad_m64", "weight_grad_halo_m16"),
    # 70 rows: the 128x128 tile would be one block, below the emulator's "wave" of 4,
    # so the forward takes 64x128; the weight gradient fills the device by splitting.
    "70 output channels": ("forward_m64", "halo_m16", "weight_grad_m128"),
    "50 output channels": ("forward_m64", "halo_m16", "weight_grad_m64"),
    "130 output channels": ("forward_m128", "halo_m16", "weight_grad_m128"),
    "130 input channels": ("halo_m16", "input_grad_m128", "weight_grad_halo_m16"),
    # more raster positions than one block of each halo tile holds, across images
    "halo over several blocks": ("halo_m16", "halo_m32", "weight_grad_halo_m16"),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(DENSE))
def test_dense_conv_matches_reference(rng, launches, dtype, case):
    x_shape, w_shape, kwargs = DENSE[case]
    geom, taps = conv_problem(x_shape, w_shape, **kwargs)
    kernels = run_case(rng, dtype, geom, taps, x_shape[0], x_shape[1], w_shape[0],
                       launches=launches)
    if case in TILES:
        suffix = "f32" if dtype is np.float32 else "f64"
        assert kernels == [{f"conv_{kernel}_{suffix}"} for kernel in TILES[case]]


@pytest.mark.parametrize("name,bm,bn", [tile for tile in cuda_conv._TILES if tile[0] == "m64"]
                         + [cuda_conv._LARGE_TILE])
def test_each_tile_computes_exactly_the_block_conv_py_sizes_grids_for(name, bm, bn):
    """One block of a 1x1 conv one row and one column larger than the tile: the block
    writes the BM x BN corner and nothing else (conv.py's grids rely on this)."""
    from tinygen.backend.cuda_kernels.launch import launch
    x = np.ones((1, 1, 1, bn + 1), np.float32)
    w = np.ones((bm + 1, 1, 1, 1), np.float32)
    y = np.full((1, bm + 1, 1, bn + 1), np.nan, np.float32)
    table = np.zeros((1, 4), np.int32)
    launch(f"conv_forward_{name}_f32", (1, 1, 1), (cuda_conv.THREADS, 1, 1),
           (x, w, table, y, 1, 1, 1, bn + 1, bm + 1, 1, bn + 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 16))
    written = ~np.isnan(y[0, :, 0, :])
    assert written[:bm, :bn].all() and not written[bm:, :].any() and not written[:, bn:].any()
    np.testing.assert_array_equal(y[0, :bm, 0, :bn], 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape,w_shape,kwargs", [
    ((2, 4, 4, 5), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 6, 3, 4), (6, 2, 4, 4), dict(stride=2, padding=1, groups=3)),
    ((2, 3, 3, 3), (3, 5, 3, 2), dict(stride=(3, 2), padding=((0, 2), (1, 0)),
                                      output_padding=(2, 1), dilation=(1, 2))),
    # output_padding >= stride (allowed below the dilation): the conv it is the input
    # gradient of computes fewer outputs than its natural size
    ((2, 3, 4, 3), (3, 2, 3, 3), dict(dilation=2, output_padding=1)),
], ids=["stride 2 output_padding 1", "4x4 stride 2 groups 3", "stride (3, 2) dilated",
        "output_padding 1 dilation 2"])
def test_conv_transpose2d_matches_reference(rng, dtype, x_shape, w_shape, kwargs):
    """conv_transpose2d's forward is conv2d_input_grad; its gradients are the other two."""
    geom, taps = transpose_problem(x_shape, w_shape, **kwargs)
    if kwargs.get("output_padding") == 1 and "stride" not in kwargs:
        assert all(o < n for o, n in zip(geom.out_size, geom.natural_out_size()))
    # The conv the transposed conv is the input gradient of: its input is the
    # transposed conv's output (C_out channels), its output the transposed conv's input.
    channels = w_shape[1] * geom.groups
    run_case(rng, dtype, geom, taps, x_shape[0], channels, w_shape[0])


# --- masked convolutions: tap lists ----------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,mask_type,groups_rgb,cin,cout", [
    (5, "A", 1, 3, 4), (5, "B", 1, 2, 5), (7, "A", 1, 2, 3),
    (5, "A", 3, 3, 6), (3, "B", 3, 6, 3),
])
def test_masked_conv_matches_reference(rng, dtype, kernel, mask_type, groups_rgb, cin, cout):
    mask = P._pixelcnn_weight_mask((kernel, kernel), mask_type, cin, cout, groups_rgb)
    geom, _ = conv_problem((2, cin, 7, 6), (cout, cin, kernel, kernel), padding=kernel // 2)
    assert len(mask.taps) < kernel * kernel
    run_case(rng, dtype, geom, mask.taps, 2, cin, cout, weight_mask=mask)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stack", ["vertical 2x3", "horizontal 1x2", "horizontal 1x2 first",
                                   "horizontal 2x2"])
def test_gated_pixelcnn_stacks_match_reference(rng, dtype, stack):
    """The gated PixelCNN's shifted convs (tinygen.ops.conv down_shifted_conv2d and
    down_right_shifted_conv2d): per-side padding, and a cropped output column."""
    kh, kw = {"vertical 2x3": (2, 3), "horizontal 2x2": (2, 2)}.get(stack, (1, 2))
    if stack.startswith("vertical"):
        padding = ((kh - 1, 0), (kw // 2, kw // 2))
    else:
        padding = ((kh - 1, 0), (kw if stack.endswith("first") else kw - 1, 0))
    geom, taps = conv_problem((2, 3, 5, 7), (4, 3, kh, kw), padding=padding)
    if stack.endswith("first"):  # include_current=False drops the last output column
        geom = cropped(geom, geom.out_size[1] - 1)
    assert tuple(geom.out_size) == (5, 7)
    run_case(rng, dtype, geom, taps, 2, 3, 4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("dilation,length", [(1, 9), (4, 9), (9, 7), (9, 1), (1500, 1503)])
def test_causal_conv1d_matches_reference(rng, dtype, k, dilation, length):
    """WaveNet's dilated causal conv1d through the height-1 path, including inputs
    shorter than the receptive field (taps that see only padding) and a dilation that
    reaches past a double halo block and the double weight gradient's x halo (a launch
    per tap)."""
    geom, taps = causal_problem(2, 3, 4, length, k, dilation)
    assert tuple(geom.in_size) == (1, length) and tuple(geom.out_size) == (1, length)
    run_case(rng, dtype, geom, taps, 2, 3, 4)


@st.composite
def tap_problems(draw):
    """A random legal conv geometry with a random non-empty subset of its taps."""
    groups = draw(st.sampled_from([1, 1, 2]))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    sizes = []
    for k, d, (lo, hi) in zip((kh, kw), dilation, padding):
        low = max(1, d * (k - 1) + 1 - lo - hi)
        sizes.append(draw(st.integers(low, low + 6)))
    n = draw(st.integers(1, 2))
    geom, taps = conv_problem((n, cin) + tuple(sizes), (cout, cin // groups, kh, kw),
                              stride=stride, padding=padding, dilation=dilation, groups=groups)
    keep = draw(st.lists(st.booleans(), min_size=len(taps), max_size=len(taps)).filter(any))
    return geom, taps[np.array(keep)], n, cin, cout


@settings(max_examples=12)
@given(tap_problems(), st.sampled_from(DTYPES), st.integers(0, 2**16))
def test_random_geometries_and_tap_lists_match_reference(problem, dtype, seed):
    geom, taps, n, cin, cout = problem
    run_case(np.random.default_rng(seed), dtype, geom, taps, n, cin, cout)


# --- through the ops on the 'cuda' device ---------------------------------------------------
# Under tinygen.testing.fake_cuda the ops dispatch to this family (numpy underneath, so the
# kernels run on the emulator): every derivative of every conv op is then made of these
# three kernels, and gradcheck/gradgradcheck check them as each other's adjoints.
OPS = {
    "conv2d": (lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=((1, 0), (2, 1)),
                                     dilation=(1, 2), groups=2), [(2, 4, 4), (4, 1, 2, 3)]),
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1,
                                                         output_padding=1),
                         [(2, 3, 2), (2, 3, 3, 3)]),
    "masked_conv2d rgb": (lambda x, w: F.masked_conv2d(x, w, mask_type="B", groups_rgb=3),
                          [(3, 4, 3), (3, 3, 3, 3)]),
    "causal_conv1d": (lambda x, w: F.causal_conv1d(x, w, dilation=3), [(2, 5), (3, 2, 2)]),
    # the critic's first layer: its input gradient (WGAN-GP's penalty) is conv_input_grad_c1
    "conv2d C=1 4x4 stride 2": (lambda x, w: F.conv2d(x, w, stride=2, padding=1),
                                [(1, 6, 5), (3, 1, 4, 4)]),
}


def _on_fake_device(test):
    return pytest.mark.skipif(tg.cuda.is_available(),
                              reason="a real GPU is present: the fake would hide it")(test)


def _device_inputs(op, n, seed):
    _, (x_shape, w_shape) = OPS[op]
    rng = np.random.default_rng(seed)
    return (tg.tensor(rng.standard_normal((n,) + x_shape), requires_grad=True, device="cuda"),
            tg.tensor(rng.standard_normal(w_shape), requires_grad=True, device="cuda"))


@_on_fake_device
@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=2)
@given(n=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_conv_ops_on_the_cuda_device_pass_gradcheck(op, n, seed):
    with fake_cuda():
        x, w = _device_inputs(op, n, seed)
        assert isinstance(OPS[op][0](x, w).data, FakeCudaArray)
        assert gradcheck(OPS[op][0], (x, w), seed=seed)


@_on_fake_device
@pytest.mark.parametrize("op", ["conv2d", "causal_conv1d", "conv2d C=1 4x4 stride 2"])
def test_conv_ops_on_the_cuda_device_pass_gradgradcheck(op):
    """Second derivatives: the backward of each kernel's Function runs the other two."""
    with fake_cuda():
        x, w = _device_inputs(op, 1, 0)
        assert gradgradcheck(OPS[op][0], (x, w))


# --- masked taps are never read ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_kernels_never_read_masked_weights(rng, dtype):
    """NaN in every fully masked weight: the outputs stay finite and equal the
    reference's with zeros there (a kernel that multiplied by them would give NaN)."""
    mask = P._pixelcnn_weight_mask((5, 5), "A", 3, 4, 1)
    geom, _ = conv_problem((2, 3, 6, 7), (4, 3, 5, 5), padding=2)
    x, w, gy = random_operands(rng, geom, 2, 3, 4, dtype)
    masked = ~mask.array.any(axis=(0, 1))
    poisoned = w.copy()
    poisoned[:, :, masked] = np.nan
    zeroed = np.where(masked, 0, w).astype(dtype)
    y = cuda_conv.conv2d_forward(x, poisoned, geom, mask.taps)
    gx = cuda_conv.conv2d_input_grad(gy, poisoned, geom, mask.taps)
    assert np.isfinite(y).all() and np.isfinite(gx).all()
    np.testing.assert_array_equal(y, cuda_conv.conv2d_forward(x, zeroed, geom, mask.taps))
    np.testing.assert_array_equal(gx, cuda_conv.conv2d_input_grad(gy, zeroed, geom, mask.taps))
    # ... and the weight gradient is exactly zero at the masked taps.
    gw = cuda_conv.conv2d_weight_grad(x, gy, geom, mask.taps)
    assert (gw[:, :, masked] == 0).all() and (gw[:, :, ~masked] != 0).all()


# --- split K, and tap lists longer than one launch ---------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_and_input_grad_split_k_when_their_tiles_do_not_fill_a_wave(rng, launches,
                                                                           dtype):
    """One halo block each, below the emulator's wave of 4 blocks: the 16 source channels
    are split in four (at least 4 channels a split), then summed."""
    geom, taps = conv_problem((1, 16, 5, 5), (16, 16, 3, 3), padding=1)
    x, w, gy = random_operands(rng, geom, 1, 16, 16, dtype)
    check_all(x, w, gy, geom, taps)
    suffix = "f32" if dtype is np.float32 else "f64"
    assert [launch for launch in launches[:4] if "split_sum" not in launch[0]] == [
        (f"conv_halo_m16_{suffix}", (1, 1, 4))] * 2
    assert [name for name, _ in launches[:4]][1::2] == [f"conv_split_sum_{suffix}"] * 2
    # deterministic: the partial sums are added in split order
    np.testing.assert_array_equal(cuda_conv.conv2d_forward(x, w, geom, taps),
                                  cuda_conv.conv2d_forward(x, w, geom, taps))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_forward_splits_k_when_its_tiles_do_not_fill_a_wave(rng, launches, dtype):
    """One 64x256 tile (40 output channels: no halo tile): K = 32 channels * 9 taps = 18
    slices is split in four (at least 4 slices a split), then summed."""
    geom, taps = conv_problem((1, 32, 5, 5), (40, 32, 3, 3), stride=2, padding=1)
    x, w, gy = random_operands(rng, geom, 1, 32, 40, dtype)
    check_all(x, w, gy, geom, taps)
    suffix = "f32" if dtype is np.float32 else "f64"
    assert launches[:2] == [(f"conv_forward_m64_{suffix}", (1, 1, 4)),
                            (f"conv_split_sum_{suffix}", (2, 1, 1))]  # 360 outputs


def test_grids_that_fill_a_wave_are_not_split(rng, monkeypatch, launches):
    geom, taps = conv_problem((1, 16, 5, 5), (16, 16, 3, 3), padding=1)
    x, w, gy = random_operands(rng, geom, 1, 16, 16, np.float64)
    split = cuda_conv.conv2d_forward(x, w, geom, taps)
    monkeypatch.setattr(cuda_conv, "EMULATOR_TARGET_BLOCKS", 1)
    launches.clear()
    whole = cuda_conv.conv2d_forward(x, w, geom, taps)
    assert launches == [("conv_halo_m16_f64", (1, 1, 1))]
    np.testing.assert_allclose(whole, split, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_taps_reaching_beyond_a_halo_block_run_as_separate_launches(rng, launches, dtype):
    """WaveNet's dilation 600 (k = 2) reaches 600 raster positions: within a float m32
    halo block (1024 positions), beyond a double one (512): a launch per tap, summed."""
    geom, taps = causal_problem(1, 20, 20, 610, 2, 600)
    run_case(rng, dtype, geom, taps, 1, 20, 20)
    suffix = "f32" if dtype is np.float32 else "f64"
    per_function = 1 if dtype is np.float32 else 2
    names = [name for name, _ in launches if not _is_second_pass(name)]
    assert names == [f"conv_halo_m32_{suffix}"] * (2 * per_function) + [
        f"conv_weight_grad_halo_m16_{suffix}"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_tap_lists_over_32_run_as_several_launches(rng, launches, dtype):
    """A dense 7x7 kernel has 49 taps; a launch takes 32 (a bit each): two launches per
    function, summed.  Also with stride 2, whose phases split the taps again."""
    for kwargs in (dict(padding=3), dict(padding=3, stride=2)):
        geom, taps = conv_problem((1, 2, 6, 5), (3, 2, 7, 7), **kwargs)
        assert len(taps) == 49
        launches.clear()
        run_case(rng, dtype, geom, taps, 1, 2, 3)
        names = [name.rsplit("_", 1)[0].removesuffix("_m16") for name, _ in launches]
        if "stride" not in kwargs:
            assert names[:6] == ["conv_halo", "conv_halo", "conv_split_sum"] * 2
        else:  # 16, 12, 12 and 9 taps a phase: the forward sums 4 launches, the input
            # gradient writes each phase's rows of grad_x
            assert names[:9] == ["conv_halo"] * 4 + ["conv_split_sum"] + ["conv_halo"] * 4


# --- one input channel per group: the direct forward kernel ---------------------------------
DIRECT = {
    # name: (x shape, weight shape, conv2d keyword arguments, mask type or None, kernel)
    "C=1 7x7 mask A, 40 outputs": ((2, 1, 9, 12), (40, 1, 7, 7), dict(padding=3), "A", "t24"),
    "C=1 4x4 stride 2 (a DCGAN layer)": ((2, 1, 9, 9), (5, 1, 4, 4), dict(stride=2, padding=1),
                                         None, "t16"),
    "C=1 5x5 dense": ((1, 1, 6, 6), (3, 1, 5, 5), dict(padding=2), None, "t32"),
    "depthwise 2x2, groups 3": ((2, 3, 5, 7), (6, 1, 2, 2), dict(groups=3, padding=1), None,
                                "t8"),
    # 9 taps: t9, whose weight rows are 12 long (whole 16-byte runs), 3 of them zeros
    "C=1 3x3 (the classifier's first layer), 34 outputs": ((2, 1, 7, 8), (34, 1, 3, 3),
                                                           dict(padding=1), None, "t9"),
    "depthwise 3x3 stride 2, groups 2": ((3, 2, 9, 7), (4, 1, 3, 3),
                                         dict(groups=2, stride=2, padding=(2, 1)), None, "t9"),
    "C=1 3x3 mask B (5 taps)": ((2, 1, 6, 6), (3, 1, 3, 3), dict(padding=1), "B", "t8"),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(DIRECT))
def test_single_channel_forward_runs_the_direct_kernel(rng, launches, dtype, case):
    x_shape, w_shape, kwargs, mask_type, kernel = DIRECT[case]
    geom, taps = conv_problem(x_shape, w_shape, **kwargs)
    mask = None
    if mask_type:
        mask = P._pixelcnn_weight_mask(geom.kernel, mask_type, 1, w_shape[0], 1)
        taps = mask.taps
    run_case(rng, dtype, geom, taps, x_shape[0], x_shape[1], w_shape[0], weight_mask=mask)
    suffix = "f32" if dtype is np.float32 else "f64"
    name, grid = launches[0]
    assert name == f"conv_forward_direct_{kernel}_{suffix}"
    assert grid[1:] == (-(-w_shape[0] // geom.groups // 32), geom.groups)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_size", [(3, 5), (5, 6)], ids=["odd plane", "plane of 30"])
def test_single_channel_planes_of_partial_16_byte_runs_take_the_halo(rng, launches, dtype,
                                                                      out_size):
    """The direct kernel stores 16-byte runs of an output plane: a plane of 15 pixels (or
    30 floats) is no whole number of runs, and takes the halo tile (per stride phase)."""
    h, w = 2 * out_size[0] - 1, 2 * out_size[1] - 1
    geom, taps = conv_problem((2, 1, h, w), (3, 1, 3, 3), stride=2, padding=1)
    assert tuple(geom.out_size) == out_size
    run_case(rng, dtype, geom, taps, 2, 1, 3)
    direct = out_size == (5, 6) and dtype is np.float64
    assert launches[0][0] == ("conv_forward_direct_t9_f64" if direct else
                              f"conv_halo_m16_{'f32' if dtype is np.float32 else 'f64'}")


def test_direct_kernel_never_reads_masked_weights(rng, launches):
    mask = P._pixelcnn_weight_mask((7, 7), "A", 1, 3, 1)
    geom, _ = conv_problem((2, 1, 6, 6), (3, 1, 7, 7), padding=3)
    x, w, _ = random_operands(rng, geom, 2, 1, 3, np.float32)
    masked = ~mask.array.any(axis=(0, 1))
    poisoned = w.copy()
    poisoned[:, :, masked] = np.nan
    y = cuda_conv.conv2d_forward(x, poisoned, geom, mask.taps)
    np.testing.assert_array_equal(y, cuda_conv.conv2d_forward(
        x, np.where(masked, 0, w).astype(np.float32), geom, mask.taps))
    assert np.isfinite(y).all()
    assert launches[0][0] == "conv_forward_direct_t24_f32"


# --- one input channel per group: the C = 1 input-gradient kernel ----------------------------
C1 = {
    # name: (x shape, weight shape, conv2d keyword arguments)
    "the GAN critic's first layer, 28x28": ((2, 1, 28, 28), (7, 1, 4, 4),
                                            dict(stride=2, padding=1)),
    "odd sizes, no padding": ((1, 1, 9, 11), (3, 1, 4, 4), dict(stride=2)),
    "padding 3 and (2, 0) per side, groups 2": ((2, 2, 7, 12), (6, 1, 4, 4),
                                                dict(stride=2, padding=((3, 2), (0, 1)),
                                                     groups=2)),
    "40 outputs: split in 4": ((1, 1, 10, 8), (40, 1, 4, 4), dict(stride=2, padding=1)),
}


def check_input_grad(rng, dtype, geom, taps, n, out_channels, w_shape):
    gy = rng.standard_normal((n, out_channels) + tuple(geom.out_size)).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    gx = cuda_conv.conv2d_input_grad(gy, w, geom, taps)
    expected = reference.conv2d_input_grad(gy.astype(np.float64), w.astype(np.float64), geom,
                                           taps)
    assert gx.dtype == dtype and rel_error(gx, expected) <= TOLERANCE[dtype]
    return gx


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(C1))
def test_single_channel_input_grad_runs_the_c1_kernel(rng, launches, dtype, case):
    x_shape, w_shape, kwargs = C1[case]
    geom, taps = conv_problem(x_shape, w_shape, **kwargs)
    check_input_grad(rng, dtype, geom, taps, x_shape[0], w_shape[0], w_shape)
    suffix = "f32" if dtype is np.float32 else "f64"
    (name, grid), *rest = launches
    assert name == f"conv_input_grad_c1_k4s2_{suffix}" and grid[2] == geom.groups
    splits = 4 if w_shape[0] == 40 else 1
    assert grid[1] == splits
    assert [n for n, _ in rest] == ([f"conv_split_sum_{suffix}"] if splits > 1 else [])


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_gan_generators_last_layer_runs_the_c1_kernel(rng, launches, dtype):
    """ConvTranspose2d(C, 1, 4, stride 2, padding 1): its forward is conv2d_input_grad
    with one channel on the output side."""
    geom, taps = transpose_problem((2, 6, 7, 7), (6, 1, 4, 4), stride=2, padding=1)
    assert tuple(geom.in_size) == (14, 14)
    check_input_grad(rng, dtype, geom, taps, 2, 6, (6, 1, 4, 4))
    assert launches[0][0] == f"conv_input_grad_c1_k4s2_{'f32' if dtype is np.float32 else 'f64'}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_c1_kernel_stages_the_weights_of_many_outputs_in_chunks(rng, monkeypatch, launches,
                                                                dtype):
    """70 outputs in one split: the block stages weights 32 outputs at a time (3 chunks,
    the last partial), with a barrier before each refill."""
    monkeypatch.setattr(cuda_conv, "EMULATOR_TARGET_BLOCKS", 1)
    geom, taps = conv_problem((1, 1, 6, 9), (70, 1, 4, 4), stride=2, padding=1)
    check_input_grad(rng, dtype, geom, taps, 1, 70, (70, 1, 4, 4))
    assert [name for name, _ in launches] == [
        f"conv_input_grad_c1_k4s2_{'f32' if dtype is np.float32 else 'f64'}"]


@pytest.mark.parametrize("x_shape,w_shape,kwargs,mask", [
    ((1, 1, 9, 9), (3, 1, 3, 3), dict(stride=2, padding=1), None),   # K != 2*S
    ((1, 1, 9, 9), (3, 1, 4, 4), dict(stride=(2, 1), padding=1), None),
    ((1, 1, 12, 12), (3, 1, 4, 4), dict(stride=2, dilation=2), None),
    ((1, 2, 9, 9), (3, 2, 4, 4), dict(stride=2, padding=1), None),   # C = 2
    ((1, 1, 9, 9), (3, 1, 4, 4), dict(stride=2, padding=1), "A"),    # masked: not every tap
], ids=["3x3", "stride (2, 1)", "dilation 2", "two input channels", "mask A"])
def test_other_input_grads_do_not_take_the_c1_kernel(rng, launches, x_shape, w_shape, kwargs,
                                                     mask):
    geom, taps = conv_problem(x_shape, w_shape, **kwargs)
    if mask:
        taps = P._pixelcnn_weight_mask(geom.kernel, mask, 1, w_shape[0], 1).taps
    gy = rng.standard_normal((1, w_shape[0]) + tuple(geom.out_size))
    w = rng.standard_normal(w_shape)
    gx = cuda_conv.conv2d_input_grad(gy, w, geom, taps)
    assert rel_error(gx, reference.conv2d_input_grad(gy, w, geom, taps)) <= 1e-10
    assert not any("c1" in name for name, _ in launches)


# --- the weight gradient's split reduction ------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True], ids=["dense", "mask B"])
def test_weight_grad_splits_are_reduced_deterministically(rng, monkeypatch, launches, dtype,
                                                          masked):
    geom, taps = conv_problem((2, 3, 17, 15), (4, 3, 3, 3), padding=1)
    if masked:
        taps = P._pixelcnn_weight_mask((3, 3), "B", 3, 4, 1).taps
    x, _, gy = random_operands(rng, geom, 2, 3, 4, dtype)
    monkeypatch.setattr(cuda_conv, "EMULATOR_TARGET_BLOCKS", 16)
    first = cuda_conv.conv2d_weight_grad(x, gy, geom, taps)
    (gemm, grid), (reduce, _) = launches
    # 17 rows of 17 raster positions in chunks of 128: 3 chunks an image, a split each
    assert gemm.startswith("conv_weight_grad_halo_m16") and grid[2] == 6
    assert reduce.startswith("conv_weight_grad_reduce")
    expected = reference.conv2d_weight_grad(x.astype(np.float64), gy.astype(np.float64), geom,
                                            taps)
    assert rel_error(first, expected) <= TOLERANCE[dtype]
    np.testing.assert_array_equal(cuda_conv.conv2d_weight_grad(x, gy, geom, taps), first)


def test_a_dense_unsplit_weight_grad_needs_no_reduction(rng, launches):
    geom, taps = conv_problem((1, 2, 5, 5), (3, 2, 3, 3))
    x, _, gy = random_operands(rng, geom, 1, 2, 3, np.float64)
    gw = cuda_conv.conv2d_weight_grad(x, gy, geom, taps)
    assert [name for name, _ in launches] == ["conv_weight_grad_halo_m16_f64"]
    assert rel_error(gw, reference.conv2d_weight_grad(x, gy, geom, taps)) <= 1e-10


# --- races: results must not depend on the order the threads of a block run in -------------
@pytest.mark.parametrize("channels,out_channels,kernel,stride", [
    (20, 40, 3, (2, 1)), (1, 33, 5, (2, 1)), (20, 20, 3, 1), (1, 40, 4, 2)],
    ids=["GEMM, halo phases", "direct forward (C=1), split K", "halo", "C=1 input grad, split"])
def test_results_do_not_depend_on_thread_order(rng, channels, out_channels, kernel, stride):
    geom, taps = conv_problem((2, channels, 6, 8), (out_channels, channels, kernel, kernel),
                              stride=stride, padding=1)
    x, w, gy = random_operands(rng, geom, 2, channels, out_channels, np.float64)
    forward = [f(a, b, geom, taps) for f, a, b in (
        (cuda_conv.conv2d_forward, x, w), (cuda_conv.conv2d_input_grad, gy, w),
        (cuda_conv.conv2d_weight_grad, x, gy))]
    lib = emulator.library()
    lib.set_reverse_order(True)
    try:
        backward = [f(a, b, geom, taps) for f, a, b in (
            (cuda_conv.conv2d_forward, x, w), (cuda_conv.conv2d_input_grad, gy, w),
            (cuda_conv.conv2d_weight_grad, x, gy))]
    finally:
        lib.set_reverse_order(False)
    for a, b in zip(forward, backward):
        np.testing.assert_array_equal(a, b)


# --- inputs the kernels accept, and those they refuse ------------------------------------------
def test_non_contiguous_inputs_are_accepted(rng):
    geom, taps = conv_problem((2, 3, 6, 5), (4, 3, 3, 3), padding=1)
    x_view = rng.standard_normal((2, 6, 5, 3)).transpose(0, 3, 1, 2)  # channels last
    w = rng.standard_normal((3, 3, 3, 4)).transpose(3, 0, 1, 2)
    assert not x_view.flags.c_contiguous and not w.flags.c_contiguous
    np.testing.assert_allclose(cuda_conv.conv2d_forward(x_view, w, geom, taps),
                               reference.conv2d_forward(x_view, w, geom, taps), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_no_taps_or_an_empty_batch_give_zeros(fn):
    geom, taps = conv_problem((2, 3, 5, 5), (4, 3, 3, 3))
    x, w, gy = np.ones((2, 3, 5, 5)), np.ones((4, 3, 3, 3)), np.ones((2, 4, 3, 3))
    args = {"conv2d_forward": (x, w), "conv2d_input_grad": (gy, w),
            "conv2d_weight_grad": (x, gy)}[fn]
    expected = getattr(reference, fn)(*args, geom, taps[:0])
    result = getattr(cuda_conv, fn)(*args, geom, taps[:0])
    assert result.shape == expected.shape and not result.any()
    empty = tuple(a[:0] if a.shape[0] == 2 else a for a in args)
    assert getattr(cuda_conv, fn)(*empty, geom, taps).shape == getattr(reference, fn)(
        *empty, geom, taps).shape


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_unsupported_dtypes_are_refused(fn):
    geom, taps = conv_problem((1, 2, 4, 4), (2, 2, 3, 3))
    a, b = {"conv2d_forward": ((1, 2, 4, 4), (2, 2, 3, 3)),
            "conv2d_input_grad": ((1, 2, 2, 2), (2, 2, 3, 3)),
            "conv2d_weight_grad": ((1, 2, 4, 4), (1, 2, 2, 2))}[fn]
    unsupported = rf"{fn}: \w+ must be a float32 or float64 array, got"
    with pytest.raises(TypeError, match=unsupported + " int64"):
        getattr(cuda_conv, fn)(np.ones(a, dtype=np.int64), np.ones(b), geom, taps)
    with pytest.raises(TypeError, match=unsupported + " float16"):
        getattr(cuda_conv, fn)(np.ones(a), np.ones(b, dtype=np.float16), geom, taps)
    with pytest.raises(TypeError, match=rf"{fn}: the arrays must share one dtype, got \w+ "
                                        r"float32, \w+ float64"):
        getattr(cuda_conv, fn)(np.ones(a, dtype=np.float32), np.ones(b), geom, taps)


def test_shapes_that_disagree_with_the_geometry_are_refused():
    geom, taps = conv_problem((1, 4, 5, 5), (6, 2, 3, 3), groups=2)
    x, w, gy = np.ones((1, 4, 5, 5)), np.ones((6, 2, 3, 3)), np.ones((1, 6, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d_forward: x must have shape \(1, 4, 5, 5\)"):
        cuda_conv.conv2d_forward(np.ones((1, 4, 5, 6)), w, geom, taps)
    with pytest.raises(ValueError, match=r"conv2d_forward: x must have shape \(1, 4, 5, 5\)"):
        cuda_conv.conv2d_forward(np.ones((1, 3, 5, 5)), w, geom, taps)
    with pytest.raises(ValueError, match=r"conv2d_forward: weight must have shape"):
        cuda_conv.conv2d_forward(x, np.ones((6, 2, 3, 2)), geom, taps)
    with pytest.raises(ValueError, match=r"conv2d_forward: .*do not split into groups=2"):
        cuda_conv.conv2d_forward(x, np.ones((5, 2, 3, 3)), geom, taps)
    with pytest.raises(ValueError, match=r"conv2d_input_grad: grad_y must have shape "
                                         r"\(1, 6, 3, 3\)"):
        cuda_conv.conv2d_input_grad(np.ones((1, 6, 3, 4)), w, geom, taps)
    with pytest.raises(ValueError, match=r"conv2d_weight_grad: grad_y must have shape "
                                         r"\(1, 6, 3, 3\)"):
        cuda_conv.conv2d_weight_grad(x, np.ones((2, 6, 3, 3)), geom, taps)
    with pytest.raises(ValueError, match=r"conv2d_weight_grad: x must be 4-D, got shape "
                                         r"\(4, 5, 5\)"):
        cuda_conv.conv2d_weight_grad(np.ones((4, 5, 5)), gy, geom, taps)


@pytest.mark.parametrize("taps,message", [
    (np.array([[0, 0], [3, 1]]), r"taps must lie inside the 3x3 kernel"),
    (np.array([[0, -1]]), r"taps must lie inside the 3x3 kernel"),
    (np.array([0, 1, 2]), r"taps must be a \(T, 2\) integer array"),
    (np.array([[0.0, 1.0]]), r"taps must be a \(T, 2\) integer array"),
])
def test_bad_tap_lists_are_refused(taps, message):
    geom, _ = conv_problem((1, 2, 5, 5), (3, 2, 3, 3))
    with pytest.raises(ValueError, match=message):
        cuda_conv.conv2d_forward(np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), geom, taps)
