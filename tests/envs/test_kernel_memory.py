"""Borrowed handles and prefetch hints change no value and leak no reference."""

from __future__ import annotations

import sys

import numba as nb
import numpy as np

from envs.kernel_memory import borrow, prefetch_row, prefetch_span


@nb.njit
def _scale_through_handle(array: np.ndarray, factor: float) -> float:
    handle = borrow(array)
    total = 0.0
    for i in range(handle.shape[0]):
        for j in range(handle.shape[1]):
            handle[i, j] *= factor
            total += handle[i, j]
    view = handle[1]  # views of a handle are handles too
    return total + view.sum()


@nb.njit
def _sum_with_prefetch(array: np.ndarray) -> float:
    total = 0.0
    for i in range(array.shape[0]):
        if i + 1 < array.shape[0]:
            prefetch_row(array, i + 1)
            prefetch_span(array, i + 1, 1, array.shape[1])
        for j in range(array.shape[1]):
            total += array[i, j]
    return total


def test_borrowed_handle_reads_and_writes_the_same_memory() -> None:
    array = np.arange(12.0).reshape(3, 4)
    total = _scale_through_handle(array, 2.0)
    np.testing.assert_array_equal(array, 2.0 * np.arange(12.0).reshape(3, 4))
    assert total == array.sum() + array[1].sum()


def test_borrowing_leaves_the_reference_count_alone() -> None:
    array = np.ones((4, 4))
    _scale_through_handle(array, 1.0)  # compile
    before = sys.getrefcount(array)
    for _ in range(1000):
        _scale_through_handle(array, 1.0)
    assert sys.getrefcount(array) == before


def test_prefetch_is_only_a_hint() -> None:
    array = np.random.default_rng(0).random((64, 37))
    copy = array.copy()
    assert _sum_with_prefetch(array) == _sum_with_prefetch.py_func(copy)
    np.testing.assert_array_equal(array, copy)
