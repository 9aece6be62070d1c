"""BatchLoader: coverage of every sample once per epoch, determinism per (seed, epoch),
bit-for-bit resume from state_dict (between and within epochs), drop_last, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygen.data import BatchLoader


def make_arrays(n=23):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    return x, y


def epoch_indices(loader):
    """Run one pass; return the list of index batches (from the y column)."""
    out = []
    for xb, yb in loader:
        np.testing.assert_array_equal(xb, np.stack([2 * yb, 2 * yb + 1], axis=1))
        out.append(yb.copy())
    return out


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 40), batch_size=st.integers(1, 50), shuffle=st.booleans(),
       seed=st.integers(0, 2**32))
def test_every_sample_once_per_epoch(n, batch_size, shuffle, seed):
    loader = BatchLoader(make_arrays(n), batch_size, shuffle=shuffle, seed=seed)
    for epoch in range(3):
        assert loader.epoch == epoch
        batches = epoch_indices(loader)
        assert len(batches) == len(loader) == -(-n // batch_size)
        assert all(len(b) == batch_size for b in batches[:-1])
        seen = np.concatenate(batches) if batches else np.array([], dtype=np.int64)
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))
    assert loader.epoch == 3


def test_yields_tuples_in_order_of_arrays():
    x, y = make_arrays(10)
    z = np.arange(10)[::-1].copy()
    batches = list(BatchLoader((x, y, z), 4, shuffle=False))
    assert all(isinstance(b, tuple) and len(b) == 3 for b in batches)
    np.testing.assert_array_equal(batches[0][1], [0, 1, 2, 3])
    np.testing.assert_array_equal(batches[0][2], [9, 8, 7, 6])
    np.testing.assert_array_equal(batches[-1][1], [8, 9])


def test_single_array():
    x, _ = make_arrays(5)
    (b,), *_ = BatchLoader((x,), 5, shuffle=False)
    np.testing.assert_array_equal(b, x)


def test_no_shuffle_is_in_order_every_epoch():
    loader = BatchLoader(make_arrays(10), 3, shuffle=False)
    for _ in range(2):
        np.testing.assert_array_equal(np.concatenate(epoch_indices(loader)), np.arange(10))


def test_shuffle_differs_between_epochs_and_seeds():
    a = BatchLoader(make_arrays(100), 10, seed=0)
    e0, e1 = np.concatenate(epoch_indices(a)), np.concatenate(epoch_indices(a))
    assert not np.array_equal(e0, e1)
    assert not np.array_equal(e0, np.arange(100))
    b = BatchLoader(make_arrays(100), 10, seed=1)
    assert not np.array_equal(e0, np.concatenate(epoch_indices(b)))


def test_order_is_a_function_of_seed_and_epoch():
    a = BatchLoader(make_arrays(50), 7, seed=42)
    runs = [np.concatenate(epoch_indices(a)) for _ in range(4)]
    b = BatchLoader(make_arrays(50), 7, seed=42)
    for k in range(4):
        np.testing.assert_array_equal(b.order(k), runs[k])
    # Independent of global numpy random state.
    np.random.seed(123)
    c = BatchLoader(make_arrays(50), 7, seed=42)
    np.testing.assert_array_equal(np.concatenate(epoch_indices(c)), runs[0])
    # Independent of batch size.
    d = BatchLoader(make_arrays(50), 50, seed=42)
    np.testing.assert_array_equal(np.concatenate(epoch_indices(d)), runs[0])


def test_resume_between_epochs():
    a = BatchLoader(make_arrays(30), 4, seed=7)
    epoch_indices(a)
    epoch_indices(a)
    state = a.state_dict()
    assert state["epoch"] == 2 and state["position"] == 0 and state["seed"] == 7
    expected = [epoch_indices(a) for _ in range(2)]

    b = BatchLoader(make_arrays(30), 4, seed=999)  # seed comes from the state
    b.load_state_dict(state)
    assert b.epoch == 2 and b.seed == 7
    got = [epoch_indices(b) for _ in range(2)]
    for e, g in zip(expected, got):
        assert len(e) == len(g)
        for x, y in zip(e, g):
            np.testing.assert_array_equal(x, y)


def test_resume_mid_epoch_is_bit_for_bit():
    x = np.random.default_rng(0).standard_normal((37, 3)).astype(np.float32)
    y = np.arange(37)
    a = BatchLoader((x, y), 5, seed=3)
    full = [tuple(t.copy() for t in b) for _ in range(2) for b in a]

    b = BatchLoader((x, y), 5, seed=3)
    it = iter(b)
    head = [tuple(t.copy() for t in next(it)) for _ in range(3)]
    state = b.state_dict()  # taken inside the epoch, after 3 batches
    assert state["epoch"] == 0 and state["position"] == 3
    del it

    c = BatchLoader((x, y), 5, seed=0)
    c.load_state_dict({k: np.asarray(v) for k, v in state.items()})  # as if from .npz
    tail = [tuple(t.copy() for t in bt) for bt in c]  # rest of epoch 0
    tail += [tuple(t.copy() for t in bt) for bt in c]  # epoch 1
    assert len(head) + len(tail) == len(full)
    for u, v in zip(head + tail, full):
        for p, q in zip(u, v):
            assert p.tobytes() == q.tobytes()


def test_state_after_last_batch_equals_state_after_loop():
    loader = BatchLoader(make_arrays(10), 5, seed=1)
    states = []
    for _ in loader:
        states.append(loader.state_dict())
    assert states[0]["epoch"] == 0 and states[0]["position"] == 1
    assert states[-1]["epoch"] == 1 and states[-1]["position"] == 0
    assert loader.state_dict() == states[-1]
    assert loader.epoch == 1


def test_break_then_iterate_continues_the_epoch():
    loader = BatchLoader(make_arrays(20), 4, seed=5)
    order = loader.order(0)
    first = []
    for (_, yb) in loader:
        first.append(yb)
        break
    rest = [yb for _, yb in loader]
    np.testing.assert_array_equal(np.concatenate(first + rest), order)
    assert loader.epoch == 1


def test_state_dict_values_are_plain_ints():
    state = BatchLoader(make_arrays(10), 3).state_dict()
    assert all(type(v) is int for v in state.values())


@pytest.mark.parametrize("n, bs, drop_last, expected", [
    (10, 3, False, [3, 3, 3, 1]),
    (10, 3, True, [3, 3, 3]),
    (9, 3, True, [3, 3, 3]),
    (2, 3, True, []),
    (2, 3, False, [2]),
    (0, 3, False, []),
])
def test_drop_last(n, bs, drop_last, expected):
    loader = BatchLoader(make_arrays(n), bs, drop_last=drop_last, seed=0)
    assert len(loader) == len(expected)
    for epoch in range(2):
        sizes = [len(yb) for _, yb in loader]
        assert sizes == expected
        assert loader.epoch == epoch + 1


def test_drop_last_drops_different_samples_each_epoch():
    loader = BatchLoader(make_arrays(10), 3, drop_last=True, seed=0)
    kept = [set(np.concatenate(epoch_indices(loader)).tolist()) for _ in range(5)]
    assert len(set(map(frozenset, kept))) > 1
    assert all(len(k) == 9 for k in kept)


# --- errors --------------------------------------------------------------------------

def test_unequal_lengths_error_names_them():
    with pytest.raises(ValueError, match=r"equal first dimensions.*\[5, 4\]"):
        BatchLoader((np.zeros(5), np.zeros(4)), 2)


@pytest.mark.parametrize("bs", [0, -1])
def test_batch_size_must_be_positive(bs):
    with pytest.raises(ValueError, match=f"batch_size must be > 0, got {bs}"):
        BatchLoader(make_arrays(5), bs)


@pytest.mark.parametrize("bs", [2.0, "4", None, True])
def test_batch_size_must_be_int(bs):
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        BatchLoader(make_arrays(5), bs)


def test_numpy_int_batch_size_ok():
    assert len(BatchLoader(make_arrays(5), np.int64(2))) == 3


def test_bare_array_rejected():
    with pytest.raises(TypeError, match="tuple of numpy arrays"):
        BatchLoader(np.zeros((5, 2)), 2)


def test_empty_tuple_and_scalar_rejected():
    with pytest.raises(ValueError, match="at least one"):
        BatchLoader((), 2)
    with pytest.raises(ValueError, match="0-dimensional"):
        BatchLoader((np.zeros(3), np.float32(1.0)), 2)


def test_negative_seed_rejected():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        BatchLoader(make_arrays(5), 2, seed=-1)


def test_load_state_dict_errors():
    loader = BatchLoader(make_arrays(10), 3)
    with pytest.raises(KeyError, match="position"):
        loader.load_state_dict({"seed": 0, "epoch": 0})
    with pytest.raises(ValueError, match="num_samples=11, this loader has num_samples=10"):
        loader.load_state_dict(BatchLoader(make_arrays(11), 3).state_dict())
    with pytest.raises(ValueError, match="batch_size=4, this loader has batch_size=3"):
        loader.load_state_dict(BatchLoader(make_arrays(10), 4).state_dict())
    with pytest.raises(ValueError, match="position 5 is past the 4 batches"):
        loader.load_state_dict({"seed": 0, "epoch": 0, "position": 5})
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        loader.load_state_dict({"seed": 0, "epoch": -1, "position": 0})
    # A failed load leaves the loader untouched.
    assert loader.state_dict() == BatchLoader(make_arrays(10), 3).state_dict()
