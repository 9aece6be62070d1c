"""The GPU side of the backend: cupy, imported lazily and optionally.

tinygen installs and runs without cupy; only asking for the 'cuda' device then
raises, with the reason cupy could not be used.
"""
_cupy = None
_import_error = None
_probed = False


def _probe():
    global _cupy, _import_error, _probed
    if _probed:
        return
    _probed = True
    try:
        import cupy  # noqa: F401  (optional dependency)

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("cupy found no CUDA device")
        _cupy = cupy
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


def is_cupy_array(array):
    # Do not import cupy just to answer "no": numpy arrays are the common case.
    if _cupy is None:
        return type(array).__module__.startswith("cupy") and is_available()
    return isinstance(array, _cupy.ndarray)


def __getattr__(name):
    if name == "cupy":
        require_available()
        return _cupy
    raise AttributeError(name)
