"""The hierarchical conv VAE (``tinygen train vae-hier``): its loss pieces against their
definitions and finite differences, the bounds' order, the importance-sampled
log-likelihood against an exact marginal, the runner (checkpoint, resume, sample grid)
and its options' errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygen import tensor
from tinygen.models.likelihoods import gaussian_log_prob
from tinygen.models.vae.hierarchical import HierConvVAE, kl_sample, log_q_from_noise
from tinygen.testing import gradcheck

from ._helpers import assert_options_refused, binary_images, initialised


def tiny_hier(prior="standard", latent=2, latent1=2, seed=0, scale=None, **kw):
    return initialised(HierConvVAE(latent_dim=latent, latent1_dim=latent1, channels=(2, 3),
                                   hidden=6, dtype=np.float64, prior=prior, **kw), seed, scale)


# --- the loss pieces ---------------------------------------------------------------------------
@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 4), dims=st.integers(1, 4), seed=st.integers(0, 2 ** 16))
def test_gaussian_log_density_and_kl_sample_match_definitions_and_gradients(n, dims, seed):
    rng = np.random.default_rng(seed)
    eps, mu_q, p_mean = (rng.standard_normal((n, dims)) for _ in range(3))
    q_logvar, p_logvar = (rng.uniform(-1.5, 1.5, (n, dims)) for _ in range(2))
    z = mu_q + np.exp(0.5 * q_logvar) * eps

    def log_normal(v, m, lv):      # straight from the density's definition
        return np.log(np.exp(-(v - m) ** 2 / (2 * np.exp(lv))) / np.sqrt(2 * math.pi *
                                                                        np.exp(lv)))

    np.testing.assert_allclose(
        gaussian_log_prob(tensor(z), tensor(p_mean), tensor(p_logvar)).data,
        log_normal(z, p_mean, p_logvar), rtol=1e-10, atol=1e-12)
    # log q written with the noise equals the density of q at z = mu + sigma eps
    np.testing.assert_allclose(log_q_from_noise(tensor(eps), tensor(q_logvar)).data,
                               log_normal(z, mu_q, q_logvar).sum(-1), rtol=1e-10)
    expected = (log_normal(z, mu_q, q_logvar) - log_normal(z, p_mean, p_logvar)).sum(-1)

    # the KL sample as the model forms it: z from (mu_q, q_logvar, eps), all differentiable
    def kl(e, mq, lvq, pm, plv):
        from tinygen.ops.elementwise import exp
        return kl_sample(e, lvq, mq + exp(lvq * 0.5) * e, pm, plv)

    args = [tensor(a, requires_grad=True) for a in (eps, mu_q, q_logvar, p_mean, p_logvar)]
    np.testing.assert_allclose(kl(*args).data, expected, rtol=1e-9, atol=1e-12)
    gradcheck(kl, args)
    gradcheck(gaussian_log_prob, [tensor(a, requires_grad=True) for a in
                                  (z, p_mean, p_logvar)])


@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_elbo_gradient_by_finite_differences(prior):
    """The whole one-sample ELBO (both KL pieces, the VampPrior's components) against
    finite differences in float64 along the decoder's, p(z1|z2)'s and q(z1|x,z2)'s
    weights, with the same noise every call."""
    m = tiny_hier(prior, pseudo_inputs=3)
    x = binary_images(2)
    params = [m.p1[2].weight, m.q1[2].bias, m.q2.bias, m.decoder_input[0].weight]

    def neg_elbo(*ps):
        saved = [p.data for p in params]
        try:
            for p, q in zip(params, ps):
                p.data = q.data
            return -m.elbo(x, np.random.default_rng(5))
        finally:
            for p, s in zip(params, saved):
                p.data = s

    # the graph must run through the parameters themselves: differentiate in place
    out = -m.elbo(x, np.random.default_rng(5))
    weights = np.random.default_rng(9).standard_normal(out.shape)
    (out * tensor(weights)).sum().backward()
    for p in params:
        analytic = np.array(p.grad.data)
        numeric = np.zeros_like(analytic)
        flat, step = p.data.reshape(-1), 1e-6
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + step
            hi = float(np.sum(neg_elbo(*params).data * weights))
            flat[i] = old - step
            lo = float(np.sum(neg_elbo(*params).data * weights))
            flat[i] = old
            numeric.reshape(-1)[i] = (hi - lo) / (2 * step)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6)


# --- the bounds -------------------------------------------------------------------------------
def test_elbo_below_iwae_and_iwae_rises_with_k():
    m = tiny_hier(scale=2.0)
    x = binary_images(3)
    g = np.random.default_rng(2)
    reps = np.repeat(x, 300, axis=0)                              # 300 draws per image
    elbo = m.elbo(reps, g).numpy().reshape(3, 300)
    k1 = m.iwae_bound(reps, 1, g, chunk=4096).reshape(3, 300)
    bounds = {k: m.iwae_bound(x, k, g, chunk=64) for k in (2, 20, 1000)}
    means = [bounds[k].mean() for k in (2, 20, 1000)]
    assert np.all(bounds[20] > elbo.mean(1))
    assert elbo.mean() < means[0] < means[1] < means[2]
    # k = 1 is a one-sample ELBO over the joint proposal: unbiased for the ELBO itself
    stderr = np.hypot(elbo.std(1), k1.std(1)) / math.sqrt(300)
    assert np.all(np.abs(k1.mean(1) - elbo.mean(1)) < 4 * stderr), (k1.mean(1), elbo.mean(1))
    assert means[2] - elbo.mean() > 5 * stderr.max()              # the test can tell


def test_iwae_does_not_depend_on_the_chunk_size():
    m = tiny_hier("vamp", scale=1.5, pseudo_inputs=3)
    x = binary_images(1)
    a = m.iwae_bound(x, 40, np.random.default_rng(0), chunk=7)
    b = m.iwae_bound(x, 40, np.random.default_rng(0), chunk=4096)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    out = m.iwae_bound(binary_images(5), 30, np.random.default_rng(0), chunk=64)
    assert out.shape == (5,) and np.all(np.isfinite(out))


def exact_log_marginal(m, x, grid=np.linspace(-7, 7, 141)):
    """log p(x) = log int int p(x|z1,z2) p(z1|z2) p(z2) dz1 dz2 on a grid (1-D z1, z2),
    trapezoid rule in both directions."""
    z1, z2 = (a.reshape(-1, 1) for a in np.meshgrid(grid, grid, indexing="ij"))
    with m._evaluating():
        p_mean, p_logvar = (t.data for t in m._p1(tensor(z2)))
        log_p1 = -0.5 * ((z1 - p_mean) ** 2 * np.exp(-p_logvar) + p_logvar
                         + math.log(2 * math.pi))[:, 0]
        log_px = m.log_likelihood(m.decode(tensor(np.concatenate([z1, z2], 1))),
                                  np.broadcast_to(x, (len(z1), 1, 28, 28))).data
    f = (log_px + log_p1 + m.log_prior(z2)).reshape(len(grid), len(grid))
    top = f.max()
    inner = np.trapezoid(np.exp(f - top), grid, axis=1)
    return top + math.log(np.trapezoid(inner, grid))


@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_iwae_bound_converges_to_the_exact_marginal(prior):
    m = tiny_hier(prior, latent=1, latent1=1, scale=2.0, pseudo_inputs=3)
    x = binary_images(1, seed=3)[0]
    exact = exact_log_marginal(m, x)
    rng = np.random.default_rng(0)
    k1 = m.iwae_bound(np.broadcast_to(x, (100, 28, 28)), 1, rng, chunk=512)
    estimates = m.iwae_bound(np.broadcast_to(x, (4, 28, 28)), 2000, rng, chunk=512)
    assert k1.mean() < exact - 1.0, (k1.mean(), exact)      # a real gap to close
    assert abs(estimates.mean() - exact) < 0.06, (estimates, exact)


# --- the runner: training, checkpoints, resume, grids, evaluation, errors -------------------
TINY = {"limit": 64, "batch_size": 32, "test_limit": 8, "n_samples": 4, "channels": [2, 4],
        "hidden": 8, "latent_dim": 2, "latent1_dim": 3, "iwae_k": 3, "prior": "vamp",
        "pseudo_inputs": 3, "kl_warmup_steps": 3, "lr_schedule": "cosine",
        "lr_decay_steps": 4}


def test_resume_is_bit_for_bit(tmp_path):
    import tinygen as tg
    from tinygen.training import train

    def run(out, epochs, **kw):
        return train("vae-hier", {**TINY, "epochs": epochs}, out=out, progress=False,
                     log=None, **kw)

    straight = run(tmp_path / "a", 2)
    run(tmp_path / "b", 1)
    tg.manual_seed(7)
    np.random.seed(7)
    resumed = run(tmp_path / "b", 2, resume=True)
    a, b = (r.experiment.model.state_dict() for r in (straight, resumed))
    assert a.keys() == b.keys() and {"prior.pseudo_logits", "p1.0.weight"} <= set(a)
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
    assert resumed.experiment.steps == straight.experiment.steps == 4
    assert resumed.experiment.kl_weight() == 1.0
    timeless = [{k: v for k, v in r.metrics.items() if k != "eval_seconds"}
                for r in (straight, resumed)]
    assert timeless[0] == timeless[1]
    for name in ("samples.png", "samples_epoch002.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_killed_while_checkpointing_then_resumed_matches(tmp_path):
    """SIGKILL inside epoch 2's checkpoint write (the runner's kill driver), then
    --resume: the same checkpoint as a run never stopped."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import tinygen as tg

    driver = Path(__file__).parent.parent / "training" / "kill_driver.py"
    argv = ["train", "vae-hier", "--epochs", "2", "--limit", "64", "--batch-size", "32",
            "--test-limit", "8", "--n-samples", "4", "--no-progress", "-o", "channels=[2,4]",
            "-o", "hidden=8", "-o", "latent_dim=2", "-o", "latent1_dim=3", "-o", "iwae_k=3",
            "-o", "prior=vamp", "-o", "pseudo_inputs=3"]
    env = {**os.environ, "TINYGEN_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}

    def drive(point, nth, sig, out, *extra):
        return subprocess.run([sys.executable, str(driver), point, str(nth), sig, "--",
                               *argv, "--out", str(out), *extra], env=env,
                              capture_output=True, text=True, timeout=300)

    assert drive("none", 0, "none", tmp_path / "a").returncode == 0
    killed = drive("checkpoint", 2, "KILL", tmp_path / "b")
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert int(tg.load(tmp_path / "b" / "checkpoint.npz")["epoch"]) == 1
    done = drive("none", 0, "none", tmp_path / "b", "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = (tg.load(p / "checkpoint.npz") for p in (tmp_path / "a", tmp_path / "b"))
    assert int(a["epoch"]) == int(b["epoch"]) == 2
    for key, value in a["modules"]["vae"].items():
        np.testing.assert_array_equal(np.asarray(value), np.asarray(b["modules"]["vae"][key]),
                                      err_msg=key)
    assert not list((tmp_path / "b").glob("*.tmp"))


def test_command_line_train_sample_eval_and_bad_options(tmp_path, capsys):
    from PIL import Image

    from tinygen.cli import main

    out = tmp_path / "run"
    args = ["--limit", "64", "--batch-size", "32", "--test-limit", "8", "--n-samples", "4",
            "-o", "channels=[2,4]", "-o", "hidden=8", "-o", "latent_dim=2",
            "-o", "latent1_dim=3", "-o", "iwae_k=2", "--no-progress"]
    assert main(["train", "vae-hier", "--epochs", "1", "--out", str(out), *args]) == 0
    grid = tmp_path / "grid.png"
    assert main(["sample", "--run", str(out), "--n", "9", "--out", str(grid)]) == 0
    with Image.open(grid) as im:
        assert im.size[0] > 3 * 28 and im.size[1] > 3 * 28
        assert len(set(np.asarray(im.convert("L")).ravel().tolist())) > 2   # not blank
    capsys.readouterr()
    assert main(["eval", "--run", str(out), "--iwae-k", "40", "--test-limit", "3",
                 "-o", "iwae_chunk=16"]) == 0
    text = capsys.readouterr().out
    assert '"iwae_k": 40' in text and '"eval_images": 3' in text
    assert '"test_kl_z1_nats"' in text and '"test_kl_z2_nats"' in text
    assert_options_refused(capsys, tmp_path / "bad", ["train", "vae-hier", "--epochs", "1", *args],
                           [("latent1_dim=0", "latent1_dim must be a positive integer"),
                            ("latent1_dim=2.5", "latent1_dim must be a positive integer"),
                            ("hidden=[8,8]", "hidden must be a positive integer"),
                            ("prior=gauss", "prior must be one of standard, vamp")])
    with pytest.raises(ValueError, match="latent1_dim must be a positive int"):
        HierConvVAE(latent1_dim=0)
    with pytest.raises(ValueError, match="hidden must be a positive int"):
        HierConvVAE(hidden=None)
    with pytest.raises(ValueError, match=r"expected codes \[z1, z2\] of shape \(N, 64\)"):
        HierConvVAE().decode(tensor(np.zeros((2, 32), np.float32)))
