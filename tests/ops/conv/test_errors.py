"""Invalid arguments raise errors that name the argument and the shapes."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.ops import conv as C
from tinygen.ops import conv_pixelcnn as P


def t(*shape, dtype=np.float32):
    return tg.tensor(np.ones(shape, dtype=dtype), dtype=dtype)


X4, W4 = t(2, 4, 5, 5), t(6, 4, 3, 3)
SHAPES = r"input shape \(2, 4, 5, 5\), weight shape \(6, 4, 3, 3\)"


@pytest.mark.parametrize("kwargs,match", [
    (dict(padding=-1), r"padding must be non-negative, got padding=-1"),
    (dict(padding=(1, -2)), r"padding must be non-negative"),
    (dict(padding=((0, 1), (-1, 0))), r"padding must be non-negative"),
    (dict(padding="full"), r"padding must be an int, a tuple, 'same' or 'valid'"),
    (dict(padding="same", stride=2), r"padding='same' is not supported for strided"),
    (dict(stride=0), r"stride must be positive, got stride=0"),
    (dict(dilation=(1, 0)), r"dilation must be positive"),
    (dict(groups=0), r"groups must be a positive int"),
    (dict(groups=4), r"out_channels=6 \(weight.shape\[0\]\) must be divisible by groups=4"),
])
def test_conv2d_argument_errors_name_argument_and_shapes(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        C.conv2d(X4, W4, **kwargs)
    assert "conv2d" in str(info.value)
    assert ("input shape (2, 4, 5, 5)" in str(info.value)
            and "weight shape (6, 4, 3, 3)" in str(info.value))


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel size \(3, 3\).*larger than the padded input "
                                         r"size \(2, 3\)") as info:
        C.conv2d(t(1, 4, 2, 1), W4, padding=(0, 1))
    assert "input shape (1, 4, 2, 1)" in str(info.value)
    with pytest.raises(ValueError, match=r"dilated extent \(5, 5\)"):
        C.conv2d(t(1, 4, 4, 4), W4, dilation=2)
    with pytest.raises(ValueError, match=r"kernel size \(3,\).*padded input size \(2,\)"):
        C.conv1d(t(1, 2, 2), t(3, 2, 3))


def test_channels_not_divisible_by_groups():
    with pytest.raises(ValueError, match=r"in_channels=5 \(input.shape\[1\]\) must be divisible "
                                         r"by groups=2.*input shape \(1, 5, 4, 4\)"):
        C.conv2d(t(1, 5, 4, 4), t(4, 2, 1, 1), groups=2)
    with pytest.raises(ValueError, match=r"in_channels = weight.shape\[1\] \* groups = 2 \* 2 = 4"):
        C.conv2d(t(1, 6, 4, 4), t(4, 2, 1, 1), groups=2)
    with pytest.raises(ValueError, match=r"in_channels=3 \(weight.shape\[0\]\) must be divisible "
                                         r"by groups=2"):
        C.conv_transpose2d(t(1, 3, 4, 4), t(3, 2, 1, 1), groups=2)


def test_wrong_ranks():
    with pytest.raises(ValueError, match=r"conv2d: weight must be 4-D \(out_channels, "
                                         r"in_channels/groups, kH, kW\), got 3-D.*weight shape "
                                         r"\(6, 4, 3\)"):
        C.conv2d(X4, t(6, 4, 3))
    with pytest.raises(ValueError, match=r"conv1d: weight must be 3-D"):
        C.conv1d(t(1, 4, 5), W4)
    with pytest.raises(ValueError, match=r"conv2d: input must be 3-D \(unbatched\) or 4-D"):
        C.conv2d(t(4, 5), W4)
    with pytest.raises(ValueError, match=r"conv_transpose2d: weight must be 4-D \(in_channels, "
                                         r"out_channels/groups, kH, kW\)"):
        C.conv_transpose2d(X4, t(4, 3, 3))


def test_input_channel_mismatch():
    with pytest.raises(ValueError, match=r"the input has 3 channels but the weight expects "
                                         r"in_channels = weight.shape\[1\] \* groups = 4 \* 1 = 4"):
        C.conv2d(t(2, 3, 5, 5), W4)
    with pytest.raises(ValueError, match=r"the input has 3 channels but the weight expects "
                                         r"in_channels = weight.shape\[0\] = 4"):
        C.conv_transpose2d(t(2, 3, 5, 5), t(4, 2, 3, 3))


@pytest.mark.parametrize("stride,dilation,output_padding,ok", [
    (2, 1, 1, True), (2, 1, 2, False), (1, 1, 1, False), (1, 2, 1, True), (2, 3, 2, True),
    (2, 2, 2, False), ((2, 1), 1, (1, 1), False),
])
def test_output_padding_must_be_below_stride_or_dilation(stride, dilation, output_padding, ok):
    x, w = t(1, 2, 3, 3), t(2, 2, 3, 3)
    if ok:
        C.conv_transpose2d(x, w, stride=stride, dilation=dilation, output_padding=output_padding)
        return
    with pytest.raises(ValueError, match=r"conv_transpose2d: output_padding=.* must be smaller "
                                         r"than either stride=.* or dilation=.*input shape "
                                         r"\(1, 2, 3, 3\), weight shape \(2, 2, 3, 3\)"):
        C.conv_transpose2d(x, w, stride=stride, dilation=dilation, output_padding=output_padding)


def test_conv_transpose_other_errors():
    with pytest.raises(ValueError, match=r"output size \(-1, -1\) is not positive"):
        C.conv_transpose2d(t(1, 2, 1, 1), t(2, 2, 1, 1), padding=1)
    with pytest.raises(ValueError, match=r"padding='same' is not supported"):
        C.conv_transpose2d(t(1, 2, 3, 3), t(2, 2, 3, 3), padding="same")
    with pytest.raises(ValueError, match=r"output_padding must be non-negative"):
        C.conv_transpose1d(t(1, 2, 3), t(2, 2, 3), output_padding=-1)


def test_bias_and_dtype_errors():
    with pytest.raises(ValueError, match=r"bias must have shape \(6,\).*got bias shape \(4,\)"):
        C.conv2d(X4, W4, t(4))
    with pytest.raises(TypeError, match=r"input dtype float32 and weight dtype float64 differ"):
        C.conv2d(X4, t(6, 4, 3, 3, dtype=np.float64))
    with pytest.raises(TypeError, match=r"stride must be an int or a tuple of 2 ints"):
        C.conv2d(X4, W4, stride=(1, 1, 1))
    with pytest.raises(TypeError, match=r"padding must be an int, a tuple of 2 ints"):
        C.conv2d(X4, W4, padding=(1, 2, 3, 4))


def test_masked_and_shifted_conv_errors():
    with pytest.raises(ValueError, match=r"mask_type must be 'A' or 'B', got mask_type='C'"):
        P.masked_conv2d(X4, W4, mask_type="C")
    with pytest.raises(ValueError, match=r"kernel_size must be odd.*kernel_size=\(2, 3\)"
                                         r".*weight shape \(6, 4, 2, 3\)"):
        P.masked_conv2d(X4, t(6, 4, 2, 3))
    with pytest.raises(ValueError, match=r"in_channels=4 must be divisible by groups_rgb=3"
                                         r".*input shape \(2, 4, 5, 5\)"):
        P.masked_conv2d(X4, t(6, 4, 3, 3), groups_rgb=3)
    with pytest.raises(ValueError, match=r"out_channels=4 must be divisible by groups_rgb=3"):
        P.pixelcnn_mask(3, "A", 3, 4, groups_rgb=3)
    with pytest.raises(ValueError, match=r"kernel width must be odd .*got kW=2"
                                         r".*weight shape \(6, 4, 2, 2\)"):
        P.down_shifted_conv2d(X4, t(6, 4, 2, 2))
    with pytest.raises(ValueError, match=r"causal_conv1d: dilation must be positive"):
        C.causal_conv1d(t(1, 2, 5), t(2, 2, 2), dilation=0)
    with pytest.raises(ValueError, match=r"causal_conv1d: weight must be 3-D"):
        C.causal_conv1d(t(1, 2, 5), t(2, 2, 2, 2))
