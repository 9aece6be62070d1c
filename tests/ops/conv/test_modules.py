"""Conv layers: shapes, PyTorch-default initialisation, forward = functional,
padding modes and output_size against PyTorch, masks, state_dict names."""
import math

import numpy as np
import pytest

import tinygen as tg
from tinygen.nn import conv as nn_conv
from tinygen.ops import conv as C


def _bound_check(param, bound, fills=True):
    values = param.numpy()
    assert np.abs(values).max() <= bound + 1e-7
    if fills:  # a uniform draw of many values comes close to the bound
        assert np.abs(values).max() > 0.8 * bound


@pytest.mark.parametrize("cls,args,fan_in", [
    (nn_conv.Conv2d, (6, 8, 3), 6 * 9),
    (nn_conv.Conv2d, (6, 8, (3, 5)), 6 * 15),
    (nn_conv.Conv1d, (4, 8, 5), 4 * 5),
    # transposed: weight (in, out/groups, k...), fan_in from dim 1 as in PyTorch
    (nn_conv.ConvTranspose2d, (8, 6, 4), 6 * 16),
    (nn_conv.ConvTranspose1d, (8, 6, 4), 6 * 4),
    (nn_conv.CausalConv1d, (4, 8, 2), 4 * 2),
    (nn_conv.MaskedConv2d, (3, 30, 7, "B"), 3 * 49),
])
def test_default_initialisation_is_pytorchs(cls, args, fan_in):
    tg.manual_seed(0)
    m = cls(*args)
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) == U(+-1/sqrt(fan_in))
    _bound_check(m.bias, bound, fills=False)
    if cls is nn_conv.MaskedConv2d:
        assert np.abs(m.weight.numpy()).max() <= bound
    else:
        _bound_check(m.weight, bound)


def test_grouped_fan_in():
    m = nn_conv.Conv2d(8, 4, 3, groups=4)
    assert m.weight.shape == (4, 2, 3, 3)
    _bound_check(m.weight, 1 / math.sqrt(2 * 9))
    t = nn_conv.ConvTranspose2d(8, 4, 3, groups=2)
    assert t.weight.shape == (8, 2, 3, 3)
    _bound_check(t.weight, 1 / math.sqrt(2 * 9))


def test_forward_matches_functional_and_names():
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((2, 4, 9, 9)).astype(np.float32))
    m = nn_conv.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
    np.testing.assert_array_equal(m(x).numpy(),
                                  C.conv2d(x, m.weight, m.bias, 2, 1, 1, 2).numpy())
    assert list(m.state_dict()) == ["weight", "bias"]
    assert nn_conv.Conv2d(4, 6, 3, bias=False).bias is None
    t = nn_conv.ConvTranspose2d(4, 3, 4, stride=2, padding=1)
    assert t(x).shape == (2, 3, 18, 18)
    assert t(x, output_size=(19, 19)).shape == (2, 3, 19, 19)
    with pytest.raises(ValueError, match="output_size"):
        t(x, output_size=(21, 21))
    assert nn_conv.Conv1d(4, 2, 3, padding="same")(tg.randn(1, 4, 7)).shape == (1, 2, 7)
    assert nn_conv.CausalConv1d(4, 2, 2, dilation=8)(tg.randn(1, 4, 7)).shape == (1, 2, 7)
    assert nn_conv.CausalConv1d(4, 2, 3, dilation=4).receptive_field == 9
    assert nn_conv.MaskedConv2d(4, 6, 5, "A")(x).shape == (2, 6, 9, 9)


def test_masked_conv_module_weights_and_gradients():
    m = nn_conv.MaskedConv2d(3, 6, 5, "A", groups_rgb=3, dtype=np.float64)
    mask = m.mask
    assert mask.shape == (6, 3, 5, 5)
    assert np.all(m.weight.numpy()[~mask] == 0)
    x = tg.randn(2, 3, 6, 6).double()
    m(x).sum().backward()
    assert np.all(m.weight.grad.numpy()[~mask] == 0)
    assert m.bias.grad.shape == (6,)
    with pytest.raises(ValueError, match="mask_type"):
        nn_conv.MaskedConv2d(3, 6, 5, "C")
    with pytest.raises(ValueError, match="groups_rgb"):
        nn_conv.MaskedConv2d(4, 6, 5, "A", groups_rgb=3)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_torch(mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 7))
    m = nn_conv.Conv2d(3, 4, 3, padding=(1, 2), padding_mode=mode, dtype=np.float64)
    ref = torch.nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode=mode, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(m.weight.numpy()))
        ref.bias.copy_(torch.tensor(m.bias.numpy()))
    np.testing.assert_allclose(m(tg.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    m1 = nn_conv.Conv1d(3, 2, 4, padding="same", padding_mode=mode, dtype=np.float64)
    r1 = torch.nn.Conv1d(3, 2, 4, padding="same", padding_mode=mode, dtype=torch.float64)
    with torch.no_grad():
        r1.weight.copy_(torch.tensor(m1.weight.numpy()))
        r1.bias.copy_(torch.tensor(m1.bias.numpy()))
    x1 = rng.standard_normal((2, 3, 9))
    np.testing.assert_allclose(m1(tg.tensor(x1)).numpy(), r1(torch.tensor(x1)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_constructor_errors():
    with pytest.raises(ValueError, match="in_channels=5 must be divisible by groups=2"):
        nn_conv.Conv2d(5, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn_conv.Conv2d(4, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode"):
        nn_conv.Conv2d(4, 4, 3, padding_mode="mirror")
    with pytest.raises(TypeError, match="kernel_size must be an int or a tuple of 2 ints"):
        nn_conv.Conv2d(4, 4, (3, 3, 3))
    with pytest.raises(ValueError, match="kernel width must be odd"):
        nn_conv.DownShiftedConv2d(4, 4, (2, 2))


def test_public_names():
    from tinygen import nn
    from tinygen.nn import functional as F

    from tinygen.ops import conv_pixelcnn

    for name in ("conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "causal_conv1d"):
        assert getattr(F, name) is getattr(C, name)
    for name in ("masked_conv2d", "pixelcnn_mask", "down_shifted_conv2d",
                 "down_right_shifted_conv2d", "down_shift", "down_shift_conv1x1"):
        assert getattr(F, name) is getattr(conv_pixelcnn, name)
    for name in ("Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "CausalConv1d",
                 "MaskedConv2d", "DownShiftedConv2d", "DownRightShiftedConv2d"):
        assert getattr(nn, name) is getattr(nn_conv, name)
    # nn holds generic layers; the gated PixelCNN layer is the model's
    assert not hasattr(nn, "GatedPixelCNNLayer") and not hasattr(nn_conv, "GatedPixelCNNLayer")
