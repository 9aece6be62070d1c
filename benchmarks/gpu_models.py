"""tinygen on the GPU against PyTorch on the GPU: model training steps and WaveNet
generation, with the CPU suite's PyTorch twins (``benchmarks/cpu_suite/torch_twins.py``).

    python -m benchmarks.gpu_models [--steps 10] [--blocks 5] [--json PATH]
                                    [--device cuda|cpu]

Rows:
- training steps (forward, backward, Adam) of the gated PixelCNN (h=48, 8 layers,
  batch 32 and 128) and of WaveNet (10 layers, R=32, S=64, batch 8 x 1024 samples);
- WaveNet generation (the same network), samples per second for 1 and 16 sequences:
  tinygen's step kernel (one launch per layer and one for the heads) against a PyTorch
  twin that keeps one queue of past activations per layer (the "fast WaveNet" scheme,
  a 1x1-conv step per layer).  Both copy the logits to the host and draw the next code
  there with ``sample_codes`` and the same uniforms, as ``WaveNet.generate`` does.

Both sides start from the same weights; before anything is timed, the first step's
losses (training) or the first codes drawn (generation) are compared.  Timing: blocks of
``--steps`` steps, each block ended by a device synchronisation and timed on the host
clock, the two sides alternating block by block; the median block over ``--blocks``.
``--device cpu`` runs the same on the CPU (a dry run of this file without a GPU).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.cpu_suite import torch_twins as T
from benchmarks.cpu_suite.models import _images, _np_state as _state

PIXELCNN = dict(hidden=48, n_layers=8)
WAVENET = dict(n_layers=10, residual_channels=32, skip_channels=64)


def _on(params, torch, device):
    """The twin's parameters moved in place to ``device`` (its forward looks them up
    by name at each call)."""
    for name, p in params.items():
        params[name] = p.detach().to(device).requires_grad_(True)
    return params


class Sync:
    def __init__(self, device):
        if device == "cuda":
            import cupy
            import torch

            self._calls = (cupy.cuda.Device().synchronize, torch.cuda.synchronize)
        else:
            self._calls = ()

    def __call__(self):
        for call in self._calls:
            call()


def timed(sides, steps, blocks, sync):
    """Median seconds per step of each side (name -> step), alternating block by block."""
    times = {name: [] for name in sides}
    for name, step in sides.items():   # warm-up: compilation, autotuning, allocator
        step()
        sync()
    for b in range(blocks):
        order = list(sides) if b % 2 == 0 else list(reversed(sides))
        for name in order:
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                sides[name]()
            sync()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


# --- training steps -----------------------------------------------------------------------------
def training_step(loss_fn, optimizer):
    """One step (forward, backward, optimizer) returning the loss; the same code for
    both frameworks, whose optimizers share zero_grad() and step()."""
    def step():
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    return step


def pixelcnn_step(tg, torch, device, batch):
    from tinygen.models.pixelcnn import GatedPixelCNN

    m = GatedPixelCNN(channels=1, hidden=PIXELCNN["hidden"], n_layers=PIXELCNN["n_layers"])
    m.reset_parameters(np.random.default_rng(0))
    images = _images(batch)
    state, x = _state(m), m.scale(images[:, None]).numpy()
    first = [layer.first for layer in m.layers]
    if device != "cpu":
        m.to(device=device)
    ours = training_step(lambda: m.nll(images).mean(),
                         tg.optim.Adam(m.parameters(), lr=1e-3))
    forward, params = T.gated_pixelcnn(state, first)
    _on(params, torch, device)
    tx = torch.tensor(x, device=device)
    target = torch.tensor(images.astype(np.int64), device=device)
    theirs = training_step(lambda: T.pixel_nll(forward, tx, target),
                           torch.optim.Adam(params.values(), lr=1e-3))
    return (f"gated PixelCNN h={PIXELCNN['hidden']} L={PIXELCNN['n_layers']} step, "
            f"batch {batch}"), ours, theirs


def wavenet_model(tg, device):
    from tinygen.models.wavenet.model import WaveNet

    m = WaveNet(WAVENET["n_layers"], residual_channels=WAVENET["residual_channels"],
                skip_channels=WAVENET["skip_channels"])
    m.reset_parameters(np.random.default_rng(0))
    state = _state(m)
    if device != "cpu":
        m.to(device=device)
    return m, state


def wavenet_step(tg, torch, device, batch=8, window=1024):
    import torch.nn.functional as F

    m, state = wavenet_model(tg, device)
    codes = np.random.default_rng(1).integers(0, 256, (batch, window))
    onehot = m.shifted_one_hot(codes)
    ours = training_step(lambda: m.loss(codes), tg.optim.Adam(m.parameters(), lr=1e-3))
    forward, params = T.wavenet(state, list(m.dilations))
    _on(params, torch, device)
    tx = torch.tensor(onehot, device=device)
    tcodes = torch.tensor(codes, device=device)
    theirs = training_step(lambda: F.cross_entropy(forward(tx), tcodes),
                           torch.optim.Adam(params.values(), lr=1e-3))
    return (f"WaveNet step L={WAVENET['n_layers']} R={WAVENET['residual_channels']} "
            f"S={WAVENET['skip_channels']}, batch {batch}x{window}"), ours, theirs


# --- generation ---------------------------------------------------------------------------------
class TorchWaveNetGenerator:
    """WaveNet generation in PyTorch with one queue of past inputs per layer: the output
    at t of a causal conv with taps j = 0..k-1 reads its input at t - (k-1-j) d, so the
    layer keeps the last (k-1) d inputs in a ring and a step is k small matmuls."""

    def __init__(self, torch, state, dilations, batch, device):
        self.torch, self.dilations, self.batch = torch, list(dilations), batch
        p = {k: torch.tensor(v, device=device) for k, v in state.items()}
        self.embed_w, self.embed_b = p["embed.weight"][:, :, 0], p["embed.bias"]   # (R, Q)
        self.layers = []
        for i, d in enumerate(self.dilations):
            w = p[f"dilated.{i}.weight"]                                     # (2R, R, k)
            k = w.shape[-1]
            span = max(d * (k - 1), 1)
            ring = torch.zeros((batch, w.shape[1], span), device=device, dtype=w.dtype)
            self.layers.append((d, k, w, p[f"dilated.{i}.bias"], p[f"residual.{i}.weight"][:, :, 0],
                                p[f"residual.{i}.bias"], p[f"skip.{i}.weight"][:, :, 0],
                                p[f"skip.{i}.bias"], ring, span))
        self.out1 = (p["out1.weight"][:, :, 0], p["out1.bias"])
        self.out2 = (p["out2.weight"][:, :, 0], p["out2.bias"])
        self.device, self.t = device, 0

    def step(self, previous):
        """Logits (B, Q) of the next sample given the previous codes (None: the start)."""
        torch = self.torch
        if previous is None:
            h = self.embed_b.expand(self.batch, -1)
        else:
            index = torch.as_tensor(previous, device=self.device)
            h = self.embed_w.T[index] + self.embed_b                          # (B, R)
        skip = 0
        t = self.t
        for d, k, w, b, res_w, res_b, skip_w, skip_b, ring, span in self.layers:
            z = b + h @ w[:, :, k - 1].T
            for m in range(1, k):                 # tap k-1-m reads the input m*d back
                z = z + ring[:, :, (t - m * d) % span] @ w[:, :, k - 1 - m].T
            ring[:, :, t % span] = h
            a, g = z.chunk(2, dim=1)
            gated = torch.tanh(a) * torch.sigmoid(g)
            skip = skip + gated @ skip_w.T + skip_b
            h = h + gated @ res_w.T + res_b
        self.t += 1
        out = torch.relu(torch.relu(skip) @ self.out1[0].T + self.out1[1])
        return out @ self.out2[0].T + self.out2[1]


def generation(tg, torch, device, batch, n_samples):
    from tinygen.models.wavenet.model import sample_codes

    m, state = wavenet_model(tg, device)

    def ours_codes(n, seed):
        return m.generate(n, np.random.default_rng(seed), n_sequences=batch)

    def theirs_codes(n, seed):
        gen = TorchWaveNetGenerator(torch, state, m.dilations, batch, device)
        rng = np.random.default_rng(seed)
        out = np.empty((batch, n), dtype=np.int64)
        previous = None
        with torch.no_grad():
            for t in range(n):
                logits = gen.step(previous).double().cpu().numpy()
                out[:, t] = previous = sample_codes(logits, 1.0, rng.random(batch))
        return out

    return (f"WaveNet generation L={WAVENET['n_layers']} R={WAVENET['residual_channels']} "
            f"S={WAVENET['skip_channels']}, {batch} sequence(s), {n_samples} samples"), \
        ours_codes, theirs_codes


def generation_row(tg, torch, device, batch, n_samples, sync, check=64, runs=3):
    """Both generators' first ``check`` codes compared, then ``runs`` generations of
    ``n_samples`` each, alternating which side goes first; median seconds per side."""
    name, ours, theirs = generation(tg, torch, device, batch, n_samples)
    a, b = ours(check, 7), theirs(check, 7)
    same = int((a == b).all(axis=0).sum())      # steps whose codes agree on every row
    sides = {"tinygen": ours, "torch": theirs}
    for run in sides.values():
        run(8, 1)                               # warm-up
    seconds = {side: [] for side in sides}
    for rep in range(runs):
        for side in (sides if rep % 2 == 0 else reversed(list(sides))):
            sync()
            start = time.perf_counter()
            sides[side](n_samples, rep)
            sync()
            seconds[side].append(time.perf_counter() - start)
    t = {side: statistics.median(s) for side, s in seconds.items()}
    return {"row": name, "kind": "generation", "codes_agreeing": f"{same}/{check}",
            "agree": same == check,
            "tinygen_samples_per_s": batch * n_samples / t["tinygen"],
            "torch_samples_per_s": batch * n_samples / t["torch"],
            "tinygen_ms": t["tinygen"] / n_samples * 1e3,
            "torch_ms": t["torch"] / n_samples * 1e3, "ratio": t["tinygen"] / t["torch"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks per side")
    parser.add_argument("--samples", type=int, default=400, help="samples per generation run")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="instead of the table: STEPS tinygen steps of the gated PixelCNN "
                             "(batch 32) under cProfile, the functions that take the host's "
                             "time (a GPU step is host-bound when its time does not grow with "
                             "the batch)")
    args = parser.parse_args(argv)
    import torch

    import tinygen as tg

    if args.device == "cuda":
        if not (tg.cuda.is_available() and torch.cuda.is_available()):
            print("benchmarks.gpu_models needs a CUDA GPU for tinygen (cupy) and PyTorch",
                  file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    sync = Sync(args.device)
    if args.profile:
        profile_step(tg, torch, args.device, args.profile, sync)
        return 0
    rows, failures = [], 0
    builders = [("gated PixelCNN step, batch 32",
                 lambda: pixelcnn_step(tg, torch, args.device, 32)),
                ("gated PixelCNN step, batch 128",
                 lambda: pixelcnn_step(tg, torch, args.device, 128)),
                ("WaveNet step", lambda: wavenet_step(tg, torch, args.device))]
    for label, build in builders:
        try:
            name, ours, theirs = build()
            first = (float(ours().item()), float(theirs().item()))
            agree = abs(first[0] - first[1]) <= 2e-3 * abs(first[1]) + 2e-3
            t = timed({"tinygen": ours, "torch": theirs}, args.steps, args.blocks, sync)
            row = {"row": name, "kind": "training step", "first_loss": first, "agree": agree,
                   "tinygen_ms": t["tinygen"] * 1e3, "torch_ms": t["torch"] * 1e3,
                   "ratio": t["tinygen"] / t["torch"]}
        except Exception as exc:  # noqa: BLE001 - report and go on to the next row
            row = {"row": label, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
        failures += ("error" in row) or not row["agree"]
        print(_line(row), flush=True)
    for batch in (1, 16):
        try:
            rows.append(generation_row(tg, torch, args.device, batch, args.samples, sync))
        except Exception as exc:  # noqa: BLE001
            rows.append({"row": f"WaveNet generation, {batch} sequence(s)",
                         "error": f"{type(exc).__name__}: {exc}"})
        failures += ("error" in rows[-1]) or not rows[-1]["agree"]
        print(_line(rows[-1]), flush=True)
    if args.json:
        device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
        args.json.write_text(json.dumps({"device": device, "steps": args.steps,
                                         "blocks": args.blocks, "rows": rows}, indent=1) + "\n")
    return 1 if failures else 0


def profile_step(tg, torch, device, steps, sync, top=40):
    """Print where the host's time goes in ``steps`` tinygen training steps of the gated
    PixelCNN (batch 32), by own time and by cumulative time."""
    import cProfile
    import pstats

    name, ours, _ = pixelcnn_step(tg, torch, device, 32)
    ours()
    sync()
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(steps):
        ours()
    sync()
    profiler.disable()
    print(f"{name}: {steps} step(s) under cProfile, "
          f"{(time.perf_counter() - start) / steps * 1e3:.1f} ms per step")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top // 2)


def _line(row):
    if "error" in row:
        return f"FAILED {row['row']}: {row['error']}"
    agree = "" if row["agree"] else "  (SIDES DISAGREE)"
    extra = (f", {row['tinygen_samples_per_s']:.0f} vs {row['torch_samples_per_s']:.0f} samples/s"
             f", codes agreeing {row['codes_agreeing']}" if row["kind"] == "generation"
             else f", first loss {row['first_loss'][0]:.5f} vs {row['first_loss'][1]:.5f}")
    return (f"{row['row']}: tinygen {row['tinygen_ms']:.3f} ms, torch {row['torch_ms']:.3f} ms "
            f"per step, ratio {row['ratio']:.2f}{extra}{agree}")


if __name__ == "__main__":
    sys.exit(main())
