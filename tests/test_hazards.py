"""``agents.hazards.compile_tables``: thresholds, structural zeros, the competing-risks formula; and the
parameter checks in ``calibration.parameters`` (DESIGN §2 time and transitions, parameter register)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from agents import attributes as A
from agents import events as E
from agents import states as S
from agents.hazards import ROWS_PER_STATE, channel_log_hazard, compile_tables, row_index, to_threshold, trend_x
from calibration.parameters import ParameterError, base_parameters, check_value, load_register, resolve

U32 = 2**32
YEARS = (2016, 2024, 2035)
# 2^-32 per threshold from flooring, plus float rounding of the cumulative sums
EPS = 1e-9


@pytest.fixture(scope="module")
def params():
    return resolve(base_parameters())


@pytest.fixture(scope="module", params=YEARS)
def year_tables(request, params):
    return request.param, compile_tables(params, request.param)


@pytest.fixture(scope="module")
def tables(year_tables):
    return year_tables[1]


def slot(state: int, event: str) -> int:
    return list(E.EVENT_OF_SLOT[state]).index(E.EV[event])


# ---- thresholds ---------------------------------------------------------------------------------------------
def test_thresholds_are_uint32_and_non_decreasing(tables):
    thr = tables.thr
    assert thr.dtype == np.uint32
    assert thr.shape == (S.N_STATES * ROWS_PER_STATE, E.K_SLOTS)
    assert int(thr.max()) <= U32 - 1
    assert np.all(np.diff(thr.astype(np.int64), axis=1) >= 0)


def test_thresholds_are_the_cumulative_probabilities(tables):
    cum = np.cumsum(tables.monthly_prob, axis=-1).reshape(-1, E.K_SLOTS)
    assert np.all(np.abs(tables.thr.astype(np.float64) / U32 - cum) <= 2.0 / U32 + EPS)


def test_destination_thresholds(tables):
    d = tables.dest_thr
    assert d.dtype == np.uint32
    assert np.all(np.diff(d.astype(np.int64), axis=-1) >= 0)
    assert np.all(d[..., -1] == U32 - 1)       # every draw finds a placement


def test_unused_slots_never_selected(tables):
    """Slots a state has no channel for carry zero width (a draw cannot land in them)."""
    thr = tables.thr.reshape(S.N_STATES, ROWS_PER_STATE, E.K_SLOTS).astype(np.int64)
    width = np.diff(np.concatenate([np.zeros_like(thr[..., :1]), thr], axis=-1), axis=-1)
    unused = E.EVENT_OF_SLOT < 0
    assert np.all(width[np.broadcast_to(unused[:, None, :], width.shape)] == 0)


def test_to_threshold_edges():
    t = to_threshold(np.array([0.0, 0.5, 1.0, 1.5, -0.1]))
    assert t.tolist() == [0, 2**31, U32 - 1, U32 - 1, 0]


# ---- structural zeros ---------------------------------------------------------------------------------------
def test_no_leaving_care_under_16(tables):
    pr = tables.monthly_prob
    for s in S.CARE_STATES:
        k = slot(s, "LEFT_CARE")
        assert np.all(pr[s, :4, ..., k] == 0.0), S.NAMES[s]      # bands <1, 1-4, 5-9, 10-15
        assert np.all(pr[s, 4:, ..., k] > 0.0), S.NAMES[s]       # 16 and 17: possible


def test_no_adoption_placement_at_10_plus_or_for_uasc(tables):
    pr = tables.monthly_prob
    for s in S.CARE_STATES:
        k = slot(s, "TO_ADOPTION")
        assert np.all(pr[s, 3:, ..., k] == 0.0), S.NAMES[s]      # 10-15, 16, 17
        assert np.all(pr[s, :, :, 1, ..., k] == 0.0), S.NAMES[s]  # UASC
    k = slot(S.FOSTER, "TO_ADOPTION")
    assert np.all(pr[S.FOSTER, :3, :, 0, ..., k] > 0.0)            # under 10, not UASC: possible


def test_adoption_orders_only_from_placed_for_adoption(tables):
    pr = tables.monthly_prob
    for s in S.CARE_STATES:
        k = slot(s, "ADOPTED")
        if s == S.PLACED_FOR_ADOPTION:
            assert np.all(pr[s, ..., k] > 0.0)
        else:
            assert np.all(pr[s, ..., k] == 0.0), S.NAMES[s]


def test_no_semi_independent_or_independent_living_placement_under_16(tables):
    dest = np.diff(np.concatenate([np.zeros_like(tables.dest_thr[..., :1], dtype=np.int64),
                                   tables.dest_thr.astype(np.int64)], axis=-1), axis=-1)
    for nm in ("SEMI_INDEPENDENT", "INDEPENDENT_LIVING"):
        j = list(tables.dest_state).index(S.CODE[nm])
        assert np.all(dest[:, :4, ..., j] == 0), nm
    assert S.PLACED_FOR_ADOPTION not in tables.dest_state  # reached only by TO_ADOPTION
    j = list(tables.dest_state).index(S.KINSHIP)
    assert np.all(dest[..., 1, j] == 0)                      # UASC: no relatives here


# ---- the competing-risks formula ----------------------------------------------------------------------------
def test_probabilities_sum_to_one_minus_exp_minus_H_hand_computed():
    """A small parameter dict; H computed here by hand from the log-linear formula for chosen cells."""
    prm = {"care.move.base": -3.0, "care.move.pdur_k": -0.4, "care.move.state.RESIDENTIAL_HOME": 0.7,
           "care.reunified.base": -2.5, "care.reunified.dur_k": -0.6, "care.reunified.dur_first": 0.3,
           "care.reunified.age.3": -0.2, "care.reunified.need.2": 0.1, "care.reunified.prev": 0.25,
           "care.reunified.trend": -0.05, "care.other_exit.base": -6.0, "care.other_exit.uasc": 1.5,
           "care.left_care.base": -4.0, "care.left_care.age.0": -math.inf, "care.left_care.age.1": -math.inf,
           "care.left_care.age.2": -math.inf, "care.left_care.age.3": -math.inf,
           "trend.ref_year": 2016, "trend.end_year": 2024, "trend.damping": 0.5,
           "dest.FOSTER.base": 0.0}
    for year in (2020, 2030):
        x = (year - 2016) if year <= 2024 else 8 + sum(0.5 ** k for k in range(1, year - 2024 + 1))
        assert trend_x(year, prm) == pytest.approx(x)
        tab = compile_tables(prm, year)
        for s, ab, need, uasc, prev, eb, pb in ((S.FOSTER, 3, 2, 0, 1, 0, 0), (S.RESIDENTIAL_HOME, 5, 0, 1, 0, 6, 2),
                                                 (S.KINSHIP, 4, 2, 1, 1, 10, 3)):
            epi, plc = A.EPI_REP[eb], A.PLC_REP[pb]
            h = {"MOVE": math.exp(-3.0 - 0.4 * math.log1p(plc) + (0.7 if s == S.RESIDENTIAL_HOME else 0.0)),
                 "REUNIFIED": math.exp(-2.5 - 0.6 * math.log1p(epi) + (0.3 if eb == 0 else 0.0)
                                       + (-0.2 if ab == 3 else 0.0) + (0.1 if need == 2 else 0.0)
                                       + 0.25 * prev - 0.05 * x),
                 "OTHER_EXIT": math.exp(-6.0 + 1.5 * uasc),
                 "LEFT_CARE": math.exp(-4.0) if ab >= 4 else 0.0}
            H = sum(h.values())
            pr = tab.monthly_prob[s, ab, need, uasc, prev, eb, pb]
            assert pr.sum() == pytest.approx(1.0 - math.exp(-H), rel=1e-12)
            for ev, hk in h.items():
                assert pr[slot(s, ev)] == pytest.approx(hk / H * (1.0 - math.exp(-H)), rel=1e-12, abs=1e-300)
            r = row_index(s, ab, need, uasc, prev, eb, pb)
            assert abs(int(tab.thr[r, -1]) - (1.0 - math.exp(-H)) * U32) <= 2


def test_probabilities_sum_to_one_minus_exp_minus_H_everywhere(year_tables, params):
    """For every cell of the real tables: sum_k p_k = 1 - exp(-H) and p_j / p_k = h_j / h_k."""
    yr, tables = year_tables
    pr = tables.monthly_prob
    for s, chans in E.STATE_CHANNELS.items():
        h = np.stack([np.exp(channel_log_hazard(params, ch, s, yr)) for _, ch in chans], axis=-1)
        H = h.sum(axis=-1)
        got = pr[s][..., : len(chans)]
        assert np.allclose(got.sum(axis=-1), -np.expm1(-H), rtol=1e-12, atol=1e-15), S.NAMES[s]
        assert np.allclose(got * H[..., None], h * -np.expm1(-H)[..., None], rtol=1e-12, atol=1e-15), S.NAMES[s]
        assert np.all(pr[s][..., len(chans):] == 0.0)
    for s in range(S.N_STATES):
        if s not in E.STATE_CHANNELS:
            assert np.all(pr[s] == 0.0)


# ---- parameter checks ---------------------------------------------------------------------------------------
SHARE_NAMES = ("provider.foster.agency_share", "provider.childrens_home.private_share", "care.short_stay.p",
               "need.share.2", "arrive.male_share", "arrive.uasc.male_share")


@pytest.mark.parametrize("name", SHARE_NAMES)
@pytest.mark.parametrize("value", [1.2, -0.1])
def test_check_value_rejects_share_outside_unit_interval(name, value):
    with pytest.raises(ParameterError) as exc:
        check_value(name, value, "test")
    assert name in str(exc.value)


def test_every_register_share_or_probability_is_range_checked():
    """Every register parameter whose unit is a share or a probability is rejected at 1.5 and at -0.1."""
    reg = load_register()
    missed = []
    for name, row in reg.items():
        if row.get("unit") in ("share", "probability"):
            for bad in (1.5, -0.1):
                try:
                    check_value(name, bad, "test")
                except ParameterError as exc:
                    assert name in str(exc)
                else:
                    missed.append((name, bad))
    assert not missed, f"share/probability parameters not range-checked by check_value: {missed}"


def test_check_value_accepts_valid_values():
    for name in SHARE_NAMES:
        check_value(name, 0.0, "test")
        check_value(name, 1.0, "test")
    check_value("care.move.base", 1.5, "test")          # a log hazard may exceed 1
    check_value("care.left_care.age.0", -math.inf, "test")
    with pytest.raises(ParameterError, match="care.move.base"):
        check_value("care.move.base", float("nan"), "test")


def test_base_parameters_rejects_an_override_share_above_one():
    with pytest.raises(ParameterError, match="provider.foster.agency_share"):
        base_parameters({"provider.foster.agency_share": 1.3})
    with pytest.raises(ParameterError, match="no.such.parameter"):
        base_parameters({"no.such.parameter": 0.5})


def test_year_effect_moves_its_channel_in_that_year_only(params):
    """``{channel}.year.{Y}`` (care.reunified.year.2021, the COVID-19 year) adds to the log hazard of that channel
    in the DfE year ending March Y and in no other year or channel."""
    none = dict(params, **{"care.reunified.year.2021": 0.0})
    shifted = dict(params, **{"care.reunified.year.2021": math.log(0.5)})
    for year in (2020, 2021, 2022):
        for ch in ("care.reunified", "care.to_adoption"):
            base = channel_log_hazard(none, ch, S.FOSTER, year)
            got = channel_log_hazard(shifted, ch, S.FOSTER, year)
            want = base + (math.log(0.5) if (ch, year) == ("care.reunified", 2021) else 0.0)
            assert np.allclose(got[np.isfinite(base)], want[np.isfinite(base)], rtol=0, atol=1e-12)


def test_young_entry_trend_moves_under_fives_on_every_entry_route_only():
    """``entry.young.trend`` adds trend x calendar covariate to the log entry hazard of the under-1 and 1-4 bands on
    both entry routes (``resolve`` ties it), leaves older bands and other channels alone, and scales the direct
    arrivals into care of children under 5 by the same factor."""
    from calibration import inputs
    from sim import engine
    none = resolve(base_parameters({"entry.young.trend": 0.0}))
    tilt = resolve(base_parameters({"entry.young.trend": -0.05}))
    year = 2022
    x = trend_x(year, none)
    for ch in ("cin.enter_care", "cpp.enter_care", "care.reunified"):
        st = S.AT_HOME if ch == "cin.enter_care" else S.EDGE_OF_CARE if ch == "cpp.enter_care" else S.FOSTER
        base, got = channel_log_hazard(none, ch, st, year), channel_log_hazard(tilt, ch, st, year)
        for a in range(A.N_AGE):
            shift = -0.05 * x if ch != "care.reunified" and a in A.YOUNG_BANDS else 0.0
            ok = np.isfinite(base[a])
            assert np.allclose(got[a][ok], base[a][ok] + shift, rtol=0, atol=1e-12), (ch, a)
    rates = []
    for p in (none, tilt):
        tables = engine.YearTables.build(p, year, year)
        rates.append(engine.Simulation(p, inputs.build(), tables, 1, 1.0).arrival_rates(year, np.ones(engine.N_AGE_Y))[
            engine.rng.STREAM_CARE])
    young = np.isin(np.array([A.age_band_years(a) for a in range(engine.N_AGE_Y)]), A.YOUNG_BANDS)
    assert np.allclose(rates[1][young], rates[0][young] * math.exp(-0.05 * x), rtol=1e-12)
    assert np.allclose(rates[1][~young], rates[0][~young], rtol=1e-12)
