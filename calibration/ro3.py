"""Reconciling simulated costs with MHCLG RO3 net current expenditure, line by line (DESIGN §2, Costs).

One concept: the RO3 lines of ``calibration/data/dfe/national_spend.csv`` (England, GBP thousand, cash) against
the cost rows of a run (``sim/observe.cost_rows``: cash cost per financial year by model category).

Mapping (``MAPPING``; documented in docs/CALIBRATION.md, "Costs and RO3 reconciliation"). Every model state's
cost goes to exactly one RO3 line; ``state_lines()`` checks that the table is a partition of the states in
``agents/states.csv`` and that states sharing a model category (the grouping of the cost rows) or a DfE
placement category (the grouping of the child-year denominators) share a line. Children-looked-after lines:
  * 16 ``cla_residential_care``  <- RESIDENTIAL_HOME, RESIDENTIAL_OTHER (x a price level fitted on 2022-23);
  * 17 ``cla_fostering_services`` <- FOSTER (in-house and agency), KINSHIP (x a price level fitted on 2022-23);
  * 18 ``cla_asylum_seeking_children`` <- a per-UASC-child-year component only (``cost.ro3.uasc_per_child_year``,
    RO3 2022-23 / DfE UASC child-years 2022-23): UASC children's placements are costed by their states;
  * 19 ``cla_other`` <- SEMI_INDEPENDENT, INDEPENDENT_LIVING, PLACED_WITH_PARENTS, PLACED_FOR_ADOPTION,
    OTHER_IN_CARE, KINSHIP_ORDER, plus a per-CLA-child-year component for what no state costs (child's social
    work, reviews, leaving-care and adoption services...: ``cost.ro3.other_cla_per_child_year``, fitted on
    2022-23);
  * 13 ``cla_total`` = 16 + 17 + 18 + 19.
Outside the children-looked-after lines (shown for information, not reconciled: those lines pay for much that
the model does not cost): AT_HOME and EDGE_OF_CARE casework -> 25 ``safeguarding_services``; RETURNED_HOME
support -> 22 ``family_support_services``.

What is fitted on 2022-23 (financial year ending March 2023) is price, never volume: each placement line's
simulated cost per child-year is scaled to RO3 line / DfE child-years of the line's placements
(``cost.ro3.price_level.<line>``), and the components are GBP per DfE child-year. Child-years are the mean of
the two 31 March stocks bounding the financial year, for DfE and simulated children alike (the published data
have stocks, not child-days). The simulated line is then price x simulated volume, so the fit-year error is
the simulated volume's error, and 2023-24 tests volume and the labelled inflation path (components grow with
each replicate's ``cost.inflation.annual``, read off its cash / real cost rows). Nothing is tuned to 2023-24.

Entry point: ``python -m calibration.ro3 RUN_FOLDER [--fit]`` prints the table for a folder written by
``caresim run`` and writes ``ro3_reconciliation.csv`` into it (temporary file + rename); ``--fit`` also prints
the 2022-23 fit of the calibrated rows against their register values.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from agents import states as S
from calibration import dfe

SPEND_FILE = "national_spend.csv"
SPEND_LABEL = f"calibration/data/dfe/{SPEND_FILE}"
SPEND_COLUMNS = ("financial_year", "year_ending_march", "line", "ro3_service_code", "line_label",
                 "expenditure_type", "value_gbp_thousand", "source_type")
MEASURE = "net_current_expenditure"   # RO3 column C7 = gross expenditure - income
FIT_YEAR, TEST_YEAR = 2023, 2024      # financial years ending March: 2022-23 (fit), 2023-24 (test)
YEARS = (FIT_YEAR, TEST_YEAR)
TOLERANCE = 0.10                      # the issue's +-10% for every reconciled line
OUT_FILE = "ro3_reconciliation.csv"

TOTAL = "cla_total"
RESIDENTIAL, FOSTERING, UASC, OTHER = ("cla_residential_care", "cla_fostering_services",
                                       "cla_asylum_seeking_children", "cla_other")
SAFEGUARDING, FAMILY_SUPPORT = "safeguarding_services", "family_support_services"
CLA_LINES = (RESIDENTIAL, FOSTERING, UASC, OTHER)       # the four sub-lines of RO3 line 13
INFO_LINES = (SAFEGUARDING, FAMILY_SUPPORT)             # shown, not reconciled
PRICE_LEVEL = "cost.ro3.price_level."                   # + line, for the placement lines 16 and 17
UASC_COMPONENT = "cost.ro3.uasc_per_child_year"
OTHER_COMPONENT = "cost.ro3.other_cla_per_child_year"
PLACEMENT_LINES = (RESIDENTIAL, FOSTERING)

# state -> RO3 line, with the reason (RO3 guidance is not in the shared data: the reasons say what each rests on)
MAPPING: tuple[tuple[str, str, str], ...] = (
    ("AT_HOME", SAFEGUARDING,
     "child-in-need casework is social work, assumed booked under safeguarding services (line 25), which also "
     "pays for referral, assessment and child protection teams the model does not cost: shown, not reconciled"),
    ("EDGE_OF_CARE", SAFEGUARDING,
     "child protection plan casework (conferences, core groups, visits): safeguarding services (line 25); "
     "shown, not reconciled"),
    ("KINSHIP", FOSTERING,
     "kinship foster carers are approved foster carers paid fostering allowances: fostering services"),
    ("FOSTER", FOSTERING,
     "in-house and independent-agency foster placements: fostering services"),
    ("RESIDENTIAL_HOME", RESIDENTIAL,
     "secure units and children's homes: residential care (DfE README caveat 3: RO3 residential care covers all "
     "residential placements incl. secure and specialist)"),
    ("RESIDENTIAL_OTHER", RESIDENTIAL,
     "other residential settings and residential schools: residential care (as above)"),
    ("SEMI_INDEPENDENT", OTHER,
     "supported accommodation is not residential care: NAO's council spend on children's residential care, "
     "GBP 3.1bn in 2023-24 (evidence.csv unit_costs), is RO3 line 16 (GBP 3,121m), and NAO's GBP 318,400 per "
     "children's home place x about 8,400 children in secure and children's homes already makes about 85% of it, "
     "leaving no room for about 7,000 children in supported accommodation; so 'of which other' (line 19)"),
    ("INDEPENDENT_LIVING", OTHER,
     "independent living (P2/P3: rent, allowance, personal adviser) is not residential care: line 19 (as "
     "SEMI_INDEPENDENT, with which it shares the model category 'supported')"),
    ("PLACED_WITH_PARENTS", OTHER,
     "social work for a looked-after child living at home: neither residential nor fostering, so line 19"),
    ("PLACED_FOR_ADOPTION", OTHER,
     "support while placed with prospective adopters: adoption services are CLA spending outside residential "
     "and fostering, so line 19"),
    ("OTHER_IN_CARE", OTHER,
     "other placements (Z1; from October 2023 also semi-independent arrangements that could not be coded, DfE "
     "README): assumed booked with supported accommodation, line 19 (GBP 50m a year in the model)"),
    ("RETURNED_HOME", FAMILY_SUPPORT,
     "support after return home: the child is no longer looked after; family support services (line 22); "
     "shown, not reconciled"),
    ("KINSHIP_ORDER", OTHER,
     "special guardianship / child arrangements order allowances and support: assumed in RO3 line 19, as the "
     "DfE section 251 return lists special guardianship support in its children-looked-after block (the RO3 and "
     "s251 guidance are not in the shared data: assumption)"),
)
COMPONENTS: dict[str, str] = {
    UASC: f"{UASC_COMPONENT} x simulated UASC child-years: every cost of unaccompanied children beyond their "
          f"placement costs (costed by their states), as RO3 reports it",
    OTHER: f"{OTHER_COMPONENT} x simulated CLA child-years: children-looked-after spending that no state costs "
           f"(the child's social worker and reviews, leaving-care and adoption services, education of CLA...)",
}


class RO3Error(ValueError):
    """The spend file, a run folder or the mapping is malformed; the message names the file, field and value."""


@dataclass(frozen=True)
class Line:
    key: str
    code: int
    label: str
    reconciled: bool


LINES: dict[str, Line] = {
    RESIDENTIAL: Line(RESIDENTIAL, 16, "of which residential care", True),
    FOSTERING: Line(FOSTERING, 17, "of which fostering services", True),
    UASC: Line(UASC, 18, "of which asylum seeking children who are looked after", True),
    OTHER: Line(OTHER, 19, "of which other", True),
    TOTAL: Line(TOTAL, 13, "Children Looked After (total)", True),
    SAFEGUARDING: Line(SAFEGUARDING, 25, "Safeguarding children and young people's services", False),
    FAMILY_SUPPORT: Line(FAMILY_SUPPORT, 22, "Family Support Services", False),
}


# ---- the mapping -----------------------------------------------------------------------------------------------
def state_lines(mapping=MAPPING, states=S.STATES) -> dict[str, str]:
    """State name -> RO3 line, checked to be a partition of the model's states (each in exactly one line)."""
    names = [st.name for st in states]
    seen: dict[str, str] = {}
    for state, line, _ in mapping:
        if state not in names:
            raise RO3Error(f"calibration/ro3.py MAPPING: state {state!r} is not in agents/states.csv")
        if line not in LINES or line == TOTAL:
            raise RO3Error(f"calibration/ro3.py MAPPING: state {state!r} maps to {line!r}, not an RO3 sub-line "
                           f"({', '.join(k for k in LINES if k != TOTAL)})")
        if state in seen:
            raise RO3Error(f"calibration/ro3.py MAPPING: state {state!r} maps to both {seen[state]!r} and "
                           f"{line!r} (double counting)")
        seen[state] = line
    if missing := [n for n in names if n not in seen]:
        raise RO3Error(f"calibration/ro3.py MAPPING: state(s) {missing} map to no RO3 line")
    for column in ("model_category", "dfe_current"):
        by_group: dict[str, set[str]] = {}
        for st in states:
            if column == "dfe_current" and not st.in_care:
                continue
            by_group.setdefault(getattr(st, column), set()).add(seen[st.name])
        if split := {g: sorted(ls) for g, ls in by_group.items() if len(ls) > 1}:
            raise RO3Error(f"calibration/ro3.py MAPPING: {column} group(s) {split} span several RO3 lines; the "
                           f"cost rows and child-year denominators are grouped by {column}")
    return seen


def line_categories(line: str, column: str = "model_category", in_care_only: bool = False,
                    states=S.STATES) -> list[str]:
    """The model (or DfE current-scheme) categories of the states mapped to ``line``, in state order."""
    lines = state_lines(states=states)
    out: list[str] = []
    for st in states:
        if lines[st.name] == line and (st.in_care or not in_care_only):
            cat = getattr(st, column)
            if cat not in out:
                out.append(cat)
    return out


def mapping_table() -> pd.DataFrame:
    """The documented mapping, one row per state and component."""
    state_lines()
    rows = [{"state": s, "ro3_line": line, "ro3_code": LINES[line].code, "reconciled": LINES[line].reconciled,
             "reason": why} for s, line, why in MAPPING]
    rows += [{"state": f"(component) {c.split(' x ')[0]}", "ro3_line": line, "ro3_code": LINES[line].code,
              "reconciled": True, "reason": c} for line, c in COMPONENTS.items()]
    return pd.DataFrame(rows)


# ---- observed: RO3 lines and DfE child-years ---------------------------------------------------------------------
def read_spend(path: str | Path | None = None) -> pd.DataFrame:
    """The primary RO3 rows of national_spend.csv, checked: net current expenditure of every line this module
    needs, for 2022-23 and 2023-24, as plain numbers (GBP thousand). Errors name file, row, field and value."""
    if path is None:
        node = resources.files("calibration").joinpath("data", "dfe", SPEND_FILE)
        label = SPEND_LABEL
        if not node.is_file():
            raise RO3Error(f"{label}: file not found")
        opener = node.open
    else:
        label = str(path)
        if not Path(path).is_file():
            raise RO3Error(f"{label}: file not found")
        opener = Path(path).open
    try:
        with opener("r", encoding="utf-8") as fh:
            df = pd.read_csv(fh, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several parser errors
        raise RO3Error(f"{label}: cannot be parsed as CSV ({exc})") from None
    if missing := [c for c in SPEND_COLUMNS if c not in df.columns]:
        raise RO3Error(f"{label}: missing column(s) {missing}")
    prim = df[(df["source_type"] == "primary") & (df["expenditure_type"] == MEASURE)]
    rows = []
    for year in YEARS:
        for key, line in LINES.items():
            hit = prim[(prim["year_ending_march"] == str(year)) & (prim["line"] == key)]
            where = f"{label}: year_ending_march {year}, line {key!r}, expenditure_type {MEASURE!r}"
            if hit.empty:
                raise RO3Error(f"{where}: no primary row (field 'line': {key!r} not found)")
            if len(hit) > 1:
                raise RO3Error(f"{where}: {len(hit)} rows, expected one")
            i = hit.index[0]
            raw = hit.at[i, "value_gbp_thousand"]
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if not np.isfinite(value) or value < 0:
                raise RO3Error(f"{label}: row {i + 2}, field 'value_gbp_thousand': {raw!r} is not a number >= 0 "
                               f"(line {key!r}, {year})")
            code = hit.at[i, "ro3_service_code"]
            if code.strip() and float(code) != line.code:
                raise RO3Error(f"{label}: row {i + 2}, field 'ro3_service_code': {code!r}, expected {line.code} "
                               f"for line {key!r}")
            rows.append({"year": year, "line": key, "gbp": value * 1000.0,
                         "financial_year": hit.at[i, "financial_year"]})
    return pd.DataFrame(rows)


def observed_lines(spend: pd.DataFrame | None = None) -> dict[tuple[str, int], float]:
    """(line, financial year ending March) -> RO3 net current expenditure, GBP."""
    spend = read_spend() if spend is None else spend
    return {(r.line, int(r.year)): float(r.gbp) for r in spend.itertuples()}


def observed_child_years() -> dict[tuple[str, int], float]:
    """DfE child-years by financial year: mean of the 31 March stocks bounding it, for the CLA total ("cla"),
    UASC ("uasc") and each current-scheme placement category (other_residential includes residential_schools,
    as in sim/observe.py)."""
    c = dfe.read("national_cla_31mar.csv")
    stocks: dict[tuple[str, int], float] = {}
    pick = {"cla": (c["measure"] == "total") & (c["category"] == "total"),
            "uasc": (c["measure"] == "uasc") & (c["category"] == "uasc")}
    for key, m in pick.items():
        for r in c[m].itertuples():
            stocks[(key, int(r.year))] = float(r.value)
    place = c[(c["measure"] == "placement") & (c["scheme"] == "current")]
    parts = {"other_residential": ("other_residential", "residential_schools")}
    for st in S.STATES:
        if not st.in_care:
            continue
        cat = st.dfe_current
        for year, g in place.groupby("year"):
            vals = g.set_index("category")["value"]
            raw = parts.get(cat, (cat,))
            if all(p in vals.index and np.isfinite(vals[p]) for p in raw):
                stocks[(cat, int(year))] = float(sum(vals[p] for p in raw))
    out = {}
    for (key, year) in list(stocks):
        if (key, year - 1) in stocks:
            out[(key, year)] = 0.5 * (stocks[(key, year - 1)] + stocks[(key, year)])
    for key in ("cla", "uasc"):
        for y in YEARS:
            if (key, y) not in out:
                raise RO3Error(f"calibration/data/dfe/national_cla_31mar.csv: no {key} stocks at 31 March {y - 1} "
                               f"and {y} (child-years of the financial year ending March {y})")
    return out


def observed_line_child_years(line: str, year: int, dfe_cy: Mapping[tuple[str, int], float]) -> float:
    """DfE child-years of the in-care placements mapped to a line (the CLA total for line 19 and the total,
    UASC for line 18)."""
    if line in (OTHER, TOTAL):
        return dfe_cy[("cla", year)]
    if line == UASC:
        return dfe_cy[("uasc", year)]
    cats = line_categories(line, "dfe_current", in_care_only=True)
    try:
        return float(sum(dfe_cy[(c, year)] for c in cats))
    except KeyError as exc:
        raise RO3Error(f"calibration/data/dfe/national_cla_31mar.csv: no current-scheme placement stock "
                       f"{exc.args[0]} for line {line!r}") from None


# ---- simulated: per-replicate quantities from tidy rows ----------------------------------------------------------
def quantities(df: pd.DataFrame) -> pd.DataFrame:
    """Per replicate and financial year (2023, 2024), from tidy rows (``sim.observe.tidy`` / replicates.parquet):
    ``cost:<model category>`` (GBP cash), ``cy:<model category>``, ``cy:cla``, ``cy:uasc`` (child-years: mean of
    the 31 March stocks bounding the year) and ``inflation`` (cash / base-year prices, so each replicate's own
    ``cost.inflation.annual``). England rows only."""
    need = {"replicate", "draw", "year", "measure", "scheme", "category", "age_band", "uasc", "la", "value"}
    if missing := sorted(need - set(df.columns)):
        raise RO3Error(f"run rows: missing column(s) {missing}")
    d = df[df["la"] == "ENG"]
    if d.empty:
        raise RO3Error(f"run rows: field 'la': no England ('ENG') rows (found {sorted(set(df['la']))[:5]}); RO3 "
                       f"lines are England totals, so a local-authority run cannot be reconciled with them")
    if "scenario" in d and d["scenario"].nunique() > 1:
        raise RO3Error(f"run rows: field 'scenario': several scenarios {sorted(set(d['scenario']))}; pass one")
    idx = ["replicate", "draw", "year"]
    real_measures = sorted(m for m in set(d["measure"]) if m.startswith("cost_gbp_") and m != "cost_gbp_cash")
    if "cost_gbp_cash" not in set(d["measure"]) or len(real_measures) != 1:
        found = sorted(m for m in set(d["measure"]) if m.startswith("cost"))
        raise RO3Error("run rows: field 'measure': expected 'cost_gbp_cash' and one 'cost_gbp_<price year>' "
                       f"measure (a run priced with unit costs), found {found}")
    cost = d[(d["measure"] == "cost_gbp_cash") & (d["scheme"] == "model")]
    real = d[(d["measure"] == real_measures[0]) & (d["scheme"] == "model") & (d["category"] == "total")]
    nat = (d["age_band"] == "all") & (d["uasc"] == "all")
    cla = d[(d["measure"] == "cla_31mar") & (d["scheme"] == "model") & nat]
    uasc = d[(d["measure"] == "uasc_31mar") & (d["category"] == "total")]

    def wide(rows: pd.DataFrame, prefix: str) -> pd.DataFrame:
        w = rows.pivot_table(index=idx, columns="category", values="value", aggfunc="first")
        return w.add_prefix(prefix)

    stocks = wide(cla, "cy:").join(wide(uasc.assign(category="uasc"), "cy:"), how="outer")
    stocks = stocks.rename(columns={"cy:total": "cy:cla"})
    for y in (FIT_YEAR - 1,) + YEARS:
        if y not in set(stocks.index.get_level_values("year")):
            raise RO3Error(f"run rows: field 'year': no 31 March {y} stocks; the reconciliation needs 31 March "
                           f"{FIT_YEAR - 1}-{TEST_YEAR} and costs for the years ending March {FIT_YEAR} and "
                           f"{TEST_YEAR} (run with --end-year {TEST_YEAR} or later)")
    parts = []
    for y in YEARS:
        a = stocks.xs(y - 1, level="year")
        b = stocks.xs(y, level="year")
        cy = (0.5 * (a + b)).assign(year=y).set_index("year", append=True)
        parts.append(cy)
    out = pd.concat(parts).join(wide(cost, "cost:"), how="left")
    cash_total = out["cost:total"]
    real_total = real.set_index(idx)["value"].reindex(out.index)
    if out.filter(like="cost:").isna().any().any() or real_total.isna().any():
        raise RO3Error(f"run rows: no cost rows for some replicate in the years ending March {FIT_YEAR}-{TEST_YEAR}")
    if (real_total <= 0).any():
        raise RO3Error("run rows: base-year cost total is 0 for some replicate; the inflation path cannot be read")
    out["inflation"] = cash_total / real_total
    return out.sort_index()


def child_years_from_result(res) -> pd.DataFrame:
    """Exact child-years by financial year (ending March, from 2016), state and provider from the kernel's
    child-months (``Result.cm``), England-equivalent (/ ``Result.scale``). The reconciliation itself uses 31 March
    stocks, as DfE publishes them; this is the check on that approximation (and what sim/observe.py could
    publish as a ``child_years`` measure)."""
    cm = np.asarray(res.cm)
    n_years = int(np.asarray(res.years).size) - 1
    if cm.ndim != 4 or cm.shape[0] != 12 * n_years + 1:
        raise RO3Error(f"Result.cm: shape {cm.shape}, expected [12 x {n_years} months + 1, state, provider, need]")
    by = cm[1:].reshape(n_years, 12, *cm.shape[1:]).sum(axis=(1, 4)) / 12.0 / float(res.scale)
    years = np.asarray(res.years)[1:]
    rows = [{"year": int(y), "state": S.STATES[s].name, "provider": p, "child_years": float(by[i, s, j])}
            for i, y in enumerate(years) for s in range(by.shape[1]) for j, p in enumerate(("la", "independent"))]
    return pd.DataFrame(rows)


# ---- fit (2022-23) and reconciliation ----------------------------------------------------------------------------
def _line_cost(q: pd.DataFrame, line: str) -> pd.Series:
    return sum(q[f"cost:{c}"] for c in line_categories(line))


def _line_cy(q: pd.DataFrame, line: str) -> pd.Series:
    """Simulated child-years of the in-care placements mapped to a line (CLA for line 19, UASC for 18)."""
    if line in (OTHER, TOTAL):
        return q["cy:cla"]
    if line == UASC:
        return q["cy:uasc"]
    return sum(q[f"cy:{c}"] for c in line_categories(line, in_care_only=True))


def fit(q: pd.DataFrame, spend: pd.DataFrame | None = None) -> dict[str, float]:
    """The 2022-23 fit of the calibrated and derived RO3 rows (prices only; medians over replicates):

    * ``cost.ro3.price_level.<line>`` (lines 16, 17) = (RO3 line / DfE child-years of its placements) /
      median simulated cost per simulated child-year of the same placements;
    * ``cost.ro3.uasc_per_child_year`` = RO3 line 18 / DfE UASC child-years (GBP, 2022-23 cash);
    * ``cost.ro3.other_cla_per_child_year`` = (RO3 line 19 - line 19's state costs at DfE volumes) / DfE CLA
      child-years (GBP, 2022-23 cash); state costs at DfE volumes = median simulated cost per child-year of its
      in-care placements x their DfE child-years, plus the simulated KINSHIP_ORDER allowances (no DfE count).
    """
    obs = observed_lines(spend)
    dfe_cy = observed_child_years()
    qf = q.xs(FIT_YEAR, level="year")
    out: dict[str, float] = {}
    for line in PLACEMENT_LINES:
        sim_price = float((_line_cost(qf, line) / _line_cy(qf, line)).median())
        obs_price = obs[(line, FIT_YEAR)] / observed_line_child_years(line, FIT_YEAR, dfe_cy)
        out[PRICE_LEVEL + line] = obs_price / sim_price
    out[UASC_COMPONENT] = obs[(UASC, FIT_YEAR)] / dfe_cy[("uasc", FIT_YEAR)]
    care = line_categories(OTHER, in_care_only=True)
    rest = [c for c in line_categories(OTHER) if c not in care]
    care_price = float((sum(qf[f"cost:{c}"] for c in care) / sum(qf[f"cy:{c}"] for c in care)).median())
    care_dfe = sum(dfe_cy[(c, FIT_YEAR)] for c in line_categories(OTHER, "dfe_current", in_care_only=True))
    rest_cost = float(sum(qf[f"cost:{c}"] for c in rest).median()) if rest else 0.0
    out[OTHER_COMPONENT] = (obs[(OTHER, FIT_YEAR)] - care_price * care_dfe - rest_cost) / dfe_cy[("cla", FIT_YEAR)]
    return out


def register_values(params: Mapping[str, float] | None = None) -> dict[str, float]:
    """The RO3 rows of the parameter register (or of ``params``), with a clear error if one is missing."""
    if params is None:
        from calibration.parameters import base_parameters
        params = base_parameters()
    names = [PRICE_LEVEL + line for line in PLACEMENT_LINES] + [UASC_COMPONENT, OTHER_COMPONENT]
    if missing := [n for n in names if n not in params]:
        raise RO3Error(f"parameters: missing {missing}; add them to calibration/parameter_register.csv")
    return {n: float(params[n]) for n in names}


def simulated_lines(q: pd.DataFrame, values: Mapping[str, float]) -> pd.DataFrame:
    """Per replicate and year: every RO3 line this module forms (GBP cash)."""
    growth = q["inflation"] / q["inflation"].xs(FIT_YEAR, level="year").reindex(
        q.index.droplevel("year")).to_numpy()                        # (1 + inflation) ** (year - 2023)
    lines = pd.DataFrame(index=q.index)
    for line in PLACEMENT_LINES:
        lines[line] = values[PRICE_LEVEL + line] * _line_cost(q, line)
    lines[UASC] = values[UASC_COMPONENT] * growth * q["cy:uasc"]
    lines[OTHER] = _line_cost(q, OTHER) + values[OTHER_COMPONENT] * growth * q["cy:cla"]
    lines[TOTAL] = lines[list(CLA_LINES)].sum(axis=1)
    for line in INFO_LINES:
        lines[line] = _line_cost(q, line)
    return lines


def reconcile(q: pd.DataFrame, params: Mapping[str, float] | None = None,
              spend: pd.DataFrame | None = None) -> pd.DataFrame:
    """The line-by-line table: RO3 line, observed (GBP m), simulated median and 90% band, error, fit/test year,
    within +-10%, and the child-years and cost per child-year behind each line (DfE vs simulated)."""
    values = register_values(params)
    spend = read_spend() if spend is None else spend
    obs = observed_lines(spend)
    fy = {(r.line, int(r.year)): r.financial_year for r in spend.itertuples()}
    dfe_cy = observed_child_years()
    sim = simulated_lines(q, values)
    rows = []
    for year in YEARS:
        gap = obs[(TOTAL, year)] - sum(obs[(k, year)] for k in CLA_LINES)   # line 13 less its four sub-lines
        s = sim.xs(year, level="year")
        qy = q.xs(year, level="year")
        for key in (RESIDENTIAL, FOSTERING, UASC, OTHER, TOTAL) + INFO_LINES:
            line = LINES[key]
            v = s[key].to_numpy(dtype=float)
            o = obs[(key, year)]
            med, lo, hi = (float(np.quantile(v, p)) for p in (0.5, 0.05, 0.95))
            err = med / o - 1.0
            if line.reconciled:
                cy_obs = observed_line_child_years(key, year, dfe_cy)
                cy_sim = float(_line_cy(qy, key).median())
                price_sim = float((s[key] / _line_cy(qy, key)).median())
                price_obs = o / cy_obs
            else:
                cy_obs = cy_sim = price_sim = price_obs = float("nan")
            rows.append({
                "line": key, "ro3_code": line.code, "label": line.label,
                "financial_year": fy.get((key, year), f"{year - 1}-{year % 100:02d}"),
                "role": "fit" if year == FIT_YEAR else "test",
                "observed_gbp_m": o / 1e6, "sim_median_gbp_m": med / 1e6, "sim_q05_gbp_m": lo / 1e6,
                "sim_q95_gbp_m": hi / 1e6, "error_pct": 100.0 * err,
                "within_10pct": ("yes" if abs(err) <= TOLERANCE else "no") if line.reconciled else "not reconciled",
                "band_covers": bool(lo <= o <= hi),
                "child_years_dfe": cy_obs, "child_years_sim": cy_sim,
                "gbp_k_per_child_year_ro3": price_obs / 1e3, "gbp_k_per_child_year_sim": price_sim / 1e3,
                "price_error_pct": 100.0 * (price_sim / price_obs - 1.0) if line.reconciled else float("nan"),
                "replicates": int(v.size), "note": _note(key, gap),
            })
    return pd.DataFrame(rows)


def _note(line: str, gap: float) -> str:
    notes = {
        RESIDENTIAL: "price level fitted on 2022-23; x simulated placement costs",
        FOSTERING: "price level fitted on 2022-23; x simulated placement costs",
        UASC: "GBP per UASC child-year from RO3 2022-23 x inflation path x simulated UASC child-years",
        OTHER: "state costs + GBP per CLA child-year fitted on 2022-23 x inflation path",
        TOTAL: "sum of lines 16-19",
        SAFEGUARDING: "CIN + CPP casework only; line also pays for teams the model does not cost",
        FAMILY_SUPPORT: "returned-home support only; line also pays for services the model does not cost",
    }
    out = notes[line]
    if abs(gap) > 1e7 and line in CLA_LINES + (TOTAL,):  # RO3 2023-24 first release: London sub-lines not grossed
        out += f"; RO3 sub-lines 16-19 sum GBP {gap / 1e6:,.0f}m below line 13 this year (national_spend.csv note)"
    return out


# ---- run folders ---------------------------------------------------------------------------------------------------
def read_run(folder: str | Path) -> pd.DataFrame:
    """The tidy replicate rows of a run folder written by ``caresim run``."""
    folder = Path(folder)
    path = folder / "replicates.parquet"
    if not folder.is_dir():
        raise RO3Error(f"{folder}: run folder not found")
    if not path.is_file():
        raise RO3Error(f"{path}: file not found (a run folder from `caresim run` has replicates.parquet)")
    man = folder / "manifest.json"
    if man.is_file():
        try:
            info = json.loads(man.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise RO3Error(f"{man}: not valid JSON ({exc})") from None
        if (end := info.get("end_year")) is not None and int(end) < TEST_YEAR:
            raise RO3Error(f"{man}: field 'end_year': {end}; the reconciliation needs runs to {TEST_YEAR} or later")
    return pd.read_parquet(path)


def write_table(table: pd.DataFrame, folder: str | Path) -> Path:
    """Write the table to ``folder/ro3_reconciliation.csv`` atomically (temporary file, then rename)."""
    out = Path(folder) / OUT_FILE
    tmp = out.with_name(f".{OUT_FILE}.tmp-{os.getpid()}")
    try:
        table.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6g")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def format_table(table: pd.DataFrame) -> str:
    """The table as aligned text (GBP m; child-years; GBP thousand per child-year; %)."""
    head = (f"{'RO3 line':<32}{'year':>8}{'role':>5}{'RO3 £m':>8}{'sim £m':>8}{'sim 90% band':>14}{'error':>8}"
            f"{'±10%':>5}{'cy DfE':>8}{'cy sim':>8}{'£k/cy RO3':>10}{'£k/cy sim':>10}{'price err':>10}")
    lines = [head]
    for r in table.itertuples():
        within = r.within_10pct if r.within_10pct in ("yes", "no") else "info"
        cy = (f"{r.child_years_dfe:>8,.0f}{r.child_years_sim:>8,.0f}{r.gbp_k_per_child_year_ro3:>10,.1f}"
              f"{r.gbp_k_per_child_year_sim:>10,.1f}{r.price_error_pct:>+9.1f}%") \
            if np.isfinite(r.child_years_dfe) else ""
        lines.append(f"{f'{r.ro3_code} {r.line}':<32}{r.financial_year:>8}{r.role:>5}{r.observed_gbp_m:>8,.0f}"
                     f"{r.sim_median_gbp_m:>8,.0f}{f'{r.sim_q05_gbp_m:,.0f}-{r.sim_q95_gbp_m:,.0f}':>14}"
                     f"{r.error_pct:>+7.1f}%{within:>5}{cy}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m calibration.ro3",
                                 description="Reconcile a run's costs with MHCLG RO3 net current expenditure "
                                             "(fit 2022-23, test 2023-24); writes ro3_reconciliation.csv into the "
                                             "run folder.")
    ap.add_argument("run_folder", help="a folder written by `caresim run` (run to 2024 or later)")
    ap.add_argument("--fit", action="store_true",
                    help="also print the 2022-23 fit of the RO3 register rows from this run")
    args = ap.parse_args(argv)
    try:
        q = quantities(read_run(args.run_folder))
        spend = read_spend()
        table = reconcile(q, spend=spend)
        out = write_table(table, args.run_folder)
    except (RO3Error, dfe.DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(table))
    print(f"\nwritten: {out}")
    if args.fit:
        reg = register_values()
        print("\n2022-23 fit from this run (register value in brackets):")
        for k, v in fit(q, spend).items():
            print(f"  {k} = {v:.6g}  ({reg[k]:.6g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
