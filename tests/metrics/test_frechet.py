"""Frechet distance: exact cases, agreement with the scipy.linalg.sqrtm formula,
sampling behaviour, and the FD-FMNIST pipeline with a stand-in feature extractor."""
import warnings

import numpy as np
import pytest

import tinygen as tg
from tinygen.metrics import frechet
from tinygen.metrics import (
    frechet_distance, feature_statistics, sqrtm_psd, fd_fmnist, fd_floor, fd_from_features,
)


def random_spd(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d + (0.0 if rank else 0.1 * np.eye(d))


def random_orthogonal(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def test_identical_statistics_give_zero(rng):
    for d in (1, 5, 64):
        mu, cov = rng.standard_normal(d), random_spd(rng, d)
        assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)


def test_identical_singular_statistics_give_zero(rng):
    cov = random_spd(rng, 20, rank=5)  # rank-deficient: fewer samples than features
    mu = rng.standard_normal(20)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)


def test_symmetric(rng):
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    c1, c2 = random_spd(rng, 8), random_spd(rng, 8)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(
        frechet_distance(mu2, c2, mu1, c1), rel=1e-10)


def test_translation_gives_squared_norm(rng):
    mu, cov, d = rng.standard_normal(6), random_spd(rng, 6), rng.standard_normal(6)
    assert frechet_distance(mu, cov, mu + d, cov) == pytest.approx(d @ d, rel=1e-9, abs=1e-10)


def test_diagonal_gaussians_closed_form(rng):
    a, b = rng.uniform(0.1, 3.0, 7), rng.uniform(0.1, 3.0, 7)
    mu1, mu2 = rng.standard_normal(7), rng.standard_normal(7)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected,
                                                                                rel=1e-10)


def test_one_dimensional():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)


def test_commuting_covariances_closed_form(rng):
    q = random_orthogonal(rng, 9)
    a, b = rng.uniform(0.05, 2.0, 9), rng.uniform(0.05, 2.0, 9)
    c1, c2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(9), c1, np.zeros(9), c2) == pytest.approx(expected,
                                                                               rel=1e-8)


def test_agrees_with_scipy_sqrtm_formula(rng):
    linalg = pytest.importorskip("scipy.linalg")
    for d in (3, 16, 128):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        c1, c2 = random_spd(rng, d), random_spd(rng, d)
        covmean = linalg.sqrtm(c1 @ c2)
        covmean = np.real(covmean)
        reference = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * covmean)
        assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(reference, rel=1e-7)


def test_sqrtm_psd_squares_back(rng):
    c = random_spd(rng, 12)
    r = sqrtm_psd(c)
    np.testing.assert_allclose(r, r.T, atol=1e-12)
    np.testing.assert_allclose(r @ r, c, atol=1e-10)


def test_nonnegative_under_roundoff(rng):
    c = random_spd(rng, 50, rank=3) * 1e-9  # tiny, singular: round-off dominated
    assert frechet_distance(np.zeros(50), c, np.zeros(50), c) >= 0.0


def test_feature_statistics_match_numpy(rng):
    f = rng.standard_normal((40, 6)) * [1, 2, 3, 4, 5, 6]
    mu, cov = feature_statistics(f)
    np.testing.assert_allclose(mu, f.mean(0))
    np.testing.assert_allclose(cov, np.cov(f, rowvar=False), atol=1e-12)
    assert mu.dtype == np.float64 and cov.dtype == np.float64


def test_feature_statistics_from_float32(rng):
    f = rng.standard_normal((100, 4)).astype(np.float32)
    mu, cov = feature_statistics(f)
    assert cov.dtype == np.float64


def test_samples_of_one_distribution_give_small_fd(rng):
    d = 8
    l_chol = np.linalg.cholesky(random_spd(rng, d))
    mean = rng.standard_normal(d)

    def draw(n):
        return mean + rng.standard_normal((n, d)) @ l_chol.T

    big = fd_from_features(draw(20000), draw(20000))
    small = fd_from_features(draw(500), draw(500))
    other = fd_from_features(draw(20000), draw(20000) + 0.5)  # a shifted distribution
    assert big < 0.01
    assert big < small  # the estimate's bias shrinks with n
    assert other == pytest.approx(d * 0.25, rel=0.1)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(4), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.array([[1.0, np.nan], [0, 1]]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError):
        feature_statistics(np.zeros((1, 3)))


# --- FD-FMNIST plumbing, with a stand-in for the classifier's features --------------------
class StubClassifier:
    """features(x) = tanh(x W) for a fixed random W: cheap, deterministic, non-linear."""

    training = False

    def __init__(self, dim=16, seed=0):
        self.w = np.random.default_rng(seed).standard_normal((784, dim)) / 10
        self.calls = 0

    def eval(self):
        return self

    def features(self, x):
        self.calls += 1
        assert isinstance(x, tg.Tensor) and x.shape[1:] == (1, 28, 28)
        assert 0.0 <= x.numpy().min() and x.numpy().max() <= 1.0
        return tg.tensor(np.tanh(x.numpy().reshape(x.shape[0], -1) @ self.w))


def _test_images():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tinygen.data import load_fashion_mnist
        return load_fashion_mnist("test")[0]


@pytest.fixture
def fd_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGEN_CACHE", str(tmp_path))
    monkeypatch.setattr(frechet, "_MEMORY", {})
    return tmp_path


def test_fd_fmnist_of_the_test_set_itself_is_zero(fd_cache):
    clf = StubClassifier()
    images = _test_images()
    assert fd_fmnist(images, "test", classifier=clf) == pytest.approx(0.0, abs=1e-8)
    assert list((fd_cache / "fd-stats").glob("test-*.npz"))  # reference statistics cached
    calls = clf.calls
    fd_fmnist(images[:100], "test", classifier=clf)  # the reference comes from memory
    assert clf.calls == calls + 1


def test_fd_fmnist_accepts_uint8_and_unit_floats(fd_cache):
    clf = StubClassifier()
    images = _test_images()[:300]
    ref = images[::-1].copy()
    as_uint8 = fd_fmnist(images, ref, classifier=clf)
    as_float = fd_fmnist(images.astype(np.float32) / 255.0, ref, classifier=clf)
    with_channel = fd_fmnist(images[:, None], ref, classifier=clf)
    assert as_uint8 == pytest.approx(as_float, rel=1e-5)
    assert as_uint8 == pytest.approx(with_channel, rel=1e-12)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fd_fmnist(images.astype(np.float32) / 127.5 - 1.0, ref, classifier=clf)


def test_fd_fmnist_orders_noise_above_real_images(fd_cache):
    clf = StubClassifier()
    rng = np.random.default_rng(0)
    real = _test_images()
    noise = rng.integers(0, 256, (500, 28, 28)).astype(np.uint8)
    assert fd_fmnist(noise, "test", classifier=clf) > 10 * fd_fmnist(real[:500], "test",
                                                                       classifier=clf)


def test_fd_floor_uses_train_against_test(fd_cache):
    clf = StubClassifier()
    floor = fd_floor(classifier=clf, n_train=500)
    assert 0.0 < floor < fd_fmnist(np.zeros((500, 28, 28), np.uint8), "test", classifier=clf)
    assert fd_floor(classifier=clf, n_train=500) == floor  # cached, same subset


def test_default_classifier_is_loaded_with_grad_enabled(monkeypatch):
    """The runner evaluates under no_grad; training the classifier there (first use)
    needs autograd back on."""
    from tinygen.models import classifier as classifier_module

    seen = []

    def fake_load_or_train(**kwargs):
        seen.append(tg.is_grad_enabled())
        bars.append(kwargs.get("progress"))
        return StubClassifier()

    monkeypatch.setattr(classifier_module, "load_or_train_classifier", fake_load_or_train)
    bars = []
    with tg.no_grad():
        assert isinstance(frechet._default_classifier(), StubClassifier)
        assert not tg.is_grad_enabled()
    assert seen == [True]
    # training it (minutes) shows the runner's bars when the caller shows bars
    with tg.progress.shown():
        frechet._default_classifier()
    assert bars == [False, True]
