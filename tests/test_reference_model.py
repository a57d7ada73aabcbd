"""The Mesa reference model and the numba engine implement the same month rule (DESIGN §5: the oracle).

(a) the pure-Python hash equals ``sim.rng.draw32``; (b) with different seeds the two agree in distribution
(two-sample chi-square on the state distribution); (c) with the same seed they agree child by child.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from agents import attributes as A
from agents import events as E
from agents import reference_model as R
from agents import states as S
from agents.hazards import compile_tables, row_index, to_threshold
from calibration.parameters import base_parameters, resolve
from sim import rng
from sim.cohort import cohort_ids, make_cohort, make_cohort_from_arrays, mixed_arrays, run_cohort

YEAR = 2016
TEST_SHARES = {"AT_HOME": 0.3, "EDGE_OF_CARE": 0.15, "FOSTER": 0.25, "RESIDENTIAL_HOME": 0.1, "RETURNED_HOME": 0.2}


@pytest.fixture(scope="module")
def params():
    return resolve(base_parameters())


@pytest.fixture(scope="module")
def tables(params):
    return compile_tables(params, YEAR)


def _both(arrays, tables, engine_seed, mesa_seed, months, **kw):
    """Run the same initial cohort through the engine and the Mesa model; returns both occupancies and models."""
    pop = make_cohort_from_arrays(**arrays)
    ref = R.ReferenceModel.from_population(pop, tables, mesa_seed, **kw)
    occ_engine = run_cohort(pop, tables, engine_seed, months, **kw)
    return occ_engine, ref.run(months), pop, ref


# ---- (a) random numbers --------------------------------------------------------------------------------------
def test_python_hash_equals_engine_hash():
    g = np.random.default_rng(7)
    seeds = g.integers(0, 2**63, 2000, dtype=np.uint64).tolist() + [0, 2**64 - 1, 2**63]
    for k, seed in enumerate(seeds):
        cid = int(g.integers(0, 2**63, dtype=np.uint64)) if k % 3 else int(rng.make_id(int(g.integers(-300, 300)),
                                                                                         k % 7, k))
        month = int(g.integers(-1000, 1000))
        dec = int(g.integers(0, 16))
        want = int(rng.draw32(np.uint64(seed), np.uint64(cid), month, dec))
        assert R.draw32(seed, cid, month, dec) == want, (seed, cid, month, dec)


def test_cohort_ids_are_stable_initial_ids():
    pop = make_cohort(5, S.FOSTER, 100, need=2, uasc=1)
    assert [int(x) for x in pop.cid[:5]] == [int(rng.make_id(0, rng.STREAM_INIT, k)) for k in range(5)]
    assert np.all(cohort_ids(5) == pop.cid[:5])
    assert np.all((pop.flags[:5] >> A.NEED_SHIFT) & 3 == 2) and np.all(pop.flags[:5] & A.FLAG_UASC)


# ---- (c) same seed: identical children ----------------------------------------------------------------------
def _assert_same_children(pop, ref):
    m = pop.alive_mask()
    order = np.argsort(pop.cid[: pop.n_used][m])
    got = ref.child_arrays()
    assert np.array_equal(got["cid"], pop.cid[: pop.n_used][m][order])
    for k, field in (("state", "state"), ("age_months", "age"), ("flags", "flags"), ("epi", "epi"),
                     ("plc", "plc"), ("prev", "prev"), ("la", "la")):
        assert np.array_equal(got[k], getattr(pop, field)[: pop.n_used][m][order].astype(np.int64)), k


def test_same_seed_gives_identical_occupancy_and_children(tables):
    arrays = mixed_arrays(3000, seed=11)
    occ_e, occ_m, pop, ref = _both(arrays, tables, 4242, 4242, 36)
    assert np.array_equal(occ_e, occ_m)
    assert occ_e[-1, -1] > 0 and ref.left["aged_out"] > 0 and ref.left["returned_window_ended"] > 0
    assert ref.events["SHORT_STAY"] > 0 and ref.events["MOVE"] > 0
    _assert_same_children(pop, ref)


def test_same_seed_identical_with_transfers_between_las(params):
    """Transfers draw a new LA: exercise that branch with a raised transfer hazard and 5 LAs."""
    tab = compile_tables({**params, "care.transferred.base": -2.0}, YEAR)
    la_cum = to_threshold(np.cumsum(np.full(5, 0.2)))
    la_cum[-1] = np.uint32(2**32 - 1)
    arrays = mixed_arrays(1500, seed=5, shares={"FOSTER": 0.6, "RESIDENTIAL_HOME": 0.4})
    occ_e, occ_m, pop, ref = _both(arrays, tab, 99, 99, 12, la_cum=la_cum, first_month=-5)
    assert np.array_equal(occ_e, occ_m)
    assert ref.events["TRANSFERRED"] > 50 and len(set(ref.child_arrays()["la"].tolist())) == 5
    _assert_same_children(pop, ref)


# ---- (b) different seeds: same distribution ------------------------------------------------------------------
def pooled_table(a: np.ndarray, b: np.ndarray, min_count: int = 10) -> np.ndarray:
    """2 x categories contingency table; categories with fewer than ``min_count`` children in all are pooled."""
    tot = a + b
    keep = tot >= min_count
    rows = [np.append(a[keep], a[~keep].sum()), np.append(b[keep], b[~keep].sum())]
    t = np.array(rows)
    return t[:, t.sum(axis=0) > 0]


def test_engine_and_mesa_agree_in_distribution(tables):
    arrays = mixed_arrays(4000, seed=3, shares=TEST_SHARES)
    occ_e, occ_m, _, _ = _both(arrays, tables, engine_seed=1001, mesa_seed=2002, months=24)
    assert not np.array_equal(occ_e, occ_m)  # different random numbers: a real two-sample test
    for month in (3, 12, 24):
        chi2, pval, _, _ = stats.chi2_contingency(pooled_table(occ_e[month], occ_m[month]))
        assert pval > 0.001, (month, occ_e[month], occ_m[month], pval)


def test_one_month_matches_compiled_probabilities(tables):
    """Identical children: after one month the event shares match the compiled row, in both engines."""
    n, state, age = 20000, S.AT_HOME, 12 * 8
    pop = make_cohort(n, state, age, need=1)
    ref = R.ReferenceModel.from_population(pop, tables, seed=6)
    for occ in (run_cohort(pop, tables, seed=5, months=1), ref.run(1)):
        _check_one_month(occ, tables, n, state, age)


def _check_one_month(occ, tables, n, state, age):
    """Shares entering EDGE_OF_CARE and leaving (case closed) within 5 standard errors of the table."""
    ab = int(A.AGE_BAND_OF_MONTH[age + 1])
    p = tables.monthly_prob.reshape(-1, E.K_SLOTS)[row_index(state, ab, 1, 0, 0, 0, 0)]
    ev = E.EVENT_OF_SLOT[state]
    expected = {S.EDGE_OF_CARE: p[ev == E.EV["ESCALATE"]].sum(), S.N_STATES: p[ev == E.EV["CASE_CLOSE"]].sum()}
    for col, q in expected.items():
        se = np.sqrt(q * (1 - q) / n)
        assert abs(occ[1, col] / n - q) < 5 * se + 1e-9, (col, occ[1, col] / n, q)
