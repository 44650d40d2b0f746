"""Checks of the arrays handed to compiled kernels, so they stay inside memory.

The numba kernels run without bounds checks and the hot ones are called through an
entry point that skips numba's type checks, so an index out of range or an array of
the wrong dtype, length or layout reads or writes outside the state arrays. Every
public method that passes caller arrays to a kernel runs them through these first:
O(n) numpy, once per call, and no copy when the input already fits.
"""

from __future__ import annotations

import numpy as np

_SMALL_BATCH = 16
"""Up to this many actions, a Python loop checks them faster than a numpy reduction."""


def check_actions(actions: object, num_envs: int, n_actions: int) -> np.ndarray:
    """One batched step's actions as the compiled step loops need them.

    The input must hold exactly ``num_envs`` integers (any shape, as SB3 passes
    ``[B]`` or ``[B, 1]``) in ``[0, n_actions)``. Floats are refused rather than
    truncated. Returns a C-contiguous ``int64[num_envs]``, the input itself when it
    already is one.

    Raises:
        ValueError: naming the dtype, the count or the first entry out of range.
    """
    acts = np.asarray(actions)
    if acts.dtype.kind not in "iu":
        raise ValueError(
            "actions: expected integers (one action index per environment), "
            f"got dtype {acts.dtype}"
        )
    if acts.size != num_envs:
        raise ValueError(
            f"actions: expected {num_envs} entries (one per environment), "
            f"got {acts.size} (shape {acts.shape})"
        )
    if acts.ndim != 1:
        acts = acts.reshape(num_envs)
    acts = np.ascontiguousarray(acts, dtype=np.int64)
    if num_envs <= _SMALL_BATCH:  # a single env's step: numpy's reduction costs more
        out_of_range = not all(0 <= a < n_actions for a in acts.tolist())
    else:  # one pass: viewed as unsigned, a negative entry is larger than any action
        out_of_range = bool(acts.view(np.uint64).max() >= n_actions)
    if out_of_range:
        bad = int(np.flatnonzero((acts < 0) | (acts >= n_actions))[0])
        got = np.asarray(actions).reshape(num_envs)[bad]
        raise ValueError(
            f"actions[{bad}]: expected an integer in [0, {n_actions}), got {got}"
        )
    return acts


def check_indices(
    name: str, values: object, length: int | None, low: int, high: int
) -> np.ndarray:
    """A 1-D integer array with entries in ``[low, high)``, as C-contiguous int64.

    ``length`` (None: any) is the number of entries expected.

    Raises:
        ValueError: naming ``name``, what was expected and what came.
    """
    array = np.asarray(values)
    size = "" if length is None else f" of {length} entries"
    if (
        array.dtype.kind not in "iu"
        or array.ndim != 1
        or (length is not None and array.shape[0] != length)
    ):
        raise ValueError(
            f"{name}: expected a 1-D integer array{size}, "
            f"got dtype {array.dtype} and shape {array.shape}"
        )
    array = np.ascontiguousarray(array, dtype=np.int64)
    if array.size and (array.min() < low or array.max() >= high):
        bad = int(np.flatnonzero((array < low) | (array >= high))[0])
        raise ValueError(
            f"{name}[{bad}]: expected an integer in [{low}, {high}), "
            f"got {np.asarray(values)[bad]}"
        )
    return array


def check_amounts(name: str, values: object, length: int) -> np.ndarray:
    """A 1-D array of ``length`` finite numbers >= 0, as C-contiguous float64.

    Raises:
        ValueError: naming ``name``, what was expected and what came.
    """
    return _amounts(name, values, (length,), f"a 1-D array of {length} numbers")


def check_amount_rows(name: str, values: object, rows: int, cols: int) -> np.ndarray:
    """A ``rows x cols`` array of finite numbers >= 0, as C-contiguous float64.

    Raises:
        ValueError: naming ``name`` (and the first bad entry), what was expected and
            what came.
    """
    return _amounts(name, values, (rows, cols), f"a {rows} x {cols} array of numbers")


def _amounts(
    name: str, values: object, shape: tuple[int, ...], what: str
) -> np.ndarray:
    """``values`` of ``shape``, finite and >= 0, as float64; else name the first bad."""
    array = np.asarray(values)
    if array.dtype.kind not in "iuf" or array.shape != shape:
        raise ValueError(
            f"{name}: expected {what}, got dtype {array.dtype} and shape {array.shape}"
        )
    array = np.ascontiguousarray(array, dtype=np.float64)
    ok = np.isfinite(array) & (array >= 0.0)
    if not ok.all():
        bad = tuple(int(k) for k in np.argwhere(~ok)[0])
        where = ", ".join(map(str, bad))
        raise ValueError(
            f"{name}[{where}]: expected a finite number >= 0, got {array[bad]}"
        )
    return array
