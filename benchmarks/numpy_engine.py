"""A plain-NumPy closed-cohort engine, vectorised over children (the benchmark's middle baseline).

Same compiled tables and the same month rule as ``sim/kernel.step_month`` and ``agents/reference_model.py``,
applied with whole-array operations (no per-child Python loop). Draws come from one NumPy generator, so it
is statistically equivalent to the engine, not draw-for-draw identical. Leavers are dropped each month.
A first-true-threshold search is a count of thresholds at or below the draw (thresholds are cumulative).
"""
from __future__ import annotations

import numpy as np

from agents import attributes as A
from agents import events as E
from agents import states as S
from agents.hazards import ROWS_PER_STATE, HazardTables

FIELDS = ("state", "age", "flags", "epi", "plc", "prev", "la")
ENTRY_KIND, MOVE_KIND = 0, 1
EV_REUNIFIED = E.EV["REUNIFIED"]


def pick(thresholds: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per row, the first slot whose cumulative threshold exceeds the draw (n_slots if none)."""
    return (thresholds <= r[:, None]).sum(axis=1)


class NumpyCohort:
    """A closed cohort as int64 arrays, advanced one month at a time by vectorised rules."""

    def __init__(self, pop, tables: HazardTables, seed: int, first_month: int = 1, returned_max: int = 72,
                 la_cum=None):
        m = pop.alive_mask()
        for f in FIELDS:
            setattr(self, f, getattr(pop, f)[: pop.n_used][m].astype(np.int64))
        self.n_start = int(m.sum())
        self.gen = np.random.Generator(np.random.PCG64(seed))
        self.month = first_month - 1
        self.returned_max = int(returned_max)
        self.thr = tables.thr.astype(np.int64)
        self.event_of_slot = tables.event_of_slot
        self.dest_thr = tables.dest_thr.astype(np.int64).reshape(2, -1, E.N_DEST)
        self.dest_state = tables.dest_state
        self.short_thr = tables.short_thr.astype(np.int64)
        self.agency_thr = tables.agency_thr.astype(np.int64)
        self.la_cum = np.array([2**32 - 1] if la_cum is None else la_cum, dtype=np.int64)

    def draws(self, n: int) -> np.ndarray:
        """``n`` uniform 32-bit integers (the same scale as the thresholds)."""
        return self.gen.integers(0, 2**32, n, dtype=np.int64)

    def occupancy(self) -> np.ndarray:
        """Counts by state, plus the number who have left since the start (the last entry)."""
        out = np.bincount(self.state, minlength=S.N_STATES + 1)[: S.N_STATES + 1].copy()
        out[S.N_STATES] = self.n_start - self.state.size
        return out

    def keep(self, mask: np.ndarray) -> None:
        """Drop the children who left this month."""
        for f in FIELDS:
            setattr(self, f, getattr(self, f)[mask])

    def step(self) -> None:
        """One month for every child: age, exits at 18 and at the end of the return window, one draw, events."""
        self.month += 1
        self.age += 1
        stay = (self.age < A.MAX_AGE_MONTHS) & ~((self.state == S.RETURNED_HOME) & (self.epi >= self.returned_max))
        self.keep(stay)
        ab = A.AGE_BAND_OF_MONTH[self.age].astype(np.int64)
        need = (self.flags >> A.NEED_SHIFT) & 3
        uasc = (self.flags & A.FLAG_UASC) > 0
        row = self.state * ROWS_PER_STATE + ((((ab * A.N_NEED + need) * 2 + uasc) * A.N_PREV + (self.prev > 0))
                                             * A.N_EPI + A.EPI_BAND_OF_MONTH[self.epi]) * A.N_PLC \
            + A.PLC_BAND_OF_MONTH[self.plc]
        k = pick(self.thr[row], self.draws(row.size))
        quiet = k >= E.K_SLOTS
        self.epi[quiet] = np.minimum(self.epi[quiet] + 1, 255)
        self.plc[quiet] = np.minimum(self.plc[quiet] + 1, 255)
        idx = np.flatnonzero(~quiet)
        ev = self.event_of_slot[self.state[idx], k[idx]]
        self.apply_events(idx, ev, ab[idx], need[idx], uasc[idx].astype(np.int64))

    def apply_events(self, idx, ev, ab, need, uasc) -> None:
        """Apply the event table to the children ``idx`` (one event each), then drop those who left."""
        kind = E.EV_DEST_KIND[ev]
        t = kind == E.TO_SAME
        self.la[idx[t]] = pick(self.la_cum[None, :].repeat(t.sum(), 0), self.draws(int(t.sum())))
        f = kind == E.TO_FIXED
        self.state[idx[f]] = E.EV_FIXED_STATE[ev[f]]
        self.plc[idx[f]] = 0
        for dkind, ek in ((ENTRY_KIND, E.TO_ENTRY), (MOVE_KIND, E.TO_MOVE)):
            m = kind == ek
            self.place(idx[m], dkind, ab[m], need[m], uasc[m])
        hist = (kind == E.TO_FIXED) | (kind == E.TO_ENTRY) | (kind == E.TO_MOVE)
        self.update_history(idx[hist], ev[hist])
        e = kind == E.TO_ENTRY
        short = self.draws(int(e.sum())) < self.short_thr[ab[e]]
        back = idx[e][short]
        self.state[back] = E.EV_FIXED_STATE[EV_REUNIFIED]
        self.update_history(back, np.full(back.size, EV_REUNIFIED))
        gone = np.zeros(self.state.size, dtype=bool)
        gone[idx[kind == E.TO_LEAVE]] = True
        self.keep(~gone)

    def place(self, i, dkind, ab, need, uasc) -> None:
        """Destination and provider draws for children entering care (dkind 0) or moving (dkind 1)."""
        cell = (ab * A.N_NEED + need) * 2 + uasc
        j = np.minimum(pick(self.dest_thr[dkind][cell], self.draws(i.size)), E.N_DEST - 1)
        ns = self.dest_state[j]
        self.state[i] = ns
        self.plc[i] = 0
        agency = self.draws(i.size) < self.agency_thr[ns]
        self.flags[i] = (self.flags[i] & ~A.FLAG_AGENCY) | np.where(agency, A.FLAG_AGENCY, 0)

    def update_history(self, i, ev) -> None:
        """Episode clock reset and previous-episode count, as the event rows say."""
        r = E.EV_RESET_EPI[ev] == 1
        self.epi[i[r]] = 0
        p = E.EV_PREV_PLUS[ev] == 1
        self.prev[i[p]] = np.minimum(self.prev[i[p]] + 1, 255)

    def run(self, months: int) -> np.ndarray:
        """Step ``months`` times; occupancy [months + 1, N_STATES + 1] as ``sim.cohort.run_cohort`` returns."""
        out = [self.occupancy()]
        for _ in range(months):
            self.step()
            out.append(self.occupancy())
        return np.array(out, dtype=np.int64)
