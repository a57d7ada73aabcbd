"""In-sample acceptance criteria of a calibration (issue 3): the run's medians against DfE, year by year.

``in_sample(summary)`` gives one row per check and year: CLA total within 2% (2015..fit_until), placement shares
(both schemes; from 2024, when DfE recoded "other placements", the categories inside the 2024 grouping
are compared through the grouping only) and age-band shares of CLA within 2 percentage points, starts and
cessations within 5% (2016..fit_until), CIN and CPP at 31 March within 5% (2015..fit_until); and issue 4's
residential check (secure and children's homes 2020-2023, the 2024 residential/semi-independent/other grouping,
within 5%).
``score(table)`` condenses it to one row per check.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from calibration.report import matched
from sim.observe import ALL, CURRENT, GROUP_2024, GROUP_2024_CATEGORIES, OLD, RECODED_YEAR, TOTAL, area_of

FIRST_STOCK, FIRST_FLOW = 2015, 2016  # the initial stock is 31 March 2015; flows are for years ending March 2016+
COLUMNS = ["check", "year", "scheme", "category", "age_band", "observed", "simulated", "error", "unit",
           "tolerance", "passed"]
# check name -> (measure, first year, tolerance in %) for the level checks on national totals
LEVELS = {"CLA total": ("cla_31mar", FIRST_STOCK, 2.0), "starts": ("started", FIRST_FLOW, 5.0),
          "ceased": ("ceased", FIRST_FLOW, 5.0), "CIN at 31 March": ("cin_31mar", FIRST_STOCK, 5.0),
          "CPP at 31 March": ("cpp_31mar", FIRST_STOCK, 5.0)}
SHARE_TOLERANCE = 2.0  # percentage points
# issue 4's residential check (DESIGN §2 Capacity): secure and children's homes 2020-2023 and, from the 2024
# recoding, the grouping of residential, semi-independent and other placements, each within 5% of DfE
RESIDENTIAL_CHECK = "residential (capacity)"
RESIDENTIAL_TOLERANCE = 5.0
RECODED = set(GROUP_2024_CATEGORIES)  # current-scheme categories inside the grouping


def _levels(m: pd.DataFrame, fit_until: int) -> list[pd.DataFrame]:
    """National totals (scheme dfe_current, all ages and UASC groups): percent error of the median."""
    out = []
    for check, (measure, first, tol) in LEVELS.items():
        d = m[(m["measure"] == measure) & (m["scheme"] == CURRENT) & (m["category"] == TOTAL)
              & (m["age_band"] == ALL) & m["year"].between(first, fit_until)]
        out.append(pd.DataFrame({"check": check, "year": d["year"], "scheme": d["scheme"],
                                 "category": d["category"], "age_band": d["age_band"], "observed": d["observed"],
                                 "simulated": d["q50"], "error": d["pct_error"], "unit": "%", "tolerance": tol}))
    return out


def _residential(m: pd.DataFrame, fit_until: int) -> pd.DataFrame:
    """Secure and children's homes 2020-2023 and the 2024 grouping: percent error of the median."""
    cla = m[(m["measure"] == "cla_31mar") & (m["scheme"] == CURRENT) & (m["age_band"] == ALL)]
    d = cla[((cla["category"] == "secure_childrens_homes") & cla["year"].between(2020, min(2023, fit_until)))
            | ((cla["category"] == GROUP_2024) & (cla["year"] == RECODED_YEAR)
               & (cla["year"] <= fit_until))].sort_values("year")
    return pd.DataFrame({"check": RESIDENTIAL_CHECK, "year": d["year"], "scheme": d["scheme"],
                         "category": d["category"], "age_band": d["age_band"], "observed": d["observed"],
                         "simulated": d["q50"], "error": d["pct_error"], "unit": "%",
                         "tolerance": RESIDENTIAL_TOLERANCE})


def _shares(m: pd.DataFrame, parts: pd.DataFrame, check: str) -> pd.DataFrame:
    """Shares (in %) of ``parts`` in the CLA total of the same scheme and year: observed / observed total and
    q50 / q50 total; the error is the difference in percentage points."""
    tot = m[(m["measure"] == "cla_31mar") & (m["category"] == TOTAL) & (m["age_band"] == ALL)]
    d = parts.merge(tot[["year", "scheme", "observed", "q50"]], on=["year", "scheme"], suffixes=("", "_total"))
    obs = 100 * d["observed"] / d["observed_total"]
    sim = 100 * d["q50"] / d["q50_total"]
    return pd.DataFrame({"check": check, "year": d["year"], "scheme": d["scheme"], "category": d["category"],
                         "age_band": d["age_band"], "observed": obs, "simulated": sim, "error": sim - obs,
                         "unit": "pp", "tolerance": SHARE_TOLERANCE})


def in_sample(summary: pd.DataFrame, fit_until: int = 2024, area: str | None = None) -> pd.DataFrame:
    """The in-sample checks of a run summary (``sim.runner.summarise``) against DfE, one row per check and year.

    Levels compare the median (q50) with DfE: error in % of DfE. Shares are computed from the medians
    (q50 of the category / q50 of the total of the same scheme), not as medians of per-replicate shares,
    and compared with DfE's share: error in percentage points. ``passed``: |error| <= tolerance.
    """
    area = area or area_of(summary)
    m = matched(summary, area)
    m = m[(m["la"] == area) & (m["uasc"] == ALL) & m["year"].between(FIRST_STOCK, fit_until)]
    cla = m[m["measure"] == "cla_31mar"]
    placements = cla[cla["scheme"].isin([OLD, CURRENT]) & (cla["category"] != TOTAL) & (cla["age_band"] == ALL)]
    recoded = (placements["scheme"] == CURRENT) & (placements["year"] >= RECODED_YEAR) & \
        placements["category"].isin(RECODED)
    placements = placements[~recoded]  # compared through the 2024 grouping instead
    ages = cla[(cla["scheme"] == CURRENT) & (cla["category"] == TOTAL) & (cla["age_band"] != ALL)]
    parts = _levels(m, fit_until)
    parts.insert(1, _shares(m, placements, "placement share"))
    parts.insert(2, _shares(m, ages, "age-band share"))
    parts.append(_residential(m, fit_until))
    t = pd.concat([p for p in parts if not p.empty] or [pd.DataFrame(columns=COLUMNS)], ignore_index=True)
    t["year"] = t["year"].astype(int)
    t["passed"] = (t["error"].abs() <= t["tolerance"]).astype(bool)  # a NaN error fails
    return t[COLUMNS].reset_index(drop=True)


def score(table: pd.DataFrame) -> pd.DataFrame:
    """Per check (in table order): rows, rows passed, and the worst (largest in magnitude, signed) error."""
    rows = []
    for check, g in table.groupby("check", sort=False):
        worst = g["error"].abs().idxmax() if g["error"].notna().any() else None
        rows.append({"check": check, "rows": len(g), "passed": int(g["passed"].sum()),
                     "worst_error": g.loc[worst, "error"] if worst is not None else np.nan,
                     "unit": g["unit"].iloc[0], "tolerance": g["tolerance"].iloc[0]})
    return pd.DataFrame(rows, columns=["check", "rows", "passed", "worst_error", "unit", "tolerance"])
