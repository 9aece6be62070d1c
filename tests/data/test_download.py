"""Downloading Fashion-MNIST with the network mocked: a good payload lands in the cache,
a bad checksum is refused and nothing lands, network errors fall through fast."""
import gzip
import hashlib
import io
import os
import urllib.error
import urllib.request

import numpy as np
import pytest

from tinygen.data import DataError, SubsetWarning, find_fashion_mnist, load_fashion_mnist
from tinygen.data import download
from tinygen.data import fashion_mnist as fm
from tinygen.data.idx import write_idx

NAMES = list(download.FILES)


def synthetic_payloads(tmp_path):
    """gzip payloads of a tiny synthetic set, and the FILES table that accepts them."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(6) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(4) % 10).astype(np.uint8),
    }
    payloads, table = {}, {}
    for name, a in arrays.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(exist_ok=True)
        write_idx(path, a, compress=False)
        raw = path.read_bytes()
        payloads[name + ".gz"] = gzip.compress(raw, mtime=0)
        table[name] = (hashlib.sha256(raw).hexdigest(), len(raw))
    return payloads, table


class FakeNetwork:
    """Stands in for urllib.request.urlopen: serves `payloads` by file name, records
    the URLs asked for, raises `error` when given."""

    def __init__(self, payloads=None, error=None, fail_hosts=()):
        self.payloads = payloads or {}
        self.error = error
        self.fail_hosts = fail_hosts
        self.urls = []

    def __call__(self, request, timeout=None):
        url = request.full_url if hasattr(request, "full_url") else request
        self.urls.append(url)
        assert timeout is not None and timeout > 0  # never an unbounded wait
        if self.error is not None:
            raise self.error
        if any(h in url for h in self.fail_hosts):
            raise urllib.error.URLError("connection refused")
        name = url.rsplit("/", 1)[1]
        if name not in self.payloads:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return io.BytesIO(self.payloads[name])


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.delenv("TINYGEN_DATA", raising=False)
    monkeypatch.delenv("TINYGEN_OFFLINE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(fm, "SYSTEM_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(download, "_last_failure", None)
    return tmp_path


def cache(tmp_path):
    return tmp_path / "xdg-cache" / "tinygen" / "fashion-mnist"


def test_good_payload_lands_in_cache(isolated, monkeypatch):
    payloads, table = synthetic_payloads(isolated)
    monkeypatch.setattr(download, "FILES", table)
    net = FakeNetwork(payloads)
    monkeypatch.setattr(urllib.request, "urlopen", net)

    assert find_fashion_mnist() == cache(isolated)
    for name in NAMES:
        assert (cache(isolated) / (name + ".gz")).read_bytes() == payloads[name + ".gz"]
    assert len(net.urls) == 4 and all(u.startswith("http") for u in net.urls)
    images, labels = load_fashion_mnist("train")
    assert images.shape == (6, 28, 28)
    np.testing.assert_array_equal(labels, np.arange(6) % 10)
    # no temp files left behind
    assert sorted(os.listdir(cache(isolated))) == sorted(n + ".gz" for n in NAMES)
    # present files are not fetched again
    net.urls.clear()
    download.download_fashion_mnist(cache(isolated))
    assert net.urls == []


def test_bad_checksum_is_refused_and_nothing_lands(isolated, monkeypatch):
    payloads, table = synthetic_payloads(isolated)
    monkeypatch.setattr(download, "FILES", table)
    tampered = dict(payloads)
    raw = bytearray(gzip.decompress(payloads["train-images-idx3-ubyte.gz"]))
    raw[100] ^= 0xFF
    tampered["train-images-idx3-ubyte.gz"] = gzip.compress(bytes(raw))
    monkeypatch.setattr(urllib.request, "urlopen", FakeNetwork(tampered))

    with pytest.raises(download.DownloadError, match="checksum mismatch") as e:
        download.download_fashion_mnist(cache(isolated))
    assert "train-images-idx3-ubyte" in str(e.value) and "refused" in str(e.value)
    assert not cache(isolated).exists() or os.listdir(cache(isolated)) == []


def test_corrupt_gzip_is_refused(isolated, monkeypatch):
    payloads, table = synthetic_payloads(isolated)
    monkeypatch.setattr(download, "FILES", table)
    broken = {k: v[:-8] for k, v in payloads.items()}
    monkeypatch.setattr(urllib.request, "urlopen", FakeNetwork(broken))
    with pytest.raises(download.DownloadError, match="corrupt gzip"):
        download.download_fashion_mnist(cache(isolated))
    assert not any(cache(isolated).glob("*")) if cache(isolated).exists() else True


def test_second_mirror_used_when_first_fails(isolated, monkeypatch):
    payloads, table = synthetic_payloads(isolated)
    monkeypatch.setattr(download, "FILES", table)
    net = FakeNetwork(payloads, fail_hosts=("amazonaws",))
    monkeypatch.setattr(urllib.request, "urlopen", net)
    download.download_fashion_mnist(cache(isolated))
    assert sorted(os.listdir(cache(isolated))) == sorted(n + ".gz" for n in NAMES)
    assert any("githubusercontent" in u for u in net.urls)


def test_network_error_falls_through_to_subset_fast(isolated, monkeypatch):
    net = FakeNetwork(error=urllib.error.URLError("Name or service not known"))
    monkeypatch.setattr(urllib.request, "urlopen", net)

    with pytest.raises(DataError) as e:
        find_fashion_mnist()
    msg = str(e.value)
    assert "download into the user cache (failed:" in msg and "Name or service" in msg
    tries = len(net.urls)
    assert tries == len(download.MIRRORS)  # stops at the first file that fails

    with pytest.warns(SubsetWarning, match="SMALL EMBEDDED SUBSET"):
        images, labels = load_fashion_mnist("test")
    assert images.shape == (1000, 28, 28)
    assert len(net.urls) == tries  # the failure is remembered: no second wait


def test_timeout_counts_as_network_error(isolated, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", FakeNetwork(error=TimeoutError("timed out")))
    with pytest.raises(download.DownloadError, match="timed out"):
        download.download_fashion_mnist(cache(isolated))


def test_offline_env_skips_the_network(isolated, monkeypatch):
    net = FakeNetwork()
    monkeypatch.setattr(urllib.request, "urlopen", net)
    monkeypatch.setenv("TINYGEN_OFFLINE", "1")
    with pytest.raises(DataError, match=r"TINYGEN_OFFLINE"):
        find_fashion_mnist()
    assert net.urls == []


def test_download_only_when_earlier_sources_fail(isolated, monkeypatch):
    from .test_fashion_mnist import make_set

    net = FakeNetwork()
    monkeypatch.setattr(urllib.request, "urlopen", net)
    system = make_set(isolated / "system")
    assert find_fashion_mnist() == system
    assert net.urls == []


def test_oversized_payload_is_refused(isolated, monkeypatch):
    payloads, table = synthetic_payloads(isolated)
    monkeypatch.setattr(download, "FILES", table)
    huge = {k: v + b"\0" * (1 << 17) for k, v in payloads.items()}
    monkeypatch.setattr(urllib.request, "urlopen", FakeNetwork(huge))
    with pytest.raises(download.DownloadError, match="not the expected file"):
        download.download_fashion_mnist(cache(isolated))


@pytest.mark.data
def test_checksums_match_the_real_files():
    """The hard-coded digests accept the real data (Debian's copies, when installed)."""
    directory = fm.SYSTEM_DIRS[0]
    if not all((directory / (n + ".gz")).is_file() for n in NAMES):
        pytest.skip(f"real Fashion-MNIST not installed in {directory}")
    for name in NAMES:
        raw = download.verify(name, (directory / (name + ".gz")).read_bytes())
        assert len(raw) == download.FILES[name][1]
