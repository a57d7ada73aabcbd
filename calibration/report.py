"""Fit report of a run folder against DfE: the first-pass acceptance checks and every matched series.

Run:  ``python -m calibration.report RUN_FOLDER``  (a folder written by ``caresim run``).
Prints (1) the 31 March 2015 stock by old-scheme category, (2) CLA total 2016-2024, (3) ceased in the year
ending March 2016, each with its tolerance and PASS/FAIL, then (4) the median % error of every observed
national series the run produces, to show where the fit is good and where it is not; between them, the
calibration's in-sample criteria (``calibration/criteria.py``) per check.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sim.observe import area_of

KEYS = ["year", "measure", "scheme", "category", "age_band", "uasc", "la"]
Z90 = 1.6449  # q95 - q05 spans 2 x 1.645 sd for a normal spread


def matched(summary: pd.DataFrame, area: str | None = None) -> pd.DataFrame:
    """Simulated quantiles joined to DfE observations on the tidy keys (England's, or a local run's LA's)."""
    from sim.observe import area_of, observed

    area = area or area_of(summary)
    obs = observed(area=area).rename(columns={"value": "observed"})
    obs["year"] = obs["year"].astype(int)
    m = summary.merge(obs[KEYS + ["observed"]], on=KEYS, how="inner")
    m["pct_error"] = (m["q50"] / m["observed"] - 1) * 100
    m["sd"] = (m["q95"] - m["q05"]) / (2 * Z90)
    return m


def checks(m: pd.DataFrame) -> list[tuple[str, bool, str]]:
    """The issue's acceptance checks on the medians."""
    out = []
    nat = (m["la"] == area_of(m)) & (m["age_band"] == "all") & (m["uasc"] == "all")
    s15 = m[nat & (m["measure"] == "cla_31mar") & (m["scheme"] == "dfe_old") & (m["year"] == 2015)
            & (m["category"] != "total")]
    for _, r in s15.iterrows():
        tol = max(0.03 * r["observed"], 3 * r["sd"], 5.0)
        ok = abs(r["q50"] - r["observed"]) <= tol
        out.append((f"2015 stock {r['category']}", ok, f"{r['q50']:,.0f} vs DfE {r['observed']:,.0f} (tol {tol:,.0f})"))
    cla = m[nat & (m["measure"] == "cla_31mar") & (m["scheme"] == "dfe_current") & (m["category"] == "total")
            & m["year"].between(2016, 2024)].sort_values("year")
    for _, r in cla.iterrows():
        out.append((f"CLA total {r['year']}", abs(r["pct_error"]) <= 8.0,
                    f"{r['q50']:,.0f} vs DfE {r['observed']:,.0f} ({r['pct_error']:+.1f}%, tol 8%)"))
    c16 = m[nat & (m["measure"] == "ceased") & (m["category"] == "total") & (m["year"] == 2016)]
    for _, r in c16.iterrows():
        out.append(("ceased, year ending March 2016", abs(r["pct_error"]) <= 5.0,
                    f"{r['q50']:,.0f} vs DfE {r['observed']:,.0f} ({r['pct_error']:+.1f}%, tol 5%)"))
    return out


def series_table(m: pd.DataFrame) -> pd.DataFrame:
    """Per observed series (2015-2024): years matched, mean and largest absolute % error of the median."""
    d = m[(m["la"] == area_of(m)) & m["year"].between(2015, 2024)]
    g = d.groupby(["measure", "scheme", "category", "age_band", "uasc"])
    return g.agg(years=("year", "size"), mean_abs_pct=("pct_error", lambda x: np.mean(np.abs(x))),
                 max_abs_pct=("pct_error", lambda x: np.max(np.abs(x)))).reset_index()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_folder")
    a = ap.parse_args(argv)
    path = Path(a.run_folder) / "summary.csv"
    if not path.is_file():
        print(f"caresim report: error: {path}: file not found", file=sys.stderr)
        return 2
    m = matched(pd.read_csv(path, keep_default_na=False))
    results = checks(m)
    for name, ok, text in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {text}")
    print(f"\n{sum(ok for _, ok, _ in results)}/{len(results)} checks pass\n")
    from calibration.criteria import in_sample, score
    with pd.option_context("display.width", 160):  # issue 3's in-sample criteria, up to the last data year
        print(score(in_sample(pd.read_csv(path, keep_default_na=False))).round(2).to_string(index=False), "\n")
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print(series_table(m).round(1).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
