"""The rows of ``benchmarks.kernels``: each builds one call of a tinygen CUDA kernel
(through its family module, ``tinygen.backend.cuda_kernels.<family>``) and the cuDNN /
PyTorch call that computes the same thing, with the FLOPs and bytes of the roofline.

Nothing here needs a GPU: ``Env.xp`` is cupy for the timed run and numpy for the
test that checks, on a machine without a GPU, that every row's two sides compute
the same values (the kernels then run under the CUDA emulator, PyTorch on the CPU).

FLOPs count the useful multiply-adds (a masked conv: its kept taps only) as 2 each.
Bytes are the traffic an implementation cannot avoid when the data does not fit in
cache: every input read once and every output written once, except batchnorm, whose
statistics need a pass over x before it can be normalised (forward: x read twice,
y written; backward: x and g read twice, dx written).  These credited bytes are not the
working set: ``Env.tracking`` counts the bytes of every array a case allocates (both
sides' inputs, copies included), which is what the timing rotates past the L2 cache.

What cuDNN's side does beyond the convolution a framework would do too, and is timed:
WaveNet's causal conv pads its input on the left first (cuDNN has no one-sided
padding), and its input gradient is cut back to the unpadded length.
"""
import contextlib
import dataclasses
import importlib
from typing import Callable, NamedTuple

import numpy as np

@dataclasses.dataclass
class Env:
    """Where a row runs: ``xp`` (cupy or numpy) for ours, ``torch`` on ``device``, with
    floating data of ``dtype`` (float32 for timing; the sanitizer driver adds float64)."""
    xp: object
    torch: object
    device: str
    dtype: object = np.float32

    _tracked: list = dataclasses.field(default=None, init=False, repr=False)

    @contextlib.contextmanager
    def tracking(self):
        """Count the bytes of the arrays made through ``array`` / ``zeros`` inside: a
        one-element list, filled in when the block ends."""
        outer, self._tracked = self._tracked, []
        total = [0]
        try:
            yield total
        finally:
            total[0] = sum(self._tracked)
            self._tracked = outer
            if outer is not None:
                outer.append(total[0])

    def _made(self, array):
        if self._tracked is not None:
            self._tracked.append(int(array.nbytes))
        return array

    def array(self, host):
        return self._made(self.xp.asarray(host))

    def zeros(self, shape, dtype=None):
        return self._made(self.xp.zeros(shape, dtype=dtype or self.dtype))

    def tensor(self, array):
        """A torch view of ``array`` (same memory, through DLPack)."""
        return self.torch.from_dlpack(array)

    def to_numpy(self, value):
        if hasattr(value, "detach"):
            return value.detach().cpu().numpy()
        return value.get() if hasattr(value, "get") else np.asarray(value)

    @staticmethod
    def family(name):
        return importlib.import_module(f"tinygen.backend.cuda_kernels.{name}")


def _unchanged(result):
    return result


@dataclasses.dataclass
class Case:
    """One input set of a row: two zero-argument calls that compute the same result."""
    ours: Callable
    theirs: Callable
    flops: float
    bytes: float
    # Maps theirs' result to ours' layout before comparing (not timed).
    expected: Callable = _unchanged
    # More baselines timed beside theirs, returning theirs' layout: name -> call.
    others: dict = dataclasses.field(default_factory=dict)


class Goal(NamedTuple):
    """A target of issue 6, checked on a measured row."""
    text: str
    min_speedup: float = 0.0          # cuDNN time / our time must reach this
    strictly_faster: bool = False     # ... and be > 1
    min_copy_fraction: float = 0.0    # our bytes / time over the measured copy bandwidth

    def met(self, speedup, copy_fraction):
        if self.strictly_faster and not speedup > 1.0:
            return False
        return speedup >= self.min_speedup and copy_fraction >= self.min_copy_fraction


MASKED = Goal("masked >= 1.5x cuDNN dense", min_speedup=1.5)
FASTER = Goal("faster than cuDNN", strictly_faster=True)
DENSE = Goal("dense >= 0.8x cuDNN", min_speedup=0.8)
BANDWIDTH = Goal("batchnorm >= 70% of copy bandwidth", min_copy_fraction=0.7)
FASTER_THAN_TORCH = Goal("faster than torch spectral_norm step", strictly_faster=True)


@dataclasses.dataclass
class Workload:
    name: str
    family: str
    phase: str
    build: Callable            # (env, rng) -> Case
    goals: tuple = ()


def _randn(env, rng, shape, scale=1.0):
    return env.array((rng.standard_normal(shape) * scale).astype(env.dtype))


# --- convolutions ---------------------------------------------------------------------------
class ConvPair(NamedTuple):
    """A convolution in ours' terms (x, w, ConvGeometry, taps) and in cuDNN's
    (aten.convolution arguments, possibly on a larger masked weight), with maps from
    cuDNN's results to ours' layout (``fix_*``, not timed) and what cuDNN's side must
    do around the convolution (``prepare_x``, ``finish_dx``: timed)."""
    x: object
    w: object
    geom: object
    taps: object
    tx: object
    tw: object
    args: tuple                # (stride, padding, dilation, transposed, output_padding, groups)
    fix_dx: Callable = lambda t: t
    fix_dw: Callable = lambda t: t
    prepare_x: Callable = lambda t: t
    finish_dx: Callable = lambda t: t


def _geometry(in_size, kernel, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    from tinygen.ops.conv_geometry import ConvGeometry

    geom = ConvGeometry(tuple(stride), tuple(padding), tuple(dilation), groups, tuple(in_size),
                        (0, 0), tuple(kernel))
    return dataclasses.replace(geom, out_size=geom.natural_out_size())


def _all_taps(kernel):
    return np.argwhere(np.ones(kernel, dtype=bool)).astype(np.int64)


def _conv_case(env, rng, pair, phase, transposed=False):
    """fwd / dgrad / wgrad of ``pair``; ``transposed``: the pair's conv is the adjoint of a
    conv_transpose2d whose input is the pair's y (fwd is then ours' input gradient)."""
    torch, k = env.torch, env.family("conv")
    aten = torch.ops.aten
    stride, padding, dilation, t_flag, out_pad, groups = pair.args
    n, c = pair.x.shape[:2]
    o, (ho, wo) = pair.w.shape[0], pair.geom.out_size
    y_shape = (n, o, ho, wo)
    flops = 2.0 * n * ho * wo * o * (c // groups) * len(pair.taps)
    g = tg = None
    if phase != "fwd":  # the upstream gradient (a forward row's working set is without it)
        g = _randn(env, rng, pair.x.shape if transposed else y_shape)
        tg = env.tensor(g)
    item = pair.x.itemsize

    def conv_bwd(mask):
        return aten.convolution_backward(tg, pair.prepare_x(pair.tx), pair.tw, None, stride,
                                         padding, dilation, t_flag, out_pad, groups, mask)

    x_bytes, w_bytes, y_bytes = pair.x.size * item, pair.w.size * item, n * o * ho * wo * item
    if not transposed:
        calls = {
            "fwd": (lambda: k.conv2d_forward(pair.x, pair.w, pair.geom, pair.taps),
                    lambda: aten.convolution(pair.prepare_x(pair.tx), pair.tw, None, *pair.args),
                    lambda t: t),
            "dgrad": (lambda: k.conv2d_input_grad(g, pair.w, pair.geom, pair.taps),
                      lambda: pair.finish_dx(conv_bwd([True, False, False])[0]), pair.fix_dx),
            "wgrad": (lambda: k.conv2d_weight_grad(pair.x, g, pair.geom, pair.taps),
                      lambda: conv_bwd([False, True, False])[1], pair.fix_dw),
        }
    else:  # pair.x is the transposed conv's output, y its input
        y = _randn(env, rng, y_shape)
        ty = env.tensor(y)

        def convt_bwd(mask):
            return aten.convolution_backward(tg, ty, pair.tw, None, stride, padding, dilation,
                                             t_flag, out_pad, groups, mask)

        calls = {
            "fwd": (lambda: k.conv2d_input_grad(y, pair.w, pair.geom, pair.taps),
                    lambda: aten.convolution(ty, pair.tw, None, *pair.args), lambda t: t),
            "dgrad": (lambda: k.conv2d_forward(g, pair.w, pair.geom, pair.taps),
                      lambda: convt_bwd([True, False, False])[0], lambda t: t),
            "wgrad": (lambda: k.conv2d_weight_grad(g, y, pair.geom, pair.taps),
                      lambda: convt_bwd([False, True, False])[1], lambda t: t),
        }
    ours, theirs, expected = calls[phase]
    nbytes = {"fwd": x_bytes + w_bytes + y_bytes, "dgrad": y_bytes + w_bytes + x_bytes,
              "wgrad": x_bytes + y_bytes + w_bytes}[phase]
    return Case(ours, theirs, flops, nbytes, expected)


def dense_conv(n, c, o, size, kernel, stride=1, pad=0):
    def pair(env, rng):
        x = _randn(env, rng, (n, c) + size)
        w = _randn(env, rng, (o, c) + kernel, 0.1)
        geom = _geometry(size, kernel, (stride, stride), (pad,) * 4)
        args = ([stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1)
        return ConvPair(x, w, geom, _all_taps(kernel), env.tensor(x), env.tensor(w), args)
    return pair


def conv_transpose(n, c_in, c_out, size, kernel, stride, pad, out_pad):
    """conv_transpose2d(y (n, c_in, *size), w (c_in, c_out, *kernel)) as the adjoint of a conv."""
    def pair(env, rng):
        out = tuple((s - 1) * stride - 2 * pad + k + out_pad for s, k in zip(size, kernel))
        x = _randn(env, rng, (n, c_out) + out)        # the transposed conv's output
        w = _randn(env, rng, (c_in, c_out) + kernel, 0.1)
        geom = dataclasses.replace(
            _geometry(out, kernel, (stride, stride), (pad,) * 4), out_size=tuple(size))
        args = ([stride] * 2, [pad] * 2, [1, 1], True, [out_pad] * 2, 1)
        return ConvPair(x, w, geom, _all_taps(kernel), env.tensor(x), env.tensor(w), args)
    return pair


def masked_conv(n, c, o, size, k, mask_type):
    """PixelCNN's masked conv over its kept taps vs cuDNN's dense conv with the masked weight."""
    def pair(env, rng):
        from tinygen.ops.conv_geometry import WeightMask
        from tinygen.ops.conv_pixelcnn import pixelcnn_mask

        mask = pixelcnn_mask((k, k), mask_type, c, o)
        kept = WeightMask(mask, (o, c, k, k))
        x = _randn(env, rng, (n, c) + size)
        w = env.array((rng.standard_normal((o, c, k, k)) * 0.1 * mask).astype(env.dtype))
        device_mask = env.tensor(env.array(mask.astype(env.dtype)))
        args = ([1, 1], [k // 2] * 2, [1, 1], False, [0, 0], 1)
        return ConvPair(x, w, _geometry(size, (k, k), padding=(k // 2,) * 4), kept.taps,
                        env.tensor(x), env.tensor(w), args, fix_dw=lambda t: t * device_mask)
    return pair


def gated_stack(n, c, o, size, k, stack):
    """The gated PixelCNN's vertical (k//2+1, k) or horizontal (1, k//2+1) conv vs cuDNN's
    centred k x k (vertical) or 1 x k (horizontal) conv with the masked weight."""
    def pair(env, rng):
        half = k // 2 + 1
        if stack == "vertical":
            kernel, padding, full = (half, k), (k // 2, 0, k // 2, k // 2), (k, k)
            crop = (slice(None), slice(None), slice(0, half), slice(None))
        else:
            kernel, padding, full = (1, half), (0, 0, k // 2, 0), (1, k)
            crop = (slice(None), slice(None), slice(None), slice(0, half))
        x = _randn(env, rng, (n, c) + size)
        w = _randn(env, rng, (o, c) + kernel, 0.1)
        w_full = env.zeros((o, c) + full)
        w_full[crop] = w
        tw = env.tensor(w_full)
        args = ([1, 1], [full[0] // 2, full[1] // 2], [1, 1], False, [0, 0], 1)
        return ConvPair(x, w, _geometry(size, kernel, padding=padding), _all_taps(kernel),
                        env.tensor(x), tw, args, fix_dw=lambda t: t[crop])
    return pair


def causal_conv(n, c, o, length, k, d):
    """WaveNet's causal conv1d (left padding inside the kernel) vs cuDNN's conv on the
    input padded on the left (cuDNN has no one-sided padding): the pad copy, and for
    the input gradient the copy back to the unpadded length, are in cuDNN's time, as
    they are in a framework's step."""
    def pair(env, rng):
        F = env.torch.nn.functional
        pad = d * (k - 1)
        x = _randn(env, rng, (n, c, 1, length))
        w = _randn(env, rng, (o, c, 1, k), 0.1)
        geom = _geometry((1, length), (1, k), padding=(0, 0, pad, 0), dilation=(1, d))
        args = ([1, 1], [0, 0], [1, d], False, [0, 0], 1)
        return ConvPair(x, w, geom, _all_taps((1, k)), env.tensor(x), env.tensor(w), args,
                        prepare_x=lambda t: F.pad(t, (pad, 0)),
                        finish_dx=lambda t: t[..., pad:].contiguous())
    return pair


def conv_workload(name, make_pair, phase, goals, transposed=False):
    return Workload(f"{name} {phase}", "conv", phase,
                    lambda env, rng: _conv_case(env, rng, make_pair(env, rng), phase, transposed),
                    goals)


# --- batch norm ----------------------------------------------------------------------------
def _batch_norm_case(env, rng, shape, phase, eps=1e-5, momentum=0.1):
    torch, k = env.torch, env.family("batch_norm")
    aten = torch.ops.aten
    n, c = shape[:2]
    x = _randn(env, rng, shape, 2.0)
    w, b = _randn(env, rng, (c,)), _randn(env, rng, (c,))
    w64, b64 = w.astype(np.float64), b.astype(np.float64)
    x3 = x.reshape(n, c, -1)
    running = [env.zeros(c), env.array(np.ones(c, dtype=env.dtype))]
    tx, tw, tb = env.tensor(x), env.tensor(w), env.tensor(b)
    t_running = [env.tensor(r.copy()) for r in running]
    default_running = [env.tensor(r.copy()) for r in running]
    cudnn = env.device != "cpu"

    def default_forward(inputs=(tx, tw, tb)):
        """What a PyTorch model runs: F.batch_norm, whichever kernel it dispatches to
        (cuDNN's or PyTorch's own, by shape and settings)."""
        x_, w_, b_ = inputs
        return torch.nn.functional.batch_norm(x_, *default_running, w_, b_, True, momentum,
                                              eps)

    def theirs_forward():
        if cudnn:
            return aten.cudnn_batch_norm(tx, tw, tb, *t_running, True, momentum, eps)
        return aten.native_batch_norm(tx, tw, tb, *t_running, True, momentum, eps)

    if phase == "fwd":
        def ours():
            mean, _, inv_std = k.train_stats(x3, eps, *running, momentum)
            return k.normalize_affine(x3, mean, w64 * inv_std, b64).reshape(shape)

        return Case(ours, lambda: theirs_forward()[0], 0.0, 3 * x.nbytes,
                    others={"torch default": default_forward})

    g = _randn(env, rng, shape)
    g3, tg = g.reshape(n, c, -1), env.tensor(g)
    mean, _, inv_std = k.train_stats(x3, eps)
    saved = theirs_forward()

    def ours():
        sum_g, sum_g_xhat = k.backward_stats(g3, x3, mean, inv_std)
        dx = k.backward_input(g3, x3, mean, inv_std, w64, sum_g, sum_g_xhat)
        return dx.reshape(shape), sum_g_xhat, sum_g

    def theirs():
        if cudnn:
            return aten.cudnn_batch_norm_backward(tx, tg, tw, *t_running, saved[1], saved[2],
                                                  eps, saved[3])
        return aten.native_batch_norm_backward(tg, tx, tw, *t_running, saved[1], saved[2], True,
                                               eps, [True, True, True])

    leaves = [t.detach().requires_grad_() for t in (tx, tw, tb)]
    with torch.enable_grad():
        y = default_forward(leaves)

    def default_backward():  # autograd's dispatch of the backward of F.batch_norm
        return torch.autograd.grad(y, leaves, tg, retain_graph=True)

    return Case(ours, theirs, 0.0, 5 * x.nbytes, others={"torch default": default_backward})


def batch_norm_workload(shape, phase, goals):
    dims = ",".join(map(str, shape))
    return Workload(f"batchnorm train ({dims}) {phase}", "batch_norm", phase,
                    lambda env, rng: _batch_norm_case(env, rng, shape, phase), goals)


# --- spectral norm ---------------------------------------------------------------------------
def _power_iteration_case(env, rng, rows, cols, eps=1e-12):
    torch, k = env.torch, env.family("spectral_norm")
    F = torch.nn.functional
    w = _randn(env, rng, (rows, cols), 0.02)
    u0, v0 = rng.standard_normal(rows), rng.standard_normal(cols)
    u = env.array((u0 / np.linalg.norm(u0)).astype(env.dtype))
    v = env.array((v0 / np.linalg.norm(v0)).astype(env.dtype))
    tw, tu = env.tensor(w), env.tensor(u)

    def theirs():  # torch.nn.utils.spectral_norm's compute_weight, less the division
        with torch.no_grad():
            tv = F.normalize(torch.mv(tw.t(), tu), dim=0, eps=eps)
            new_u = F.normalize(torch.mv(tw, tv), dim=0, eps=eps)
            return new_u, tv, torch.dot(new_u, torch.mv(tw, tv))

    return Case(lambda: k.power_iteration_sigma(w, u, v, 1, eps), theirs,
                4.0 * rows * cols, 2 * w.nbytes)


def power_iteration_workload(rows, cols, goals):
    return Workload(f"power iteration + sigma ({rows}, {cols})", "spectral_norm", "step",
                    lambda env, rng: _power_iteration_case(env, rng, rows, cols), goals)


# --- gated activation --------------------------------------------------------------------------
def _gated_case(env, rng, shape, phase):
    torch, k = env.torch, env.family("gated_activation")
    aten = torch.ops.aten
    n, c2 = shape[:2]
    x = _randn(env, rng, shape)
    x3 = x.reshape(n, 2, -1)
    tx = env.tensor(x)
    a, b = tx[:, :c2 // 2], tx[:, c2 // 2:]
    if phase == "fwd":
        return Case(lambda: k.gated_forward(x3).reshape((n, c2 // 2) + shape[2:]),
                    lambda: torch.tanh(a) * torch.sigmoid(b), 0.0, 1.5 * x.nbytes)
    g = _randn(env, rng, (n, c2 // 2) + shape[2:])
    tg = env.tensor(g)
    t, s = torch.tanh(a), torch.sigmoid(b)  # what autograd saves in the forward

    def theirs():  # what autograd runs for tanh(a) * sigmoid(b)
        return aten.tanh_backward(tg * s, t), aten.sigmoid_backward(tg * t, s)

    def expected(result):
        return torch.stack([r.reshape(n, -1) for r in result], 1)

    return Case(lambda: k.gated_backward(g.reshape(n, -1), x3), theirs, 0.0, 2.5 * x.nbytes,
                expected)


def gated_workload(shape, phase):
    dims = ",".join(map(str, shape))
    return Workload(f"gated activation ({dims}) {phase}", "gated_activation", phase,
                    lambda env, rng: _gated_case(env, rng, shape, phase))


# --- WaveNet generation step -------------------------------------------------------------------
def _wavenet_case(env, rng, batch, layers, residual, skip, classes, k=2):
    from tinygen.backend.reference.wavenet import StepWeights, ring_layout

    torch = env.torch
    dilations = np.array([2 ** (i % 10) for i in range(layers)], dtype=np.int64)
    R, S, Q, L = residual, skip, classes, layers
    shapes = dict(embed=(Q, R), embed_b=(R,), conv_w=(L, k, 2 * R, R), conv_b=(L, 2 * R),
                  res_w=(L, R, R), res_b=(L, R), skip_w=(L, S, R), skip_b=(L, S),
                  out1_w=(S, S), out1_b=(S,), out2_w=(Q, S), out2_b=(Q,))
    host = {name: (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(env.dtype)
            for name, shape in shapes.items()}
    weights = StepWeights(**{name: env.array(a) for name, a in host.items()},
                          dilations=env.array(dilations))
    offsets, sizes, slots = ring_layout(StepWeights(**host, dilations=dilations))
    ring = _randn(env, rng, (batch, slots, R))
    t_ring = env.tensor(env.array(ring.copy()))
    t = int(sizes.max()) * 3 + 5
    previous = env.array(rng.integers(0, Q, batch).astype(np.int64))
    tw = {name: env.tensor(env.array(a)) for name, a in host.items()}  # theirs' own copy
    t_previous = env.tensor(previous)

    def theirs():  # the same step written layer by layer with torch ops
        h = tw["embed_b"] + tw["embed"][t_previous]
        skip_sum = 0
        for layer, d in enumerate(dilations.tolist()):
            base, size = int(offsets[layer]), int(sizes[layer])
            t_ring[:, base + t % size] = h
            z = tw["conv_b"][layer]
            for j in range(k):
                past = t_ring[:, base + (t - (k - 1 - j) * d) % size]
                z = torch.addmm(z, past, tw["conv_w"][layer, j].t())
            g = torch.tanh(z[:, :R]) * torch.sigmoid(z[:, R:])
            h = torch.addmm(h + tw["res_b"][layer], g, tw["res_w"][layer].t())
            skip_sum = torch.addmm(skip_sum + tw["skip_b"][layer], g, tw["skip_w"][layer].t())
        y = torch.addmm(tw["out1_b"], torch.relu(skip_sum), tw["out1_w"].t())
        return torch.addmm(tw["out2_b"], torch.relu(y), tw["out2_w"].t())

    multiply_adds = L * (k * 2 * R * R + R * R + S * R) + S * S + Q * S
    weight_bytes = sum(a.nbytes for a in host.values())
    item = np.dtype(env.dtype).itemsize
    ring_bytes = batch * L * (k + 1) * R * item
    family = env.family("wavenet")
    packed = family.pack(weights)  # once, as generation does
    return Case(lambda: family.step(packed, ring, t, previous), theirs,
                2.0 * batch * multiply_adds, weight_bytes + ring_bytes + batch * Q * item)


def wavenet_workload(batch, layers=20, residual=64, skip=128, classes=256):
    return Workload(f"WaveNet step B{batch} ({layers} layers, R{residual} S{skip} Q{classes})",
                    "wavenet", "step",
                    lambda env, rng: _wavenet_case(env, rng, batch, layers, residual, skip,
                                                   classes))


# --- the list ----------------------------------------------------------------------------------
def workloads(size="full"):
    """Every row, in print order.  size: 'full' (the CPU benchmarks' shapes and batch
    64-256 variants), 'quick' (the smallest batch of each), 'tiny' (a few elements:
    for checking on the CPU emulator that each row's two sides agree) or 'odd' (odd
    sizes past the tile edges, for the correctness check on a GPU: 37 channels, 13x11
    images, odd lengths and shapes; the gated activation's 38 channels are two odd halves)."""
    if size not in ("full", "quick", "tiny", "odd"):
        raise ValueError(f"workloads: unknown size {size!r} (full, quick, tiny or odd)")
    tiny, odd = size == "tiny", size == "odd"
    batches = (2,) if tiny else (3,) if odd else (32,) if size == "quick" else (32, 256)
    ch = 3 if tiny else 37 if odd else 64       # channels of the 64-channel layers
    hw = (5, 6) if tiny else (13, 11) if odd else (28, 28)
    length = 11 if tiny else 301 if odd else 4000
    rows = []
    phases = ("fwd", "dgrad", "wgrad")
    for n in batches:
        rows += [conv_workload(f"conv2d 3x3 N{n} {ch}->{ch} {hw[0]}x{hw[1]} pad1",
                               dense_conv(n, ch, ch, hw, (3, 3), pad=1), p, (DENSE,))
                 for p in phases]
        rows += [conv_workload(f"conv2d 4x4 s2 N{n} {ch}->{2 * ch} {hw[0]}x{hw[1]} pad1",
                               dense_conv(n, ch, 2 * ch, hw, (4, 4), stride=2, pad=1), p, (DENSE,))
                 for p in phases]
        # the GAN critic's first layer: its input gradient is conv_input_grad_c1_k4s2
        rows += [conv_workload(f"conv2d 4x4 s2 N{n} 1->{ch} {hw[0]}x{hw[1]} pad1",
                               dense_conv(n, 1, ch, hw, (4, 4), stride=2, pad=1), p, (DENSE,))
                 for p in phases]
        half = tuple(s // 2 for s in hw)
        rows += [conv_workload(f"conv_transpose2d 4x4 s2 N{n} {2 * ch}->{ch} "
                               f"{half[0]}x{half[1]} pad1",
                               conv_transpose(n, 2 * ch, ch, half, (4, 4), 2, 1, 0), p, (DENSE,),
                               transposed=True)
                 for p in phases]
        # the GAN generator's last layer: its forward is conv_input_grad_c1_k4s2
        rows += [conv_workload(f"conv_transpose2d 4x4 s2 N{n} {ch}->1 {half[0]}x{half[1]} pad1",
                               conv_transpose(n, ch, 1, half, (4, 4), 2, 1, 0), p, (DENSE,),
                               transposed=True)
                 for p in phases]
        rows += [conv_workload(f"masked 7x7 A N{n} 1->{ch} {hw[0]}x{hw[1]} vs dense",
                               masked_conv(n, 1, ch, hw, 7, "A"), p, (MASKED,))
                 for p in ("fwd", "wgrad")]  # a first layer's input (the image) needs no grad
        rows += [conv_workload(f"masked 3x3 B N{n} {ch}->{ch} {hw[0]}x{hw[1]} vs dense",
                               masked_conv(n, ch, ch, hw, 3, "B"), p, (MASKED,)) for p in phases]
        for stack, shown in (("vertical", "2x3 vs 3x3"), ("horizontal", "1x2 vs 1x3")):
            rows += [conv_workload(f"gated {stack} {shown} N{n} {ch}->{2 * ch} "
                                   f"{hw[0]}x{hw[1]}",
                                   gated_stack(n, ch, 2 * ch, hw, 3, stack), p, (MASKED,))
                     for p in phases]
    dilations = (1, 2) if tiny else (1, 3, 17) if odd else (1, 8, 64, 512)
    causal_n = 2 if tiny else 3 if odd else 4
    for k in (2, 3):
        for d in dilations:
            rows += [conv_workload(f"causal conv1d k{k} d{d} N{causal_n} {ch}->{ch} L{length}",
                                   causal_conv(causal_n, ch, ch, length, k, d), p, (FASTER,))
                     for p in phases]
    if size == "full":
        rows += [conv_workload(f"causal conv1d k2 d8 N64 {ch}->{ch} L{length}",
                               causal_conv(64, ch, ch, length, 2, 8), p, (FASTER,))
                 for p in phases]
    bn_shapes = [(4, 3, 3, 2)] if tiny else [(5, 37, 9, 7)] if odd else [
        (64, 64, 16, 16)] if size == "quick" else [
        (64, 64, 16, 16), (256, 64, 16, 16), (256, 128, 32, 32)]
    for shape in bn_shapes:
        rows += [batch_norm_workload(shape, p, (FASTER, BANDWIDTH)) for p in ("fwd", "bwd")]
    power = [(5, 7)] if tiny else [(131, 333)] if odd else [(512, 4608)] if size == "quick" else [
        (128, 1152), (512, 4608), (1024, 9216)]
    rows += [power_iteration_workload(r, c, (FASTER_THAN_TORCH,)) for r, c in power]
    gated = [(2, 4, 3, 2)] if tiny else [(3, 38, 9, 7)] if odd else [
        (64, 64, 16, 16)] if size == "quick" else [
        (64, 64, 16, 16), (256, 64, 32, 32)]
    rows += [gated_workload(shape, p) for shape in gated for p in ("fwd", "bwd")]
    if tiny:
        rows.append(wavenet_workload(2, layers=3, residual=4, skip=5, classes=7))
    elif odd:
        rows.append(wavenet_workload(3, layers=5, residual=37, skip=41, classes=67))
    else:
        rows += [wavenet_workload(b) for b in ((1,) if size == "quick" else (1, 16))]
    return rows
