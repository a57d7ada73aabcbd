"""The scenario files that ship in runs/scenarios/: every one loads (``sim.scenario.load`` validates it), every
lever carries its evidence (a source, or a labelled assumption with a rationale and a range), and the reform
files build on the status quo with its run defaults, so ``caresim compare`` pairs them replicate by replicate.
``naive_growth.toml`` (the comparator, no levers) has its own tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from agents import levers as L
from calibration.inputs import la_table
from sim import scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "runs" / "scenarios"
SHIPPED = sorted(p for p in SCENARIOS.glob("*.toml") if p.name != "naive_growth.toml")
REFORMS = [p for p in SHIPPED if p.name != "status_quo.toml"]
# where a lever's size may come from: the evidence table, the design guide's reform list, project data, the register
EVIDENCE = ("evidence.csv", "DESIGN.md", "calibration/data", "register")


def test_the_reform_scenarios_ship():
    assert {p.stem for p in REFORMS} >= {"ccn_newton_optimised", "macalister_review", "dfe_2023_strategy",
                                         "ccn_impower_residential"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_scenario_loads_and_its_levers_carry_evidence(path):
    sc = scenario.load(path)
    assert sc.name == path.stem and sc.description.strip()
    for lv in sc.levers:
        if lv.assumption:
            assert lv.rationale.strip() and lv.low is not None and lv.high is not None, lv.name
            assert lv.low < lv.high and lv.low <= lv.value <= lv.high, lv.name    # a range, containing the value
            text = lv.rationale
        else:
            assert lv.source.strip() and not lv.rationale and lv.low is None and lv.high is None, lv.name
            text = lv.source
        assert any(e in text for e in EVIDENCE), f"{path.name}: lever {lv.name} cites none of {EVIDENCE}"
    tables = L.compile_levers(sc.levers, la_table()[0])   # LA codes resolve against the engine's 2024 codes
    assert len(tables.levers) == len(sc.hazard_levers)


@pytest.mark.parametrize("path", REFORMS, ids=lambda p: p.stem)
def test_reforms_build_on_the_status_quo(path):
    sc = scenario.load(path)
    sq = scenario.load(SCENARIOS / "status_quo.toml")
    assert sc.base == "status_quo.toml" and sc.levers
    assert sc.run == sq.run and sc.parameters == sq.parameters and sc.inputs == sq.inputs
    applied = [lv for lv in sc.levers if lv.kind in ("hazard", "placement")]
    assert applied and all(lv.applied for lv in applied)   # every reform changes the simulated children
    assert min(lv.start for lv in sc.levers) >= L.FIRST_START
