"""Parameter ensemble pieces: the noise model's fits, the discrepancy random walk, ensemble files and the
runner's uncertainty modes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from agents.hazards import discrepancy
from calibration import dispersion
from calibration import ensemble as ens
from sim import cli, runner


def test_negative_binomial_dispersion_is_recovered():
    """ML k from 400 NB draws (k = 50, mean 2,000): within 25% (the sd of log k-hat is about 0.07 here)."""
    gen = np.random.default_rng(1)
    mu = np.full(400, 2000.0)
    y = gen.negative_binomial(50, 50 / (50 + mu))
    assert dispersion.fit_k(y, mu) == pytest.approx(50, rel=0.25)


def test_dirichlet_multinomial_concentration_is_recovered():
    gen = np.random.default_rng(2)
    shares = np.array([0.1, 0.2, 0.3, 0.4])
    rows = [gen.multinomial(20000, gen.dirichlet(300 * shares)) for _ in range(300)]
    assert dispersion.fit_alpha(np.array(rows), np.tile(shares, (300, 1))) == pytest.approx(300, rel=0.25)


def test_discrepancy_is_zero_in_the_data_and_a_random_walk_after():
    """Before the data end it is 0; h years after, across 2,000 keys its variance is h sd^2 (chi-square bound)."""
    p = {"trend.end_year": 2024, "disc.entry.sd": 0.05}
    assert discrepancy(2024, dict(p, **{"disc.key": 3}), "entry") == 0.0
    n = 2000
    for h in (1, 4):
        x = np.array([discrepancy(2024 + h, dict(p, **{"disc.key": k}), "entry") for k in range(n)])
        lo, hi = stats.chi2.ppf([0.0005, 0.9995], n - 1) / (n - 1)
        assert lo <= x.var(ddof=1) / (h * 0.05 ** 2) <= hi
        assert abs(x.mean()) < 4 * 0.05 * np.sqrt(h / n)
    # the path is a walk: year h+1 = year h + one more innovation, for the same key
    q = dict(p, **{"disc.key": 7})
    a, b = discrepancy(2026, q, "entry"), discrepancy(2027, q, "entry")
    assert b != a and discrepancy(2026, q, "entry") == a


def _identical_members(n: int) -> pd.DataFrame:
    table = ens.load()
    central = table[table["member"] == ens.CENTRAL]
    rows = [central.assign(member=m) for m in range(n + 1)]
    return pd.concat(rows, ignore_index=True)


def _cla(df: pd.DataFrame) -> pd.Series:
    x = df[(df["measure"] == "cla_31mar") & (df["category"] == "total") & (df["la"] == "ENG")
           & (df["age_band"] == "all") & (df["uasc"] == "all") & (df["scheme"] == "dfe_current")
           & (df["year"] == 2017)]
    return x.set_index("replicate")["value"]


def test_parameter_mode_holds_random_numbers_fixed():
    """With identical members, 'parameter' replicates are identical (same random numbers), 'both' are not."""
    table = _identical_members(3)
    kw = dict(replicates=3, seed=5, end_year=2017, scale=0.02, workers=1, progress=False, ensemble=table)
    par, info = runner.run_scenario("runs/scenarios/status_quo.toml", uncertainty="parameter", **kw)
    both, _ = runner.run_scenario("runs/scenarios/status_quo.toml", uncertainty="both", **kw)
    assert _cla(par).nunique() == 1 and _cla(both).nunique() > 1
    assert set(par["draw"]) == {1, 2, 3} and info["draws"] == 3


def test_process_mode_uses_the_central_member():
    df, info = runner.run_scenario("runs/scenarios/status_quo.toml", 2, 5, 2016, 0.02, workers=1, progress=False,
                                   ensemble=ens.load(), uncertainty="process")
    assert set(df["draw"]) == {0} and info["draws"] == 1


@pytest.mark.parametrize("make, needle", [
    (lambda p: None, "not found"),
    (lambda p: p.write_text("not parquet"), "Parquet"),
    (lambda p: pd.DataFrame({"member": [0], "no.such.parameter": [1.0]}).to_parquet(p), "unknown parameter"),
    (lambda p: pd.DataFrame({"member": [1]}).to_parquet(p), "central member"),
])
def test_bad_ensemble_file_is_a_clear_error_and_writes_nothing(tmp_path, capsys, make, needle):
    path = tmp_path / "ens.parquet"
    make(path)
    out = tmp_path / "run"
    rc = cli.main(["run", "runs/scenarios/status_quo.toml", "--ensemble", str(path), "--out", str(out),
                   "--scale", "0.02", "--replicates", "2", "--end-year", "2016", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and str(path) in err and not out.exists()


def test_shipped_ensemble_has_200_members_and_a_manifest():
    table = ens.load()
    assert (table["member"] != ens.CENTRAL).sum() >= 200
    import json
    man = json.loads(ens.SHIPPED.with_suffix(".json").read_text())
    assert man["data_sha256"] == ens.data_hash() and man["settings"]["members"] >= 200
    # identified parameters vary across members; non-identified priors keep their labelled ranges
    from calibration.parameters import load_register
    reg = load_register()
    for k in man["priors_drawn"]:
        lo, hi = reg[k]["low"], reg[k]["high"]
        assert table[k].between(lo, hi).all(), k
    assert table.loc[table["member"] != ens.CENTRAL, "care.reunified.base"].std() > 0


@pytest.mark.parametrize("args, needle", [(["--fit-until", "2016"], "fit_until"), (["--members", "0"], "--members"),
                                          (["--member-iterations", "0"], "--member-iterations")])
def test_calibrate_rejects_bad_settings_and_writes_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "cal"
    assert cli.main(["calibrate", *args, "--out", str(out), "--quiet"]) == 2
    assert needle in capsys.readouterr().err and not out.exists()


def test_random_walk_sd_is_the_driftless_maximum_likelihood():
    """The trend rule carries no drift after the data, so a steady growth is all innovation: a series growing
    10% a year has innovation sd log(1.1), and the estimate is the root mean square of the log changes."""
    assert dispersion.rw_sd(100 * 1.1 ** np.arange(8)) == pytest.approx(np.log(1.1), rel=1e-12)
    d = np.array([0.1, -0.2, 0.05, 0.3])
    assert dispersion.rw_sd(np.exp(np.r_[0, np.cumsum(d)])) == pytest.approx(np.sqrt(np.mean(d ** 2)), rel=1e-12)
    assert dispersion.rw_sd([5.0, 6.0]) == 0.0  # one change: no estimate


def test_discrepancy_groups_keep_their_keys_and_other_placements_has_one():
    """Groups are appended, never reordered (a group's index keys its paths, so old ensembles keep theirs); the
    other-placements weight has its own walk, independent of the residential one."""
    from agents.hazards import DISCREPANCY_DEST, DISCREPANCY_GROUPS
    assert DISCREPANCY_GROUPS[:3] == ("entry", "exit", "residential")
    assert DISCREPANCY_DEST["OTHER_IN_CARE"] == "other"
    p = {"trend.end_year": 2024, "disc.key": 5, "disc.other.sd": 0.3, "disc.residential.sd": 0.3}
    assert discrepancy(2024, p, "other") == 0.0
    assert discrepancy(2027, p, "other") != discrepancy(2027, p, "residential")


def test_posterior_step_solves_the_linear_gaussian_member_in_one_step():
    """With gaps linear in u (g = J (u - u_true) + e), one step from anywhere lands on the minimiser of
    sum w g^2 + sum ((u - u_prior) / sd)^2, the randomised-maximum-likelihood member, solved here independently
    as a stacked least-squares problem."""
    gen = np.random.default_rng(5)
    n = 6
    J = gen.normal(size=(n, n))
    J[:, -1] = J[:, 0] * 1e-6  # a ridge: the last coordinate barely moves the gaps
    w = gen.uniform(50.0, 200.0, n)
    sd = np.full(n, 10.0)  # wide enough that the step cap (2 sds) does not bind
    u_true, e, u_prior, u0 = (gen.normal(size=n) for _ in range(4))
    g0 = J @ (u0 - u_true) + e
    u1 = u0 + ens.posterior_step(u0, u_prior, J, g0, w, sd)
    A = np.vstack([np.sqrt(w)[:, None] * J, np.diag(1.0 / sd)])
    b = np.concatenate([np.sqrt(w) * (J @ u_true - e), u_prior / sd])
    want = np.linalg.lstsq(A, b, rcond=None)[0]
    np.testing.assert_allclose(u1, want, rtol=1e-8, atol=1e-8)
    assert abs(u1[-1] - u_prior[-1]) < 1e-3  # the ridge coordinate is held by its prior, not left to noise


def test_posterior_step_is_shortened_as_a_whole():
    """A step longer than STEP_CAP_SDS prior sds in some coordinate is scaled down keeping its direction."""
    J = np.eye(3)
    sd = np.array([0.1, 1.0, 1.0])
    du = ens.posterior_step(np.zeros(3), np.zeros(3), J, np.array([5.0, 1.0, -2.0]), np.full(3, 1e6), sd)
    assert np.max(np.abs(du) / (ens.STEP_CAP_SDS * sd)) == pytest.approx(1.0)
    np.testing.assert_allclose(du / np.linalg.norm(du), -np.array([5.0, 1.0, -2.0]) / np.linalg.norm([5, 1, -2]),
                               rtol=1e-4)


def test_prior_sds_follow_the_register_by_coordinate_kind():
    from calibration.parameters import load_register
    reg = load_register()
    coords = ens.coordinates(["care.to_adoption.base", "entry.trend", "capacity.friction"], 2024)
    want = [reg[ens.PRIOR_SD_ROWS[k]]["value"] for k in ("level", "trend", "share")]
    np.testing.assert_array_equal(ens.prior_sds(coords, reg), want)


def test_perturbed_leaving_keeps_the_18s_consistent():
    """A replicate's leaving cessations are its own cessations at 18 plus a draw of those before 18, so the
    series the fit uses (leaving less the 18s) carries only its own noise: with near-Poisson dispersion its
    yearly relative sd is about 1/sqrt(mean), not the difference of two independent large draws."""
    gen = np.random.default_rng(9)
    by_age = np.tile([100.0, 200.0, 300.0, 400.0, 500.0, 2000.0, 10000.0], (9, 1))
    obs = {"ceased.leaving": by_age[:, -1] + 3000.0, "ceased.by_age": by_age}
    noise = dispersion.NoiseModel()
    for key in dispersion.COUNT_SERIES:
        noise.k[key] = 1e7
    noise.alpha["ceased.by_age"] = noise.alpha["started.by_age"] = 1e7
    for key in dispersion.COUNT_SERIES:
        obs.setdefault(key, np.full(9, 1000.0))
    obs["started.by_age"] = np.tile([100.0, 200.0, 300.0, 400.0, 500.0], (9, 1))
    before = np.concatenate([(lambda o: o["ceased.leaving"] - o["ceased.by_age"][:, -1])(
        dispersion.perturb(obs, noise, gen)) for _ in range(200)])
    # Poisson(3000): sd 54.8; a chi-square bound on the variance of 1,800 draws (99.9%)
    n = before.size
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], n - 1) / (n - 1)
    assert lo <= before.var(ddof=1) / 3000.0 <= hi
    assert abs(before.mean() - 3000.0) < 4 * np.sqrt(3000.0 / n)
