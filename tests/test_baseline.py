"""Baseline regression: a small fixed run must reproduce the stored summary exactly (to float precision).

An intended change to the model refreshes the baseline with ``python -m tests.baseline.refresh``.
"""
import numpy as np
import pandas as pd

from tests.baseline.refresh import STORED, current


def test_small_fixed_run_matches_stored_summary():
    stored = pd.read_csv(STORED, keep_default_na=False, dtype={"year": int})
    now = current()
    keys = ["measure", "scheme", "category", "age_band", "uasc", "la", "year"]
    merged = stored.merge(now, on=keys, how="outer", suffixes=("_stored", "_now"), indicator=True)
    missing = merged[merged["_merge"] != "both"]
    assert missing.empty, f"rows differ from the baseline (refresh deliberately if intended):\n{missing.head(10)}"
    for col in ("mean", "q50"):
        a, b = merged[f"{col}_stored"].to_numpy(float), merged[f"{col}_now"].to_numpy(float)
        bad = ~np.isclose(a, b, rtol=1e-6, atol=1e-6)
        assert not bad.any(), ("baseline drift (refresh deliberately with `python -m tests.baseline.refresh`):\n"
                               + merged.loc[bad, keys + [f"{col}_stored", f"{col}_now"]].head(10).to_string())
