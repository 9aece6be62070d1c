"""``tinygen train``, ``tinygen sample`` and ``tinygen eval``: the shared training runner
(``tinygen.training``) on the command line.

    tinygen train vae --epochs 10 --out runs/vae          # checkpoint, PNGs, metrics.json
    tinygen train vae --epochs 20 --out runs/vae --resume # on from the last epoch
    tinygen train vae --epochs 5 --out runs/vae-ft --init-from runs/vae -o train_k=5  # fine-tune
    tinygen sample --run runs/vae --n 64 --kind reconstructions
    tinygen sample --run runs/wavenet --n 2 --temperature 0.9 --out x.wav  # x_0.wav, x_1.wav
    tinygen eval --run runs/vae --iwae-k 5000
    tinygen eval --run runs/wavenet --audio data/speech/test  # bits/sample on WAV files

Models come from the registry in ``tinygen.models`` (``tinygen train --help`` lists
them). Options a model defines itself (its ``default_config``) are set with
``-o KEY=VALUE`` (VALUE read as JSON when it parses, else as a string).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RUN_FILES = ("checkpoint.npz (latest epoch), samples.png and samples_epochNNN.png, "
             "loss.png, metrics.json")


def _models() -> str:
    try:
        from tinygen.models import EXPERIMENTS, _load_all

        _load_all()
        return ", ".join(sorted(EXPERIMENTS))
    except Exception as exc:  # a broken model module must not break `tinygen info`
        return f"(the model registry failed to load: {type(exc).__name__}: {exc})"


def _key_value(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def _limit(text: str):
    if text.lower() in ("all", "none"):
        return None
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}")
    return n


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _fail(command: str, exc: BaseException, code: int = 1) -> int:
    print(f"tinygen {command}: error: {exc}", file=sys.stderr)
    return code


def _interrupted(command: str, consequence: str) -> int:
    print(f"\ntinygen {command}: interrupted; {consequence}", file=sys.stderr)
    return 130


def _errors():
    from tinygen.backend.kernels import KernelImplError
    from tinygen.data import DataError
    from tinygen.serialization import AtomicWriteError, CheckpointError
    from tinygen.training import ConfigError, DeviceError

    from tinygen.distributed import DistributedError

    return (DataError, CheckpointError, ConfigError, DeviceError, AtomicWriteError,
            KernelImplError, DistributedError)


# --- train ----------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from tinygen.models import get_experiment
    from tinygen.training import train

    try:
        get_experiment(args.model)
    except ValueError as exc:
        return _fail("train", exc, 2)
    options = {key: getattr(args, key) for key in
               ("epochs", "batch_size", "lr", "seed", "device", "dataset", "data", "limit",
                "test_limit", "n_samples") if hasattr(args, key)}
    from tinygen.training.options import FLAGS

    flags = set(options) | set(FLAGS) | {"device", "dataset", "data"}
    for key, value in args.option or []:  # a repeated -o: the last one wins
        if key in flags:
            return _fail("train", f"-o {key}=...: use --{key.replace('_', '-')} instead", 2)
        options[key] = value
    out = args.out or f"runs/{args.model}"
    try:
        result = train(args.model, options, out=out, resume=args.resume,
                       overwrite=args.overwrite, progress=not args.no_progress,
                       distributed=args.distributed, init_from=args.init_from)
    except _errors() as exc:
        code = _fail("train", exc)
        if args.distributed:  # the other ranks would wait for this one forever
            from tinygen.distributed import abort_job

            abort_job(code)
        return code
    except KeyboardInterrupt:
        from tinygen.training import CHECKPOINT_NAME

        if (Path(out) / CHECKPOINT_NAME).is_file():
            print(f"\ntinygen train: interrupted; continue from the last trained epoch "
                  f"with\n  tinygen train {args.model} --out {out} --resume", file=sys.stderr)
        else:
            print("\ntinygen train: interrupted before the first epoch ended; nothing was "
                  "saved (run the same command again to start over)", file=sys.stderr)
        return 130
    except BaseException:
        if args.distributed:
            import traceback

            traceback.print_exc()
            from tinygen.distributed import abort_job

            abort_job(1)
        raise
    if args.distributed:
        from tinygen.distributed import world_rank

        if world_rank() != 0:  # rank 0 reports for the job
            return 0
    from tinygen.training import METRICS_NAME, read_metrics

    files = read_metrics(result.out / METRICS_NAME).get("files", {})
    if result.new_epochs == 0 and args.resume:
        print(f"nothing to train: {result.out} has all {len(result.history.epochs)} epochs "
              f"already (--epochs is the new total)")
    else:
        print(f"wrote {result.out}/: " + ", ".join([*files.values(), METRICS_NAME]))
    if result.metrics:
        print(json.dumps(result.metrics, indent=2))
    return 0


# --- sample ---------------------------------------------------------------------------------

def cmd_sample(args: argparse.Namespace) -> int:
    from tinygen.training import sample_run

    try:
        written = sample_run(args.run, n=args.n, kind=args.kind, seed=args.seed, out=args.out,
                             nrow=args.nrow, device=args.device, data=args.data,
                             temperature=args.temperature, length=args.length,
                             progress=not args.no_progress)
    except _errors() as exc:
        return _fail("sample", exc)
    except KeyboardInterrupt:
        return _interrupted("sample", "nothing was written")
    for path in written if isinstance(written, list) else [written]:
        print(f"wrote {path}")
    return 0


# --- eval -----------------------------------------------------------------------------------

def cmd_eval(args: argparse.Namespace) -> int:
    from tinygen.training import evaluate_run

    options = dict(args.option or [])
    if args.iwae_k is not None:
        options["iwae_k"] = args.iwae_k
    if hasattr(args, "test_limit"):
        options["test_limit"] = args.test_limit
    if args.audio is not None:          # audio models: another folder of WAV files, whole
        options["test_audio"] = args.audio
        options.setdefault("test_limit", None)
    try:
        metrics = evaluate_run(args.run, seed=args.seed, options=options, device=args.device,
                               data=args.data, update_metrics=not args.no_update,
                               progress=not args.no_progress)
    except _errors() as exc:
        return _fail("eval", exc)
    except KeyboardInterrupt:
        return _interrupted("eval", "metrics.json is unchanged")
    print(json.dumps(metrics, indent=2))
    return 0


# --- parsers --------------------------------------------------------------------------------

class _ModelHelp(argparse.Action):
    """``tinygen train MODEL --help``: the usual help, then MODEL's ``-o`` options (name,
    type, default, meaning) and its defaults of the common flags."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show this help (after MODEL: also that model's -o options) and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        model = getattr(namespace, "model", None)
        if model:
            print()
            print(model_options_help(model))
        parser.exit()


def model_options_help(model: str) -> str:
    from tinygen.models import get_experiment
    from tinygen.training.options import FLAGS, describe_options
    from tinygen.training import BASE_CONFIG

    try:
        cls = get_experiment(model)
    except ValueError as exc:
        return f"({exc})"
    defaults = cls.default_config()
    lines = [f"options of {model} (-o KEY=VALUE, VALUE as JSON: 16, 0.5, true, null, "
             f"[32,64], mel):"]
    lines += ["  " + line for line in describe_options(defaults, skip=BASE_CONFIG)]
    common = {**BASE_CONFIG, **defaults}
    flags = [f"--{k.replace('_', '-')} {'all' if common[k] is None else common[k]}"
             for k in FLAGS if k in common]
    lines.append(f"defaults of the common flags for {model}: " + ", ".join(flags))
    return "\n".join(lines)


def add_parser(commands) -> None:
    models = _models()
    S = argparse.SUPPRESS  # options not given stay out of the config (defaults come from
    #                        the runner and the model; on --resume, from the checkpoint)
    train = commands.add_parser(
        "train", help="train a model; writes checkpoints, sample grids, loss plot, metrics",
        description=f"Train a model on Fashion-MNIST. Models: {models}. Writes to --out: "
                    f"{RUN_FILES}. `tinygen train MODEL --help` lists MODEL's -o options.",
        argument_default=S, add_help=False)
    train.add_argument("-h", "--help", action=_ModelHelp)
    train.add_argument("model", help=f"one of: {models}")
    train.add_argument("--dataset", choices=["fashion-mnist"],
                       help="the data set (default fashion-mnist)")
    train.add_argument("--epochs", type=_positive, help="epochs in total (with --resume: the "
                       "new total)")
    train.add_argument("--batch-size", type=_positive)
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--seed", type=int, help="seeds init, batches and sampling "
                       "(default 0)")
    train.add_argument("--device", choices=["cpu", "cuda"], help="default cpu")
    train.add_argument("--limit", type=_limit, metavar="N",
                       help="train on the first N images only (quick runs)")
    train.add_argument("--test-limit", type=_limit, metavar="N",
                       help="evaluate on the first N test images only")
    train.add_argument("--n-samples", type=_positive, metavar="N", help="images per sample grid")
    train.add_argument("--data", metavar="DIR", help="directory holding the four Fashion-MNIST "
                       "IDX files (default: $TINYGEN_DATA, ~/.cache/tinygen, "
                       "/usr/share/datasets/fashion-mnist, download, embedded subset)")
    train.add_argument("-o", "--option", type=_key_value, action="append", default=[],
                       metavar="KEY=VALUE", help="a model-specific option, e.g. -o "
                       "latent_dim=16 (`tinygen train MODEL --help` lists them)")
    train.add_argument("--out", default=None, metavar="DIR",
                       help="run directory (default runs/MODEL)")
    train.add_argument("--resume", action="store_true", default=False,
                       help="continue the run in --out from its checkpoint, bit for bit")
    train.add_argument("--overwrite", action="store_true", default=False,
                       help="start afresh even though --out holds a checkpoint")
    train.add_argument("--init-from", default=None, metavar="RUN",
                       help="start from the weights of another run of this model (its "
                            "directory or checkpoint.npz) instead of a fresh initialisation: "
                            "a fine-tune with this run's options; optimizer, step count, "
                            "schedules and random streams start afresh")
    train.add_argument("--no-progress", action="store_true", default=False,
                       help="no progress bars")
    train.add_argument("--distributed", action="store_true", default=False,
                       help="data-parallel over the ranks of an MPI job (mpirun -n R "
                            "tinygen train ... --distributed): --batch-size is the global "
                            "batch, split evenly; only rank 0 writes --out")
    train.set_defaults(func=cmd_train)

    from tinygen.training import KINDS

    sample = commands.add_parser(
        "sample", help="write a grid of samples (or WAV files) from a trained run",
        description="Load a run's checkpoint and write a PNG grid of samples (VAEs also "
                    "reconstructions and interpolations of test images); audio models "
                    "(wavenet) write one 16-bit WAV file per sample, a locally conditioned "
                    "one following the features of held-out audio.")
    sample.add_argument("--run", required=True, metavar="DIR",
                        help="run directory (or its checkpoint.npz)")
    sample.add_argument("--n", type=_positive, default=None,
                        help="number of images (default 64) or audio clips (default 1)")
    sample.add_argument("--kind", choices=KINDS, default="samples")
    sample.add_argument("--out", default=None, metavar="FILE",
                        help="default: RUN/KIND_seedSEED.png, or .wav for audio; several "
                             "audio clips go to FILE's stem + _0, _1, ... .wav (its "
                             "directory is created)")
    sample.add_argument("--temperature", type=float, default=None,
                        help="audio: sample from softmax(logits / T) (default 1)")
    sample.add_argument("--length", type=_positive, default=None, metavar="SAMPLES",
                        help="audio: samples per clip (default: one second, for a "
                             "locally conditioned model at most the held-out audio's n-th part)")
    sample.add_argument("--nrow", type=_positive, default=None, help="images per row")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="default: the run's device")
    sample.add_argument("--data", default=None, metavar="DIR",
                        help="data directory, for reconstructions/interpolations")
    sample.add_argument("--no-progress", action="store_true", help="no progress bar")
    sample.set_defaults(func=cmd_sample)

    ev = commands.add_parser(
        "eval", help="evaluate a trained run; updates its metrics.json",
        description="Load a run's checkpoint, run the model's evaluation on the test split "
                    "and merge the metrics into RUN/metrics.json.  A VAE's evaluation keeps "
                    "its finished batches in RUN/eval-progress.npz; the same command again "
                    "resumes one that was stopped, with the same numbers.")
    ev.add_argument("--run", required=True, metavar="DIR",
                    help="run directory (or its checkpoint.npz)")
    ev.add_argument("--iwae-k", type=_positive, default=None, metavar="K",
                    help="importance samples for the VAE's IWAE bound")
    ev.add_argument("--test-limit", type=_limit, default=argparse.SUPPRESS, metavar="N",
                    help="first N test images, or 'all' (default: as in training)")
    ev.add_argument("--audio", default=None, metavar="DIR",
                    help="audio models: evaluate on the 16-bit WAV files (*.wav, *.WAV) of "
                         "DIR, at the model's sample rate, instead of the held-out part "
                         "(all of them unless --test-limit)")
    ev.add_argument("-o", "--option", type=_key_value, action="append", default=[],
                    metavar="KEY=VALUE", help="a model-specific evaluation option")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", choices=["cpu", "cuda"], default=None)
    ev.add_argument("--data", default=None, metavar="DIR", help="data directory")
    ev.add_argument("--no-update", action="store_true",
                    help="print the metrics without touching metrics.json")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.set_defaults(func=cmd_eval)
