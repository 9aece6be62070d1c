"""Module: registration, naming, traversal, modes, dtype conversion, state_dict, repr."""
import numpy as np
import pytest

import tinygen as tg
from tinygen import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.scale = nn.Parameter(np.ones(4, dtype=np.float32))
        self.register_buffer("running", tg.zeros(4))
        self.register_buffer("count", tg.tensor(np.array(0, dtype=np.int64)))
        self.register_buffer("scratch", tg.zeros(2), persistent=False)

    def forward(self, x):
        return self.act(self.fc(x)) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.layers = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))
        self.plain = tg.zeros(3)  # a plain Tensor attribute is not registered

    def forward(self, x):
        return self.layers(self.block(x))


# --- registration -------------------------------------------------------------------------
def test_setattr_registers_parameters_modules_and_buffers():
    net = Net()
    assert list(net._modules) == ["block", "layers"]
    assert list(net.block._parameters) == ["scale"]
    assert list(net.block._buffers) == ["running", "count", "scratch"]
    assert "plain" in net.__dict__ and "plain" not in net._buffers
    # Registered entries are reached through __getattr__, not the instance dict.
    assert "fc" not in net.block.__dict__
    assert net.block.fc is net.block._modules["fc"]
    assert net.block.running is net.block._buffers["running"]


def test_named_parameters_use_pytorch_paths():
    names = [n for n, _ in Net().named_parameters()]
    assert names == ["block.scale", "block.fc.weight", "block.fc.bias", "layers.0.weight",
                     "layers.0.bias", "layers.2.weight", "layers.2.bias"]


def test_named_parameters_prefix_and_no_recurse():
    net = Net()
    assert [n for n, _ in net.block.named_parameters(prefix="b")] == ["b.scale", "b.fc.weight", "b.fc.bias"]
    assert [n for n, _ in net.block.named_parameters(recurse=False)] == ["scale"]
    assert list(net.parameters(recurse=False)) == []


def test_shared_parameter_listed_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)
            self.b.weight = self.a.weight
            self.again = self.a  # the same module under a second name

    m = Tied()
    params = list(m.parameters())
    assert len(params) == 3  # a.weight (= b.weight), a.bias, b.bias
    assert m.num_parameters() == 9 + 3 + 3
    assert [n for n, _ in m.named_modules()] == ["", "a", "b"]
    # state_dict, like PyTorch's, is not deduplicated.
    assert list(m.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias",
                                    "again.weight", "again.bias"]


def test_buffers_and_children_and_modules():
    net = Net()
    assert [n for n, _ in net.named_buffers()] == ["block.running", "block.count", "block.scratch"]
    assert len(list(net.buffers())) == 3
    assert [n for n, _ in net.named_children()] == ["block", "layers"]
    assert list(net.children()) == [net.block, net.layers]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.fc", "block.act", "layers",
                                                   "layers.0", "layers.1", "layers.2"]
    assert len(list(net.modules())) == 8
    assert net.get_submodule("layers.2") is net.layers[2]
    with pytest.raises(AttributeError, match="nope"):
        net.get_submodule("block.nope")


def test_reassignment_moves_between_registries_and_none():
    m = nn.Module()
    m.x = nn.Parameter(tg.zeros(2))
    with pytest.raises(TypeError, match="parameter 'x'"):
        m.x = tg.zeros(2)
    m.x = None
    assert "x" in m._parameters and m.x is None
    assert list(m.parameters()) == []
    with pytest.raises(TypeError, match="parameter 'x'"):
        m.x = nn.Linear(1, 1)  # as in PyTorch: delete the parameter first
    del m.x
    m.x = nn.Linear(1, 1)
    assert "x" not in m._parameters and "x" in m._modules
    m.x = nn.Parameter(tg.zeros(1))  # a Parameter replaces a module entry
    assert "x" in m._parameters and "x" not in m._modules
    del m.x
    m.x = nn.Linear(1, 1)
    with pytest.raises(TypeError, match="child module 'x'"):
        m.x = 3
    del m.x
    assert not hasattr(m, "x")


def test_register_errors_name_the_problem():
    m = nn.Module()
    with pytest.raises(KeyError, match=r"\."):
        m.register_parameter("a.b", nn.Parameter(tg.zeros(1)))
    with pytest.raises(KeyError, match="empty"):
        m.register_buffer("", tg.zeros(1))
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("w", tg.zeros(1))
    with pytest.raises(TypeError, match="buffer 'b'"):
        m.register_buffer("b", np.zeros(1))
    m.attr = 1
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("attr", tg.zeros(1))
    with pytest.raises(TypeError, match="not a Module"):
        m.add_module("sub", object())


def test_assignment_before_init_is_explained():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Bad()


def test_missing_attribute_error():
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'nothing'"):
        Net().nothing


def test_forward_is_required():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    seen = []
    h1 = lin.register_forward_pre_hook(lambda m, args: seen.append("pre"))
    h2 = lin.register_forward_hook(lambda m, args, out: out * 0.0)
    out = lin(tg.ones(1, 2))
    assert seen == ["pre"] and np.all(out.numpy() == 0)
    h1.remove()
    h2.remove()
    assert np.any(lin(tg.ones(1, 2)).numpy() != 0) and seen == ["pre"]


# --- modes, grads -------------------------------------------------------------------------
def test_train_eval_propagate():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5), nn.ReLU()))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net[1].train(False)
    assert net.training and not net[1][0].training
    with pytest.raises(ValueError, match="bool"):
        net.train("yes")


def test_zero_grad_and_requires_grad():
    net = Net()
    net(tg.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    assert net.num_parameters(only_trainable=True) == 0


def test_apply_visits_children_first():
    net = Net()
    order = []
    assert net.apply(lambda m: order.append(type(m).__name__)) is net
    assert order == ["Linear", "ReLU", "Block", "Linear", "Tanh", "Linear", "Sequential", "Net"]


# --- dtype --------------------------------------------------------------------------------
def test_to_float64_keeps_parameter_identity():
    net = Net()
    params = list(net.parameters())
    net(tg.randn(2, 3)).sum().backward()
    out = net.to(tg.float64)
    assert out is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    assert net.block.running.dtype == np.float64
    assert net.block.count.dtype == np.int64  # integer buffers keep their dtype
    y = net(tg.randn(2, 3, dtype=tg.float64))
    assert y.dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in params)
    net.double()
    assert all(p.dtype == np.float64 for p in params)
    with pytest.raises(TypeError, match="floating"):
        net.to(tg.int32)


def test_optimizer_still_updates_after_to():
    from tinygen import optim

    lin = nn.Linear(2, 1)
    opt = optim.SGD(lin.parameters(), lr=0.1)
    lin.double()
    before = lin.weight.numpy().copy()
    lin(tg.ones(1, 2, dtype=tg.float64)).sum().backward()
    opt.step()
    assert lin.weight.dtype == np.float64
    assert not np.allclose(before, lin.weight.numpy())


# --- state_dict -----------------------------------------------------------------------------
def test_state_dict_keys_order_and_snapshot():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == ["block.scale", "block.running", "block.count", "block.fc.weight",
                        "block.fc.bias", "layers.0.weight", "layers.0.bias", "layers.2.weight",
                        "layers.2.bias"]
    assert all(isinstance(v, tg.Tensor) and not v.requires_grad for v in sd.values())
    before = sd["layers.0.weight"].numpy().copy()
    net.layers[0].weight.data += 1.0
    np.testing.assert_array_equal(sd["layers.0.weight"].numpy(), before)  # a snapshot
    live = net.state_dict(keep_vars=True)
    assert live["layers.0.weight"] is net.layers[0].weight


def test_state_dict_round_trip_into_fresh_model():
    a, b = Net(), Net()
    a.block.count.data[...] = 7
    missing_unexpected = b.load_state_dict(a.state_dict())
    assert missing_unexpected == ([], [])
    assert tuple(missing_unexpected) == ([], [])
    assert repr(missing_unexpected) == "<All keys matched successfully>"
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    x = tg.randn(4, 3)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())


def test_load_copies_into_existing_arrays_and_casts():
    net = Net()
    weight = net.layers[0].weight
    array = weight.data
    sd = {k: v.numpy().astype(np.float64) if v.dtype.kind == "f" else v.numpy()
          for k, v in Net().state_dict().items()}
    net.load_state_dict(sd)  # numpy float64 values into float32 parameters
    assert net.layers[0].weight is weight and weight.data is array
    assert weight.dtype == np.float32
    np.testing.assert_allclose(weight.numpy(), sd["layers.0.weight"], rtol=1e-6)


def test_load_strict_lists_all_missing_and_unexpected_keys():
    net = Net()
    sd = net.state_dict()
    del sd["layers.0.bias"]
    del sd["block.running"]
    sd["extra.weight"] = tg.zeros(1)
    sd["other"] = tg.zeros(1)
    before = net.layers[2].weight.numpy().copy()
    sd["layers.2.weight"] = tg.ones(2, 5)
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(sd)
    message = str(info.value)
    for key in ("layers.0.bias", "block.running", "extra.weight", "other"):
        assert f'"{key}"' in message
    assert "Missing key(s)" in message and "Unexpected key(s)" in message
    # Nothing was written: the load is all or nothing.
    np.testing.assert_array_equal(net.layers[2].weight.numpy(), before)


def test_load_non_strict_returns_keys():
    net = Net()
    sd = net.state_dict()
    del sd["layers.0.bias"]
    sd["extra"] = tg.zeros(1)
    result = net.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["layers.0.bias"]
    assert result.unexpected_keys == ["extra"]


def test_load_shape_mismatch_names_key_and_shapes():
    net = Net()
    sd = net.state_dict()
    sd["layers.0.weight"] = tg.zeros(4, 5)
    for strict in (True, False):
        with pytest.raises(RuntimeError, match=r"layers\.0\.weight.*\(4, 5\).*\(5, 4\)"):
            net.load_state_dict(sd, strict=strict)


def test_load_float_into_integer_buffer_is_an_error():
    net = Net()
    sd = net.state_dict()
    sd["block.count"] = np.array(3.5)
    with pytest.raises(RuntimeError, match="block.count"):
        net.load_state_dict(sd)
    sd["block.count"] = np.array(3, dtype=np.int32)  # integer into integer: fine
    net.load_state_dict(sd)
    assert net.block.count.item() == 3 and net.block.count.dtype == np.int64


def test_load_rejects_bad_values_and_non_mappings():
    net = Net()
    sd = net.state_dict()
    sd["layers.0.bias"] = "zeros"
    with pytest.raises(RuntimeError, match="layers.0.bias"):
        net.load_state_dict(sd)
    with pytest.raises(TypeError, match="mapping"):
        net.load_state_dict([1, 2])


def test_non_persistent_buffer_not_saved_and_unexpected():
    net = Net()
    assert "block.scratch" not in net.state_dict()
    sd = net.state_dict()
    sd["block.scratch"] = tg.zeros(2)
    with pytest.raises(RuntimeError, match="block.scratch"):
        net.load_state_dict(sd)


def test_none_parameter_skipped_in_state_dict():
    lin = nn.Linear(2, 3, bias=False)
    assert list(lin.state_dict()) == ["weight"]
    assert [n for n, _ in lin.named_parameters()] == ["weight"]


def test_state_dict_round_trip_through_npz(tmp_path):
    serialization = pytest.importorskip("tinygen.serialization")
    a, b = Net(), Net()
    path = tmp_path / "model.npz"
    serialization.save(str(path), a.state_dict())
    b.load_state_dict(serialization.load(str(path)))
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())


# --- repr ----------------------------------------------------------------------------------
def test_repr_nested_like_pytorch():
    net = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Dropout(0.25)))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): Sequential(\n"
        "    (0): ReLU()\n"
        "    (1): Dropout(p=0.25)\n"
        "  )\n"
        ")"
    )


def test_dir_lists_registered_names():
    names = dir(Net().block)
    assert {"fc", "scale", "running", "forward"} <= set(names)
