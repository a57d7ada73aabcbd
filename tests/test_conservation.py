"""Conservation invariants (DESIGN §6, LASER): switchable checks in the engine, and stock-flow identities.

The engine's check (``Settings(check_invariants=True)``): reservoirs + individuals + cumulative exits - births
- population change - UASC arrivals is constant, checked every month, AssertionError otherwise. The tests
also check, from the ``Result`` arrays alone, that individuals(t) = individuals(t-1) + arrivals(t) - exits(t)
and that child-months in month t equal the individuals alive at its end, and that a leak is caught.
"""
from __future__ import annotations

import numpy as np
import pytest

from agents import states as S
from calibration.inputs import START_YEAR, build
from calibration.parameters import base_parameters, resolve
from sim import engine, kernel
from sim.engine import Settings, YearTables, run_replicate, spin_up

SCALE = 0.02
END_YEAR = 2018
N_MONTHS = 12 * (END_YEAR - START_YEAR)
SEED = 2015


@pytest.fixture(scope="module")
def setup():
    params = resolve(base_parameters())
    inputs = build()
    tables = YearTables.build(params, START_YEAR + 1, END_YEAR)
    pool, _ = spin_up(params, inputs, tables, SEED, SCALE)
    return params, inputs, tables, pool


@pytest.fixture(scope="module")
def checked(setup):
    params, inputs, tables, pool = setup
    return run_replicate(params, inputs, tables, SEED, Settings(end_year=END_YEAR, scale=SCALE,
                                                                check_invariants=True), pool=pool)


def test_invariant_checked_every_month(checked):
    assert checked.invariant_checks == N_MONTHS
    assert checked.alive.shape == (N_MONTHS + 1,)


def test_check_is_off_by_default(setup, checked):
    params, inputs, tables, pool = setup
    r = run_replicate(params, inputs, tables, SEED, Settings(end_year=END_YEAR, scale=SCALE), pool=pool)
    assert r.invariant_checks == 0
    # switching the check on does not change the simulation
    assert np.array_equal(r.stock, checked.stock) and np.array_equal(r.flows, checked.flows)


def test_individuals_stock_flow_identity(checked):
    """alive(t) - alive(t-1) = arrivals(t) - (to previously known + gone + aged 18)(t), every month."""
    r = checked
    out = r.flows[1:, kernel.F_TO_PREV_KNOWN] + r.flows[1:, kernel.F_GONE] + r.flows[1:, kernel.F_AGE18]
    lhs = np.diff(r.alive)
    rhs = r.arrivals[1:].sum(axis=1) - out
    bad = np.flatnonzero(lhs != rhs) + 1
    assert bad.size == 0, f"months {bad.tolist()}: change {lhs[bad - 1]} != in - out {rhs[bad - 1]}"
    assert r.arrivals[1:].sum() > 0 and out.sum() > 0           # flows actually happened


def test_child_months_equal_individuals(checked):
    """Every individual alive at the end of a month contributes exactly one child-month to ``cm``."""
    r = checked
    assert np.array_equal(r.cm[1:].reshape(N_MONTHS, -1).sum(axis=1), r.alive[1:])


def _leak(monkeypatch, leak_month: int):
    """Inject a bookkeeping error: in ``leak_month`` one live child vanishes without any exit being recorded."""
    orig = engine.Simulation.step

    def step(self, pop, res, month, *args, **kwargs):
        out = orig(self, pop, res, month, *args, **kwargs)
        if month == leak_month:
            i = int(np.flatnonzero(pop.state[: pop.n_used] == S.FOSTER)[0])
            pop.state[i] = S.VACANT
        return out

    monkeypatch.setattr(engine.Simulation, "step", step)


def test_leak_is_caught(setup, monkeypatch):
    params, inputs, tables, pool = setup
    _leak(monkeypatch, 5)
    with pytest.raises(AssertionError, match="conservation broken in month 5"):
        run_replicate(params, inputs, tables, SEED, Settings(end_year=END_YEAR, scale=SCALE, check_invariants=True),
                      pool=pool)


def test_leak_is_caught_by_the_stock_flow_identity_too(setup, monkeypatch):
    params, inputs, tables, pool = setup
    _leak(monkeypatch, 7)
    r = run_replicate(params, inputs, tables, SEED, Settings(end_year=2016, scale=SCALE), pool=pool)
    assert r.invariant_checks == 0                         # check off: the run completes ...
    out = r.flows[1:, kernel.F_TO_PREV_KNOWN] + r.flows[1:, kernel.F_GONE] + r.flows[1:, kernel.F_AGE18]
    bad = np.flatnonzero(np.diff(r.alive) != r.arrivals[1:].sum(axis=1) - out) + 1
    assert bad.tolist() == [7]                             # ... but the identity pins the month


def test_lost_case_closures_are_caught(setup, monkeypatch):
    """A realistic bug: closed cases never reach the previously-known reservoir."""
    params, inputs, tables, pool = setup
    monkeypatch.setattr(engine.Reservoirs, "close_cases", lambda self, by_age: None)
    with pytest.raises(AssertionError, match="conservation broken in month 1"):
        run_replicate(params, inputs, tables, SEED, Settings(end_year=END_YEAR, scale=SCALE, check_invariants=True),
                      pool=pool)
