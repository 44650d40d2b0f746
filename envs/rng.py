"""Per-environment random streams for numba kernels (xoroshiro128+).

Numba's ``np.random`` has one global state per thread, so two batched environments
stepped in turn would share it and lose reproducibility. Each environment therefore
carries its own 128-bit state in a ``uint64[B, 2]`` array, seeded from Gymnasium's
``np_random`` (or a ``SeedSequence``), and every draw in the simulator goes through the
functions here.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_U64 = np.uint64
_MASK53 = 2.0**-53


@nb.njit(inline="always", cache=True)
def _rotl(x: np.uint64, k: int) -> np.uint64:
    return (x << _U64(k)) | (x >> _U64(64 - k))


@nb.njit(inline="always", cache=True)
def next_u64(rng: np.ndarray, b: int) -> np.uint64:
    """Advance stream ``b`` of ``rng`` (``uint64[B, 2]``) and return 64 random bits."""
    s0 = rng[b, 0]
    s1 = rng[b, 1]
    result = s0 + s1
    s1 ^= s0
    rng[b, 0] = _rotl(s0, 24) ^ s1 ^ (s1 << _U64(16))
    rng[b, 1] = _rotl(s1, 37)
    return result


@nb.njit(inline="always", cache=True)
def uniform(rng: np.ndarray, b: int) -> float:
    """A float in [0, 1) with 53 random bits."""
    return float(next_u64(rng, b) >> _U64(11)) * _MASK53


@nb.njit(inline="always", cache=True)
def uniform_open(rng: np.ndarray, b: int) -> float:
    """A float in (0, 1]: safe for ``log``."""
    return 1.0 - uniform(rng, b)


@nb.njit(inline="always", cache=True)
def randint(rng: np.ndarray, b: int, n: int) -> int:
    """An integer uniform in ``[0, n)``."""
    return int(uniform(rng, b) * n)


@nb.njit(inline="always", cache=True)
def exponential(rng: np.ndarray, b: int) -> float:
    """A draw of Exp(1)."""
    return -math.log(uniform_open(rng, b))


@nb.njit(inline="always", cache=True)
def standard_normal(rng: np.ndarray, b: int) -> float:
    """A draw of N(0, 1) by Box-Muller (one of the pair is discarded for simplicity)."""
    u1 = uniform_open(rng, b)
    u2 = uniform(rng, b)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@nb.njit(cache=True)
def gamma_unit_mean(rng: np.ndarray, b: int, shape: float) -> float:
    """A Gamma(shape, 1/shape) draw: mean 1, coefficient of variation 1/sqrt(shape).

    ``shape <= 0`` means a deterministic 1.0; ``shape == 1`` is Exp(1). Uses
    Marsaglia-Tsang, with the ``U**(1/a)`` boost for ``shape < 1``.
    """
    if shape <= 0.0:
        return 1.0
    if shape == 1.0:
        return exponential(rng, b)
    a = shape
    boost = 1.0
    if a < 1.0:
        boost = uniform_open(rng, b) ** (1.0 / a)
        a += 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    result = 1.0
    accepted = False
    while not accepted:  # no ``while True``: numba 0.68 can miscompile it
        x = standard_normal(rng, b)
        v = 1.0 + c * x
        if v > 0.0:
            v = v * v * v
            u = uniform_open(rng, b)
            if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
                result = d * v
                accepted = True
    return result * boost / shape


def seed_streams(seed_source: np.random.Generator, n: int) -> np.ndarray:
    """Draw ``n`` independent non-zero xoroshiro states from a numpy Generator."""
    state = seed_source.integers(1, 2**63 - 1, size=(n, 2), dtype=np.int64)
    return state.astype(np.uint64)
