"""Struct-of-arrays population with preallocated capacity and recycled slots (DESIGN §2, §6 LASER)."""
from __future__ import annotations

import numpy as np

from agents import states as S
from sim import kernel

FIELDS = (("state", np.uint8), ("age", np.uint8), ("flags", np.uint8), ("epi", np.uint8), ("plc", np.uint8),
          ("prev", np.uint8), ("la", np.uint8), ("cid", np.uint64), ("start_yr", np.uint8),
          ("cease_yr", np.uint8), ("cease_cell", np.uint16))
BYTES_PER_SLOT = sum(np.dtype(t).itemsize for _, t in FIELDS) + 4  # + the int32 vacancy list


class Population:
    """Children as parallel arrays; a vacant slot has state 255 and is reused by the next arrival."""

    def __init__(self, capacity: int):
        capacity = max(int(capacity), 1024)
        for name, dt in FIELDS:
            arr = np.zeros(capacity, dtype=dt)
            setattr(self, name, arr)
        self.state[:] = S.VACANT
        self.n_used = 0
        self._free = np.zeros(1024, dtype=np.int64)
        # vacancy lists written by the transition kernel; valid until the next allocation (scratch, 4 B a slot)
        self.vac_idx = np.zeros(capacity, dtype=np.int32)
        self.vac_cnt = np.zeros(kernel.NCHUNK, dtype=np.int64)
        self.vac_fresh = False

    @property
    def capacity(self) -> int:
        return self.state.shape[0]

    def arrays(self):
        return tuple(getattr(self, n) for n, _ in FIELDS)

    def grow(self, min_capacity: int) -> None:
        new = max(int(min_capacity), int(self.capacity * 1.5))
        for name, dt in FIELDS:
            old = getattr(self, name)
            arr = np.zeros(new, dtype=dt)
            if name == "state":
                arr[:] = S.VACANT
            arr[: old.shape[0]] = old
            setattr(self, name, arr)
        self.vac_idx = np.zeros(new, dtype=np.int32)
        self.vac_fresh = False

    def allocate(self, n: int) -> np.ndarray:
        """Slots for ``n`` arrivals: vacant slots first (lowest index first), then fresh ones at the end."""
        if self._free.shape[0] < n:
            self._free = np.zeros(max(n, 2 * self._free.shape[0]), dtype=np.int64)
        if self.vac_fresh:  # the kernel has just listed the vacancies: no rescan
            m = kernel.take_vacancies(self.vac_idx, self.vac_cnt, self.n_used, n, self._free)
        else:
            m = kernel.find_free_slots(self.state, self.n_used, n, self._free)
        self.vac_fresh = False
        slots = np.empty(n, dtype=np.int64)
        slots[:m] = self._free[:m]
        extra = n - m
        if extra:
            if self.n_used + extra > self.capacity:
                self.grow(self.n_used + extra)
            slots[m:] = np.arange(self.n_used, self.n_used + extra)
            self.n_used += extra
        return slots

    def alive(self) -> int:
        return int(np.count_nonzero(self.state[: self.n_used] != S.VACANT))

    def alive_mask(self) -> np.ndarray:
        return self.state[: self.n_used] != S.VACANT
