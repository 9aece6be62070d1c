"""The Fashion-MNIST classifier behind FD-FMNIST: shapes, training on a small real subset,
bit-for-bit resume under the runner, and the train-once cache."""
import numpy as np
import pytest

import tinygen as tg
from tinygen.data import load_embedded_subset
from tinygen.models import classifier as C
from tinygen.serialization import CheckpointError
from tinygen.training import train

TINY = {"width": 4, "hidden": 16, "batch_size": 16, "test_limit": 100, "lr": 1e-2}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("TINYGEN_OFFLINE", "1")


@pytest.fixture(scope="module")
def subset_root(tmp_path_factory):
    from tinygen.data import write_idx

    d = tmp_path_factory.mktemp("subset")
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    for split, (img, lab) in names.items():
        x, y = load_embedded_subset(split)
        write_idx(d / img, x)
        write_idx(d / lab, y.astype(np.uint8))
    return str(d)


def test_shapes():
    tg.manual_seed(0)
    model = C.FashionClassifier()
    x = tg.as_tensor(np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32))
    assert model(x).shape == (5, 10)
    f = model.features(x)
    assert f.shape == (5, C.FEATURES) and (f.numpy() >= 0).all()
    images = load_embedded_subset("test")[0][:7]
    feats = model.extract_features(images, batch_size=3)
    assert feats.shape == (7, 128) and feats.dtype == np.float64
    np.testing.assert_allclose(feats[:3], model.extract_features(images[:3]), rtol=1e-5, atol=1e-6)
    assert model.training  # extract_features restores the mode
    assert model.predict(images).shape == (7,)


@pytest.mark.parametrize("images, match", [
    (np.zeros((2, 28, 28), np.float32), "uint8"),
    (np.zeros((2, 3, 28, 28), np.uint8), "shape"),
])
def test_bad_inputs(images, match):
    with pytest.raises(ValueError, match=match):
        C.FashionClassifier(width=2, hidden=4).extract_features(images)


def test_loss_decreases_on_real_subset(tmp_path, subset_root):
    result = train("classifier", {**TINY, "epochs": 1, "limit": 640, "data": subset_root},
                   out=tmp_path, progress=False, log=None)
    losses = result.history.losses["loss"]
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.3
    assert result.metrics["test_accuracy"] > 0.4


def test_resume_bit_for_bit(tmp_path, subset_root):
    config = {**TINY, "limit": 64, "data": subset_root}
    a = train("classifier", {**config, "epochs": 2}, out=tmp_path / "a", progress=False,
              log=None)
    train("classifier", {**config, "epochs": 1}, out=tmp_path / "b", progress=False, log=None)
    tg.manual_seed(99)
    b = train("classifier", {**config, "epochs": 2}, out=tmp_path / "b", resume=True,
              progress=False, log=None)
    sa, sb = a.experiment.model.state_dict(), b.experiment.model.state_dict()
    for k in sa:
        assert np.array_equal(sa[k].numpy(), sb[k].numpy()), k
    assert a.history.losses == b.history.losses
    assert a.metrics == b.metrics


def test_load_or_train_trains_once(tmp_path, subset_root, monkeypatch):
    path = tmp_path / "cache" / "classifier.npz"
    options = {"limit": 64, "test_limit": 50, "width": 4, "hidden": 16}
    model = C.load_or_train_classifier(path, epochs=1, data=subset_root, batch_size=16,
                                       progress=False, log=None, options=options)
    assert path.is_file() and (tmp_path / "cache" / "classifier-run" / "metrics.json").is_file()
    assert 0.0 <= model.test_accuracy <= 1.0 and not model.training

    def no_training(*a, **k):
        raise AssertionError("trained again")

    import tinygen.training

    monkeypatch.setattr(tinygen.training, "train", no_training)
    again = C.load_or_train_classifier(path)
    assert again.test_accuracy == model.test_accuracy and again.train_images == 64
    images = load_embedded_subset("test")[0][:5]
    np.testing.assert_array_equal(again.extract_features(images), model.extract_features(images))


def test_default_path_respects_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert C.default_classifier_path("abc") == tmp_path / "tinygen" / "classifier-abc.npz"


def test_cache_is_keyed_by_data_checksum_and_config(tmp_path, subset_root, monkeypatch):
    """Issue 11: the cached FD classifier was reused whatever data trained it (the
    3000-image subset gives ~76% accuracy, not ~90%). The key now holds the data's
    checksum and the config; a message says it is trained; the model says which it is."""
    from tinygen.data import write_idx

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    options = {"limit": 64, "test_limit": 50, "width": 4, "hidden": 16}
    kw = dict(epochs=1, batch_size=16, progress=False, options=options)
    said = []
    first = C.load_or_train_classifier(data=subset_root, log=said.append, **kw)
    assert said[0].startswith("training the FD-FMNIST classifier once (1 epochs on 64 images")
    checksum = C.data_checksum(subset_root)[0]
    ident = first.identity
    assert ident["data_checksum"] == checksum and ident["test_accuracy"] == first.test_accuracy
    assert ident["config"]["width"] == 4 and ident["path"].endswith(f"classifier-{ident['key']}.npz")

    other = tmp_path / "other-data"  # the same images but one label changed: other data
    other.mkdir()
    for split, (img, lab) in {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}.items():
        x, y = load_embedded_subset(split)
        y = y.copy()
        y[-1] = (y[-1] + 1) % 10
        write_idx(other / img, x)
        write_idx(other / lab, y.astype(np.uint8))
    said.clear()
    second = C.load_or_train_classifier(data=other, log=said.append, **kw)
    assert said and second.identity["key"] != ident["key"]
    said.clear()
    third = C.load_or_train_classifier(data=subset_root, log=said.append,
                                       **{**kw, "options": {**options, "width": 2}})
    assert said and third.identity["key"] not in (ident["key"], second.identity["key"])

    import tinygen.training

    monkeypatch.setattr(tinygen.training, "train", lambda *a, **k: 1 / 0)  # cached now
    again = C.load_or_train_classifier(data=subset_root, log=said.append, **kw)
    assert again.identity == ident


def test_load_classifier_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such classifier file"):
        C.load_classifier(tmp_path / "nope.npz")
    other = tmp_path / "other.npz"
    tg.save(other, {"w": np.zeros(2)})
    with pytest.raises(CheckpointError, match="not a saved FashionClassifier"):
        C.load_classifier(other)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    with pytest.raises(CheckpointError) as e:
        C.load_classifier(bad)
    assert str(bad) in str(e.value)


def test_the_shipped_reference_classifier(tmp_path, subset_root, monkeypatch):
    """FD-FMNIST's classifier ships with tinygen (one classifier, so FDs compare across
    machines and sessions): the shipped file is the default config's on the full data,
    named by its own key, and a key that has a shipped file never trains or caches."""
    shipped = sorted(C.SHIPPED_DIR.glob("classifier-*.npz"))
    assert shipped, "the reference FD-FMNIST classifier is missing from the package"
    for path in shipped:
        model = C.load_classifier(path)
        ident = model.identity
        assert path.name == f"classifier-{ident['key']}.npz"
        full = {**C.ClassifierExperiment.default_config(), **ident["config"]}
        assert C.classifier_key(full, ident["data_checksum"]) == ident["key"]
        assert ident["train_images"] == 60000 and model.test_accuracy > 0.89

    # a shipped file for the subset's key is taken as it is: no training, no cache file
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    options = {"limit": 32, "test_limit": 20, "width": 2, "hidden": 8}
    kw = dict(epochs=1, batch_size=16, progress=False, options=options, log=None)
    trained = C.load_or_train_classifier(data=subset_root, **kw)
    key = trained.identity["key"]
    monkeypatch.setattr(C, "SHIPPED_DIR", tmp_path / "shipped")
    (tmp_path / "shipped").mkdir()
    C.save_classifier(tmp_path / "shipped" / f"classifier-{key}.npz", trained,
                      accuracy=0.5, key=key)
    C.default_classifier_path(key).unlink()

    import tinygen.training

    monkeypatch.setattr(tinygen.training, "train", lambda *a, **k: 1 / 0)
    got = C.load_or_train_classifier(data=subset_root, **kw)
    assert got.test_accuracy == 0.5 and got.identity["path"].endswith(f"shipped/classifier-{key}.npz")
    assert not C.default_classifier_path(key).exists()
