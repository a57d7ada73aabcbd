"""Observation model (sim/observe.py), unit costs (sim/costs.py) and the kernel's DfE counting rules.

Results are built by hand with known counts, so every expected number below is worked out in the test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents import attributes as A
from agents import events as E
from agents import states as S
from calibration import dfe
from calibration.parameters import base_parameters, load_register
from sim import costs as C
from sim import kernel
from sim import observe as O
from sim.engine import Result

N_REASON = len(E.CEASE_REASONS)
UA, NON = 1, 0


def make_result(n_years: int = 3, scale: float = 1.0, n_la: int = 3) -> Result:
    """An all-zero Result for 31 March 2015 .. 2015 + n_years - 1 (12 months per year after the first)."""
    ny, nm = n_years, 12 * (n_years - 1)
    return Result(
        years=np.arange(2015, 2015 + ny),
        stock=np.zeros((ny, S.N_STATES, 7, 2, 2), dtype=np.int64),
        la_cla=np.zeros((ny, n_la), dtype=np.int64),
        returned_open=np.zeros((ny, 7, 2), dtype=np.int64),
        started=np.zeros((ny, S.N_STATES, 7, 2), dtype=np.int64),
        ceased=np.zeros((ny, N_REASON, 7, 2), dtype=np.int64),
        flows=np.zeros((nm + 1, kernel.N_FLOW), dtype=np.int64),
        arrivals=np.zeros((nm + 1, 5), dtype=np.int64),
        cm=np.zeros((nm + 1, S.N_STATES, 2, A.N_NEED), dtype=np.int64),
        alive=np.zeros(nm + 1, dtype=np.int64),
        scale=scale)


def pick(df: pd.DataFrame, year: int, measure: str, scheme: str = "dfe_current", category: str = "total",
         age_band: str = "all", uasc: str = "all", la: str = "ENG") -> float:
    """The single value of one key; fails if the row is missing or duplicated."""
    m = df[(df.year == year) & (df.measure == measure) & (df.scheme == scheme) & (df.category == category)
           & (df.age_band == age_band) & (df.uasc == uasc) & (df.la == la)]
    assert len(m) == 1, f"{len(m)} rows for {(year, measure, scheme, category, age_band, uasc, la)}"
    return float(m.value.iloc[0])


# ---- tidy(): stocks ------------------------------------------------------------------------------------------
def test_columns_and_types():
    df = O.tidy(make_result(), "sq", 3, 7)
    assert tuple(df.columns) == O.COLUMNS
    assert df.value.dtype == np.float64
    assert set(df.scheme) <= {"model", "dfe_old", "dfe_current"}
    assert (df.scenario == "sq").all() and (df.replicate == 3).all() and (df.draw == 7).all()
    assert not df.duplicated(["year", *O.KEYS]).any()


def test_cin_includes_cla_cpp_and_open_returned_home_and_is_scaled():
    r = make_result(scale=2.0)
    y = 1  # 31 March 2016
    r.stock[y, S.AT_HOME, 2, NON, 0] = 10
    r.stock[y, S.EDGE_OF_CARE, 3, NON, 0] = 6
    r.stock[y, S.FOSTER, 3, NON, 1] = 8
    r.stock[y, S.KINSHIP, 1, NON, 0] = 4
    r.stock[y, S.SEMI_INDEPENDENT, 5, UA, 0] = 2       # a UASC aged 17
    r.stock[y, S.RETURNED_HOME, 3, NON, 0] = 100       # not in need unless its case is open
    r.stock[y, S.KINSHIP_ORDER, 3, NON, 0] = 50        # out of care: never counted
    r.returned_open[y, 3, NON] = 2
    df = O.tidy(r, "sq", 0, 0)
    assert pick(df, 2016, "cla_31mar") == (8 + 4 + 2) / 2
    assert pick(df, 2016, "cin_31mar") == (10 + 6 + 8 + 4 + 2 + 2) / 2
    assert pick(df, 2016, "cpp_31mar") == 6 / 2
    assert pick(df, 2016, "uasc_31mar", uasc="uasc") == 2 / 2
    assert pick(df, 2016, "cla_31mar", uasc="uasc") == 1 and pick(df, 2016, "cla_31mar", uasc="non_uasc") == 6
    assert pick(df, 2016, "cla_31mar", age_band="16_and_over") == 1
    assert pick(df, 2016, "cla_31mar", age_band="10_to_15") == 4
    assert pick(df, 2016, "cla_31mar", age_band="1_to_4") == 2
    assert pick(df, 2015, "cla_31mar") == 0  # other years untouched


def _one_of_each_care_state() -> tuple[Result, dict[int, int]]:
    """Scale-1 stock with 2**code children in care state ``code``: every subset has a distinct sum."""
    r = make_result()
    n = {s: 2 ** s for s in S.CARE_STATES}
    for s, k in n.items():
        r.stock[2, s, 3, NON, 0] = k
    return r, n


def test_placement_schemes_and_2024_grouping_sum_the_right_states():
    r, n = _one_of_each_care_state()
    df = O.tidy(r, "sq", 0, 0)

    def total(*states):
        return float(sum(n[s] for s in states))

    grp = pick(df, 2017, "cla_31mar", category="residential_supported_other")
    assert grp == total(S.RESIDENTIAL_HOME, S.RESIDENTIAL_OTHER, S.SEMI_INDEPENDENT, S.INDEPENDENT_LIVING,
                        S.OTHER_IN_CARE)
    assert pick(df, 2017, "cla_31mar", category="foster") == total(S.KINSHIP, S.FOSTER)
    assert pick(df, 2017, "cla_31mar", category="secure_childrens_homes") == total(S.RESIDENTIAL_HOME)
    assert pick(df, 2017, "cla_31mar", category="independent_semi_independent_supported") == \
        total(S.SEMI_INDEPENDENT, S.INDEPENDENT_LIVING)
    assert pick(df, 2017, "cla_31mar", "dfe_old", "secure_childrens_homes_semi_independent") == \
        total(S.RESIDENTIAL_HOME, S.SEMI_INDEPENDENT)
    assert pick(df, 2017, "cla_31mar", "dfe_old", "other_residential") == total(S.RESIDENTIAL_OTHER)
    assert pick(df, 2017, "cla_31mar", "dfe_old", "other_community") == total(S.INDEPENDENT_LIVING)
    assert pick(df, 2017, "cla_31mar", "model", "residential") == total(S.RESIDENTIAL_HOME, S.RESIDENTIAL_OTHER)
    assert pick(df, 2017, "cla_31mar", "model", "supported") == total(S.SEMI_INDEPENDENT, S.INDEPENDENT_LIVING)
    cla = total(*S.CARE_STATES)
    for scheme in ("model", "dfe_old", "dfe_current"):
        d = df[(df.year == 2017) & (df.measure == "cla_31mar") & (df.scheme == scheme) & (df.age_band == "all")
               & (df.uasc == "all") & ~df.category.isin(["total", "residential_supported_other"])]
        assert d.value.sum() == cla, scheme
        assert pick(df, 2017, "cla_31mar", scheme) == cla


# ---- tidy(): flows -------------------------------------------------------------------------------------------
def test_ceased_groups_sum_to_total_and_map_reasons():
    r = make_result()
    for reason in range(N_REASON):
        r.ceased[1, reason, 6, NON] = 2 ** reason
    r.ceased[1, E.CR["transferred"], 5, UA] += 1000
    df = O.tidy(r, "sq", 0, 0)
    cr = E.CR
    total = float(sum(2 ** k for k in range(N_REASON)) + 1000)
    assert pick(df, 2016, "ceased") == total
    assert pick(df, 2016, "ceased", "model", "total") == total
    assert pick(df, 2016, "ceased", category="sgo_cao") == 2 ** cr["sgo_cao"]
    assert pick(df, 2016, "ceased", category="returned_home") == 2 ** cr["reunified"]
    assert pick(df, 2016, "ceased", category="left_care_or_aged_out") == \
        2 ** cr["left_care_16_17"] + 2 ** cr["aged_out"]
    assert pick(df, 2016, "ceased", category="care_taken_by_another_la") == 2 ** cr["transferred"] + 1000
    groups = df[(df.year == 2016) & (df.measure == "ceased") & (df.scheme == "dfe_current") & (df.age_band == "all")
                & (df.uasc == "all") & (df.category != "total")]
    assert sorted(groups.category) == sorted(O.CEASE_GROUPS)
    assert groups.value.sum() == total
    for reason, k in cr.items():
        assert pick(df, 2016, "ceased", "model", reason) == 2 ** k + (1000 if reason == "transferred" else 0)
    # cessations keep the 7 age bands: 17 and 18_and_over are separate
    assert pick(df, 2016, "ceased", age_band="17") == 1000
    assert pick(df, 2016, "ceased", age_band="18_and_over") == total - 1000
    assert pick(df, 2016, "ceased", uasc="uasc") == 1000


def test_started_age_bands_merge_16_and_17_and_entry_placement():
    r = make_result(scale=0.5)
    r.started[2, S.FOSTER, 4, NON] = 3      # aged 16
    r.started[2, S.SEMI_INDEPENDENT, 5, UA] = 5  # aged 17, UASC
    r.started[2, S.KINSHIP, 0, NON] = 1
    df = O.tidy(r, "sq", 0, 0)
    assert pick(df, 2017, "started") == 9 / 0.5
    assert pick(df, 2017, "started", age_band="16_and_over") == 8 / 0.5
    assert pick(df, 2017, "started", age_band="under_1") == 1 / 0.5
    assert pick(df, 2017, "started", uasc="uasc") == 5 / 0.5
    assert pick(df, 2017, "started", "model", "supported") == 5 / 0.5
    assert pick(df, 2017, "started", "model", "kinship") == 1 / 0.5
    assert not (df[df.measure == "started"].year == 2015).any()  # flows start with the year ending March 2016
    assert "16" not in set(df[df.measure == "started"].age_band)


def test_cpp_started_sums_the_dfe_year_months_and_individuals_alive():
    r = make_result(scale=2.0)
    r.flows[:, kernel.F_CPP_START] = np.arange(r.flows.shape[0])  # month m has m plan starts
    r.alive[:] = 1000 + np.arange(r.alive.shape[0])
    df = O.tidy(r, "sq", 0, 0)
    assert pick(df, 2016, "cpp_started") == sum(range(1, 13)) / 2
    assert pick(df, 2017, "cpp_started") == sum(range(13, 25)) / 2
    assert pick(df, 2015, "individuals_alive", "model") == 1000 / 2
    assert pick(df, 2017, "individuals_alive", "model") == 1024 / 2


def test_la_rows_only_with_by_la():
    r = make_result(scale=4.0, n_la=3)
    r.la_cla[1] = [4, 8, 12]
    codes = ["E06000001", "E06000002", "E06000003"]
    assert set(O.tidy(r, "sq", 0, 0, la_codes=codes).la) == {"ENG"}
    df = O.tidy(r, "sq", 0, 0, by_la=True, la_codes=codes)
    la = df[df.la != "ENG"]
    assert set(la.measure) == {"cla_31mar"} and set(la.category) == {"total"} and set(la.la) == set(codes)
    assert pick(df, 2016, "cla_31mar", la="E06000003") == 3.0
    with pytest.raises(ValueError, match="la_codes"):
        O.tidy(r, "sq", 0, 0, by_la=True)
    with pytest.raises(ValueError, match="la_codes"):
        O.tidy(r, "sq", 0, 0, by_la=True, la_codes=codes[:2])


def test_costs_price_child_months_per_financial_year():
    r = make_result(scale=2.0)
    r.cm[1, S.FOSTER, 1, 2] = 12        # April 2015: financial year 2015-16
    r.cm[13, S.AT_HOME, 0, 0] = 24      # April 2016: financial year 2016-17
    weekly = np.zeros((S.N_STATES, 2, A.N_NEED))
    weekly[S.FOSTER, 1, 2] = 900.0
    weekly[S.AT_HOME, 0, 0] = 50.0
    unit = C.UnitCosts(weekly=weekly, inflation=0.1, price_year_ending=2017)
    df = O.tidy(r, "sq", 0, 0, unit_costs=unit)
    per_month = 52.1775 / 12
    real16 = 12 * 900.0 * per_month / 2
    assert pick(df, 2016, "cost_gbp_2016_17", "model", "foster") == pytest.approx(real16)
    assert pick(df, 2016, "cost_gbp_2016_17", "model", "total") == pytest.approx(real16)
    assert pick(df, 2016, "cost_gbp_cash", "model", "total") == pytest.approx(real16 / 1.1)
    assert pick(df, 2017, "cost_gbp_cash", "model", "at_home") == pytest.approx(24 * 50.0 * per_month / 2)
    assert not O.tidy(r, "sq", 0, 0).measure.str.startswith("cost").any()  # no unit costs, no cost rows


def test_real_price_path_of_childrens_homes_by_hand():
    """cost.real_growth.childrens_home deflates children's home prices before the price year (NAO's real growth),
    cost.real_growth.childrens_home.future inflates them after it; other states keep their base-year prices."""
    r = make_result(n_years=4, scale=1.0)
    for m in (1, 13, 25):                # one child-month in each of the financial years ending 2016, 2017, 2018
        r.cm[m, S.RESIDENTIAL_HOME, 0, 0] = 1
        r.cm[m, S.FOSTER, 0, 0] = 1
    weekly = np.zeros((S.N_STATES, 2, A.N_NEED))
    weekly[S.RESIDENTIAL_HOME, 0, 0] = 6000.0
    weekly[S.FOSTER, 0, 0] = 600.0
    unit = C.UnitCosts(weekly=weekly, inflation=0.0, price_year_ending=2017,
                       real_growth=(("childrens_home", 0.10, 0.05),))
    df = O.tidy(r, "sq", 0, 0, unit_costs=unit)
    per_month = 52.1775 / 12
    for year, f in ((2016, 1 / 1.10), (2017, 1.0), (2018, 1.05)):
        assert pick(df, year, "cost_gbp_2016_17", "model", "residential") == pytest.approx(6000 * f * per_month)
        assert pick(df, year, "cost_gbp_2016_17", "model", "foster") == pytest.approx(600 * per_month)
    p = base_parameters()
    assert C.real_growth(p)["childrens_home"] == (p["cost.real_growth.childrens_home"],
                                                  p["cost.real_growth.childrens_home.future"])
    assert p["cost.real_growth.childrens_home"] == pytest.approx((318_400 / 239_800) ** 0.25 - 1, abs=5e-5)
    with pytest.raises(C.CostError, match="cost.real_growth.no_such_key"):
        C.real_growth(dict(p, **{"cost.real_growth.no_such_key": 0.1, "cost.real_growth.no_such_key.future": 0}))


# ---- observed() ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def obs() -> pd.DataFrame:
    return O.observed()


def test_observed_keys_are_tidy_keys(obs):
    assert tuple(obs.columns) == O.OBS_COLUMNS
    model = O.tidy(make_result(), "sq", 0, 0, unit_costs=base_parameters())
    tidy_keys = set(map(tuple, model[list(O.KEYS)].drop_duplicates().to_numpy()))
    obs_keys = set(map(tuple, obs[list(O.KEYS)].drop_duplicates().to_numpy()))
    assert obs_keys - tidy_keys == set()
    assert not obs.duplicated(["year", *O.KEYS]).any()


def test_observed_ceased_groups_add_up_to_the_published_total(obs):
    reasons = dfe.read("national_cla_flows.csv")
    reasons = reasons[reasons.measure == "ceased_by_reason"]
    ceased = obs[(obs.measure == "ceased") & (obs.age_band == "all") & (obs.uasc == "all")]
    for year in range(2015, 2025):
        d = ceased[ceased.year == year].set_index("category").value
        own_total = reasons[(reasons.year == year) & (reasons.category == "total")].value.iloc[0]
        n_parts = ((reasons.year == year) & (reasons.category != "total")).sum()
        assert abs(d.drop("total").sum() - own_total) <= 5 * (n_parts + 1), year  # DfE rounds to 10
        assert len(d) == len(O.CEASE_GROUPS) + 1, year


def test_observed_placement_combinations(obs):
    c = dfe.read("national_cla_31mar.csv")
    cur = c[(c.measure == "placement") & (c.scheme == "current") & (c.year == 2024)].set_index("category").value
    parts = ["secure_childrens_homes", "other_residential", "residential_schools",
             "independent_semi_independent_supported", "other_placements"]
    assert pick(obs, 2024, "cla_31mar", category="residential_supported_other") == cur[parts].sum()
    assert pick(obs, 2024, "cla_31mar", category="other_residential") == \
        cur[["other_residential", "residential_schools"]].sum()
    old = c[(c.measure == "placement") & (c.scheme == "old") & (c.year == 2015)].set_index("category").value
    assert pick(obs, 2015, "cla_31mar", "dfe_old", "other_residential") == \
        old[["other_residential", "residential_schools"]].sum()
    assert pick(obs, 2024, "cla_31mar") == dfe.series("national_cla_31mar.csv", "total").loc[2024]


# ---- sim/costs.py and the register ---------------------------------------------------------------------------
def test_cost_register_and_unit_cost_table():
    reg = load_register()
    cost = {k: r for k, r in reg.items() if k.startswith("cost.")}
    assert all(r["source"] for r in cost.values())
    p = base_parameters()
    t = C.unit_cost_table(p)
    assert t.shape == (S.N_STATES, 2, A.N_NEED) and (t > 0).all()
    assert (t[S.FOSTER, 1] > t[S.FOSTER, 0]).all() and (t[S.RESIDENTIAL_HOME, 1] > t[S.RESIDENTIAL_HOME, 0]).all()
    share = np.array([p[f"need.share.{b}"] for b in range(A.N_NEED)])
    assert np.dot(C.need_index(p), share / share.sum()) == pytest.approx(1.0)
    assert (t[S.AT_HOME] == p["cost.week.cin_casework"]).all()  # need does not change casework
    assert C.cash_factor(p, 2024) == 1.0
    assert C.cash_factor(p, 2026) == pytest.approx((1 + p["cost.inflation.annual"]) ** 2)
    bad = dict(p)
    del bad["cost.week.kinship_order"]
    with pytest.raises(C.CostError, match="cost.week.kinship_order"):
        C.unit_cost_table(bad)


# ---- the kernel's DfE counting rules -------------------------------------------------------------------------
def _markers():
    return (np.zeros(1, dtype=np.uint8), np.zeros(1, dtype=np.uint8), np.zeros(1, dtype=np.uint16),
            np.zeros((kernel.NCHUNK, S.N_STATES * 7 * 2), dtype=np.int64),
            np.zeros((kernel.NCHUNK, N_REASON * 7 * 2), dtype=np.int64))


def _cell(code, age7, uasc):
    return (code * 7 + age7) * 2 + uasc


def test_kernel_counts_one_start_per_child_per_year():
    start_yr, _, _, acc, _ = _markers()
    kernel._record_start(0, 0, S.FOSTER, 3, 0, 1, start_yr, acc, False)
    kernel._record_start(0, 0, S.RESIDENTIAL_HOME, 3, 0, 1, start_yr, acc, False)  # re-entry, same year
    assert acc.sum() == 1 and acc[0, _cell(S.FOSTER, 3, 0)] == 1
    kernel._record_start(0, 0, S.KINSHIP, 3, 0, 2, start_yr, acc, False)           # next year counts again
    assert acc.sum() == 2 and acc[0, _cell(S.KINSHIP, 3, 0)] == 1


def test_kernel_counts_one_cessation_under_the_last_reason():
    _, cease_yr, cease_cell, _, acc = _markers()
    kernel._record_cease(0, 0, E.CR["reunified"], 2, 0, 1, cease_yr, cease_cell, acc, False)
    kernel._record_cease(0, 0, E.CR["adopted"], 2, 0, 1, cease_yr, cease_cell, acc, False)
    assert acc.sum() == 1
    assert acc[0, _cell(E.CR["adopted"], 2, 0)] == 1 and acc[0, _cell(E.CR["reunified"], 2, 0)] == 0
    kernel._record_cease(0, 0, E.CR["reunified"], 2, 0, 2, cease_yr, cease_cell, acc, False)  # a new year
    assert acc.sum() == 2


def test_kernel_transfer_counts_cessation_and_new_start_after_an_earlier_start():
    start_yr, cease_yr, cease_cell, acc_s, acc_c = _markers()
    kernel._record_start(0, 0, S.FOSTER, 4, 1, 1, start_yr, acc_s, False)       # starts in the first LA
    # transfer (TRANSFERRED, final=True): the old LA records a cessation, the new LA a start
    kernel._record_cease(0, 0, E.CR["transferred"], 4, 1, 1, cease_yr, cease_cell, acc_c, True)
    kernel._record_start(0, 0, S.FOSTER, 4, 1, 1, start_yr, acc_s, True)
    assert acc_s.sum() == 2 and acc_s[0, _cell(S.FOSTER, 4, 1)] == 2
    assert acc_c.sum() == 1 and acc_c[0, _cell(E.CR["transferred"], 4, 1)] == 1
    # a later cessation in the new LA is that LA's own (last) cessation: the transfer is not replaced
    kernel._record_cease(0, 0, E.CR["left_care_16_17"], 4, 1, 1, cease_yr, cease_cell, acc_c, False)
    assert acc_c.sum() == 2 and acc_c[0, _cell(E.CR["transferred"], 4, 1)] == 1
