"""First-pass calibration: time-invariant levels and a few trend terms by fixed-point moment matching.

Method (documented in docs/CALIBRATION.md): each calibrated parameter is paired with the DfE series that
identifies it (register column ``identified_by``). Starting from the register values, the engine is run from
31 March 2015 to 2024 and every level is moved by the log ratio of observed to simulated window means
(2016-2024 unless stated), every trend by the difference of observed and simulated log-linear slopes; repeat
until the largest relative gap is below ``tol``. No per-year rates are fitted: the calendar enters only
through the few trend terms and the exogenous UASC arrivals series. Writes ``calibration/first_pass.csv``.

``fit_until`` (default 2024, the last data year) fits on DfE data up to the year ending 31 March ``fit_until``
only, for backtests (calibration/backtest.py): the window becomes 2016..fit_until, every series is cut there,
targets with no data by then fall back as tabled in docs/CALIBRATION.md, and ``trend.end_year`` = fit_until.

Run: ``python -m calibration.first_pass [--iterations N] [--scale F] [--fit-until YEAR]``.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from agents import attributes as A
from agents import events as E
from agents import states as S
from calibration import dfe
from calibration.inputs import build, uasc_starts
from calibration.parameters import base_parameters, load_register, resolve
from sim.engine import Settings, YearTables, run_replicate, spin_up
from sim.observe import CEASE_GROUPS

DATA_END = 2024                     # last year ending 31 March in the data
MIN_FIT_UNTIL = 2017                # slopes need at least two flow years (2016 is the first)
CURRENT_FROM = 2020                 # first year of the current placement scheme
OLD_UNTIL = 2022                    # last year of the old placement scheme
COVID_YEAR = 2021                   # year ending March 2021: reunification dips (care.reunified.year.2021)
KINSHIP_YEAR = 2018                 # year of the 18% kinship share of foster (secondary figure)
W = np.arange(2016, DATA_END + 1)   # flow years scored by the full fit
MAX_STEP = 0.5                      # largest log change per iteration (stops overshoot into saturation)
UASC_AGE_GAIN = 4.0                 # change of arrive.uasc.younger per unit log gap in the UASC stock: about
                                    # 1 / (d log stock / d younger) at the register's arrival ages (0.3 under 16)
FRICTION_GAIN = 40.0                # logit change of capacity.friction per unit gap in the children's homes
                                    # slope: about 1 / (d slope / d logit friction), measured at the shipped fit
FRICTION_STEP = 0.25                # largest logit change of the friction per iteration: the children's homes
                                    # slope is a noisy 4-5 point statistic, and steps of 1 ran a cold start into a
                                    # corner (friction 0.99, no direct children's home placements; docs/CALIBRATION.md)
OUT = Path(__file__).with_name("first_pass.csv")
CR = E.CR
# DfE ceased_by_reason categories per fitted cessation group: the observation model's grouping, renamed
FIT_GROUP_OF = {"adopted": "adopted", "sgo_cao": "sgo_cao", "reunified": "returned_home",
                "leaving": "left_care_or_aged_out", "transferred": "care_taken_by_another_la", "other_exit": "other_exit"}
EXIT_GROUPS = {fit: list(CEASE_GROUPS[group]) for fit, group in FIT_GROUP_OF.items()}


def _sum_series(name, measure, cats, scheme=None) -> np.ndarray:
    df = dfe.read(name)
    m = (df["measure"] == measure) & df["category"].isin(cats)
    if scheme is not None:
        m &= df["scheme"] == scheme
    return df[m].groupby("year")["value"].sum()


def window(fit_until: int = DATA_END) -> np.ndarray:
    """Flow years scored by a fit on data up to ``fit_until``."""
    if not MIN_FIT_UNTIL <= fit_until <= DATA_END:
        raise ValueError(f"fit_until: {fit_until!r} must be between {MIN_FIT_UNTIL} and {DATA_END}")
    return np.arange(2016, fit_until + 1)


def kinship_year(fit_until: int) -> int:
    """Year the kinship stock is matched in: 2018, or the origin when that is earlier (no look-ahead)."""
    return min(KINSHIP_YEAR, fit_until)


def observed_targets(fit_until: int = DATA_END) -> dict:
    """Window means and slopes of the identifying DfE series, using data up to ``fit_until`` only."""
    W = window(fit_until)
    fl = "national_cla_flows.csv"
    t = {}
    for g, cats in EXIT_GROUPS.items():
        t[f"ceased.{g}"] = _sum_series(fl, "ceased_by_reason", cats).reindex(W).to_numpy(float)
    started = dfe.series(fl, "started").reindex(W).to_numpy(float)
    uasc = np.array([uasc_starts()[y] for y in W])
    t["started.uasc"] = uasc
    t["started.non_uasc"] = started - uasc
    by_age = {b: dfe.series(fl, "started_by_age", b).reindex(W).to_numpy(float) for b in A.AGE_LABELS5}
    t["started.by_age"] = np.stack([by_age[b] for b in A.AGE_LABELS5], axis=1)
    W2 = W[W >= 2016]
    ca = {b: dfe.series(fl, "ceased_by_age", b).reindex(W2).to_numpy(float) for b in A.AGE_LABELS7}
    t["ceased.by_age"] = np.stack([ca[b] for b in A.AGE_LABELS7], axis=1)
    cc = "national_cin_cp.csv"
    t["cin_31mar"] = dfe.series(cc, "cin_31mar").reindex(W).to_numpy(float)
    t["cpp_31mar"] = dfe.series(cc, "cpp_31mar").reindex(W).to_numpy(float)
    t["cpp_started"] = dfe.series(cc, "cpp_started").reindex(W).to_numpy(float)
    cla = "national_cla_31mar.csv"
    t["stock.uasc"] = dfe.series(cla, "uasc", "uasc").reindex(W).to_numpy(float)
    old = lambda c: dfe.series(cla, "placement", c, "old")
    cur = lambda c: dfe.series(cla, "placement", c, "current")
    end_old = min(OLD_UNTIL, fit_until)
    yrs_old = list(range(2016, end_old + 1))
    res_semi = old("secure_childrens_homes_semi_independent")
    if fit_until >= CURRENT_FROM:
        t["stock.RESIDENTIAL_HOME"] = cur("secure_childrens_homes").loc[2020:min(2023, fit_until)].mean()
        # the friction's slope runs to the origin, 2024 included: the 2024 recoding moved children between
        # supported accommodation and other placements (their sum 9,800 -> 10,100), not out of children's homes
        # (K1/K2; data README, "2024 Other placements jump")
        t["stock.sch_current"] = cur("secure_childrens_homes").loc[2020:fit_until].to_numpy(float)
        t["stock.SEMI_INDEPENDENT"] = (res_semi.loc[2020:end_old]
                                       - cur("secure_childrens_homes").loc[2020:end_old]).mean()
    else:  # no current-scheme split yet: the old-scheme sum, split in ``update`` at the 2015 stock's prior share
        t["stock.res_semi_mean"] = res_semi.loc[yrs_old].mean()
    t["stock.INDEPENDENT_LIVING"] = old("other_community").loc[yrs_old].mean()
    t["stock.RESIDENTIAL_OTHER"] = (old("other_residential") + old("residential_schools")).loc[yrs_old].mean()
    t["stock.PLACED_WITH_PARENTS"] = pd_mean(old("placed_with_parents").loc[yrs_old], cur("placed_with_parents"),
                                             fit_until)
    t["stock.other_placements"] = other_series(old("other_placements"), cur("other_placements"), fit_until)
    t["stock.PLACED_FOR_ADOPTION"] = pd_mean(old("placed_for_adoption").loc[yrs_old], cur("placed_for_adoption"),
                                             fit_until)
    sec = {2018: 0.18}  # kinship share of foster placements (secondary_figures.csv)
    t["stock.KINSHIP"] = sec[KINSHIP_YEAR] * old("foster").loc[kinship_year(fit_until)]
    t["cla_31mar"] = dfe.series(cla, "total").reindex(np.arange(2015, fit_until + 1)).to_numpy(float)
    t["stock.res_semi_old"] = res_semi.loc[2015:end_old].to_numpy(float)
    t["stock.under_1"] = dfe.series(cla, "age_group", "under_1").reindex(W).to_numpy(float)
    return t


def synthetic_targets(sim: dict, fit_until: int = DATA_END) -> dict:
    """Targets with the keys of ``observed_targets`` taken from one engine run (``simulated``): data with known
    parameters, for the parameter-recovery test. Window means replace the DfE-specific windows."""
    keys = observed_targets(fit_until).keys()
    return {k: np.array(sim[k], dtype=float) if np.ndim(sim[k]) else float(sim[k]) for k in keys}


def pd_mean(a, b, fit_until: int = DATA_END) -> float:
    """Mean of the old-scheme series and the current scheme's years after the old one ends (to ``fit_until``)."""
    return float(np.mean(np.concatenate([a.to_numpy(float), b.loc[2023:fit_until].to_numpy(float)])))


def other_series(old: pd.Series, cur: pd.Series, fit_until: int = DATA_END) -> np.ndarray:
    """DfE "other placements" at 31 March from 2016 to the origin: the old scheme to 2022 (it equals the current
    scheme in 2020-2022), the current scheme in 2023; 2024 is left out (DESIGN §2: recoded, scored as a group)."""
    end_old = min(OLD_UNTIL, fit_until)
    parts = [old.loc[2016:end_old]] + ([cur.loc[2023:2023]] if fit_until >= 2023 else [])
    return pd.concat(parts).to_numpy(float)


def slope(y: np.ndarray) -> float:
    """Log-linear slope per year."""
    y = np.maximum(np.asarray(y, float), 1e-9)
    return float(np.polyfit(np.arange(y.size), np.log(y), 1)[0])


def simulated(params, seed: int, scale: float, fit_until: int = DATA_END) -> dict:
    """The same statistics from one engine run 2015-``fit_until``."""
    W = window(fit_until)
    inp = build()
    tables = YearTables.build(params, 2016, fit_until)
    pool, _ = spin_up(params, inp, tables, seed, scale)
    r = run_replicate(params, inp, tables, seed,
                      Settings(end_year=fit_until, scale=scale, capacity=constrained(params)), pool)
    k = 1.0 / scale
    yi = W - 2015
    c = r.ceased[yi] * k  # [year, reason, age7, uasc]
    by = lambda *names: sum(c[:, CR[n]].sum(axis=(1, 2)) for n in names)
    s = {"ceased.adopted": by("adopted"), "ceased.sgo_cao": by("sgo_cao"), "ceased.reunified": by("reunified"),
         "ceased.leaving": by("left_care_16_17", "aged_out"), "ceased.aged_out": by("aged_out"),
         "ceased.transferred": by("transferred"), "ceased.other_exit": by("other_exit")}
    s["ceased.by_age"] = c.sum(axis=(1, 3))
    s["ceased.left_by_age"] = c[:, CR["left_care_16_17"]].sum(axis=2)
    s["ceased.reunified_by_age"] = c[:, CR["reunified"]].sum(axis=2)
    st = r.started[yi] * k  # [year, state, age7, uasc]
    s["started.uasc"] = st[..., 1].sum(axis=(1, 2))
    s["started.non_uasc"] = st[..., 0].sum(axis=(1, 2))
    a7 = st.sum(axis=(1, 3))
    s["started.by_age"] = np.stack([a7[:, A.AGE7_TO_AGE5 == b].sum(axis=1) for b in range(5)], axis=1)
    a7u = st[..., 1].sum(axis=1)
    s["started.by_age_uasc"] = np.stack([a7u[:, A.AGE7_TO_AGE5 == b].sum(axis=1) for b in range(5)], axis=1)
    stock = r.stock * k  # [year, state, age7, uasc, agency]
    by_state = stock.sum(axis=(2, 3, 4))
    cla = by_state[:, list(S.CARE_STATES)].sum(axis=1)
    s["cla_31mar"] = cla
    s["cin_31mar"] = (by_state[yi][:, [S.AT_HOME, S.EDGE_OF_CARE]].sum(axis=1) + cla[yi]
                      + r.returned_open[yi].sum(axis=(1, 2)) * k)
    s["at_home"] = by_state[yi, S.AT_HOME]
    s["cpp_31mar"] = by_state[yi, S.EDGE_OF_CARE]
    fl = r.flows[1:].reshape(-1, 12, r.flows.shape[1]).sum(axis=1) * k
    from sim.kernel import F_CPP_START
    s["cpp_started"] = fl[: W.size, F_CPP_START]
    for nm in ("RESIDENTIAL_HOME", "SEMI_INDEPENDENT", "INDEPENDENT_LIVING", "RESIDENTIAL_OTHER",
               "PLACED_WITH_PARENTS", "PLACED_FOR_ADOPTION"):
        lo, hi = stock_window(nm, fit_until)
        s[f"stock.{nm}"] = by_state[lo - 2015: hi + 1 - 2015, S.CODE[nm]].mean()
    lo, hi = stock_window("OTHER_IN_CARE", fit_until)
    s["stock.other_placements"] = by_state[lo - 2015: hi + 1 - 2015, S.OTHER_IN_CARE]
    s["stock.KINSHIP"] = by_state[kinship_year(fit_until) - 2015, S.KINSHIP]
    s["stock.res_semi_old"] = by_state[: min(OLD_UNTIL, fit_until) + 1 - 2015][
        :, [S.RESIDENTIAL_HOME, S.SEMI_INDEPENDENT]].sum(axis=1)
    s["stock.sch_current"] = by_state[CURRENT_FROM - 2015: fit_until + 1 - 2015, S.RESIDENTIAL_HOME]
    s["stock.under_1"] = stock[yi][:, list(S.CARE_STATES), 0].sum(axis=(1, 2, 3))
    s["stock.uasc"] = stock[yi][..., 1, :][:, list(S.CARE_STATES)].sum(axis=(1, 2, 3))
    s["alive"] = r.alive
    return s


def stock_window(state: str, fit_until: int = DATA_END) -> tuple[int, int]:
    """First and last year (31 March) of the DfE placement series whose mean identifies ``state``'s weight
    (``observed_targets``): the simulated mean is taken over the same years."""
    if state == "RESIDENTIAL_HOME" and fit_until >= CURRENT_FROM:
        return CURRENT_FROM, min(2023, fit_until)
    if state == "SEMI_INDEPENDENT" and fit_until >= CURRENT_FROM:
        return CURRENT_FROM, min(OLD_UNTIL, fit_until)
    if state in ("INDEPENDENT_LIVING", "RESIDENTIAL_OTHER"):
        return 2016, min(OLD_UNTIL, fit_until)
    if state == "OTHER_IN_CARE":    # other_series: to 2023 (2024 recoded)
        return 2016, min(2023, fit_until)
    return 2016, fit_until          # PLACED_WITH_PARENTS, PLACED_FOR_ADOPTION: old scheme to 2022, then current


def update(v: dict, obs: dict, sim: dict, damp: float) -> dict[str, float]:
    """One fixed-point step; returns the relative gaps that drove it."""
    gaps = {}

    def lvl(name, o, s_, sign=1.0):
        g = float(np.log(max(o, 1e-9) / max(s_, 1e-9)))
        v[name] += sign * float(np.clip(damp * g, -MAX_STEP, MAX_STEP))
        gaps[name] = g

    def trd(name, o_series, s_series):
        g = slope(o_series) - slope(s_series)
        v[name] += damp * g
        gaps[name] = g

    m = lambda x: float(np.mean(x))
    for g, name in (("adopted", "care.to_adoption.base"), ("sgo_cao", "care.sgo_cao.base"),
                    ("other_exit", "care.other_exit.base"),
                    ("transferred", "care.transferred.uasc")):
        lvl(name, m(obs[f"ceased.{g}"]), m(sim[f"ceased.{g}"]))
    # leaving care at 16-17 against DfE's leaving reasons (independent living, staying put, other_reason, adult
    # residential) less all cessations at 18+; reunification age effects against cessations by age band (16
    # and 17 tied), each net of the simulated cessations by other routes.
    c_obs, c_sim, c_left, c_reun = (obs["ceased.by_age"].mean(axis=0), sim["ceased.by_age"].mean(axis=0),
                                    sim["ceased.left_by_age"].mean(axis=0), sim["ceased.reunified_by_age"].mean(axis=0))
    left_series = obs["ceased.leaving"] - obs["ceased.by_age"][:, 6]  # DfE leaving reasons before 18
    lvl("care.left_care.base", max(m(left_series), 0.2 * c_left[4:6].sum()), c_left[4:6].sum())
    trd("care.left_care.trend", left_series, sim["ceased.left_by_age"][:, 4:6].sum(axis=1))
    want = c_obs[4:6].sum() - (c_sim[4:6].sum() - c_reun[4:6].sum())
    lvl("care.reunified.age.4", max(want, 0.2 * c_reun[4:6].sum()), c_reun[4:6].sum())
    v["care.reunified.age.5"] = v["care.reunified.age.4"]
    for b in range(4):
        want = c_obs[b] - (c_sim[b] - c_reun[b])
        lvl(f"care.reunified.age.{b}", max(want, 0.2 * c_reun[b]), c_reun[b])
    # reunification: one slope to the knot year, a change of slope after it (fitted only with 3+ years after)
    years = 2016 + np.arange(len(obs["ceased.reunified"]))
    pre, post = years <= v["trend.knot_year"], years >= v["trend.knot_year"]
    trd("care.reunified.trend", obs["ceased.reunified"][pre], sim["ceased.reunified"][pre])
    if post.sum() >= 3:
        trd("care.reunified.trend2", obs["ceased.reunified"][post], sim["ceased.reunified"][post])
    lvl("care.reunified.base", m(obs["ceased.reunified"]), m(sim["ceased.reunified"]))
    if COVID_YEAR in years:  # the COVID-19 year's dip, against the mean log gap of the years either side of it
        r = np.log(np.maximum(obs["ceased.reunified"], 1.0) / np.maximum(sim["ceased.reunified"], 1.0))
        side = (years == COVID_YEAR - 1) | (years == COVID_YEAR + 1)
        g = float(r[years == COVID_YEAR][0] - r[side].mean())
        v[f"care.reunified.year.{COVID_YEAR}"] += float(np.clip(damp * g, -MAX_STEP, MAX_STEP))
        gaps[f"care.reunified.year.{COVID_YEAR}"] = g
    trd("care.to_adoption.trend", obs["ceased.adopted"][pre], sim["ceased.adopted"][pre])
    if post.sum() >= 3:
        trd("care.to_adoption.trend2", obs["ceased.adopted"][post], sim["ceased.adopted"][post])
    trd("care.transferred.trend", obs["ceased.transferred"][pre], sim["ceased.transferred"][pre])
    if post.sum() >= 3:
        trd("care.transferred.trend2", obs["ceased.transferred"][post], sim["ceased.transferred"][post])
    trd("care.sgo_cao.trend", obs["ceased.sgo_cao"], sim["ceased.sgo_cao"])
    trd("care.other_exit.trend", obs["ceased.other_exit"], sim["ceased.other_exit"])
    # entry: age effects (16 and 17 tied) against non-UASC starts by age band, trend against the total
    obs_age = obs["started.by_age"].mean(axis=0) - sim["started.by_age_uasc"].mean(axis=0)
    sim_age = sim["started.by_age"].mean(axis=0) - sim["started.by_age_uasc"].mean(axis=0)
    for b in range(5):
        g = float(np.log(max(obs_age[b], 1.0) / max(sim_age[b], 1.0)))
        for name in ([f"entry.age.{b}"] if b < 4 else ["entry.age.4", "entry.age.5"]):
            v[name] += damp * g
        gaps[f"entry.age.{b}"] = g
    trd("entry.trend", obs["started.non_uasc"], sim["started.non_uasc"])
    # young children's own trend (under 5s' starts fell faster than the rest: 11,360 in 2016, 10,050 in 2024)
    trd("entry.young.trend", obs["started.by_age"][:, :2].sum(axis=1), sim["started.by_age"][:, :2].sum(axis=1))
    f = float(np.clip(v["arrive.uasc.factor"] * (m(obs["started.uasc"]) / max(m(sim["started.uasc"]), 1.0)) ** damp,
                      0.05, 2.0))
    gaps["arrive.uasc.factor"] = float(np.log(m(obs["started.uasc"]) / max(m(sim["started.uasc"]), 1.0)))
    v["arrive.uasc.factor"] = f
    # UASC stay: share of arrivals under 16 (longer stays) against the UASC stock at 31 March
    g = float(np.log(m(obs["stock.uasc"]) / max(m(sim["stock.uasc"]), 1.0)))
    v["arrive.uasc.younger"] += float(np.clip(UASC_AGE_GAIN * damp * g, -MAX_STEP, MAX_STEP))
    gaps["arrive.uasc.younger"] = g
    g = slope(obs["stock.uasc"]) - slope(sim["stock.uasc"])  # and its calendar trend against the stock's slope
    v["arrive.uasc.younger.trend"] += float(np.clip(UASC_AGE_GAIN * damp * g, -MAX_STEP / 5, MAX_STEP / 5))
    gaps["arrive.uasc.younger.trend"] = g
    # CIN / CPP layer
    at_obs = m(obs["cin_31mar"]) - (m(sim["cin_31mar"]) - m(sim["at_home"]))
    lvl("cin.close.base", at_obs, m(sim["at_home"]), sign=-1.0)
    g = slope(obs["cin_31mar"]) - slope(sim["cin_31mar"])  # closure trend: against the CIN slope (sign: more
    v["cin.close.trend"] -= damp * g * m(sim["cin_31mar"]) / max(m(sim["at_home"]), 1.0)  # closures, fewer CIN)
    gaps["cin.close.trend"] = g
    lvl("cpp.level", m(obs["cpp_started"]), m(sim["cpp_started"]))
    lvl("cpp.end.base", m(obs["cpp_31mar"]), m(sim["cpp_31mar"]), sign=-1.0)
    for nm in ("KINSHIP", "RESIDENTIAL_HOME", "RESIDENTIAL_OTHER", "PLACED_WITH_PARENTS",
               "SEMI_INDEPENDENT", "INDEPENDENT_LIVING"):
        if f"stock.{nm}" in obs:
            lvl(f"dest.{nm}.base", obs[f"stock.{nm}"], sim[f"stock.{nm}"])
    # other placements: level against the series' mean, growth against its slope (2016 to the origin, not 2024)
    lvl("dest.OTHER_IN_CARE.base", m(obs["stock.other_placements"]), m(sim["stock.other_placements"]))
    trd("dest.OTHER_IN_CARE.trend", obs["stock.other_placements"], sim["stock.other_placements"])
    # placed for adoption: adoptions are matched by care.to_adoption.base; the stock placed then sets the
    # adoption-order hazard (more orders a month, fewer children waiting placed)
    lvl("care.adopted.base", obs["stock.PLACED_FOR_ADOPTION"], sim["stock.PLACED_FOR_ADOPTION"], sign=-1.0)
    if "stock.res_semi_mean" in obs:  # origins before 2020: the old-scheme sum, split as the 2015 stock is
        share = v["init.homes_share_of_secure_ch_semi"]
        lvl("dest.RESIDENTIAL_HOME.base", share * obs["stock.res_semi_mean"], sim["stock.RESIDENTIAL_HOME"])
        lvl("dest.SEMI_INDEPENDENT.base", (1 - share) * obs["stock.res_semi_mean"], sim["stock.SEMI_INDEPENDENT"])
    g = float(np.log(m(obs["stock.under_1"]) / max(m(sim["stock.under_1"]), 1.0)))  # newborn share, on the logit
    q = float(np.clip(v["arrive.age0.newborn_share"], 0.01, 0.99))
    v["arrive.age0.newborn_share"] = float(1 / (1 + np.exp(-(np.log(q / (1 - q)) + np.clip(2 * damp * g, -1, 1)))))
    gaps["arrive.age0.newborn_share"] = g
    if constrained(v):  # residential growth from the capacity constraint, no children's homes trend (DESIGN §2)
        v["dest.RESIDENTIAL_HOME.trend"] = 0.0
        trd("dest.SEMI_INDEPENDENT.trend", obs["stock.res_semi_old"], sim["stock.res_semi_old"])
        # friction against the children's homes slope 2020 to the origin, on the logit, from 3 current-scheme years
        # (fits to 2022 on): two years give one change, and its noise times FRICTION_GAIN made the 2021 fit wander
        if np.size(obs.get("stock.sch_current", ())) >= 3:
            g = slope(obs["stock.sch_current"]) - slope(sim["stock.sch_current"])
            q = float(np.clip(v["capacity.friction"], 1e-4, 0.99))
            u = np.log(q / (1 - q)) + float(np.clip(FRICTION_GAIN * damp * g, -FRICTION_STEP, FRICTION_STEP))
            v["capacity.friction"] = float(np.clip(1 / (1 + np.exp(-u)), 1e-4, 0.99))
            gaps["capacity.friction"] = g
    else:
        trd("dest.RESIDENTIAL_HOME.trend", obs["stock.res_semi_old"], sim["stock.res_semi_old"])
        v["dest.SEMI_INDEPENDENT.trend"] = v["dest.RESIDENTIAL_HOME.trend"]
    # duration shape of reunification against the CLA stock (flows are matched above)
    g = float(np.log(m(obs["cla_31mar"][1:]) / m(sim["cla_31mar"][1:])))
    v["care.reunified.dur_k"] -= damp * g
    gaps["care.reunified.dur_k"] = g
    return gaps


def constrained(params) -> bool:
    """Whether runs with these parameters apply the foster capacity constraint (``capacity.constraint``)."""
    return bool(params.get("capacity.constraint", 0.0))


def calibrated_names() -> list[str]:
    reg = load_register()
    return [k for k, r in reg.items() if r["kind"] == "calibrated"]


def fit(iterations: int = 12, scale: float = 0.5, seed: int = 20150331, damp: float = 0.8, tol: float = 0.01,
        log=print, fit_until: int = DATA_END, priors: dict[str, float] | None = None,
        start: dict[str, float] | None = None, obs: dict | None = None, average: int = 0) -> dict[str, float]:
    """Iterate the fixed point from register values on data up to ``fit_until``; returns the calibrated values.

    ``average`` > 0 returns the mean of the last ``average`` iterates (Polyak-Ruppert averaging) instead of the
    last one: each step moves on one noisy engine run, and where a target is steep in its parameter (children's
    homes in the matching friction) the iterates keep wandering around the fixed point by the Monte Carlo
    noise; their mean is the fixed point's estimate, the last iterate one draw from that cloud.

    Trends stop at the origin (``trend.end_year`` = fit_until), so UASC arrivals after it are the future input.
    ``priors`` overrides non-calibrated register values (sensitivity runs, e.g. another trend rule); ``start``
    gives starting values of calibrated parameters (a warm start, e.g. from the shipped fit); ``obs`` replaces
    the DfE targets (synthetic data, for the parameter-recovery test)."""
    v = base_parameters(dict(start or {}, **(priors or {}), **{"trend.end_year": fit_until}), use_first_pass=False)
    obs = observed_targets(fit_until) if obs is None else obs
    names, kept = calibrated_names(), []
    for it in range(iterations):
        t0 = time.time()
        sim = simulated(resolve(v), seed, scale, fit_until)
        gaps = update(v, obs, sim, damp)
        worst = max(gaps, key=lambda k: abs(gaps[k]))
        cla = sim["cla_31mar"]
        err = (cla / obs["cla_31mar"] - 1) * 100
        log(f"iteration {it + 1}: largest gap {worst} {gaps[worst]:+.3f}; CLA % error 2015-{fit_until}: "
            + " ".join(f"{e:+.1f}" for e in err) + f"  ({time.time() - t0:.1f}s)")
        if abs(gaps[worst]) < tol:
            break
        if average > 0 and it >= iterations - average:
            kept.append({k: v[k] for k in names})
    if average > 0 and len(kept) == average:  # ran to the end: the mean of the last iterates
        log(f"fixed point: mean of the last {average} iterates")
        return {k: float(np.mean([x[k] for x in kept])) for k in names}
    return {k: v[k] for k in names}


def write(values: dict[str, float], path: Path = OUT) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "value"])
        for k in sorted(values):
            w.writerow([k, f"{values[k]:.6g}"])
    tmp.replace(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=12)
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=20150331)
    ap.add_argument("--fit-until", type=int, default=DATA_END,
                    help=f"fit on data up to the year ending 31 March YEAR ({MIN_FIT_UNTIL}-{DATA_END}; default "
                         f"{DATA_END}); other years write first_pass_<YEAR>.csv, not the shipped file")
    a = ap.parse_args(argv)
    try:
        window(a.fit_until)
    except ValueError as exc:
        ap.error(str(exc))
    vals = fit(a.iterations, a.scale, a.seed, fit_until=a.fit_until)
    out = OUT if a.fit_until == DATA_END else OUT.with_name(f"first_pass_{a.fit_until}.csv")
    write(vals, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
