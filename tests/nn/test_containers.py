"""Sequential, ModuleList, ModuleDict."""
from collections import OrderedDict

import numpy as np
import pytest

import tinygen as tg
from tinygen import nn


def test_sequential_forward_index_len_iter():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3
    assert isinstance(seq[0], nn.Linear) and seq[-1] is seq[2]
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    x = tg.randn(4, 2)
    np.testing.assert_array_equal(seq(x).numpy(), seq[2](seq[1](seq[0](x))).numpy())
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    with pytest.raises(TypeError, match="integers or slices"):
        seq["0"]


def test_sequential_slice_shares_modules_and_keeps_names():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    head = seq[1:]
    assert isinstance(head, nn.Sequential) and len(head) == 2
    assert head[1] is seq[2]
    assert list(head.state_dict()) == ["2.weight", "2.bias"]  # names kept, like PyTorch
    assert seq[:2](tg.ones(1, 2)).shape == (1, 3)


def test_sequential_append_insert_delete_set():
    seq = nn.Sequential(nn.Linear(2, 2))
    seq.append(nn.ReLU()).append(nn.Linear(2, 1))
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1"]
    assert isinstance(seq[1], nn.Linear)
    seq[0] = nn.Tanh()
    assert isinstance(seq[0], nn.Tanh)
    with pytest.raises(TypeError, match="not a Module"):
        seq.append(lambda x: x)


def test_sequential_from_ordered_dict():
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU())]))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"]
    assert seq.fc is seq[0]


def test_module_list():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers.append(nn.ReLU())
    layers.extend([nn.Tanh()])
    layers += [nn.Sigmoid()]
    assert [type(m).__name__ for m in layers][3:] == ["ReLU", "Tanh", "Sigmoid"]
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    layers.insert(0, nn.Identity())
    assert isinstance(layers[0], nn.Identity) and len(layers) == 7
    del layers[0]
    assert list(layers._modules) == [str(i) for i in range(6)]
    assert list(nn.ModuleList().parameters()) == []

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])

    assert [n for n, _ in Model().named_parameters()] == [
        "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]


def test_module_dict():
    d = nn.ModuleDict({"enc": nn.Linear(2, 3), "dec": nn.Linear(3, 2)})
    assert list(d) == ["enc", "dec"] and len(d) == 2 and "enc" in d
    assert list(d.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    d["act"] = nn.ReLU()
    assert list(d.keys()) == ["enc", "dec", "act"]
    assert isinstance(d.pop("act"), nn.ReLU) and "act" not in d
    d.update([("extra", nn.Tanh())])
    assert [k for k, _ in d.items()] == ["enc", "dec", "extra"]
    del d["extra"]
    assert len(list(d.values())) == 2
    with pytest.raises(TypeError, match="not a Module"):
        d["x"] = 3
    d.clear()
    assert len(d) == 0


def test_containers_reject_bad_names():
    with pytest.raises(KeyError, match=r"\."):
        nn.ModuleDict({"a.b": nn.ReLU()})
