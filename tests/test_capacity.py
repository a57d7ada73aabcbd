"""Foster capacity (``agents/capacity.py``): the stock, the geography, the allocation in the engine and the Mesa
model, capacity levers, and the CLI/manifest switch.

(a) stock: the recursion equals its closed form, and the register's flows take it through Ofsted's published
mainstream stocks; (b) geography: every engine LA has a region, an England run covers every region, a local run
its LA's share; (c) engine: capacity off is the status quo's code path (the stored baseline, tests/test_baseline.py,
guards it against the code before capacity), effectively infinite capacity equals capacity off exactly, zero
capacity sends every would-be foster entrant to residential care, new entrants never take more than the free
places, and the allocation is the same with 1 and 2 threads; (d) the Mesa model applies the same rules child by
child; (e) levers: a recruitment multiplier of 1 changes nothing, a larger one never adds redirections;
(f) the switch reaches the manifest and the levers' ``applied`` flag.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from agents import attributes as A
from agents import capacity as C
from agents import levers as L
from agents import reference_model as R
from agents import states as S
from agents.hazards import compile_tables
from calibration.inputs import START_YEAR, build
from calibration.parameters import base_parameters, resolve
from sim import cli, engine, kernel, observe, output, rng, runner, scenario
from sim.cohort import make_cohort_from_arrays, mixed_arrays, run_cohort

SCALE = 0.03
END = 2026
SEED = 99
START = L.model_month(2024, 4)          # capacity levers may start in April 2024
ARRAYS = ("stock", "la_cla", "returned_open", "started", "ceased", "flows", "arrivals", "cm", "alive")


@pytest.fixture(scope="module")
def params():
    return resolve(base_parameters())


@pytest.fixture(scope="module")
def inputs():
    return build()


def make_world(params, inputs):
    """Year tables and a spin-up pool for the engine runs (capacity does not touch either)."""
    tables = engine.YearTables.build(params, START_YEAR + 1, END)
    previous = runner.set_threads(1)
    try:
        pool, _ = engine.spin_up(params, inputs, tables, 5, SCALE)
    finally:
        runner.set_threads(previous)
    return tables, pool


@pytest.fixture(scope="module")
def world(params, inputs):
    """The world shared by the engine runs at the test parameters."""
    return make_world(params, inputs)


def run(params, inputs, world, threads=1, seed=SEED, levers=(), **kw) -> engine.Result:
    tables, pool = world
    cap = kw.pop("capacity", True)
    p = {**params, **kw}
    previous = runner.set_threads(threads)
    try:
        return engine.run_replicate(p, inputs, tables, seed, engine.Settings(end_year=END, scale=SCALE,
                                                                             capacity=cap, levers=levers), pool)
    finally:
        runner.set_threads(previous)


def same(a: engine.Result, b: engine.Result) -> bool:
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in ARRAYS)


# the hard constraint (no matching friction: any free place will do), with two thirds of the usable places: it binds
# in most regions
BINDING = {"capacity.friction": 0.0, "capacity.usable_share": 0.55}
SOFT = {"capacity.friction": 0.3}        # matching friction: redirections while free places remain


# ---- (a) the stock ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("h0,rec,d", [(40480.0, 4092.0, 0.1486), (1000.0, 0.0, 0.3), (500.0, 120.0, 0.0),
                                      (0.0, 5000.0, 1.5)])
def test_stock_recursion_matches_closed_form(h0, rec, d):
    months = np.arange(241)
    rec_m = np.full((241, 2), rec)
    d_m = np.full((241, 2), d)
    h = C.households(np.array([h0, 2 * h0]), rec_m, d_m)
    np.testing.assert_allclose(h[:, 0], C.households_closed_form(h0, rec, d, months), rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(h[:, 1], C.households_closed_form(2 * h0, rec, d, months), rtol=1e-10, atol=1e-8)


def _published_mainstream() -> dict[int, float]:
    """Mainstream households at 31 March from evidence.csv: the mainstream rows, else all households less family
    and friends households (the years where Ofsted publishes both)."""
    from importlib import resources
    with resources.files("calibration").joinpath("data", "evidence", "evidence.csv").open() as fh:
        e = pd.read_csv(fh)
    e = e[e["topic"] == "foster_capacity"]
    e = e.assign(year=e["year_or_period"].astype(str).str.extract(r"^(\d{4})-03-31$")[0])
    e = e.dropna(subset=["year"])
    q = e["quantity"]
    out = {}
    main = e[q.str.match(r"^mainstream (\(non-kinship\) )?fostering households at 31 March")]
    out.update({int(y): float(v) for y, v in zip(main["year"], main["value"])})
    total = e[q == "approved fostering households at 31 March"].drop_duplicates("year").set_index("year")["value"]
    ff = e[q.str.match(r"^family and friends (\(kinship\) )?fostering households at 31 March")]
    ff = ff.drop_duplicates("year").set_index("year")["value"]
    for y in total.index.intersection(ff.index):
        out.setdefault(int(y), float(total[y] - ff[y]))
    return out


def test_register_flows_reproduce_published_mainstream_stocks(params, inputs):
    """capacity.recruitment.YYYY are derived so the recursion passes through Ofsted's published stocks: it does,
    to the rounding of the register's values (0.2%)."""
    pub = _published_mainstream()
    assert {2015, 2016, 2018, 2019, 2021, 2022, 2023, 2024} <= set(pub)
    plan = C.build_plan(params, inputs.la_codes, 12 * (2024 - START_YEAR), 1.0)
    for y, v in pub.items():
        got = plan.households[12 * (y - START_YEAR)].sum()
        assert got == pytest.approx(v, rel=2e-3), y


def test_capacity_parameters_are_in_the_register():
    from calibration.parameters import load_register
    reg = load_register()
    names = [k for k in reg if k.startswith("capacity.")]
    for k in ("capacity.households.2015", "capacity.deregistration.rate", "capacity.recruitment.future",
              "capacity.places_per_household", "capacity.usable_share", "capacity.friction",
              "capacity.region_split_year", "capacity.constraint"):
        assert k in names
    assert reg["capacity.friction"]["kind"] == "calibrated" and reg["capacity.constraint"]["value"] in (0, 1)
    for k in names:
        assert reg[k]["source"].strip(), k
        if reg[k]["kind"] in ("data", "derived"):
            assert "evidence.csv" in reg[k]["source"], k


# ---- (b) geography ---------------------------------------------------------------------------------------------
def test_every_engine_la_has_a_region_and_england_covers_every_region(inputs):
    reg = C.region_index(inputs.la_codes)
    assert reg.shape == (len(inputs.la_codes),) and set(reg) == set(range(C.N_REGION))
    assert reg[inputs.la_codes.index("E09000033")] == C.REGION_CODES.index("E12000007")  # Westminster: London
    np.testing.assert_allclose(C.region_shares(2015).sum(), 1.0)
    assert (C.coverage(inputs.la_codes) > 0.999).all()        # all LAs but the Isles of Scilly (no starts in 2024)


def test_a_local_run_gets_its_las_share_of_its_region(params, inputs):
    code = "E08000025"                                         # Birmingham (West Midlands)
    months = 24
    year = C.LOCAL_SPLIT_YEAR       # a local run starts from its LA's 2015 stock: the 2015 split, for both steps
    assert C.split_year(params, inputs.la_codes) == int(params["capacity.region_split_year"])
    assert C.split_year(params, [code]) == year
    eng = C.build_plan({**params, "capacity.region_split_year": year}, inputs.la_codes, months, 1.0)
    loc = C.build_plan(params, [code], months, 1.0)
    r = C.region_index([code])[0]
    w = C.coverage([code], year)[r]
    assert 0 < w < 1 and list(loc.regions) == [r]
    np.testing.assert_allclose(loc.usable[:, r], eng.usable[:, r] / C.coverage(inputs.la_codes, year)[r] * w)
    # the LA's children match among its whole region's free places: each of its free places counts 1 / w
    friction = float(params["capacity.friction"])
    assert loc.log_miss[r] == pytest.approx(C.log_miss(friction, w))
    assert eng.log_miss == pytest.approx(np.array([C.log_miss(friction, c) for c in C.coverage(inputs.la_codes, year)]))
    assert not loc.usable[:, np.arange(C.N_REGION) != r].any()


# ---- (c) the engine ------------------------------------------------------------------------------------------------
def test_capacity_off_is_the_status_quo_code_path(params, inputs, world):
    off = run(params, inputs, world, capacity=False)
    tables, pool = world
    default = engine.run_replicate(params, inputs, tables, SEED, engine.Settings(end_year=END, scale=SCALE), pool)
    assert same(off, default) and off.foster_capacity is None
    df = observe.tidy(off, "sq", 0, 0)
    assert not df["measure"].str.startswith("foster_capacity").any()


def test_infinite_capacity_equals_capacity_off(params, inputs, world):
    off = run(params, inputs, world, capacity=False)
    huge = run(params, inputs, world, **{"capacity.households.2015": 1e9, "capacity.friction": 0.0})
    assert same(off, huge)
    log = huge.foster_capacity
    assert log[1:, :, C.ENTRANTS].sum() > 0 and log[:, :, C.REDIRECTED].sum() == 0


def test_zero_capacity_sends_every_foster_entrant_to_residential(params, inputs):
    """Transfers between LAs are switched off: a transferred child re-starts (a DfE start) in the placement it
    already has, so with them a child already in foster care could start there without any new placement."""
    p = {**params, "care.transferred.base": -50.0}
    world = make_world(p, inputs)
    off = run(p, inputs, world, capacity=False)
    zero = run(p, inputs, world, **{"capacity.usable_share": 0.0})
    assert zero.flows[:, kernel.F_TRANSFER].sum() == 0
    log = zero.foster_capacity
    assert (log[1:, :, C.PLACES] == 0).all() and log[1:, :, C.ENTRANTS].sum() > 100
    assert np.array_equal(log[:, :, C.REDIRECTED], log[:, :, C.ENTRANTS])
    assert zero.started[1:, S.FOSTER].sum() == 0                 # no DfE start in foster care
    foster_cm = zero.cm[1:, S.FOSTER].sum(axis=(1, 2))           # children in FOSTER at each month's end
    assert (np.diff(foster_cm) <= 0).all()                       # nobody new enters
    assert zero.started[1:, S.RESIDENTIAL_HOME].sum() > off.started[1:, S.RESIDENTIAL_HOME].sum()


def test_zero_capacity_moves_exactly_the_would_be_foster_entrants(params):
    """One month of a cohort: with no places, the children who would have entered FOSTER are in RESIDENTIAL_HOME
    instead, and every other child's month is the same (a stay under a month in foster care stays at home; only
    its provider draw is re-read, for a children's home)."""
    tab = compile_tables(params, 2026)
    arrays = mixed_arrays(20000, seed=4, shares={"AT_HOME": 0.3, "EDGE_OF_CARE": 0.3, "KINSHIP": 0.1,
                                                 "FOSTER": 0.2, "RESIDENTIAL_HOME": 0.1})
    arrays["la"] = np.arange(20000) % 4
    plan = C.CapacityPlan.fixed(np.zeros(C.N_REGION), [0, 1, 2, 7], 1)
    pops = []
    for cap in (None, plan):
        pop = make_cohort_from_arrays(**arrays)
        run_cohort(pop, tab, 8, 1, first_month=START, capacity=cap)
        pops.append(pop)
    before = np.asarray(arrays["state"])
    entered = (pops[0].state[:20000] == S.FOSTER) & (before != S.FOSTER)
    assert entered.sum() > 50
    assert (pops[1].state[:20000][entered] == S.RESIDENTIAL_HOME).all()
    assert np.array_equal(pops[0].state[:20000][~entered], pops[1].state[:20000][~entered])
    home = pops[0].state[:20000] == S.RETURNED_HOME
    keep = ~entered & ~home
    assert np.array_equal(pops[0].flags[:20000][keep], pops[1].flags[:20000][keep])
    no_agency = np.uint8(~A.FLAG_AGENCY & 0xFF)
    assert np.array_equal(pops[0].flags[:20000] & no_agency, pops[1].flags[:20000] & no_agency)
    for f in ("age", "epi", "plc", "prev", "la", "cid"):
        assert np.array_equal(getattr(pops[0], f)[:20000], getattr(pops[1], f)[:20000])


def _places_are_used_before_anyone_is_redirected(log):
    """Entrants take no more places than are free, and nobody is redirected while a place is free."""
    places, occ = log[..., C.PLACES], log[..., C.OCCUPIED]
    red, taken = log[..., C.REDIRECTED], log[..., C.TAKEN]
    free = np.maximum(places - occ, 0)
    return bool((taken <= free).all() and ((red == 0) | (taken == free)).all())


def test_new_entrants_never_exceed_the_free_places(params, inputs, world):
    res = run(params, inputs, world, **BINDING)
    log = res.foster_capacity[1:]
    assert log[..., C.REDIRECTED].sum() > 100                     # the constraint binds
    assert (log[..., C.OCCUPIED] + log[..., C.TAKEN] <= np.maximum(log[..., C.PLACES], log[..., C.OCCUPIED])).all()
    assert _places_are_used_before_anyone_is_redirected(log)      # and places are not left empty while some wait
    assert (log[..., C.TAKEN] + log[..., C.REDIRECTED] <= log[..., C.ENTRANTS]).all()
    foster_cm = res.cm[1:, S.FOSTER].sum(axis=(1, 2))             # children in FOSTER at each month's end
    assert np.array_equal(foster_cm, (log[..., C.OCCUPIED] + log[..., C.TAKEN]).sum(axis=1))
    df = observe.tidy(res, "cap", 0, 0)
    red = df[df["measure"] == "foster_capacity_redirected"].pivot(index="year", columns="category", values="value")
    np.testing.assert_allclose(red.drop(columns="total").sum(axis=1), red["total"])
    assert red["total"].sum() == pytest.approx(log[..., C.REDIRECTED].sum() / SCALE)


def test_allocation_is_the_same_with_one_and_two_threads(params, inputs, world):
    if runner.max_threads() < 2:
        pytest.skip("numba runs with one thread here")
    one = run(params, inputs, world, threads=1, **BINDING)
    two = run(params, inputs, world, threads=2, **BINDING)
    assert same(one, two) and np.array_equal(one.foster_capacity, two.foster_capacity)


def test_soft_friction_matches_the_analytic_admission_rate():
    """With free places F left in a region, an entrant is admitted with probability 1 - friction^(F/1000) at
    England scale: 20,000 short stays (which use no place) against F = 300 free places at scale 0.25 (1,200 at
    England scale, friction 0.3: p = 0.764) are admitted within 4 binomial standard deviations of n p."""
    n, free, scale, friction = 20_000, 300, 0.25, 0.3
    ids = rng.make_id(5, rng.STREAM_CARE, 0) + np.arange(n, dtype=np.uint64)
    u = np.array([rng.draw32(np.uint64(SEED), c, 130, C.DEC_MATCH) for c in ids], dtype=np.float64) / C.TWO32
    admitted = np.zeros(n, dtype=np.uint8)
    C.allocate(np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.uint8), np.array([free]), admitted, u,
               np.full(C.N_REGION, C.log_miss(friction, scale)))
    p = 1 - friction ** (free / scale / 1000)
    assert abs(admitted.sum() - n * p) < 4 * np.sqrt(n * p * (1 - p))
    assert C.match_probability(5, C.log_miss(0.0, scale)) == 1.0        # no friction: any free place will do
    with pytest.raises(ValueError, match="capacity.friction"):
        C.log_miss(1.0, scale)


def test_soft_friction_redirects_while_places_are_free(params, inputs, world):
    """Matching friction: some entrants go to residential care in months that end with free places, the more so
    the fewer are free; same with 1 and 2 threads."""
    one = run(params, inputs, world, threads=1, **SOFT)
    log = one.foster_capacity[1:]
    free_left = log[..., C.PLACES] - log[..., C.OCCUPIED] - log[..., C.TAKEN]
    assert log[..., C.REDIRECTED][free_left > 0].sum() > 20
    if runner.max_threads() >= 2:
        two = run(params, inputs, world, threads=2, **SOFT)
        assert same(one, two) and np.array_equal(one.foster_capacity, two.foster_capacity)


def test_priority_draws_are_uniform():
    """The allocation priority is a uniform draw per (seed, child, month): deciles of 100,000 draws pass a
    chi-square test at the 0.1% level, and it is a decision of its own."""
    ids = rng.make_id(5, rng.STREAM_CARE, 0) + np.arange(100_000, dtype=np.uint64)
    u = np.array([rng.draw32(np.uint64(SEED), c, 130, C.DEC_PRIORITY) for c in ids[:100_000]], dtype=np.float64)
    counts = np.bincount((u / 2**32 * 10).astype(int), minlength=10)
    assert stats.chisquare(counts).pvalue > 1e-3
    used = {rng.DEC_EVENT, rng.DEC_DEST, rng.DEC_PROVIDER, rng.DEC_SHORT, rng.DEC_NEW_LA, rng.DEC_SEX, rng.DEC_NEED,
            rng.DEC_AGE, rng.DEC_LA, rng.DEC_NEWBORN, L.COVER_DEC}
    assert C.DEC_PRIORITY not in used and C.DEC_MATCH not in used and C.DEC_MATCH != C.DEC_PRIORITY


# ---- (d) the Mesa model ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("friction", [0.0, 0.5])
def test_engine_and_mesa_allocate_identically(params, friction):
    tab = compile_tables(params, 2026)
    arrays = mixed_arrays(3000, seed=12, shares={"AT_HOME": 0.3, "EDGE_OF_CARE": 0.2, "FOSTER": 0.3, "KINSHIP": 0.1,
                                                 "RESIDENTIAL_HOME": 0.05, "RETURNED_HOME": 0.05})
    arrays["la"] = np.arange(3000) % 10
    region = np.array([0, 0, 1, 1, 1, 2, 2, 7, 7, 8])
    occ0 = np.bincount(region[arrays["la"][arrays["state"] == S.FOSTER]], minlength=C.N_REGION)
    plan = C.CapacityPlan.fixed(np.maximum(occ0 - 40, 0), region, 200,   # fewer places than children: it binds
                                log_miss=C.log_miss(friction, 0.01))      # a small run: friction bites
    pop = make_cohort_from_arrays(**arrays)
    ref = R.ReferenceModel.from_population(pop, tab, 4242, first_month=START, capacity=plan)
    log = np.zeros((19, C.N_REGION, C.N_LOG), dtype=np.int64)
    occ_e = run_cohort(pop, tab, 4242, 18, first_month=START, capacity=plan, capacity_log=log)
    occ_m = ref.run(18)
    assert np.array_equal(occ_e, occ_m)
    assert np.array_equal(log[1:], np.array(ref.capacity_log))
    assert log[..., C.REDIRECTED].sum() > 20
    assert _places_are_used_before_anyone_is_redirected(log[1:]) == (friction == 0.0)
    m = pop.alive_mask()
    order = np.argsort(pop.cid[: pop.n_used][m])
    got = ref.child_arrays()
    for k in ("state", "flags", "epi", "plc", "prev", "la"):
        assert np.array_equal(got[k], getattr(pop, k)[: pop.n_used][m][order].astype(np.int64)), k
    # the children in FOSTER at the end are what the log says: those there before plus those admitted
    last = log[-1]
    foster_now = np.bincount(region[pop.la[: pop.n_used][pop.state[: pop.n_used] == S.FOSTER]],
                             minlength=C.N_REGION)
    assert np.array_equal(foster_now, last[:, C.OCCUPIED] + last[:, C.TAKEN])


# ---- (e) capacity levers -----------------------------------------------------------------------------------------
def cap_lever(target="recruitment", **kw) -> L.Lever:
    return L.Lever(name=kw.pop("name", f"cap_{target}"), kind="capacity", capacity=target,
                   start=kw.pop("start", (2024, 4)), source="test", **kw)


def test_lever_effects_on_the_plan(params, inputs):
    months = 12 * (END - START_YEAR)
    base = C.build_plan(params, inputs.la_codes, months, SCALE)
    for lv in (cap_lever(multiplier=1.0), cap_lever("retention", multiplier=1.0),
               cap_lever("usable_share", addition=0.0)):
        plan = C.build_plan(params, inputs.la_codes, months, SCALE, [lv])
        assert np.array_equal(plan.places, base.places) and np.array_equal(plan.households, base.households)
    more = C.build_plan(params, inputs.la_codes, months, SCALE, [cap_lever(multiplier=1.5, phase_in_months=12)])
    assert np.array_equal(more.households[:START], base.households[:START])   # nothing before the start
    assert (more.households[START + 1:] > base.households[START + 1:]).all()
    kept = C.build_plan(params, inputs.la_codes, months, SCALE, [cap_lever("retention", multiplier=0.9)])
    assert (kept.households[START:] >= base.households[START:]).all() and kept.households[-1].sum() > \
        base.households[-1].sum()
    # a lever on one region's LAs changes only that region
    codes = [c for c, r in zip(inputs.la_codes, C.region_index(inputs.la_codes)) if r == 7][:5]
    local = C.build_plan(params, inputs.la_codes, months, SCALE, [cap_lever(addition=500.0, las=tuple(codes))])
    diff = (local.households != base.households).any(axis=0)
    assert list(np.flatnonzero(diff)) == [7]
    added = local.households[-1, 7] - base.households[-1, 7]
    assert 0 < added < 500.0 * (END - 2024)


def test_recruitment_multiplier_one_gives_zero_paired_difference(params, inputs, world):
    base = run(params, inputs, world, **BINDING)
    one = run(params, inputs, world, levers=(cap_lever(multiplier=1.0),), **BINDING)
    assert same(base, one) and np.array_equal(base.foster_capacity, one.foster_capacity)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_more_recruitment_never_adds_redirections(params, inputs, world, seed):
    base = run(params, inputs, world, seed=seed, **BINDING)
    more = run(params, inputs, world, seed=seed, levers=(cap_lever(multiplier=2.0),), **BINDING)
    assert np.array_equal(base.foster_capacity[:START], more.foster_capacity[:START])  # same path before the start
    red_b = np.cumsum(base.foster_capacity[START:, :, C.REDIRECTED].sum(axis=1))
    red_m = np.cumsum(more.foster_capacity[START:, :, C.REDIRECTED].sum(axis=1))
    assert (red_m <= red_b).all() and red_m[-1] < red_b[-1]


# ---- (f) the switch ------------------------------------------------------------------------------------------------
def test_capacity_switch_reaches_the_manifest_and_levers(tmp_path, params):
    p = tmp_path / "s.toml"
    p.write_text('[scenario]\nname = "s"\n[[lever]]\nname = "recruit"\nkind = "capacity"\ncapacity = "recruitment"\n'
                 'multiplier = 1.2\nsource = "test"\n[[lever]]\nname = "fgc"\nkind = "hazard"\nfrom = "EDGE_OF_CARE"\n'
                 'to = "ENTER_CARE"\nmultiplier = 0.8\nsource = "test"\n', encoding="utf-8")
    sc = scenario.load(p)
    info = {"params": params, "seed": 1, "replicates": 1, "end_year": 2018, "scale": 0.02, "by_la": False,
            "individuals_alive_max_mean": 0.0, "individuals_alive_2015_mean": 0.0, "wall_seconds": 0.0,
            "workers": 1, "threads": 1}
    for flag, want in ((True, "on"), (False, "off")):
        man = json.loads(json.dumps(output.manifest(sc, dict(info, capacity=flag)), default=output._json_default))
        levers = {lv["name"]: lv["applied"] for lv in man["scenario"]["levers"]}
        assert man["capacity"] == want and levers == {"recruit": flag, "fgc": True}
    parser = cli._parser()
    assert parser.parse_args(["run", "x.toml"]).capacity == "fitted"
    assert parser.parse_args(["run", "x.toml", "--capacity", "on"]).capacity == "on"
    assert parser.parse_args(["compare", "a.toml", "--capacity", "off"]).capacity == "off"
    assert [cli.capacity_choice(v) for v in ("on", "off", "fitted")] == [True, False, None]


def test_runs_follow_the_constraint_their_ensemble_was_fitted_with(tmp_path):
    """capacity None: the parameters' capacity.constraint; an ensemble fitted before the column existed: off."""
    from calibration import ensemble as ens
    p = tmp_path / "sq.toml"
    p.write_text('[scenario]\nname = "sq"\n', encoding="utf-8")
    table = ens.load()
    old = table.drop(columns=[c for c in table.columns if c == "capacity.constraint"])
    on = pd.concat([old, pd.DataFrame({"capacity.constraint": 1.0}, index=old.index)], axis=1)
    for tab, want in ((old, False), (on, True)):
        _, info = runner.run_scenario(scenario.load(p), replicates=1, seed=3, end_year=2016, scale=0.02, workers=1,
                                      progress=False, threads=1, ensemble=tab)
        assert info["capacity"] is want


def test_capacity_run_through_the_runner(tmp_path):
    p = tmp_path / "sq.toml"
    p.write_text('[scenario]\nname = "sq"\n', encoding="utf-8")
    df, info = runner.run_scenario(scenario.load(p), replicates=1, seed=3, end_year=2017, scale=0.02, workers=1,
                                   progress=False, threads=1, capacity=True)
    assert info["capacity"] is True
    cap = df[df["measure"].str.startswith("foster_capacity")]
    assert set(cap["measure"]) == {f"foster_capacity_{n}" for n in ("usable", "occupied", "entrants", "redirected")}
    assert set(cap["category"]) == set(C.REGION_CODES) | {"total"} and set(cap["la"]) == {"ENG"}
    assert list(df.columns) == list(observe.COLUMNS)
