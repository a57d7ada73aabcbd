"""Monte Carlo runner: replicates of one scenario over local worker processes, and quantile summaries.

Everything shared by the replicates (parameters, inputs, compiled year tables, the spin-up pool) is built
once in the parent. Replicate r uses seed ``derive_seed(seed, 1000 + r)``; the kernel's counter-based draws
make each replicate independent of worker and thread counts, and results are put back in replicate order,
so the output is identical whatever ``workers`` and ``threads`` are.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from calibration import inputs as model_inputs
from calibration.parameters import base_parameters, resolve
from sim import engine, rng
from sim import scenario as scenario_mod
from sim.population import Population

FIRST_TABLE_YEAR = 2016
REPLICATE_SEED_OFFSET = 1000
SPINUP_SEED_KEY = 0
UNCERTAINTY = ("process", "parameter", "both")
KEYS = ["scenario", "year", "measure", "scheme", "category", "age_band", "uasc", "la"]
QUANTILES = {"q05": 0.05, "q25": 0.25, "q50": 0.50, "q75": 0.75, "q95": 0.95}


@dataclass
class Shared:
    """What every replicate of one run reads (built once in the parent, sent once to each worker)."""
    params: dict
    inputs: model_inputs.ModelInputs
    tables: engine.YearTables
    pool: Population
    settings: engine.Settings
    seed: int
    members: dict[int, dict] | None = None  # ensemble member -> parameters (None: one parameter set)
    uncertainty: str = "process"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # keys the member cache to this run


_SHARED: Shared | None = None  # set in each worker process by _init_worker
_MEMBER_CACHE: dict = {}       # the last (run, member)'s tables and spin-up pool, per process


def member_of(shared: Shared, replicate: int) -> int:
    """The ensemble member a replicate uses (0, the central set, when there is no ensemble or under
    process uncertainty; otherwise members in turn)."""
    if not shared.members or shared.uncertainty == "process":
        return 0
    ids = sorted(shared.members)
    return ids[replicate % len(ids)]


def engine_seed(shared: Shared, replicate: int) -> int:
    """Replicate seed: all the same under parameter uncertainty (random numbers held fixed), else per replicate."""
    return replicate_seed(shared.seed, 0 if shared.uncertainty == "parameter" else replicate)


def _member_state(shared: Shared, member: int):
    """Parameters, year tables and spin-up pool of a member (built once per process, run and member: a later
    run in the same process, with another scale, end year or ensemble, must not reuse them)."""
    if member == 0 or not shared.members:
        return shared.params, shared.tables, shared.pool
    if _MEMBER_CACHE.get("key") != (shared.run_id, member):
        params = shared.members[member]
        tables = engine.YearTables.build(params, FIRST_TABLE_YEAR, shared.settings.end_year)
        pool, _ = engine.spin_up(params, shared.inputs, tables, rng.derive_seed(shared.seed, SPINUP_SEED_KEY),
                                 shared.settings.scale)
        _MEMBER_CACHE.clear()
        _MEMBER_CACHE.update(key=(shared.run_id, member), state=(params, tables, pool))
    return _MEMBER_CACHE["state"]


def replicate_seed(seed: int, replicate: int) -> int:
    """The engine seed of replicate ``replicate`` of a run seeded ``seed``."""
    return rng.derive_seed(seed, REPLICATE_SEED_OFFSET + replicate)


def default_threads(workers: int) -> int:
    """Numba threads per worker: the machine's cores shared evenly among the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def max_threads() -> int:
    """The most threads numba can use in this process (NUMBA_NUM_THREADS, by default the core count)."""
    import numba
    return int(numba.config.NUMBA_NUM_THREADS)


def set_threads(threads: int) -> int:
    """Set numba's thread count (clamped to what numba was started with); returns the previous count."""
    import numba
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(threads), max_threads())))
    return previous


def prepare(scenario: scenario_mod.Scenario, seed: int, end_year: int, scale: float,
            ensemble: pd.DataFrame | None = None, uncertainty: str = "both", area: str = "ENG",
            capacity: bool | None = None) -> Shared:
    """Parameters, inputs, year tables and the central spin-up pool, built once per run. With an ensemble,
    member parameters are the member's values with the scenario's overrides on top; member 0 is central.
    ``area``: "ENG", or a local authority's 2024 code (its own population and 2015 stock). ``capacity``: the
    foster capacity constraint (``agents/capacity.py``; a local run gets its LA's share of its region's places);
    None: as the parameters say (``capacity.constraint``: the value the ensemble was fitted with)."""
    members = None
    if ensemble is not None:
        from calibration import ensemble as ens
        over = scenario.overrides()
        members = {int(m): resolve({**ens.member_params(ensemble, int(m)), **over}) for m in ensemble["member"]}
        params = members.pop(ens.CENTRAL)
    else:
        params = resolve(base_parameters(scenario.overrides()))
    inputs = model_inputs.build() if area == "ENG" else model_inputs.local(area)
    tables = engine.YearTables.build(params, FIRST_TABLE_YEAR, end_year)
    pool, _ = engine.spin_up(params, inputs, tables, rng.derive_seed(seed, SPINUP_SEED_KEY), scale)
    if capacity is None:
        capacity = bool(params.get("capacity.constraint", 0.0))
    settings = engine.Settings(end_year=end_year, scale=scale, levers=scenario.levers, capacity=bool(capacity))
    return Shared(params, inputs, tables, pool, settings, seed, members,
                  uncertainty if members else "process")


def _simulate(shared: Shared, replicate: int) -> tuple[int, engine.Result]:
    """Run one replicate: its member's parameters and pool, its seed."""
    params, tables, pool = _member_state(shared, member_of(shared, replicate))
    res = engine.run_replicate(params, shared.inputs, tables, engine_seed(shared, replicate), shared.settings, pool)
    return replicate, res


def _init_worker(shared: Shared, threads: int) -> None:
    """Worker start-up: keep the shared run state and set this process's numba threads."""
    global _SHARED
    _SHARED = shared
    set_threads(threads)


def _work(replicate: int) -> tuple[int, engine.Result]:
    """Worker task: one replicate from the state set up by ``_init_worker``."""
    return _simulate(_SHARED, replicate)


def _unit_costs(params, levers=()):
    """Unit costs for the observation model (with the scenario's unit-cost levers), priced once per member."""
    from sim.costs import UnitCosts
    return UnitCosts.from_params(params, levers)


def _progress(total: int, enabled: bool):
    """A tqdm bar on stderr counting completed replicates (a no-op bar when disabled)."""
    from tqdm import tqdm
    return tqdm(total=total, desc="replicates", unit="rep", file=sys.stderr, disable=not enabled)


def _results(shared: Shared, replicates: int, workers: int, threads: int, progress: bool):
    """Yield (replicate, Result) as replicates complete, in-process (workers=1) or over a process pool."""
    bar = _progress(replicates, progress)
    try:
        if workers == 1:
            for r in range(replicates):
                yield _simulate(shared, r)
                bar.update(1)
            return
        # spawn: numba's thread pool is already running in this process and is not safe to fork
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(shared, threads)) as ex:
            pending = {ex.submit(_work, r) for r in range(replicates)}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        yield fut.result()
                        bar.update(1)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
    finally:
        bar.close()


def run_scenario(scenario: scenario_mod.Scenario | str | Path, replicates: int, seed: int, end_year: int,
                 scale: float, workers: int | None = None, by_la: bool = False, progress: bool = True,
                 threads: int | None = None, ensemble: pd.DataFrame | None = None,
                 uncertainty: str = "both", area: str = "ENG",
                 capacity: bool | None = None) -> tuple[pd.DataFrame, dict]:
    """Run ``replicates`` replicates of a scenario; returns the tidy rows of all replicates and run info.

    With an ``ensemble`` (calibration/ensemble.py), ``uncertainty`` says what varies between replicates:
    ``process`` (central set, own random numbers), ``parameter`` (members in turn, random numbers held
    fixed) or ``both`` (members in turn, own random numbers); the ``draw`` column names the member.
    ``area``: "ENG" (England) or a local authority's 2024 code: counts are then that authority's, ``la`` = the code.
    ``capacity``: apply the foster capacity constraint and the scenario's capacity levers (True / False), or
    None (default): as the parameter ensemble was fitted (``capacity.constraint``; the shipped one: on)."""
    from sim import observe  # the observation model is only needed in the parent

    if not isinstance(scenario, scenario_mod.Scenario):
        scenario = scenario_mod.load(scenario)
    for key, value in (("replicates", replicates), ("seed", seed), ("end_year", end_year), ("scale", scale),
                       ("workers", workers), ("threads", threads)):
        if (why := scenario_mod.run_problem(key, value)) is not None:
            raise ValueError(f"{key}: {value!r} {why}")
    if uncertainty not in UNCERTAINTY:
        raise ValueError(f"uncertainty: {uncertainty!r} is not one of {', '.join(UNCERTAINTY)}")
    by_la = by_la and area == "ENG"  # a local run's whole-population rows are already its LA's
    workers = min(workers or os.cpu_count() or 1, replicates)
    threads = min(threads or default_threads(workers), max_threads())
    t0 = time.perf_counter()
    # in-process runs use ``threads`` throughout; with workers the parent's spin-up uses every core
    previous = set_threads(threads if workers == 1 else (os.cpu_count() or 1))
    try:
        shared = prepare(scenario, seed, end_year, scale, ensemble, uncertainty, area, capacity)
        t_prep = time.perf_counter() - t0
        costs = {0: _unit_costs(shared.params, scenario.levers)}
        frames: dict[int, pd.DataFrame] = {}
        alive_max, alive_start = {}, {}
        for r, res in _results(shared, replicates, workers, threads, progress):
            m = member_of(shared, r)
            if m not in costs:  # unit costs are priors too: each member prices its own child-months
                costs[m] = _unit_costs(shared.members[m], scenario.levers)
            frames[r] = observe.tidy(res, scenario.name, r, m, unit_costs=costs[m], by_la=by_la,
                                     la_codes=shared.inputs.la_codes, area=area)
            alive_max[r] = int(res.alive.max()) / scale
            alive_start[r] = int(res.alive[0]) / scale
    finally:
        set_threads(previous)
    df = pd.concat([frames[r] for r in range(replicates)], ignore_index=True)
    info = {
        "scenario": scenario.name, "replicates": replicates, "seed": seed, "end_year": end_year, "scale": scale,
        "workers": workers, "threads": threads, "by_la": by_la, "area": area,
        "capacity": bool(shared.settings.capacity),
        "params": shared.params,
        "uncertainty": shared.uncertainty, "members": len(shared.members or {}),
        "draws": len({member_of(shared, r) for r in range(replicates)}),
        "individuals_alive_max_mean": float(np.mean([alive_max[r] for r in range(replicates)])),
        "individuals_alive_2015_mean": float(np.mean([alive_start[r] for r in range(replicates)])),
        "prepare_seconds": t_prep, "wall_seconds": time.perf_counter() - t0,
    }
    return df, info


def _sorted_groups(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows sorted by the summary keys (missing keys kept as their own group) and group sizes."""
    keys = [k for k in KEYS if k in df.columns]
    codes = [pd.factorize(df[k], sort=True, use_na_sentinel=False)[0] for k in keys]
    order = np.lexsort(codes[::-1]) if codes else np.arange(len(df))
    sdf = df.iloc[order].reset_index(drop=True)
    key_codes = np.stack([c[order] for c in codes], axis=1) if codes else np.zeros((len(df), 0))
    starts = np.flatnonzero(np.r_[True, np.any(key_codes[1:] != key_codes[:-1], axis=1)]) if len(df) else \
        np.zeros(0, dtype=np.int64)
    return sdf, starts


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and 5/25/50/75/95% quantiles (numpy, linear) over replicates and draws, per measure cell."""
    keys = [k for k in KEYS if k in df.columns]
    sdf, starts = _sorted_groups(df)
    ends = np.r_[starts[1:], len(sdf)]
    values = sdf["value"].to_numpy(dtype=float)
    rows = {k: sdf[k].to_numpy()[starts] for k in keys}
    sizes = ends - starts
    out = pd.DataFrame(rows)
    if len(sizes) and np.all(sizes == sizes[0]):
        block = values.reshape(len(starts), sizes[0])
        out["mean"] = block.mean(axis=1)
        for name, q in QUANTILES.items():
            out[name] = np.quantile(block, q, axis=1)
    else:
        groups = [values[a:b] for a, b in zip(starts, ends)]
        out["mean"] = [g.mean() for g in groups]
        for name, q in QUANTILES.items():
            out[name] = [np.quantile(g, q) for g in groups]
    out["n"] = sizes
    return out
