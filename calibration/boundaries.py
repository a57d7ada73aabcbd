"""Local authorities created after 2015, given series back to 2014 from their predecessors (DESIGN §5,
"Geography": earlier years' predecessor authorities mapped by population share).

The boundary changes are those of the data README (``calibration/data/dfe/README.md``, "LA boundary changes"):
Bournemouth, Poole and Dorset county -> Bournemouth, Christchurch and Poole and Dorset (from 2020 data);
Northamptonshire -> North and West Northamptonshire (2022); Cumbria -> Cumberland and Westmorland and Furness
(2024). Each change is a group: its predecessors' counts are summed and each successor is given its share of the
group's children 0-17 in the first year the successors are published (ONS mid-year, ``population_0_17.csv``).
Christchurch's part of Dorset county is not in the data, so the group, not each predecessor, is split.

A mapped count is an estimate, not a count of the successor's children: the share of a county's children in care
who lived in one part is not that part's share of its children (first common years: log ratio of care share to
population share -0.01 to +0.15 and -0.27 across the six successors). The local calibration fits that ratio
(``calibration/local.py``, coordinate ``mapping``, prior ``la.pool.mapping.sd``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from calibration import dfe

POP = "calibration/data/dfe/population_0_17.csv"


@dataclass(frozen=True)
class BoundaryChange:
    """Predecessor authorities whose area was re-divided into the successors (codes as in ``la_cla.csv``)."""
    predecessors: tuple[str, ...]
    successors: tuple[str, ...]


CHANGES = (
    BoundaryChange(("E06000028", "E06000029", "E10000009"), ("E06000058", "E06000059")),
    BoundaryChange(("E10000021",), ("E06000061", "E06000062")),
    BoundaryChange(("E10000006",), ("E06000063", "E06000064")),
)


def change_of(code: str) -> BoundaryChange | None:
    """The boundary change that created ``code``, or None for an authority that existed in 2015."""
    return next((c for c in CHANGES if code in c.successors), None)


def _la_rows() -> pd.DataFrame:
    la = dfe.read("la_cla.csv")
    return la[la["geographic_level"] == "Local authority"]


def _pop_totals() -> pd.DataFrame:
    """ONS 0-17 totals (POP_DFE) of local authorities: [area_code x mid-year], NaN where not published."""
    pop = dfe.read("population_0_17.csv")
    p = pop[(pop["geographic_level"] == "Local authority") & (pop["source"] == "POP_DFE") & (pop["sex"] == "persons")]
    return p.pivot_table(index="area_code", columns="year", values="value", dropna=False)


@lru_cache(maxsize=None)
def first_year(code: str) -> int:
    """First DfE year (31 March) with the successor's own published counts."""
    own = _la_rows()
    years = own.loc[own["new_la_code"] == code, "year"]
    if years.empty:
        raise dfe.DataError(f"calibration/data/dfe/la_cla.csv: field 'new_la_code': no rows for successor {code!r}")
    return int(years.min())


@lru_cache(maxsize=None)
def share(code: str) -> float:
    """The successor's share of its group's children 0-17 in the first mid-year its own population is published."""
    ch = change_of(code)
    pops = _pop_totals()
    missing = [c for c in ch.successors if c not in pops.index]
    if missing:
        raise dfe.DataError(f"{POP}: field 'area_code': no population for successor {missing[0]!r}")
    rows = pops.loc[list(ch.successors)]
    common = rows.columns[rows.notna().all(axis=0)]
    if common.empty:
        raise dfe.DataError(f"{POP}: no year with a population for every successor of {ch.predecessors}")
    y = common.min()
    return float(rows.loc[code, y] / rows[y].sum())


def own_from(code: str) -> int | None:
    """First year of an area's own counts when its earlier years are mapped (a successor), else None."""
    return first_year(code) if change_of(code) else None


def source_note(code: str) -> str:
    """How a successor's earlier years were made (for manifests and data rows)."""
    ch = change_of(code)
    return (f"before {first_year(code)}: {share(code):.4f} (population share) of "
            f"{' + '.join(ch.predecessors)}")


def with_predecessors(own: pd.DataFrame, code: str) -> pd.DataFrame:
    """``own`` (a successor's ``la_cla.csv`` rows) with its earlier years added from the predecessors: each
    (year, measure, scheme, category) is the predecessors' sum times the population share. A cell suppressed in
    any predecessor stays suppressed ('c', value unknown); 'z' (not applicable) counts as 0 when others publish.
    Added rows have ``source`` 'mapped: ...'. Authorities that existed in 2015 are returned unchanged."""
    ch = change_of(code)
    if ch is None:
        return own
    first, w = first_year(code), share(code)
    prev = _la_rows()
    prev = prev[prev["new_la_code"].isin(ch.predecessors) & (prev["year"] < first)].copy()
    keys = ["year", "measure", "scheme", "category"]
    prev["flag"] = prev["flag"].fillna("")
    prev["hidden"] = prev["value"].isna() & (prev["flag"] != "z")
    prev["z"] = prev["flag"] == "z"
    prev["v"] = prev["value"].fillna(0.0)
    g = prev.groupby(keys, sort=True)
    out = g.agg(v=("v", "sum"), hidden=("hidden", "any"), z=("z", "all"),
                c=("flag", lambda f: bool((f == "c").any()))).reset_index()
    out["value"] = np.where(out["hidden"] | out["z"], np.nan, out["v"] * w)
    out["flag"] = np.where(out["c"], "c", np.where(out["z"], "z", None))
    ident = own.iloc[0]
    for col in ("geographic_level", "region_code", "region_name", "new_la_code", "old_la_code", "la_name"):
        if col in own.columns:
            out[col] = ident[col]
    out["source"] = "mapped: " + source_note(code)
    return pd.concat([out[[c for c in own.columns if c in out.columns]], own], ignore_index=True)


def population_totals(code: str) -> pd.Series:
    """ONS 0-17 totals by mid-year for an LA; a successor's earlier years are its share of the predecessors' sum,
    or, where the predecessors have none (Bournemouth, Poole and Dorset county before mid-2019), its first
    published count moved with its region's children (``population_0_17.csv`` regional POP_DFE)."""
    pops = _pop_totals()
    if code not in pops.index:
        raise dfe.DataError(f"{POP}: field 'area_code': no population for local authority {code!r}")
    own = pops.loc[code].dropna()
    ch = change_of(code)
    if ch is None:
        return own
    w, first = share(code), int(own.index.min())
    pred = pops.reindex(list(ch.predecessors))
    pop = dfe.read("population_0_17.csv")
    region_code = pop.loc[pop["area_code"] == code, "region_code"].dropna().iloc[0]
    reg = pop[(pop["area_code"] == region_code) & (pop["source"] == "POP_DFE") & (pop["sex"] == "persons")]
    reg = reg.drop_duplicates("year").set_index("year")["value"]
    out = dict(own.items())
    for y in pops.columns:
        if y >= first:
            continue
        if pred[y].notna().all():
            out[y] = float(pred[y].sum()) * w
        elif y in reg.index and first in reg.index:
            out[y] = float(own[first]) * float(reg[y]) / float(reg[first])
    return pd.Series(out).sort_index()
