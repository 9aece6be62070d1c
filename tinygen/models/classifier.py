"""A Fashion-MNIST classifier trained with tinygen, whose features score generators.

    model = load_or_train_classifier()          # trained once, then read from the cache
    feats = model.extract_features(images_uint8)    # (N, 128) float64, for FD-FMNIST
    model.test_accuracy                         # stored with the weights

FD-FMNIST (``tinygen.metrics.frechet``) is the Frechet distance between Gaussians
fitted to these 128-d penultimate activations for generated and for test images, the
Fashion-MNIST analogue of FID (which uses an ImageNet Inception network, meaningless on
28x28 greyscale clothes). A score is comparable only with scores from the same
classifier, so the weights are cached once (``~/.cache/tinygen/classifier-KEY.npz``, KEY
from the data's checksum and the training config) with their test accuracy, and reused;
runs record which one scored them (``metrics.json``'s ``evaluation``).

The net: conv 1->32 3x3, ReLU, max-pool 2, conv 32->64 3x3, ReLU, max-pool 2, linear
3136->128, ReLU (the features), linear 128->10 (logits). A net like this reaches about
90% test accuracy after 3 epochs of Adam; the figure actually reached is stored with the
weights. It also registers as ``tinygen train classifier``.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np

import tinygen
from tinygen import nn
from tinygen.data import cache_dir, load_dataset, to_unit
from tinygen.nn import functional as F
from tinygen.serialization import CheckpointError

from .experiment import Experiment, register

# Fashion-MNIST's pixel mean and standard deviation (training set, [0, 1] scale);
# inputs are standardised with them inside the model.
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530
FEATURES = 128
CLASSIFIER_FORMAT = "tinygen.models.classifier"


class FashionClassifier(nn.Module):
    """Small convnet: ``forward(x)`` -> logits (N, 10), ``features(x)`` -> (N, hidden).

    x: float images in [0, 1], shape (N, 1, 28, 28) (a Tensor or a numpy array).
    """

    def __init__(self, width=32, hidden=FEATURES):
        super().__init__()
        self.width, self.hidden = int(width), int(hidden)
        self.conv1 = nn.Conv2d(1, self.width, 3, padding=1)
        self.conv2 = nn.Conv2d(self.width, 2 * self.width, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(2 * self.width * 7 * 7, self.hidden)
        self.fc2 = nn.Linear(self.hidden, 10)
        # Set by load_or_train_classifier / the experiment: how good these features are.
        self.test_accuracy = None

    def features(self, x):
        """The penultimate activations (after ReLU): what FD-FMNIST compares."""
        x = _as_tensor(x, self)
        x = (x - PIXEL_MEAN) * (1.0 / PIXEL_STD)
        h = self.pool(F.relu(self.conv1(x)))
        h = self.pool(F.relu(self.conv2(h)))
        return F.relu(self.fc1(h.reshape(h.shape[0], -1)))

    def forward(self, x):
        return self.fc2(self.features(x))

    def extract_features(self, images, batch_size=500):
        """Features of uint8 images (N, 28, 28) or (N, 1, 28, 28) as a float64 numpy
        array (N, hidden); in eval mode, without a graph, batch by batch."""
        return self._map(images, batch_size, self.features)

    def predict(self, images, batch_size=500):
        """Class predictions (N,) int64 for uint8 images."""
        return self._map(images, batch_size, lambda x: self(x).argmax(axis=1)).astype(np.int64)

    def _map(self, images, batch_size, fn):
        images = preprocess(images)
        was_training = self.training
        self.eval()
        try:
            with tinygen.no_grad():
                parts = [tinygen.backend.to_numpy(fn(images[i:i + batch_size]).data)
                         for i in range(0, len(images), batch_size)]
        finally:
            self.train(was_training)
        if not parts:
            return np.zeros((0, self.hidden))
        return np.concatenate(parts).astype(np.float64)

    def extra_repr(self):
        return f"width={self.width}, hidden={self.hidden}"


def preprocess(images):
    """uint8 images (N, 28, 28) / (N, 1, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1]."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images (0..255), got {images.dtype}; convert "
                         f"generated images with tinygen.models.experiment.to_uint8_images")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected images of shape (N, 28, 28) or (N, 1, 28, 28), got "
                         f"{images.shape}")
    return to_unit(images)


def _as_tensor(x, module):
    if not isinstance(x, tinygen.Tensor):
        x = tinygen.as_tensor(np.asarray(x, dtype=np.float32))
    device = module.conv1.weight.device
    if x.device != device:
        x = x.to(device)
    return x


@register("classifier")
class ClassifierExperiment(Experiment):
    """``tinygen train classifier``: cross-entropy with Adam; evaluates test accuracy."""

    @classmethod
    def default_config(cls):
        return {"epochs": 3, "batch_size": 128, "lr": 1e-3, "width": 32, "hidden": FEATURES}

    def __init__(self, config):
        super().__init__(config)
        config = self.config        # (the defaults merged under what was given)
        self.model = FashionClassifier(config["width"], config["hidden"])
        if config.get("device", "cpu") != "cpu":
            self.model.to(device=config["device"])
        self.optimizer = tinygen.optim.Adam(self.model.parameters(), lr=config["lr"])

    def load_data(self):
        c = self.config
        return load_dataset(c.get("dataset", "fashion-mnist"), root=c.get("data"),
                            limit=c.get("limit"), test_limit=c.get("test_limit"))

    def modules(self):
        return {"model": self.model}

    def optimizers(self):
        return {"adam": self.optimizer}

    def train_step(self, batch, generator):
        images, labels = batch
        logits = self.model(preprocess(images))
        loss = F.cross_entropy(logits, _labels(labels, self.model))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item()}

    def evaluate(self, test_arrays, generator, batch_size=500):
        images, labels = test_arrays
        total_loss, correct = 0.0, 0
        for i in range(0, len(images), batch_size):
            logits = self.model(preprocess(images[i:i + batch_size]))
            y = labels[i:i + batch_size]
            total_loss += F.cross_entropy(logits, _labels(y, self.model)).item() * len(y)
            correct += int((tinygen.backend.to_numpy(logits.argmax(axis=1).data) == y).sum())
        n = max(len(images), 1)
        accuracy = correct / n
        self.model.test_accuracy = accuracy
        return {"test_accuracy": accuracy, "test_loss": total_loss / n}


def _labels(labels, model):
    t = tinygen.as_tensor(np.asarray(labels, dtype=np.int64))
    device = model.conv1.weight.device
    return t if t.device == device else t.to(device)


# --- the cached classifier behind FD-FMNIST -----------------------------------------------

# What decides the weights, hence an FD's meaning: the cache file is keyed by these and by
# the data's checksum, so a classifier trained on other data (the 3000-image embedded
# subset reaches ~76% test accuracy, the full set ~90%) is never silently reused.
KEY_OPTIONS = ("epochs", "batch_size", "lr", "seed", "width", "hidden", "limit", "test_limit")
MINUTES_PER_EPOCH = 4  # the default net on the full set, two CPU cores (for the message)


def data_checksum(data=None):
    """SHA-256 (16 hex digits) of the Fashion-MNIST arrays found in ``data`` (None: the
    usual search, or the embedded subset)."""
    (x, y), (xt, yt) = load_dataset("fashion-mnist", root=data)
    h = hashlib.sha256()
    for a in (x, y, xt, yt):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16], len(x)


def classifier_key(config, checksum):
    """The cache key: the data's checksum and the training config that matters."""
    described = json.dumps({k: config.get(k) for k in KEY_OPTIONS}, sort_keys=True)
    return hashlib.sha256(f"{checksum}:{described}".encode()).hexdigest()[:16]


def default_classifier_path(key):
    """``~/.cache/tinygen/classifier-KEY.npz`` (``$XDG_CACHE_HOME`` respected)."""
    return cache_dir().parent / f"classifier-{key}.npz"


SHIPPED_DIR = Path(__file__).with_name("classifiers")


def shipped_classifier_path(key):
    """The classifier of cache key ``key`` shipped with tinygen, or None.  The reference
    FD-FMNIST classifier (full Fashion-MNIST as Debian's dataset-fashion-mnist holds it,
    the default config) ships in the package, as FID ships its Inception weights: an FD
    is comparable only under one classifier, and retraining it on another machine (or
    after a change of round-off in the engine) gives another one."""
    path = SHIPPED_DIR / f"classifier-{key}.npz"
    return path if key is not None and path.is_file() else None


def load_or_train_classifier(path=None, epochs=3, data=None, batch_size=128, lr=1e-3,
                             seed=0, device="cpu", retrain=False, progress=True, log=print,
                             options=None):
    """The trained FD-FMNIST classifier, in eval mode, with ``.test_accuracy`` set.

    Read from ``path`` when it exists, else trained once with ``tinygen.training`` on the
    training set in ``data`` (``epochs`` of Adam; roughly 3-5 minutes an epoch on two CPU
    cores) and saved there with its test accuracy and config. ``path`` None: the cache
    file of exactly this data (its checksum) and config, ``default_classifier_path(key)``.
    The training run itself lives beside it (``...-run/``), so an interrupted training
    resumes. A classifier shipped with tinygen for this key (``shipped_classifier_path``)
    is used before any cache or training. ``retrain=True`` trains again even if a file
    exists. options: further
    config entries (``limit``, ``width``...; tests use tiny ones). The model's
    ``.identity`` says which classifier it is (cache key, file, accuracy, data).
    """
    config = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
              "device": device, "data": None if data is None else str(data),
              **(options or {})}
    checksum = key = None
    if path is None:
        checksum, n_train = data_checksum(data)
        full = {**ClassifierExperiment.default_config(), **config}
        key = classifier_key(full, checksum)
        path = default_classifier_path(key)
        shipped = None if retrain else shipped_classifier_path(key)
        if shipped is not None:
            return load_classifier(shipped, device=device)
    path = Path(os.fspath(path))
    if path.exists() and not retrain:
        return load_classifier(path, device=device)

    from tinygen.training import CHECKPOINT_NAME, train

    if log:
        images = config.get("limit") or (n_train if checksum else "the training")
        log(f"training the FD-FMNIST classifier once ({config['epochs']} epochs on {images} "
            f"images, ~{MINUTES_PER_EPOCH * int(config['epochs'])} min on two CPU cores); "
            f"it is cached in {path} and reused by every later FD-FMNIST on this data")
    run_dir = path.with_name(path.stem + "-run")
    resume = (run_dir / CHECKPOINT_NAME).is_file() and not retrain
    if resume:
        try:
            result = train("classifier", config, out=run_dir, resume=True,
                           progress=progress, log=log)
        except (CheckpointError, ValueError):
            resume = False  # another config or a broken run: start afresh
    if not resume:
        result = train("classifier", config, out=run_dir, overwrite=True,
                       progress=progress, log=log)
    model = result.experiment.model
    accuracy = result.metrics.get("test_accuracy")
    save_classifier(path, model, accuracy=accuracy, config=result.experiment.config,
                    train_images=result.train_images, key=key, data_checksum=checksum)
    if log:
        log(f"saved the FD-FMNIST classifier to {path} (test accuracy {accuracy:.4f})")
    return load_classifier(path, device=device)


def save_classifier(path, model, accuracy, config=None, train_images=None, key=None,
                    data_checksum=None):
    tinygen.save(os.fspath(path), {
        "key": key,
        "data_checksum": data_checksum,
        "format": CLASSIFIER_FORMAT,
        "width": model.width,
        "hidden": model.hidden,
        "state_dict": model.state_dict(),
        "test_accuracy": None if accuracy is None else float(accuracy),
        "train_images": None if train_images is None else int(train_images),
        "config": dict(config or {}),
    })


def load_classifier(path, device="cpu"):
    """A FashionClassifier saved by ``save_classifier`` (eval mode, ``test_accuracy`` set)."""
    path = os.fspath(path)
    try:
        state = tinygen.load(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path!r}: no such classifier file") from None
    if not isinstance(state, dict) or state.get("format") != CLASSIFIER_FORMAT:
        raise CheckpointError(f"{path!r} is not a saved FashionClassifier "
                              f"(no format {CLASSIFIER_FORMAT!r})")
    model = FashionClassifier(state["width"], state["hidden"])
    try:
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path!r}: weights do not fit a FashionClassifier: {e}") from e
    if device != "cpu":
        model.to(device=device)
    model.eval()
    model.test_accuracy = state.get("test_accuracy")
    model.train_images = state.get("train_images")
    model.identity = {"path": path, "key": state.get("key"),
                      "data_checksum": state.get("data_checksum"),
                      "test_accuracy": model.test_accuracy, "train_images": model.train_images,
                      "config": {k: v for k, v in dict(state.get("config") or {}).items()
                                 if k in KEY_OPTIONS}}
    return model
