"""``tinygen eval`` keeps a long evaluation's finished batches (eval_progress.py): one
stopped part-way resumes with the numbers an uninterrupted one gives; progress of
another evaluation is ignored; an unreadable progress file is named in the error."""
import numpy as np
import pytest

from tinygen.models.vae.model import VAE
from tinygen.training import evaluate_run, train
from tinygen.training.eval_progress import NAME

TINY = {"limit": 64, "batch_size": 32, "test_limit": 8, "n_samples": 4, "channels": [2, 4],
        "hidden": 8, "latent_dim": 2, "latent1_dim": 2, "iwae_k": 3, "eval_batch": 2,
        "epochs": 1}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train("vae-hier", TINY, out=out, progress=False, log=None)
    return out


def stop_after(monkeypatch, calls):
    """Make the bound raise on its call number ``calls`` + 1 (a process killed mid-way)."""
    real, count = VAE.iwae_bound, [0]

    def bound(self, *args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt("stopped")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(VAE, "iwae_bound", bound)


def without_time(metrics):
    return {k: v for k, v in metrics.items() if k not in ("eval_seconds", "eval_resumed_at")}


def test_a_stopped_evaluation_resumes_with_the_same_numbers(run, monkeypatch):
    options = {"iwae_k": 7, "test_limit": 8}
    straight = evaluate_run(run, seed=3, options=options)
    assert not (run / NAME).exists()                  # removed once finished
    with monkeypatch.context() as m:
        stop_after(m, 3)                              # batches of 2 images: 6 done
        with pytest.raises(KeyboardInterrupt):
            evaluate_run(run, seed=3, options=options)
    assert (run / NAME).exists()
    resumed = evaluate_run(run, seed=3, options=options)
    assert resumed["eval_resumed_at"] == 6
    assert without_time(resumed) == without_time(straight)
    assert not (run / NAME).exists()


def test_progress_of_another_evaluation_is_ignored(run, monkeypatch):
    with monkeypatch.context() as m:
        stop_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            evaluate_run(run, seed=0, options={"iwae_k": 5})
    assert (run / NAME).exists()
    fresh = evaluate_run(run, seed=0, options={"iwae_k": 4}, update_metrics=False)
    other = evaluate_run(run, seed=0, options={"iwae_k": 4})     # replaces the file
    assert "eval_resumed_at" not in other
    assert without_time(fresh) == without_time(other)
    assert not (run / NAME).exists()


def test_an_unreadable_progress_file_is_named(run):
    (run / NAME).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=f"{NAME} is not a readable evaluation progress file"
                       ".*delete it"):
        evaluate_run(run, seed=0, options={"iwae_k": 2})
    (run / NAME).unlink()
    assert np.isfinite(evaluate_run(run, seed=0, options={"iwae_k": 2})["test_iwae_nats"])
