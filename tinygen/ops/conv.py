"""Convolution family: conv1d/2d, conv_transpose1d/2d, causal and masked convs.

One mechanism serves them all.  Three Functions on 2-D spatial data (1-D convs
are 2-D convs of height 1: the Functions take their 3-D arrays as they are and hand
the kernels height-1 views) that are each other's adjoints:

    Conv2dFn(x, w)                 -> y    the convolution
    Conv2dInputGradFn(gy, w)       -> gx   its input gradient = conv_transpose2d
    Conv2dWeightGradFn(x, gy)      -> gw   its weight gradient

The convolution is bilinear in (x, w), so each of the three is bilinear too and
the derivative of each is made of the other two:

    Conv(x, w),         upstream g:  dx = InputGrad(g, w),   dw = WeightGrad(x, g)
    InputGrad(gy, w),   upstream h:  dgy = Conv(h, w),       dw = WeightGrad(h, gy)
    WeightGrad(x, gy),  upstream h:  dx = InputGrad(gy, h),  dgy = Conv(x, h)

The set is closed under differentiation, so every order of derivative works
(WGAN-GP's gradient penalty, gradgradcheck, third derivatives).

The convolution takes an optional bias (O,) and an optional ``residual`` (a tensor of
the output's shape, tinygen's extra: WaveNet's and the PixelCNNs' ``h + conv(...)``) as
further inputs: the kernels add them to each chunk of outputs while it is in cache
(conv + bias, then + residual: the same float additions as separate adds, without their
passes over fresh arrays, and shared out with the chunks at 2 threads).  The bias'
gradient is the output gradient summed over the images and positions, the residual's
the output gradient itself.  The transposed convolution (``Conv2dInputGradFn``) takes an
optional bias (C,) the same way, added into the kernel's fresh result in place.

All three take the same ``ConvGeometry`` (stride, per-side padding, dilation,
groups, input and output sizes, kernel size) and an optional ``WeightMask``:
the kernels iterate only the taps (i, j) the mask keeps (a 7x7 PixelCNN mask A
keeps 24 of 49), taps that are only partly kept (the centre tap under RGB
grouping) use the weight zeroed where the mask is off, and the weight gradient
is masked.

Kernels come from ``tinygen.backend.kernels`` (family ``"conv"``), chosen by
array type: on the CPU the numba kernels or the plain numpy reference
(``use_impl('reference')`` / ``TINYGEN_CPU_IMPL``), on the GPU whatever the
CUDA backend registers.

The family in three modules: this one (the Functions and the public convs),
``conv_geometry`` (``ConvGeometry``, ``WeightMask`` and the argument checks, whose
errors name the argument and the shapes) and ``conv_pixelcnn`` (PixelCNN's masks and
masked conv, the gated PixelCNN's shifted convs).
"""
from ..autograd.function import Function
from ..autograd.primitives import sum_to
from ..backend import array_module
from ..backend.kernels import kernels
from .conv_geometry import (
    Call, check_bias, conv_geometry, conv_tensors, ints, kept_taps, transpose_geometry,
    weight_mask_of,
)
from ._operands import as_tensor
from .shape import reshape


def _masked_weight(w, mask):
    """The weight zeroed where a partly kept tap is masked (only then: fully masked
    taps are never read, so they need no zeroing)."""
    if mask is None or not mask.partial:
        return w
    xp = array_module(w)
    return xp.where(xp.asarray(mask.array), w, w.dtype.type(0))


def _masked_grad(gw, mask):
    if mask is None or not mask.partial:
        return gw  # untaken taps are already zero
    xp = array_module(gw)
    return xp.where(xp.asarray(mask.array), gw, gw.dtype.type(0))


def _nothing_to_do(out_shape, a, b, geom, mask):
    """An empty batch, or a mask that keeps no tap (a 1x1 mask A): the result is zeros."""
    return 0 in out_shape or a.size == 0 or b.size == 0 or len(kept_taps(geom, mask)) == 0


def _empty_result(shape, like):
    """Zero-sized problems skip the kernels."""
    return array_module(like).zeros(shape, dtype=like.dtype)


def _x_shape(n, w_shape, geom):
    return (n, w_shape[1] * geom.groups) + tuple(geom.in_size)


# 1-D convs: the Functions take the (N, C, L) tensors and (O, C/g, k) weights as they are
# and hand the kernels height-1 views of them, (N, C, 1, L) and (O, C/g, 1, k); their
# results come back in the 1-D shapes.  (Reshape Functions around a 2-D conv did the
# same with six more graph nodes per forward and backward, ~10% of a small 1-D conv's
# step; WaveNet is made of them.)
def _kernel_view(a):
    """A 1-D conv's 3-D array as the kernels' 4-D one (a view)."""
    return a.reshape(a.shape[:2] + (1,) + a.shape[2:]) if a.ndim == 3 else a


def _as_given(a, one_d):
    """A kernel's 4-D result back in a 1-D conv's 3-D shape."""
    return a.reshape(a.shape[:2] + a.shape[3:]) if one_d else a


class Conv2dFn(Function):
    """y = conv2d(x, w) (+ b) (+ r): x (N, C, H, W), w (O, C/groups, kh, kw), then
    b (O,) when ``has_bias``, then r (N, O, Hout, Wout) when ``has_residual``
    -> y (N, O, Hout, Wout)."""

    def forward(self, x, w, *extra, geom, mask, has_bias=False, has_residual=False):
        self.geom, self.mask = geom, mask
        # dx needs w, dw needs x: keep only what a requested gradient needs.
        need_x, need_w = self.needs_input_grad[:2]
        self._keep = [i for i, keep in ((0, need_w), (1, need_x)) if keep]
        self.save_inputs(*self._keep)
        self.has_bias = has_bias
        one_d = x.ndim == 3
        out_shape = (x.shape[0], w.shape[0]) + tuple(geom.out_size)
        b = extra[0] if has_bias else None
        r = _kernel_view(extra[-1]) if has_residual else None
        if _nothing_to_do(out_shape, x, w, geom, mask):
            y = _empty_result(out_shape, x)
            if b is not None:
                y += b.reshape((-1,) + (1,) * (y.ndim - 2))
            if r is not None:
                y += r
            return _as_given(y, one_d)
        x, w = _kernel_view(x), _kernel_view(w)
        y = kernels("conv", x, "conv2d").conv2d_forward(
            x, _masked_weight(w, mask), geom, kept_taps(geom, mask), bias=b, residual=r)
        return _as_given(y, one_d)

    def backward(self, grad):
        saved = dict(zip(self._keep, self.saved_inputs()))
        x, w = saved.get(0), saved.get(1)
        params = dict(geom=self.geom, mask=self.mask)
        needs = self.needs_input_grad
        grads = [Conv2dInputGradFn.apply(grad, w, **params) if needs[0] else None,
                 Conv2dWeightGradFn.apply(x, grad, **params) if needs[1] else None]
        if self.has_bias:
            grads.append(bias_grad(grad) if needs[2] else None)
        if len(needs) > len(grads):     # the residual's: the output gradient itself
            grads.append(grad if needs[-1] else None)
        return tuple(grads)


def bias_grad(grad):
    """A conv bias' gradient: ``grad`` (N, O, ...) summed to (O,) (differentiable)."""
    channels = grad.shape[1]
    return reshape(sum_to(grad, (1, channels) + (1,) * (grad.ndim - 2)), (channels,))


class Conv2dInputGradFn(Function):
    """gx = conv2d_input_grad(gy, w) (+ b), the transposed convolution:
    gy (N, O, Hout, Wout), w (O, C/groups, kh, kw), then b (C,) when ``has_bias``
    -> gx (N, C, H, W)."""

    def forward(self, gy, w, *bias, geom, mask, has_bias=False):
        self.geom, self.mask, self.has_bias = geom, mask, has_bias
        need_gy, need_w = self.needs_input_grad[:2]
        self._keep = [i for i, keep in ((0, need_w), (1, need_gy)) if keep]
        self.save_inputs(*self._keep)
        one_d = gy.ndim == 3
        out_shape = _x_shape(gy.shape[0], w.shape, geom)
        if _nothing_to_do(out_shape, gy, w, geom, mask):
            gx = _empty_result(out_shape, gy)
        else:
            gx = kernels("conv", gy, "conv_transpose2d").conv2d_input_grad(
                _kernel_view(gy), _masked_weight(_kernel_view(w), mask), geom,
                kept_taps(geom, mask))
        if has_bias:
            # into the kernel's fresh result, in place: a separate broadcast add would
            # be one more pass, writing a new array (a VAE decoder's 512 x 32 x 14 x 14
            # output: 1.8 ms against 1.0 at one thread)
            array_module(gx).add(gx, bias[0].reshape((-1,) + (1,) * (gx.ndim - 2)), out=gx)
        return _as_given(gx, one_d)

    def backward(self, h):
        saved = dict(zip(self._keep, self.saved_inputs()))
        gy, w = saved.get(0), saved.get(1)
        params = dict(geom=self.geom, mask=self.mask)
        needs = self.needs_input_grad
        grads = [Conv2dFn.apply(h, w, **params) if needs[0] else None,
                 Conv2dWeightGradFn.apply(h, gy, **params) if needs[1] else None]
        if self.has_bias:
            grads.append(bias_grad(h) if needs[2] else None)
        return tuple(grads)


class Conv2dWeightGradFn(Function):
    """gw = conv2d_weight_grad(x, gy): x (N, C, H, W), gy (N, O, Hout, Wout)
    -> gw (O, C/groups, kh, kw), zero where the mask is off."""

    def forward(self, x, gy, geom, mask):
        self.geom, self.mask = geom, mask
        need_x, need_gy = self.needs_input_grad
        self._keep = [i for i, keep in ((0, need_gy), (1, need_x)) if keep]
        self.save_inputs(*self._keep)
        one_d = x.ndim == 3
        out_shape = (gy.shape[1], x.shape[1] // geom.groups) + tuple(geom.kernel)
        if _nothing_to_do(out_shape, x, gy, geom, mask):
            return _as_given(_empty_result(out_shape, x), one_d)
        x, gy = _kernel_view(x), _kernel_view(gy)
        gw = kernels("conv", x, "conv2d weight gradient").conv2d_weight_grad(
            x, gy, geom, kept_taps(geom, mask))
        return _as_given(_masked_grad(gw, mask), one_d)

    def backward(self, h):
        saved = dict(zip(self._keep, self.saved_inputs()))
        x, gy = saved.get(0), saved.get(1)
        params = dict(geom=self.geom, mask=self.mask)
        dx = Conv2dInputGradFn.apply(gy, h, **params) if self.needs_input_grad[0] else None
        dgy = Conv2dFn.apply(x, h, **params) if self.needs_input_grad[1] else None
        return dx, dgy


def finish_conv(y, batched):
    """An unbatched call's batch axis dropped."""
    return y if batched else reshape(y, y.shape[1:])


def checked_residual(call, residual, x, w, geom, batched):
    """``residual`` as a Tensor of the (batched) output's shape and x's dtype, or None."""
    if residual is None:
        return None
    residual = as_tensor(residual)
    shape = (x.shape[0], w.shape[0]) + tuple(geom.out_size)[2 - (x.ndim - 2):]
    given = tuple(residual.shape) if batched else (1,) + tuple(residual.shape)
    if given != shape:
        raise call.error(f"residual must have the output's shape "
                         f"{shape if batched else shape[1:]}, got {tuple(residual.shape)}")
    if residual.dtype != x.dtype:
        raise call.error(f"residual dtype {residual.dtype} differs from the input's {x.dtype}",
                         TypeError)
    return residual if batched else reshape(residual, shape)


def convolve(x, w, bias, geom, mask, batched, residual=None):
    """The checked conv: Conv2dFn with the bias and the residual as further inputs when
    there are some, an unbatched call's batch axis dropped."""
    inputs = [x, w] + [t for t in (bias, residual) if t is not None]
    y = Conv2dFn.apply(*inputs, geom=geom, mask=mask, has_bias=bias is not None,
                       has_residual=residual is not None)
    return finish_conv(y, batched)


def conv_nd(op, ndim, input, weight, bias, stride, padding, dilation, groups, weight_mask=None,
            residual=None):
    call = Call(op, input, weight)
    x, w, bias, batched = conv_tensors(call, input, weight, bias, ndim)
    geom = conv_geometry(call, x, w, stride, padding, dilation, groups, ndim)
    check_bias(call, bias, w.shape[0])
    mask = weight_mask_of(call, weight_mask, tuple(w.shape))  # 2-D convs only
    residual = checked_residual(call, residual, x, w, geom, batched)
    return convolve(x, w, bias, geom, mask, batched, residual)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           weight_mask=None, residual=None):
    """2-D convolution (cross-correlation), PyTorch's ``F.conv2d``.

    input (N, C, H, W) or (C, H, W); weight (O, C/groups, kH, kW); bias (O,).
    padding: int, (pH, pW), ((top, bottom), (left, right)), 'valid' or 'same'
    (an even kernel pads more on the bottom/right; not with stride > 1).
    Output size per dimension: (n + lo + hi - dilation*(k-1) - 1) // stride + 1.
    ``weight_mask`` (tinygen extra): a boolean array broadcastable to the weight;
    only the taps it keeps are computed and the weight gradient is masked.
    ``residual`` (tinygen extra): a tensor of the output's shape added to it, by the
    kernels (``residual + conv2d(...)`` without a pass of its own).
    """
    return conv_nd("conv2d", 2, input, weight, bias, stride, padding, dilation, groups,
                 weight_mask, residual)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *,
           residual=None):
    """1-D convolution, PyTorch's ``F.conv1d``: input (N, C, L) or (C, L),
    weight (O, C/groups, k).  padding: int, (p,), (left, right) or ((left, right),),
    'valid' or 'same'.  ``residual``: as ``conv2d``'s."""
    return conv_nd("conv1d", 1, input, weight, bias, stride, padding, dilation, groups,
                   residual=residual)


def _conv_transpose(op, ndim, input, weight, bias, stride, padding, output_padding, groups,
                    dilation):
    call = Call(op, input, weight)
    x, w, bias, batched = conv_tensors(call, input, weight, bias, ndim)
    geom = transpose_geometry(call, x, w, stride, padding, output_padding, groups, dilation,
                               ndim)
    check_bias(call, bias, w.shape[1] * geom.groups)
    inputs = [x, w] + ([] if bias is None else [bias])
    y = Conv2dInputGradFn.apply(*inputs, geom=geom, mask=None, has_bias=bias is not None)
    return finish_conv(y, batched)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 2-D convolution, PyTorch's ``F.conv_transpose2d``: the input
    gradient of ``conv2d`` with the same arguments.

    input (N, C_in, H, W); weight (C_in, C_out/groups, kH, kW); bias (C_out,).
    Output size: (n - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1
    (per-side padding pairs ((top, bottom), (left, right)) are accepted too).
    output_padding must be smaller than either stride or dilation (PyTorch's rule).
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Transposed 1-D convolution, PyTorch's ``F.conv_transpose1d``;
    weight (C_in, C_out/groups, k)."""
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def causal_conv1d(input, weight, bias=None, dilation=1, *, residual=None):
    """WaveNet's causal convolution: output length = input length, and output t
    sees inputs t - dilation*(k-1), ..., t - dilation, t only (never the future).

    It is conv1d with dilation*(k-1) zeros padded on the left only.  ``residual``: as
    ``conv2d``'s.
    """
    call = Call("causal_conv1d", input, weight)
    (d,) = ints(call, "dilation", dilation, 1, 1)
    if getattr(weight, "ndim", None) != 3:
        raise call.error(f"weight must be 3-D (out_channels, in_channels, k), got shape "
                         f"{tuple(getattr(weight, 'shape', ()))}")
    k = weight.shape[2]
    return conv_nd("causal_conv1d", 1, input, weight, bias, 1, ((d * (k - 1), 0),), d, 1,
                   residual=residual)
