"""The kernel sources: where kernels/*.cu live, and their parsed entry points.

One list of kernels serves all three launchers (emulator, NVRTC, the AOT extension):
each compiles the same translation unit, ``#include``-ing every kernel file, and
``launch`` checks arguments against the signatures parsed here.

The contract (tinygen/backend/cuda_kernels/__init__.py) makes entry points easy to
parse: ``extern "C" __global__ void <name>(<params>)`` with parameters ``T*``,
``const T*`` (T = float, double, int, long long; ``__restrict__`` allowed), ``int``,
``long long``, ``float`` or ``double``.  Anything else is refused with the file and line.
A float/double pair is written once, ``TG_ENTRY_F32_F64(name, bounds_f32, bounds_f64,
(params), body)`` (kernels/common.cuh): it reads as the two functions it emits, name_f32
and name_f64, with T in the parameters replaced by float and by double.

Standard library only: _cuda_build.py loads this file by path at build time (to write
the AOT kernel table), before tinygen or numpy are importable.
"""
from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

# The header every kernel includes, and the emulator's CUDA layer, beside the kernels.
COMMON_HEADER = "common.cuh"
HEADER_SUFFIXES = (".cuh", ".h")

# The scalar types: numpy dtype names, and one-letter codes (upper case: a pointer to
# that type) shared with the AOT table (csrc/kernel_table.h), which derives its codes
# from the compiled function types: a mismatch with this parser fails the launch.
DTYPE_NAMES = {"float": "float32", "double": "float64", "int": "int32", "long long": "int64"}
TYPE_CODES = {"float": "f", "double": "d", "int": "i", "long long": "q"}

_ENTRY = re.compile(
    r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\((?P<bounds>[^()]*)\)\s+)?'
    r"(?P<name>[A-Za-z_]\w*)\s*\((?P<params>[^()]*)\)"
)
# TG_ENTRY_F32_F64( -- its arguments are split by _macro_arguments (bodies hold commas
# and parentheses no regular expression can balance).
ENTRY_MACRO = "TG_ENTRY_F32_F64"
_MACRO = re.compile(rf"\b{ENTRY_MACRO}\s*\(")
# What the macro's T becomes in each entry point it emits (kernels/common.cuh).
MACRO_DTYPES = (("f32", "float"), ("f64", "double"))
_BOUNDS = re.compile(r"__launch_bounds__\s*\((?P<bounds>[^()]*)\)")
_NO_BOUNDS = ("", "TG_NO_LAUNCH_BOUNDS")
_PARAM = re.compile(
    r"(?P<const>const\s+)?(?P<type>float|double|int|long\s+long)\b\s*"
    r"(?:(?P<pointer>\*)\s*(?:__restrict__\s*)?)?(?P<name>[A-Za-z_]\w*)"
)


class KernelSourceError(ValueError):
    """A kernel file that breaks the contract."""


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str  # a key of DTYPE_NAMES: the pointee type for a pointer
    is_pointer: bool
    is_const: bool

    @property
    def dtype_name(self):
        return DTYPE_NAMES[self.ctype]

    @property
    def type_code(self):
        code = TYPE_CODES[self.ctype]
        return code.upper() if self.is_pointer else code

    def __str__(self):
        if self.is_pointer:
            return f"{'const ' if self.is_const else ''}{self.ctype}* {self.name}"
        return f"{self.ctype} {self.name}"


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple  # of Param
    path: Path
    line: int
    # __launch_bounds__'s maximum threads per block (None: not declared): a launch with
    # more fails on a GPU, so every path refuses it.
    max_threads: int = None

    @property
    def type_codes(self):
        return "".join(p.type_code for p in self.params)

    def __str__(self):
        return f"{self.name}({', '.join(map(str, self.params))})"


def blank_comments(text):
    """``text`` with comments and string contents replaced by spaces, newlines kept (so
    offsets and line numbers stay), except the "C" of extern "C"."""
    def blank(match):
        token = match.group(0)
        if token == '"C"':
            return token
        if token.startswith('"'):
            return '"' + re.sub(r"[^\n]", " ", token[1:-1]) + '"'
        return re.sub(r"[^\n]", " ", token)

    return re.sub(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"', blank, text, flags=re.DOTALL)


def _parse_param(text, kernel, where):
    words = " ".join(text.split())
    match = _PARAM.fullmatch(words)
    if not match:
        raise KernelSourceError(
            f"{where}: kernel {kernel}: parameter {words!r} is outside the contract (allowed: "
            "T* or const T* with T in float, double, int, long long; int, long long, float, "
            "double; one declaration per parameter, no default arguments)")
    ctype = " ".join(match["type"].split())
    is_pointer = bool(match["pointer"])
    return Param(match["name"], ctype, is_pointer, bool(match["const"]) and is_pointer)


def _signature(name, params_text, bounds, path, line):
    """The Signature of entry point ``name`` at ``path``:``line``: ``params_text`` between
    its parentheses, ``bounds`` the inside of its __launch_bounds__(...) or None."""
    where = f"{path}:{line}"
    params_text = params_text.strip()
    pieces = [] if params_text in ("", "void") else params_text.split(",")
    params = tuple(_parse_param(piece, name, where) for piece in pieces)
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise KernelSourceError(f"{where}: kernel {name}: repeated parameter name")
    max_threads = None
    if bounds is not None:
        first = bounds.split(",")[0].strip()
        if not first.isdigit():
            raise KernelSourceError(f"{where}: kernel {name}: __launch_bounds__ "
                                    f"must start with a literal thread count, got {first!r}")
        max_threads = int(first)
    return Signature(name, params, Path(path), line, max_threads)


def _macro_arguments(code, start, where):
    """The top-level arguments of the macro call whose "(" is at ``code[start]``, and the
    offset after its ")".  Only parentheses nest in a macro argument (a comma inside <>
    splits it, as the preprocessor does)."""
    depth, pieces, begin = 0, [], start + 1
    for i in range(start, len(code)):
        ch = code[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                pieces.append(code[begin:i])
                return pieces, i + 1
        elif ch == "," and depth == 1:
            pieces.append(code[begin:i])
            begin = i + 1
    raise KernelSourceError(f"{where}: {ENTRY_MACRO}( is never closed")


def _macro_signatures(code, match, path):
    """The two signatures of one TG_ENTRY_F32_F64(name, bounds_f32, bounds_f64, (params),
    body...) call (kernels/common.cuh), f32 first."""
    line = code.count("\n", 0, match.start()) + 1
    where = f"{path}:{line}"
    args, _ = _macro_arguments(code, match.end() - 1, where)
    if len(args) < 5:
        raise KernelSourceError(f"{where}: {ENTRY_MACRO} takes (name, bounds_f32, bounds_f64, "
                                f"(params), body...), got {len(args)} argument(s)")
    name, params = args[0].strip(), " ".join(args[3].split())
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise KernelSourceError(f"{where}: {ENTRY_MACRO}: {name!r} is not a kernel name")
    if not re.fullmatch(r"\([^()]*\)", params):
        raise KernelSourceError(f"{where}: {ENTRY_MACRO} {name}: the fourth argument must be "
                                f"the parameter list in parentheses, got {params!r}")
    signatures = []
    for (suffix, ctype), bounds_text in zip(MACRO_DTYPES, args[1:3]):
        bounds_text = " ".join(bounds_text.split())
        bounds = _BOUNDS.fullmatch(bounds_text)
        if bounds is None and bounds_text not in _NO_BOUNDS:
            raise KernelSourceError(
                f"{where}: {ENTRY_MACRO} {name}: bounds must be __launch_bounds__(...) or "
                f"TG_NO_LAUNCH_BOUNDS, got {bounds_text!r}")
        signatures.append(_signature(f"{name}_{suffix}", re.sub(r"\bT\b", ctype, params[1:-1]),
                                     bounds["bounds"] if bounds else None, path, line))
    return signatures


def parse_signatures(text, path="<string>"):
    """The entry points of one kernel file, in order: each extern "C" __global__ function
    and the two of each TG_ENTRY_F32_F64 call."""
    code = blank_comments(text)
    found, covered = [], set()
    for match in _ENTRY.finditer(code):
        line = code.count("\n", 0, match.start()) + 1
        covered.add(code.index("__global__", match.start()))
        found.append((match.start(), [_signature(match["name"], match["params"],
                                                 match["bounds"], path, line)]))
    for match in _MACRO.finditer(code):
        found.append((match.start(), _macro_signatures(code, match, path)))
    for hit in re.finditer(r"\b__global__\b", code):
        if hit.start() not in covered:
            line = code.count("\n", 0, hit.start()) + 1
            raise KernelSourceError(
                f"{path}:{line}: a __global__ function outside the contract: entry points are "
                f'written {ENTRY_MACRO}(...) or `extern "C" __global__ void <name>(<params>)` '
                "(kernel bodies are __device__ templates)")
    return [sig for _, group in sorted(found, key=lambda f: f[0]) for sig in group]


def repo_kernel_dir():
    """<repo>/kernels, beside the tinygen package of an editable install or a checkout."""
    return Path(__file__).resolve().parents[3] / "kernels"


def kernel_dir():
    """The installed package's tinygen/_kernels (copied there by setup.py), else the
    repository's kernels/."""
    installed = Path(__file__).resolve().parents[2] / "_kernels"
    if (installed / COMMON_HEADER).is_file():
        return installed
    repo = repo_kernel_dir()
    if (repo / COMMON_HEADER).is_file():
        return repo
    raise FileNotFoundError(
        f"no CUDA kernel sources: neither {installed} nor {repo} holds {COMMON_HEADER}")


@dataclass(frozen=True)
class KernelSources:
    """Kernel files compiled together: ``files`` (default: every ``*.cu`` of
    ``directory``), with ``directory`` (which holds common.cuh and emulation.h) on the
    include path.  Tests pass their own ``files`` to build test-only kernels.

    Texts are read once, at construction: the digest, the signatures and the
    translation unit all describe that snapshot."""

    directory: Path
    files: tuple = None

    def __post_init__(self):
        directory = Path(self.directory).resolve()
        if self.files is None:
            files = tuple(sorted(directory.glob("*.cu")))
        else:
            files = tuple(Path(p).resolve() for p in self.files)
        headers = tuple(sorted(p for p in directory.iterdir() if p.suffix in HEADER_SUFFIXES))
        texts = {p: p.read_text(encoding="utf-8") for p in files + headers}
        object.__setattr__(self, "directory", directory)
        object.__setattr__(self, "files", files)
        object.__setattr__(self, "_texts", texts)

    @functools.cached_property
    def signatures(self):
        """name -> Signature for every entry point of every file."""
        found = {}
        for path in self.files:
            for sig in parse_signatures(self._texts[path], path):
                if sig.name in found:
                    first = found[sig.name]
                    raise KernelSourceError(
                        f"{sig.path}:{sig.line}: kernel {sig.name} is also defined at "
                        f"{first.path}:{first.line}")
                found[sig.name] = sig
        return found

    def signature(self, name):
        try:
            return self.signatures[name]
        except KeyError:
            raise LookupError(
                f"unknown CUDA kernel {name!r}; the kernels are: "
                f"{', '.join(sorted(self.signatures)) or '(none)'}") from None

    @functools.cached_property
    def digest(self):
        """sha256 over the names and contents of every file (headers included)."""
        h = hashlib.sha256()
        for path in sorted(self._texts):
            h.update(str(path).encode() + b"\0" + self._texts[path].encode() + b"\0")
        return h.hexdigest()

    def translation_unit(self):
        """The C++ text that all launchers compile: one #include per kernel file
        (kernel-directory files by name, found through -I<directory>)."""
        lines = []
        for path in self.files:
            name = path.name if path.parent == self.directory else str(path)
            lines.append(f'#include "{name}"')
        return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=None)
def default_sources():
    """The package's kernels, read once per process."""
    return KernelSources(kernel_dir())
