"""RO3 reconciliation (calibration/ro3.py), present values and investment costs (sim/costs.py).

Expected numbers are worked out by hand in each test; one tiny engine run (scale 0.02, 2 replicates) checks that
the reconciliation table is well formed and that the CLI writes it into a run folder.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents import states as S
from calibration import ro3
from calibration.parameters import base_parameters, load_register
from sim import costs as C

NAMES = [st.name for st in S.STATES]


# ---- the mapping ---------------------------------------------------------------------------------------------
def test_mapping_is_a_partition_of_states_and_lines():
    lines = ro3.state_lines()
    assert sorted(lines) == sorted(NAMES)                      # every state, once
    assert len(ro3.MAPPING) == len(NAMES)
    by_line: dict[str, set[str]] = {}
    for state, line in lines.items():
        by_line.setdefault(line, set()).add(state)
    union = set().union(*by_line.values())
    assert union == set(NAMES) and sum(len(v) for v in by_line.values()) == len(NAMES)  # disjoint
    assert set(by_line) <= set(ro3.LINES) - {ro3.TOTAL}
    # the placement lines and what they cost
    assert by_line[ro3.RESIDENTIAL] == {"RESIDENTIAL_HOME", "RESIDENTIAL_OTHER"}
    assert by_line[ro3.FOSTERING] == {"FOSTER", "KINSHIP"}
    assert ro3.UASC not in by_line                               # a per-child-year component only
    assert by_line[ro3.SAFEGUARDING] == {"AT_HOME", "EDGE_OF_CARE"}
    assert ro3.line_categories(ro3.RESIDENTIAL) == ["residential"]
    assert ro3.line_categories(ro3.FOSTERING, "dfe_current", in_care_only=True) == ["foster"]
    # every RO3 line used exists in national_spend.csv, and the total is the sum of the four CLA sub-lines
    obs = ro3.observed_lines()
    for year in ro3.YEARS:
        assert all((line, year) in obs for line in ro3.LINES)
    assert obs[(ro3.TOTAL, 2023)] == pytest.approx(sum(obs[(k, 2023)] for k in ro3.CLA_LINES), abs=1000.0)
    table = ro3.mapping_table()
    assert set(table["state"]) >= set(NAMES) and table["reason"].str.len().min() > 20


@pytest.mark.parametrize("mutate, needle", [
    (lambda m: m + (("FOSTER", ro3.OTHER, "again"),), "'FOSTER' maps to both"),
    (lambda m: m[1:], "AT_HOME"),
    (lambda m: tuple((s, ro3.TOTAL if s == "FOSTER" else l, w) for s, l, w in m), "'FOSTER' maps to 'cla_total'"),
    (lambda m: m + (("NO_SUCH_STATE", ro3.OTHER, "x"),), "NO_SUCH_STATE"),
    (lambda m: tuple((s, ro3.RESIDENTIAL if s == "INDEPENDENT_LIVING" else l, w) for s, l, w in m), "supported"),
])
def test_broken_mapping_is_refused(mutate, needle):
    with pytest.raises(ro3.RO3Error, match=needle):
        ro3.state_lines(mutate(ro3.MAPPING))


# ---- per-child-year components and the fit ---------------------------------------------------------------------
def test_uasc_component_is_ro3_over_dfe_child_years():
    # RO3 2022-23 line 18 net GBP 211,111.5k; UASC looked after on 31 March 2022 5,680 and 2023 7,410
    hand = 211_111_500.0 / ((5_680 + 7_410) / 2)               # = 32,255.39 GBP per UASC child-year
    assert hand == pytest.approx(32_255.39, abs=0.01)
    dfe_cy = ro3.observed_child_years()
    assert dfe_cy[("uasc", 2023)] == 6_545.0 and dfe_cy[("cla", 2023)] == (82_090 + 83_750) / 2
    assert dfe_cy[("other_residential", 2023)] == ((960 + 100) + (1_170 + 90)) / 2   # incl. residential schools
    reg = load_register()
    assert reg[ro3.UASC_COMPONENT]["value"] == pytest.approx(hand, abs=0.01)
    assert reg[ro3.UASC_COMPONENT]["kind"] == "derived"
    for name in (ro3.OTHER_COMPONENT, *(ro3.PRICE_LEVEL + line for line in ro3.PLACEMENT_LINES)):
        assert reg[name]["kind"] == "calibrated" and "RO3 2022-23" in reg[name]["identified_by"]


def synthetic_q(inflation: float = 0.03) -> pd.DataFrame:
    """Two replicates, two years of hand-made per-replicate quantities (every model category costs GBP 1m per
    child-year of its own, cash, in 2022-23; prices grow with ``inflation``; volumes are fixed)."""
    cats = sorted({st.model_category for st in S.STATES})
    rows = []
    for rep in (0, 1):
        for year in ro3.YEARS:
            g = (1 + inflation) ** (year - 2023)
            row = {"replicate": rep, "draw": 0, "year": year, "inflation": (1 + inflation) ** (year - 2024)}
            for k, c in enumerate(cats):
                row[f"cy:{c}"] = 100.0 * (k + 1)
                row[f"cost:{c}"] = 1e6 * g * 100.0 * (k + 1) * (1 + 0.1 * rep)
            row["cost:total"] = sum(row[f"cost:{c}"] for c in cats)
            row["cy:cla"], row["cy:uasc"] = 80_000.0, 7_000.0
            rows.append(row)
    return pd.DataFrame(rows).set_index(["replicate", "draw", "year"])


def test_fit_and_line_arithmetic_by_hand():
    q = synthetic_q()
    obs = ro3.observed_lines()
    dfe_cy = ro3.observed_child_years()
    f = ro3.fit(q)
    # simulated price per child-year: GBP 1m (replicate 0) and 1.1m (replicate 1); median 1.05m
    res_price = obs[(ro3.RESIDENTIAL, 2023)] / ((7_610 + 8_020 + 960 + 100 + 1_170 + 90) / 2)
    assert f[ro3.PRICE_LEVEL + ro3.RESIDENTIAL] == pytest.approx(res_price / 1.05e6)
    assert f[ro3.PRICE_LEVEL + ro3.FOSTERING] == pytest.approx(obs[(ro3.FOSTERING, 2023)] / 56_890 / 1.05e6)
    assert f[ro3.UASC_COMPONENT] == pytest.approx(211_111_500.0 / 6_545)
    care_dfe = sum(dfe_cy[(c, 2023)] for c in ("independent_semi_independent_supported", "placed_with_parents",
                                                "placed_for_adoption", "other_placements"))
    ko_cost = float(q.xs(2023, level="year")["cost:kinship_order"].median())
    other = (obs[(ro3.OTHER, 2023)] - 1.05e6 * care_dfe - ko_cost) / dfe_cy[("cla", 2023)]
    assert f[ro3.OTHER_COMPONENT] == pytest.approx(other)
    # the lines: price level x state costs; components x inflation since 2022-23 x simulated child-years
    vals = {ro3.PRICE_LEVEL + ro3.RESIDENTIAL: 0.5, ro3.PRICE_LEVEL + ro3.FOSTERING: 2.0,
            ro3.UASC_COMPONENT: 30_000.0, ro3.OTHER_COMPONENT: 10_000.0}
    lines = ro3.simulated_lines(q, vals)
    r0 = q.loc[(0, 0, 2024)]
    l0 = lines.loc[(0, 0, 2024)]
    assert l0[ro3.RESIDENTIAL] == pytest.approx(0.5 * r0["cost:residential"])
    assert l0[ro3.FOSTERING] == pytest.approx(2.0 * (r0["cost:foster"] + r0["cost:kinship"]))
    assert l0[ro3.UASC] == pytest.approx(30_000.0 * 1.03 * 7_000)
    l19 = sum(r0[f"cost:{c}"] for c in ("supported", "placed_with_parents", "placed_for_adoption",
                                        "other_in_care", "kinship_order")) + 10_000.0 * 1.03 * 80_000
    assert l0[ro3.OTHER] == pytest.approx(l19)
    assert l0[ro3.TOTAL] == pytest.approx(sum(l0[k] for k in ro3.CLA_LINES))
    assert l0[ro3.SAFEGUARDING] == pytest.approx(r0["cost:at_home"] + r0["cost:edge_of_care"])
    assert lines.loc[(0, 0, 2023), ro3.UASC] == pytest.approx(30_000.0 * 7_000)   # no growth in the fit year


# ---- present values and investment costs -------------------------------------------------------------------------
def test_green_book_register_rows():
    reg = load_register()
    assert reg[C.DISCOUNT_RATE]["value"] == 0.035 and reg[C.DISCOUNT_RATE]["kind"] == "fixed"
    assert "Green Book" in reg[C.DISCOUNT_RATE]["source"]
    assert reg[C.DISCOUNT_BASE]["value"] == 2025


def test_investment_costs_and_present_value_by_hand():
    p = dict(base_parameters(), **{"cost.inflation.annual": 0.03})   # price year 2024, rate 3.5%, year 0 2025
    inv = C.investment_costs({2026: 100.0, 2025: 100.0, 2027: 100.0}, price_year=2024, params=p)
    assert inv.years.tolist() == [2025, 2026, 2027]
    assert inv.real.tolist() == [100.0, 100.0, 100.0]
    assert inv.cash == pytest.approx([103.0, 106.09, 109.2727])
    assert inv.present_value == pytest.approx(100 + 100 / 1.035 + 100 / 1.035 ** 2)   # = 289.97
    assert inv.present_value == pytest.approx(289.9695, abs=1e-4)
    assert inv.total_cash == pytest.approx(318.3627, abs=1e-4)
    # amounts in 2022-23 prices are uplifted one year to 2023-24 prices; cash amounts deflated to them
    assert C.investment_costs({2025: 100.0}, 2023, p).real[0] == pytest.approx(103.0)
    cash = C.investment_costs({2026: 106.09}, None, p)
    assert cash.real[0] == pytest.approx(100.0) and cash.cash[0] == pytest.approx(106.09)
    assert cash.present_value == pytest.approx(100 / 1.035)
    assert C.investment_costs({2027: 1.0}, 2024, p, base_year=2027).present_value == pytest.approx(1.0)
    assert C.present_value({2025: 1.0, 2026: 1.0, 2024: 1.0}, p) == pytest.approx(1.035 + 1 + 1 / 1.035)
    assert inv.as_rows()[1] == {"year": 2026, "real_gbp": 100.0, "cash_gbp": pytest.approx(106.09),
                                "pv_gbp": pytest.approx(100 / 1.035)}


@pytest.mark.parametrize("schedule, needle", [
    ({2026: -5.0}, "2026: amount -5.0"), ({2026: float("nan")}, "2026"), ({"x": 1.0}, "'x'"),
    ({2026.5: 1.0}, "2026.5"), ({}, "non-empty"), ({2056: 1.0}, "30 years"),
])
def test_investment_schedule_errors_name_year_and_value(schedule, needle):
    with pytest.raises(C.CostError, match=needle):
        C.investment_costs(schedule, 2024, base_parameters())


def test_missing_discount_rate_is_named():
    p = base_parameters()
    del p[C.DISCOUNT_RATE]
    with pytest.raises(C.CostError, match="cost.discount.rate"):
        C.present_value({2025: 1.0}, p)


# ---- the spend file ---------------------------------------------------------------------------------------------
def spend_text() -> str:
    from importlib import resources
    return resources.files("calibration").joinpath("data", "dfe", ro3.SPEND_FILE).read_text(encoding="utf-8")


def test_spend_file_errors_name_file_field_and_value(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ro3.RO3Error, match=f"{missing}: file not found"):
        ro3.read_spend(missing)
    lines = spend_text().splitlines()
    target = next(i for i, l in enumerate(lines)
                  if l.startswith("2022-23,2023,cla_residential_care,") and ",net_current_expenditure," in l)
    bad = list(lines)
    bad[target] = bad[target].replace(",2527779.7,", ",lots,")
    f = tmp_path / "spend.csv"
    f.write_text("\n".join(bad) + "\n", encoding="utf-8")
    with pytest.raises(ro3.RO3Error, match=rf"spend.csv: row {target + 1}, field 'value_gbp_thousand': 'lots'"):
        ro3.read_spend(f)
    gone = [l for i, l in enumerate(lines) if not (l.startswith("2023-24,2024,cla_other,")
                                                   and ",net_current_expenditure," in l)]
    f.write_text("\n".join(gone) + "\n", encoding="utf-8")
    with pytest.raises(ro3.RO3Error, match=r"year_ending_march 2024, line 'cla_other'.*field 'line'"):
        ro3.read_spend(f)
    f.write_text("\n".join(l.replace("value_gbp_thousand", "value") for l in lines) + "\n", encoding="utf-8")
    with pytest.raises(ro3.RO3Error, match=r"missing column\(s\) \['value_gbp_thousand'\]"):
        ro3.read_spend(f)
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")        # the intact copy reads
    assert len(ro3.read_spend(f)) == 2 * len(ro3.LINES)


# ---- a tiny run ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    """Two replicates at scale 0.02 to 31 March 2024 (point fit, no ensemble): their Results and tidy rows."""
    from sim import engine, observe, runner
    from sim import scenario as scen
    shared = runner.prepare(scen.load("runs/scenarios/status_quo.toml"), seed=5, end_year=2024, scale=0.02)
    results = [engine.run_replicate(shared.params, shared.inputs, shared.tables, runner.replicate_seed(5, r),
                                    shared.settings, shared.pool) for r in range(2)]
    df = pd.concat([observe.tidy(r, "status_quo", i, 0, unit_costs=shared.params) for i, r in enumerate(results)],
                   ignore_index=True)
    return results, df


def test_reconciliation_table_is_well_formed(tiny):
    _, df = tiny
    q = ro3.quantities(df)
    table = ro3.reconcile(q)
    assert len(table) == 2 * 7
    assert list(table["role"].unique()) == ["fit", "test"]
    assert set(table["financial_year"]) == {"2022-23", "2023-24"}
    assert table[["observed_gbp_m", "sim_median_gbp_m", "sim_q05_gbp_m", "sim_q95_gbp_m", "error_pct"]
                 ].notna().all().all()
    assert (table["sim_q05_gbp_m"] <= table["sim_median_gbp_m"]).all()
    assert (table["sim_median_gbp_m"] <= table["sim_q95_gbp_m"]).all()
    rec = table["within_10pct"] != "not reconciled"
    assert set(table.loc[rec, "within_10pct"]) <= {"yes", "no"}
    assert set(table.loc[~rec, "line"]) == set(ro3.INFO_LINES)
    assert (table.loc[rec, "within_10pct"] == np.where(table.loc[rec, "error_pct"].abs() <= 10, "yes", "no")).all()
    obs = table.set_index(["line", "financial_year"])["observed_gbp_m"]
    assert obs[(ro3.RESIDENTIAL, "2022-23")] == pytest.approx(2_527.7797)
    assert obs[(ro3.TOTAL, "2023-24")] == pytest.approx(7_635.0685)
    lines = ro3.simulated_lines(q, ro3.register_values())
    assert np.allclose(lines[ro3.TOTAL], lines[list(ro3.CLA_LINES)].sum(axis=1))
    assert (q["cost:total"] > 0).all() and q["inflation"].xs(2024, level="year").eq(1.0).all()  # 2023-24 prices
    assert ro3.format_table(table).count("\n") == len(table)


def test_stock_child_years_match_child_months(tiny):
    results, df = tiny
    q = ro3.quantities(df)
    care = [st.name for st in S.STATES if st.in_care]
    for r, res in enumerate(results):
        cy = ro3.child_years_from_result(res)
        exact = cy[cy["state"].isin(care)].groupby("year")["child_years"].sum()
        for year in ro3.YEARS:
            assert q.loc[(r, 0, year), "cy:cla"] == pytest.approx(exact[year], rel=0.03)


def test_cli_writes_the_table_into_a_run_folder(tiny, tmp_path, capsys):
    from sim.output import write_parquet
    _, df = tiny
    folder = tmp_path / "run"
    folder.mkdir()
    write_parquet(df, folder / "replicates.parquet")
    assert ro3.main([str(folder), "--fit"]) == 0
    out = capsys.readouterr().out
    assert "16 cla_residential_care" in out and "2022-23 fit from this run" in out
    written = pd.read_csv(folder / ro3.OUT_FILE)
    assert len(written) == 14 and "error_pct" in written.columns
    assert sorted(p.name for p in folder.iterdir()) == ["replicates.parquet", ro3.OUT_FILE]  # no temp file left
    assert ro3.main([str(tmp_path / "missing")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    short = df[df["year"] <= 2023]
    write_parquet(short, folder / "replicates.parquet")
    assert ro3.main([str(folder)]) == 2
    assert "no 31 March 2024 stocks" in capsys.readouterr().err
