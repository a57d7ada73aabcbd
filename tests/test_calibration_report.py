"""The in-sample criteria (calibration/criteria.py) and the calibration report (calibration/calibration_report.py)."""
from __future__ import annotations

import json
import numpy as np
import pandas as pd
import pytest

from calibration import calibrate, calibration_report, criteria
from calibration import ensemble as ens
from sim.observe import observed

CHECKS = ["CLA total", "placement share", "age-band share", "starts", "ceased", "CIN at 31 March",
          "CPP at 31 March", criteria.RESIDENTIAL_CHECK]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """A tiny real calibration: the shipped ensemble's central fit and 2 members, checked through the engine at
    scale 0.02, and its report. (Building an ensemble with ``ensemble.build`` needs ~80 engine runs for the
    Jacobian, minutes even at the smallest scales, so the shipped table stands in for it.)"""
    if not ens.SHIPPED.is_file():
        pytest.skip(f"{ens.SHIPPED} not found")
    table = ens.load()
    table = table[table["member"] <= 2].reset_index(drop=True)
    manifest = json.loads(ens.SHIPPED.with_suffix(".json").read_text())
    _, summary, _ = calibrate.check_run(table, 2024, 0.02, 1, 1, progress=False)
    folder = tmp_path_factory.mktemp("calibration")
    html = calibration_report.write(folder, table, manifest, summary, 2024)
    return summary, folder, html


def test_in_sample_has_every_check_and_consistent_pass_flags(calibration):
    summary, _, _ = calibration
    t = criteria.in_sample(summary, 2024)
    assert list(t.columns) == criteria.COLUMNS
    assert list(dict.fromkeys(t["check"])) == CHECKS
    assert t["year"].between(2015, 2024).all()
    assert (t["passed"] == (t["error"].abs() <= t["tolerance"])).all()
    assert set(t.loc[t["check"].str.contains("share"), "unit"]) == {"pp"}
    placement = t[t["check"] == "placement share"]
    assert {"dfe_old", "dfe_current"} <= set(placement["scheme"])
    assert "residential_supported_other" in set(placement["category"])
    sc = criteria.score(t)
    assert list(sc["check"]) == CHECKS and (sc["passed"] <= sc["rows"]).all()


def test_report_is_self_contained_with_valid_pngs(calibration):
    _, folder, html = calibration
    text = html.read_text(encoding="utf-8")
    assert html == folder / "report.html"
    assert '<img src="data:image/png;base64,' in text
    for check in CHECKS:
        assert check in text
    pngs = sorted(folder.glob("*.png"))
    assert {p.name.rsplit("_", 1)[0] for p in pngs} >= {"fit_cla_old", "fit_cla_current", "fit_cla_age_uasc",
                                                        "fit_started", "fit_ceased", "fit_cin_cpp", "identified",
                                                        "prior"}
    for p in pngs:
        data = p.read_bytes()
        assert len(data) > len(PNG) and data.startswith(PNG), p.name


def _exact_summary() -> pd.DataFrame:
    """A summary whose every quantile equals the DfE value (2015-2024), with CLA total 2018 3% too high."""
    s = observed().drop(columns="source").rename(columns={"value": "q50"})
    s = s[s["year"].between(2015, 2024)].copy()
    off = ((s["measure"] == "cla_31mar") & (s["scheme"] == "dfe_current") & (s["category"] == "total")
           & (s["age_band"] == "all") & (s["uasc"] == "all") & (s["la"] == "ENG") & (s["year"] == 2018))
    s.loc[off, "q50"] *= 1.03
    for q in ("q05", "q25", "q75", "q95", "mean"):
        s[q] = s["q50"]
    return s


def test_in_sample_on_a_hand_made_summary():
    t = criteria.in_sample(_exact_summary(), 2024)
    cla = t[t["check"] == "CLA total"].set_index("year")
    assert list(cla.index) == list(range(2015, 2025))
    assert cla.loc[2018, "error"] == pytest.approx(3.0)
    assert not cla.loc[2018, "passed"]
    assert cla.drop(2018)["passed"].all() and np.allclose(cla.drop(2018)["error"], 0.0)
    assert t.loc[~t["passed"], ["check", "year"]].values.tolist() == [["CLA total", 2018]]
    # shares in 2018 move with the total, but by less than the tolerance; other years are exact
    other = t[(t["check"] != "CLA total") & ((t["year"] != 2018) | ~t["check"].str.contains("share"))]
    assert np.allclose(other["error"], 0.0)
    levels = t[t["unit"] == "%"]
    assert set(levels["tolerance"][levels["check"] != "CLA total"]) == {5.0}
    assert t.loc[t["check"] == "starts", "year"].min() == 2016
    res = t[t["check"] == criteria.RESIDENTIAL_CHECK].sort_values("year")
    assert res[["year", "category"]].values.tolist() == [[y, "secure_childrens_homes"] for y in range(2020, 2024)] \
        + [[2024, "residential_supported_other"]]
    sc = criteria.score(t).set_index("check")
    assert sc.loc["CLA total", "rows"] == 10 and sc.loc["CLA total", "passed"] == 9
    assert sc.loc["CLA total", "worst_error"] == pytest.approx(3.0)
