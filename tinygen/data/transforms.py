"""Pixel transforms between uint8 images and what each model family consumes.

- VAE (Bernoulli decoder): to_unit, then binarize_dynamic every time a batch is drawn
  (dynamic binarization: a fresh Bernoulli sample per pass, which regularizes and is what
  the VAE literature reports log-likelihoods on) or binarize_threshold once (static).
- GAN (tanh generator): to_symmetric, [-1, 1].
- PixelCNN (256-way softmax): quantize_8bit, which only checks that the values already
  are the integers 0..255 that the likelihood is defined over.

All functions are pure numpy, return new arrays, and check their input's dtype and
range: a float image passed where uint8 was expected (or the reverse) is the most common
silent bug in generative-model code, since it trains, just badly.
"""

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def to_unit(images, dtype=np.float32):
    """uint8 images in 0..255 -> float in [0, 1] (x / 255)."""
    images = _require_uint8(images, "to_unit")
    dtype = _float_dtype(dtype, "to_unit")
    return images.astype(dtype) / dtype.type(255)


def to_symmetric(images, dtype=np.float32):
    """Images -> float in [-1, 1].

    uint8 0..255 maps as (x - 127.5) / 127.5 (0 -> -1, 255 -> 1 exactly); float images
    must already be in [0, 1] and map as 2x - 1.
    """
    images = np.asarray(images)
    dtype = _float_dtype(dtype, "to_symmetric")
    if images.dtype == np.uint8:
        half = dtype.type(127.5)
        return (images.astype(dtype) - half) / half
    images = _require_unit_float(images, "to_symmetric")
    return images.astype(dtype) * dtype.type(2) - dtype.type(1)


def binarize_dynamic(images01, rng, dtype=np.float32):
    """Bernoulli-sample each pixel: 1 with probability equal to its value in [0, 1].

    rng is a numpy.random.Generator, so the sample is reproducible from its seed; call
    once per batch per epoch for dynamic binarization. Values 0 and 1 stay 0 and 1.
    """
    images01 = _require_unit_float(images01, "binarize_dynamic")
    dtype = _float_dtype(dtype, "binarize_dynamic")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"binarize_dynamic: rng must be a numpy.random.Generator "
                        f"(e.g. numpy.random.default_rng(seed)), got {type(rng).__name__}")
    # rng.random is in [0, 1): u < p is never true for p = 0 and always for p = 1.
    return (rng.random(images01.shape) < images01).astype(dtype)


def binarize_threshold(images01, threshold=0.5, dtype=np.float32):
    """Static binarization: 1 where the pixel is > threshold, else 0."""
    images01 = _require_unit_float(images01, "binarize_threshold")
    dtype = _float_dtype(dtype, "binarize_threshold")
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"binarize_threshold: threshold must be in [0, 1], got {threshold}")
    return (images01 > threshold).astype(dtype)


def quantize_8bit(images, dtype=np.uint8):
    """Check that images are the 256 levels 0..255 a discrete likelihood is defined over.

    Accepts any integer array, or a float array whose values are whole numbers, with all
    values in 0..255, and returns it as `dtype` (uint8 by default; int64 suits class
    targets). A uint8 input with dtype uint8 is returned as is. Raises ValueError on
    anything else (a [0, 1] float image, say, which would be silently floored to 0/1).
    """
    images = np.asarray(images)
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or (dtype.kind == "i" and dtype.itemsize < 2):
        raise ValueError(f"quantize_8bit: dtype must be an integer type holding 0..255, "
                         f"got {dtype}")
    if images.dtype == np.uint8:
        return images if dtype == np.uint8 else images.astype(dtype)
    if images.dtype.kind == "f":
        if not np.isfinite(images).all():
            raise ValueError("quantize_8bit: images contain NaN or infinity")
        if (images != np.round(images)).any():
            raise ValueError("quantize_8bit: float images must hold whole numbers 0..255 "
                             "(for [0, 1] images, multiply by 255 and round first)")
    elif images.dtype.kind not in "iu":
        raise ValueError(f"quantize_8bit: images must be integers 0..255, got dtype "
                         f"{images.dtype}")
    if images.size and (images.min() < 0 or images.max() > 255):
        raise ValueError(f"quantize_8bit: values must be in 0..255, got range "
                         f"[{images.min()}, {images.max()}]")
    return images.astype(dtype)


def _require_uint8(images, name):
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"{name}: images must be uint8 (0..255), got dtype {images.dtype}")
    return images


def _require_unit_float(images, name):
    images = np.asarray(images)
    if images.dtype.kind != "f":
        hint = " (use to_unit first)" if images.dtype == np.uint8 else ""
        raise ValueError(f"{name}: images must be floats in [0, 1], got dtype "
                         f"{images.dtype}{hint}")
    if images.size:
        lo, hi = images.min(), images.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):  # NaN propagates through min/max
            raise ValueError(f"{name}: images contain NaN or infinity")
        if lo < 0 or hi > 1:
            raise ValueError(f"{name}: images must be in [0, 1], got range [{lo}, {hi}]")
    return images


def _float_dtype(dtype, name):
    dtype = np.dtype(dtype)
    if dtype not in _FLOAT_DTYPES:
        raise ValueError(f"{name}: dtype must be float32 or float64, got {dtype}")
    return dtype
