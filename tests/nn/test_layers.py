"""Linear, Identity, Flatten, activations, Dropout, loss modules and functional.linear."""
import math

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn
from tinygen.nn import functional as F


# --- Linear -------------------------------------------------------------------------------
def test_linear_shapes_dtype_and_forward():
    lin = nn.Linear(3, 5)
    assert lin.weight.shape == (5, 3) and lin.bias.shape == (5,)
    assert lin.weight.dtype == np.float32
    x = tg.randn(7, 3)
    expected = x.numpy() @ lin.weight.numpy().T + lin.bias.numpy()
    np.testing.assert_allclose(lin(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert lin(tg.randn(2, 4, 3)).shape == (2, 4, 5)  # leading batch dimensions
    assert nn.Linear(3, 5, dtype=tg.float64).weight.dtype == np.float64


def test_linear_default_init_bounds():
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w = lin.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert np.abs(lin.bias.numpy()).max() <= bound


def test_linear_init_bounds_match_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.Linear(50, 20)
    lin = nn.Linear(50, 20)
    for ours, theirs in ((lin.weight, ref.weight), (lin.bias, ref.bias)):
        t_bound = theirs.detach().abs().max().item()
        ours_bound = np.abs(ours.numpy()).max()
        # Both are uniform on the same interval: both maxima lie just below 1/sqrt(50).
        assert ours_bound <= 1 / math.sqrt(50) and t_bound <= 1 / math.sqrt(50)
        assert ours_bound > 0.8 / math.sqrt(50) and t_bound > 0.8 / math.sqrt(50)


def test_linear_matches_torch_with_same_weights():
    torch = pytest.importorskip("torch")
    lin = nn.Linear(4, 3, dtype=tg.float64)
    ref = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(lin.weight.numpy()))
        ref.bias.copy_(torch.from_numpy(lin.bias.numpy()))
    x = np.random.default_rng(0).normal(size=(5, 4))
    xt = torch.tensor(x, requires_grad=True)
    xg = tg.tensor(x, requires_grad=True)
    ref(xt).pow(2).sum().backward()
    (lin(xg) ** 2).sum().backward()
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(lin.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(lin.bias.grad.numpy(), ref.bias.grad.numpy(), rtol=1e-12)


def test_linear_without_bias_and_reset_reproducible():
    lin = nn.Linear(3, 2, bias=False)
    assert lin.bias is None and len(list(lin.parameters())) == 1
    assert repr(lin) == "Linear(in_features=3, out_features=2, bias=False)"
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    a.reset_parameters(generator=np.random.default_rng(1))
    b.reset_parameters(generator=np.random.default_rng(1))
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())


@pytest.mark.parametrize("args, match", [
    ((0, 3), "in_features"), ((3, -1), "out_features"), ((2.5, 3), "in_features"),
    ((True, 3), "in_features"),
])
def test_linear_validates_sizes(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        nn.Linear(*args)


def test_linear_rejects_integer_dtype():
    with pytest.raises(TypeError, match="dtype"):
        nn.Linear(2, 2, dtype=tg.int32)


def test_functional_linear_shape_errors_name_shapes():
    w = tg.zeros(3, 4)
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(3, 4\)"):
        F.linear(tg.zeros(2, 5), w)
    with pytest.raises(ValueError, match=r"bias shape \(4,\)"):
        F.linear(tg.zeros(2, 4), w, tg.zeros(4))
    with pytest.raises(ValueError, match="2-D"):
        F.linear(tg.zeros(2, 4), tg.zeros(4))
    assert F.linear(tg.ones(2, 4), w).shape == (2, 3)
    assert F.linear(tg.ones(4), w, tg.ones(3)).shape == (3,)


def test_identity_and_flatten():
    x = tg.randn(2, 3, 4, 5)
    assert nn.Identity(7, foo=1)(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(2)(x).shape == (2, 3, 20)
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


# --- activations ----------------------------------------------------------------------------
ACTIVATIONS = [
    (lambda: nn.ReLU(), "relu", {}),
    (lambda: nn.LeakyReLU(0.2), "leaky_relu", {"negative_slope": 0.2}),
    (lambda: nn.ELU(0.5), "elu", {"alpha": 0.5}),
    (lambda: nn.Tanh(), "tanh", {}),
    (lambda: nn.Sigmoid(), "sigmoid", {}),
    (lambda: nn.Softplus(beta=2.0, threshold=5.0), "softplus", {"beta": 2.0, "threshold": 5.0}),
    (lambda: nn.Softmax(dim=1), "softmax", {"dim": 1}),
    (lambda: nn.LogSoftmax(dim=0), "log_softmax", {"dim": 0}),
]


@pytest.mark.parametrize("make, name, kwargs", ACTIVATIONS)
def test_activation_modules_match_torch(make, name, kwargs):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(4, 5)) * 3
    ours = make()(tg.tensor(x, dtype=tg.float64)).numpy()
    theirs = getattr(torch.nn.functional, name)(torch.tensor(x), **kwargs).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_activation_reprs_and_validation():
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(nn.Softmax(1)) == "Softmax(dim=1)"
    assert repr(nn.ReLU()) == "ReLU()"
    with pytest.raises(ValueError, match="beta"):
        nn.Softplus(beta=0)
    with pytest.raises(TypeError, match="negative_slope"):
        nn.LeakyReLU("0.1")
    with pytest.raises(TypeError, match="dim"):
        nn.Softmax(dim=1.0)


# --- dropout --------------------------------------------------------------------------------
def test_dropout_honours_training_flag():
    drop = nn.Dropout(0.5, generator=np.random.default_rng(0))
    x = tg.ones(1000)
    y = drop(x).numpy()
    assert set(np.unique(y)) <= {0.0, 2.0}
    assert 0.4 < (y == 0).mean() < 0.6
    drop.eval()
    assert drop(x) is x
    seq = nn.Sequential(nn.Dropout(0.9))
    seq.eval()
    assert seq(x) is x


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_validates_p(p):
    with pytest.raises(ValueError, match="p must be a probability"):
        nn.Dropout(p)


def test_dropout_extremes():
    x = tg.ones(10)
    assert not nn.Dropout(1.0)(x).numpy().any()
    assert nn.Dropout(0.0)(x) is x


# --- losses ---------------------------------------------------------------------------------
def _loss_cases():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, size=6)
    probs = 1 / (1 + np.exp(-rng.normal(size=(6, 3))))
    binary = (rng.random((6, 3)) > 0.5).astype(np.float64)
    weight = np.array([1.0, 2.0, 0.5, 1.5])
    return [
        (nn.CrossEntropyLoss(), "CrossEntropyLoss", {}, logits, labels),
        (nn.CrossEntropyLoss(weight=tg.tensor(weight, dtype=tg.float64), label_smoothing=0.0,
                             reduction="sum"),
         "CrossEntropyLoss", {"weight": weight, "reduction": "sum"}, logits, labels),
        (nn.CrossEntropyLoss(label_smoothing=0.1), "CrossEntropyLoss", {"label_smoothing": 0.1},
         logits, labels),
        (nn.NLLLoss(ignore_index=2), "NLLLoss", {"ignore_index": 2}, logits, labels),
        (nn.BCELoss(reduction="none"), "BCELoss", {"reduction": "none"}, probs, binary),
        (nn.BCEWithLogitsLoss(pos_weight=tg.tensor([1.0, 2.0, 3.0], dtype=tg.float64)),
         "BCEWithLogitsLoss", {"pos_weight": np.array([1.0, 2.0, 3.0])}, logits[:, :3], binary),
        (nn.MSELoss(), "MSELoss", {}, probs, binary),
        (nn.L1Loss(reduction="sum"), "L1Loss", {"reduction": "sum"}, probs, binary),
    ]


@pytest.mark.parametrize("index", range(8))
def test_loss_modules_match_torch(index):
    torch = pytest.importorskip("torch")
    module, name, kwargs, x, target = _loss_cases()[index]
    t_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    ref = getattr(torch.nn, name)(**t_kwargs)
    tg_target = tg.tensor(target) if target.dtype.kind == "f" else tg.tensor(target.astype(np.int64))
    ours = module(tg.tensor(x, dtype=tg.float64), tg_target).numpy()
    theirs = ref(torch.tensor(x), torch.tensor(target)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_loss_weight_is_a_buffer_and_validation():
    loss = nn.CrossEntropyLoss(weight=[1.0, 2.0])
    assert list(loss.state_dict()) == ["weight"]
    loss.double()
    assert loss.weight.dtype == np.float64
    assert list(nn.MSELoss().state_dict()) == []
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=2.0)


def test_functional_reexports():
    x = tg.tensor([[-1.0, 2.0]])
    np.testing.assert_allclose(F.softmax(x, dim=1).numpy().sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(F.log_softmax(x, dim=-1).numpy(),
                               np.log(F.softmax(x, dim=-1).numpy()), rtol=1e-6)
    assert F.pad(x, (1, 1)).shape == (1, 4)
    for name in ("relu", "leaky_relu", "elu", "softplus", "tanh", "sigmoid", "dropout",
                 "cross_entropy", "nll_loss", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits", "mse_loss", "l1_loss", "linear"):
        assert callable(getattr(F, name))


@pytest.mark.parametrize("momentum", [-0.1, 1.5, float("nan")])
def test_batch_norm_refuses_a_momentum_outside_zero_one(momentum):
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        nn.BatchNorm2d(3, momentum=momentum)
    for fine in (0.0, 1.0, None):
        nn.BatchNorm1d(3, momentum=fine)
    x = tg.randn(4, 3)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\]"):
        F.batch_norm(x, tg.zeros(3), tg.ones(3), training=True, momentum=momentum)


@pytest.mark.parametrize("make, match", [
    (lambda: nn.MaxPool2d(-1), "MaxPool2d: kernel_size must be positive"),
    (lambda: nn.MaxPool2d(2, stride=0), "MaxPool2d: stride must be positive"),
    (lambda: nn.MaxPool2d(2, padding=2), "MaxPool2d: padding should be at most half"),
    (lambda: nn.MaxPool2d(2, dilation=0), "MaxPool2d: dilation must be positive"),
    (lambda: nn.AvgPool2d((2, 0)), "AvgPool2d: kernel_size must be positive"),
    (lambda: nn.AvgPool2d(2, padding=-1), "AvgPool2d: padding must be non-negative"),
    (lambda: nn.AvgPool2d(2.5), "AvgPool2d: kernel_size must be an int"),
])
def test_pooling_modules_check_their_arguments_when_built(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
