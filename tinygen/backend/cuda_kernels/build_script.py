"""The repository's ``_cuda_build.py`` (setup.py's build of the AOT extension), loaded
by path: in a checkout, the NVRTC code generation finds the CUDA toolkit exactly as the
AOT build does, and the tests read the build's flags and decisions from the one file.
An installed tinygen has no build script (``load`` returns None)."""
import functools
import importlib.util
import sys

from .source import repo_kernel_dir

# The name setup.py imports it by (the repository root on sys.path).
NAME = "_cuda_build"


@functools.lru_cache(maxsize=None)
def load():
    """The ``_cuda_build`` module of this checkout (one module object per process), or
    None when there is no checkout around tinygen."""
    path = repo_kernel_dir().parent / f"{NAME}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(NAME, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module
