"""Reform levers (``agents/levers.py``): scenario files, the numba engine and the Mesa reference model.

(a) timing: the phase-in ramp and the model calendar; (b) common random numbers: a zero-effect lever gives
exactly the status quo, replicate by replicate, and a real lever forks from it at its start; (c) coverage: a
lever on 12 named LAs changes only the children of those LAs, a share covers a fixed set of children;
(d) size: realised monthly transitions match the lever's phased probability within a binomial bound, and
the engine and the Mesa model agree (child by child with the same seed, in distribution with different
seeds); (e) invalid levers: a ScenarioError naming file, field and value, and a CLI exit 2 with no output;
(f) placement levers: the same properties for the destination drawn on entry to care or a move.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from agents import attributes as A
from agents import events as E
from agents import levers as L
from agents import reference_model as R
from agents import states as S
from agents.hazards import U32, compile_tables, row_index
from calibration.inputs import START_YEAR, build, la_table
from calibration.parameters import base_parameters, resolve
from sim import cli, engine, output, runner, scenario
from sim.cohort import make_cohort, make_cohort_from_arrays, mixed_arrays, run_cohort

START = L.model_month(2025, 4)          # the default lever start, April 2025 (model month 121)
YEAR = 2026                             # the DfE year that month falls in (April 2025 - March 2026)
REUNIFIED_FROM_CARE = dict(kind="hazard", from_states=("IN_CARE",), to="REUNIFIED", source="test")
TINY = ["--scale", "0.02", "--replicates", "1", "--end-year", "2018", "--quiet", "--workers", "1",
        "--uncertainty", "process"]


@pytest.fixture(scope="module")
def params():
    return resolve(base_parameters())


@pytest.fixture(scope="module")
def tables(params):
    return compile_tables(params, YEAR)


@pytest.fixture(scope="module")
def no_transfer_tables(params):
    """Tables with transfers between LAs switched off, so a child's LA never changes."""
    return compile_tables({**params, "care.transferred.base": -np.inf}, YEAR)


@pytest.fixture(scope="module")
def la_codes():
    return la_table()[0]


def lever(name="l", **kw) -> L.Lever:
    return L.Lever(name=name, **{**REUNIFIED_FROM_CARE, **kw})


# ---- (a) timing ------------------------------------------------------------------------------------------------
def test_model_month_is_the_engine_calendar():
    assert L.model_month(2015, 4) == 1 and L.model_month(2016, 3) == 12 and START == 121
    for m in (START - 1, START, START + 11, START + 12):  # engine: DfE year of month m = START_YEAR + ceil(m / 12)
        y, mo = 2015 + (m + 2) // 12, (m + 2) % 12 + 1
        assert L.model_month(y, mo) == m and START_YEAR + (m + 11) // 12 == (y if mo <= 3 else y + 1)


def test_phase_in_ramp():
    lv = lever(multiplier=0.6, phase_in_months=12)
    assert L.effect_at(lv, START - 1) == (1.0, 0.0)            # before the start: status quo
    assert L.effect_at(lv, START) == (1.0, 0.0)                # the ramp starts from no effect
    assert L.effect_at(lv, START + 6) == pytest.approx((0.8, 0.0))   # mid-ramp: half the change
    assert L.effect_at(lv, START + 12) == pytest.approx((0.6, 0.0))  # full from phase_in months after
    assert L.effect_at(lv, START + 100) == pytest.approx((0.6, 0.0))
    assert L.effect_at(lever(multiplier=0.6), START) == (0.6, 0.0)   # no phase-in: full at the start
    add = lever(addition=0.02, phase_in_months=4, start=(2026, 1))
    assert [L.effect_at(add, L.model_month(2026, 1) + d)[1] for d in (-1, 0, 2, 4, 9)] == \
        pytest.approx([0.0, 0.0, 0.01, 0.02, 0.02])


# ---- (b) common random numbers -----------------------------------------------------------------------------------
def test_zero_effect_keeps_every_draw_on_its_event(tables):
    """mk = 1, ak = 0: every draw selects the same slot as the compiled row (bit for bit, no rounding)."""
    g = np.random.default_rng(1)
    rows = g.choice(tables.thr.shape[0], 400, replace=False)
    draws = g.integers(0, 2**32, 200).tolist() + [0, 2**32 - 1]
    for row in rows:
        thr = tables.thr[row].tolist()
        assert all(L.new_probability(b - a, 1.0, 0.0) == b - a for a, b in zip([0] + thr[:-1], thr))
        assert all(L.lever_event(thr, [1.0] * E.K_SLOTS, [0.0] * E.K_SLOTS, r) == R.select(thr, r)
                   for r in draws + thr)


def test_a_lever_moves_only_draws_in_the_changed_part():
    """Raising slot 3 takes the extra from "no event" just above the row's total; lowering it turns the end of
    its interval into "no event"; no other draw changes its event (K = 5 is no event)."""
    thr = [1000, 3000, 3000, 10_000, 2**31]
    draws = list(range(0, 12_000)) + list(range(2**31 - 100, 2**31 + 8_000)) + \
        np.random.default_rng(2).integers(0, 2**32, 5000).tolist()
    for mk, ak, lo, hi, now in (([1, 1, 1, 2.0, 1], [0] * 5, 2**31, 2**31 + 7_000, 3),
                                ([1, 1, 1, 0.5, 1], [0] * 5, 6_500, 10_000, 5),
                                ([1, 1, 1, 1, 1], [0, 0, 0, -1e-6, 0], 3_000 + 2_705, 10_000, 5)):
        for r in draws:
            got, was = L.lever_event(thr, mk, ak, r), R.select(thr, r)
            assert got == (now if lo <= r < hi else was), (mk, ak, r, got, was)


def _runner_df(tmp_path: Path, name: str, body: str):
    p = tmp_path / f"{name}.toml"
    p.write_text(f'[scenario]\nname = "{name}"\n' + body, encoding="utf-8")
    df, _ = runner.run_scenario(scenario.load(p), replicates=2, seed=11, end_year=YEAR, scale=0.02, workers=1,
                                progress=False, threads=1)
    return df.sort_values(["replicate", "year", "measure", "scheme", "category", "age_band", "uasc", "la"],
                          na_position="first").reset_index(drop=True)


def test_zero_effect_lever_gives_the_status_quo_replicate_by_replicate(tmp_path):
    base = _runner_df(tmp_path, "sq", "")
    zero = _runner_df(tmp_path, "zero", """
[[lever]]
name = "no_change"
kind = "hazard"
from = "IN_CARE"
to = "REUNIFIED"
multiplier = 1.0
start = "2024-04"
share = 0.5
source = "test: zero effect"
[[lever]]
name = "nothing_added"
kind = "hazard"
from = ["AT_HOME", "EDGE_OF_CARE"]
to = "ENTER_CARE"
addition = 0.0
las = ["E09000001", "E08000025"]
source = "test: zero effect"
[[lever]]
name = "same_placements"
kind = "placement"
to = ["RESIDENTIAL_HOME", "KINSHIP"]
on = "both"
multiplier = 1.0
start = "2024-04"
share = 0.5
source = "test: zero effect"
[[lever]]
name = "same_entries"
kind = "placement"
to = "FOSTER"
on = "entry"
multiplier = 1.0
las = ["E09000001", "E08000025"]
age_band = ["10_to_15"]
source = "test: zero effect"
""")
    assert len(base) == len(zero) and set(base["replicate"]) == {0, 1}
    cols = [c for c in base.columns if c != "scenario"]
    assert base[cols].equals(zero[cols])


def test_a_lever_forks_from_the_status_quo_at_its_start(tmp_path):
    base = _runner_df(tmp_path, "sq", "")
    reform = _runner_df(tmp_path, "reform", """
[[lever]]
name = "reunify"
kind = "hazard"
from = "IN_CARE"
to = "RETURNED_HOME"
multiplier = 2.0
source = "test"
""")
    before = base["year"] < YEAR   # years ending 31 March 2025 and earlier: shared status-quo path
    assert base.loc[before, "value"].equals(reform.loc[before, "value"])
    cla = ((base["measure"] == "cla_31mar") & (base["scheme"] == "model") & (base["category"] == "total")
           & (base["year"] == YEAR))
    assert cla.sum() == 2 and (reform.loc[cla, "value"] < base.loc[cla, "value"]).all()


# ---- (c) coverage ------------------------------------------------------------------------------------------------
def _twelve(la_codes) -> list[str]:
    inputs = build()
    big = np.argsort(-inputs.la_weights, kind="stable")[:12]   # the 12 LAs with most care starts
    return sorted(inputs.la_codes[i] for i in big)


def test_a_lever_on_12_named_las_changes_only_their_children(no_transfer_tables, la_codes):
    """Child by child (cohort, transfers off): children of other LAs have identical months."""
    twelve = _twelve(la_codes)
    arrays = mixed_arrays(20000, seed=8, shares={"FOSTER": 0.5, "KINSHIP": 0.2, "RESIDENTIAL_HOME": 0.1,
                                                 "AT_HOME": 0.2})
    g = np.random.default_rng(3)
    arrays["la"] = g.integers(0, len(la_codes), 20000)
    arrays["la"][:3000] = g.choice([la_codes.index(c) for c in twelve], 3000)
    lt = L.compile_levers([lever(multiplier=3.0, las=tuple(twelve))], la_codes)
    runs = []
    for levers in (None, lt):
        pop = make_cohort_from_arrays(**arrays)
        run_cohort(pop, no_transfer_tables, 17, 12, first_month=START, levers=levers)
        runs.append(pop)
    inside = np.isin(arrays["la"], [la_codes.index(c) for c in twelve])
    differs = np.zeros(20000, dtype=bool)
    for f in ("state", "age", "flags", "epi", "plc", "prev", "la"):
        differs |= getattr(runs[0], f)[:20000] != getattr(runs[1], f)[:20000]
    assert not differs[~inside].any()
    assert differs[inside].sum() > 100


def test_a_lever_on_12_named_las_in_the_engine(params, la_codes):
    """Whole engine, transfers off: CLA by LA at 31 March 2026 differ only in the 12 LAs; every output before
    the start is the status quo's (arrivals come from reservoirs that the lever cannot reach before April 2026)."""
    twelve = _twelve(la_codes)
    p = {**params, "care.transferred.base": -np.inf}
    inputs = build()
    tables = engine.YearTables.build(p, START_YEAR + 1, YEAR)
    previous = runner.set_threads(1)   # results do not depend on threads; one is quickest at this size
    try:
        pool, _ = engine.spin_up(p, inputs, tables, 5, 0.02)
        out = [engine.run_replicate(p, inputs, tables, 99, engine.Settings(end_year=YEAR, scale=0.02, levers=lv),
                                    pool) for lv in ((), (lever(multiplier=3.0, las=tuple(twelve)),))]
    finally:
        runner.set_threads(previous)
    yi = YEAR - START_YEAR
    for name in ("stock", "la_cla", "started", "ceased"):
        assert np.array_equal(getattr(out[0], name)[:yi], getattr(out[1], name)[:yi]), name
    for name in ("flows", "cm"):
        assert np.array_equal(getattr(out[0], name)[:START], getattr(out[1], name)[:START]), name
    assert np.array_equal(out[0].arrivals, out[1].arrivals)  # the reservoirs first feel the lever in April 2026
    inside = np.isin(inputs.la_codes, twelve)
    assert np.array_equal(out[0].la_cla[yi, ~inside], out[1].la_cla[yi, ~inside])
    assert out[1].la_cla[yi, inside].sum() < out[0].la_cla[yi, inside].sum()
    assert np.count_nonzero(out[1].la_cla[yi, inside] != out[0].la_cla[yi, inside]) >= 10


def pooled_table(a: np.ndarray, b: np.ndarray, min_count: int = 10) -> np.ndarray:
    """2 x states contingency table, states with fewer than ``min_count`` children in all pooled (as
    tests/test_reference_model.py)."""
    keep = (a + b) >= min_count
    t = np.array([np.append(a[keep], a[~keep].sum()), np.append(b[keep], b[~keep].sum())])
    return t[:, t.sum(axis=0) > 0]


def _coverage_draws(n: int) -> np.ndarray:
    pop = make_cohort(n, S.FOSTER, 100)
    return np.array([R.draw32(L.COVER_SEED, int(c), L.COVER_MONTH, L.COVER_DEC) for c in pop.cid[:n]])


def test_share_covers_a_fixed_share_of_children(tables):
    n, share = 20000, 0.3
    u = _coverage_draws(n)
    covered = u < share * U32
    assert abs(covered.mean() - share) < 5 * np.sqrt(share * (1 - share) / n)
    assert np.all(covered <= (u < 0.6 * U32))   # a smaller share is a subset of a larger one
    # the engine changes only covered children
    lt = L.compile_levers([lever(multiplier=4.0, share=share)], ["E0"])
    runs = []
    for levers in (None, lt):
        pop = make_cohort(n, S.FOSTER, 100, epi=3)
        run_cohort(pop, tables, 23, 6, first_month=START, levers=levers)
        runs.append(pop)
    differs = runs[0].state[:n] != runs[1].state[:n]
    assert differs.sum() > 100 and not differs[~covered].any()


# ---- (d) size of the effect ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("effect", [{"multiplier": 2.0}, {"addition": 0.01}])
def test_realised_transitions_follow_the_phased_probability(tables, effect):
    """One month of 200,000 identical foster children at the start, mid-ramp and after the ramp: reunifications
    within 5 binomial standard errors of N x p', p' the lever's phased probability; only reunifications change."""
    n, age, epi, plc = 200_000, 12 * 10, 24, 12
    lv = lever(phase_in_months=12, **effect)
    lt = L.compile_levers([lv], ["E0"])
    row = row_index(S.FOSTER, int(A.AGE_BAND_OF_MONTH[age + 1]), 0, 0, 0, int(A.EPI_BAND_OF_MONTH[epi]),
                    int(A.PLC_BAND_OF_MONTH[plc]))
    slot = E.EVENT_OF_SLOT[S.FOSTER].tolist().index(E.EV["REUNIFIED"])
    p = tables.monthly_prob.reshape(-1, E.K_SLOTS)[row, slot]
    for d, frac in ((0, 0.0), (6, 0.5), (12, 1.0), (30, 1.0)):
        month = START + d
        base = run_cohort(make_cohort(n, S.FOSTER, age, epi=epi, plc=plc), tables, 31 + d, 1, first_month=month)
        occ = run_cohort(make_cohort(n, S.FOSTER, age, epi=epi, plc=plc), tables, 31 + d, 1, first_month=month,
                         levers=lt)
        want = p * (1 + frac * (effect["multiplier"] - 1)) if "multiplier" in effect else p + frac * effect["addition"]
        got = occ[1, S.RETURNED_HOME] / n
        assert abs(got - want) < 5 * np.sqrt(want * (1 - want) / n), (d, got, want)
        diff = occ[1] - base[1]   # common random numbers: only foster -> returned home moves
        assert diff[S.RETURNED_HOME] == -diff[S.FOSTER] and np.count_nonzero(diff) == (2 if frac else 0), diff


def _both(arrays, tables, levers, engine_seed, mesa_seed, months, la_cum=None):
    pop = make_cohort_from_arrays(**arrays)
    ref = R.ReferenceModel.from_population(pop, tables, mesa_seed, first_month=START - 2, levers=levers,
                                           la_cum=la_cum)
    occ_e = run_cohort(pop, tables, engine_seed, months, first_month=START - 2, levers=levers, la_cum=la_cum)
    return occ_e, ref.run(months), pop, ref


def _mixed_levers(codes):
    return [lever("reunify", multiplier=2.5, phase_in_months=6, las=tuple(codes[:5]), share=0.7),
            L.Lever(name="entry", kind="hazard", from_states=("AT_HOME", "EDGE_OF_CARE"), to="ENTER_CARE",
                    addition=-0.004, age_bands=("10_to_15", "16"), need_bands=(1, 2, 3), assumption=True,
                    rationale="test", low=-0.01, high=0.0),
            L.Lever(name="moves", kind="hazard", from_states=("FOSTER",), to="MOVE", multiplier=0.5, uasc=False,
                    source="test")]


def test_engine_and_mesa_apply_levers_identically_with_the_same_seed(tables):
    codes = [f"L{i}" for i in range(10)]
    arrays = mixed_arrays(3000, seed=12)
    arrays["la"] = np.arange(3000) % 10
    lt = L.compile_levers(_mixed_levers(codes), codes)
    occ_e, occ_m, pop, ref = _both(arrays, tables, lt, 4242, 4242, 18)
    assert np.array_equal(occ_e, occ_m)
    m = pop.alive_mask()
    order = np.argsort(pop.cid[: pop.n_used][m])
    got = ref.child_arrays()
    for k, f in (("state", "state"), ("epi", "epi"), ("plc", "plc"), ("prev", "prev"), ("la", "la")):
        assert np.array_equal(got[k], getattr(pop, f)[: pop.n_used][m][order].astype(np.int64)), k
    base = run_cohort(make_cohort_from_arrays(**arrays), tables, 4242, 18, first_month=START - 2)
    assert np.array_equal(base[:3], occ_e[:3]) and not np.array_equal(base, occ_e)  # forks at the start


def test_engine_and_mesa_agree_on_a_levers_effect_with_different_seeds(tables):
    """Different random numbers: state distributions agree (chi-square), and the paired effect of the lever on
    children returned home agrees within 5 of its standard errors (each child moves the count by at most 1)."""
    codes = [f"L{i}" for i in range(10)]
    arrays = mixed_arrays(4000, seed=3, shares={"AT_HOME": 0.3, "EDGE_OF_CARE": 0.15, "FOSTER": 0.25,
                                                "RESIDENTIAL_HOME": 0.1, "RETURNED_HOME": 0.2})
    arrays["la"] = np.arange(4000) % 10
    lt = L.compile_levers(_mixed_levers(codes), codes)
    occ_e, occ_m, _, _ = _both(arrays, tables, lt, 1001, 2002, 18)
    assert not np.array_equal(occ_e, occ_m)
    for month in (6, 12, 18):
        _, pval, _, _ = stats.chi2_contingency(pooled_table(occ_e[month], occ_m[month]))
        assert pval > 0.001, (month, occ_e[month], occ_m[month], pval)
    effects, spread = [], 0
    for seed, lev_occ in ((1001, occ_e), (2002, None)):
        pop_b, pop_l = make_cohort_from_arrays(**arrays), make_cohort_from_arrays(**arrays)
        if lev_occ is None:  # Mesa: base and lever with the same seed
            rb = R.ReferenceModel.from_population(pop_b, tables, seed, first_month=START - 2)
            rl = R.ReferenceModel.from_population(pop_l, tables, seed, first_month=START - 2, levers=lt)
            rb.run(18), rl.run(18)
            sb, sl = rb.child_arrays(), rl.child_arrays()
            states_b = dict(zip(sb["cid"].tolist(), sb["state"].tolist()))
            states_l = dict(zip(sl["cid"].tolist(), sl["state"].tolist()))
        else:                # engine
            run_cohort(pop_b, tables, seed, 18, first_month=START - 2)
            run_cohort(pop_l, tables, seed, 18, first_month=START - 2, levers=lt)
            states_b = {int(c): int(s) for c, s in zip(pop_b.cid[:4000], pop_b.state[:4000]) if s != S.VACANT}
            states_l = {int(c): int(s) for c, s in zip(pop_l.cid[:4000], pop_l.state[:4000]) if s != S.VACANT}
        ids = set(states_b) | set(states_l)
        rh_b = np.array([states_b.get(c) == S.RETURNED_HOME for c in ids])
        rh_l = np.array([states_l.get(c) == S.RETURNED_HOME for c in ids])
        effects.append(int(rh_l.sum()) - int(rh_b.sum()))
        spread += int(np.count_nonzero(rh_l != rh_b))
    assert min(effects) > 0, effects
    assert abs(effects[0] - effects[1]) < 5 * np.sqrt(spread), (effects, spread)


# ---- (f) placement levers ---------------------------------------------------------------------------------------
RES = L.DEST_NAMES.index("RESIDENTIAL_HOME")
PLACEMENT = dict(kind="placement", placements=("RESIDENTIAL_HOME",), on="both", source="test")


def placement(name="p", **kw) -> L.Lever:
    return L.Lever(name=name, **{**PLACEMENT, **kw})


def _widths(row) -> np.ndarray:
    return np.diff(np.concatenate([[0], np.asarray(row, dtype=np.int64)]))


def _md(**mult) -> list[float]:
    """Per-destination multipliers as placement_effects leaves them: -1 where no lever targets a destination."""
    md = [-1.0] * L.N_DEST
    for name, m in mult.items():
        md[L.DEST_NAMES.index(name)] = m
    return md


def test_placement_zero_effect_keeps_every_destination(tables):
    """Targets at multiplier 1: every draw of every destination row selects what the row selects, bit for bit."""
    g = np.random.default_rng(5)
    draws = g.integers(0, 2**32, 300).tolist() + [0, 2**32 - 1]
    rows = tables.dest_thr.reshape(-1, L.N_DEST)
    assert rows.shape[0] == L.N_PCELLS
    for row in rows.tolist():
        edges = row + [max(t - 1, 0) for t in row]
        for md in (_md(RESIDENTIAL_HOME=1.0), _md(KINSHIP=1.0, FOSTER=1.0), [1.0] * L.N_DEST):
            assert all(L.placement_event(row, md, r) == min(R.select(row, r), L.N_DEST - 1) for r in draws + edges)


def test_placement_recut_moves_only_the_cut_off_draws(tables):
    """Halving the residential share: exactly the draws in the end of the residential interval that the new
    width cuts off change placement, and they go to the other placements in proportion to their shares."""
    row = tables.dest_thr[0, 3, 1, 0].tolist()
    p = _widths(row)
    total = row[-1]
    q_res = int(np.floor(p[RES] * 0.5))
    lo = row[RES] - p[RES]                          # start of the residential interval
    md = _md(RESIDENTIAL_HOME=0.5)
    assert L.placement_event(row, md, lo + q_res - 1) == RES and L.placement_event(row, md, row[RES]) == RES + 1
    assert L.placement_event(row, md, lo + q_res) != RES and L.placement_event(row, md, row[RES] - 1) != RES
    r = np.random.default_rng(6).integers(0, 2**32, 400_000)
    got = np.array([L.placement_event(row, md, int(x)) for x in r])
    was = np.array([min(R.select(row, int(x)), L.N_DEST - 1) for x in r])
    moved = got != was
    assert np.array_equal(moved, (r >= lo + q_res) & (r < row[RES]))     # only the cut-off draws move
    share = p / total
    n_res = np.count_nonzero(got == RES)
    want = 0.5 * share[RES] * r.size
    assert abs(n_res - want) < 5 * np.sqrt(want)
    others = np.delete(np.arange(L.N_DEST), RES)
    to = np.bincount(got[moved], minlength=L.N_DEST)[others]
    expect = moved.sum() * share[others] / share[others].sum()
    keep = expect > 0
    assert np.all(to[~keep] == 0)
    assert stats.chisquare(to[keep], expect[keep] * to.sum() / expect[keep].sum()).pvalue > 0.001


def test_placement_targets_absorb_and_overflow(tables):
    """Two targets (residential down, kinship up): the other placements absorb the difference in proportion;
    targets that would exceed the whole fill the row; structural zeros stay zero."""
    row = tables.dest_thr[1, 5, 0, 0].tolist()      # moves at 17: every placement possible
    p = _widths(row).astype(float)
    total = row[-1]
    r = np.random.default_rng(7).integers(0, 2**32 - 1, 300_000)
    for md in (_md(RESIDENTIAL_HOME=0.8, KINSHIP=1.3), _md(KINSHIP=3.0, SEMI_INDEPENDENT=2.0)):
        got = np.bincount([L.placement_event(row, md, int(x)) for x in r], minlength=L.N_DEST) / r.size
        m = np.array(md)
        xt = (p * np.where(m >= 0, m, 0)).sum()      # the targets' new width
        if xt <= total:                              # the others absorb the difference in proportion
            q = np.where(m >= 0, p * m, p * (total - xt) / p[m < 0].sum()) / total
        else:                                        # the targets overflow: they fill the row
            q = np.where(m >= 0, p * m / xt, 0.0)
        assert np.all(np.abs(got - q) < 5 * np.sqrt(q * (1 - q) / r.size) + 1e-9), (md, got, q)
    assert xt > total                                # the second case overflows (0.46 x 2 + 0.06 x 3 > 1)
    young = tables.dest_thr[0, 1, 0, 0].tolist()      # 1 to 4: no (semi-)independent living
    zero = _widths(young) == 0
    got = [L.placement_event(young, _md(SEMI_INDEPENDENT=5.0, KINSHIP=2.0), int(x)) for x in r[:20000]]
    assert zero.any() and not np.isin(got, np.flatnonzero(zero)).any()


def test_placement_lever_size_in_the_kernel(params):
    """100,000 children on a child protection plan (entry to care made likely), one month at the start, half-way
    through a 12-month phase-in and after it: the residential share of the entries is p x m' within 5 binomial
    standard errors (m' the phased multiplier: 1, 0.75, 0.5); only children who would have gone to residential
    care go elsewhere, to the other placements in proportion to their shares."""
    n, age = 100_000, 12 * 12
    tabs = compile_tables({**params, "cpp.enter_care.base": -1.0}, YEAR)
    lt = L.compile_levers([placement(multiplier=0.5, on="entry", phase_in_months=12)], ["E0"])
    row = tabs.dest_thr[0, int(A.AGE_BAND_OF_MONTH[age + 1]), 0, 0]
    share = _widths(row) / float(row[-1])
    dest = np.asarray(E.DEST_STATES)
    others = np.delete(np.arange(L.N_DEST), RES)
    for d, m in ((0, 1.0), (6, 0.75), (12, 0.5)):
        pops = []
        for levers in (None, lt):
            pop = make_cohort(n, S.EDGE_OF_CARE, age)
            run_cohort(pop, tabs, 41 + d, 1, first_month=START + d, levers=levers)
            pops.append(pop.state[:n].copy())
        base, reform = pops
        placed = np.isin(base, dest)                 # entered care and stayed past the month (no short stay)
        assert np.array_equal(placed, np.isin(reform, dest)) and placed.sum() > 10_000
        n_res, want = np.count_nonzero(reform[placed] == S.RESIDENTIAL_HOME), share[RES] * m * placed.sum()
        assert abs(n_res - want) < 5 * np.sqrt(want * (1 - want / placed.sum())), (d, n_res, want)
        moved = base != reform
        assert np.all(base[moved] == S.RESIDENTIAL_HOME) and (moved.sum() > 0) == (m < 1)
        if m < 1:
            to = np.array([np.count_nonzero(reform[moved] == s) for s in dest[others]])
            expect = moved.sum() * share[others] / share[others].sum()
            keep = expect > 5
            assert np.all(to[expect == 0] == 0)
            assert stats.chisquare(to[keep], expect[keep] * to[keep].sum() / expect[keep].sum()).pvalue > 0.001


def test_placement_lever_on_12_named_las_changes_only_their_children(no_transfer_tables, la_codes):
    """Child by child (cohort, transfers off, 12 months): entries and moves of children outside the 12 LAs are
    untouched; inside them, placements differ."""
    twelve = _twelve(la_codes)
    arrays = mixed_arrays(20000, seed=9, shares={"EDGE_OF_CARE": 0.4, "FOSTER": 0.4, "RESIDENTIAL_HOME": 0.2})
    g = np.random.default_rng(4)
    arrays["la"] = g.integers(0, len(la_codes), 20000)
    arrays["la"][:4000] = g.choice([la_codes.index(c) for c in twelve], 4000)
    lt = L.compile_levers([placement(multiplier=0.0, las=tuple(twelve)),
                           placement("kin", placements=("KINSHIP",), multiplier=2.0, on="move",
                                     las=tuple(twelve), share=0.5)], la_codes)
    runs = []
    for levers in (None, lt):
        pop = make_cohort_from_arrays(**arrays)
        run_cohort(pop, no_transfer_tables, 19, 12, first_month=START, levers=levers)
        runs.append(pop)
    inside = np.isin(arrays["la"], [la_codes.index(c) for c in twelve])
    differs = np.zeros(20000, dtype=bool)
    for f in ("state", "age", "flags", "epi", "plc", "prev", "la"):
        differs |= getattr(runs[0], f)[:20000] != getattr(runs[1], f)[:20000]
    assert not differs[~inside].any()
    assert differs[inside].sum() > 40


def test_placement_lever_in_the_engine(params, la_codes):
    """Whole engine, transfers off: no child starts in a children's home after a lever sets that placement's
    share of entries to 0 (entries from every state and arrivals straight into care), while moves still reach
    it; limited to 12 LAs, the other LAs' care numbers are untouched and the status quo runs until the start."""
    twelve = _twelve(la_codes)
    p = {**params, "care.transferred.base": -np.inf}
    inputs = build()
    tables = engine.YearTables.build(p, START_YEAR + 1, YEAR)
    levers = ((), (placement(multiplier=0.0, on="entry"),), (placement(multiplier=0.0, las=tuple(twelve)),))
    previous = runner.set_threads(1)
    try:
        pool, _ = engine.spin_up(p, inputs, tables, 5, 0.02)
        out = [engine.run_replicate(p, inputs, tables, 99, engine.Settings(end_year=YEAR, scale=0.02, levers=lv),
                                    pool) for lv in levers]
    finally:
        runner.set_threads(previous)
    yi = YEAR - START_YEAR
    for o in out[1:]:
        for name in ("stock", "la_cla", "started", "ceased"):
            assert np.array_equal(getattr(out[0], name)[:yi], getattr(o, name)[:yi]), name
    assert out[0].started[yi, S.RESIDENTIAL_HOME].sum() > 0 and out[1].started[yi, S.RESIDENTIAL_HOME].sum() == 0
    assert out[1].stock[yi, S.RESIDENTIAL_HOME].sum() > 0              # moves still reach children's homes
    inside = np.isin(inputs.la_codes, twelve)
    assert np.array_equal(out[0].la_cla[yi, ~inside], out[2].la_cla[yi, ~inside])
    res = out[2].stock[yi, S.RESIDENTIAL_HOME].sum()
    assert 0 < res < out[0].stock[yi, S.RESIDENTIAL_HOME].sum()


def _placement_levers(codes):
    return [placement("res", multiplier=0.3, phase_in_months=4, share=0.6),
            placement("kin", placements=("KINSHIP", "FOSTER"), multiplier=1.5, on="entry", las=tuple(codes[:4])),
            placement("teen", placements=("SEMI_INDEPENDENT",), multiplier=2.0, on="move", age_bands=("16", "17"),
                      need_bands=(2, 3), uasc=False, assumption=True, source="", rationale="test", low=1.0, high=3.0)]


def test_engine_and_mesa_apply_placement_levers_identically_with_the_same_seed(tables):
    codes = [f"L{i}" for i in range(10)]
    arrays = mixed_arrays(3000, seed=13)
    arrays["la"] = np.arange(3000) % 10
    lt = L.compile_levers(_mixed_levers(codes) + _placement_levers(codes), codes)
    occ_e, occ_m, pop, ref = _both(arrays, tables, lt, 4343, 4343, 18)
    assert np.array_equal(occ_e, occ_m)
    m = pop.alive_mask()
    order = np.argsort(pop.cid[: pop.n_used][m])
    got = ref.child_arrays()
    for k in ("state", "epi", "plc", "prev", "la", "flags"):
        assert np.array_equal(got[k], getattr(pop, k)[: pop.n_used][m][order].astype(np.int64)), k
    hazard_only = L.compile_levers(_mixed_levers(codes), codes)
    occ_h = run_cohort(make_cohort_from_arrays(**arrays), tables, 4343, 18, first_month=START - 2, levers=hazard_only)
    assert np.array_equal(occ_h[:3], occ_e[:3]) and not np.array_equal(occ_h, occ_e)  # placements fork at the start


def test_engine_and_mesa_agree_on_placement_levers_with_different_seeds(tables):
    codes = [f"L{i}" for i in range(10)]
    arrays = mixed_arrays(4000, seed=14, shares={"EDGE_OF_CARE": 0.3, "FOSTER": 0.4, "RESIDENTIAL_HOME": 0.1,
                                                 "AT_HOME": 0.2})
    arrays["la"] = np.arange(4000) % 10
    lt = L.compile_levers(_placement_levers(codes), codes)
    occ_e, occ_m, _, _ = _both(arrays, tables, lt, 1003, 2004, 18)
    assert not np.array_equal(occ_e, occ_m)
    for month in (6, 12, 18):
        _, pval, _, _ = stats.chi2_contingency(pooled_table(occ_e[month], occ_m[month]))
        assert pval > 0.001, (month, occ_e[month], occ_m[month], pval)


def test_placement_levers_load_from_a_scenario(tmp_path):
    sc = scenario.load(_scen(tmp_path, HEAD + """
[[lever]]
name = "fewer_homes"
kind = "placement"
to = "RESIDENTIAL_HOME"
multiplier = 0.8
las = ["E08000025"]
source = "test"
[[lever]]
name = "more_kin"
kind = "placement"
to = ["KINSHIP", "FOSTER"]
on = "entry"
multiplier = 1.3
phase_in_months = 24
share = 0.5
age_band = ["under_1", "1_to_4"]
assumption = true
rationale = "test"
low = 1.0
high = 1.5
"""))
    a, b = sc.levers
    assert a.placements == ("RESIDENTIAL_HOME",) and a.on == "both" and a.applied and a.coverage == "las"
    assert b.placements == ("KINSHIP", "FOSTER") and b.on == "entry" and b.coverage == "share"
    assert b.as_dict()["to"] == ["KINSHIP", "FOSTER"] and b.as_dict()["on"] == "entry"
    assert sc.hazard_levers == ()
    lt = L.compile_levers(sc.levers, la_table()[0])
    assert lt.for_month(START + 100) is None and lt.placement_for_month(START - 1) is None
    assert lt.placement_for_month(START + 12)[-1].tolist() == pytest.approx([0.8, 1.15])


# ---- (e) scenario files ---------------------------------------------------------------------------------------------
HEAD = '[scenario]\nname = "reform"\n'
GOOD = """
[[lever]]
name = "fgc"
kind = "hazard"
from = "EDGE_OF_CARE"
to = "ENTER_CARE"
multiplier = 0.81
phase_in_months = 12
las = ["E08000025"]
source = "Family Group Conference trial"
[[lever]]
name = "recruit"
kind = "capacity"
capacity = "recruitment"
addition = 3000
start = "2025-04"
assumption = true
rationale = "9,000 carers over three years"
low = 1000
high = 3000
[[lever]]
name = "ifa_price"
kind = "unit_cost"
cost_key = "foster"
provider = "independent"
multiplier = 0.9
source = "test"
[[lever]]
name = "programme"
kind = "investment"
annual_gbp = 205e6
end = "2030-03"
source = "CCN/Newton 2022"
"""


def _scen(tmp_path: Path, body: str, name: str = "scen.toml") -> Path:
    p = tmp_path / name
    p.write_text(body, encoding="utf-8")
    return p


def test_scenario_levers_load_and_inherit(tmp_path):
    base = scenario.load(_scen(tmp_path, HEAD + GOOD, "base.toml"))
    assert [lv.name for lv in base.levers] == ["fgc", "recruit", "ifa_price", "programme"]
    assert [lv.name for lv in base.hazard_levers] == ["fgc"]
    fgc = base.levers[0]
    assert fgc.transitions() == ((S.EDGE_OF_CARE, 0),) and fgc.start == (2025, 4) and fgc.coverage == "las"
    assert base.levers[3].end == (2030, 3) and base.levers[1].assumption
    child = scenario.load(_scen(tmp_path, '[scenario]\nname = "more"\nbase = "base.toml"\n'
                                          '[[lever]]\nname = "fgc"\nkind = "hazard"\nfrom = "EDGE_OF_CARE"\n'
                                          'to = "ENTER_CARE"\nmultiplier = 0.7\nsource = "replaces"\n'
                                          '[[lever]]\nname = "kin"\nkind = "hazard"\nfrom = "IN_CARE"\n'
                                          'to = "KINSHIP_ORDER"\nmultiplier = 1.2\nsource = "new"\n'))
    assert [lv.name for lv in child.levers] == ["fgc", "recruit", "ifa_price", "programme", "kin"]
    assert child.levers[0].multiplier == 0.7 and child.levers[4].to == "KINSHIP_ORDER"
    assert scenario.load(REPO / "runs" / "scenarios" / "status_quo.toml").levers == ()


REPO = Path(__file__).resolve().parents[1]
H = '[[lever]]\nname = "x"\nkind = "hazard"\nfrom = "EDGE_OF_CARE"\nto = "ENTER_CARE"\n'
BAD = [
    (H + 'multiplier = 0.8\nsource = "s"\ncolour = "red"\n', "lever.x.colour", "'red'"),
    (H + 'multiplier = -0.5\nsource = "s"\n', "lever.x.multiplier", "-0.5"),
    (H + 'multiplier = 12.0\nsource = "s"\n', "lever.x.multiplier", "12.0"),
    (H + 'addition = 1.5\nsource = "s"\n', "lever.x.addition", "1.5"),
    (H + 'multiplier = "half"\nsource = "s"\n', "lever.x.multiplier", "'half'"),
    (H + 'multiplier = 0.8\nmultiplier2 = 1\nsource = "s"\n', "lever.x.multiplier2", "1"),
    (H + 'multiplier = 0.8\n', "lever.x.source", "None"),
    (H + 'multiplier = 0.8\nassumption = true\nlow = 0.5\nhigh = 1.0\n', "lever.x.rationale", "None"),
    (H + 'multiplier = 0.8\nassumption = true\nrationale = "r"\n', "lever.x.low", "None"),
    (H + 'multiplier = 0.8\nassumption = true\nrationale = "r"\nlow = 0.9\nhigh = 1.0\n', "lever.x.multiplier",
     "0.8"),
    (H + 'multiplier = 0.8\nstart = "2023-10"\nsource = "s"\n', "lever.x.start", "'2023-10'"),
    (H + 'multiplier = 0.8\nstart = "April 2025"\nsource = "s"\n', "lever.x.start", "'April 2025'"),
    (H + 'multiplier = 0.8\nshare = 1.5\nsource = "s"\n', "lever.x.share", "1.5"),
    (H + 'multiplier = 0.8\nlas = ["E99999999"]\nsource = "s"\n', "lever.x.las", "'E99999999'"),
    (H + 'multiplier = 0.8\nphase_in_months = -3\nsource = "s"\n', "lever.x.phase_in_months", "-3"),
    (H + 'multiplier = 0.8\nage_band = ["teen"]\nsource = "s"\n', "lever.x.age_band", "'teen'"),
    (H.replace('"ENTER_CARE"', '"ADOPTED"') + 'multiplier = 0.8\nsource = "s"\n', "lever.x.to", "'ADOPTED'"),
    (H.replace('"ENTER_CARE"', '"FOSTER"') + 'multiplier = 0.8\nsource = "s"\n', "lever.x.to", "'FOSTER'"),
    (H.replace('"EDGE_OF_CARE"', '"NOWHERE"') + 'multiplier = 0.8\nsource = "s"\n', "lever.x.from", "'NOWHERE'"),
    (H.replace('"hazard"', '"magic"') + 'multiplier = 0.8\nsource = "s"\n', "lever.x.kind", "'magic'"),
    (H + 'multiplier = 0.8\naddition = 0.01\nsource = "s"\n', "lever.x.multiplier", "(0.8, 0.01)"),
    (H + 'multiplier = 0.8\nsource = "s"\n' + H + 'multiplier = 0.9\nsource = "s"\n', "lever.x.name", "'x'"),
    ('[[lever]]\nkind = "hazard"\n', "lever[0].name", "None"),
    ('[lever]\nname = "x"\n', "lever", "{'name': 'x'}"),
    ('[[lever]]\nname = "c"\nkind = "capacity"\ncapacity = "beds"\nmultiplier = 1.1\nsource = "s"\n',
     "lever.c.capacity", "'beds'"),
    ('[[lever]]\nname = "c"\nkind = "capacity"\nfrom = "FOSTER"\ncapacity = "retention"\nmultiplier = 1.1\n'
     'source = "s"\n', "lever.c.from", "'FOSTER'"),
    ('[[lever]]\nname = "u"\nkind = "unit_cost"\ncost_key = "caviar"\nmultiplier = 1.1\nsource = "s"\n',
     "lever.u.cost_key", "'caviar'"),
    ('[[lever]]\nname = "i"\nkind = "investment"\nannual_gbp = -5.0\nsource = "s"\n', "lever.i.annual_gbp", "-5.0"),
]
P = '[[lever]]\nname = "p"\nkind = "placement"\n'
BAD_PLACEMENT = [
    (P + 'to = "AT_HOME"\nmultiplier = 0.5\nsource = "s"\n', "lever.p.to", "'AT_HOME'"),
    (P + 'to = "PLACED_FOR_ADOPTION"\nmultiplier = 0.5\nsource = "s"\n', "lever.p.to", "'PLACED_FOR_ADOPTION'"),
    (P + 'to = "CASTLE"\nmultiplier = 0.5\nsource = "s"\n', "lever.p.to", "'CASTLE'"),
    (P + 'to = ["KINSHIP", "KINSHIP"]\nmultiplier = 1.5\nsource = "s"\n', "lever.p.to", "['KINSHIP', 'KINSHIP']"),
    (P + 'multiplier = 0.5\nsource = "s"\n', "lever.p.to", "None"),
    (P + 'to = "RESIDENTIAL_HOME"\non = "exit"\nmultiplier = 0.5\nsource = "s"\n', "lever.p.on", "'exit'"),
    (P + 'to = "RESIDENTIAL_HOME"\naddition = 0.1\nsource = "s"\n', "lever.p.addition", "0.1"),
    (P + 'to = "RESIDENTIAL_HOME"\nsource = "s"\n', "lever.p.multiplier", "None"),
    (P + 'to = "RESIDENTIAL_HOME"\nmultiplier = 11.0\nsource = "s"\n', "lever.p.multiplier", "11.0"),
    (P + 'to = "RESIDENTIAL_HOME"\nmultiplier = -0.2\nsource = "s"\n', "lever.p.multiplier", "-0.2"),
    (P + 'to = "RESIDENTIAL_HOME"\nfrom = "FOSTER"\nmultiplier = 0.5\nsource = "s"\n', "lever.p.from", "'FOSTER'"),
    (P + 'to = "RESIDENTIAL_HOME"\nmultiplier = 0.5\n', "lever.p.source", "None"),
    (P + 'to = "RESIDENTIAL_HOME"\nmultiplier = 0.5\nassumption = true\nrationale = "r"\nlow = 0.6\nhigh = 1.0\n',
     "lever.p.multiplier", "0.5"),
    (P + 'to = "RESIDENTIAL_HOME"\nmultiplier = 0.5\nlas = ["E99999999"]\nsource = "s"\n', "lever.p.las",
     "'E99999999'"),
    (P + 'to = "KINSHIP"\nmultiplier = 1.2\nshare = -0.1\nsource = "s"\n', "lever.p.share", "-0.1"),
    (P + 'to = "KINSHIP"\nmultiplier = 1.2\nage_band = ["18_and_over"]\nsource = "s"\n', "lever.p.age_band",
     "'18_and_over'"),
    (P + 'to = "KINSHIP"\nmultiplier = 1.2\nneed_band = 7\nsource = "s"\n', "lever.p.need_band", "7"),
    (P + 'to = "KINSHIP"\nmultiplier = 1.2\ncost_key = "foster"\nsource = "s"\n', "lever.p.cost_key", "'foster'"),
]


@pytest.mark.parametrize("body,field,value", BAD + BAD_PLACEMENT)
def test_invalid_levers_name_file_field_and_value(tmp_path, body, field, value):
    p = _scen(tmp_path, HEAD + body)
    with pytest.raises(scenario.ScenarioError) as exc:
        scenario.load(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: field '{field}': {value}"), msg


@pytest.mark.parametrize("body,field,value", [BAD[1], BAD[6], BAD[13], BAD[17], BAD_PLACEMENT[0]])
def test_cli_rejects_invalid_levers_and_writes_nothing(tmp_path, capsys, body, field, value):
    p = _scen(tmp_path, HEAD + body)
    outdir = tmp_path / "outputs"
    outdir.mkdir()
    rc = cli.main(["run", str(p), "--out", str(outdir / "run"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("caresim: error: ") and str(p) in err and field in err and value in err
    assert list(outdir.iterdir()) == []


def test_run_manifest_records_levers(tmp_path, params):
    sc = scenario.load(_scen(tmp_path, HEAD + GOOD))
    info = {"params": params, "seed": 1, "replicates": 1, "end_year": 2018, "scale": 0.02, "by_la": False,
            "individuals_alive_max_mean": 0.0, "individuals_alive_2015_mean": 0.0, "wall_seconds": 0.0,
            "workers": 1, "threads": 1}
    man = json.loads(json.dumps(output.manifest(sc, info), default=output._json_default))
    levers = {lv["name"]: lv for lv in man["scenario"]["levers"]}
    assert list(levers) == ["fgc", "recruit", "ifa_price", "programme"]
    assert levers["fgc"]["applied"] and not levers["recruit"]["applied"]
    assert levers["fgc"]["multiplier"] == 0.81 and levers["fgc"]["start"] == "2025-04"
    assert levers["fgc"]["las"] == ["E08000025"] and levers["programme"]["end"] == "2030-03"
