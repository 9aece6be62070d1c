"""Shared by the models' tests."""
import numpy as np


def initialised(model, seed=0, scale=None):
    """``model`` with weights drawn from ``seed``, all but the VampPrior's pseudo-inputs
    scaled by ``scale`` (larger weights: a posterior far from the prior, a bound with a
    gap to close)."""
    model.reset_parameters(np.random.default_rng(seed))
    if scale is not None:
        for name, p in model.named_parameters():
            if not name.startswith("prior."):
                p.data *= scale
    return model


def binary_images(n, seed=1, p=0.3):
    return (np.random.default_rng(seed).random((n, 28, 28)) < p).astype(np.float64)


def assert_options_refused(capsys, out, argv, cases):
    """``tinygen <argv> --out OUT -o OPTION`` fails for each (OPTION, message) of
    ``cases`` with ``message`` on stderr, and OUT is never created."""
    from tinygen.cli import main

    for option, message in cases:
        assert main([*argv, "--out", str(out), "-o", option]) != 0, option
        assert message in capsys.readouterr().err, option
    assert not out.exists()
