"""Backtests (calibration/backtest.py, ``caresim backtest``): well-formed output, no look-ahead, clean failures."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calibration import backtest as bt
from calibration import dfe, first_pass
from sim import cli, observe

ORIGIN, TO = 2019, 2021
TINY = dict(replicates=2, scale=0.02, workers=1, fit_iterations=3, fit_scale=0.02, log=lambda _: None)


@pytest.fixture(scope="module")
def result() -> pd.DataFrame:
    return bt.backtest(ORIGIN, TO, **TINY)


def test_columns_methods_and_horizons(result):
    assert list(result.columns) == bt.COLUMNS
    assert set(result["method"]) == {"caresim", "naive"}
    assert (result["origin"] == ORIGIN).all()
    for method, g in result.groupby("method"):
        assert sorted(g["horizon"].unique()) == list(range(1, TO - ORIGIN + 1)), method
        assert (g["year"] == g["origin"] + g["horizon"]).all()
        total = g[(g["measure"] == "cla_31mar") & (g["category"] == "total")]
        assert sorted(total["year"]) == list(range(ORIGIN + 1, TO + 1)), method
    q = result[bt.QCOLS].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all(), "quantiles must be ordered"
    assert np.isfinite(result["abs_pct_error"]).all()


def test_placements_use_the_scheme_published_that_year(result):
    place = result[(result["measure"] == "cla_31mar") & (result["category"] != "total")]
    assert (place.loc[place["year"] >= 2020, "scheme"] == observe.CURRENT).all()
    assert (place.loc[place["year"] < 2020, "scheme"] == observe.OLD).all()
    assert observe.GROUP_2024 not in set(place["category"])


def test_naive_bands_are_points(result):
    n = result[result["method"] == "naive"]
    for q in bt.QCOLS:
        assert np.allclose(n[q], n["q50"])
    assert (n["inside_90"] == np.isclose(n["q50"], n["observed"])).all()


def test_naive_uses_no_data_after_the_origin(monkeypatch):
    real = observe.observed()

    def perturbed(by_la: bool = False) -> pd.DataFrame:
        d = real.copy()
        d.loc[d["year"] > ORIGIN, "value"] *= 1.7
        return d

    before = bt.naive(bt.scored_series(real), ORIGIN, TO)
    monkeypatch.setattr(observe, "observed", perturbed)
    after = bt.naive(bt.scored_series(observe.observed()), ORIGIN, TO)
    assert not before.empty
    pd.testing.assert_frame_equal(before, after)


def test_naive_is_three_year_growth_from_the_origin():
    s = pd.DataFrame({"year": [2015, 2016, 2017, 2018, 2019], "measure": "m", "scheme": "s", "category": "c",
                      "age_band": "all", "uasc": "all", "la": "ENG", "observed": [1.0, 50.0, 100.0, 110.0, 800.0]})
    n = bt.naive(s, 2018, 2020)
    growth = (110.0 / 1.0) ** (1 / 3)
    assert np.allclose(n["q50"], [110.0 * growth, 110.0 * growth ** 2])


def test_fit_targets_stop_at_fit_until():
    assert list(first_pass.window()) == list(range(2016, 2025))
    t = first_pass.observed_targets(2018)
    assert len(t["cla_31mar"]) == len(range(2015, 2019)) and len(t["ceased.adopted"]) == len(range(2016, 2019))
    assert "stock.RESIDENTIAL_HOME" not in t and "stock.res_semi_mean" in t  # no current scheme before 2020


@pytest.mark.parametrize("args, message", [
    (["--fit-until", "2016", "--to", "2020"], "at least 2017"),
    (["--fit-until", "2020", "--to", "2020"], "after the origin"),
    (["--fit-until", "2020", "--to", "2025"], "at most 2024"),
    (["--origins", "2016-2018", "--to", "2022"], "at least 2017"),
    (["--origins", "2017-2022", "--to", "2022"], "after the origin"),
    (["--origins", "2017to2019", "--to", "2022"], "range"),
])
def test_bad_years_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "bt"
    assert cli.main(["backtest", *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_writes_csv_and_chart(tmp_path, capsys):
    out = tmp_path / "bt"
    rc = cli.main(["backtest", "--fit-until", "2020", "--to", "2021", "--members", "2", "--scale", "0.02",
                   "--fit-iterations", "2", "--fit-scale", "0.02", "--member-scale", "0.02", "--member-iterations",
                   "1", "--workers", "1", "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["backtest.csv", "backtest.png"]
    df = pd.read_csv(out / "backtest.csv", keep_default_na=False)
    assert list(df.columns) == bt.COLUMNS and set(df["horizon"]) == {1}
    assert "coverage_90" in capsys.readouterr().out


def test_future_uasc_uses_only_data_up_to_the_origin(monkeypatch):
    """The backtest's UASC arrivals after the origin come from the three years up to it (no look-ahead)."""
    import calibration.backtest as bt
    real = bt.uasc_arrivals()
    before = bt.future_uasc(2019, 0.8)
    assert before == pytest.approx(0.8 * np.mean([real[y] for y in (2017, 2018, 2019)]))
    later = {y: (v * 10 if y > 2019 else v) for y, v in real.items()}
    monkeypatch.setattr(bt, "uasc_arrivals", lambda: later)
    assert bt.future_uasc(2019, 0.8) == before
    assert bt.future_uasc(2021, 0.8) != pytest.approx(0.8 * np.mean([real[y] for y in (2019, 2020, 2021)]))


@pytest.mark.parametrize("item, needle", [("trend.damping", "NAME=NUMBER"), ("no.such.param=1", "no.such.param"),
                                          ("care.reunified.base=-3", "calibrated")])
def test_backtest_set_rejects_bad_overrides(tmp_path, capsys, item, needle):
    """--set must name a known, non-calibrated parameter with a number; nothing is written otherwise."""
    out = tmp_path / "bt"
    rc = cli.main(["backtest", "--fit-until", "2019", "--to", "2020", "--set", item, "--out", str(out)])
    assert rc == 2 and needle in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("fit_until", [2019, 2021, 2023, 2024])
def test_first_pass_placement_targets_by_origin(fit_until):
    """Origins from 2020 match children's homes and semi-independent separately (the current-scheme split);
    earlier ones their old-scheme sum; the friction's children's homes series runs from 2020 to the origin, 2024
    included (the 2024 recoding moved children between supported accommodation and other placements only)."""
    t = first_pass.observed_targets(fit_until)
    split = fit_until >= first_pass.CURRENT_FROM
    assert ("stock.SEMI_INDEPENDENT" in t) == split and ("stock.RESIDENTIAL_HOME" in t) == split
    assert ("stock.res_semi_mean" in t) == (not split)
    assert ("stock.sch_current" in t) == split
    if split:
        assert list(t["stock.sch_current"]) == list(dfe.series("national_cla_31mar.csv", "placement",
                                                               "secure_childrens_homes", "current").loc[2020:fit_until])
    assert len(t["stock.uasc"]) == fit_until - 2015


def test_before_2020_the_old_sum_is_split_at_the_2015_stock_share():
    """An origin before the current scheme (2020) matches children's homes and semi-independent separately, to
    the old-scheme secure/children's homes/semi-independent mean split at init.homes_share_of_secure_ch_semi (the
    2015 stock's prior share), so each weight answers its own gap."""
    from calibration.parameters import base_parameters, resolve
    v = base_parameters({"trend.end_year": 2019})
    obs = first_pass.observed_targets(2019)
    sim = first_pass.simulated(resolve(v), 7, 0.02, 2019)
    share = v["init.homes_share_of_secure_ch_semi"]
    sim["stock.RESIDENTIAL_HOME"] = share * obs["stock.res_semi_mean"] * 0.8
    sim["stock.SEMI_INDEPENDENT"] = (1 - share) * obs["stock.res_semi_mean"] * 1.25
    before = dict(v)
    gaps = first_pass.update(v, obs, sim, damp=1.0)
    assert gaps["dest.RESIDENTIAL_HOME.base"] == pytest.approx(-np.log(0.8), abs=1e-12)
    assert gaps["dest.SEMI_INDEPENDENT.base"] == pytest.approx(-np.log(1.25), abs=1e-12)
    assert v["dest.SEMI_INDEPENDENT.base"] - before["dest.SEMI_INDEPENDENT.base"] == pytest.approx(-np.log(1.25))


@pytest.mark.parametrize("fit_until", [2020, 2021, 2024])
def test_covid_year_effect_answers_the_2021_dip_and_needs_2021(fit_until):
    """care.reunified.year.2021 is moved by the 2021 returns home against the years either side of it (one side
    when the data stop at 2021), and not at all by a fit whose data end before 2021 (no look-ahead)."""
    from calibration.parameters import base_parameters, resolve
    v = base_parameters({"trend.end_year": fit_until})
    obs = first_pass.observed_targets(fit_until)
    sim = first_pass.simulated(resolve(v), 7, 0.02, fit_until)
    years = first_pass.window(fit_until)
    sim["ceased.reunified"] = obs["ceased.reunified"] * 0.9 * np.where(years == first_pass.COVID_YEAR, 1.25, 1.0)
    before = v["care.reunified.year.2021"]
    gaps = first_pass.update(v, obs, sim, damp=1.0)
    if fit_until < first_pass.COVID_YEAR:
        assert "care.reunified.year.2021" not in gaps and v["care.reunified.year.2021"] == before
    else:
        assert gaps["care.reunified.year.2021"] == pytest.approx(-np.log(1.25), abs=1e-12)
        assert v["care.reunified.year.2021"] == pytest.approx(before - np.log(1.25), abs=1e-12)


def test_2024_recoding_is_scored_as_the_group():
    """DESIGN §2: in 2024 DfE's residential + semi-independent + other grouping is scored instead of its member
    categories (the recoding moved ~2,900 children between two of them); in other years the members are scored
    and the group is only history for the naive comparator."""
    series = bt.scored_series(observe.observed())
    kept = series[bt.recoding_mask(series)]
    cla = kept[kept["measure"] == "cla_31mar"]
    in_2024 = set(cla.loc[cla["year"] == 2024, "category"])
    assert observe.GROUP_2024 in in_2024 and not in_2024 & set(observe.GROUP_2024_CATEGORIES)
    assert {"foster", "placed_with_parents", "placed_for_adoption", "total"} <= in_2024
    assert set(cla.loc[cla["category"] == observe.GROUP_2024, "year"]) == {2024}
    for year in (2020, 2023):
        assert set(observe.GROUP_2024_CATEGORIES) <= set(cla.loc[cla["year"] == year, "category"])
    # the group's 2024 count is the sum of its members' 2024 counts (nothing dropped from the total)
    obs24 = series[(series["year"] == 2024) & (series["measure"] == "cla_31mar")].set_index("category")["observed"]
    assert obs24[observe.GROUP_2024] == pytest.approx(sum(obs24[c] for c in observe.GROUP_2024_CATEGORIES))
    # and the naive comparator forecasts the group from its own 2020-2023 history
    nv = bt.naive(series, 2021, 2024)
    assert ((nv["category"] == observe.GROUP_2024) & (nv["year"] == 2024)).sum() == 1


def test_pooled_coverage_counts_horizons_1_to_3_and_reports_all():
    """Issue 3's pooled coverage is over horizons 1-3; the all-horizon figure is reported beside it."""
    rows = []
    for h, hit in ((1, True), (2, True), (3, False), (4, False), (5, False)):
        rows.append(dict(method="caresim", measure="cla_31mar", category="foster", horizon=h, abs_pct_error=1.0,
                         inside_90=hit, inside_50=hit))
    p = bt.pooled(pd.DataFrame(rows)).iloc[0]
    assert p["cla_groups_n"] == 3
    assert p["coverage_90"] == pytest.approx(2 / 3) and p["coverage_90_all_horizons"] == pytest.approx(2 / 5)


def test_other_placements_series_splices_schemes_and_leaves_out_2024():
    """Other placements: old scheme 2016-2022 (equal to the current scheme in 2020-2022), current 2023, never the
    recoded 2024; a fit to 2019 sees 2016-2019 only."""
    from calibration import dfe
    cla = "national_cla_31mar.csv"
    old = dfe.series(cla, "placement", "other_placements", "old")
    cur = dfe.series(cla, "placement", "other_placements", "current")
    assert (old.loc[2020:2022].to_numpy() - cur.loc[2020:2022].to_numpy()).max() <= 10  # rounding to 10
    full = first_pass.observed_targets(2024)["stock.other_placements"]
    assert list(full) == list(old.loc[2016:2022]) + [cur.loc[2023]]
    assert list(first_pass.observed_targets(2019)["stock.other_placements"]) == list(old.loc[2016:2019])
    assert first_pass.stock_window("OTHER_IN_CARE", 2024) == (2016, 2023)


@pytest.mark.parametrize("fit_until, fitted", [(2021, False), (2022, True), (2024, True)])
def test_friction_needs_three_current_years_and_takes_bounded_steps(fit_until, fitted):
    """The friction answers the children's homes slope from 3 current-scheme years (2 give one noisy change);
    a huge slope gap moves its logit by FRICTION_STEP at most."""
    from calibration.parameters import base_parameters, resolve
    v = base_parameters({"trend.end_year": fit_until, "capacity.constraint": 1.0})
    obs = first_pass.observed_targets(fit_until)
    sim = first_pass.simulated(resolve(v), 7, 0.02, fit_until)
    flat = obs["stock.sch_current"][0]
    sim["stock.sch_current"] = flat * np.ones_like(obs["stock.sch_current"])  # simulated homes flat, observed rise
    q0 = v["capacity.friction"]
    gaps = first_pass.update(v, obs, sim, damp=1.0)
    assert ("capacity.friction" in gaps) == fitted
    if fitted:
        logit = lambda q: np.log(q / (1 - q))
        assert gaps["capacity.friction"] > 0
        assert logit(v["capacity.friction"]) - logit(q0) == pytest.approx(first_pass.FRICTION_STEP, abs=1e-9)
    else:
        assert v["capacity.friction"] == q0


@pytest.fixture(scope="module")
def local_result():
    """LA backtests of Rutland and North Northamptonshire (created 2021) from 2019 to 2022, on the shipped national
    ensemble's first members in place of an origin fit (the LA plumbing is tested here, the origin fit above)."""
    from calibration import ensemble as ens
    national = ens.load()
    small = national[national["member"] <= 3].copy()
    mp = pytest.MonkeyPatch()
    mp.setattr(bt, "origin_ensemble", lambda *a, **k: small)
    try:
        return bt.backtest(2019, 2022, members=3, workers=1, log=lambda _: None, las=("E06000017", "E06000061"),
                           la_fit_cla=300)
    finally:
        mp.undo()


def test_local_backtest_scores_each_authoritys_own_years(local_result):
    """Rows are the LAs' CLA totals, starts and ceased for both methods; a successor's mapped years (North
    Northamptonshire before 2022) are not scored, though the naive comparator projects from them."""
    df = local_result
    assert set(df["la"]) == {"E06000017", "E06000061"} and set(df["method"]) == {"caresim", "naive"}
    assert set(df["measure"]) == {"cla_31mar", "started", "ceased"} and (df["category"] == "total").all()
    rut = df[df["la"] == "E06000017"]
    assert sorted(rut["year"].unique()) == [2020, 2021, 2022]
    north = df[df["la"] == "E06000061"]
    assert sorted(north["year"].unique()) == [2022] and set(north["horizon"]) == {3}
    assert set(north["method"]) == {"caresim", "naive"}
    obs = bt.scored_local_series(observe.observed(area="E06000061"), "E06000061")
    got = north[(north["measure"] == "cla_31mar")]["observed"]
    assert (got == float(obs[(obs["year"] == 2022) & (obs["measure"] == "cla_31mar")]["observed"].iloc[0])).all()
    p = bt.pooled(df, by=("la", "method"))
    assert len(p) == 4 and p["flows_coverage_90"].between(0, 1).all()


def test_local_backtest_writes_one_panel_per_authority(local_result, tmp_path):
    folder = bt.write(tmp_path / "bt", local_result, ("E06000017", "E06000061"))
    assert (folder / "backtest.csv").is_file() and (folder / "backtest.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [(["--la", "E99999999"], "no local authority 'E99999999'"),
                                           (["--la", "E06000017", "--members", "0"], "needs an ensemble"),
                                           (["--la", "E06000017,,E06000061"], "distinct codes")])
def test_local_backtest_bad_arguments_exit_2_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "bt"
    rc = cli.main(["backtest", "--fit-until", "2019", "--to", "2021", *args, "--out", str(out)])
    assert rc == 2 and message in capsys.readouterr().err and not out.exists()


def test_local_backtest_refuses_origins_before_2018(tmp_path, capsys):
    out = tmp_path / "bt"
    rc = cli.main(["backtest", "--origins", "2017-2019", "--to", "2021", "--la", "E06000017", "--out", str(out)])
    assert rc == 2 and "start at origin 2018" in capsys.readouterr().err and not out.exists()
