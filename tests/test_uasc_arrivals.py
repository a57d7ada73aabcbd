"""UASC arrivals (published starts less transfers), their fitted age mix, and the averaged first-pass point fit."""
from __future__ import annotations

import numpy as np
import pytest

from calibration import dfe, first_pass, inputs
from calibration.parameters import base_parameters, resolve
from sim import engine


def test_uasc_arrivals_are_starts_less_transfers_every_year():
    """Each year's arrivals = UASC starts (N8 proxy before 2020) - care_taken_by_another_la, from the data files."""
    moved = dfe.series("national_cla_flows.csv", "ceased_by_reason", "care_taken_by_another_la")
    starts = inputs.uasc_starts()
    arrivals = inputs.uasc_arrivals()
    assert set(arrivals) == set(starts)
    for y, a in arrivals.items():
        assert a == max(starts[y] - float(moved.loc[y]), 0.0)
    assert arrivals[2024] == 7330 - 2140  # published UASC starts and transfers, year ending March 2024


def test_uasc_arrivals_missing_transfer_year_is_a_clear_error(monkeypatch):
    real = dfe.series

    def no_2019(name, measure, *args, **kw):
        s = real(name, measure, *args, **kw)
        return s.drop(2019) if measure == "ceased_by_reason" else s

    monkeypatch.setattr(dfe, "series", no_2019)
    with pytest.raises(dfe.DataError, match=r"national_cla_flows.csv.*care_taken_by_another_la.*2019"):
        inputs.uasc_arrivals()


def _sim(**over):
    params = resolve(base_parameters(over))
    tables = engine.YearTables.build(params, 2016, 2016)
    return engine.Simulation(params, inputs.build(), tables, 1, 1.0)


def test_uasc_age_mix_follows_the_fitted_level_and_trend():
    """younger = trend = 0 gives the prior shape; younger > 0 raises the under-16 share by exp(younger) in odds;
    a negative trend makes later arrivals older, and the mix stops changing after trend.end_year (damping 0)."""
    bp = base_parameters()
    prior = np.array([bp.get(f"arrive.uasc.age.{a}", 0.0) for a in range(18)])
    flat = _sim(**{"arrive.uasc.younger": 0.0, "arrive.uasc.younger.trend": 0.0})
    assert np.allclose(flat.uasc_age(2016), prior / prior.sum())
    y = 0.7
    sim = _sim(**{"arrive.uasc.younger": y, "arrive.uasc.younger.trend": -0.1, "trend.damping": 0.0})
    under = lambda m: m[:engine.UASC_OLDER_FROM].sum()
    p0 = under(prior / prior.sum())
    odds = lambda q: q / (1 - q)
    assert odds(under(sim.uasc_age(2016))) == pytest.approx(odds(p0) * np.exp(y))
    assert odds(under(sim.uasc_age(2020))) == pytest.approx(odds(p0) * np.exp(y - 0.4))
    assert np.allclose(sim.uasc_age(2024), sim.uasc_age(2030))  # held at its 2024 level after the data
    for year in (2016, 2024):
        assert sim.uasc_age(year).sum() == pytest.approx(1.0)


def test_first_pass_point_fit_is_the_mean_of_the_last_iterates(monkeypatch):
    """With ``average`` = k the fit returns the mean of the last k iterates (not the last one)."""
    path = iter(np.arange(1.0, 11.0))
    monkeypatch.setattr(first_pass, "simulated", lambda *a, **k: {"cla_31mar": np.ones(10)})

    def fake_update(v, obs, sim, damp):
        v["capacity.friction"] = float(next(path))
        return {"capacity.friction": 1.0}

    monkeypatch.setattr(first_pass, "update", fake_update)
    obs = {"cla_31mar": np.ones(10)}
    got = first_pass.fit(10, obs=obs, average=4, log=lambda *a: None)
    assert got["capacity.friction"] == pytest.approx(np.mean([7.0, 8.0, 9.0, 10.0]))
    path = iter(np.arange(1.0, 11.0))
    assert first_pass.fit(10, obs=obs, average=0, log=lambda *a: None)["capacity.friction"] == 10.0
