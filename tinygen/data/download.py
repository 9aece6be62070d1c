"""Download Fashion-MNIST into a directory, each file checked against a known SHA-256.

    from tinygen.data.download import download_fashion_mnist
    download_fashion_mnist(cache_dir())      # fetches only the files still missing

`find_fashion_mnist` calls this as its last directory source (into the user cache), so
a machine that is online gets the real data on first use. Offline it fails fast: the
first network error (no DNS, refused connection, a timeout) stops the attempt, it is
remembered for `RETRY_AFTER` seconds so that loading the test split right after the
train split does not wait again, and the search falls through to the embedded subset.
`$TINYGEN_OFFLINE=1` skips downloading altogether.

What is checked is the SHA-256 of the *decompressed* IDX bytes, not of the .gz file:
mirrors and distributions recompress the files (Debian's copies, for one, carry a
different gzip header from upstream's, hence different .gz checksums), while the data
inside is the same. The digests below are those of the 2017 release by Zalando
Research; they equal the widely published ones (e.g. the raw-file MD5s torchvision
lists decompress from the same bytes). The .gz is stored as downloaded, written
atomically (temp file + rename), and only after it passed the check: a failed or
tampered download never lands in the directory.
"""

import gzip
import hashlib
import os
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from .errors import DataError
from .idx import _atomic_write

# Tried in order for each file; "{name}" is e.g. "train-images-idx3-ubyte.gz".
MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/{name}",
)

# SHA-256 and size of each file's decompressed IDX content.
FILES = {
    "train-images-idx3-ubyte":
        ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", 47040016),
    "train-labels-idx1-ubyte":
        ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", 60008),
    "t10k-images-idx3-ubyte":
        ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", 7840016),
    "t10k-labels-idx1-ubyte":
        ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", 10008),
}

TIMEOUT = 10.0        # seconds, per connection attempt and per read
RETRY_AFTER = 300.0   # seconds during which a failed (offline) attempt is not repeated
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"

# (time.monotonic() of the failure, message) after every mirror failed on the network.
_last_failure = None


class DownloadError(DataError):
    """Downloading failed: no network, every mirror failed, or a checksum mismatch."""


def offline():
    """True when $TINYGEN_OFFLINE asks tinygen not to use the network."""
    return os.environ.get("TINYGEN_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def download_fashion_mnist(directory, mirrors=MIRRORS, timeout=TIMEOUT):
    """Fetch the Fashion-MNIST files missing from `directory` (created if needed).

    A file counts as present when `name` or `name.gz` exists there. Returns the
    directory. Raises DownloadError saying why when any file cannot be had; the files
    fetched before the failure stay (each was verified).
    """
    global _last_failure
    directory = Path(directory)
    if offline():
        raise DownloadError("downloading is disabled ($TINYGEN_OFFLINE is set)")
    if _last_failure is not None and time.monotonic() - _last_failure[0] < RETRY_AFTER:
        raise DownloadError(f"{_last_failure[1]} (not retried within {RETRY_AFTER:.0f} s)")
    missing = [n for n in FILES
               if not (directory / n).is_file() and not (directory / (n + ".gz")).is_file()]
    if not missing:
        return directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create {directory}: {e.strerror or e}") from e
    for name in missing:
        errors = []
        for template in mirrors:
            url = template.format(name=name + ".gz")
            try:
                payload = _fetch(url, timeout, FILES[name][1])
            except (urllib.error.URLError, OSError, ValueError) as e:  # network trouble
                errors.append(f"{url}: {_reason(e)}")
                continue
            try:
                verify(name, payload, source=url)
            except DataError as e:
                errors.append(str(e))
                continue
            try:
                _atomic_write(str(directory / (name + ".gz")), payload)
            except OSError as e:
                raise DownloadError(f"cannot write {directory / (name + '.gz')}: "
                                    f"{e.strerror or e}") from e
            break
        else:
            message = f"could not download {name}.gz: " + "; ".join(errors)
            if not any("checksum" in e for e in errors):  # only network failures
                _last_failure = (time.monotonic(), message)
            raise DownloadError(message)
    return directory


def verify(name, payload, source="payload"):
    """Check that `payload` (gzip or raw bytes) holds exactly the known `name` file.

    Returns the decompressed bytes; raises DataError naming `source` otherwise.
    """
    digest, size = FILES[name]
    raw = payload
    if payload[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(payload)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{source}: corrupt gzip data for {name} ({e or 'truncated'}); "
                            f"checksum not verified") from None
    got = hashlib.sha256(raw).hexdigest()
    if got != digest:
        raise DataError(f"{source}: checksum mismatch for {name}: SHA-256 of its content is "
                        f"{got} ({len(raw)} bytes), expected {digest} ({size} bytes); "
                        f"refused")
    return raw


def _fetch(url, timeout, expected_raw_size):
    request = urllib.request.Request(url, headers={"User-Agent": "tinygen"})
    # A gzip of IDX data is never larger than the data itself plus a little.
    limit = expected_raw_size + (1 << 16)
    chunks, total = [], 0
    with urllib.request.urlopen(request, timeout=timeout) as response:
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise ValueError(f"more than {limit} bytes; not the expected file")
            chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc):
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"
