"""Pixel transforms: exact endpoints, dtypes, reproducible binarization, input checks."""

import numpy as np
import pytest

from tinygen.data import (binarize_dynamic, binarize_threshold, quantize_8bit, to_symmetric,
                          to_unit)

ALL_LEVELS = np.arange(256, dtype=np.uint8).reshape(16, 16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_unit(dtype):
    x = to_unit(ALL_LEVELS, dtype=dtype)
    assert x.dtype == dtype and x.shape == ALL_LEVELS.shape
    assert x.min() == 0 and x.max() == 1
    np.testing.assert_allclose(x, ALL_LEVELS / 255.0, rtol=1e-7 if dtype == np.float32 else 0)


def test_to_unit_default_float32():
    assert to_unit(ALL_LEVELS).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_symmetric_uint8(dtype):
    x = to_symmetric(ALL_LEVELS, dtype=dtype)
    assert x.dtype == dtype
    assert x.min() == -1 and x.max() == 1
    np.testing.assert_allclose(x, ALL_LEVELS / 127.5 - 1, atol=1e-6)


def test_to_symmetric_from_unit_float():
    x = to_symmetric(np.array([0.0, 0.5, 1.0], np.float64))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [-1, 0, 1])


@pytest.mark.parametrize("fn", [to_unit])
@pytest.mark.parametrize("bad", [np.zeros(3, np.float32), np.zeros(3, np.int64),
                                 np.zeros(3, np.uint16)])
def test_uint8_required(fn, bad):
    with pytest.raises(ValueError, match="must be uint8"):
        fn(bad)


@pytest.mark.parametrize("fn", [to_unit, to_symmetric])
@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.uint8])
def test_output_dtype_checked(fn, dtype):
    with pytest.raises(ValueError, match="float32 or float64"):
        fn(ALL_LEVELS, dtype=dtype)


@pytest.mark.parametrize("fn", [to_symmetric, binarize_threshold,
                                lambda x: binarize_dynamic(x, np.random.default_rng(0))])
@pytest.mark.parametrize("bad, match", [
    (np.array([0.0, 1.5]), r"in \[0, 1\], got range"),
    (np.array([-0.1, 0.5]), r"in \[0, 1\], got range"),
    (np.array([0.0, np.nan]), "NaN"),
    (np.array([0.0, np.inf]), "NaN or infinity"),
    (np.array([0, 1], np.int64), "must be floats"),
])
def test_unit_float_required(fn, bad, match):
    with pytest.raises(ValueError, match=match):
        fn(bad)


def test_uint8_into_binarize_hints_to_unit():
    with pytest.raises(ValueError, match="use to_unit first"):
        binarize_threshold(ALL_LEVELS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binarize_dynamic(dtype):
    p = np.random.default_rng(1).random((200, 50)).astype(np.float32)
    p[0] = 0.0
    p[1] = 1.0
    b = binarize_dynamic(p, np.random.default_rng(5), dtype=dtype)
    assert b.dtype == dtype and b.shape == p.shape
    assert set(np.unique(b).tolist()) <= {0.0, 1.0}
    assert (b[0] == 0).all() and (b[1] == 1).all()
    # Reproducible from the seed, different for a different one.
    np.testing.assert_array_equal(b, binarize_dynamic(p, np.random.default_rng(5), dtype=dtype))
    assert not np.array_equal(b, binarize_dynamic(p, np.random.default_rng(6), dtype=dtype))
    # Unbiased: the mean of the sample is close to the mean probability.
    assert abs(b.mean() - p.mean()) < 0.01


def test_binarize_dynamic_rate():
    p = np.full(100_000, 0.3, np.float32)
    assert abs(binarize_dynamic(p, np.random.default_rng(0)).mean() - 0.3) < 0.01


def test_binarize_dynamic_fresh_each_call():
    rng = np.random.default_rng(0)
    p = np.full((10, 10), 0.5)
    assert not np.array_equal(binarize_dynamic(p, rng), binarize_dynamic(p, rng))


@pytest.mark.parametrize("rng", [None, 0, np.random.RandomState(0)])
def test_binarize_dynamic_needs_generator(rng):
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        binarize_dynamic(np.zeros(3), rng)


def test_binarize_threshold():
    x = np.array([0.0, 0.2, 0.5, 0.50001, 1.0])
    np.testing.assert_array_equal(binarize_threshold(x), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(binarize_threshold(x, 0.1), [0, 1, 1, 1, 1])
    assert binarize_threshold(x).dtype == np.float32
    assert binarize_threshold(x, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="threshold must be in"):
        binarize_threshold(x, 1.5)


def test_quantize_8bit_identity_on_uint8():
    assert quantize_8bit(ALL_LEVELS) is ALL_LEVELS
    t = quantize_8bit(ALL_LEVELS, dtype=np.int64)
    assert t.dtype == np.int64
    np.testing.assert_array_equal(t, ALL_LEVELS)


def test_quantize_8bit_accepts_whole_numbers():
    np.testing.assert_array_equal(quantize_8bit(np.array([0, 255], np.int64)), [0, 255])
    np.testing.assert_array_equal(quantize_8bit(np.array([0.0, 17.0, 255.0])), [0, 17, 255])


@pytest.mark.parametrize("bad, match", [
    (np.array([0, 256]), r"0\.\.255, got range"),
    (np.array([-1, 3]), r"0\.\.255, got range"),
    (np.array([0.0, 0.5, 1.0]), "whole numbers"),
    (np.array([0.0, np.nan]), "NaN"),
    (np.array([True, False]), "integers"),
])
def test_quantize_8bit_rejects(bad, match):
    with pytest.raises(ValueError, match=match):
        quantize_8bit(bad)


@pytest.mark.parametrize("dtype", [np.float32, np.int8, bool])
def test_quantize_8bit_output_dtype_checked(dtype):
    with pytest.raises(ValueError, match="integer type"):
        quantize_8bit(ALL_LEVELS, dtype=dtype)
