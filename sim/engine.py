"""One replicate: spin-up, the 31 March 2015 stock, and the monthly loop of arrivals and transitions.

Month m = 1 is April 2015; the DfE year of month m is 2015 + ceil(m / 12) and 31 March of year Y is the end
of month 12 * (Y - 2015). Reservoirs of counts (general population, previously known) feed arrivals; every
child who becomes known is an individual in ``Population`` (DESIGN §2, who is an individual).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from agents import attributes as A
from agents import capacity as CAP
from agents import states as S
from agents.hazards import HazardTables, compile_tables, discrepancy, to_threshold, trend_x
from agents.levers import Lever, LeverTables, compile_levers
from calibration.inputs import START_YEAR, ModelInputs, population_for_year
from sim import kernel, rng
from sim.population import Population

N_AGE_Y = 18
UASC_OLDER_FROM = 16  # arrive.uasc.younger scales the arrival weights of UASC aged under 16 (register)
N_STREAM = len(rng.STREAM_NAMES)


@dataclass
class Settings:
    end_year: int = 2035
    scale: float = 1.0
    check_invariants: bool = False
    levers: tuple[Lever, ...] = ()   # a scenario's levers (hazard and placement levers act from their starts)
    capacity: bool = False           # foster capacity constraint (agents/capacity.py; capacity levers apply)


@dataclass
class YearTables:
    """Compiled tables for every simulated year, shared by all replicates of one parameter set."""
    params: dict
    by_year: dict[int, HazardTables]

    @classmethod
    def build(cls, params: Mapping[str, float], first: int, last: int) -> "YearTables":
        return cls(dict(params), {y: compile_tables(params, y) for y in range(first, last + 1)})

    def get(self, year: int) -> HazardTables:
        """Tables for ``year``, compiled on first use (spin-up years before the run)."""
        if year not in self.by_year:
            self.by_year[year] = compile_tables(self.params, year)
        return self.by_year[year]


@dataclass
class Result:
    """Integer outputs of one replicate (counts at simulation scale; the observation model rescales)."""
    years: np.ndarray
    stock: np.ndarray          # [year, state, age7, uasc, agency] at 31 March
    la_cla: np.ndarray         # [year, la]
    returned_open: np.ndarray  # [year, age7, uasc]
    started: np.ndarray        # [year, state, age7, uasc]  (year index 0 = 2015 is empty)
    ceased: np.ndarray         # [year, reason, age7, uasc]
    flows: np.ndarray          # [month, kernel.N_FLOW]
    arrivals: np.ndarray       # [month, stream]
    cm: np.ndarray             # [month, state, agency, need] child-months
    alive: np.ndarray          # [month] individuals alive at the end of each month (index 0 = start)
    scale: float
    invariant_checks: int = 0
    info: dict = field(default_factory=dict)
    # with the capacity constraint on: [month, region, capacity.N_LOG] (capacity.LOG_NAMES: places, occupied,
    # entrants, redirected, taken)
    # for the regions of ``foster_capacity_regions`` (indices into capacity.REGION_CODES); None when off
    foster_capacity: np.ndarray | None = None
    foster_capacity_regions: np.ndarray | None = None


class Reservoirs:
    """Counts of children not simulated individually: general population and previously known (by age)."""

    def __init__(self, general: np.ndarray):
        self.general = general.astype(np.int64).copy()
        self.recent = np.zeros((12, N_AGE_Y), dtype=np.int64)  # previously known, by months since closure
        self.old = np.zeros(N_AGE_Y, dtype=np.int64)
        self.cum_births = 0
        self.cum_popchange = 0
        self.cum_age18 = 0

    def total(self) -> int:
        return int(self.general.sum() + self.recent.sum() + self.old.sum())

    def close_cases(self, by_age: np.ndarray) -> None:
        self.recent[0] += by_age

    def roll_month(self) -> None:
        """Cases closed 12 months ago join the older previously-known pool."""
        self.old += self.recent[-1]
        self.recent[1:] = self.recent[:-1].copy()
        self.recent[0] = 0

    def age_year(self, target: np.ndarray, individuals_by_age: np.ndarray) -> None:
        """Each April: everyone a year older, 17-year-olds leave, births enter, then match ONS by age."""
        self.cum_age18 += int(self.general[-1] + self.recent[:, -1].sum() + self.old[-1])
        births = int(target[0])
        self.general[1:] = self.general[:-1].copy()
        self.general[0] = births
        self.recent[:, 1:] = self.recent[:, :-1].copy()
        self.recent[:, 0] = 0
        self.old[1:] = self.old[:-1].copy()
        self.old[0] = 0
        self.cum_births += births
        delta = target - (self.general + self.recent.sum(axis=0) + self.old + individuals_by_age)
        delta = np.maximum(delta, -self.general)  # the general pool cannot go negative
        self.general += delta
        self.cum_popchange += int(delta.sum())


class FosterEntrants:
    """Scratch for the foster capacity pass: the per-chunk lists of children ``step_month`` saw enter FOSTER and
    the per-chunk counts of children already there, by region (``kernel.allocate_foster`` reads them)."""

    def __init__(self, region_of_la: np.ndarray):
        self.region_of_la = np.ascontiguousarray(region_of_la, dtype=np.int64)
        self.idx = np.zeros(0, dtype=np.int64)
        self.code = np.zeros(0, dtype=np.uint8)     # entrant codes (capacity.E_STARTED, E_SHORT)
        self.cnt = np.zeros(kernel.NCHUNK, dtype=np.int64)
        self.occ = np.zeros((kernel.NCHUNK, CAP.N_REGION), dtype=np.int64)

    def for_step(self, pop: Population) -> tuple:
        """The kernel's capacity tuple, the lists sized for the population's slots."""
        if self.idx.shape[0] < pop.capacity:
            self.idx = np.zeros(pop.capacity, dtype=np.int64)
            self.code = np.zeros(pop.capacity, dtype=np.uint8)
        return self.region_of_la, self.idx, self.code, self.cnt, self.occ

    def allocate(self, pop: Population, n_step: int, arrived, places, log_miss: np.ndarray, seed, month: int,
                 tab: HazardTables, acc_started, acc_cm, log) -> int:
        """This month's serial allocation (``kernel.allocate_foster``); returns the number redirected."""
        slots, codes = arrived
        return int(kernel.allocate_foster(self.idx, self.code, self.cnt, self.occ, n_step, slots, codes,
                                          self.region_of_la, np.ascontiguousarray(places, dtype=np.int64), log_miss,
                                          pop.state, pop.flags, pop.age, pop.la, pop.cid, seed, month,
                                          tab.agency_thr, acc_started, acc_cm, log))


def _u32(x) -> np.uint64:
    return np.uint64(min(max(float(x), 0.0), 1.0) * (2**32 - 1))


class Simulation:
    """Runs the monthly loop for one population; used for spin-up and for the main run."""

    def __init__(self, params: Mapping[str, float], inputs: ModelInputs, tables: YearTables, seed: int,
                 scale: float, check: bool = False, levers: LeverTables | None = None,
                 capacity: CAP.CapacityPlan | None = None, capacity_log: np.ndarray | None = None):
        self.p = params
        self.capacity = capacity          # foster capacity plan (None: no constraint)
        self.capacity_log = capacity_log  # [month, region, N_LOG], filled month by month
        self.cand = FosterEntrants(capacity.region_of_la) if capacity is not None else None
        self._arrived = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint8))
        self.levers = levers if levers is not None else compile_levers((), inputs.la_codes)
        self.inputs = inputs
        self.tables = tables
        self.seed = np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF)  # kernels take the key as uint64
        self.scale = scale
        self.check = check
        self.la_cum = to_threshold(np.cumsum(inputs.la_weights))
        self.la_cum[-1] = np.uint32(2**32 - 1)
        need = np.array([params[f"need.share.{n}"] for n in range(A.N_NEED)])
        self.need_thr = to_threshold(np.cumsum(need / need.sum()))
        self.need_thr[-1] = np.uint32(2**32 - 1)
        self.male_thr = _u32(params["arrive.male_share"])
        self.newborn_thr = _u32(params["arrive.age0.newborn_share"])
        self.male_thr_uasc = _u32(params["arrive.uasc.male_share"])
        self.cin_prof = np.array([params[f"arrive.cin.age.{a}"] for a in range(N_AGE_Y)])
        self.band_of_year = np.array([A.age_band_years(a) for a in range(N_AGE_Y)])
        self.young_of_year = np.isin(self.band_of_year, A.YOUNG_BANDS)  # ages entry.young.trend applies to
        self.uasc_age_prior = np.array([params.get(f"arrive.uasc.age.{a}", 0.0) for a in range(N_AGE_Y)])
        self.acc_started = np.zeros((kernel.NCHUNK, S.N_STATES * kernel.N_AGE7 * 2), dtype=np.int64)
        self.acc_ceased = np.zeros((kernel.NCHUNK, kernel.N_REASON * kernel.N_AGE7 * 2), dtype=np.int64)
        self.acc_cm = np.zeros((kernel.NCHUNK, S.N_STATES * 2 * A.N_NEED), dtype=np.int64)
        self.acc_flow = np.zeros((kernel.NCHUNK, kernel.N_FLOW), dtype=np.int64)
        self.acc_prevknown = np.zeros((kernel.NCHUNK, N_AGE_Y), dtype=np.int64)
        self.cum_gone = 0
        self.cum_age18_individuals = 0
        self.cum_uasc_in = 0  # UASC arrive from outside the population reservoirs

    # ---- arrivals -------------------------------------------------------------------------------------
    def arrival_rates(self, year: int, pop: np.ndarray) -> dict[int, np.ndarray]:
        """Monthly probabilities per child of the general reservoir, by single year of age, per stream."""
        p = self.p
        x = trend_x(year, p)
        prof = self.cin_prof / (np.dot(pop, self.cin_prof) / pop.sum())
        band = self.band_of_year
        entry_age = (np.array([p.get(f"entry.age.{b}", 0.0) for b in band])
                     + self.young_of_year * p.get("entry.young.trend", 0.0) * x)
        care_age = np.array([p.get(f"arrive.care.age.{b}", 0.0) for b in band])
        care = p["arrive.care.rate"] * np.exp(p.get("entry.level", 0.0) + entry_age + care_age
                                              + p.get("entry.trend", 0.0) * x + discrepancy(year, p, "entry"))
        return {rng.STREAM_CIN: p["arrive.cin.rate"] * prof,
                rng.STREAM_CPP: p["arrive.cpp.rate"] * np.exp(p.get("cpp.level", 0.0)) * prof,
                rng.STREAM_CARE: care}

    def uasc_annual(self, year: int) -> float:
        """UASC arrivals: published starts less transfers (``inputs.uasc_arrivals``) x factor in the data years
        (the first year's before), then the input; a local run takes the area's share of England's, times its
        fitted local effect ``arrive.uasc.local``."""
        obs = self.inputs.uasc_arrivals
        local = float(np.exp(self.p.get("arrive.uasc.local", 0.0)))
        if year <= self.p["trend.end_year"]:
            return obs[min(max(year, min(obs)), max(obs))] * self.p["arrive.uasc.factor"] * local
        return self.p["arrive.uasc.future_annual"] * self.inputs.uasc_share * local

    def uasc_age(self, year: int) -> np.ndarray:
        """Age mix of UASC arrivals in ``year``: the prior shape, with the weights under 16 scaled by the fitted
        level and calendar trend of ``arrive.uasc.younger`` (UASC stock level and slope: the 2022-24 surge was
        mostly 16-17-year-olds, 2015-16's younger)."""
        u = self.uasc_age_prior.copy()
        u[:UASC_OLDER_FROM] *= np.exp(self.p.get("arrive.uasc.younger", 0.0)
                                      + self.p.get("arrive.uasc.younger.trend", 0.0) * trend_x(year, self.p))
        return u / u.sum()

    def draw_arrivals(self, gen: np.random.Generator, res: Reservoirs, year: int, rates) -> list:
        """Arrival counts by stream and age (serial, seeded by month): lists of (stream, ages, target)."""
        out = []
        for stream, target in ((rng.STREAM_CIN, S.AT_HOME), (rng.STREAM_CPP, S.EDGE_OF_CARE),
                               (rng.STREAM_CARE, -1)):
            n = gen.binomial(res.general, np.minimum(rates[stream], 1.0))
            res.general -= n
            out.append((stream, n, target))
        n_recent = gen.binomial(res.recent, min(self.p["arrive.rerefer.recent"], 1.0))
        n_old = gen.binomial(res.old, min(self.p["arrive.rerefer.old"], 1.0))
        res.recent -= n_recent
        res.old -= n_old
        out.append((rng.STREAM_REREFER, n_recent.sum(axis=0) + n_old, S.AT_HOME))
        lam = self.uasc_annual(year) / 12.0 * self.scale * self.uasc_age(year)
        out.append((rng.STREAM_UASC, gen.poisson(lam), -1))
        return out

    def add_arrivals(self, pop: Population, month: int, ymark: int, tab: HazardTables, batches) -> np.ndarray:
        """Give every arrival of the month a slot (one allocation) and initialise them in one kernel call."""
        counts = np.zeros((N_STREAM, N_AGE_Y), dtype=np.int64)
        targets = np.zeros(N_STREAM, dtype=np.int64)
        for stream, n_by_age, target in batches:
            counts[stream] = n_by_age
            targets[stream] = target
        n = int(counts.sum())
        if n:
            uasc = (np.arange(N_STREAM) == rng.STREAM_UASC).astype(np.int64)
            male = np.where(uasc == 1, self.male_thr_uasc, self.male_thr).astype(np.uint64)
            ids, ages = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.int64)
            tgt, ua, ml = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.uint64)
            kernel.expand_arrivals(counts, month, targets, uasc, male, ids, ages, tgt, ua, ml)
            slots = pop.allocate(n)
            arr_foster = np.zeros(n, dtype=np.uint8) if self.capacity is not None else None
            kernel.add_arrivals(slots, ids, ages, tgt, ua, ml, self.need_thr, self.newborn_thr, self.la_cum,
                                *pop.arrays(),
                                pop.n_used, self.seed, month, ymark, tab.dest_thr, tab.dest_state, tab.short_thr,
                                tab.agency_thr, self.acc_started, self.acc_ceased, self.acc_cm, self.acc_flow,
                                self.levers.placement_for_month(month), arr_foster)
            if arr_foster is not None:
                self._arrived = (slots, arr_foster)
        return counts.sum(axis=1)

    # ---- one month ------------------------------------------------------------------------------------
    def step(self, pop: Population, res: Reservoirs, month: int, year: int, ymark: int, gen, rates):
        tab = self.tables.get(year)
        n_step = pop.n_used
        kernel.step_month(*pop.arrays(), pop.n_used, self.seed, month, ymark, tab.thr, tab.thr_total, tab.event_of_slot,
                          tab.dest_thr, tab.dest_state, tab.short_thr, tab.agency_thr, self.la_cum,
                          int(self.p["returned_home.max_months"]), self.acc_started, self.acc_ceased, self.acc_cm,
                          self.acc_flow, self.acc_prevknown, pop.vac_idx, pop.vac_cnt, self.levers.for_month(month),
                          self.levers.placement_for_month(month),
                          self.cand.for_step(pop) if self.cand is not None else None)
        pop.vac_fresh = True
        res.roll_month()
        res.close_cases(self.acc_prevknown.sum(axis=0))
        self.acc_prevknown[:] = 0
        counts = self.add_arrivals(pop, month, ymark, tab, self.draw_arrivals(gen, res, year, rates))
        if self.capacity is not None:
            self.cand.allocate(pop, n_step, self._arrived, self.capacity.for_month(month), self.capacity.log_miss,
                               self.seed, month, tab,
                               self.acc_started, self.acc_cm, self.capacity_log[month])
            self._arrived = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint8))
        flows = self.acc_flow.sum(axis=0)
        cm = self.acc_cm.sum(axis=0)
        self.acc_flow[:] = 0
        self.acc_cm[:] = 0
        self.cum_gone += int(flows[kernel.F_GONE])
        self.cum_uasc_in += int(counts[rng.STREAM_UASC])
        self.cum_age18_individuals += int(flows[kernel.F_AGE18])
        return flows, cm, counts

    def individuals_by_age(self, pop: Population) -> np.ndarray:
        m = pop.alive_mask()
        return np.bincount(pop.age[: pop.n_used][m] // 12, minlength=N_AGE_Y)[:N_AGE_Y].astype(np.int64)

    def conservation(self, pop: Population, res: Reservoirs) -> int:
        """reservoirs + individuals + cumulative exits - births - population change - UASC arrivals (constant)."""
        return (res.total() + pop.alive() + self.cum_gone + self.cum_age18_individuals + res.cum_age18
                - res.cum_births - res.cum_popchange - self.cum_uasc_in)


def _ids(month: int, stream: int, n: int) -> np.ndarray:
    """Ids of the first ``n`` arrivals of a stream in a month (the layout lives in ``rng.make_id``)."""
    return rng.make_id(month, stream, 0) | np.arange(n, dtype=np.uint64)


# ---- spin-up and the 31 March 2015 stock ------------------------------------------------------------------
MIN_POOL_CLA = 2000   # children in care in the smallest spin-up pool (about 100 per care state and age band)


def spin_up(params, inputs: ModelInputs, tables: YearTables, seed: int, scale: float) -> tuple[Population, Reservoirs]:
    """Simulate the years before 31 March 2015 from an empty population, so ages, durations and histories
    of the 2015 stock come from the model itself. The fitted trends run backwards over the last
    ``spinup.trend_years`` years; earlier years use the rates of the first of those years. The pool is
    simulated at ``scale`` or at a scale holding ``MIN_POOL_CLA`` children in care if that is larger: it only
    supplies the 2015 stock's make-up (``initial_targets`` and ``initial_population`` draw from it with
    replacement), and a small LA's own-size pool would lack placements its 2015 stock has."""
    first_rates_year = START_YEAR + 1 - int(params["spinup.trend_years"])
    scale = max(scale, MIN_POOL_CLA / max(sum(inputs.init_cla_old.values()), 1.0))
    popn = np.round(population_for_year(inputs, START_YEAR + 1) * scale).astype(np.int64)
    sim = Simulation(params, inputs, tables, rng.derive_seed(seed, 1), scale)
    pop = Population(int(700_000 * scale) + 1024)
    res = Reservoirs(popn)
    months = int(params["spinup.months"])
    for k in range(months):
        month = k - months  # negative months: distinct random keys from the main run
        year = max(START_YEAR + 1 - (months - k + 11) // 12, first_rates_year)
        if k % 12 == 0:
            if k:
                res.age_year(popn, sim.individuals_by_age(pop))
            rates = sim.arrival_rates(year, popn)
        gen = rng.generator(seed, 2, k)
        sim.step(pop, res, month, year, 1 + (k // 12) % 200, gen, rates)
    return pop, res


def ipf(seed: np.ndarray, margins: list[tuple[int, np.ndarray]], iters: int = 200, tol: float = 1e-9) -> np.ndarray:
    """Iterative proportional fitting: rake ``seed`` to 1-D margins on the given axes (zeros stay zero)."""
    x = seed.astype(float).copy()
    for _ in range(iters):
        worst = 0.0
        for axis, target in margins:
            other = tuple(i for i in range(x.ndim) if i != axis)
            cur = x.sum(axis=other)
            f = np.divide(target, cur, out=np.zeros_like(target, dtype=float), where=cur > 0)
            worst = max(worst, float(np.max(np.abs(cur - target) / np.maximum(target, 1.0))))
            shape = [1] * x.ndim
            shape[axis] = -1
            x *= f.reshape(shape)
        if worst < tol:
            break
    return x


CARE = np.array(S.CARE_STATES)
AGE5_OF_7 = A.AGE7_TO_AGE5


def initial_targets(params, inputs: ModelInputs, pool: Population, scale: float) -> np.ndarray:
    """Target counts by (state, age band 5, uasc) for 31 March 2015: CLA raked to DfE margins, the rest scaled.
    An LA created after 2015 has margins mapped from its predecessors: ``la.mapped.stock`` (log, fitted by the
    local calibration; 0 elsewhere) scales all of them."""
    m = pool.alive_mask()
    st = pool.state[: pool.n_used][m].astype(np.int64)
    ab = AGE5_OF_7[A.AGE_BAND_OF_MONTH[pool.age[: pool.n_used][m]]]
    ua = ((pool.flags[: pool.n_used][m] & A.FLAG_UASC) > 0).astype(np.int64)
    seed = np.zeros((S.N_STATES, 5, 2))
    np.add.at(seed, (st, ab, ua), 1.0)
    stock = float(np.exp(params.get("la.mapped.stock", 0.0)))
    old = {k: v * stock for k, v in inputs.init_cla_old.items()}
    ks = params["init.kinship_share_of_foster"]
    hs = params["init.homes_share_of_secure_ch_semi"]
    by_state = np.zeros(S.N_STATES)
    by_state[S.KINSHIP] = old["foster"] * ks
    by_state[S.FOSTER] = old["foster"] * (1 - ks)
    by_state[S.RESIDENTIAL_HOME] = old["secure_childrens_homes_semi_independent"] * hs
    by_state[S.SEMI_INDEPENDENT] = old["secure_childrens_homes_semi_independent"] * (1 - hs)
    by_state[S.RESIDENTIAL_OTHER] = old["other_residential"] + old["residential_schools"]
    by_state[S.INDEPENDENT_LIVING] = old["other_community"]
    by_state[S.PLACED_WITH_PARENTS] = old["placed_with_parents"]
    by_state[S.PLACED_FOR_ADOPTION] = old["placed_for_adoption"]
    by_state[S.OTHER_IN_CARE] = old["other_placements"]
    cla = by_state[CARE].sum()
    ages = np.array([inputs.init_age[k] for k in A.AGE_LABELS5])
    ages = ages / ages.sum() * cla
    uasc = np.array([cla - inputs.init_uasc * stock, inputs.init_uasc * stock])
    raked = ipf(seed[CARE], [(0, by_state[CARE]), (1, ages), (2, uasc)])
    out = seed.copy()
    out[CARE] = raked
    ratio_cla = cla / max(seed[CARE].sum(), 1.0)
    for s in (S.RETURNED_HOME, S.KINSHIP_ORDER):  # not published: scaled with the care stock
        out[s] = seed[s] * ratio_cla
    out[S.EDGE_OF_CARE] = seed[S.EDGE_OF_CARE] / max(seed[S.EDGE_OF_CARE].sum(), 1.0) * inputs.init_cpp * stock
    # DfE's CIN count includes returned-home children whose case is still open: they are not AT_HOME
    returned = st == S.RETURNED_HOME
    open_cases = np.count_nonzero(returned & (pool.epi[: pool.n_used][m] < params["returned_home.cin_months"]))
    at_home = (inputs.init_cin - inputs.init_cpp) * stock - cla - open_cases * ratio_cla
    out[S.AT_HOME] = seed[S.AT_HOME] / max(seed[S.AT_HOME].sum(), 1.0) * at_home
    return out * scale


def initial_population(params, inputs: ModelInputs, pool: Population, targets: np.ndarray,
                       seed: int) -> Population:
    """Resample spin-up children cell by cell to the 2015 targets (durations drawn from the model's own
    quasi-stationary distribution); new stable ids, observation markers cleared. Targets are raked from the
    pool's own cells, so a cell with a target has children to draw from (``spin_up`` makes the pool large
    enough to hold every placement of the 2015 stock)."""
    gen = rng.generator(seed, 3)
    m = np.flatnonzero(pool.alive_mask())
    st = pool.state[m].astype(np.int64)
    ab = AGE5_OF_7[A.AGE_BAND_OF_MONTH[pool.age[m]]]
    ua = ((pool.flags[m] & A.FLAG_UASC) > 0).astype(np.int64)
    cell = (st * 5 + ab) * 2 + ua
    order = np.argsort(cell, kind="stable")
    cell_sorted = cell[order]
    tgt = targets.reshape(-1)
    n_cell = np.floor(tgt + gen.random(tgt.size)).astype(np.int64)  # unbiased stochastic rounding
    picks = []
    for c in np.flatnonzero(n_cell):
        lo, hi = np.searchsorted(cell_sorted, [c, c + 1])
        if hi > lo:
            picks.append(m[order[lo + gen.integers(0, hi - lo, n_cell[c])]])
    src = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
    n = src.size
    pop = Population(int(n * 1.35) + 1024)
    for name in ("state", "age", "flags", "epi", "plc", "prev", "la"):
        getattr(pop, name)[:n] = getattr(pool, name)[src]
    pop.cid[:n] = _ids(0, rng.STREAM_INIT, n)
    pop.n_used = n
    return pop


# ---- the main run -------------------------------------------------------------------------------------------
def run_replicate(params, inputs: ModelInputs, tables: YearTables, seed: int, settings: Settings,
                  pool: Population | None = None) -> Result:
    """Simulate 31 March 2015 to 31 March ``end_year`` for one replicate seed; ``settings.levers`` act from their
    start months (before the earliest start the run is the status quo's, draw for draw). With
    ``settings.capacity`` the foster capacity constraint (``agents/capacity.py``, with the capacity levers) is
    applied every month of the main run (not in spin-up, whose stock is resampled to the 2015 data)."""
    scale = settings.scale
    if pool is None:
        pool, _ = spin_up(params, inputs, tables, seed, scale)
    targets = initial_targets(params, inputs, pool, scale)
    pop = initial_population(params, inputs, pool, targets, seed)
    years = np.arange(START_YEAR, settings.end_year + 1)
    ny, n_months = years.size, 12 * (years.size - 1)
    plan = cap_log = None
    if settings.capacity:
        plan = CAP.build_plan(params, inputs.la_codes, n_months, scale, settings.levers)
        cap_log = np.zeros((n_months + 1, CAP.N_REGION, CAP.N_LOG), dtype=np.int64)
    sim = Simulation(params, inputs, tables, seed, scale, settings.check_invariants,
                     compile_levers(settings.levers, inputs.la_codes), plan, cap_log)
    stock = np.zeros((ny, S.N_STATES, kernel.N_AGE7, 2, 2), dtype=np.int64)
    la_cla = np.zeros((ny, len(inputs.la_codes)), dtype=np.int64)
    ret_open = np.zeros((ny, kernel.N_AGE7, 2), dtype=np.int64)
    started = np.zeros((ny, S.N_STATES, kernel.N_AGE7, 2), dtype=np.int64)
    ceased = np.zeros((ny, kernel.N_REASON, kernel.N_AGE7, 2), dtype=np.int64)
    flows = np.zeros((n_months + 1, kernel.N_FLOW), dtype=np.int64)
    arrivals = np.zeros((n_months + 1, N_STREAM), dtype=np.int64)
    cm = np.zeros((n_months + 1, S.N_STATES, 2, A.N_NEED), dtype=np.int64)
    alive = np.zeros(n_months + 1, dtype=np.int64)
    rc = int(params["returned_home.cin_months"])

    def count(yi):
        kernel.count_stock(pop.state, pop.age, pop.flags, pop.epi, pop.la, pop.n_used, rc, la_cla.shape[1],
                           stock[yi], la_cla[yi], ret_open[yi])

    count(0)
    alive[0] = pop.alive()
    popn0 = population_for_year(inputs, START_YEAR + 1) * scale
    res = Reservoirs(np.zeros(N_AGE_Y, dtype=np.int64))
    res.general = np.maximum(np.round(popn0).astype(np.int64) - sim.individuals_by_age(pop), 0)
    checks = 0
    base = sim.conservation(pop, res)
    rates = None
    t_loop = time.perf_counter()
    for month in range(1, n_months + 1):
        year = START_YEAR + (month + 11) // 12
        yi = year - START_YEAR
        if month % 12 == 1:
            target = np.round(population_for_year(inputs, year) * scale).astype(np.int64)
            if month > 1:
                res.age_year(target, sim.individuals_by_age(pop))
            rates = sim.arrival_rates(year, target)
        gen = rng.generator(seed, 4, month)
        f, c, a = sim.step(pop, res, month, year, yi, gen, rates)
        flows[month], cm[month], arrivals[month] = f, c.reshape(S.N_STATES, 2, A.N_NEED), a
        alive[month] = pop.alive()
        if settings.check_invariants:
            now = sim.conservation(pop, res)
            if now != base:
                raise AssertionError(f"conservation broken in month {month}: {now} != {base}")
            checks += 1
        if month % 12 == 0:
            count(yi)
            started[yi] = sim.acc_started.sum(axis=0).reshape(S.N_STATES, kernel.N_AGE7, 2)
            ceased[yi] = sim.acc_ceased.sum(axis=0).reshape(kernel.N_REASON, kernel.N_AGE7, 2)
            sim.acc_started[:] = 0
            sim.acc_ceased[:] = 0
    regions = plan.regions if plan is not None else None
    return Result(years, stock, la_cla, ret_open, started, ceased, flows, arrivals, cm, alive, scale, checks,
                  info={"capacity": pop.capacity, "max_alive": int(alive.max()),
                        "loop_seconds": time.perf_counter() - t_loop, "foster_capacity": bool(settings.capacity)},
                  foster_capacity=cap_log[:, regions] if plan is not None else None, foster_capacity_regions=regions)
