"""Counter-based random numbers (DESIGN §2 randomness): uniform, independent across keys, stable ids, and
common random numbers between scenarios.

Uniformity: chi-square on 64 equal bins over 10^6 keys (p > 1e-4), for the top 6 bits (the kernel compares
the whole 32-bit draw against thresholds) and the bottom 6 bits (``% 12`` picks the arrival month of age).
Independence: Pearson correlation between streams of draws, |r| sqrt(n) < 4.5 (two-sided p ~ 7e-6 per pair,
so a family of ~50 pairs has a false-alarm rate under 1e-3), and a 16 x 16 contingency chi-square.
"""
from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest
from numba import njit
from scipy import stats

from agents import states as S
from agents.hazards import compile_tables
from calibration.inputs import build
from calibration.parameters import base_parameters, resolve
from sim import engine, rng
from sim.cohort import cohort_ids, make_cohort_from_arrays, mixed_arrays, run_cohort
from sim.population import Population

N = 1_000_000
SEED = 123456789
P_MIN = 1e-4
R_Z = 4.5
DECISIONS = (rng.DEC_EVENT, rng.DEC_DEST, rng.DEC_PROVIDER, rng.DEC_SHORT, rng.DEC_NEW_LA, rng.DEC_SEX,
             rng.DEC_NEED, rng.DEC_AGE, rng.DEC_LA)


@njit(cache=True)
def _draws(seed, cids, months, decs):
    out = np.empty(cids.shape[0], dtype=np.uint64)
    for i in range(cids.shape[0]):
        out[i] = rng.draw32(seed, cids[i], months[i], decs[i])
    return out


def draws(cids, months, decs, seed=SEED):
    n = max(np.size(cids), np.size(months), np.size(decs))
    b = lambda x, dt: np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=dt), (n,)))  # noqa: E731
    return _draws(np.uint64(seed), b(cids, np.uint64), b(months, np.int64), b(decs, np.int64))


def chi2_p(r: np.ndarray, low_bits: bool = False) -> float:
    bins = (r & np.uint64(63)) if low_bits else (r >> np.uint64(26))
    return float(stats.chisquare(np.bincount(bins.astype(np.int64), minlength=64)).pvalue)


def corr_z(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1] * np.sqrt(a.size))


# ---- uniformity ---------------------------------------------------------------------------------------------
CASES = {
    "consecutive child ids (cohort ids)": lambda: draws(cohort_ids(N), 1, rng.DEC_EVENT),
    "consecutive child ids (0..n-1)": lambda: draws(np.arange(N, dtype=np.uint64), 7, rng.DEC_DEST),
    "consecutive arrival ids": lambda: draws(engine._ids(-120, rng.STREAM_CIN, N), -120, rng.DEC_NEED),
    "consecutive months, one child": lambda: draws(rng.make_id(5, rng.STREAM_CARE, 3),
                                                   np.arange(-8000, N - 8000), rng.DEC_EVENT),
    "months x decisions, one child": lambda: draws(12345, np.arange(N) // 64 - 8000, np.arange(N) % 64),
    "decisions x children": lambda: draws(cohort_ids(N // 16).repeat(16), 3, np.tile(np.arange(16), N // 16)),
    "consecutive seeds": lambda: np.concatenate([draws(cohort_ids(1000), 1, 0, seed=s) for s in range(1000)]),
}


@pytest.mark.parametrize("low_bits", [False, True], ids=["high6", "low6"])
@pytest.mark.parametrize("case", list(CASES))
def test_draw32_uniform(case, low_bits):
    r = CASES[case]()
    assert r.size == N
    assert int(r.max()) < 2**32
    p = chi2_p(r, low_bits)
    assert p > P_MIN, f"{case}: chi-square p = {p:.2e} on 64 bins"


def test_uniformity_test_has_power():
    """A draw with a 1% bias towards small values (as from a broken modular reduction) is rejected."""
    r = draws(cohort_ids(N), 1, rng.DEC_EVENT)
    biased = np.where(r % np.uint64(100) == 0, r >> np.uint64(1), r)
    assert chi2_p(biased) < P_MIN


# ---- independence -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def by_decision():
    ids = cohort_ids(N)
    return {d: draws(ids, 17, d) for d in DECISIONS}


def test_decisions_uncorrelated(by_decision):
    bad = {}
    for a, b in itertools.combinations(DECISIONS, 2):
        z = corr_z(by_decision[a], by_decision[b])
        if abs(z) > R_Z:
            bad[(a, b)] = round(z, 2)
    assert not bad, f"correlated decisions (r * sqrt(n)): {bad}"


def test_event_and_destination_draws_jointly_uniform(by_decision):
    """16 x 16 contingency table of (event draw, destination draw): catches non-linear dependence."""
    a = (by_decision[rng.DEC_EVENT] >> np.uint64(28)).astype(np.int64)
    b = (by_decision[rng.DEC_DEST] >> np.uint64(28)).astype(np.int64)
    tab = np.bincount(a * 16 + b, minlength=256).reshape(16, 16)
    p = stats.chi2_contingency(tab).pvalue
    assert p > P_MIN


def test_neighbours_uncorrelated():
    """Same child in consecutive months, neighbouring children in one month, seed and seed + 1."""
    ids = cohort_ids(N)
    m1 = draws(ids, 4, rng.DEC_EVENT)
    pairs = {"month m vs m+1": (m1, draws(ids, 5, rng.DEC_EVENT)),
             "child k vs k+1": (m1[:-1], m1[1:]),
             "seed vs seed+1": (m1, draws(ids, 4, rng.DEC_EVENT, seed=SEED + 1)),
             "decision 0 in month 4 vs decision 1 in month 3": (m1, draws(ids, 3, rng.DEC_EVENT + 1))}
    bad = {k: round(corr_z(a, b), 2) for k, (a, b) in pairs.items() if abs(corr_z(a, b)) > R_Z}
    assert not bad, bad


def test_correlation_test_has_power(by_decision):
    """A second stream that shares 1% of its draws with the first is detected."""
    a = by_decision[rng.DEC_EVENT]
    b = by_decision[rng.DEC_DEST].copy()
    b[::100] = a[::100]
    assert abs(corr_z(a, b)) > R_Z


def test_draw_depends_only_on_key():
    ids = cohort_ids(1000)
    r1 = draws(ids, 9, rng.DEC_EVENT)
    r2 = draws(ids[::-1], 9, rng.DEC_EVENT)[::-1]
    assert np.array_equal(r1, r2)
    assert int(rng.draw32(np.uint64(SEED), ids[10], 9, rng.DEC_EVENT)) == int(r1[10])


# ---- ids ----------------------------------------------------------------------------------------------------
def test_make_id_unique_and_decodable():
    months = np.arange(-240, 253)            # spin-up (negative months) and a run to 2036
    streams = np.arange(len(rng.STREAM_NAMES))
    ks = np.array([0, 1, 2, 63, 64, 1000, 2**20, 2**36 - 1])
    ids = np.array([rng.make_id(int(m), int(s), int(k)) for m in months for s in streams for k in ks],
                   dtype=np.uint64)
    assert np.unique(ids).size == ids.size
    m_dec = (ids >> np.uint64(40)).astype(np.int64) - rng.MONTH_OFFSET
    s_dec = ((ids >> np.uint64(36)) & np.uint64(15)).astype(np.int64)
    k_dec = (ids & np.uint64(2**36 - 1)).astype(np.int64)
    grid = np.array([(m, s, k) for m in months for s in streams for k in ks])
    assert np.array_equal(np.stack([m_dec, s_dec, k_dec], axis=1), grid)


def test_vectorised_ids_equal_make_id():
    for month, stream in ((-240, rng.STREAM_SPINUP), (0, rng.STREAM_INIT), (37, rng.STREAM_UASC)):
        v = engine._ids(month, stream, 200)
        assert np.array_equal(v, np.array([rng.make_id(month, stream, k) for k in range(200)], dtype=np.uint64))
    assert np.array_equal(cohort_ids(100), engine._ids(0, rng.STREAM_INIT, 100))


@pytest.fixture(scope="module")
def sim_and_tables():
    params = resolve(base_parameters())
    tables = engine.YearTables.build(params, 2016, 2016)
    return engine.Simulation(params, build(), tables, SEED, 1.0), tables.by_year[2016]


def _by_age(counts: dict[int, int]) -> np.ndarray:
    out = np.zeros(18, dtype=np.int64)
    for a, n in counts.items():
        out[a] = n
    return out


def _arrive(sim, tab, pop: Population, month: int) -> dict[int, tuple]:
    before = set(np.flatnonzero(pop.state[: pop.n_used] != S.VACANT).tolist())
    batches = [(rng.STREAM_CIN, _by_age({0: 30, 7: 40, 15: 30}), S.AT_HOME),   # 100 arrivals: vectorised ids
               (rng.STREAM_CARE, _by_age({0: 5, 12: 6}), -1),                  # 11: the make_id path
               (rng.STREAM_UASC, _by_age({16: 20, 17: 25}), -1)]
    counts = sim.add_arrivals(pop, month, 1, tab, batches)
    assert counts[rng.STREAM_CIN] == 100 and counts[rng.STREAM_CARE] == 11 and counts[rng.STREAM_UASC] == 45
    new = [i for i in np.flatnonzero(pop.state[: pop.n_used] != S.VACANT) if i not in before]
    return {int(pop.cid[i]): (int(i), int(pop.state[i]), int(pop.age[i]), int(pop.flags[i]), int(pop.la[i]),
                              int(pop.epi[i]), int(pop.plc[i]), int(pop.prev[i])) for i in new}


def test_arrival_ids_and_attributes_do_not_depend_on_slots(sim_and_tables):
    sim, tab = sim_and_tables
    month = 30
    empty = Population(2048)
    a = _arrive(sim, tab, empty, month)
    holes = Population(2048)                       # 700 used slots, every third one vacant
    holes.n_used = 700
    holes.state[:700] = np.where(np.arange(700) % 3 == 0, S.VACANT, S.FOSTER)
    holes.cid[:700] = np.arange(700, dtype=np.uint64) + np.uint64(2**62)
    b = _arrive(sim, tab, holes, month)
    assert len(a) == len(b) == 156
    expected = {int(x) for st, n in ((rng.STREAM_CIN, 100), (rng.STREAM_CARE, 11), (rng.STREAM_UASC, 45))
                for x in engine._ids(month, st, n)}
    assert set(a) == set(b) == expected
    assert {v[0] for v in a.values()} != {v[0] for v in b.values()}    # different slots were used ...
    assert {c: v[1:] for c, v in a.items()} == {c: v[1:] for c, v in b.items()}  # ... same children


# ---- common random numbers ----------------------------------------------------------------------------------
MONTHS = 36
FIELDS = ("state", "age", "flags", "epi", "plc", "prev", "la")


def trajectories(pop: Population, tab, seed: int, months: int, la_cum) -> dict[str, np.ndarray]:
    """Per-child attributes at the end of each month [months + 1, n] (slot order of the initial cohort)."""
    n = pop.n_used
    out = {f: np.zeros((months + 1, n), dtype=np.int64) for f in FIELDS}
    for t in range(months + 1):
        if t:
            run_cohort(pop, tab, seed, 1, first_month=t, la_cum=la_cum)
        for f in FIELDS:
            out[f][t] = getattr(pop, f)[:n]
    return out


@pytest.fixture(scope="module")
def crn_setup():
    params = resolve(base_parameters())
    arrays = mixed_arrays(60_000, seed=5, shares={"AT_HOME": 0.25, "EDGE_OF_CARE": 0.15, "FOSTER": 0.25,
                                                   "KINSHIP": 0.05, "RESIDENTIAL_HOME": 0.1,
                                                   "SEMI_INDEPENDENT": 0.05, "RETURNED_HOME": 0.1,
                                                   "KINSHIP_ORDER": 0.05})
    la_cum = np.array([2**31, 2**32 - 1], dtype=np.uint32)  # two LAs, so transfers change ``la``
    base = trajectories(make_cohort_from_arrays(**arrays), compile_tables(params, 2016), SEED, MONTHS, la_cum)
    return params, arrays, la_cum, base


def test_changing_a_residential_home_hazard_leaves_other_children_unchanged(crn_setup):
    params, arrays, la_cum, base = crn_setup
    changed = dict(params)
    changed["care.reunified.state.RESIDENTIAL_HOME"] = params.get("care.reunified.state.RESIDENTIAL_HOME", 0.) + 1.5
    changed["care.move.state.RESIDENTIAL_HOME"] = params.get("care.move.state.RESIDENTIAL_HOME", 0.0) - 1.0
    t0, t1 = compile_tables(params, 2016), compile_tables(changed, 2016)
    rh = np.arange(t0.thr.shape[0]) // (t0.thr.shape[0] // S.N_STATES) == S.RESIDENTIAL_HOME
    assert np.array_equal(t0.thr[~rh], t1.thr[~rh]) and not np.array_equal(t0.thr[rh], t1.thr[rh])
    alt = trajectories(make_cohort_from_arrays(**arrays), t1, SEED, MONTHS, la_cum)
    in_rh = base["state"] == S.RESIDENTIAL_HOME                  # [month, child]
    ever = in_rh.any(axis=0)
    first = np.where(ever, in_rh.argmax(axis=0), MONTHS)          # first month in RESIDENTIAL_HOME (or end)
    upto = np.arange(MONTHS + 1)[:, None] <= first[None, :]       # months up to and including that one
    for f in FIELDS:
        diff = (base[f] != alt[f]) & upto
        assert not diff.any(), f"{f}: {int(diff.any(axis=0).sum())} children differ before reaching RESIDENTIAL_HOME"
    # children never in RESIDENTIAL_HOME have identical whole trajectories, and are never there in the other arm
    assert not (alt["state"][:, ~ever] == S.RESIDENTIAL_HOME).any()
    # ... and the change does act on the children who were there (the test is not vacuous)
    moved = (base["state"] != alt["state"]).any(axis=0)
    assert ever.sum() > 5000 and (~ever).sum() > 20000
    assert moved[ever].sum() > 500


def test_trajectories_do_not_depend_on_slot_order_or_threads(crn_setup):
    params, arrays, la_cum, base = crn_setup
    perm = np.random.default_rng(0).permutation(arrays["state"].size)
    pop = make_cohort_from_arrays(**{k: np.asarray(v)[perm] for k, v in arrays.items()})
    pop.cid[: perm.size] = cohort_ids(perm.size)[perm]          # the same children in other slots
    nthreads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        shuf = trajectories(pop, compile_tables(params, 2016), SEED, 12, la_cum)
    finally:
        numba.set_num_threads(nthreads)
    inv = np.argsort(perm)
    for f in FIELDS:
        assert np.array_equal(shuf[f][:, inv], base[f][:13]), f
