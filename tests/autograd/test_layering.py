"""The engine imports nothing from the layers above it (DESIGN.md: dependencies point down).

Every import statement in tinygen/autograd/*.py, read from the source (so that a lazy
import inside a function counts too), must name the standard library, numpy, or
tinygen.autograd / tinygen.backend.
"""
import ast
from pathlib import Path

import numpy as np
import pytest

import tinygen as tg
from tinygen.autograd import engine, primitives, tensor

AUTOGRAD = Path(tg.__file__).resolve().parent / "autograd"
ALLOWED = ("tinygen.autograd", "tinygen.backend")


def _imported_modules(path):
    """(line, absolute module name) of every import in ``path``."""
    package = "tinygen.autograd"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            # ``from .. import ops`` imports the submodule tinygen.ops
            names = [f"{module}.{a.name}" for a in node.names] if not node.module else [module]
            for name in names:
                yield node.lineno, name


def _upward_imports(folder=AUTOGRAD):
    found = []
    for path in sorted(folder.glob("*.py")):
        for line, module in _imported_modules(path):
            if module.split(".")[0] == "tinygen" and not module.startswith(ALLOWED):
                found.append(f"{path.name}:{line} imports {module}")
    return found


def test_autograd_imports_nothing_from_the_layers_above():
    assert _upward_imports() == []


def test_the_scan_sees_relative_absolute_and_lazy_imports(tmp_path):
    # The check must be able to fail: plant each form of upward import.
    planted = tmp_path / "autograd"
    planted.mkdir()
    (planted / "bad.py").write_text(
        "from .. import ops\n"
        "from ..ops.shape import sum_to\n"
        "import tinygen.nn\n"
        "def f():\n    from ..models import vae\n"
        "from .engine import run_backward\n"
        "from ..backend import array_module\n"
    )
    assert _upward_imports(planted) == [
        "bad.py:1 imports tinygen.ops", "bad.py:2 imports tinygen.ops.shape",
        "bad.py:3 imports tinygen.nn", "bad.py:5 imports tinygen.models",
    ]


def test_the_engine_undoes_broadcasting_and_clones_with_its_own_primitives():
    assert engine.sum_to is primitives.sum_to and engine.clone is primitives.clone
    # and the op layer re-exports the same objects: one definition
    assert tg.sum_to is primitives.sum_to and tg.broadcast_to is primitives.broadcast_to
    assert tg.clone is primitives.clone


def test_sum_to_and_broadcast_to_are_each_others_adjoint_to_second_order():
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((3, 1)), dtype=tg.float64, requires_grad=True)
    assert tg.testing.gradcheck(lambda t: primitives.broadcast_to(t, (2, 3, 4)), x)
    assert tg.testing.gradgradcheck(lambda t: primitives.broadcast_to(t, (2, 3, 4)), x)
    y = tg.tensor(rng.standard_normal((2, 3, 4)), dtype=tg.float64, requires_grad=True)
    assert tg.testing.gradgradcheck(lambda t: primitives.sum_to(t, (3, 1)) ** 2, y)
    with pytest.raises(ValueError, match=r"cannot sum a tensor of shape \(2, 3, 4\) to \(2, 4\)"):
        primitives.sum_to(y, (2, 4))


def test_tensor_methods_use_the_op_layer_bound_by_tinygen_ops():
    assert tensor.ops is tg.ops
    with pytest.raises(RuntimeError, match="tinygen.ops is not imported yet"):
        tensor._OpsNotBound().add


def test_size_of_a_dim_checks_the_dim():
    x = tg.zeros(2, 3)
    assert x.size(0) == 2 and x.size(-1) == 3
    with pytest.raises(ValueError, match=r"axis 0 is out of range for a tensor with 0 dimensions"):
        tg.tensor(1.0).size(0)  # was an IndexError from the shape tuple
    with pytest.raises(TypeError, match="axis must be an int"):
        x.size(1.0)
