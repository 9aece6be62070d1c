"""The CPU conv's weight gradients are the same bit for bit from run to run at two
threads, on every path (im2col, conv_rows, conv_direct, conv_winograd, conv_phase,
conv_depthwise):
``--resume`` promises that a resumed run equals a straight one.  The chunks' partial
sums are added in chunk order (``chunks.sum_chunks``) whichever thread ran them; a
sum per thread added up afterwards changed with which chunks each thread claimed
(6 to 17 distinct gradients in 30 runs of GAN D's 4x4 stride-2 layer).  Many chunks
of one image each, so that the two threads interleave them differently run to run."""
import threading

import numba
import numpy as np
import pytest

import tinygen as tg
import tinygen.nn as nn
from tinygen.backend.numba_kernels import _cblas, chunks
from tinygen.backend.numba_kernels import conv as numba_conv
from tinygen.backend.numba_kernels import conv_depthwise, conv_direct, conv_phase, conv_rows, \
    conv_winograd
from tinygen.ops import conv as C

from ._helpers import impl

REPEATS = 20


def _one_image_each(n_img, *_args, **_kwargs):
    return [(start, start + 1) for start in range(n_img)]


# path: (its module (None: im2col), the switches that force it, the conv's arguments)
_STRIDED = dict(x=(24, 12, 10, 10), w=(16, 12, 4, 4), stride=2, padding=1)
PATHS = {
    "im2col": (None, dict(PHASE=False, ROWS_STRIDED=False), _STRIDED),
    "rows": (conv_rows, dict(ROWS_MIN_K=0, WINOGRAD=False),
             dict(x=(24, 12, 8, 8), w=(16, 12, 3, 3), padding=1)),
    "direct": (conv_direct, dict(DIRECT_MIN_CHANNELS=0), dict(x=(24, 12, 40), w=(16, 12, 3))),
    # (without numpy's OpenBLAS GEMM: np.matmul chunk by chunk, sum_chunks)
    "direct-matmul": (conv_direct, dict(DIRECT_MIN_CHANNELS=0),
                      dict(x=(24, 12, 40), w=(16, 12, 3))),
    "winograd": (conv_winograd, dict(WINOGRAD=True),
                 dict(x=(24, 12, 8, 8), w=(16, 12, 3, 3), padding=1)),
    # (without numpy's OpenBLAS GEMM: np.matmul chunk by chunk, sum_chunks)
    "winograd-matmul": (conv_winograd, dict(WINOGRAD=True),
                        dict(x=(24, 12, 8, 8), w=(16, 12, 3, 3), padding=1)),
    "phase": (conv_phase, dict(PHASE=True), _STRIDED),
    "depthwise": (conv_depthwise, dict(DEPTHWISE=True),
                  dict(x=(24, 12, 8, 8), w=(12, 1, 3, 3), padding=1, groups=12)),
    "depthwise-strided": (conv_depthwise, dict(DEPTHWISE=True),
                          dict(x=(24, 12, 9, 9), w=(12, 1, 3, 3), stride=2, groups=12)),
    # (without numpy's OpenBLAS GEMM: np.matmul chunk by chunk, sum_chunks)
    "phase-matmul": (conv_phase, dict(PHASE=True), _STRIDED),
}


@pytest.fixture
def two_threads(monkeypatch):
    """The pool at two threads (its helper threads are ours, not numba's: any machine),
    chunks of one image on every path."""
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(numba_conv, "_chunk_ranges", _one_image_each)
    for module in (conv_rows, conv_direct, conv_winograd, conv_phase):
        monkeypatch.setattr(module, "chunk_ranges", _one_image_each)
    # (conv_direct's compiled path: pieces of one image, each summed into its own partial)
    monkeypatch.setattr(conv_direct, "_pieces", lambda n, multiply_adds: n)
    # (conv_phase's too, in steps of one image)
    monkeypatch.setattr(conv_phase, "_pieces", lambda n, multiply_adds: n)
    monkeypatch.setattr(conv_phase, "_images_per_step", lambda tiles, columns=None: 1)
    # (conv_winograd's too, in steps of one image)
    monkeypatch.setattr(conv_winograd, "_pieces", lambda n, multiply_adds: n)
    monkeypatch.setattr(conv_winograd, "_images_per_step", lambda per_image: 1)
    monkeypatch.setattr(conv_winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(conv_winograd, "MIN_OUT_SIZE", 1)
    monkeypatch.setattr(conv_phase, "MIN_CHANNELS", 1)
    # (conv_depthwise's planes and channels shared out however small the layer)
    monkeypatch.setattr(chunks, "SHARE_THRESHOLD", 1)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_weight_gradient_is_the_same_every_run(two_threads, monkeypatch, path):
    module, switches, args = PATHS[path]
    for name, value in switches.items():
        monkeypatch.setattr(numba_conv, name, value)
    if path.endswith("-matmul"):
        monkeypatch.setattr(_cblas, "_found", [None])
    calls = []  # (the path really runs: the modules whose weight_grad ran)
    for spied in (conv_rows, conv_direct, conv_winograd, conv_phase, conv_depthwise):
        monkeypatch.setattr(spied, "weight_grad", lambda *a, _m=spied, _o=spied.weight_grad:
                            calls.append(_m) or _o(*a))
    args = dict(args)
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal(args.pop("x")), dtype=tg.float32)
    w = tg.tensor(rng.standard_normal(args.pop("w")), dtype=tg.float32, requires_grad=True)
    conv = C.conv1d if x.ndim == 3 else C.conv2d
    grads = set()
    with impl("numba"):
        upstream = None
        for _ in range(REPEATS):
            w.grad = None
            y = conv(x, w, **args)
            if upstream is None:
                upstream = tg.tensor(rng.standard_normal(y.shape), dtype=tg.float32)
            y.backward(upstream)
            grads.add(w.grad.numpy().tobytes())
    assert calls == ([module] * REPEATS if module is not None else [])
    assert len(grads) == 1, f"{path}: {len(grads)} different weight gradients in {REPEATS} runs"


@pytest.mark.parametrize("kept_per_thread", [0, 1, 100])
def test_sum_chunks_adds_in_chunk_order_whoever_finishes_first(monkeypatch, kept_per_thread):
    """Chunk 0 finishes last (it waits until a later chunk comes to add): the partials
    still reach the total in chunk order (in float32, 1e8 + 1 - 1e8 + ... depends on
    it), the early ones kept for their turn (as many as allowed) or waiting for it."""
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(chunks, "KEPT_PER_THREAD", kept_per_thread)
    values = np.array([1e8, 1, -1e8, 1, 3, -2, 0.5, 7], dtype=np.float32)
    expected = np.zeros(1, np.float32)
    for value in values:
        expected += value
    later_came, kept = threading.Event(), []

    def work(slot, start, stop, add):
        if start == 0:
            assert later_came.wait(timeout=10), "the helper thread never took part"
        else:
            later_came.set()
        if not add(0, values[start:stop].copy()):
            kept.append(start)

    total = np.zeros(1, np.float32)
    chunks.sum_chunks(work, [(i, i + 1) for i in range(len(values))], [total])
    assert total.tobytes() == expected.tobytes()
    assert bool(kept) == (kept_per_thread > 0)


@pytest.mark.parametrize("raises", [False, True])
def test_sum_chunks_passes_over_a_total_not_added_to_and_a_chunk_that_raised(monkeypatch,
                                                                             raises):
    """A chunk that adds nothing to a total, or raises before it adds, does not hold up
    the chunks after it (with no partial kept they wait for its turn); the error
    reaches the caller."""
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    monkeypatch.setattr(chunks, "KEPT_PER_THREAD", 0)

    chunk_4_started = threading.Event()

    def work(slot, start, stop, add):
        chunk_4_started.set() if start == 4 else None
        if start % 2:
            add(1, np.ones(1))
        if raises and start == 3:  # (once chunk 4, on the other thread, waits for its turn)
            chunk_4_started.wait(timeout=10)
            raise RuntimeError("chunk 3")
        add(0, np.ones(1))

    totals, outcome = [np.zeros(1), np.zeros(1)], []

    def call():  # (on its own thread, so that a lost turn fails the test, not hangs it)
        try:
            chunks.sum_chunks(work, [(i, i + 1) for i in range(8)], totals)
            outcome.append(None)
        except RuntimeError as error:
            outcome.append(error)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(timeout=60)
    assert not caller.is_alive(), "sum_chunks hung: a chunk's turn was never passed on"
    if raises:
        assert "chunk 3" in str(outcome[0])
    else:
        assert outcome == [None]
        assert (totals[0][0], totals[1][0]) == (8, 4)


def test_two_training_runs_give_the_same_weights(two_threads):
    """A few Adam steps of a small conv net (strided, 3x3 and 1-D layers) at two threads,
    twice from the same seed: the same weights bit for bit."""
    def train():
        tg.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 16, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                            nn.Conv2d(16, 16, 3, padding=1), nn.LeakyReLU(0.2),
                            nn.Conv2d(16, 8, 4, stride=2, padding=1))
        opt = tg.optim.Adam(net.parameters(), lr=1e-3)
        rng = np.random.default_rng(1)
        for _ in range(3):
            x = tg.tensor(rng.standard_normal((16, 3, 16, 16)), dtype=tg.float32)
            loss = (net(x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return [p.numpy().tobytes() for p in net.parameters()]

    with impl("numba"):
        assert train() == train()
