"""The 'cuda' device end to end: creation, every op family, autograd, modules,
optimizers, checkpoints and the errors for mixed or missing devices.

Most tests run on any machine under ``tinygen.testing.fake_cuda`` (a numpy-backed
cupy that refuses host arrays as cupy does): they prove the *plumbing* (data and
gradients stay on the device, results equal the CPU's) but not cupy compatibility.
Tests marked ``cuda`` repeat the comparison and gradcheck on a real GPU.  Op
families with hand-written kernels (conv, batch_norm, pooling) run under the fake
through their registered 'cuda' modules, i.e. the CUDA emulator.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygen as tg
import tinygen.nn.functional as F
from tinygen import nn
from tinygen.backend import kernels as K
from tinygen.cli import main
from tinygen.models import get_experiment
from tinygen.ops import spectral_norm
from tinygen.testing import gradcheck, gradgradcheck
from tinygen.testing.fake_cuda import FakeCudaArray, fake_cuda

GPU = tg.cuda.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="no CUDA device (cupy missing or no GPU)")


@pytest.fixture
def fake():
    if GPU:  # the fake would hide the real device from the rest of the process
        pytest.skip("a real GPU is present; the tests marked cuda cover it")
    with fake_cuda() as cupy:
        yield cupy


def _skip_without_cuda_kernels(family):
    """Ops of kernel families need the family's 'cuda' module (tinygen.backend.cuda_kernels)."""
    if family is None:
        return
    try:
        K.kernels(family, tg.cuda.cupy.zeros(0))
    except RuntimeError as exc:  # "no cuda kernels are registered"
        pytest.skip(f"{family}: {exc}")


# --- the op table: (family with kernels or None, fn, input shapes; N: the batch) ------
def _batch_norm_train(x, w, b):
    mean = tg.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    var = tg.ones(x.shape[1], dtype=x.dtype, device=x.device)
    return F.batch_norm(x, mean, var, w, b, training=True)


def _batch_norm_eval(x, w, b):
    mean = tg.tensor(np.linspace(-0.5, 0.5, x.shape[1]), dtype=x.dtype, device=x.device)
    var = tg.tensor(np.linspace(0.5, 2.0, x.shape[1]), dtype=x.dtype, device=x.device)
    return F.batch_norm(x, mean, var, w, b, training=False)


N = "N"  # the batch dimension in OPS' shapes


def _spectral_normalize(w):
    """w / sigma with (u, v) from a power iteration on the device, over a fixed matrix:
    constants for w (as in SN-GAN), so that gradcheck sees the function it differentiates."""
    rows, cols = w.shape[0], w.numel() // w.shape[0]
    fixed = tg.tensor(np.random.default_rng(0).standard_normal((rows, cols)), dtype=w.dtype,
                      device=w.device)
    u, v = spectral_norm.power_iteration(fixed, tg.ones(rows, dtype=w.dtype, device=w.device),
                                         tg.ones(cols, dtype=w.dtype, device=w.device), 3)
    return spectral_norm.spectral_normalize(w, u, v)


def _classes(a, start):
    """CPU int64 class indices, one per row of ``a`` (they follow ``a`` to its device)."""
    return tg.tensor((start + np.arange(a.shape[0])) % a.shape[1])


OPS = {
    # elementwise (binary with broadcasting, scalars, unary, activations, where)
    "add_sub_mul_div": (None, lambda a, b: (a + b) * (a - 2.0) / (b * b + 1.0), [(N, 4), (4,)]),
    "unary": (None, lambda a: a.exp().log1p().sqrt() + a.tanh() * a.sigmoid() + a.abs()
              + a.clamp(-0.5, 0.5) ** 2, [(N, 4)]),
    "activations": (None, lambda a: F.leaky_relu(a, 0.1) + F.elu(a) + F.softplus(a) + a.relu(),
                    [(N, 4)]),
    "where_maximum": (None, lambda a, b: tg.where(a > b, a, b)
                      + tg.maximum(a, b) * tg.minimum(a, b),
                      [(N, 4), (N, 4)]),
    # reductions
    "reductions": (None, lambda a: a.sum() + a.mean(0).sum() + a.var(1).sum() + a.std()
                   + a.max(1).sum() + a.min() + a.logsumexp(1).sum() + a.norm(), [(N, 4)]),
    "softmax": (None, lambda a: a.softmax(1) * a.log_softmax(0), [(N, 4)]),
    # linear algebra
    "matmul": (None, lambda a, b: a @ b, [(N, 2, 4), (4, 5)]),
    "linear": (None, F.linear, [(N, 4), (5, 4), (5,)]),
    # shape and indexing
    "shape": (None, lambda a: a.reshape(2, -1).T.unsqueeze(0).squeeze(0).flatten()
              .expand(2, a.numel()).transpose(0, 1), [(N, 4)]),
    "concat_stack_split": (None, lambda a, b: tg.stack([a, b], 1).sum(1)
                           * tg.concatenate(tg.split(a, 2, 1)[::-1], 1), [(N, 4), (N, 4)]),
    "pad": (None, lambda a: tg.pad(a, (1, 2)).sum(1) + tg.pad(a, (1, 1), mode="reflect").sum(1),
            [(N, 4)]),
    "indexing": (None, lambda a: a[1:, ::2].sum() + a[tg.tensor([0, -1, 0])].sum(0)
                 + a[a > 0].sum() + a[0, 1] + tg.gather(a, 1, _classes(a, 3)[:, None]).sum(),
                 [(N, 4)]),
    # losses (integer targets are made on the CPU: they follow the input)
    "cross_entropy": (None, lambda a: F.cross_entropy(a, _classes(a, 3))
                      + F.nll_loss(a.log_softmax(1), _classes(a, 2)), [(N, 4)]),
    "regression_losses": (None, lambda a, b: F.mse_loss(a, b) + F.l1_loss(a, b)
                          + F.binary_cross_entropy_with_logits(a, b.sigmoid())
                          + F.binary_cross_entropy(a.sigmoid(), b.sigmoid()), [(N, 4), (N, 4)]),
    "spectral_normalize": (None, _spectral_normalize, [(N, 2, 2)]),
    # families with hand-written kernels
    "conv2d": ("conv", lambda x, w, b: F.conv2d(x, w, b, stride=(1, 2), padding=1, dilation=(2, 1)),
               [(N, 3, 6, 5), (4, 3, 3, 2), (4,)]),
    "conv_transpose2d": ("conv", lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1,
                                                                 output_padding=1),
                         [(N, 3, 4, 3), (3, 2, 3, 3)]),
    "causal_conv1d": ("conv", lambda x, w: F.causal_conv1d(x, w, dilation=2),
                      [(N, 3, 7), (4, 3, 2)]),
    "masked_conv2d": ("conv", lambda x, wa, wb: F.masked_conv2d(
        F.masked_conv2d(x, wa, mask_type="A", groups_rgb=3), wb, mask_type="B", groups_rgb=3),
        [(N, 3, 5, 4), (6, 3, 3, 3), (3, 6, 3, 3)]),
    "batch_norm_train": ("batch_norm", _batch_norm_train, [(N, 2, 3, 2), (2,), (2,)]),
    "batch_norm_eval": ("batch_norm", _batch_norm_eval, [(N, 2, 3, 2), (2,), (2,)]),
    "pooling": ("pooling", lambda x: F.max_pool2d(x, 3, stride=1, padding=1).sum(1)
                + F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False).sum(1),
                [(N, 3, 4, 4)]),
    "interpolate": ("pooling", lambda x: F.interpolate(x, scale_factor=2), [(N, 3, 3, 2)]),
    "gated_activation": ("gated_activation", lambda x: F.gated_activation(x, axis=1), [(N, 4, 3)]),
}


def _inputs(shapes, n, seed=0):
    """float64 arrays of ``shapes`` with batch size ``n`` where they say N."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(tuple(n if d == N else d for d in s)) for s in shapes]


def _run(fn, arrays, device):
    """Output and gradients (as numpy) of ``fn`` on ``device``, plus where they lived."""
    ts = [tg.tensor(a, requires_grad=True, device=device) for a in arrays]
    out = fn(*ts)
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(tg.tensor(upstream, dtype=out.dtype, device=device))
    devices = {out.device} | {t.grad.device for t in ts if t.grad is not None}
    grads = [t.grad.numpy() if t.grad is not None else None for t in ts]
    return out.numpy(), grads, devices


def _assert_same_as_cpu(name, n, rtol):
    family, fn, shapes = OPS[name]
    arrays = _inputs(shapes, n)
    out_cpu, grads_cpu, _ = _run(fn, arrays, "cpu")
    out, grads, devices = _run(fn, arrays, "cuda")
    assert devices == {"cuda"}, f"{name}: results or gradients left the device: {devices}"
    np.testing.assert_allclose(out, out_cpu, rtol=rtol, atol=rtol)
    for i, (g, g_cpu) in enumerate(zip(grads, grads_cpu)):
        assert (g is None) == (g_cpu is None), f"{name}: input {i}'s gradient on one device only"
        if g is not None:
            np.testing.assert_allclose(g, g_cpu, rtol=rtol, atol=rtol, err_msg=f"{name}: grad {i}")


# --- the fake device ----------------------------------------------------------------------
def test_fake_cupy_arrays_stay_device_arrays_and_refuse_host_arrays(fake):
    a = fake.arange(6.0).reshape(2, 3)
    for result in (a + 1, np.exp(a), a.sum(), a.argmax(), a[0, 1], a @ a.T,
                   fake.concatenate([a, a]), fake.where(a > 2, a, 0.0), a.astype(np.float32)):
        assert isinstance(result, FakeCudaArray), type(result)
    host = fake.asnumpy(a)
    assert type(host) is np.ndarray and host.tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(TypeError, match="numpy.ndarray.*mixed with device arrays"):
        a + np.ones(3)
    with pytest.raises(TypeError, match="cupy.concatenate"):
        fake.concatenate([a, np.ones((1, 3))])
    copy = fake.asarray(host)  # a transfer is a copy, not a view of host memory
    copy[0, 0] = 7.0
    assert host[0, 0] == 0.0
    assert tg.cuda.is_available() and tg.cuda.device_count() == 1
    assert "fake" in tg.cuda.get_device_name()


def test_fake_is_removed_on_exit():
    if GPU:
        pytest.skip("a real GPU is present")
    with fake_cuda():
        assert tg.cuda.is_available()
    assert not tg.cuda.is_available() and tg.cuda.device_count() == 0


CREATORS = {
    "tensor": lambda **kw: tg.tensor([[1.0, 2.0], [3.0, 4.0]], **kw),
    "as_tensor": lambda **kw: tg.as_tensor(np.arange(4.0), **kw),
    "zeros": lambda **kw: tg.zeros(2, 3, **kw),
    "ones": lambda **kw: tg.ones(2, 3, **kw),
    "empty": lambda **kw: tg.empty(2, 3, **kw).zero_(),
    "full": lambda **kw: tg.full((2, 3), 1.5, **kw),
    "arange": lambda **kw: tg.arange(0, 5, 2, **kw),
    "linspace": lambda **kw: tg.linspace(0, 1, 5, **kw),
    "eye": lambda **kw: tg.eye(3, **kw),
    "randn": lambda **kw: tg.randn(2, 3, generator=np.random.default_rng(5), **kw),
    "rand": lambda **kw: tg.rand(2, 3, generator=np.random.default_rng(5), **kw),
    "randint": lambda **kw: tg.randint(0, 9, (2, 3), generator=np.random.default_rng(5), **kw),
    "normal": lambda **kw: tg.normal(1.0, 2.0, (4,), generator=np.random.default_rng(5), **kw),
    "zeros_like": lambda **kw: tg.zeros_like(tg.ones(2, 2), **kw),
    "ones_like": lambda **kw: tg.ones_like(tg.ones(2, 2), **kw),
    "full_like": lambda **kw: tg.full_like(tg.ones(2, 2), 3.0, **kw),
    "randn_like": lambda **kw: tg.randn_like(tg.ones(2, 2), generator=np.random.default_rng(5),
                                             **kw),
    "rand_like": lambda **kw: tg.rand_like(tg.ones(2, 2), generator=np.random.default_rng(5), **kw),
}


@pytest.mark.parametrize("name", sorted(CREATORS))
def test_every_creation_function_takes_a_device(fake, name):
    on_cpu, on_cuda = CREATORS[name](), CREATORS[name](device="cuda")
    assert on_cpu.device == "cpu" and on_cuda.device == "cuda"
    assert isinstance(on_cuda.data, FakeCudaArray)
    assert on_cuda.dtype == on_cpu.dtype
    np.testing.assert_array_equal(on_cuda.numpy(), on_cpu.numpy())  # one seed, same numbers


def test_new_tensors_from_device_data_stay_on_the_device(fake):
    x = tg.randn(3, device="cuda")
    assert tg.tensor(x).device == "cuda" and tg.tensor(x.data).device == "cuda"
    assert tg.as_tensor(x.data).data is x.data  # shares memory, as for numpy arrays
    assert tg.tensor(x, device="cpu").device == "cpu"
    like = tg.zeros_like(x)
    assert like.device == "cuda" and tg.zeros_like(x, device="cpu").device == "cpu"


@pytest.mark.parametrize("name", list(OPS))
def test_every_op_family_stays_on_cuda_and_matches_the_cpu(fake, name):
    _skip_without_cuda_kernels(OPS[name][0])
    _assert_same_as_cpu(name, n=2, rtol=1e-10)


@pytest.mark.parametrize("name", ["linear", "conv2d"])
def test_gradcheck_runs_on_device_tensors(fake, name):
    family, fn, shapes = OPS[name]
    _skip_without_cuda_kernels(family)
    inputs = [tg.tensor(a, requires_grad=True, device="cuda") for a in _inputs(shapes, 1)]
    assert gradcheck(fn, inputs) and gradgradcheck(fn, inputs)


def test_conversions_round_trip_and_are_differentiable(fake):
    x = tg.tensor([1.0, -2.0, 3.0], dtype=tg.float64, requires_grad=True)
    y = x.cuda()
    assert y.device == "cuda" and y.to("cpu").device == "cpu" and y.cpu().device == "cpu"
    assert x.to("cuda:0").device == "cuda"
    assert x.to(device="cuda", dtype=tg.float32).dtype == np.float32
    assert y.cuda() is y and x.cpu() is x  # no copy when already there
    ((y * y).sum().cpu() * 1.0).backward()
    assert x.grad.device == "cpu"  # the gradient crossed back to the leaf's device
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0, 6.0])
    assert "device='cuda'" in repr(y) and "device" not in repr(x)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        x.to("gpu")


MIXES = {
    "add": (lambda c, g: c + g, r"Add: inputs are on different devices \(cpu and cuda\)"),
    "matmul": (lambda c, g: g @ c.reshape(3, 1), r"MatMul: .*different devices \(cuda and cpu\)"),
    "concatenate": (lambda c, g: tg.concatenate([c, g]), r"different devices \(cpu and cuda\)"),
    "where values": (lambda c, g: tg.where(c > 0, c, g), r"Where: .*\(cpu and cuda\)"),
    "where condition": (lambda c, g: tg.where(c > 0, g, g),
                        "where: input is on cuda but condition is on cpu"),
    "nll_loss weight": (lambda c, g: F.nll_loss(g.reshape(1, 3), tg.tensor([1]), weight=c),
                        r"nll_loss: input is on cuda but weight is on cpu"),
    "batch_norm buffers": (lambda c, g: F.batch_norm(g.reshape(1, 3, 1).expand(2, 3, 1), c, c,
                                                     training=True),
                           r"batch_norm: input is on cuda but running_mean is on cpu"),
}


@pytest.mark.parametrize("name", list(MIXES))
def test_mixing_devices_in_one_op_is_a_clear_error(fake, name):
    fn, message = MIXES[name]
    c = tg.tensor([1.0, 2.0, 3.0])
    g = tg.tensor([1.0, 2.0, 3.0], device="cuda")
    with pytest.raises(RuntimeError, match=message):
        fn(c, g)


def test_batch_norm_running_statistics_are_updated_on_the_device(fake):
    _skip_without_cuda_kernels("batch_norm")
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2))
    layers = {device: nn.BatchNorm2d(3, dtype=tg.float64, device=device)
              for device in ("cpu", "cuda")}
    for device, layer in layers.items():
        layer(tg.tensor(x, device=device))
        layer.eval()
        layer(tg.tensor(x, device=device))
    cpu, cuda = layers["cpu"].state_dict(), layers["cuda"].state_dict()
    assert {t.device for t in cuda.values()} == {"cuda"}
    assert cpu["num_batches_tracked"].item() == cuda["num_batches_tracked"].item() == 1
    for key in ("running_mean", "running_var"):
        np.testing.assert_allclose(cuda[key].numpy(), cpu[key].numpy(), rtol=1e-12)
        assert not np.allclose(cpu[key].numpy(), 0.0 if key == "running_mean" else 1.0)


def _small_model():
    tg.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.0), nn.Linear(6, 2))


def _train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def test_module_to_moves_parameters_buffers_and_gradients(fake):
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    params = list(model.parameters())
    F.mse_loss(model[0](tg.randn(2, 4)), tg.zeros(2, 3)).backward()
    assert model.cuda() is model
    assert list(model.parameters()) == params  # the same Parameter objects: optimizers keep them
    assert [name for name in model.state_dict()] == ["0.weight", "0.bias", "1.weight", "1.bias",
                                                     "1.running_mean", "1.running_var",
                                                     "1.num_batches_tracked"]
    assert {t.device for t in model.state_dict().values()} == {"cuda"}  # buffers too
    assert {p.grad.device for p in model[0].parameters()} == {"cuda"}
    model.to(device="cpu", dtype=tg.float64)
    assert {(t.device, t.dtype.kind) for t in model.state_dict().values()} == {
        ("cpu", "f"), ("cpu", "i")}


def test_optimizer_state_follows_its_parameters_to_the_device(fake):
    model = _small_model()
    optimizer = tg.optim.Adam(model.parameters(), lr=0.1)
    x, y = tg.randn(5, 4), tg.tensor([0, 1, 1, 0, 1])
    _train_step(model, optimizer, x, y)  # Adam's moments are created on the CPU
    model.cuda()
    _train_step(model, optimizer, x.cuda(), y)
    moments = [v for p in model.parameters() for v in optimizer.state[p].values()
               if hasattr(v, "shape")]
    assert len(moments) == 8 and {type(v) for v in moments} == {FakeCudaArray}
    model.cpu()
    _train_step(model, optimizer, x, y)
    moments = [v for p in model.parameters() for v in optimizer.state[p].values()
               if hasattr(v, "shape")]
    assert {type(v) for v in moments} == {np.ndarray}


def test_optimizer_refuses_a_gradient_on_another_device(fake):
    p = nn.Parameter(tg.zeros(3, device="cuda"))
    p.grad = tg.ones(3)
    with pytest.raises(RuntimeError, match=r"SGD.step: a parameter of shape \(3,\) is on cuda "
                                           r"but its gradient is on cpu"):
        tg.optim.SGD([p], lr=0.1).step()


def test_a_model_trained_on_cuda_equals_the_cpu_one_and_its_checkpoint_loads_anywhere(
        fake, tmp_path):
    x, y = tg.randn(8, 4, generator=np.random.default_rng(0)), tg.tensor([0, 1] * 4)
    cpu_model, cuda_model = _small_model(), _small_model().cuda()
    cpu_opt = tg.optim.Adam(cpu_model.parameters(), lr=0.05)
    cuda_opt = tg.optim.Adam(cuda_model.parameters(), lr=0.05)
    for _ in range(2):
        cpu_loss = _train_step(cpu_model, cpu_opt, x, y)
        cuda_loss = _train_step(cuda_model, cuda_opt, x.cuda(), y)
    assert cuda_loss.device == "cuda"
    np.testing.assert_allclose(cuda_loss.item(), cpu_loss.item(), rtol=1e-6)

    path = tmp_path / "ckpt.npz"
    tg.save(path, {"model": cuda_model.state_dict(), "optimizer": cuda_opt.state_dict(),
                   "raw": cuda_model[0].weight.data})
    on_cpu = tg.load(path)
    assert {t.device for t in on_cpu["model"].values()} == {"cpu"}
    assert type(on_cpu["raw"]) is np.ndarray
    restored, restored_opt = _small_model(), None
    restored.load_state_dict(on_cpu["model"])
    restored_opt = tg.optim.Adam(restored.parameters(), lr=0.05)
    restored_opt.load_state_dict(on_cpu["optimizer"])
    for p, q in zip(restored.parameters(), cpu_model.parameters()):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6, atol=1e-7)
    on_cuda = tg.load(path, device="cuda")
    assert {t.device for t in on_cuda["model"].values()} == {"cuda"}
    with pytest.raises(ValueError, match="unknown device"):
        tg.load(path, device="tpu")


def _two_steps(name, device):
    """Losses of two training steps of experiment ``name`` on ``device``, its state after them
    (as numpy) and the devices that state lives on."""
    tg.manual_seed(0)
    experiment = get_experiment(name)({"device": device, "limit": 8, "batch_size": 4})
    train, _ = experiment.load_data()
    batch = tuple(a[:4] for a in train)
    losses = [experiment.train_step(batch, np.random.default_rng(i)) for i in range(2)]
    state = {f"{m}.{k}": v for m, module in experiment.modules().items()
             for k, v in module.state_dict().items()}
    return losses, {k: v.numpy() for k, v in state.items()}, {v.device for v in state.values()}


# conv + batchnorm (vae), a gradient penalty through conv (wgan-gp), masked convs (pixelcnn)
@pytest.mark.parametrize("name", ["vae", "wgan-gp", "pixelcnn"])
def test_experiments_train_on_cuda_as_on_the_cpu(fake, name):
    _skip_without_cuda_kernels("conv")
    cpu_losses, cpu_state, _ = _two_steps(name, "cpu")
    losses, state, devices = _two_steps(name, "cuda")
    assert devices == {"cuda"}
    for step, (ours, theirs) in enumerate(zip(losses, cpu_losses)):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-6), (step, key)
    for key, value in state.items():
        # float32 sums in another order; Adam's first steps are +-lr for any gradient
        # far from zero, so only a gradient within rounding of zero can differ more.
        scale = max(float(np.abs(cpu_state[key]).max()), 1.0)
        np.testing.assert_allclose(value, cpu_state[key], rtol=0, atol=2e-3 * scale,
                                   err_msg=key)


# --- without any GPU ---------------------------------------------------------------------
@pytest.mark.skipif(GPU, reason="a GPU is present")
def test_without_a_gpu_cuda_is_unavailable_with_a_clear_error(tmp_path):
    assert tg.cuda.is_available() is False and tg.cuda.device_count() == 0
    for ask in (lambda: tg.zeros(2, device="cuda"), lambda: tg.ones(2).cuda(),
                lambda: nn.Linear(2, 2).cuda(), lambda: tg.cuda.synchronize(),
                lambda: tg.load(tmp_path / "missing.npz", device="cuda")):
        with pytest.raises(RuntimeError, match=r"the 'cuda' device is not available \(.+\); "
                                               r"install tinygen\[cuda\]"):
            ask()


@pytest.mark.skipif(GPU, reason="a GPU is present")
def test_cli_train_on_cuda_without_a_gpu_exits_with_the_reason(tmp_path, capsys):
    rc = main(["train", "vae", "--device", "cuda", "--epochs", "1", "--out", str(tmp_path / "run"),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc != 0
    assert "--device cuda: the 'cuda' device is not available" in err
    assert "--device cpu" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


# --- on a real GPU ---------------------------------------------------------------------------
@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("name", list(OPS))
def test_gpu_results_match_the_cpu(name):
    _skip_without_cuda_kernels(OPS[name][0])
    _assert_same_as_cpu(name, n=3, rtol=1e-10)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("name", list(OPS))
@settings(max_examples=3)
@given(n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_gpu_gradcheck_float64(name, n, seed):
    family, fn, shapes = OPS[name]
    _skip_without_cuda_kernels(family)
    inputs = [tg.tensor(a, requires_grad=True, device="cuda") for a in _inputs(shapes, n, seed)]
    assert gradcheck(fn, inputs, seed=seed)
