"""``tinygen.nn.functional``: the stateless ops that ``torch.nn.functional`` holds.

A flat list of re-exports from ``tinygen.ops`` plus small functions where the
PyTorch signature differs from the op's (``dim=`` keywords) or where the
function is a composition (``linear``).  Layers in ``tinygen.nn`` call these.
"""
from ..ops.elementwise import (  # noqa: F401
    relu, leaky_relu, elu, softplus, tanh, sigmoid, dropout,
)
from ..ops.shape import pad  # noqa: F401
from ..ops.loss import (  # noqa: F401
    cross_entropy, nll_loss, binary_cross_entropy, binary_cross_entropy_with_logits,
    mse_loss, l1_loss,
)
from ..ops.conv import (  # noqa: F401
    conv1d, conv2d, conv_transpose1d, conv_transpose2d, causal_conv1d,
)
from ..ops.conv_pixelcnn import (  # noqa: F401
    masked_conv2d, pixelcnn_mask, down_shifted_conv2d, down_right_shifted_conv2d, down_shift,
    down_shift_conv1x1,
)
from ..ops.batch_norm import batch_norm  # noqa: F401
from ..ops.pooling import max_pool2d, avg_pool2d, interpolate, upsample_nearest  # noqa: F401
from ..ops.gated_activation import gated_activation  # noqa: F401
from ..ops import reduce as _reduce
from ..ops.linalg import linear as _linear


def softmax(input, dim=-1):
    return _reduce.softmax(input, dim)


def log_softmax(input, dim=-1):
    return _reduce.log_softmax(input, dim)


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` with weight (out_features, in_features), bias (out_features,)."""
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input shape {input.shape} does not match weight shape {weight.shape}: "
            f"the input's last dimension must be in_features={weight.shape[1]}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(
            f"linear: bias shape {bias.shape} does not match weight shape {weight.shape}: "
            f"expected ({weight.shape[0]},)"
        )
    return _linear(input, weight, bias)
