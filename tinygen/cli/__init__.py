"""The `tinygen` command.

    tinygen --version
    tinygen info        versions, and which accelerated parts are available
    tinygen data        build a synthesized data set (speech corpus)

New commands are subparsers added in `build_parser`, each with a `func(args) -> int`;
a group of commands has its own module here (train.py: train/sample/eval/options,
graph.py: graph, data.py: data), whose ``add_parser(commands)`` adds them.
`python -m tinygen.cli` runs `main` too (__main__.py).
"""

from __future__ import annotations

import argparse
import importlib
import platform
import sys

from tinygen._version import __version__


def _module_version(name: str) -> str:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # any import failure is what we want to report
        return f"not available ({type(exc).__name__}: {exc})"
    return getattr(module, "__version__", "unknown version")


def _cupy_line() -> str:
    try:
        import cupy
    except Exception as exc:
        return f"not available ({type(exc).__name__}: {exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # cupy imports without a driver/GPU; the query fails then
        return f"{cupy.__version__} (no usable GPU: {exc})"
    return f"{cupy.__version__} ({count} device(s))"


def _cpu_kernels_line() -> str:
    from tinygen.backend import kernels

    try:
        return kernels.get_impl("cpu") + f" (${kernels.CPU_IMPL_ENV} selects numba or reference)"
    except kernels.KernelImplError as exc:
        return f"error: {exc}"


def _extension_lines() -> list[str]:
    try:
        from tinygen import _C
    except ImportError as exc:
        return [f"tinygen._C:  not built ({exc}); reinstall with `pip install -v` to see why"]
    lines = ["tinygen._C:  built, for sm_" + ",".join(map(str, _C.compiled_archs()))]

    def version(v: int) -> str:
        return f"{v // 1000}.{v % 1000 // 10}" if v else "none"

    lines.append(f"  CUDA runtime {version(_C.runtime_version())}, "
                 f"driver supports {version(_C.driver_version())}")
    try:
        lines.append(f"  devices:    {_C.device_count()}")
    except RuntimeError as exc:
        lines.append(f"  devices:    error: {exc}")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    lines = [
        f"tinygen:     {__version__}",
        f"python:      {platform.python_version()} ({sys.executable})",
        f"numpy:       {_module_version('numpy')}",
        f"numba:       {_module_version('numba')}",
        f"cupy:        {_cupy_line()}",
        f"cpu kernels: {_cpu_kernels_line()}",
        *_extension_lines(),
    ]
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinygen",
        description="tinygen: a from-scratch autodiff engine and deep generative models.",
    )
    parser.add_argument("--version", action="version", version=f"tinygen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="print versions and available accelerators")
    info.set_defaults(func=cmd_info)
    from tinygen.cli import data, graph, train
    graph.add_parser(commands)
    train.add_parser(commands)
    data.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)
