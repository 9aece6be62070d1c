"""Issue 11: every bad input of `tinygen train / sample / eval / info` is one
`tinygen COMMAND: error: ...` line (or argparse's usage + error) naming the argument,
exit code 1 or 2, no traceback, and leaves the files already there unchanged.

One table, run in-process (fast); Ctrl-C is simulated by raising KeyboardInterrupt
where a real SIGINT would land (test_kill_resume.py sends real signals)."""
import hashlib

import pytest

from tinygen.cli import main

VAE = ["--limit", "64", "--batch-size", "32", "--test-limit", "20", "--n-samples", "4",
       "-o", "channels=[4,8]", "-o", "hidden=16", "-o", "latent_dim=2", "-o", "iwae_k=2",
       "-o", "eval_batch=10", "--no-progress"]
WAVENET = ["--batch-size", "4", "-o", "seconds=1.0", "-o", "sample_rate=2000",
           "-o", "window=64", "-o", "train_windows=8", "-o", "n_layers=2",
           "-o", "dilation_cycle=[1,2]", "-o", "residual_channels=4", "-o", "skip_channels=4",
           "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A trained tiny VAE run and an empty scratch directory; a file where a directory
    is expected; a garbage checkpoint."""
    base = tmp_path_factory.mktemp("cli-errors")
    vae = base / "vae"
    assert main(["train", "vae", "--epochs", "2", "--out", str(vae), *VAE]) == 0
    (base / "a-file").write_text("not a directory\n")
    garbage = base / "garbage"
    garbage.mkdir()
    (garbage / "checkpoint.npz").write_bytes(b"\x80\x04garbage that looks like a pickle")
    return base


def snapshot(base):
    return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(base.rglob("*")) if p.is_file()}


def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


def disk_full(file, *args, **kwargs):
    import errno

    file.write(b"PK\x03\x04 some bytes first")
    raise OSError(errno.ENOSPC, "No space left on device")


# (argv with {vae}/{base} placeholders, expected exit code, text the message must hold,
#  monkeypatches: (module path, attribute, value), environment)
CASES = [
    # --- train: numbers and options ---------------------------------------------------
    ("train vae --n-samples 0", 2, "argument --n-samples: expected a positive integer"),
    ("train vae --n-samples -3", 2, "argument --n-samples: expected a positive integer"),
    ("train vae --epochs 0", 2, "argument --epochs: expected a positive integer"),
    ("train vae --out {base}/t1 -o latent_dim=3.5", 1, "-o latent_dim=3.5: latent_dim must be a positive integer"),
    ("train vae --out {base}/t1 -o latent_dim=100000000", 1, "-o latent_dim=100000000: latent_dim must be <= 65536"),
    ("train vae --out {base}/t1 -o iwae_k=0", 1, "-o iwae_k=0: iwae_k must be a positive integer"),
    ("train dcgan --out {base}/t1 -o fd_samples=-5", 1, "-o fd_samples=-5: fd_samples must be a non-negative integer"),
    ("train wavenet --out {base}/t1 -o window=0", 1, "-o window=0: window must be a positive integer"),
    ("train wavenet --out {base}/t1 -o quantization=1", 1, "-o quantization=1: quantization must be an integer >= 2"),
    ("train vae --out {base}/t1 -o epochs=3", 2, "-o epochs=...: use --epochs instead"),
    ("train vae --out {base}/t1 -o sample_mode=blurry", 1, "-o sample_mode=blurry: sample_mode must be one of mean, sample"),
    ("train vae --out {base}/t1 -o depth=3", 1, "unknown option 'depth'"),
    ("train vae -o width", 2, "expected KEY=VALUE"),
    ("train no-such-model", 2, "unknown model 'no-such-model'"),
    # --- train: where it writes, resuming ---------------------------------------------
    ("train vae --out {base}/a-file", 1, "--out '{base}/a-file' is a file, not a directory"),
    ("train vae --out /proc/tinygen-run", 1, "--out '/proc/tinygen-run': cannot create it"),
    ("train vae --out {vae}", 1, "already exists: pass --resume"),
    ("train vae --out {vae} --resume --overwrite", 1, "pass one of them"),
    ("train vae --out {vae} --resume --epochs 3 --batch-size 8", 1, "cannot change 'batch_size' when resuming"),
    ("train vae --out {vae} --resume --epochs 1", 1, "--epochs 1: the run in '{vae}' has already trained 2 epochs"),
    ("train dcgan --out {vae} --resume", 1, "checkpoint of model 'vae', not 'dcgan'"),
    ("train vae --out {base}/nothing --resume", 1, "no checkpoint to resume from"),
    ("train vae --out {base}/garbage --resume", 1, "'{base}/garbage/checkpoint.npz' is not an npz archive"),
    ("train vae --out {base}/t1 --data {base}/nowhere", 1, "Fashion-MNIST not found"),
    # --- sample -----------------------------------------------------------------------
    ("sample --run {vae} --n 0", 2, "argument --n: expected a positive integer"),
    ("sample --run {vae} --n -1", 2, "argument --n: expected a positive integer"),
    ("sample --run {vae} --nrow 0", 2, "argument --nrow: expected a positive integer"),
    ("sample --run {vae} --kind completions", 1, "--kind completions: model 'vae' has no --kind completions"),
    ("sample --run {vae} --out {base}/x.jpg", 1, "--out '{base}/x.jpg': image grids are written as PNG"),
    ("sample --run {vae} --out {base}/a-file/x.png", 1, "--out '{base}/a-file/x.png': cannot create directory"),
    ("sample --run {vae} --out {vae}", 1, "is a directory; give a file name"),
    ("sample --run {vae} --temperature 0.5", 1, "--temperature applies to audio models only"),
    ("sample --run {base}/garbage", 1, "is not an npz archive"),
    ("sample --run {base}/nope", 1, "no such run directory"),
    # --- eval -------------------------------------------------------------------------
    ("eval --run {vae} --iwae-k 0", 2, "argument --iwae-k: expected a positive integer"),
    ("eval --run {vae} --iwae-k -5", 2, "argument --iwae-k: expected a positive integer"),
    ("eval --run {vae} -o iwae_k=1.5", 1, "-o iwae_k=1.5: iwae_k must be a positive integer"),
    ("eval --run {vae} -o depth=2", 1, "unknown option(s) 'depth'"),
    ("eval --run {base}/garbage", 1, "is not an npz archive"),
]
# Ctrl-C and the environment need a patch or a variable
SPECIAL = [
    ("eval --run {vae}", 130, "tinygen eval: interrupted; metrics.json is unchanged",
     ("tinygen.models.vae.experiment.VAEExperiment", "evaluate", interrupt), {}),
    ("sample --run {vae}", 130, "tinygen sample: interrupted; nothing was written",
     ("tinygen.models.vae.experiment.VAEExperiment", "sample", interrupt), {}),
    ("train vae --out {base}/t2", 130, "interrupted before the first epoch ended",
     ("tinygen.models.vae.experiment.VAEExperiment", "train_step", interrupt), {}),
    ("train vae --out {base}/t1", 1, "TINYGEN_CPU_IMPL='foo' is not a CPU kernel implementation",
     None, {"TINYGEN_CPU_IMPL": "foo"}),
    ("sample --run {vae}", 1, "TINYGEN_CPU_IMPL='foo'", None, {"TINYGEN_CPU_IMPL": "foo"}),
    ("train vae --out {base}/t1", 1, "cannot write '{base}/t1/checkpoint.npz': No space left",
     ("numpy", "savez", disk_full), {}),
]


def _patch(monkeypatch, patch):
    if patch is None:
        return
    import importlib

    where, attribute, value = patch
    if "." not in where:
        monkeypatch.setattr(importlib.import_module(where), attribute, value)
        return
    module_name, _, cls_name = where.rpartition(".")
    monkeypatch.setattr(getattr(importlib.import_module(module_name), cls_name), attribute,
                        value)


@pytest.mark.parametrize("argv, code, message, patch, env",
                         [(*c, None, {}) for c in CASES] + SPECIAL,
                         ids=[c[0] for c in CASES + SPECIAL])
def test_bad_input_is_one_error_line(runs, argv, code, message, patch, env, capsys,
                                     monkeypatch):
    from tinygen.backend import kernels

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if "TINYGEN_CPU_IMPL" in env:
        monkeypatch.setattr(kernels, "_selected", {})  # read the variable again
    _patch(monkeypatch, patch)
    monkeypatch.setenv("TINYGEN_OFFLINE", "1")
    vae, base = runs / "vae", runs
    args = argv.format(vae=vae, base=base).split()
    if args[:2] == ["train", "vae"] and "--resume" not in args:
        args = args[:2] + VAE + args[2:]  # the case's own options come last and win
    before = snapshot(base)
    try:
        rc = main(args)
    except SystemExit as e:  # argparse's errors
        rc = e.code
    err = capsys.readouterr().err
    message = message.format(vae=vae, base=base)
    assert rc == code, err
    assert message in err, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    if code == 2 and lines[0].startswith("usage:"):
        lines = [line for line in lines if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, err
    assert lines[0].startswith((f"tinygen {args[0]}: error:", f"tinygen {args[0]}: interrupted",
                                f"tinygen {args[0]} {args[1]}: error:")) or \
        (code == 2 and "error:" in lines[0]), err
    after = snapshot(base)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing changed
    assert not [k for k in after if k not in before and not k.startswith(("t1/", "t2/"))]
    assert not [k for k in after if k.endswith(".tmp")]  # no temp file left behind


def test_info_reports_a_bad_cpu_impl_instead_of_crashing(monkeypatch, capsys):
    from tinygen.backend import kernels

    monkeypatch.setenv("TINYGEN_CPU_IMPL", "foo")
    monkeypatch.setattr(kernels, "_selected", {})
    assert main(["info"]) == 0
    assert "cpu kernels: error: TINYGEN_CPU_IMPL='foo'" in capsys.readouterr().out


def test_resume_with_all_epochs_done_says_so(runs, capsys):
    vae = runs / "vae"
    before = snapshot(vae)
    assert main(["train", "vae", "--out", str(vae), "--resume", "--epochs", "2",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "nothing to train" in out and "wrote" not in out
    assert snapshot(vae) == before
