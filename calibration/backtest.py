"""Backtests of the first-pass model against a naive comparator (DESIGN §4; issue 3, "backtest").

From an origin Y1 (``fit_until``) the model is calibrated on DfE data up to the year ending 31 March Y1 only
(trends stop at Y1 and follow the trend rule after it, as after 2024 in the status quo): the point fit and a
parameter ensemble (calibration/ensemble.py; ``members`` = 0 gives the point fit alone, process noise only).
The engine runs from 2015 to Y2 (``to``), one replicate per member, and years Y1+1..Y2 are scored against
DfE: CLA total, CLA by placement (current scheme from 2020, old scheme before), starts and ceased totals.

The naive comparator projects each series from its own data up to the origin: the count at Y1 times the
average annual growth of the three years to Y1, ``(x_Y1 / x_{Y1-3}) ** (1/3)``, per year of horizon (a series
first published less than three years before Y1 uses the years it has; one with a single year gets no naive
row). Its quantiles all equal that point, so its bands hit only on an exact match.

Local authorities (``las``, ``caresim backtest --la CODE[,CODE...]``, origins from 2018): at each origin the
national ensemble fitted up to it (once for all the LAs), each LA's own fit on top (``calibration/local.py``,
same fit year, pooling statistics from data to the origin), its members projected at the LA's real size, and
each LA's CLA total, starts and ceased scored. An authority created after 2015 is scored on its own years only
(its mapped years are estimates; the naive comparator may use them as history, as the fit does).

Run: ``caresim backtest --fit-until 2019 --to 2022`` or ``caresim backtest --origins 2017-2021 --to 2024``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from calibration import first_pass
from calibration.parameters import load_register
from calibration.inputs import uasc_arrivals
from sim.observe import ALL, CURRENT, ENGLAND, GROUP_2024, GROUP_2024_CATEGORIES, OLD, RECODED_YEAR, TOTAL

COLUMNS = ["method", "origin", "year", "horizon", "measure", "scheme", "category", "age_band", "uasc", "la",
           "observed", "q05", "q25", "q50", "q75", "q95", "abs_pct_error", "inside_50", "inside_90"]
QCOLS = ["q05", "q25", "q50", "q75", "q95"]
SERIES = ["measure", "scheme", "category", "age_band", "uasc", "la"]
NAIVE_YEARS = 3
CURRENT_FROM = first_pass.CURRENT_FROM
LAST_YEAR = first_pass.DATA_END
FIT_SEED = 20150331
RUN_SEED = 20240331


def check_years(fit_until: int, to: int) -> None:
    """Origins from 2017 (two flow years for slopes), targets after the origin and within the data."""
    if fit_until < first_pass.MIN_FIT_UNTIL:
        raise ValueError(f"--fit-until: {fit_until} must be at least {first_pass.MIN_FIT_UNTIL} "
                         "(a fit needs two flow years, 2016 and 2017)")
    if to <= fit_until:
        raise ValueError(f"--to: {to} must be after the origin {fit_until}")
    if to > LAST_YEAR:
        raise ValueError(f"--to: {to} must be at most {LAST_YEAR} (the last year of DfE data)")


def scored_series(obs: pd.DataFrame) -> pd.DataFrame:
    """National DfE rows scored: CLA total and placements (each year in its published scheme), starts, ceased."""
    nat = obs[(obs["age_band"] == ALL) & (obs["uasc"] == ALL) & (obs["la"] == ENGLAND)]
    cla = nat["measure"] == "cla_31mar"
    total = cla & (nat["scheme"] == CURRENT) & (nat["category"] == TOTAL)
    place = cla & (nat["category"] != TOTAL) & (
        ((nat["scheme"] == CURRENT) & (nat["year"] >= CURRENT_FROM))
        | ((nat["scheme"] == OLD) & (nat["year"] < CURRENT_FROM) & (nat["category"] != GROUP_2024)))
    flows = nat["measure"].isin(["started", "ceased"]) & (nat["category"] == TOTAL)
    cols = ["year"] + SERIES + ["value"]
    return nat.loc[total | place | flows, cols].rename(columns={"value": "observed"}).reset_index(drop=True)


def scored_local_series(obs: pd.DataFrame, code: str) -> pd.DataFrame:
    """One LA's DfE rows scored: CLA total, starts and ceased totals (``sim.observe.observed(area=code)``)."""
    d = obs[(obs["age_band"] == ALL) & (obs["uasc"] == ALL) & (obs["la"] == code) & (obs["category"] == TOTAL)]
    keep = d["measure"].isin(["started", "ceased"]) | ((d["measure"] == "cla_31mar") & (d["scheme"] == CURRENT))
    cols = ["year"] + SERIES + ["value"]
    return d.loc[keep, cols].rename(columns={"value": "observed"}).reset_index(drop=True)


def recoding_mask(df: pd.DataFrame) -> pd.Series:
    """Rows scored, given DfE's 2024 recoding of "other placements" (DESIGN §2: treat residential, semi-independent
    and other as one group for 2024): in 2024 the group replaces its member categories, which are scored in the
    other years; the group itself (kept in the series for the naive comparator's history) only in 2024."""
    current = df["scheme"] == CURRENT
    member = current & df["category"].isin(GROUP_2024_CATEGORIES)
    group = current & (df["category"] == GROUP_2024)
    recoded = df["year"] == RECODED_YEAR
    return ~((member & recoded) | (group & ~recoded))


def naive(series: pd.DataFrame, origin: int, to: int) -> pd.DataFrame:
    """Naive point projections for years origin+1..to from each series' own values up to the origin."""
    past = series[series["year"].between(origin - NAIVE_YEARS, origin)]
    rows = []
    for key, g in past.groupby(SERIES, sort=True):
        v = g.set_index("year")["observed"]
        if origin not in v.index or len(v) < 2:
            continue
        first = int(v.index.min())
        growth = (v[origin] / v[first]) ** (1.0 / (origin - first))
        for year in range(origin + 1, to + 1):
            rows.append(dict(zip(SERIES, key), year=year, **{q: v[origin] * growth ** (year - origin)
                                                            for q in QCOLS}))
    return pd.DataFrame(rows, columns=["year"] + SERIES + QCOLS)


def score(pred: pd.DataFrame, series: pd.DataFrame, method: str, origin: int, to: int,
          first_scored: int = 0) -> pd.DataFrame:
    """Join predictions to observations for years origin+1..to (and from ``first_scored``); errors and band hits."""
    target = series[series["year"].between(max(origin + 1, first_scored), to) & recoding_mask(series)]
    m = pred.merge(target, on=["year"] + SERIES, how="inner")
    m["method"], m["origin"], m["horizon"] = method, origin, m["year"] - origin
    m["abs_pct_error"] = (m["q50"] / m["observed"] - 1).abs() * 100
    m["inside_50"] = (m["q25"] <= m["observed"]) & (m["observed"] <= m["q75"])
    m["inside_90"] = (m["q05"] <= m["observed"]) & (m["observed"] <= m["q95"])
    return m[COLUMNS]


def future_uasc(fit_until: int, factor: float) -> float:
    """UASC arrivals after the origin by the register's rule (mean UASC arrivals, published starts less transfers,
    of the three years to the origin x the fitted factor), from data up to the origin only: no look-ahead."""
    arrivals = uasc_arrivals()
    return factor * float(np.mean([arrivals[y] for y in range(fit_until - 2, fit_until + 1)]))


def fitted_overrides(fit_until: int, iterations: int, fit_scale: float, log,
                     priors: dict[str, float] | None = None) -> dict[str, float]:
    """First-pass values fitted up to ``fit_until`` (with any prior overrides), the trend end at the origin and
    the future UASC arrivals from data up to the origin, as parameter overrides."""
    priors = dict(priors or {})
    calibrated = set(first_pass.calibrated_names())
    if bad := sorted(set(priors) & calibrated):
        raise ValueError(f"--set: {bad} are calibrated parameters; only priors and fixed values can be set")
    values = first_pass.fit(iterations, fit_scale, FIT_SEED, fit_until=fit_until, log=log, priors=priors)
    missing = calibrated - set(values)
    assert not missing, f"fit left calibrated parameters unset: {sorted(missing)}"
    return dict(priors, **values, **{"trend.end_year": float(fit_until),
                           "arrive.uasc.future_annual": future_uasc(fit_until, values["arrive.uasc.factor"])})


def simulate(overrides: dict, to: int, replicates: int, seed: int, scale: float, workers: int | None):
    """Quantile summary of a run 2015..``to`` with the given overrides (they set every calibrated parameter,
    so the shipped first_pass.csv is never used)."""
    from sim import runner
    from sim.scenario import Scenario

    sc = Scenario(name="backtest", path="<backtest>", sha256="", parameters=overrides)
    df, _ = runner.run_scenario(sc, replicates, seed, to, scale, workers=workers, progress=False)
    return runner.summarise(df)


def origin_ensemble(fit_until: int, members: int, fit_iterations: int, fit_scale: float, member_scale: float,
                    member_iterations: int, log, priors: dict[str, float] | None = None) -> pd.DataFrame:
    """A parameter ensemble fitted on data up to ``fit_until`` (cold start: no values fitted on later data), with
    each member's future UASC arrivals rescaled to the rule applied at the origin (no look-ahead)."""
    from calibration import ensemble as ens

    table, _ = ens.build(members, fit_until, FIT_SEED, fit_iterations, fit_scale, member_scale, member_iterations,
                         start=None, log=log)
    for k, v in (priors or {}).items():
        table[k] = float(v)
    reg_future = load_register()["arrive.uasc.future_annual"]["value"]
    rule = np.array([future_uasc(fit_until, f) for f in table["arrive.uasc.factor"]])
    table["arrive.uasc.future_annual"] = table["arrive.uasc.future_annual"] / reg_future * rule
    return table


def simulate_ensemble(table: pd.DataFrame, to: int, seed: int, scale: float, workers: int | None,
                      area: str = ENGLAND):
    """Quantile summary of one replicate per member, 2015..``to`` (parameter and process uncertainty), for
    England or one LA (``area``)."""
    from calibration.ensemble import CENTRAL
    from sim import runner
    from sim.scenario import Scenario

    sc = Scenario(name="backtest", path="<backtest>", sha256="", parameters={})
    n = int((table["member"] != CENTRAL).sum())
    df, _ = runner.run_scenario(sc, n, seed, to, scale, workers=workers, progress=False, ensemble=table,
                                uncertainty="both", area=area)
    return runner.summarise(df)


def backtest(fit_until: int, to: int, replicates: int = 20, seed: int = RUN_SEED, scale: float = 0.25,
             workers: int | None = None, fit_iterations: int = 40, fit_scale: float = 0.5,
             log=print, priors: dict[str, float] | None = None, members: int = 0, member_scale: float = 0.2,
             member_iterations: int = 2, las: Sequence[str] = (), la_fit_cla: float | None = None
             ) -> pd.DataFrame:
    """Fit up to ``fit_until``, project to ``to``; caresim and naive rows scored against DfE (no look-ahead).
    With ``members`` > 0 the projection is the ensemble's (one replicate per member; ``replicates`` unused).
    With ``las`` (2024 LA codes; needs ``members`` > 0) each LA is fitted on the origin's national ensemble
    (fitted once) and projected at its real size (``la_fit_cla``: the LA fit runs' size, default
    ``local.FIT_CLA``); only the LAs' rows are scored."""
    from sim import observe

    check_years(fit_until, to)
    t0 = time.perf_counter()
    say = lambda s: log(f"[{fit_until}] {s}")
    if bad := sorted(set(priors or {}) & set(first_pass.calibrated_names())):
        raise ValueError(f"--set: {bad} are calibrated parameters; only priors and fixed values can be set")
    if las:
        if members <= 0:
            raise ValueError("--la: a local backtest needs an ensemble (--members > 0)")
        series = {code: scored_local_series(observe.observed(area=code), code) for code in las}  # unknown: error
        table = origin_ensemble(fit_until, members, fit_iterations, fit_scale, member_scale, member_iterations,
                                say, priors)
        out = pd.concat([local_backtest(code, table, series[code], fit_until, to, seed, workers, say, la_fit_cla)
                         for code in las], ignore_index=True)
        log(f"[{fit_until}] {len(las)} LA backtest(s) to {to}: {len(out)} rows ({time.perf_counter() - t0:.0f} s)")
        return out
    if members > 0:
        table = origin_ensemble(fit_until, members, fit_iterations, fit_scale, member_scale, member_iterations,
                                say, priors)
        summary = simulate_ensemble(table, to, seed, scale, workers)
    else:
        overrides = fitted_overrides(fit_until, fit_iterations, fit_scale, say, priors)
        summary = simulate(overrides, to, replicates, seed, scale, workers)
    series = scored_series(observe.observed())
    out = pd.concat([score(summary, series, "caresim", fit_until, to),
                     score(naive(series, fit_until, to), series, "naive", fit_until, to)], ignore_index=True)
    log(f"[{fit_until}] backtest to {to}: {len(out)} rows ({time.perf_counter() - t0:.0f} s)")
    return out


def local_backtest(code: str, national: pd.DataFrame, series: pd.DataFrame, fit_until: int, to: int, seed: int,
                   workers: int | None, log, fit_cla: float | None = None) -> pd.DataFrame:
    """One LA's backtest rows: its fit on the origin's national ensemble, projected at its real size, scored on
    its own years (an authority created after 2015: from its first own year)."""
    from calibration import boundaries, local
    from calibration.ensemble import CENTRAL

    table, _ = local.build(code, national, int((national["member"] != CENTRAL).sum()), fit_until, FIT_SEED, log=log,
                           fit_cla=fit_cla or local.FIT_CLA)
    summary = simulate_ensemble(table, to, seed, 1.0, workers, area=code)
    first = boundaries.own_from(code) or 0
    return pd.concat([score(summary, series, "caresim", fit_until, to, first),
                      score(naive(series, fit_until, to), series, "naive", fit_until, to, first)], ignore_index=True)


def backtests(origins: list[int], to: int, **kw) -> pd.DataFrame:
    """Backtests from several origins, stacked."""
    for o in origins:
        check_years(o, to)
    return pd.concat([backtest(o, to, **kw) for o in origins], ignore_index=True)


def pooled(df: pd.DataFrame, horizons=(1, 2, 3), by: Sequence[str] = ("method",)) -> pd.DataFrame:
    """Per method (or per ``by`` group, e.g. ("la", "method") for LA backtests): median abs % error of CLA total by
    horizon, and pooled 90%/50% band coverage (CLA total and placements) over those horizons (issue 3's
    criterion) and over every horizon scored, the same for the starts and ceased totals over those horizons, plus
    the median abs % error over every scored row."""
    rows = []
    for key, g in df.groupby(list(by), sort=True):
        tot = g[(g["measure"] == "cla_31mar") & (g["category"] == TOTAL)]
        every = g[g["measure"] == "cla_31mar"]
        cla = every[every["horizon"].isin(horizons)]
        flows = g[g["measure"].isin(["started", "ceased"]) & g["horizon"].isin(horizons)]
        row = dict(zip(by, key))
        for h in horizons:
            e = tot.loc[tot["horizon"] == h, "abs_pct_error"]
            row[f"cla_total_mdape_h{h}"] = float(e.median()) if len(e) else np.nan
        row["cla_groups_n"] = len(cla)
        row["coverage_90"] = float(cla["inside_90"].mean()) if len(cla) else np.nan
        row["coverage_50"] = float(cla["inside_50"].mean()) if len(cla) else np.nan
        row["coverage_90_all_horizons"] = float(every["inside_90"].mean()) if len(every) else np.nan
        row["coverage_50_all_horizons"] = float(every["inside_50"].mean()) if len(every) else np.nan
        row["flows_coverage_90"] = float(flows["inside_90"].mean()) if len(flows) else np.nan
        row["flows_coverage_50"] = float(flows["inside_50"].mean()) if len(flows) else np.nan
        row["all_rows_mdape"] = float(g["abs_pct_error"].median())
        rows.append(row)
    return pd.DataFrame(rows)


def chart(df: pd.DataFrame, observed: dict[str, pd.DataFrame], path: Path,
          labels: dict[str, str] | None = None) -> None:
    """CLA total per area (one panel each: England, or each LA): DfE points, caresim median and 90% band per
    origin, naive lines. ``observed``: area (ENGLAND or an LA code) -> its DfE CLA totals (year, observed;
    ``mapped`` True for a successor's years before its own, drawn hollow); ``labels``: panel titles by area."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tot_all = df[(df["measure"] == "cla_31mar") & (df["category"] == TOTAL)]
    n = len(observed)
    fig, axes = plt.subplots(n, 1, figsize=(9, 5.5 if n == 1 else 3.6 * n), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (area, observed_total) in zip(axes[:, 0], observed.items()):
        tot = tot_all[tot_all["la"] == area]
        for i, origin in enumerate(sorted(tot["origin"].unique())):
            c = colours(i % 10)
            anchor = observed_total[observed_total["year"] == origin]
            for method, style in (("caresim", "-"), ("naive", ":")):
                s = tot[(tot["origin"] == origin) & (tot["method"] == method)].sort_values("year")
                x = np.r_[anchor["year"].to_numpy(float), s["year"].to_numpy(float)]
                y = np.r_[anchor["observed"].to_numpy(float), s["q50"].to_numpy(float)]
                ax.plot(x, y, style, color=c, lw=1.6, label=f"{method} from {origin}")
                if method == "caresim":
                    ax.fill_between(s["year"], s["q05"], s["q95"], color=c, alpha=0.15, lw=0)
        mapped = observed_total["mapped"] if "mapped" in observed_total else pd.Series(False, observed_total.index)
        ax.plot(observed_total.loc[~mapped, "year"], observed_total.loc[~mapped, "observed"], "ko", ms=4, label="DfE")
        if mapped.any():
            ax.plot(observed_total.loc[mapped, "year"], observed_total.loc[mapped, "observed"], "o", mfc="none",
                    color="black", ms=4, label="predecessors x population share")
        ax.set_title(f"Backtests, {(labels or {}).get(area, area)}: children looked after at 31 March\n(caresim median and 90% band; "
                     "naive dotted)", fontsize=9)
        ax.set_xlabel("year ending 31 March")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: str | Path, df: pd.DataFrame, las: Sequence[str] = ()) -> Path:
    """Write backtest.csv and backtest.png into a new folder, atomically (``las``: the LAs of a local backtest)."""
    from calibration import boundaries
    from sim import observe, output

    series = ({ENGLAND: scored_series(observe.observed())} if not las else
              {code: scored_local_series(observe.observed(area=code), code) for code in las})
    labels = {ENGLAND: "England", **{code: f"{code} {observe.local_rows(code)['la_name'].iloc[-1]}" for code in las}}
    last = int(df["year"].max())
    totals = {}
    for area, s in series.items():
        t = s[(s["measure"] == "cla_31mar") & (s["category"] == TOTAL) & s["year"].between(2015, last)]
        own = boundaries.own_from(area) if area != ENGLAND else None
        totals[area] = t.assign(mapped=t["year"] < own if own else False).sort_values("year")

    def fill(tmp: Path) -> None:
        df.to_csv(tmp / "backtest.csv", index=False, lineterminator="\n", float_format="%.6g")
        chart(df, totals, tmp / "backtest.png", labels)

    return output.atomic_folder(out, fill)
