"""Train DCGAN, SN-GAN and WGAN-GP on the full Fashion-MNIST for the same number of
generator updates, then score each with FD-FMNIST; print a table beside the floor.

    python -m benchmarks.gan_fd_fmnist [--g-epochs 1] [--out-root runs] [--fd-samples 5000]
    python -m benchmarks.gan_fd_fmnist --skip-train --out-root runs     # evaluate only
    python -m benchmarks.gan_fd_fmnist --skip-eval --out-root runs      # train only

Budget: every model makes the same number of generator updates, ``--g-epochs``
epochs' worth (937 updates per epoch at batch 64).  DCGAN and SN-GAN update G
once per batch, so they train ``--g-epochs`` epochs; WGAN-GP updates G once per
n_critic=5 batches, so it trains 5x as many epochs (its critic sees 5x the data,
as in Gulrajani et al.'s recipe).  Training is the shared runner
(``tinygen.training.train``, the same as ``tinygen train NAME --epochs E --out
DIR``) with FD switched off per epoch (``fd_samples=0``); afterwards each final
checkpoint generates ``--fd-samples`` images from a fixed seed, scored against
the real test set, and the floor is the FD of as many real training images (and
of all 60000) against the test set.  Results: ``<out-root>/gan_fd_fmnist.json``.
"""
import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

MODELS = ("dcgan", "sngan", "wgan-gp")


def _parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--g-epochs", type=int, default=1,
                   help="generator updates, in epochs of a one-D-step-per-G-step GAN")
    p.add_argument("--out-root", default="runs")
    p.add_argument("--fd-samples", type=int, default=5000)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-eval", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p


def train_all(args):
    from tinygen.models import get_experiment
    from tinygen.training import train

    for name in args.models:
        n_critic = get_experiment(name).default_config()["n_critic"]
        epochs = args.g_epochs * n_critic
        start = time.perf_counter()
        train(name, {"epochs": epochs, "seed": args.seed, "fd_samples": 0},
              out=Path(args.out_root) / f"{name}_run", overwrite=True, progress=False)
        print(f"# trained {name}: {epochs} epoch(s) in {time.perf_counter() - start:.0f} s",
              flush=True)


def evaluate_all(args):
    from tinygen.metrics import fd_fmnist, fd_floor
    from tinygen.models import get_experiment
    from tinygen.models.classifier import load_or_train_classifier
    from tinygen.training import load_checkpoint, restore

    classifier = load_or_train_classifier()
    results = {"fd_samples": args.fd_samples, "classifier_test_accuracy":
               getattr(classifier, "test_accuracy", None), "models": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # never score against the embedded subset
        results["fd_floor_n"] = fd_floor(classifier=classifier, n_train=args.fd_samples)
        results["fd_floor_all_train"] = fd_floor(classifier=classifier)
    for name in args.models:
        run = Path(args.out_root) / f"{name}_run"
        state = load_checkpoint(run / "checkpoint.npz", model=name)
        exp = get_experiment(name)(state["config"])
        restore(state, exp, training=False)
        images = exp.generated_images(args.fd_samples, np.random.default_rng([args.seed, 99]))
        history = state["history"]
        epochs = history.get("epochs", []) if isinstance(history, dict) else []
        seconds = sum(float(e.get("seconds", 0.0)) for e in epochs)
        results["models"][name] = {
            "fd_fmnist": fd_fmnist(images, "test", classifier=classifier),
            "epochs": state["epoch"], "d_steps": int(np.asarray(state["extra"]["d_steps"])),
            "g_steps": int(np.asarray(state["extra"]["g_steps"])),
            "train_seconds": seconds,
            "seconds_per_d_step": seconds / max(int(state["step"]), 1),
        }
        print(f"# {name}: {results['models'][name]}", flush=True)
    out = Path(args.out_root) / "gan_fd_fmnist.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'model':<9} {'FD-FMNIST':>10} {'G updates':>10} {'D updates':>10} {'train s':>8}")
    for name, r in results["models"].items():
        print(f"{name:<9} {r['fd_fmnist']:>10.3f} {r['g_steps']:>10} {r['d_steps']:>10} "
              f"{r['train_seconds']:>8.0f}")
    print(f"floor (real train vs test): {results['fd_floor_n']:.3f} with "
          f"{args.fd_samples} train images, {results['fd_floor_all_train']:.3f} with all 60000")
    return results


def main(argv=None):
    args = _parser().parse_args(argv)
    if not args.skip_train:
        train_all(args)
    if not args.skip_eval:
        evaluate_all(args)


if __name__ == "__main__":
    main()
