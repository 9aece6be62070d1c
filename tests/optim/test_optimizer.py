"""Optimizer base behaviour: groups, validation, zero_grad, closures, state_dict round trips."""
import numpy as np
import pytest

import tinygen as tg
from tinygen import nn, optim

OPTIMIZERS = [
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.05, amsgrad=True)),
    (optim.AdamW, dict(lr=0.05, weight_decay=0.1)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True)),
]


def _model(seed=0):
    gen = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    for layer in (model[0], model[2]):
        layer.reset_parameters(generator=gen)
    return model


def _batch(step):
    gen = np.random.default_rng(100 + step)
    return tg.tensor(gen.normal(size=(8, 3)).astype(np.float32)), \
        tg.tensor(gen.normal(size=(8, 1)).astype(np.float32))


def _train(model, opt, steps, start=0):
    for step in range(start, start + steps):
        x, y = _batch(step)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()


# --- construction and validation --------------------------------------------------------------
def test_rejects_empty_tensor_nonleaf_duplicates():
    p = nn.Parameter(tg.zeros(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2.0], lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="set"):
        optim.SGD({p}, lr=0.1)


@pytest.mark.parametrize("make, match", [
    (lambda ps: optim.SGD(ps, lr=-0.1), "lr"),
    (lambda ps: optim.SGD(ps, momentum=-0.5), "momentum"),
    (lambda ps: optim.SGD(ps, weight_decay=-1), "weight_decay"),
    (lambda ps: optim.SGD(ps, nesterov=True), "nesterov"),
    (lambda ps: optim.SGD(ps, momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda ps: optim.Adam(ps, betas=(0.9,)), "betas"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), "eps"),
    (lambda ps: optim.AdamW(ps, lr="0.1"), "lr"),
    (lambda ps: optim.RMSprop(ps, alpha=-0.1), "alpha"),
    (lambda ps: optim.RMSprop(ps, momentum=-1), "momentum"),
    (lambda ps: optim.SGD([{"params": ps, "lr": -1.0}], lr=0.1), "lr"),  # per-group options too
    (lambda ps: optim.SGD(ps, lr=float("nan")), "lr must be a finite number"),
    (lambda ps: optim.Adam(ps, lr=float("inf")), "lr must be a finite number"),
    (lambda ps: optim.Adam(ps, betas=(float("nan"), 0.999)), r"betas\[0\] must be a finite"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=float("nan")), "momentum must be a finite"),
    (lambda ps: optim.RMSprop(ps, alpha=1.5), r"alpha must be <= 1.0"),
])
def test_hyperparameter_validation_names_argument(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make([nn.Parameter(tg.zeros(2))])


def test_param_groups_take_defaults_and_add_param_group():
    a, b, c = (nn.Parameter(tg.zeros(2)) for _ in range(3))
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["momentum"] == 0.9
    opt.add_param_group({"params": [c], "momentum": 0.0})
    assert len(opt.param_groups) == 3 and opt.param_groups[2]["lr"] == 0.1
    with pytest.raises(ValueError, match="more than one"):
        opt.add_param_group({"params": [a]})
    assert "Parameter Group 1" in repr(opt) and "lr: 0.5" in repr(opt)


def test_skips_params_without_grad_and_zero_grad():
    a, b = nn.Parameter(tg.ones(2)), nn.Parameter(tg.ones(2))
    opt = optim.Adam([a, b], lr=0.1)
    (a * a).sum().backward()
    opt.step()
    assert not np.allclose(a.numpy(), 1.0) and np.all(b.numpy() == 1.0)
    assert b not in opt.state and a in opt.state
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and not a.grad.numpy().any()
    opt.zero_grad()
    assert a.grad is None


def test_step_with_closure_returns_loss():
    p = nn.Parameter(tg.tensor([2.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with tg.no_grad():  # the closure still records a graph (step enables grad for it)
        loss = opt.step(closure)
    assert loss.item() == 4.0
    np.testing.assert_allclose(p.numpy(), [1.0])


@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS)
def test_float32_params_stay_float32(cls, kwargs):
    model = _model()
    opt = cls(model.parameters(), **kwargs)
    _train(model, opt, 3)
    assert all(p.dtype == np.float32 for p in model.parameters())
    for state in opt.state.values():
        for value in state.values():
            if hasattr(value, "dtype"):
                assert value.dtype == np.float32


@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS)
def test_hyperparameters_as_numpy_scalars_do_not_upcast(cls, kwargs):
    model = _model()
    kwargs = {k: np.float64(v) if isinstance(v, float) else v for k, v in kwargs.items()}
    opt = cls(model.parameters(), **kwargs)
    _train(model, opt, 2)
    assert all(p.dtype == np.float32 for p in model.parameters())


# --- state_dict -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kwargs", OPTIMIZERS)
def test_state_dict_resume_is_bit_identical(cls, kwargs):
    reference = _model()
    ref_opt = cls(reference.parameters(), **kwargs)
    _train(reference, ref_opt, 10)

    first = _model()
    first_opt = cls(first.parameters(), **kwargs)
    _train(first, first_opt, 5)
    model_sd, opt_sd = first.state_dict(), first_opt.state_dict()
    _train(first, first_opt, 3, start=5)  # later training must not leak into the snapshots

    resumed = _model(seed=99)
    resumed_opt = cls(resumed.parameters(), **kwargs)
    resumed.load_state_dict(model_sd)
    resumed_opt.load_state_dict(opt_sd)
    _train(resumed, resumed_opt, 5, start=5)
    for p, q in zip(reference.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


def test_state_dict_layout_like_pytorch():
    model = _model()
    opt = optim.Adam([{"params": list(model[0].parameters())},
                      {"params": list(model[2].parameters()), "lr": 0.5}], lr=0.1)
    _train(model, opt, 2)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    entry = sd["state"][0]
    assert entry["step"] == 2 and isinstance(entry["step"], int)
    assert isinstance(entry["exp_avg"], np.ndarray) and entry["exp_avg"].shape == (4, 3)
    entry["exp_avg"][...] = 1e9  # a copy: the optimizer is unaffected
    assert np.all(opt.state[model[0].weight]["exp_avg"] < 1e9)


def test_load_state_dict_restores_group_options():
    p = nn.Parameter(tg.zeros(2))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = 0.01
    other = optim.SGD([nn.Parameter(tg.zeros(2))], lr=1.0, momentum=0.9)
    other.load_state_dict(sd)
    assert other.param_groups[0]["lr"] == 0.01


def test_load_state_dict_errors_are_clear_and_atomic():
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.1)
    _train(model, opt, 1)
    sd = opt.state_dict()

    two_groups = optim.Adam([{"params": list(model[0].parameters())},
                             {"params": list(model[2].parameters())}])
    with pytest.raises(ValueError, match="1 parameter group.*has 2"):
        two_groups.load_state_dict(sd)

    fewer = optim.Adam(list(model.parameters())[:3])
    with pytest.raises(ValueError, match="group 0 has 4 parameter.*has 3"):
        fewer.load_state_dict(sd)

    shapes = optim.Adam(nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 1)).parameters())
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(4, 3\).*\(5, 3\)"):
        shapes.load_state_dict(sd)
    assert shapes.state == {}  # nothing was loaded

    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


def test_optimizer_state_round_trip_through_npz(tmp_path):
    serialization = pytest.importorskip("tinygen.serialization")
    model = _model()
    opt = optim.Adam(model.parameters(), lr=0.05, amsgrad=True)
    _train(model, opt, 3)
    sd = opt.state_dict()
    # The .npz format keeps str dict keys only; the loader accepts them back.
    on_disk = {"state": {str(k): v for k, v in sd["state"].items()},
               "param_groups": sd["param_groups"]}
    path = tmp_path / "opt.npz"
    serialization.save(str(path), on_disk)
    restored = optim.Adam(model.parameters(), lr=1.0)
    restored.load_state_dict(serialization.load(str(path)))
    assert restored.param_groups[0]["lr"] == 0.05
    assert restored.param_groups[0]["betas"] == (0.9, 0.999)
    assert restored.param_groups[0]["amsgrad"] is True
    for p in model.parameters():
        assert restored.state[p]["step"] == 3
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            np.testing.assert_array_equal(restored.state[p][key], opt.state[p][key])
