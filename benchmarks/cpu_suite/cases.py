"""The rows of the suite: ops (forward + backward), the core-engine workloads, and
(from ``models.py``) every model's training step.

A row builds, in one framework, a ``Bench``: ``step()`` (what is timed),
``outputs()`` (numpy arrays compared across frameworks after the check step) and
``state`` (what the tinygen side hands the torch side: its weights).  Op rows draw
their inputs and upstream gradient from fixed seeds, so both sides build the same
data themselves.
"""
from dataclasses import dataclass, field

import numpy as np


class Bench:
    def __init__(self, step, outputs, state=None):
        self.step, self.outputs, self.state = step, outputs, state or {}


@dataclass
class Case:
    name: str
    group: str                      # "model", "op", "core"
    build_tinygen: object           # (quick, state) -> Bench
    build_torch: object             # (quick, state) -> Bench
    rtol: float = 2e-3
    atol: float = 2e-4              # relative to each output's largest magnitude
    note: str = ""
    goal: float = 1.0               # the ratio issue 12 asks for
    extra: dict = field(default_factory=dict)

    def build(self, framework, quick, state):
        fn = self.build_tinygen if framework == "tinygen" else self.build_torch
        return fn(quick, state)


def _np(t):
    """A tensor (either framework) as a numpy array."""
    if hasattr(t, "detach"):
        t = t.detach()
    return np.asarray(t.numpy())


# --- op rows: y = f(inputs), then the vector-Jacobian product with a fixed upstream g ---------
def _op_case(name, inputs, tg_fn, th_fn, rtol=2e-3, atol=2e-4, goal=1.0, note=""):
    """``inputs``: name -> (shape, scale, differentiable); ``tg_fn(tg, F, **tensors)`` and
    ``th_fn(torch, F, **tensors)`` compute the same op."""

    def arrays():
        rng = np.random.default_rng(0)
        return {k: (rng.standard_normal(shape) * scale).astype(np.float32)
                for k, (shape, scale, _) in inputs.items()}

    diff = [k for k, (_, _, d) in inputs.items() if d]

    def upstream(shape):
        return np.random.default_rng(1).standard_normal(shape).astype(np.float32)

    def build_tinygen(quick, state):
        import tinygen as tg
        import tinygen.nn.functional as F

        ts = {k: tg.tensor(a, requires_grad=k in diff) for k, a in arrays().items()}
        box = {}

        def step():
            y = tg_fn(tg, F, **ts)
            if "g" not in box:
                box["g"] = tg.tensor(upstream(y.shape))
            box["y"] = y
            box["grads"] = tg.grad(y, [ts[k] for k in diff], grad_outputs=box["g"])

        def outputs():
            return {"y": _np(box["y"]), **{"d" + k: _np(g) for k, g in zip(diff, box["grads"])}}

        return Bench(step, outputs)

    def build_torch(quick, state):
        import torch
        import torch.nn.functional as F

        ts = {k: torch.tensor(a, requires_grad=k in diff) for k, a in arrays().items()}
        box = {}

        def step():
            y = th_fn(torch, F, **ts)
            if "g" not in box:
                box["g"] = torch.tensor(upstream(tuple(y.shape)))
            box["y"] = y
            box["grads"] = torch.autograd.grad(y, [ts[k] for k in diff], grad_outputs=box["g"])

        def outputs():
            return {"y": _np(box["y"]), **{"d" + k: _np(g) for k, g in zip(diff, box["grads"])}}

        return Bench(step, outputs)

    return Case(name, "op", build_tinygen, build_torch, rtol=rtol, atol=atol, goal=goal, note=note)


def _pixelcnn_mask(k, mask_type):
    """A single-channel PixelCNN mask (k, k): rows above the centre, and the centre
    row left of the centre (mask A) or up to it (mask B)."""
    m = np.zeros((k, k), dtype=np.float32)
    c = k // 2
    m[:c] = 1
    m[c, :c + (mask_type == "B")] = 1
    return m


_MASK_A7 = _pixelcnn_mask(7, "A")
IMG = (64, 64, 16, 16)          # activations: the models' middle layers' size


def _op_rows():
    rows = [
        _op_case("conv2d 3x3 N32 64->64 28x28 pad1",
                 {"x": ((32, 64, 28, 28), 1.0, True), "w": ((64, 64, 3, 3), 0.05, True)},
                 lambda tg, F, x, w: F.conv2d(x, w, padding=1),
                 lambda th, F, x, w: F.conv2d(x, w, padding=1)),
        _op_case("conv2d 3x3 N32 64->1 28x28 pad1 (an image head)",
                 {"x": ((32, 64, 28, 28), 1.0, True), "w": ((1, 64, 3, 3), 0.05, True)},
                 lambda tg, F, x, w: F.conv2d(x, w, padding=1),
                 lambda th, F, x, w: F.conv2d(x, w, padding=1)),
        _op_case("depthwise conv2d 3x3 N32 64ch 28x28 pad1",
                 {"x": ((32, 64, 28, 28), 1.0, True), "w": ((64, 1, 3, 3), 0.3, True)},
                 lambda tg, F, x, w: F.conv2d(x, w, padding=1, groups=64),
                 lambda th, F, x, w: F.conv2d(x, w, padding=1, groups=64)),
        _op_case("conv2d 4x4 s2 N64 32->64 14x14 (GAN D)",
                 {"x": ((64, 32, 14, 14), 1.0, True), "w": ((64, 32, 4, 4), 0.05, True)},
                 lambda tg, F, x, w: F.conv2d(x, w, stride=2, padding=1),
                 lambda th, F, x, w: F.conv2d(x, w, stride=2, padding=1)),
        _op_case("conv_transpose2d 4x4 s2 N64 64->32 7x7 (GAN G)",
                 {"x": ((64, 64, 7, 7), 1.0, True), "w": ((64, 32, 4, 4), 0.05, True)},
                 lambda tg, F, x, w: F.conv_transpose2d(x, w, stride=2, padding=1),
                 lambda th, F, x, w: F.conv_transpose2d(x, w, stride=2, padding=1)),
        _op_case("masked conv 7x7 A N32 1->64 28x28 (24 taps)",
                 {"x": ((32, 1, 28, 28), 1.0, True), "w": ((64, 1, 7, 7), 0.1, True)},
                 lambda tg, F, x, w: F.masked_conv2d(x, w, mask_type="A"),
                 lambda th, F, x, w: F.conv2d(x, w * th.from_numpy(_MASK_A7), padding=3)),
        _op_case("conv2d 7x7 dense N32 1->64 28x28",
                 {"x": ((32, 1, 28, 28), 1.0, True), "w": ((64, 1, 7, 7), 0.1, True)},
                 lambda tg, F, x, w: F.conv2d(x, w, padding=3),
                 lambda th, F, x, w: F.conv2d(x, w, padding=3)),
        _op_case("causal conv1d k2 d8 N8 32->64 L1024 (WaveNet)",
                 {"x": ((8, 32, 1024), 1.0, True), "w": ((64, 32, 2), 0.1, True)},
                 lambda tg, F, x, w: F.causal_conv1d(x, w, dilation=8),
                 lambda th, F, x, w: F.conv1d(F.pad(x, [8, 0]), w, dilation=8)),
        _op_case("conv1d 1x1 N8 32->64 L1024",
                 {"x": ((8, 32, 1024), 1.0, True), "w": ((64, 32, 1), 0.1, True)},
                 lambda tg, F, x, w: F.conv1d(x, w),
                 lambda th, F, x, w: F.conv1d(x, w)),
        _op_case("batch_norm train (64,64,16,16)",
                 {"x": (IMG, 2.0, True), "w": ((64,), 1.0, True), "b": ((64,), 1.0, True)},
                 lambda tg, F, x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                 lambda th, F, x, w, b: F.batch_norm(x, None, None, w, b, training=True)),
        _op_case("max_pool2d 2x2 (64,64,16,16)", {"x": (IMG, 1.0, True)},
                 lambda tg, F, x: F.max_pool2d(x, 2), lambda th, F, x: F.max_pool2d(x, 2)),
        _op_case("avg_pool2d 2x2 (64,64,16,16)", {"x": (IMG, 1.0, True)},
                 lambda tg, F, x: F.avg_pool2d(x, 2), lambda th, F, x: F.avg_pool2d(x, 2)),
        _op_case("gated_activation (64,64,16,16)", {"x": (IMG, 1.0, True)},
                 lambda tg, F, x: F.gated_activation(x),
                 lambda th, F, x: th.tanh(x[:, :32]) * th.sigmoid(x[:, 32:])),
    ]
    for act, tg_act, th_act in [
        ("relu", lambda tg, F, x: F.relu(x), lambda th, F, x: F.relu(x)),
        ("leaky_relu 0.2", lambda tg, F, x: F.leaky_relu(x, 0.2),
         lambda th, F, x: F.leaky_relu(x, 0.2)),
        ("tanh", lambda tg, F, x: F.tanh(x), lambda th, F, x: th.tanh(x)),
        ("sigmoid", lambda tg, F, x: F.sigmoid(x), lambda th, F, x: th.sigmoid(x)),
        ("softplus", lambda tg, F, x: F.softplus(x), lambda th, F, x: F.softplus(x)),
    ]:
        rows.append(_op_case(f"{act} (64,64,16,16)", {"x": (IMG, 1.0, True)}, tg_act, th_act))
    return rows


# --- core engine: an MLP's forward+backward, and a 100-op elementwise chain ---------------------
def chain(lib, x, n_ops=100):
    """n_ops elementwise ops cycling through mul, add, tanh, sigmoid; summed."""
    y = x
    for _ in range(n_ops // 4):
        y = y * 0.9
        y = y + 0.1
        y = lib.tanh(y)
        y = lib.sigmoid(y)
    return y.sum()


def _chain_case():
    def x0():
        return np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)

    def build(lib_name):
        def build_fn(quick, state):
            if lib_name == "tinygen":
                import tinygen as lib
            else:
                import torch as lib
            x = lib.tensor(x0(), requires_grad=True)
            box = {}

            def step():
                x.grad = None
                loss = chain(lib, x)
                loss.backward()
                box["loss"] = loss

            return Bench(step, lambda: {"loss": _np(box["loss"]), "dx": _np(x.grad)})

        return build_fn

    return Case("100-op elementwise chain fwd+bwd (256,256)", "core", build("tinygen"),
                build("torch"), goal=1.25)


def _mlp_arrays():
    rng = np.random.default_rng(0)
    shapes = [(784, 256), (256,), (256, 256), (256,), (256, 10), (10,)]
    params = [(rng.standard_normal(s) * (0.05 if len(s) == 2 else 0.0)).astype(np.float32)
              for s in shapes]
    return params, rng.standard_normal((128, 784)).astype(np.float32), rng.integers(0, 10, 128)


def _mlp_case():
    def build(lib_name):
        def build_fn(quick, state):
            arrays, xb, yb = _mlp_arrays()
            if lib_name == "tinygen":
                import tinygen as lib

                ce = lib.cross_entropy
            else:
                import torch as lib

                ce = lib.nn.functional.cross_entropy
            params = [lib.tensor(a, requires_grad=True) for a in arrays]
            x, y = lib.tensor(xb), lib.tensor(yb)
            w1, b1, w2, b2, w3, b3 = params
            box = {}

            def step():
                for p in params:
                    p.grad = None
                h = (x @ w1 + b1).relu()
                h = (h @ w2 + b2).relu()
                loss = ce(h @ w3 + b3, y)
                loss.backward()
                box["loss"] = loss

            def outputs():
                return {"loss": _np(box["loss"]), **{f"d{i}": _np(p.grad)
                                                      for i, p in enumerate(params)}}

            return Bench(step, outputs)

        return build_fn

    return Case("MLP 784-256-256-10 fwd+bwd, batch 128", "core", build("tinygen"),
                build("torch"))


# --- the layer grid (``--grid``): layer shapes the models do not have, fwd+bwd -------------
# Where a path rule calibrated on the models' layers may send a layer the slow way (a
# narrowing image head and a depthwise conv ran 3-8x slower than torch until session
# 16).  Not issue 12's rows: printed by ``--grid``, never written into its table.
def _grid_rows():
    rows = []
    for name, x, w, kwargs, transposed in [
        ("3x3 64->1 (an image head)", (32, 64, 28, 28), (1, 64, 3, 3), dict(padding=1), False),
        ("5x5 64->1", (32, 64, 28, 28), (1, 64, 5, 5), dict(padding=2), False),
        ("3x3 64->8", (32, 64, 28, 28), (8, 64, 3, 3), dict(padding=1), False),
        ("3x3 8->4", (32, 8, 28, 28), (4, 8, 3, 3), dict(padding=1), False),
        ("3x3 1->64 (a first layer)", (32, 1, 28, 28), (64, 1, 3, 3), dict(padding=1), False),
        ("3x3 16->64", (32, 16, 28, 28), (64, 16, 3, 3), dict(padding=1), False),
        ("depthwise 3x3 64ch", (32, 64, 28, 28), (64, 1, 3, 3), dict(padding=1, groups=64),
         False),
        ("depthwise 5x5 64ch", (32, 64, 28, 28), (64, 1, 5, 5), dict(padding=2, groups=64),
         False),
        ("depthwise 3x3 s2 64ch", (32, 64, 28, 28), (64, 1, 3, 3),
         dict(padding=1, stride=2, groups=64), False),
        ("grouped 3x3 g4 64->64", (32, 64, 28, 28), (64, 16, 3, 3), dict(padding=1, groups=4),
         False),
        ("dilated 3x3 d2 32->32", (32, 32, 28, 28), (32, 32, 3, 3), dict(padding=2, dilation=2),
         False),
        ("5x5 32->32", (32, 32, 28, 28), (32, 32, 5, 5), dict(padding=2), False),
        ("3x3 s2 32->64", (32, 32, 28, 28), (64, 32, 3, 3), dict(padding=1, stride=2), False),
        ("conv1d k3 64->64 L1024", (8, 64, 1024), (64, 64, 3), dict(padding=1), False),
        ("conv1d k3 64->1 L1024", (8, 64, 1024), (1, 64, 3), dict(padding=1), False),
        ("conv1d k5 s2 32->32 L1024", (8, 32, 1024), (32, 32, 5), dict(padding=2, stride=2),
         False),
        ("transposed 3x3 s1 64->1", (32, 64, 28, 28), (64, 1, 3, 3), dict(padding=1), True),
        ("transposed 3x3 s1 1->64", (32, 1, 28, 28), (1, 64, 3, 3), dict(padding=1), True),
        ("transposed 4x4 s2 64->1 14->28", (64, 64, 14, 14), (64, 1, 4, 4),
         dict(padding=1, stride=2), True),
    ]:
        # (the same name in both frameworks' functional modules)
        op = "conv_transpose2d" if transposed else "conv1d" if len(x) == 3 else "conv2d"
        fn = lambda lib, F, x, w, _op=op, _k=kwargs: getattr(F, _op)(x, w, **_k)  # noqa: E731
        case = _op_case(f"grid: {name}", {"x": (x, 1.0, True), "w": (w, 0.1, True)}, fn, fn)
        case.group = "grid"
        rows.append(case)
    # pools with overlapping windows (a blur, a ResNet stem's 3x3 stride-2 max pool)
    for name, op, kwargs in [
        ("avg_pool2d 3x3 s1 pad1", "avg_pool2d", dict(kernel_size=3, stride=1, padding=1)),
        ("avg_pool2d 3x3 s2 pad1", "avg_pool2d", dict(kernel_size=3, stride=2, padding=1)),
        ("max_pool2d 3x3 s2 pad1", "max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ]:
        fn = lambda lib, F, x, _op=op, _k=kwargs: getattr(F, _op)(x, **_k)  # noqa: E731
        case = _op_case(f"grid: {name} (32,64,28,28)", {"x": ((32, 64, 28, 28), 1.0, True)},
                        fn, fn)
        case.group = "grid"
        rows.append(case)
    return rows


def _all_cases():
    from .models import model_cases

    cases = model_cases(Case, Bench) + _op_rows() + [_chain_case(), _mlp_case()] + _grid_rows()
    return {c.name: c for c in cases}


CASES = _all_cases()
