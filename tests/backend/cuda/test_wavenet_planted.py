"""The layer-per-launch WaveNet step (kernels/wavenet.cu) is race-free by construction: no
block reads what another block of the same launch writes, and the threads of a block
meet at a barrier between writing shared memory and reading it.  Each test here breaks
one of those rules in a copy of wavenet.cu and shows that the checked emulator
(emulation_check.h) reports it with the source line -- while the real file, run through
the same step, passes the same checker in test_wavenet_kernels.py."""
import re

import numpy as np
import pytest

from tinygen.backend.cuda_kernels import emulator
from tinygen.backend.cuda_kernels import wavenet as cuda_wavenet
from tinygen.backend.cuda_kernels.launch import launch, launch_each
from tinygen.backend.cuda_kernels.source import KernelSources, kernel_dir
from tinygen.backend.reference import wavenet as reference

GATHER_READ = "taps[i] = (double)my_ring[(base + slot) * R + r];"


def _mutant(tmp_path, old, new):
    """kernels/wavenet.cu with the one occurrence of ``old`` replaced by ``new``; returns
    (sources, text)."""
    text = (kernel_dir() / "wavenet.cu").read_text()
    assert text.count(old) == 1, f"the planted bug's target is gone from wavenet.cu: {old!r}"
    text = text.replace(old, new)
    path = tmp_path / "wavenet.cu"
    path.write_text(text)
    sources = KernelSources(kernel_dir(), files=[path])
    try:
        emulator.library(sources, check=True)
    except emulator.EmulatorUnavailable as exc:
        pytest.skip(str(exc))
    return sources, text


def _line(text, fragment):
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def _step_findings(sources, monkeypatch, rng):
    """The checker's findings of two steps of odd-sized weights (R 5 in 2 blocks per
    layer, k 3) run on ``sources``."""
    monkeypatch.setattr(cuda_wavenet, "launch",
                        lambda *args: launch(*args, sources=sources))
    monkeypatch.setattr(cuda_wavenet, "launch_each",
                        lambda *args: launch_each(*args, sources=sources))
    L, R, S, Q, k = 3, 5, 7, 11, 3
    w = lambda *shape: rng.standard_normal(shape) * 0.6  # noqa: E731
    weights = reference.StepWeights(
        embed=w(Q, R), embed_b=w(R), conv_w=w(L, k, 2 * R, R), conv_b=w(L, 2 * R),
        res_w=w(L, R, R), res_b=w(L, R), skip_w=w(L, S, R), skip_b=w(L, S), out1_w=w(S, S),
        out1_b=w(S), out2_w=w(Q, S), out2_b=w(Q), dilations=np.array([1, 3, 2]))
    assert cuda_wavenet._layer_blocks(cuda_wavenet.pack(weights)) == 2
    ring = cuda_wavenet.new_ring(weights, 2)
    with emulator.checking(True):
        try:
            for t in range(2):
                cuda_wavenet.step(weights, ring, t, np.array([-1, 3]))
        except emulator.EmulatorCheckError as error:
            return error.findings
    return []


def test_reading_the_tap_block_zero_writes_now_is_an_unfenced_cross_block_read(
        tmp_path, monkeypatch, rng):
    """Tap k-1 is h_l, taken from shared memory: read from the ring slot that block 0
    writes in the same launch, the other blocks would race with it."""
    sources, text = _mutant(tmp_path, "if (j == k - 1) {", "if (false) {")
    found = _step_findings(sources, monkeypatch, rng)
    unfenced = [f for f in found if f.startswith("unfenced:")]
    assert unfenced and "argument ring" in unfenced[0], found
    assert f"wavenet.cu:{_line(text, GATHER_READ)}" in unfenced[0]


def test_one_hidden_buffer_is_an_unfenced_cross_block_read(tmp_path, monkeypatch, rng):
    """Launch l reads h_{l-1} from one buffer while block 0 writes h_l to the other: with
    a single buffer the other blocks would read h_l or h_{l-1}, whichever came first."""
    sources, text = _mutant(tmp_path, "hidden + ((l - 1) % 2 * batch + b) * R",
                            "hidden + (l % 2 * batch + b) * R")
    found = _step_findings(sources, monkeypatch, rng)
    unfenced = [f for f in found if f.startswith("unfenced:")]
    assert unfenced and "argument hidden" in unfenced[0], found
    assert f"wavenet.cu:{_line(text, 'h[r] = h_before[r]')}" in unfenced[0]


def test_a_missing_barrier_after_the_tap_gather_is_a_race(tmp_path, monkeypatch, rng):
    text = (kernel_dir() / "wavenet.cu").read_text()
    gather_end = re.search(re.escape(GATHER_READ) + r"\n\s*\}\n\s*\}\n\s*__syncthreads\(\);\n",
                           text)
    assert gather_end, "the barrier after the tap gather is gone from wavenet.cu"
    old = gather_end.group(0)
    sources, text = _mutant(tmp_path, old, old.replace("__syncthreads();", ""))
    found = _step_findings(sources, monkeypatch, rng)
    races = [f for f in found if f.startswith(("race:", "uninitialised"))]
    assert races and any("taps" in f for f in races), found
