"""``caresim compare``: every scenario on the same seeds and the same parameter draws, as levels and as
differences paired replicate by replicate against the status quo (issue 4; DESIGN §3).

Replicate r of every scenario uses ensemble member ``runner.member_of(r)`` and engine seed
``runner.replicate_seed(seed, r)``: the same parameters and the same random numbers, so up to the earliest
lever start every scenario repeats the status quo's path exactly and afterwards the paired difference carries
the levers' effect with little Monte Carlo noise (common random numbers). The naive comparator (a scenario file
with ``method = "naive_growth"``) is projected from DfE data alone: the average annual growth of the three
years to 2024 applied to each series' 2024 count (the method of the CCN's 2022 warning), a point forecast.

Investment levers are costed with ``sim.costs.investment_costs`` (GBP a year in 2023-24 prices, present value
at the Green Book rate) and added to the scenario's cost as measure ``investment_gbp_2023_24``; the total
``cost_with_investment_gbp_2023_24`` is placements, casework and investment together.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sim import runner
from sim import scenario as scenario_mod

BASE = "status_quo"
KEYS = ["year", "measure", "scheme", "category", "age_band", "uasc", "la"]
QCOLS = list(runner.QUANTILES)
COLUMNS = ["scenario", "kind", *KEYS, "mean", *QCOLS]
NAIVE = "naive_growth"
NO_CAPACITY = "status_quo_without_capacity_constraint"   # the status quo rerun with the constraint off
NAIVE_YEARS = 3          # the comparator's growth window (the CCN 2022 method)
LAST_DATA_YEAR = 2024
REAL_COST = "cost_gbp_2023_24"
INVESTMENT = "investment_gbp_2023_24"
WITH_INVESTMENT = "cost_with_investment_gbp_2023_24"


@dataclass
class Comparison:
    """What ``compare`` produces: the comparison table, the per-replicate rows, and how they were made."""
    table: pd.DataFrame
    replicates: dict[str, pd.DataFrame]
    info: dict
    scenarios: list = field(default_factory=list)


def _check(scenarios: list) -> None:
    names = [s.name for s in scenarios]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"compare: scenario name(s) {dup} given twice")
    if BASE not in names:
        raise ValueError(f"compare: the scenarios must include the status quo (a scenario named {BASE!r}, e.g. "
                         f"runs/scenarios/status_quo.toml): differences are paired against it")


def investment_rows(scenario, end_year: int, params) -> pd.DataFrame:
    """Investment levers as yearly costs (financial years ending March, 2023-24 prices), pro rata by month."""
    from sim.costs import investment_costs
    amounts: dict[int, float] = {}
    for lv in scenario.levers:
        if lv.kind != "investment":
            continue
        last = lv.end or (end_year, 3)
        y, m = lv.start
        while (y, m) <= last and (y + (m >= 4)) <= end_year:
            fy = y + (1 if m >= 4 else 0)  # the financial year ending March fy holds month (y, m)
            amounts[fy] = amounts.get(fy, 0.0) + lv.annual_gbp / 12.0
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    if not amounts:
        return pd.DataFrame(columns=KEYS + ["value"])
    inv = investment_costs(amounts, int(params["cost.price_year_ending"]), params)
    return pd.DataFrame({"year": inv.years, "measure": INVESTMENT, "scheme": "model", "category": "total",
                         "age_band": "all", "uasc": "all", "la": "ENG", "value": inv.real})


def _with_investment(df: pd.DataFrame, inv: pd.DataFrame) -> pd.DataFrame:
    """Per replicate: investment rows, and placements + casework + investment as one total."""
    cost = df[(df["measure"] == REAL_COST) & (df["category"] == "total") & (df["la"] == "ENG")]
    add = inv.set_index("year")["value"] if len(inv) else pd.Series(dtype=float)
    tot = cost.assign(measure=WITH_INVESTMENT, value=cost["value"] + cost["year"].map(add).fillna(0.0).to_numpy())
    parts = [df, tot]
    if len(inv):
        reps = df[["scenario", "replicate", "draw"]].drop_duplicates()
        parts.append(reps.merge(inv, how="cross")[df.columns])
    return pd.concat(parts, ignore_index=True)


def paired_differences(df: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """Replicate by replicate: a scenario's value minus the status quo's on the same replicate and keys (a
    measure the status quo lacks, such as investment, counts as 0 there)."""
    on = ["replicate", "draw"] + KEYS
    m = df.merge(base[on + ["value"]], on=on, how="left", suffixes=("", "_base"))
    if len(m) != len(df):
        raise AssertionError("paired differences: replicates do not line up with the status quo's")
    return m.assign(value=m["value"] - m["value_base"].fillna(0.0)).drop(columns="value_base")


def _summary(df: pd.DataFrame, name: str, kind: str) -> pd.DataFrame:
    s = runner.summarise(df.drop(columns=["replicate", "draw"]))
    return s.assign(scenario=name, kind=kind)[COLUMNS]


def naive_rows(end_year: int) -> pd.DataFrame:
    """The naive comparator's point projections (CLA total and placements, starts, ceased) to ``end_year``."""
    from calibration import backtest
    from sim.observe import observed
    series = backtest.scored_series(observed())
    pred = backtest.naive(series, LAST_DATA_YEAR, end_year)
    out = pred.assign(la="ENG", mean=pred["q50"])
    for k in KEYS:
        if k not in out:
            out[k] = "all"
    return out.assign(scenario=NAIVE, kind="level")[COLUMNS]


def compare(scenarios: list, replicates: int, seed: int, end_year: int, scale: float, workers: int | None = None,
            ensemble: pd.DataFrame | None = None, progress: bool = True, log=print,
            capacity: bool | None = None) -> Comparison:
    """Run every scenario (same seeds, same ensemble members) and tabulate levels and paired differences;
    ``capacity``: the foster capacity constraint in every scenario (True / False; None: as the ensemble was
    fitted, ``runner.run_scenario``). With the constraint on, the status quo runs once more without it (same
    members, same random numbers): its levels are the rows of scenario ``NO_CAPACITY``, not compared."""
    _check(scenarios)
    t0 = time.perf_counter()
    engine_sc = [s for s in scenarios if s.method != NAIVE]
    engine_sc.sort(key=lambda s: s.name != BASE)  # the status quo first
    frames, infos = {}, {}
    for sc in engine_sc:
        log(f"{sc.name}: {replicates} replicates")
        df, info = runner.run_scenario(sc, replicates, seed, end_year, scale, workers=workers, progress=progress,
                                       ensemble=ensemble, uncertainty="both", capacity=capacity)
        frames[sc.name] = _with_investment(df, investment_rows(sc, end_year, info["params"]))
        infos[sc.name] = {k: info[k] for k in ("wall_seconds", "members", "draws", "uncertainty", "capacity")}
    base = frames[BASE]
    parts = []
    on = bool(infos[BASE]["capacity"])
    if on:
        log(f"{BASE} without the foster capacity constraint: {replicates} replicates")
        sq = [s for s in engine_sc if s.name == BASE][0]
        df, info = runner.run_scenario(sq, replicates, seed, end_year, scale, workers=workers, progress=progress,
                                       ensemble=ensemble, uncertainty="both", capacity=False)
        parts.append(_summary(df, NO_CAPACITY, "level"))
    for sc in engine_sc:
        parts.append(_summary(frames[sc.name], sc.name, "level"))
        if sc.name != BASE:
            parts.append(_summary(paired_differences(frames[sc.name], base), sc.name, "difference"))
    if any(s.method == NAIVE for s in scenarios):
        parts.append(naive_rows(end_year))
    table = pd.concat(parts, ignore_index=True)
    info = {"replicates": replicates, "seed": seed, "end_year": end_year, "scale": scale, "capacity": on,
            "scenarios": [s.name for s in scenarios], "runs": infos,
            "wall_seconds": time.perf_counter() - t0}
    return Comparison(table, frames, info, scenarios)


def crn_variance_reduction(base_sc, reform_sc, replicates: int, seed: int, year: int, scale: float,
                           ensemble: pd.DataFrame | None, workers: int | None = None, shared: dict | None = None,
                           progress: bool = False, capacity: bool | None = None) -> dict:
    """Variance of the ``year`` CLA-total paired difference (reform - status quo) with shared versus independent
    process random numbers (the reform run again on another seed), for the same parameter draws:

    * ``process``: one parameter set (the ensemble's central member) in every replicate, so the ratio is what
      common random numbers do to Monte Carlo noise;
    * ``parameter_and_process``: members in turn as in ``compare`` (``shared`` may hold its base and reform
      rows); the variance of the effect across members is parameter uncertainty, which common random numbers
      rightly leave in, so this ratio is smaller."""
    def total(df):
        d = df[(df["measure"] == "cla_31mar") & (df["scheme"] == "dfe_current") & (df["category"] == "total")
               & (df["age_band"] == "all") & (df["uasc"] == "all") & (df["la"] == "ENG") & (df["year"] == year)]
        return d.sort_values("replicate").set_index("replicate")[["draw", "value"]]

    def run(sc, s, uncertainty):
        return runner.run_scenario(sc, replicates, s, year, scale, workers=workers, progress=progress,
                                   ensemble=ensemble, uncertainty=uncertainty, capacity=capacity)[0]

    def measure(uncertainty, base=None, reform=None):
        a = total(base if base is not None else run(base_sc, seed, uncertainty))
        b = total(reform if reform is not None else run(reform_sc, seed, uncertainty))
        c = total(run(reform_sc, seed + 1, uncertainty))  # same members (by replicate), other random numbers
        if not (a["draw"].equals(b["draw"]) and a["draw"].equals(c["draw"])):
            raise AssertionError("crn check: parameter draws differ between runs")
        v_shared = float(np.var(b["value"] - a["value"], ddof=1))
        v_indep = float(np.var(c["value"] - a["value"], ddof=1))
        return {"var_shared": v_shared, "var_independent": v_indep,
                "reduction": v_indep / v_shared if v_shared > 0 else float("inf"),
                "mean_difference": float((b["value"] - a["value"]).mean())}

    shared = shared or {}
    out = {"year": year, "replicates": replicates, "scale": scale, "reform": reform_sc.name,
           "process": measure("process")}
    if ensemble is not None:
        out["parameter_and_process"] = measure("both", shared.get("base"), shared.get("reform"))
    return out


def load_all(paths: list[str | Path]) -> list:
    """Load and validate every scenario file before anything runs."""
    return [scenario_mod.load(p) for p in paths]


def present_values(comp: Comparison, first: int = 2026) -> pd.DataFrame:
    """Per scenario: the present value (Green Book rate, to ``cost.discount.base_year_ending``) of the cost
    including investment over the financial years ending ``first``..end year, and its paired difference
    from the status quo; median and 90% band over replicates, GBP million in 2023-24 prices."""
    from calibration.parameters import base_parameters
    from sim.costs import discount_base_year, discount_factors, discount_rate
    p = base_parameters()
    last = comp.info["end_year"]

    def pv(df):
        d = df[(df["measure"] == WITH_INVESTMENT) & (df["la"] == "ENG") & df["year"].between(first, last)]
        f = discount_factors(d["year"].to_numpy(), discount_rate(p), discount_base_year(p))
        return (d.assign(v=d["value"].to_numpy() * f).groupby("replicate")["v"].sum()) / 1e6

    base = pv(comp.replicates[BASE])
    rows = []
    for name, df in comp.replicates.items():
        v = pv(df)
        for kind, x in (("level", v), ("difference", v - base)):
            if kind == "difference" and name == BASE:
                continue
            rows.append({"scenario": name, "kind": kind, "years": f"{first - 1}-{str(first)[2:]} to "
                         f"{last - 1}-{str(last)[2:]}", "median_gbp_m": round(float(x.median()), 1),
                         "q05_gbp_m": round(float(x.quantile(0.05)), 1),
                         "q95_gbp_m": round(float(x.quantile(0.95)), 1)})
    return pd.DataFrame(rows)


def write(out: str | Path, comp: Comparison, observed: pd.DataFrame | None = None, crn: dict | None = None) -> Path:
    """The comparison folder, created atomically: comparison.csv, present_values.csv, manifest.json,
    report.html and its PNGs."""
    import json
    from sim import output
    from sim.compare_report import write as write_report
    pv = present_values(comp)

    def fill(tmp: Path) -> None:
        output.plain(comp.table).to_csv(tmp / "comparison.csv", index=False, lineterminator="\n")
        pv.to_csv(tmp / "present_values.csv", index=False, lineterminator="\n")
        man = {"info": comp.info, "crn": crn,
               "scenarios": [{"name": s.name, "file": s.path, "sha256": s.sha256, "method": s.method,
                              "levers": [lv.as_dict() for lv in s.levers]} for s in comp.scenarios]}
        (tmp / "manifest.json").write_text(json.dumps(man, indent=2, default=str) + "\n", encoding="utf-8")
        write_report(tmp, comp, observed, pv, crn)

    return output.atomic_folder(out, fill)
