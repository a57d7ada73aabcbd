"""Counter-based random numbers keyed by (seed, child id, month, decision) (DESIGN §2, randomness).

A draw depends only on its key, never on thread count, chunking or loop order, so scenarios that share a
seed give the same child the same draw for the same decision (common random numbers).
"""
from __future__ import annotations

import numpy as np
from numba import njit

M1 = np.uint64(0x9E3779B97F4A7C15)
M2 = np.uint64(0xD1B54A32D192ED03)
M3 = np.uint64(0xBF58476D1CE4E5B9)
M4 = np.uint64(0x94D049BB133111EB)
MONTH_OFFSET = 8192  # keeps spin-up (negative) months positive inside the key
S30, S27, S31, S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)

# decision ids: one per kind of choice, so draws for different choices are independent
DEC_EVENT, DEC_DEST, DEC_PROVIDER, DEC_SHORT, DEC_NEW_LA = 0, 1, 2, 3, 4
DEC_SEX, DEC_NEED, DEC_AGE, DEC_LA, DEC_NEWBORN = 10, 11, 12, 13, 14

# arrival streams (part of the child id)
STREAM_INIT, STREAM_CIN, STREAM_CPP, STREAM_CARE, STREAM_REREFER, STREAM_UASC, STREAM_SPINUP = 0, 1, 2, 3, 4, 5, 6
STREAM_NAMES = ("init", "cin_new", "cpp_new", "care_new", "rereferral", "uasc", "spinup")


@njit(inline="always", cache=True)
def draw32(seed, cid, month, dec):
    """One 32-bit uniform draw (as uint64 in [0, 2**32)) from a splitmix64 finaliser over the key."""
    z = (np.uint64(seed) + np.uint64(cid) * M1
         + np.uint64((month + MONTH_OFFSET) * 64 + dec) * M2)
    z = (z ^ (z >> S30)) * M3
    z = (z ^ (z >> S27)) * M4
    z = z ^ (z >> S31)
    return z >> S32


@njit(cache=True)
def make_id(month, stream, k):
    """Stable child id keyed by arrival: (month, stream, k-th arrival of that stream in that month)."""
    return (np.uint64(month + MONTH_OFFSET) << np.uint64(40)) | (np.uint64(stream) << np.uint64(36)) | np.uint64(k)


def derive_seed(run_seed: int, *keys: int) -> int:
    """A 64-bit seed derived deterministically from the run seed and integer keys (replicate, purpose)."""
    ss = np.random.SeedSequence([int(run_seed) & 0xFFFFFFFFFFFFFFFF, *[int(k) for k in keys]])
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def generator(run_seed: int, *keys: int) -> np.random.Generator:
    """A NumPy generator for serial, count-level draws (arrival counts, initial-stock resampling)."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence([int(run_seed) & 0xFFFFFFFFFFFFFFFF,
                                                                        *[int(k) for k in keys]])))
