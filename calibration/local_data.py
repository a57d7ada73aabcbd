"""One local authority's calibration targets, with suppressed cells as censored intervals, and the statistics
across all authorities that set the partial pooling (DESIGN §4; issue 3, "Local authorities").

A target is a published LA count (``la_cla.csv``) for one year: CLA at 31 March, starts, cessations (total and
by reason group: returned home, adopted, SGO/CAO, left care or aged out, care taken by another LA) and the residential placement count (current-scheme secure
and children's homes from 2020; old-scheme secure / children's homes / semi-independent before). DfE suppresses
small LA counts ('c': 1 to 5, or more under secondary suppression), so a target is an interval [lo, hi]:
lo = the published parts, hi = lo + what the published total leaves over for the hidden parts.

Pooling statistics are computed from every authority with complete data (method of moments; no simulation):
  * ``pooling_sds``: between-LA sd of each LA effect's crude counterpart (log rate ratio or slope against
    England), net of sampling noise — the prior sd that shrinks a small LA towards England's rates;
  * ``noise_k``: negative-binomial size per target family from the scatter of each LA's series around its own
    log-linear trend, net of Poisson noise (the year-to-year noise an LA fit must not chase);
  * ``discrepancy_extra_sds``: the LA-specific part of the yearly random-walk innovations after the data
    (year-on-year log changes of the LA minus England's, net of Poisson noise), added to England's in quadrature.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from calibration import boundaries, dfe
from sim.observe import CEASE_GROUPS, TOTAL

FIRST_FLOW = 2016        # flows are published for years ending March 2014 on; the model's first flow year is 2016
CURRENT_FROM = 2020      # first year of the current placement scheme in la_cla.csv
RES_CURRENT = ("secure_childrens_homes",)                      # state RESIDENTIAL_HOME, current scheme
RES_OLD = ("secure_childrens_homes_semi_independent",)          # RESIDENTIAL_HOME + SEMI_INDEPENDENT, old scheme
REASON_FAMILIES = ("returned_home", "adopted", "sgo_cao", "left_care_or_aged_out", "care_taken_by_another_la")
FAMILIES = ("cla", "started", "ceased") + REASON_FAMILIES + ("residential",)
MIN_COUNT = 20           # crude pooling statistics use authorities whose mean count is at least this
MISSING_YEARS = 1        # ... and at most this many suppressed years (more would bias small LAs' means up)
NOISE_FLOOR = 1e-4       # smallest extra variance (1/k) a family can have: k at most 10,000
POOL_YEARS = 4           # pooling statistics use at least this many years (early origins reach back to 2014)
MIN_FIT_UNTIL = 2018     # earliest local fit year: cessations by reason (from 2015) need 4 years for their trends


def pool_first(fit_until: int) -> int:
    """First year of the pooling statistics for a fit to ``fit_until``: the model's first flow year, or earlier
    (flows are published from 2014) so that they span ``POOL_YEARS`` years (backtest origins before 2019)."""
    return min(FIRST_FLOW, fit_until - POOL_YEARS + 1)


@dataclass(frozen=True)
class Target:
    """One published count: its tidy keys, its family, and the interval it is known to lie in."""
    family: str
    year: int
    measure: str
    scheme: str
    category: str
    lo: float
    hi: float
    mapped: bool = False   # a year before the authority existed: its predecessors' count x population share

    @property
    def censored(self) -> bool:
        return self.hi > self.lo


def _raw(code: str | None = None) -> pd.DataFrame:
    """All LAs' rows as published, or one LA's (an authority created after 2015 with its mapped earlier years)."""
    if code is not None:
        from sim.observe import local_rows
        return local_rows(code)
    la = dfe.read("la_cla.csv")
    return la[la["geographic_level"] == "Local authority"]


def _interval(rows: pd.DataFrame, cats, total: float) -> tuple[float, float] | None:
    """[lo, hi] of the sum of ``cats`` in one breakdown-year: published parts, plus what the breakdown's
    published total leaves over for its suppressed cells; None when the total itself is suppressed."""
    parts = rows[rows["category"].isin(cats)]
    known = float(parts["value"].sum(skipna=True))
    hidden = parts["value"].isna() & (parts["flag"] == "c")
    if not hidden.any():
        return known, known
    if not np.isfinite(total):
        return None
    left = total - float(rows.loc[rows["category"] != TOTAL, "value"].sum(skipna=True))
    return known, known + max(left, 0.0)


def targets(code: str, fit_until: int) -> list[Target]:
    """The calibration targets of one LA for the years to ``fit_until`` (see the module docstring); for an
    authority created after 2015 the years before its first are its predecessors' counts mapped by population
    share (``calibration.boundaries``), marked ``mapped``."""
    d = _raw(code)
    own_from = boundaries.own_from(code) or FIRST_FLOW
    out: list[Target] = []

    def total_of(rows):
        t = rows.loc[rows["category"] == TOTAL, "value"]
        return float(t.iloc[0]) if len(t) and t.notna().iloc[0] else np.nan

    for year in range(FIRST_FLOW, fit_until + 1):
        y = d[d["year"] == year]
        for fam, measure in (("cla", "total"), ("started", "started"), ("ceased", "ceased")):
            v = y.loc[y["measure"] == measure, "value"]
            if len(v) and v.notna().iloc[0]:
                tidy = "cla_31mar" if measure == "total" else measure
                out.append(Target(fam, year, tidy, "dfe_current", TOTAL, float(v.iloc[0]), float(v.iloc[0]),
                                  year < own_from))
        reasons = y[y["measure"] == "ceased_by_reason"]
        if len(reasons):
            for fam in REASON_FAMILIES:
                iv = _interval(reasons, CEASE_GROUPS[fam], total_of(reasons))
                if iv is not None:
                    out.append(Target(fam, year, "ceased", "dfe_current", fam, *iv, year < own_from))
        scheme, cats, tidy_scheme, cat = (("current", RES_CURRENT, "dfe_current", RES_CURRENT[0])
                                          if year >= CURRENT_FROM else ("old", RES_OLD, "dfe_old", RES_OLD[0]))
        p = y[(y["measure"] == "placement") & (y["scheme"] == scheme)]
        if len(p):
            iv = _interval(p, cats, total_of(p))
            if iv is not None:
                out.append(Target("residential", year, "cla_31mar", tidy_scheme, cat, *iv, year < own_from))
    if not any(t.family == "cla" for t in out):
        raise dfe.DataError(f"calibration/data/dfe/la_cla.csv: local authority {code!r} has no published CLA "
                            f"totals for {FIRST_FLOW}-{fit_until}")
    return out


# ---- across all authorities ---------------------------------------------------------------------------------
def _series_table(years: range) -> dict[str, pd.DataFrame]:
    """Per family, a [LA x year] table of exact counts (NaN where suppressed), plus population and CLA. The
    residential family is the current scheme's secure and children's homes, or, when fewer than 3 of ``years``
    have it (backtest origins before 2022), the old scheme's secure / children's homes / semi-independent."""
    d = _raw()
    d = d[d["year"].isin(list(years))].copy()
    d.loc[d["value"].isna() & (d["flag"] == "z"), "value"] = 0.0  # not applicable that year: nothing to count

    def pivot(rows):
        return rows.pivot(index="new_la_code", columns="year", values="value").reindex(columns=list(years))

    out = {"cla": pivot(d[d["measure"] == "total"]), "started": pivot(d[d["measure"] == "started"]),
           "ceased": pivot(d[d["measure"] == "ceased"])}
    r = d[d["measure"] == "ceased_by_reason"]
    for fam in REASON_FAMILIES:
        g = r[r["category"].isin(CEASE_GROUPS[fam])]
        # a year with any suppressed part is not exact: NaN
        exact = g.groupby(["new_la_code", "year"])["value"].apply(lambda v: v.sum() if v.notna().all() else np.nan)
        out[fam] = exact.unstack("year").reindex(columns=list(years))
    p = d[(d["measure"] == "placement") & (d["category"].isin(RES_CURRENT))]
    out["residential"] = pivot(p)
    if out["residential"].notna().any().sum() < 3:  # an early origin: the old scheme's series (semi-independent in)
        p = d[(d["measure"] == "placement") & (d["scheme"] == "old") & (d["category"].isin(RES_OLD))]
        out["residential"] = pivot(p)
    pop = dfe.read("population_0_17.csv")
    pop = pop[(pop["geographic_level"] == "Local authority") & (pop["source"] == "POP_DFE")]
    out["population"] = pop.pivot_table(index="area_code", columns="year", values="value").reindex(
        columns=[y - 1 for y in years])  # DfE year Y uses mid-(Y-1)
    out["population"].columns = list(years)
    idx = out["cla"].index
    return {k: v.reindex(idx) for k, v in out.items()}


def _needed(table: pd.DataFrame) -> int:
    """Years a series must publish (unsuppressed) to enter a pooling statistic: all years that any LA has,
    less ``MISSING_YEARS``, and at least 3."""
    return max(int(table.notna().any().sum()) - MISSING_YEARS, 3)


def _moments(x: pd.Series, sampling_var: pd.Series) -> float:
    """Between-LA sd: variance of ``x`` less the mean sampling variance (DerSimonian-Laird style), floored at 0."""
    ok = x.notna() & sampling_var.notna() & np.isfinite(x)
    v = float(np.var(x[ok], ddof=1) - np.mean(sampling_var[ok]))
    return float(np.sqrt(max(v, 0.0)))


def _slopes(logy: pd.DataFrame) -> pd.Series:
    """Least-squares slope of each row of a [LA x year] table (rows with any NaN give NaN)."""
    t = np.asarray(logy.columns, dtype=float)
    t = t - t.mean()
    return (logy * t).sum(axis=1, skipna=False) / float(np.sum(t * t))


@lru_cache(maxsize=None)
def pooling_sds(first: int = FIRST_FLOW, last: int = 2024) -> dict[str, float]:
    """Between-LA sd of each LA effect's crude counterpart (see the module docstring), keyed like
    ``calibration.local.COORDINATES``."""
    s = _series_table(range(first, last + 1))
    pop, cla = s["population"], s["cla"]
    t = np.arange(first, last + 1, dtype=float)
    sxx = float(np.sum((t - t.mean()) ** 2))
    out = {}

    def level(num, den, key):
        years = num.notna().sum(axis=1)
        n = num.mean(axis=1).where(years >= _needed(num))
        m = den.where(num.notna()).mean(axis=1)
        keep = (n >= MIN_COUNT) & (m > 0)  # m is NaN for an authority without published population (Poole...)
        x = np.log(n[keep] / m[keep])
        x = x - np.median(x)
        out[key] = _moments(x, 1.0 / (n[keep] * years[keep]))

    def trend(num, den, key):
        keep = (num.mean(axis=1, skipna=False) >= MIN_COUNT) & den.notna().all(axis=1)
        x = _slopes(np.log(num[keep] / den[keep]))
        out[key] = _moments(x - np.median(x), (1.0 / num[keep]).mean(axis=1) / sxx)

    level(s["started"], pop, "entry")
    trend(s["started"], pop, "entry_trend")
    level(s["returned_home"], cla, "reunified")
    trend(s["returned_home"], cla, "reunified_trend")
    level(s["adopted"], cla, "adoption")
    level(s["sgo_cao"], cla, "sgo_cao")
    level(s["left_care_or_aged_out"], cla, "left_care")
    level(s["care_taken_by_another_la"], cla, "transferred")
    res = s["residential"].loc[:, s["residential"].notna().any()]
    level(res, cla[res.columns], "residential")
    return out


@lru_cache(maxsize=None)
def noise_k(first: int = FIRST_FLOW, last: int = 2024) -> dict[str, float]:
    """Negative-binomial size per target family: the scatter of LA series around their own log-linear trend
    (mean squared residual x n/(n-2)) less the Poisson part (mean 1/y), median over LAs, as 1/k."""
    s = _series_table(range(first, last + 1))
    out = {}
    for fam in FAMILIES:
        y = s[fam]
        y = y[(y.notna().sum(axis=1) >= _needed(y)) & (y.mean(axis=1) >= MIN_COUNT) & (y.min(axis=1) > 0)]
        excess = []
        for _, row in y.iterrows():
            row = row.dropna()
            t = np.asarray(row.index, dtype=float)
            ly = np.log(row.to_numpy(dtype=float))
            resid = ly - np.polyval(np.polyfit(t - t.mean(), ly, 1), t - t.mean())
            excess.append(float((resid ** 2).sum() / (t.size - 2) - np.mean(1.0 / row.to_numpy(dtype=float))))
        excess = np.array(excess)
        if excess.size == 0:
            raise dfe.DataError(f"calibration/data/dfe/la_cla.csv: no local authority has a complete {fam} series "
                                f"{first}-{last} to size its noise")
        out[fam] = float(1.0 / max(np.median(excess), NOISE_FLOOR))
    return out


@lru_cache(maxsize=None)
def discrepancy_extra_sds(first: int = FIRST_FLOW, last: int = 2024) -> dict[str, float]:
    """LA-specific yearly random-walk sd (log scale) per discrepancy group: year-on-year log changes of the LA
    less England's (the sum over LAs), variance net of the year-to-year noise (Poisson, plus the negative-
    binomial extra 2/k of ``noise_k``: noise around a level is not a random walk), mean over LAs."""
    s = _series_table(range(first, last + 1))
    k = noise_k(first, last)
    extra = {"entry": 2 / k["started"], "exit": 2 / k["returned_home"], "residential": 2 / k["residential"]}
    series = {"entry": s["started"], "exit": s["returned_home"] + s["adopted"] + s["sgo_cao"],
              "residential": s["residential"].loc[:, s["residential"].notna().any()]
              / s["cla"].loc[:, s["residential"].notna().any()]}
    counts = {"entry": s["started"], "exit": series["exit"],
              "residential": s["residential"].loc[:, s["residential"].notna().any()]}
    out = {}
    for g, y in series.items():
        c = counts[g]
        keep = c.notna().all(axis=1) & (c.mean(axis=1) >= MIN_COUNT) & y.notna().all(axis=1)
        ly = np.log(y[keep])
        eng = np.log(y[keep].sum(axis=0)) if g != "residential" else np.log(
            c[keep].sum(axis=0) / s["cla"].loc[keep, c.columns].sum(axis=0))
        d = ly.diff(axis=1).iloc[:, 1:] - eng.diff().iloc[1:]
        inv = 1.0 / c[keep]
        poisson = (inv.iloc[:, 1:].to_numpy() + inv.iloc[:, :-1].to_numpy()).mean(axis=1)
        excess = d.var(axis=1, ddof=1).to_numpy() - poisson - extra[g]
        out[g] = float(np.sqrt(max(float(np.mean(excess)), 0.0)))
    return out
