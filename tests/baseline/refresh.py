"""The baseline regression run: a small fixed run whose summary is stored in ``tests/baseline/summary.csv``.

Refresh deliberately, after an intended model change, with:  ``python -m tests.baseline.refresh``
(the diff of summary.csv is then part of the commit and should be explained in it).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from sim.runner import run_scenario, summarise

HERE = Path(__file__).parent
STORED = HERE / "summary.csv"
SCENARIO = HERE.parents[1] / "runs" / "scenarios" / "status_quo.toml"
SETTINGS = dict(replicates=2, seed=12345, end_year=2019, scale=0.02, workers=1, threads=1, progress=False)
MEASURES = ("cla_31mar", "cin_31mar", "cpp_31mar", "uasc_31mar", "started", "ceased", "cpp_started",
            "cost_gbp_2023_24")


def current() -> pd.DataFrame:
    """The baseline summary as the code produces it now (selected measures, stable row order)."""
    df, _ = run_scenario(SCENARIO, **SETTINGS)
    s = summarise(df[df["measure"].isin(MEASURES)])
    keys = ["measure", "scheme", "category", "age_band", "uasc", "la", "year"]
    return s[keys + ["mean", "q50"]].sort_values(keys).reset_index(drop=True)


def main() -> None:
    s = current()
    s.to_csv(STORED, index=False, float_format="%.6f")
    print(f"wrote {STORED} ({len(s)} rows)")


if __name__ == "__main__":
    main()
