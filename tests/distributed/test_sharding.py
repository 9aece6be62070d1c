"""The sharded BatchLoader and ShardedGenerator: R ranks see, between them, exactly the
batches and the per-sample noise of one process with the whole batch."""
import numpy as np
import pytest

from tinygen.data import BatchLoader
from tinygen.distributed import ShardedGenerator


@pytest.mark.parametrize("world, drop_last", [(2, True), (3, False), (4, False)])
def test_shards_concatenate_to_the_one_process_batches(world, drop_last):
    data = (np.arange(50) * 10, np.arange(50))
    whole = [b[0] for b in BatchLoader(data, 12, seed=3, drop_last=drop_last)]
    shards = [[b[0] for b in BatchLoader(data, 12, seed=3, drop_last=drop_last, rank=r,
                                         world_size=world)] for r in range(world)]
    assert all(len(s) == len(whole) for s in shards)
    for i, batch in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([s[i] for s in shards]), batch)
        sizes = [len(s[i]) for s in shards]
        assert max(sizes) - min(sizes) <= 1


def test_sharded_state_resumes_with_any_number_of_ranks():
    data = (np.arange(40),)
    two = BatchLoader(data, 8, seed=1, rank=1, world_size=2)
    it = iter(two)
    next(it), next(it)
    state = two.state_dict()
    assert state["position"] == 2 and state["batch_size"] == 8
    one = BatchLoader(data, 8, seed=1)
    one.load_state_dict(state)  # the state counts global batches
    expected = list(BatchLoader(data, 8, seed=1))[2:]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in one]),
                                  np.concatenate([b[0] for b in expected]))


def test_bad_sharding_is_named():
    data = (np.arange(10),)
    with pytest.raises(ValueError, match="batch_size 5 .* must be a multiple of world_size 2"):
        BatchLoader(data, 5, world_size=2)
    with pytest.raises(ValueError, match="rank 2 is not below world_size 2"):
        BatchLoader(data, 4, rank=2, world_size=2)
    assert "rank=1, world_size=2" in repr(BatchLoader(data, 4, rank=1, world_size=2))


def test_per_sample_draws_are_rows_of_the_whole_batch_draw():
    whole = np.random.default_rng(4)
    expected = [whole.standard_normal((6, 2)), whole.random((6, 1, 3)),
                whole.uniform(-1, 1, size=6), whole.integers(0, 9, (6,)), whole.random(5)]
    after = whole.random()
    for start, stop in ((0, 3), (3, 6)):
        g = np.random.default_rng(4)
        s = ShardedGenerator(g, start, stop, 6)
        got = [s.standard_normal((3, 2)), s.random((3, 1, 3)), s.uniform(-1, 1, size=3),
               s.integers(0, 9, (3,)), s.random(5)]  # the last is not per sample
        for a, b in zip(got[:4], expected[:4]):
            np.testing.assert_array_equal(a, b[start:stop])
        np.testing.assert_array_equal(got[4], expected[4])
        assert isinstance(s, np.random.Generator)
        # the wrapped generator advanced as the one-process one did
        assert g.random() == after


def test_sharded_generator_refuses_what_it_cannot_shard():
    s = ShardedGenerator(np.random.default_rng(0), 0, 2, 4)
    with pytest.raises(TypeError, match="scalar parameters only"):
        s.normal(np.zeros(2), 1.0, size=2)
    with pytest.raises(ValueError, match=r"bad shard \[3, 2\)"):
        ShardedGenerator(np.random.default_rng(0), 3, 2, 4)
