"""The GPU side of the backend: cupy, imported lazily and optionally.

This module is also the public ``tinygen.cuda``::

    tinygen.cuda.is_available()   # cupy imports and sees a GPU
    tinygen.cuda.device_count()
    tinygen.cuda.synchronize()    # wait for the GPU (before reading a timer)

tinygen installs and runs without cupy; only asking for the 'cuda' device then
raises, with the reason cupy could not be used.  ``tinygen.testing.fake_cuda``
swaps in a numpy-backed stand-in (``_install``/``_restore``) to test the plumbing
on machines without a GPU.
"""
_cupy = None
_cupyx = None
_import_error = None
_probed = False


def _probe():
    global _cupy, _cupyx, _import_error, _probed
    if _probed:
        return
    _probed = True
    try:
        import cupy  # noqa: F401  (optional dependency)
        import cupyx

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("cupy found no CUDA device")
        _cupy, _cupyx = cupy, cupyx
    except Exception as exc:  # ImportError, CUDARuntimeError, ...
        _import_error = exc


def is_available():
    """True when cupy imports and sees at least one CUDA device."""
    _probe()
    return _cupy is not None


def require_available():
    if not is_available():
        raise RuntimeError(
            f"the 'cuda' device is not available ({_import_error}); "
            "install tinygen[cuda] on a machine with an NVIDIA GPU"
        )


def device_count():
    """How many CUDA devices cupy sees (0 when cupy or a GPU is missing)."""
    if not is_available():
        return 0
    return int(_cupy.cuda.runtime.getDeviceCount())


def get_device_name(device=0):
    """The name of CUDA device ``device`` (e.g. 'NVIDIA H100 80GB HBM3')."""
    require_available()
    name = _cupy.cuda.runtime.getDeviceProperties(int(device))["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def synchronize():
    """Block until every kernel queued on the current device has finished."""
    require_available()
    _cupy.cuda.Device().synchronize()


def is_cupy_array(array):
    # Do not import cupy just to answer "no": numpy arrays are the common case.
    if _cupy is None:
        return type(array).__module__.startswith("cupy") and is_available()
    return isinstance(array, _cupy.ndarray)


def _install(cupy, cupyx):
    """Use ``cupy``/``cupyx`` (a test double) as the GPU modules; returns what to restore."""
    global _cupy, _cupyx, _import_error, _probed
    saved = (_cupy, _cupyx, _import_error, _probed)
    _cupy, _cupyx, _import_error, _probed = cupy, cupyx, None, True
    return saved


def _restore(saved):
    global _cupy, _cupyx, _import_error, _probed
    _cupy, _cupyx, _import_error, _probed = saved


def __getattr__(name):
    if name == "cupy":
        require_available()
        return _cupy
    if name == "cupyx":
        require_available()
        return _cupyx
    raise AttributeError(name)
