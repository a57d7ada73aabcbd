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

Run: ``caresim backtest --fit-until 2019 --to 2022`` or ``caresim backtest --origins 2017-2021 --to 2024``.
"""
from __future__ import annotations

import time
from pathlib import Path

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


def score(pred: pd.DataFrame, series: pd.DataFrame, method: str, origin: int, to: int) -> pd.DataFrame:
    """Join predictions to observations for years origin+1..to; errors and band hits."""
    target = series[series["year"].between(origin + 1, to) & recoding_mask(series)]
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


def simulate_ensemble(table: pd.DataFrame, to: int, seed: int, scale: float, workers: int | None):
    """Quantile summary of one replicate per member, 2015..``to`` (parameter and process uncertainty)."""
    from calibration.ensemble import CENTRAL
    from sim import runner
    from sim.scenario import Scenario

    sc = Scenario(name="backtest", path="<backtest>", sha256="", parameters={})
    n = int((table["member"] != CENTRAL).sum())
    df, _ = runner.run_scenario(sc, n, seed, to, scale, workers=workers, progress=False, ensemble=table,
                                uncertainty="both")
    return runner.summarise(df)


def backtest(fit_until: int, to: int, replicates: int = 20, seed: int = RUN_SEED, scale: float = 0.25,
             workers: int | None = None, fit_iterations: int = 40, fit_scale: float = 0.5,
             log=print, priors: dict[str, float] | None = None, members: int = 0, member_scale: float = 0.2,
             member_iterations: int = 2) -> pd.DataFrame:
    """Fit up to ``fit_until``, project to ``to``; caresim and naive rows scored against DfE (no look-ahead).
    With ``members`` > 0 the projection is the ensemble's (one replicate per member; ``replicates`` unused)."""
    from sim import observe

    check_years(fit_until, to)
    t0 = time.perf_counter()
    say = lambda s: log(f"[{fit_until}] {s}")
    if members > 0:
        calibrated = set(first_pass.calibrated_names())
        if bad := sorted(set(priors or {}) & calibrated):
            raise ValueError(f"--set: {bad} are calibrated parameters; only priors and fixed values can be set")
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


def backtests(origins: list[int], to: int, **kw) -> pd.DataFrame:
    """Backtests from several origins, stacked."""
    for o in origins:
        check_years(o, to)
    return pd.concat([backtest(o, to, **kw) for o in origins], ignore_index=True)


def pooled(df: pd.DataFrame, horizons=(1, 2, 3)) -> pd.DataFrame:
    """Per method: median abs % error of CLA total by horizon, and pooled 90%/50% band coverage (CLA total and
    placements) over those horizons (issue 3's criterion) and over every horizon scored, plus the median abs %
    error over every scored row."""
    rows = []
    for method, g in df.groupby("method", sort=True):
        tot = g[(g["measure"] == "cla_31mar") & (g["category"] == TOTAL)]
        every = g[g["measure"] == "cla_31mar"]
        cla = every[every["horizon"].isin(horizons)]
        row = {"method": method}
        for h in horizons:
            e = tot.loc[tot["horizon"] == h, "abs_pct_error"]
            row[f"cla_total_mdape_h{h}"] = float(e.median()) if len(e) else np.nan
        row["cla_groups_n"] = len(cla)
        row["coverage_90"] = float(cla["inside_90"].mean()) if len(cla) else np.nan
        row["coverage_50"] = float(cla["inside_50"].mean()) if len(cla) else np.nan
        row["coverage_90_all_horizons"] = float(every["inside_90"].mean()) if len(every) else np.nan
        row["coverage_50_all_horizons"] = float(every["inside_50"].mean()) if len(every) else np.nan
        row["all_rows_mdape"] = float(g["abs_pct_error"].median())
        rows.append(row)
    return pd.DataFrame(rows)


def chart(df: pd.DataFrame, observed_total: pd.DataFrame, path: Path) -> None:
    """CLA total: DfE points, caresim median and 90% band per origin, naive lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tot = df[(df["measure"] == "cla_31mar") & (df["category"] == TOTAL)]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colours = plt.get_cmap("tab10")
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
    ax.plot(observed_total["year"], observed_total["observed"], "ko", ms=4, label="DfE")
    ax.set_title("Backtests: children looked after at 31 March (caresim median and 90% band; naive dotted)")
    ax.set_xlabel("year ending 31 March")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: str | Path, df: pd.DataFrame) -> Path:
    """Write backtest.csv and backtest.png into a new folder, atomically."""
    from sim import observe, output

    series = scored_series(observe.observed())
    obs_total = series[(series["measure"] == "cla_31mar") & (series["category"] == TOTAL)
                       & series["year"].between(2015, int(df["year"].max()))].sort_values("year")

    def fill(tmp: Path) -> None:
        df.to_csv(tmp / "backtest.csv", index=False, lineterminator="\n", float_format="%.6g")
        chart(df, obs_total, tmp / "backtest.png")

    return output.atomic_folder(out, fill)
