"""Memory helpers for the batched numba kernels: borrowed handles, prefetch hints.

**Borrowed handles.** Numba counts references to every array handed to a compiled
helper (an atomic increment and decrement of its memory record per array per call).
In a kernel that runs small helpers millions of times per second with a dozen
arrays each, that bookkeeping costs more than the simulation. :func:`borrow` returns
a handle to the same memory with no memory record, so the counting becomes a null
check. Only for arrays that outlive every use of the handle: an entry point borrows
the arrays it was given, which its caller keeps alive for the whole call; a handle
is never returned to Python or stored.

**Prefetch.** The state of B environments does not fit in the CPU caches, so a
kernel that steps them in turn would wait on memory at every environment. While
environment ``b`` is simulated, :func:`prefetch_row` asks for the rows of a later
one (a hint: it changes no value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _borrow(typingctx: Any, array: types.Array) -> Any:
    if not isinstance(array, types.Array):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        source = context.make_array(array)(context, builder, value=args[0])
        handle = context.make_array(array)(context, builder)
        for field in ("parent", "nitems", "itemsize", "data", "shape", "strides"):
            setattr(handle, field, getattr(source, field))
        null = cgutils.get_null_value(handle.meminfo.type)  # type: ignore[no-untyped-call]
        handle.meminfo = null
        return handle._getvalue()

    return array(array), codegen


@intrinsic
def _prefetch(typingctx: Any, array: types.Array, offset: types.Integer) -> Any:
    if not isinstance(array, types.Array) or not isinstance(offset, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        handle = context.make_array(array)(context, builder, value=args[0])
        data = builder.bitcast(handle.data, ir.IntType(8).as_pointer())
        address = builder.gep(data, [args[1]])
        i32 = ir.IntType(32)
        hint = ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
        name = "llvm.prefetch.p0"
        function = cgutils.get_or_insert_function(builder.module, hint, name)  # type: ignore[no-untyped-call]
        # for writing, keep in every cache level, data (not instruction) cache
        builder.call(function, [address, i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(array, offset), codegen


borrow = cast(Callable[[np.ndarray], np.ndarray], _borrow)
"""The same array without its memory record (inside numba kernels only)."""

prefetch = cast(Callable[[np.ndarray, int], None], _prefetch)
"""Hint the CPU to fetch the cache line at byte ``offset`` of an array's data."""


@njit(inline="always")
def prefetch_row(array: np.ndarray, row: int) -> None:
    """Prefetch row ``row`` of a C-contiguous array, one cache line at a time."""
    stride = array.strides[0]
    start = row * stride
    for offset in range(start, start + stride, 64):
        prefetch(array, offset)


@njit(inline="always")
def prefetch_span(array: np.ndarray, row: int, first: int, stop: int) -> None:
    """Prefetch items ``first .. stop - 1`` of row ``row`` of a C-contiguous array."""
    base = row * array.strides[0]
    size = array.itemsize
    for offset in range(base + first * size, base + stop * size, 64):
        prefetch(array, offset)
    prefetch(array, base + (stop - 1) * size)  # the last line, when not aligned
