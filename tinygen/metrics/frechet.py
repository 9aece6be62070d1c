"""Frechet distance between Gaussians fitted to features, and FD-FMNIST.

For N(mu1, S1) and N(mu2, S2) the squared 2-Wasserstein (Frechet) distance is

    FD = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})

(Dowson & Landau 1982).  FID (Heusel et al. 2017) applies it to Inception
features; FD-FMNIST applies it to the 128 penultimate features of tinygen's own
Fashion-MNIST classifier (``tinygen.models.classifier``), comparing generated
images with the real test set.  Its floor is the FD between the real training
and test sets: a generator cannot be expected to do better than held-out real
data.

Numerics.  The usual ``scipy.linalg.sqrtm(S1 @ S2)`` takes the square root of a
non-symmetric matrix (complex round-off, occasional failure when S1 S2 is near
singular).  Here every square root is of a symmetric positive semi-definite
matrix, through ``numpy.linalg.eigh`` in float64, with the tiny negative
eigenvalues that round-off produces clipped to zero:

    S1^{1/2} = V diag(sqrt(max(w, 0))) V^T            (S1 = V diag(w) V^T)
    tr((S1^{1/2} S2 S1^{1/2})^{1/2}) = sum sqrt(max(eig(S1^{1/2} S2 S1^{1/2}), 0))

Both are exact for PSD inputs and need no matrix square root of a product.

An FD estimated from n samples is biased upwards by O(d/n) (the covariance
estimates are noisy), so compare FDs computed from the same numbers of samples.
"""
import hashlib
import os
from pathlib import Path

import numpy as np

from .. import progress

FEATURE_BATCH = 500


# --- the distance ------------------------------------------------------------------------
def _symmetric(a):
    a = np.asarray(a, dtype=np.float64)
    return 0.5 * (a + a.T)


def sqrtm_psd(cov):
    """The symmetric PSD square root of a symmetric PSD matrix (eigh; negative
    round-off eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh(_symmetric(cov))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _check_stats(mu, cov, which):
    mu = np.atleast_1d(np.asarray(mu, dtype=np.float64))
    cov = np.atleast_2d(np.asarray(cov, dtype=np.float64))
    if mu.ndim != 1 or cov.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"frechet_distance: mu{which} has shape {mu.shape} and cov{which} "
                         f"{cov.shape}; expected (d,) and (d, d)")
    if not (np.isfinite(mu).all() and np.isfinite(cov).all()):
        raise ValueError(f"frechet_distance: mu{which}/cov{which} hold non-finite values")
    return mu, cov


def frechet_distance(mu1, cov1, mu2, cov2):
    """FD between N(mu1, cov1) and N(mu2, cov2) (float; >= 0)."""
    mu1, cov1 = _check_stats(mu1, cov1, 1)
    mu2, cov2 = _check_stats(mu2, cov2, 2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"frechet_distance: the statistics have dimensions {mu1.shape[0]} "
                         f"and {mu2.shape[0]}")
    diff = mu1 - mu2
    root1 = sqrtm_psd(cov1)
    middle = _symmetric(root1 @ _symmetric(cov2) @ root1)
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()
    fd = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt
    # Round-off can take an FD of (nearly) identical statistics a hair below 0.
    return float(max(fd, 0.0))


def feature_statistics(features):
    """``(mu, cov)`` in float64 of features (N, d): the mean and the unbiased covariance."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"feature_statistics: expected features of shape (N >= 2, d), got "
                         f"{f.shape}")
    mu = f.mean(axis=0)
    centred = f - mu
    cov = centred.T @ centred / (f.shape[0] - 1)
    return mu, _symmetric(cov)


def fd_from_features(features1, features2):
    """FD between the Gaussians fitted to two feature sets."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


# --- FD-FMNIST --------------------------------------------------------------------------------
def images_to_unit(images):
    """uint8 images in [0, 255], or floats in [0, 1], as float32 (N, 1, 28, 28) in [0, 1]."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected images of shape (N, 28, 28) or (N, 1, 28, 28), got "
                         f"{np.shape(images)}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype.kind != "f":
        raise TypeError(f"images must be uint8 or floating point in [0, 1], got {x.dtype}")
    if x.size and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(f"float images must lie in [0, 1] (got values in [{x.min():.3g}, "
                         f"{x.max():.3g}]); convert tanh outputs with (x + 1) / 2 or pass uint8")
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _default_classifier(root=None):
    """The shared FD-FMNIST classifier of the data in ``root`` (None: the usual search),
    trained and cached on first use (keyed by the data's checksum).  Training
    needs autograd, and evaluation often runs under ``no_grad`` (the runner's
    end-of-epoch hook does), so grad mode is switched back on around it."""
    from ..autograd.grad_mode import enable_grad
    from ..models.classifier import load_or_train_classifier

    with enable_grad():
        return load_or_train_classifier(data=root, progress=progress.is_shown())


def classifier_features(images, classifier=None, batch_size=FEATURE_BATCH):
    """The classifier's (N, 128) penultimate features of ``images`` as float64."""
    from ..autograd.grad_mode import no_grad
    from ..creation import tensor

    classifier = classifier if classifier is not None else _default_classifier()
    x = images_to_unit(images)
    was_training = getattr(classifier, "training", False)
    if hasattr(classifier, "eval"):
        classifier.eval()
    device = _device_of(classifier)
    out = []
    try:
        with no_grad():
            for lo in progress.steps(range(0, x.shape[0], batch_size), "FD features",
                                     unit="batch"):
                f = classifier.features(tensor(x[lo:lo + batch_size], device=device))
                out.append(np.asarray(f.numpy() if hasattr(f, "numpy") else f, np.float64))
    finally:
        if was_training and hasattr(classifier, "train"):
            classifier.train()
    features = np.concatenate(out, axis=0) if out else np.zeros((0, 0))
    if features.ndim != 2:
        features = features.reshape(features.shape[0], -1)
    return features


def _device_of(module):
    params = getattr(module, "parameters", None)
    if params is None:
        return "cpu"
    for p in params():
        return p.device
    return "cpu"


# Reference statistics: in memory for the process, on disk across processes.  The key
# names the classifier's weights and the images (their hashes), so a retrained
# classifier or another copy of the data never reuses stale statistics.
_MEMORY = {}


def _fingerprint_classifier(classifier):
    h = hashlib.sha1()
    if hasattr(classifier, "state_dict"):
        for key, value in sorted(classifier.state_dict().items()):
            h.update(key.encode())
            data = getattr(value, "data", value)
            if hasattr(data, "get") and not isinstance(data, np.ndarray):  # cupy
                data = data.get()
            h.update(np.ascontiguousarray(np.asarray(data)).tobytes())
    else:  # no weights to hash: cache per object only
        h.update(str(id(classifier)).encode())
    return h.hexdigest()[:16]


def _fingerprint_images(images):
    return hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]


def stats_cache_dir():
    """Where reference statistics are cached: ``$TINYGEN_CACHE/fd-stats`` or the user
    cache (``~/.cache/tinygen/fd-stats``)."""
    base = os.environ.get("TINYGEN_CACHE")
    if base:
        return Path(base) / "fd-stats"
    from ..data import cache_dir

    return cache_dir().parent / "fd-stats"


def _load_split(split, n=None, seed=0, root=None):
    from ..data import load_fashion_mnist

    images, _ = load_fashion_mnist(split, root=root)
    if n is not None and n < images.shape[0]:
        idx = np.sort(np.random.default_rng(seed).choice(images.shape[0], n, replace=False))
        images = images[idx]
    return images


def reference_statistics(split="test", classifier=None, n=None, seed=0, cache=True,
                         batch_size=FEATURE_BATCH, root=None):
    """``(mu, cov)`` of the classifier's features on real Fashion-MNIST ``split``.

    ``n`` takes a random subset of n images (chosen with ``seed``); None takes all.
    ``root``: the data directory (None: the usual search, see ``load_fashion_mnist``).
    Cached in memory and, with ``cache=True``, as an .npz under ``stats_cache_dir()``
    (the file name holds hashes of the images and of the classifier's weights).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    classifier = classifier if classifier is not None else _default_classifier(root)
    classifier_key = _fingerprint_classifier(classifier)
    memory_key = (split, n, seed, classifier_key, None if root is None else os.fspath(root))
    if memory_key in _MEMORY:
        return _MEMORY[memory_key]
    images = _load_split(split, n, seed, root)
    key = f"{split}-n{images.shape[0]}-s{seed}-{_fingerprint_images(images)}-{classifier_key}"
    path = stats_cache_dir() / f"{key}.npz"
    stats = None
    if cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                stats = (f["mu"].astype(np.float64), f["cov"].astype(np.float64))
        except (OSError, KeyError, ValueError):
            stats = None  # unreadable: recompute and overwrite
    if stats is None:
        stats = feature_statistics(classifier_features(images, classifier, batch_size))
        if cache:
            _save_atomically(path, mu=stats[0], cov=stats[1])
    _MEMORY[memory_key] = stats
    return stats


def _save_atomically(path, **arrays):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs recomputation


def fd_fmnist(images, reference="test", classifier=None, batch_size=FEATURE_BATCH, root=None):
    """FD-FMNIST of ``images`` (uint8 (N, 28, 28) / (N, 1, 28, 28), or floats in [0, 1]).

    reference: 'test' (the 10000 real test images; the default), 'train' (all 60000),
    a ``(mu, cov)`` pair, or another array of images.  classifier: None for the
    shared one (``tinygen.models.classifier.load_or_train_classifier()``).
    """
    classifier = classifier if classifier is not None else _default_classifier(root)
    if isinstance(reference, str):
        ref = reference_statistics(reference, classifier, batch_size=batch_size, root=root)
    elif isinstance(reference, tuple) and len(reference) == 2:
        ref = reference
    else:
        ref = feature_statistics(classifier_features(reference, classifier, batch_size))
    stats = feature_statistics(classifier_features(images, classifier, batch_size))
    return frechet_distance(*stats, *ref)


def fd_floor(classifier=None, n_train=None, seed=0, batch_size=FEATURE_BATCH, root=None):
    """The FD between real training images and the real test set: what a perfect
    generator would score.  ``n_train`` draws that many training images (with
    ``seed``) to match the number of generated images an FD was computed from (the
    estimate's upward bias depends on it); None uses all 60000."""
    classifier = classifier if classifier is not None else _default_classifier(root)
    train = reference_statistics("train", classifier, n=n_train, seed=seed,
                                 batch_size=batch_size, root=root)
    test = reference_statistics("test", classifier, batch_size=batch_size, root=root)
    return frechet_distance(*train, *test)
