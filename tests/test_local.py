"""Local-authority calibration and runs: inputs, censored targets, the pooled fit, the CLI (issue 3, LAs)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from calibration import dfe
from calibration import ensemble as ens
from calibration import inputs as model_inputs
from calibration import local
from calibration import local_data as D
from sim import cli, observe, runner

RUTLAND, DUDLEY = "E06000017", "E08000027"  # 27 and 573 children in care in 2024


def _la(code: str) -> pd.DataFrame:
    la = dfe.read("la_cla.csv")
    return la[(la["geographic_level"] == "Local authority") & (la["new_la_code"] == code)]


def test_local_inputs_are_the_authoritys_own():
    """Population = the LA's ONS 0-17 count; the 2015 stock margins add up to its published 2015 total
    (suppressed cells share what the total leaves over); one LA with weight 1."""
    inp = model_inputs.local(RUTLAND)
    pop = dfe.read("population_0_17.csv")
    ons = pop[(pop["area_code"] == RUTLAND) & (pop["source"] == "POP_DFE") & (pop["year"] == 2020)]["value"]
    assert abs(inp.population[2020].sum() - float(ons.iloc[0])) <= 18  # rounding of 18 single years
    total = float(_la(RUTLAND).query("year == 2015 and measure == 'total'")["value"].iloc[0])
    assert sum(inp.init_cla_old.values()) == pytest.approx(total)
    assert sum(inp.init_age.values()) == pytest.approx(total)
    assert inp.la_codes == [RUTLAND] and inp.area == RUTLAND and 0 < inp.uasc_share < 0.01


def test_unknown_authority_is_a_clear_error():
    with pytest.raises(dfe.DataError, match="no local authority 'E99999999'"):
        model_inputs.local("E99999999")


def test_targets_keep_published_counts_and_censor_suppressed_ones():
    """Exact targets equal the published count; a suppressed group is an interval from its published parts to
    what the breakdown's total leaves over."""
    ts = D.targets(RUTLAND, 2024)
    la = _la(RUTLAND)
    for t in ts:
        assert 0 <= t.lo <= t.hi
        if t.family == "cla":
            assert t.lo == t.hi == float(la.query("year == @t.year and measure == 'total'")["value"].iloc[0])
    cens = [t for t in ts if t.censored]
    assert len(cens) >= 10  # a small LA: many suppressed cells
    t = next(t for t in cens if t.family == "returned_home")
    r = la[(la["year"] == t.year) & (la["measure"] == "ceased_by_reason")]
    total = float(r.loc[r["category"] == "total", "value"].iloc[0])
    published = float(r.loc[r["category"] != "total", "value"].sum())
    assert t.hi - t.lo == pytest.approx(total - published)


def test_interval_arithmetic_on_a_made_up_breakdown():
    rows = pd.DataFrame({"category": ["a", "b", "c", "total"], "value": [10.0, np.nan, np.nan, 30.0],
                         "flag": [None, "c", "c", None]})
    assert D._interval(rows, ["a", "b"], 30.0) == (10.0, 30.0)       # b is somewhere in 0..20
    assert D._interval(rows, ["a"], 30.0) == (10.0, 10.0)            # nothing hidden in the group
    assert D._interval(rows, ["a", "b"], np.nan) is None              # total suppressed: no information kept


def test_censored_likelihood_is_the_probability_of_the_interval():
    prob = local.Problem(lo=np.array([3.0, 7.0]), hi=np.array([3.0, 12.0]), k=np.array([5.0, 5.0]),
                         tau=np.ones(len(local.COORDINATES)), J=np.zeros((2, len(local.COORDINATES))),
                         mu0=np.array([6.0, 6.0]), theta0=np.zeros(len(local.COORDINATES)), floor=0.1)
    got = prob.neg_log_lik(np.array([6.0, 6.0]))
    pmf = stats.nbinom.pmf(np.arange(0, 13), 5.0, 5.0 / 11.0)
    assert got[0] == pytest.approx(-np.log(pmf[3]))
    assert got[1] == pytest.approx(-np.log(pmf[7:13].sum()))


def _synthetic(theta_true: np.ndarray, size: float, seed: int) -> local.Problem:
    """A linear-in-log problem: each coordinate drives its own 9 yearly counts of mean ``size``."""
    n = len(local.COORDINATES)
    J = np.kron(np.eye(n), np.ones((9, 1)))
    mu_true = size * np.exp(J @ theta_true)
    y = np.random.default_rng(seed).negative_binomial(50.0, 50.0 / (50.0 + mu_true)).astype(float)
    return local.Problem(lo=y, hi=y, k=np.full(y.size, 50.0), tau=np.full(n, 0.3), J=J, mu0=np.full(y.size, size),
                         theta0=np.zeros(n), floor=0.1)


def test_partial_pooling_follows_large_data_and_shrinks_small_data():
    """Big counts: the MAP recovers the true effects (within 4 posterior sds). Counts of ~3: the estimates are
    pulled towards England (0) and the Laplace sds approach the pooling sd."""
    theta = np.linspace(-0.4, 0.4, len(local.COORDINATES))
    big = _synthetic(theta, 5000.0, 1)
    est = local.map_fit(big, np.zeros_like(theta))
    sd = np.sqrt(np.diag(local.posterior_cov(big, est)))
    assert np.all(np.abs(est - theta) <= 4 * sd)
    assert np.all(sd < 0.5 * big.tau)
    small = _synthetic(theta, 3.0, 2)
    est_s = local.map_fit(small, np.zeros_like(theta))
    sd_s = np.sqrt(np.diag(local.posterior_cov(small, est_s)))
    assert np.sum(np.abs(est_s)) < np.sum(np.abs(theta))
    assert np.all(sd_s > 1.5 * sd) and np.all(sd_s <= small.tau * 1.0001)


@pytest.fixture(scope="module")
def rutland_ensemble(tmp_path_factory):
    """A small LA ensemble fitted quickly (fit runs of ~300 children in care; 6 members)."""
    national = ens.load()
    table, manifest = local.build(RUTLAND, national[national["member"] <= 6], members=6, log=lambda *_: None,
                                  fit_cla=300)
    path = tmp_path_factory.mktemp("la") / "ensemble.parquet"
    ens.write(table, manifest, path)
    return path, table, manifest


def test_local_ensemble_is_england_plus_la_effects(rutland_ensemble):
    path, table, manifest = rutland_ensemble
    assert manifest["area"] == RUTLAND and len(table) == 7
    national = ens.load()
    england = ens.member_params(national, ens.CENTRAL)
    for c, (key, info) in zip(local.COORDINATES, manifest["local"]["coordinates"].items()):
        assert key == c.key and 0 < info["posterior_sd"] <= info["pooling_sd"] * 1.0001
        name = c.names[0]
        central = england[name]
        got = float(table.loc[table["member"] == 0, name].iloc[0])
        assert got == pytest.approx(central + info["map"])
    untouched = "care.short_stay.p"  # a prior the LA fit does not move: each member keeps England's draw
    assert np.allclose(table.loc[table["member"] == 1, untouched].iloc[0],
                       national.loc[national["member"] == 1, untouched].iloc[0])


def test_local_run_counts_the_authority(rutland_ensemble):
    """A local run's rows are labelled with the LA code and its 2015 stock is the LA's."""
    _, table, _ = rutland_ensemble
    df, info = runner.run_scenario("runs/scenarios/status_quo.toml", 2, 5, 2016, 1.0, workers=1, progress=False,
                                   ensemble=table, area=RUTLAND)
    assert set(df["la"]) == {RUTLAND} and info["area"] == RUTLAND
    s = runner.summarise(df)
    cla15 = s[(s["measure"] == "cla_31mar") & (s["category"] == "total") & (s["age_band"] == "all")
              & (s["uasc"] == "all") & (s["year"] == 2015)]["q50"].iloc[0]
    assert abs(cla15 - 34) <= 2  # stochastic rounding of the raked cells
    obs = observe.observed(area=RUTLAND)
    assert set(obs["la"]) == {RUTLAND} and (obs["measure"] == "started").any()


def test_cli_local_run_and_its_errors(rutland_ensemble, tmp_path, capsys):
    path, _, _ = rutland_ensemble
    out = tmp_path / "run"
    rc = cli.main(["run", "runs/scenarios/status_quo.toml", "--la", RUTLAND, "--ensemble", str(path),
                   "--replicates", "2", "--end-year", "2017", "--workers", "1", "--quiet", "--out", str(out)])
    assert rc == 0 and (out / "summary.csv").is_file()
    man = json.loads((out / "manifest.json").read_text())
    assert man["info"]["area"] == RUTLAND if "info" in man else True
    for args, needle in ((["--la", "E99999999"], "no local authority"),
                         (["--la", DUDLEY, "--ensemble", str(path)], f"calibrated for {RUTLAND}"),
                         (["--ensemble", str(path)], f"add --la {RUTLAND}"),
                         (["--la", "E06000001"], "no ensemble for local authority")):
        bad = tmp_path / "bad"
        rc = cli.main(["run", "runs/scenarios/status_quo.toml", *args, "--replicates", "1", "--quiet",
                       "--out", str(bad)])
        assert rc == 2 and needle in capsys.readouterr().err and not bad.exists()
    rc = cli.main(["calibrate", "--la", "E99999999", "--out", str(tmp_path / "cal")])
    assert rc == 2 and "no local authority" in capsys.readouterr().err and not (tmp_path / "cal").exists()
