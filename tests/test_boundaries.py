"""Authorities created after 2015: earlier years from their predecessors by population share (DESIGN §5)."""
from __future__ import annotations

import numpy as np
import pytest

from calibration import boundaries as B
from calibration import dfe
from calibration import inputs as model_inputs
from calibration import local
from calibration import local_data as D
from sim import observe

NORTH, WEST, BCP, DORSET, WF = "E06000061", "E06000062", "E06000058", "E06000059", "E06000064"
NORTHANTS, CUMBRIA = "E10000021", "E10000006"


def _published(code: str, year: int, measure: str = "total") -> float:
    la = dfe.read("la_cla.csv")
    v = la[(la["geographic_level"] == "Local authority") & (la["new_la_code"] == code) & (la["year"] == year)
           & (la["measure"] == measure)]["value"]
    return float(v.iloc[0])


def _total(rows, year: int, measure: str = "total") -> float:
    return float(rows[(rows["year"] == year) & (rows["measure"] == measure)]["value"].iloc[0])


@pytest.mark.parametrize("change", B.CHANGES)
def test_successors_split_their_group_whole(change):
    """The successors' population shares add to 1, and in every mapped year their mapped CLA totals, starts and
    populations add back to the predecessors' sums."""
    assert sum(B.share(s) for s in change.successors) == pytest.approx(1.0, abs=1e-12)
    first = B.first_year(change.successors[0])
    assert all(B.first_year(s) == first for s in change.successors)
    rows = {s: observe.local_rows(s) for s in change.successors}
    for year in (2015, first - 1):
        for measure in ("total", "started"):
            pred = sum(_published(p, year, measure) for p in change.predecessors)
            assert sum(_total(r, year, measure) for r in rows.values()) == pytest.approx(pred, rel=1e-12)
    pops = B._pop_totals()
    for y in range(2012, first - 1):
        pred = pops.reindex(list(change.predecessors))[y]
        if pred.notna().all():
            assert sum(B.population_totals(s)[y] for s in change.successors) == pytest.approx(pred.sum(), rel=1e-12)


def test_mapped_rows_are_marked_and_own_rows_untouched():
    rows = observe.local_rows(NORTH)
    early, own = rows[rows["year"] < 2022], rows[rows["year"] >= 2022]
    assert early["source"].str.startswith("mapped").all() and not own["source"].str.startswith("mapped").any()
    assert _total(rows, 2024) == _published(NORTH, 2024)
    assert _total(rows, 2021) == pytest.approx(B.share(NORTH) * _published(NORTHANTS, 2021), rel=1e-12)
    rutland = observe.local_rows("E06000017")
    assert not rutland["source"].astype(str).str.startswith("mapped").any() and B.own_from("E06000017") is None


def test_a_cell_suppressed_in_a_predecessor_stays_suppressed():
    la = dfe.read("la_cla.csv")
    hidden = la[(la["new_la_code"] == CUMBRIA) & la["value"].isna() & (la["flag"] == "c")].iloc[0]
    rows = observe.local_rows(WF)
    got = rows[(rows["year"] == hidden["year"]) & (rows["measure"] == hidden["measure"])
               & (rows["scheme"] == hidden["scheme"]) & (rows["category"] == hidden["category"])]
    assert len(got) == 1 and np.isnan(got["value"].iloc[0]) and got["flag"].iloc[0] == "c"


def test_population_before_any_predecessor_count_moves_with_the_region():
    """Bournemouth, Poole and Dorset county have no published 0-17 counts before mid-2019: BCP's earlier years are
    its mid-2019 count moved with the South West's children."""
    pop = dfe.read("population_0_17.csv")
    reg = pop[(pop["area_code"] == "E12000009") & (pop["source"] == "POP_DFE")].drop_duplicates("year")
    reg = reg.set_index("year")["value"]
    p = B.population_totals(BCP)
    assert p[2015] == pytest.approx(p[2019] * reg[2015] / reg[2019], rel=1e-12)


def test_successor_inputs_and_targets():
    """A successor simulates from its mapped 2015 stock; targets before its first year are marked mapped and its
    fit gains the mapping effect, which an authority that existed in 2015 does not have."""
    inp = model_inputs.local(WF)
    assert sum(inp.init_cla_old.values()) == pytest.approx(B.share(WF) * _published(CUMBRIA, 2015))
    assert any("created after 2015" in n for n in inp.notes)
    ts = D.targets(WF, 2024)
    assert all(t.mapped == (t.year < 2024) for t in ts) and any(not t.mapped for t in ts)
    assert local.coordinates_for(ts)[-1] is local.MAPPING
    assert local.coordinates_for(D.targets("E06000017", 2024)) == local.COORDINATES


def test_mapped_stock_scales_the_whole_2015_stock():
    """``la.mapped.stock`` multiplies every 2015 target (CLA, CPP, CIN) by its exponential, and nothing else."""
    from calibration.parameters import base_parameters, resolve
    from sim import engine
    inp = model_inputs.local(WF)
    params = resolve(base_parameters())
    tables = engine.YearTables.build(params, 2016, 2016)
    pool, _ = engine.spin_up(params, inp, tables, 7, 1.0)
    base = engine.initial_targets(params, inp, pool, 1.0)
    moved = engine.initial_targets({**params, "la.mapped.stock": 0.2}, inp, pool, 1.0)
    assert np.allclose(moved, base * np.exp(0.2), rtol=1e-9, atol=1e-9)


def test_a_successor_calibrates_with_its_mapping_effect():
    """A quick fit of Westmorland and Furness (fit runs of ~300 children, 4 members): the manifest reports the
    mapping effect within its prior, the central member carries its MAP and the members vary it."""
    from calibration import ensemble as ens
    national = ens.load()
    table, manifest = local.build(WF, national[national["member"] <= 4], members=4, log=lambda *_: None,
                                  fit_cla=300)
    info = manifest["local"]["coordinates"]["mapping"]
    assert manifest["local"]["mapped"] > 0 and info["parameters"] == ["la.mapped.stock"]
    assert 0 < info["posterior_sd"] <= info["pooling_sd"] * 1.0001
    central = table.loc[table["member"] == ens.CENTRAL, "la.mapped.stock"].iloc[0]
    assert central == pytest.approx(info["map"]) and table["la.mapped.stock"].nunique() == len(table)
