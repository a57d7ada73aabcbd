"""Readers for the DfE / ONS tables in ``calibration/data`` with clear errors for missing or broken files."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import pandas as pd

REQUIRED = {
    "national_cla_31mar.csv": ["year", "measure", "scheme", "category", "value"],
    "national_cla_flows.csv": ["year", "measure", "category", "value"],
    "national_cin_cp.csv": ["year", "measure", "category", "value"],
    "population_0_17.csv": ["year", "geographic_level", "area_code", "sex", "age", "value", "source"],
    "la_cla.csv": ["year", "geographic_level", "new_la_code", "la_name", "measure", "scheme", "category", "value"],
}


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file, field and value."""


def data_path(name: str):
    return resources.files("calibration").joinpath("data", "dfe", name)


@lru_cache(maxsize=None)
def read(name: str) -> pd.DataFrame:
    """Read one DfE table, checking that it exists, parses and has the expected columns and numeric values."""
    path = data_path(name)
    label = f"calibration/data/dfe/{name}"
    if not path.is_file():
        raise DataError(f"{label}: file not found")
    try:
        with path.open("r", encoding="utf-8") as fh:
            df = pd.read_csv(fh, dtype={"scheme": str, "category": str, "flag": str, "age": str})
    except Exception as exc:  # pandas raises several parser errors
        raise DataError(f"{label}: cannot be parsed as CSV ({exc})") from None
    missing = [c for c in REQUIRED.get(name, []) if c not in df.columns]
    if missing:
        raise DataError(f"{label}: missing column(s) {missing}")
    v = pd.to_numeric(df["value"], errors="coerce")
    bad = df["value"].notna() & v.isna()
    if bad.any():
        i = int(bad.idxmax())
        raise DataError(f"{label}: row {i + 2}, field 'value': {df.loc[i, 'value']!r} is not a number")
    df["value"] = v
    if "scheme" in df:
        df["scheme"] = df["scheme"].fillna("")
    return df


def series(name: str, measure: str, category: str = "total", scheme: str | None = None) -> pd.Series:
    """A national series indexed by year."""
    df = read(name)
    m = (df["measure"] == measure) & (df["category"] == category)
    if scheme is not None:
        m &= df["scheme"] == scheme
    s = df.loc[m].set_index("year")["value"].astype(float).sort_index()
    if s.empty:
        raise DataError(f"calibration/data/dfe/{name}: no rows for measure={measure!r}, category={category!r}"
                        + (f", scheme={scheme!r}" if scheme is not None else ""))
    return s
