"""numpy's own inner loop of a ufunc, called from numba code (no Python, no GIL).

Why: ``np.tanh``'s float loop (numpy's SIMD one) is faster than the vectorised tanh of
``_vmath.py`` and is the reference's, bit for bit.  Shared out among the pool's threads
as Python calls (``chunks.parallel_range``) each slice costs a GIL hand-over, and the
threads' sleeps and wake-ups (~50-80 us and ~0.2 ms of system time per 2^20-element
tanh at 2 threads); called from a numba kernel, the slices go out through
``chunks.share_rows`` like every other activation's.

A ufunc's loops are in its ``PyUFuncObject`` (numpy's public C API, ``ufuncobject.h``):
after the object header, ``int nin, nout, nargs, identity``, then
``PyUFuncGenericFunction *functions``, ``void **data``, ``int ntypes, reserved1``,
``char *name``, ``char *types``.  ``loop`` reads them through ctypes and checks them
against what Python sees (name, nargs, ntypes, the type numbers of the loop's row); on
any mismatch (another layout, not CPython) it returns None and callers keep numpy's
Python call.  A loop is ``void f(char **args, npy_intp *dimensions, npy_intp *steps,
void *data)``; numpy runs the same function on whatever slices it is given, so a slice
gets the bits ``np.tanh`` gives it in the whole array.
"""
import ctypes
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_HEADER = object.__basicsize__      # (the object header the ufunc's fields follow)


class _Fields(ctypes.Structure):
    _fields_ = [("nin", ctypes.c_int), ("nout", ctypes.c_int), ("nargs", ctypes.c_int),
                ("identity", ctypes.c_int), ("functions", ctypes.c_void_p),
                ("data", ctypes.c_void_p), ("ntypes", ctypes.c_int),
                ("reserved1", ctypes.c_int), ("name", ctypes.c_char_p),
                ("types", ctypes.c_void_p)]


_found = {}


def loop(ufunc, dtype):
    """(function address, data address) of ``ufunc``'s loop for one input and one output
    of ``dtype``, or None (no such loop, or the object's layout is not the expected one)."""
    dtype = np.dtype(dtype)
    key = (ufunc, dtype)
    if key not in _found:
        _found[key] = _lookup(ufunc, dtype)
    return _found[key]


def _lookup(ufunc, dtype):
    if (platform.python_implementation() != "CPython" or not isinstance(ufunc, np.ufunc)
            or ufunc.nin != 1 or ufunc.nout != 1):
        return None
    signature = f"{dtype.char}->{dtype.char}"
    if signature not in ufunc.types:
        return None
    index = ufunc.types.index(signature)
    fields = _Fields.from_address(id(ufunc) + _HEADER)
    name = fields.name
    if (name is None or name.decode(errors="replace") != ufunc.__name__
            or (fields.nin, fields.nout, fields.nargs) != (1, 1, 2)
            or fields.ntypes != ufunc.ntypes or not fields.functions or not fields.types):
        return None
    row = ctypes.string_at(fields.types + index * 2, 2)
    if list(row) != [dtype.num, dtype.num]:
        return None
    function = ctypes.c_void_p.from_address(fields.functions + index * 8).value
    data = ctypes.c_void_p.from_address(fields.data + index * 8).value if fields.data else 0
    return (function, data or 0) if function else None


_I8P, _I64 = ir.IntType(8).as_pointer(), ir.IntType(64)


@intrinsic
def _call(typingctx, function, data, words):
    """``function(&words[0], &words[2], &words[3], data)``: a ufunc loop's (args,
    dimensions, steps) laid out in one int64 array (two pointers, a count, two steps)."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[2])(context, builder, args[2])
        base = array.data
        kind = ir.FunctionType(ir.VoidType(), [_I8P.as_pointer(), _I64.as_pointer(),
                                               _I64.as_pointer(), _I8P])
        callee = builder.inttoptr(args[0], kind.as_pointer())
        builder.call(callee, [builder.bitcast(base, _I8P.as_pointer()),
                              builder.gep(base, [ir.Constant(_I64, 2)]),
                              builder.gep(base, [ir.Constant(_I64, 3)]),
                              builder.inttoptr(args[1], _I8P)])
        return context.get_dummy_value()

    return types.void(types.int64, types.int64, words), codegen


@njit(cache=True, nogil=True)
def unary(function, data, x, out):
    """out[:] = the ufunc loop at ``function`` (``data``: its data pointer) of x; x and
    out 1-D contiguous arrays of one dtype, of the same length (``chunks.share_rows``
    passes slices of them)."""
    words = np.empty(5, np.int64)
    words[0] = x.ctypes.data
    words[1] = out.ctypes.data
    words[2] = x.size
    words[3] = x.itemsize
    words[4] = out.itemsize
    _call(function, data, words)
