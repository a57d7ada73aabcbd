"""Closed cohorts: step an existing population with the numba kernel and no arrivals (DESIGN §5, §6).

This is the engine side of the comparison with the Mesa reference model (``agents/reference_model.py``)
and of analytic Markov tests: a fixed set of children, one table year, monthly occupancy by state.
"""
from __future__ import annotations

import numpy as np

from agents import attributes as A
from agents import capacity as CAP
from agents import states as S
from agents.hazards import HazardTables
from agents.levers import LeverTables
from sim import kernel, rng
from sim.population import Population

N_LEFT_COL = S.N_STATES  # occupancy column that counts children who have left the model
N_AGE_Y = 18


def as_seed(seed: int) -> np.uint64:
    """The seed as uint64 (mod 2**64), so numba never reuses an int64 specialisation for a seed >= 2**63."""
    return np.uint64(int(seed) & (2**64 - 1))


def single_la_cum() -> np.ndarray:
    """LA thresholds for one LA: every transfer stays in LA 0 (a cohort run has no geography)."""
    return np.array([2**32 - 1], dtype=np.uint32)


def cohort_ids(n: int) -> np.ndarray:
    """Stable ids of the k-th child of an initial cohort: ``make_id(0, STREAM_INIT, k)`` for k < n."""
    base = np.uint64(rng.make_id(0, rng.STREAM_INIT, 0))
    return base | np.arange(n, dtype=np.uint64)


def make_flags(need=0, uasc=0, agency=0, male=0) -> np.ndarray:
    """The flags byte (sex, need band, UASC, provider) from its parts; arrays or scalars."""
    need = np.asarray(need, dtype=np.int64)
    f = (np.asarray(male, dtype=np.int64) & 1) | ((need & 3) << A.NEED_SHIFT)
    f = f | np.where(np.asarray(uasc) != 0, A.FLAG_UASC, 0) | np.where(np.asarray(agency) != 0, A.FLAG_AGENCY, 0)
    return f.astype(np.uint8)


def make_cohort_from_arrays(state, age_months, need=0, uasc=0, prev=0, epi=0, plc=0, agency=0, male=0,
                            la=0) -> Population:
    """A population of children given attribute arrays (scalars broadcast), ids ``make_id(0, STREAM_INIT, k)``."""
    state = np.asarray(state, dtype=np.int64)
    n = state.shape[0] if state.ndim else 1
    state = np.broadcast_to(state, (n,))
    age = np.broadcast_to(np.asarray(age_months, dtype=np.int64), (n,))
    if np.any(state >= S.N_STATES) or np.any(state < 0):
        raise ValueError(f"make_cohort: state codes must lie in 0..{S.N_STATES - 1}")
    if np.any(age < 0) or np.any(age >= A.MAX_AGE_MONTHS):
        raise ValueError(f"make_cohort: age_months must lie in 0..{A.MAX_AGE_MONTHS - 1}")
    pop = Population(n)
    pop.state[:n] = state
    pop.age[:n] = age
    pop.flags[:n] = np.broadcast_to(make_flags(need, uasc, agency, male), (n,))
    for name, v in (("prev", prev), ("epi", epi), ("plc", plc), ("la", la)):
        getattr(pop, name)[:n] = np.broadcast_to(np.minimum(np.asarray(v, dtype=np.int64), 255), (n,))
    pop.cid[:n] = cohort_ids(n)
    pop.n_used = n
    return pop


def make_cohort(n: int, state: int, age_months: int, need: int = 0, uasc: int = 0, prev: int = 0, epi: int = 0,
                plc: int = 0) -> Population:
    """``n`` identical children (state code, age in months, attributes) with stable cohort ids."""
    return make_cohort_from_arrays(np.full(n, state, dtype=np.int64), age_months, need=need, uasc=uasc,
                                   prev=prev, epi=epi, plc=plc)


# An illustrative mix for tests and benchmarks (a labelled assumption, not data): shares of individuals by state,
# roughly in the proportions of England's CIN / CPP / CLA counts, with returned-home and kinship-order children.
MIX_SHARES = {"AT_HOME": 0.55, "EDGE_OF_CARE": 0.10, "KINSHIP": 0.02, "FOSTER": 0.09, "RESIDENTIAL_HOME": 0.02,
              "RESIDENTIAL_OTHER": 0.005, "SEMI_INDEPENDENT": 0.01, "INDEPENDENT_LIVING": 0.005,
              "PLACED_WITH_PARENTS": 0.01, "PLACED_FOR_ADOPTION": 0.005, "OTHER_IN_CARE": 0.005,
              "RETURNED_HOME": 0.12, "KINSHIP_ORDER": 0.05}
# structural age limits in years (inclusive) where a state is impossible outside them
_AGE_YEARS = {"SEMI_INDEPENDENT": (16, 17), "INDEPENDENT_LIVING": (16, 17), "PLACED_FOR_ADOPTION": (0, 4)}


def mixed_arrays(n: int, seed: int, shares: dict[str, float] | None = None,
                 need_shares=(0.4, 0.3, 0.2, 0.1), uasc_share: float = 0.05) -> dict[str, np.ndarray]:
    """Attribute arrays for a mixed cohort: states by ``shares``, ages 0-17, clocks below age, UASC 16-17 only."""
    shares = MIX_SHARES if shares is None else shares
    g = rng.generator(seed, 99)
    names = list(shares)
    w = np.array([shares[k] for k in names], dtype=float)
    state = np.array([S.state_code(k, "mixed_arrays") for k in names])[g.choice(len(names), n, p=w / w.sum())]
    lo = np.zeros(n, dtype=np.int64)
    hi = np.full(n, 17, dtype=np.int64)
    for nm, (a, b) in _AGE_YEARS.items():
        m = state == S.CODE[nm]
        lo[m], hi[m] = a, b
    age = 12 * g.integers(lo, hi + 1) + g.integers(0, 12, n)
    uasc = (g.random(n) < uasc_share) & (age >= 192) & S.IN_CARE[state]
    epi = np.minimum(g.integers(0, 61, n), age)
    plc = np.minimum(g.integers(0, 37, n), epi)
    ever = S.IN_CARE[state] | (state == S.RETURNED_HOME) | (state == S.KINSHIP_ORDER)
    prev = np.where(ever, g.integers(0, 3, n), 0)
    prev = np.where((state == S.RETURNED_HOME) | (state == S.KINSHIP_ORDER), np.maximum(prev, 1), prev)
    need = g.choice(4, n, p=np.asarray(need_shares) / np.sum(need_shares))
    agency = g.random(n) < 0.4
    return dict(state=state, age_months=age, need=need, uasc=uasc.astype(np.int64), prev=prev, epi=epi, plc=plc,
                agency=agency.astype(np.int64), male=g.integers(0, 2, n))


def make_mixed_cohort(n: int, seed: int, shares: dict[str, float] | None = None) -> Population:
    """A mixed cohort (see ``mixed_arrays``) as a ``Population``."""
    return make_cohort_from_arrays(**mixed_arrays(n, seed, shares))


def occupancy(pop: Population, n_start: int) -> np.ndarray:
    """Counts by state, plus the number who have left since the start (the last column)."""
    out = np.bincount(pop.state[: pop.n_used], minlength=256)[: S.N_STATES + 1].astype(np.int64)
    out[N_LEFT_COL] = n_start - out[: S.N_STATES].sum()
    return out


class _Accumulators:
    """Scratch accumulators the kernel writes (DfE counts, child-months, flows); a closed cohort ignores them."""

    def __init__(self):
        self.started = np.zeros((kernel.NCHUNK, S.N_STATES * kernel.N_AGE7 * 2), dtype=np.int64)
        self.ceased = np.zeros((kernel.NCHUNK, kernel.N_REASON * kernel.N_AGE7 * 2), dtype=np.int64)
        self.cm = np.zeros((kernel.NCHUNK, S.N_STATES * 2 * A.N_NEED), dtype=np.int64)
        self.flow = np.zeros((kernel.NCHUNK, kernel.N_FLOW), dtype=np.int64)
        self.prevknown = np.zeros((kernel.NCHUNK, N_AGE_Y), dtype=np.int64)

    def args(self):
        return self.started, self.ceased, self.cm, self.flow, self.prevknown


def run_cohort(pop: Population, tables: HazardTables, seed: int, months: int, first_month: int = 1,
               returned_max: int = 72, la_cum=None, levers: LeverTables | None = None,
               capacity: CAP.CapacityPlan | None = None, capacity_log: np.ndarray | None = None) -> np.ndarray:
    """Step ``pop`` in place for ``months`` months with no arrivals; occupancy [months + 1, N_STATES + 1].

    Row t is the count by state at the end of month ``first_month + t - 1`` (row 0 = the start); the last
    column counts children who have left the model (case closed, adopted, left care, aged 18, ...).
    ``levers``: compiled hazard and placement levers (``agents.levers.compile_levers``), applied from their
    start months. ``capacity``: a foster capacity plan (``agents.capacity``; places of model month m from
    ``capacity.for_month(m)``, regions of the cohort's LA indices from ``capacity.region_of_la``), applied after
    each month's transitions; ``capacity_log`` [months + 1, N_REGION, N_LOG], if given, gets row t's places,
    occupied, entrants, redirected and places taken (``capacity.LOG_NAMES``).
    """
    la_cum = single_la_cum() if la_cum is None else np.asarray(la_cum, dtype=np.uint32)
    seed = as_seed(seed)
    acc = _Accumulators()
    cand = None
    if capacity is not None:
        from sim.engine import FosterEntrants
        cand = FosterEntrants(capacity.region_of_la)
        none = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint8))
        log = np.zeros((months + 1, CAP.N_REGION, CAP.N_LOG), dtype=np.int64) if capacity_log is None \
            else capacity_log
    n_start = pop.alive()
    out = np.zeros((months + 1, S.N_STATES + 1), dtype=np.int64)
    out[0] = occupancy(pop, n_start)
    for t in range(1, months + 1):
        month = first_month + t - 1
        ymark = 1 + max(month - 1, 0) // 12  # DfE-year marker; only the scratch counts read it
        acc.cm[:] = 0
        kernel.step_month(*pop.arrays(), pop.n_used, seed, month, ymark, tables.thr, tables.thr_total,
                          tables.event_of_slot, tables.dest_thr, tables.dest_state, tables.short_thr,
                          tables.agency_thr, la_cum, int(returned_max), *acc.args(), pop.vac_idx, pop.vac_cnt,
                          levers.for_month(month) if levers is not None else None,
                          levers.placement_for_month(month) if levers is not None else None,
                          cand.for_step(pop) if cand is not None else None)
        if cand is not None:
            cand.allocate(pop, pop.n_used, none, capacity.for_month(month), capacity.log_miss, seed, month, tables,
                          acc.started,
                          acc.cm, log[t])
        # the kernel's child-months of this month are the end-of-month counts by state (no rescan needed)
        out[t, : S.N_STATES] = acc.cm.sum(axis=0).reshape(S.N_STATES, -1).sum(axis=1)
        out[t, N_LEFT_COL] = n_start - out[t, : S.N_STATES].sum()
    return out
