"""Command line: ``caresim run SCENARIO`` runs a scenario's replicates and writes a run folder;
``caresim compare SCENARIO...`` runs scenarios on common random numbers and writes a comparison report;
``caresim backtest`` fits up to an origin and scores projections against DfE and a naive comparator;
``caresim calibrate`` fits, draws the parameter ensemble, checks it with the engine and writes its report.

Every caresim error (bad scenario, parameter, data file or setting) ends with ``caresim: error: <message>``
on stderr, exit status 2, and no run folder.
"""
from __future__ import annotations

import argparse
import sys
import time

DEFAULTS = {"replicates": 100, "seed": 20240331, "end_year": 2035, "scale": 1.0}
SUMMARY_YEARS = (2024, 2035)


def _parser() -> argparse.ArgumentParser:
    """The ``caresim`` argument parser (one sub-command for now: run)."""
    p = argparse.ArgumentParser(prog="caresim", description="Microsimulation of children's social care in England.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario and write a run folder",
                         description="Run a scenario's Monte Carlo replicates; write manifest.json, "
                                     "replicates.parquet, summary.csv and fan_chart.png to a new folder.")
    run.add_argument("scenario", help="scenario TOML file (e.g. runs/scenarios/status_quo.toml)")
    run.add_argument("--replicates", type=int, help=f"replicates (default: scenario [run], else "
                                                    f"{DEFAULTS['replicates']})")
    run.add_argument("--seed", type=int, help=f"run seed (default: scenario [run], else {DEFAULTS['seed']})")
    run.add_argument("--end-year", type=int, help="last 31 March simulated, 2016-2040 (default: scenario [run], "
                                                  f"else {DEFAULTS['end_year']})")
    run.add_argument("--scale", type=float, help="share of England simulated, in (0, 1] (default: scenario "
                                                 f"[run], else {DEFAULTS['scale']})")
    run.add_argument("--workers", type=int, help="worker processes (default: CPU count; 1 = in-process)")
    run.add_argument("--threads", type=int, help="numba threads per worker (default: CPU count / workers)")
    run.add_argument("--by-la", action="store_true", help="also write local-authority measures")
    run.add_argument("--out", help="run folder to create (default: runs/output/<timestamp>-<scenario name>)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--ensemble", help="parameter ensemble (Parquet from caresim calibrate; default: the shipped "
                                        "calibration/ensemble.parquet, or the first-pass point fit if none is shipped; "
                                        "with --la, calibration/la/CODE.parquet)")
    run.add_argument("--la", metavar="CODE", help="simulate one local authority (2024 ONS code, e.g. E08000025) "
                                                  "with its own ensemble (caresim calibrate --la CODE); --scale is "
                                                  "then the share of that authority simulated")
    _capacity_option(run)
    run.add_argument("--uncertainty", choices=("process", "parameter", "both"), default="both",
                     help="process: the ensemble's central set, own random numbers per replicate; parameter: "
                          "ensemble members in turn, random numbers held fixed; both (default): members in turn, "
                          "own random numbers")
    _backtest_parser(sub)
    _calibrate_parser(sub)
    _compare_parser(sub)
    return p


def _capacity_option(p) -> None:
    """``--capacity on|off|fitted``: the foster capacity constraint (agents/capacity.py)."""
    p.add_argument("--capacity", choices=("on", "off", "fitted"), default="fitted",
                   help="foster capacity constraint: usable foster places by region, children who find no suitable "
                        "one go to residential care, capacity levers applied (default 'fitted': as the parameter "
                        "ensemble was fitted, on for the shipped England ensemble; with --la, the LA's share of its "
                        "region's places)")


def capacity_choice(value: str) -> bool | None:
    """``--capacity``: True (on), False (off) or None (as the ensemble was fitted)."""
    return {"on": True, "off": False}.get(value)


COMPARE_DEFAULTS = {"replicates": 50, "scale": 0.25, "end_year": 2035}


def _compare_parser(sub) -> None:
    """The ``caresim compare`` sub-command."""
    d = COMPARE_DEFAULTS
    cmp = sub.add_parser("compare", help="run scenarios on common random numbers and write a comparison report",
                         description="Run every scenario with the same seeds and the same parameter-ensemble "
                                     "members, and write comparison.csv (levels and paired differences against "
                                     "the status quo), present_values.csv, report.html and its PNGs to a new "
                                     "folder. Include runs/scenarios/status_quo.toml.")
    cmp.add_argument("scenarios", nargs="+", help="scenario TOML files (e.g. runs/scenarios/*.toml)")
    cmp.add_argument("--replicates", type=int, default=d["replicates"],
                     help=f"replicates per scenario (default {d['replicates']})")
    cmp.add_argument("--scale", type=float, default=d["scale"],
                     help=f"share of England simulated (default {d['scale']})")
    cmp.add_argument("--end-year", type=int, default=d["end_year"], help=f"last 31 March (default {d['end_year']})")
    cmp.add_argument("--seed", type=int, default=DEFAULTS["seed"], help=f"run seed (default {DEFAULTS['seed']})")
    cmp.add_argument("--workers", type=int, help="worker processes (default: CPU count; 1 = in-process)")
    cmp.add_argument("--ensemble", help="parameter ensemble (default: the shipped calibration/ensemble.parquet)")
    _capacity_option(cmp)
    cmp.add_argument("--crn-check", action="store_true",
                     help="also measure the variance reduction from common random numbers (the first reform run "
                          "again on independent random numbers, to 2030)")
    cmp.add_argument("--out", help="folder to create (default: runs/output/<timestamp>-comparison)")
    cmp.add_argument("--quiet", action="store_true", help="no progress bars")


def compare(args: argparse.Namespace) -> int:
    """Validate every scenario and setting first (nothing written on error), then run, tabulate and report."""
    from sim import compare as cmp
    from sim import observe, output
    from sim.scenario import run_problem

    t0 = time.perf_counter()
    for key, value in (("replicates", args.replicates), ("scale", args.scale), ("end_year", args.end_year),
                       ("seed", args.seed), ("workers", args.workers)):
        if (why := run_problem(key, value)) is not None:
            raise ValueError(f"--{key.replace('_', '-')}: {value!r} {why}")
    if args.end_year < cmp.LAST_DATA_YEAR + 1:
        raise ValueError(f"--end-year: {args.end_year} must be after {cmp.LAST_DATA_YEAR} (the last DfE year)")
    scenarios = cmp.load_all(args.scenarios)
    cmp._check(scenarios)
    out = output.check_out(args.out) if args.out else output.default_out("comparison")
    path = _ensemble_path(args.ensemble, None)
    table = _ensemble(path)
    log = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    capacity = capacity_choice(args.capacity)
    comp = cmp.compare(scenarios, args.replicates, args.seed, args.end_year, args.scale, args.workers, table,
                       progress=not args.quiet, log=log, capacity=capacity)
    crn = None
    if args.crn_check:
        reforms = [s for s in scenarios if s.name != cmp.BASE and s.method != cmp.NAIVE]
        if reforms:
            log(f"common random numbers: {reforms[0].name} again on independent random numbers")
            year = min(2030, args.end_year)
            crn = cmp.crn_variance_reduction(
                [s for s in scenarios if s.name == cmp.BASE][0], reforms[0], args.replicates, args.seed, year,
                args.scale, table, args.workers, {"base": comp.replicates[cmp.BASE],
                                                  "reform": comp.replicates[reforms[0].name]},
                capacity=capacity)
    comp.info["wall_seconds"] = time.perf_counter() - t0
    comp.info["ensemble"] = _ensemble_note(path, table)
    folder = cmp.write(out, comp, observe.observed(), crn)
    print(folder)
    print(compare_headline(comp.table, comp.info))
    if crn:
        both = crn.get("parameter_and_process")
        print(f"common random numbers: variance of the {crn['year']} CLA-total paired difference cut "
              f"{crn['process']['reduction']:.1f}-fold with one parameter set"
              + (f", {both['reduction']:.1f}-fold across ensemble members (their spread in the effect remains)"
                 if both else ""))
    return 0


def compare_headline(table, info) -> str:
    """One line per scenario: median CLA at 31 March in the last year, and the paired difference."""
    from sim.compare import BASE
    last = info["end_year"]
    t = table[(table["measure"] == "cla_31mar") & (table["scheme"] == "dfe_current") & (table["category"] == "total")
              & (table["age_band"] == "all") & (table["uasc"] == "all") & (table["la"] == "ENG")
              & (table["year"] == last)]
    lines = [f"children looked after at 31 March {last} (median, 90% band; {info['replicates']} replicates, "
             f"{info['wall_seconds']:.0f} s):"]
    for name in info["scenarios"]:
        lv = t[(t["scenario"] == name) & (t["kind"] == "level")]
        if lv.empty:
            continue
        r = lv.iloc[0]
        line = f"  {name}: {r['q50']:,.0f} ({r['q05']:,.0f} to {r['q95']:,.0f})"
        df = t[(t["scenario"] == name) & (t["kind"] == "difference")]
        if name != BASE and len(df):
            d = df.iloc[0]
            line += f"; vs status quo {d['q50']:+,.0f} ({d['q05']:+,.0f} to {d['q95']:+,.0f})"
        lines.append(line)
    return "\n".join(lines)


def _calibrate_parser(sub) -> None:
    """The ``caresim calibrate`` sub-command."""
    from calibration.calibrate import CalibrateSettings
    d = CalibrateSettings()
    cal = sub.add_parser("calibrate", help="fit to DfE data, draw a parameter ensemble, check and report it",
                         description="Fit the model to DfE statistics up to --fit-until, draw a parameter ensemble "
                                     "(parametric bootstrap x labelled priors, refitted on the engine), run it "
                                     "through the engine and write ensemble.parquet, ensemble.json, check/ and "
                                     "report.html to a new folder.")
    cal.add_argument("--fit-until", type=int, default=d.fit_until,
                     help=f"last year ending 31 March used (2017-{d.fit_until}; default {d.fit_until})")
    cal.add_argument("--members", type=int, default=d.members, help=f"parameter sets (default {d.members})")
    cal.add_argument("--fit-iterations", type=int, default=d.fit_iterations,
                     help=f"fixed-point iterations of the point fit (default {d.fit_iterations})")
    cal.add_argument("--member-iterations", type=int, default=d.member_iterations,
                     help=f"Gauss-Newton steps per member (default {d.member_iterations})")
    cal.add_argument("--member-scale", type=float, default=d.member_scale,
                     help=f"share of England simulated per member refit (default {d.member_scale})")
    cal.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    cal.add_argument("--cold-start", action="store_true", help="start the point fit from the register values, "
                                                               "not the shipped first pass")
    cal.add_argument("--la", metavar="CODE", help="calibrate one local authority (2024 ONS code; an authority "
                                                  "created after 2015 takes its earlier years from its predecessors "
                                                  "by population share) on top of a national ensemble, partially "
                                                  "pooled with England (about a minute; fit years from 2018; see "
                                                  "docs/CALIBRATION.md)")
    cal.add_argument("--ensemble", help="with --la: the national ensemble to build on (default: the shipped "
                                        "calibration/ensemble.parquet; it must be fitted to --fit-until)")
    cal.add_argument("--out", help="folder to create (default: runs/output/<timestamp>-calibration)")
    cal.add_argument("--quiet", action="store_true", help="no progress bars")


def calibrate(args: argparse.Namespace) -> int:
    """Check the settings (nothing written on error), then fit, draw, check and report."""
    from calibration import calibrate as cal
    from calibration import first_pass
    from sim import output
    from sim.scenario import run_problem

    first_pass.window(args.fit_until)
    for flag, key, value in (("--members", "replicates", args.members), ("--seed", "seed", args.seed),
                             ("--fit-iterations", "replicates", args.fit_iterations),
                             ("--member-scale", "scale", args.member_scale)):
        if (why := run_problem(key, value)) is not None:
            raise ValueError(f"{flag}: {value!r} {why}")
    if args.member_iterations < 1:
        raise ValueError(f"--member-iterations: {args.member_iterations!r} must be at least 1")
    s = cal.CalibrateSettings(fit_until=args.fit_until, members=args.members, seed=args.seed,
                              fit_iterations=args.fit_iterations, member_iterations=args.member_iterations,
                              member_scale=args.member_scale, warm_start=not args.cold_start, la=args.la,
                              national=args.ensemble)
    if args.la:
        from calibration.inputs import local
        local(args.la)  # an unknown or unsupported code fails here, before any work
    elif args.ensemble:
        raise ValueError("--ensemble: only used with --la (the national ensemble a local fit builds on)")
    out = output.check_out(args.out) if args.out else output.default_out("calibration")
    log = lambda line: print(line, file=sys.stderr)
    folder = cal.calibrate(out, s, log=log, progress=not args.quiet)
    print(folder)
    return 0


BACKTEST_DEFAULTS = {"replicates": 20, "scale": 0.25, "fit_iterations": 40, "fit_scale": 0.25, "members": 50,
                     "member_scale": 0.2, "member_iterations": 2}


def _backtest_parser(sub) -> None:
    """The ``caresim backtest`` sub-command."""
    d = BACKTEST_DEFAULTS
    bt = sub.add_parser("backtest", help="fit up to an origin, project, score against DfE and a naive comparator",
                        description="Calibrate on DfE data up to the year ending 31 March of each origin (no "
                                    "look-ahead): point fit and a parameter ensemble, then project to --to and "
                                    "write backtest.csv and backtest.png (caresim and naive rows) to a new folder. "
                                    f"Defaults: {d['members']} members per origin ({d['member_iterations']} refit "
                                    f"steps at scale {d['member_scale']}), fit {d['fit_iterations']} iterations at "
                                    f"scale {d['fit_scale']}, projections at scale {d['scale']}: about 3 minutes "
                                    "per origin on an idle 2-core machine (measured 2026-12-08).")
    which = bt.add_mutually_exclusive_group(required=True)
    which.add_argument("--fit-until", type=int, help="origin: last year ending 31 March used by the fit (>= 2017)")
    which.add_argument("--origins", help="origins Y1-Y2 (e.g. 2017-2021): run each, print the pooled score table")
    bt.add_argument("--to", type=int, required=True, help="last year projected and scored (<= 2024)")
    bt.add_argument("--members", type=int, default=d["members"],
                    help=f"ensemble members fitted per origin, one replicate each (default {d['members']}); 0 = the "
                         "point fit alone with --replicates replicates (process noise only)")
    bt.add_argument("--member-scale", type=float, default=d["member_scale"],
                    help=f"share of England simulated per member refit (default {d['member_scale']})")
    bt.add_argument("--member-iterations", type=int, default=d["member_iterations"],
                    help=f"Gauss-Newton steps per member (default {d['member_iterations']})")
    bt.add_argument("--replicates", type=int, default=d["replicates"],
                    help=f"replicates per origin with --members 0 (default {d['replicates']})")
    bt.add_argument("--scale", type=float, default=d["scale"],
                    help=f"share of England simulated in the projections (default {d['scale']}, to be quick)")
    bt.add_argument("--fit-iterations", type=int, default=d["fit_iterations"],
                    help=f"first-pass iterations per origin (default {d['fit_iterations']})")
    bt.add_argument("--fit-scale", type=float, default=d["fit_scale"],
                    help=f"scale of the fitting runs (default {d['fit_scale']})")
    bt.add_argument("--seed", type=int, default=DEFAULTS["seed"], help=f"run seed (default {DEFAULTS['seed']})")
    bt.add_argument("--workers", type=int, help="worker processes (default: CPU count; 1 = in-process)")
    bt.add_argument("--out", help="folder to create (default: runs/output/<timestamp>-backtest)")
    bt.add_argument("--la", metavar="CODE[,CODE...]",
                    help="backtest local authorities (2024 ONS codes, comma-separated) instead of England: at each "
                         "origin each LA's fit on top of that origin's national ensemble (fitted once), projected "
                         "at its real size; scores their CLA totals, starts and ceased; origins from 2018 (about "
                         "30 s more per LA and origin)")
    bt.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a prior or fixed register value in every fit and projection (repeatable), "
                         "e.g. --set trend.damping=0 to compare trend rules")


def origins(args: argparse.Namespace) -> list[int]:
    """The backtest origins: --fit-until, or the range given as --origins Y1-Y2."""
    if args.fit_until is not None:
        return [args.fit_until]
    try:
        a, b = (int(x) for x in args.origins.split("-"))
    except ValueError:
        raise ValueError(f"--origins: {args.origins!r} is not a range like 2017-2021") from None
    if b < a:
        raise ValueError(f"--origins: {args.origins!r} ends before it starts")
    return list(range(a, b + 1))


def prior_overrides(items: list[str]) -> dict[str, float]:
    """``--set NAME=VALUE`` pairs, checked against the register (unknown names and bad values are errors)."""
    from calibration.parameters import base_parameters

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--set: {item!r} is not NAME=NUMBER") from None
        if not sep:
            raise ValueError(f"--set: {item!r} is not NAME=NUMBER")
    base_parameters(out, use_first_pass=False)  # raises ParameterError naming an unknown or out-of-range value
    return out


def backtest(args: argparse.Namespace) -> int:
    """Check the years and settings first (nothing written on error), run every origin, write, print scores."""
    from calibration import backtest as bt
    from sim import output
    from sim.scenario import run_problem

    years = origins(args)
    for y in years:
        bt.check_years(y, args.to)
    for flag, key, value in (("--replicates", "replicates", args.replicates), ("--scale", "scale", args.scale),
                             ("--fit-scale", "scale", args.fit_scale),
                             ("--fit-iterations", "replicates", args.fit_iterations),
                             ("--seed", "seed", args.seed), ("--workers", "workers", args.workers),
                             ("--member-scale", "scale", args.member_scale)):
        if (why := run_problem(key, value)) is not None:
            raise ValueError(f"{flag}: {value!r} {why}")
    if args.members < 0 or args.member_iterations < 1:
        raise ValueError(f"--members: {args.members!r} must be >= 0 and --member-iterations "
                         f"{args.member_iterations!r} >= 1")
    las = [c.strip() for c in args.la.split(",")] if args.la is not None else []
    if args.la is not None:
        from sim.observe import local_rows
        if not all(las) or len(set(las)) < len(las):
            raise ValueError(f"--la: {args.la!r} is not a list of distinct codes like E06000017,E08000027")
        for code in las:
            local_rows(code)  # a clear error for an unknown code, before any fitting
        if args.members == 0:
            raise ValueError("--la: a local backtest needs an ensemble (--members > 0)")
        from calibration.local_data import MIN_FIT_UNTIL
        if min(years) < MIN_FIT_UNTIL:
            raise ValueError(f"--la: local backtests start at origin {MIN_FIT_UNTIL} (local fits need 4 years of "
                             f"cessations by reason); {min(years)} is too early")
    priors = prior_overrides(args.set)
    out = output.check_out(args.out) if args.out else output.default_out("backtest")
    log = lambda line: print(line, file=sys.stderr)
    df = bt.backtests(years, args.to, replicates=args.replicates, seed=args.seed, scale=args.scale,
                      workers=args.workers, fit_iterations=args.fit_iterations, fit_scale=args.fit_scale, log=log,
                      priors=priors, members=args.members, member_scale=args.member_scale,
                      member_iterations=args.member_iterations, las=las)
    folder = bt.write(out, df, las)
    print(folder)
    with __import__("pandas").option_context("display.width", 160):
        print(bt.pooled(df).round(3).to_string(index=False))
        if len(las) > 1:
            print(bt.pooled(df, by=("la", "method")).round(3).to_string(index=False))
    return 0


def settings(args: argparse.Namespace, scenario) -> dict:
    """Run settings: command line, else the scenario's [run] table, else the defaults; range-checked."""
    from sim.scenario import run_problem

    out = {}
    for key, default in DEFAULTS.items():
        given = getattr(args, key)
        out[key] = given if given is not None else scenario.run.get(key, default)
        if (why := run_problem(key, out[key])) is not None:
            source = f"--{key.replace('_', '-')}" if given is not None else f"{scenario.path}: field 'run.{key}'"
            raise ValueError(f"{source}: {out[key]!r} {why}")
    for key in ("workers", "threads"):
        if (why := run_problem(key, getattr(args, key))) is not None:
            raise ValueError(f"--{key}: {getattr(args, key)!r} {why}")
    return out


def _band(row) -> str:
    """'median (90% band low-high)' for one summary row."""
    return f"{row['q50']:,.0f} (90% band {row['q05']:,.0f}-{row['q95']:,.0f})"


def headline(summary) -> str:
    """One line: median CLA at 31 March with 90% bands, in 2024 and the last year."""
    from sim.fanchart import cla_total

    cla = cla_total(summary)
    if cla.empty:
        return "no national CLA series in the summary"
    last = int(cla["year"].max())
    years = sorted({y for y in SUMMARY_YEARS if y <= last} | {last})
    parts = [f"{y} {_band(cla[cla['year'] == y].iloc[0])}" for y in years if (cla["year"] == y).any()]
    return "children looked after at 31 March, median: " + "; ".join(parts)


LOCAL_ENSEMBLES = "calibration/la"  # shipped LA ensembles: <CODE>.parquet + .json (package data)


def _ensemble_path(path, la):
    """The ensemble file a run uses (None: the first-pass point fit), checked against --la."""
    import json
    from pathlib import Path
    from calibration import ensemble as ens
    if la is not None and path is None:
        path = ens.HERE / "la" / f"{la}.parquet"
        if not path.is_file():
            raise ValueError(f"--la: no ensemble for local authority {la!r} in {LOCAL_ENSEMBLES}/; calibrate it "
                             f"first (caresim calibrate --la {la} --out DIR, a few minutes) and run with "
                             f"--la {la} --ensemble DIR/ensemble.parquet")
    if path is None:
        return ens.SHIPPED if ens.SHIPPED.is_file() else None
    meta = Path(path).with_suffix(".json")
    area = json.loads(meta.read_text()).get("area", "ENG") if meta.is_file() else "ENG"
    if area != (la or "ENG"):
        raise ValueError(f"--ensemble: {path} was calibrated for {area}, not {la or 'England'}"
                         + ("; add --la " + area if la is None else ""))
    return Path(path)


def _ensemble(path):
    """The ensemble table at ``path`` (None: the first-pass point fit)."""
    from calibration import ensemble as ens
    return ens.load(path) if path is not None else None


def _ensemble_note(path, table):
    """Which parameter sets a run used, for its manifest."""
    from calibration import ensemble as ens
    if table is None:
        return {"file": None, "note": "no ensemble: the first-pass point fit (calibration/first_pass.csv)"}
    f = path
    return {"file": str(f), "members": int((table["member"] != ens.CENTRAL).sum()),
            "sha256": __import__("hashlib").sha256(open(f, "rb").read()).hexdigest()}


def run(args: argparse.Namespace) -> int:
    """Load, validate, simulate, summarise and write the run folder; prints its path and a headline."""
    from sim import output, runner, scenario as scenario_mod

    t0 = time.perf_counter()
    sc = scenario_mod.load(args.scenario)
    s = settings(args, sc)
    out = output.check_out(args.out) if args.out else output.default_out(sc.name)
    area = args.la or "ENG"
    if args.la:
        from calibration.inputs import local
        local(args.la)  # an unknown or unsupported code fails here, before any work
    path = _ensemble_path(args.ensemble, args.la)
    table = _ensemble(path)
    df, info = runner.run_scenario(sc, s["replicates"], s["seed"], s["end_year"], s["scale"], workers=args.workers,
                                   by_la=args.by_la, progress=not args.quiet, threads=args.threads,
                                   ensemble=table, uncertainty=args.uncertainty, area=area,
                                   capacity=capacity_choice(args.capacity))
    summary = runner.summarise(df)
    from sim import observe
    observed = observe.observed(area=area)
    info = dict(info, wall_seconds=time.perf_counter() - t0, ensemble=_ensemble_note(path, table))
    folder = output.write_run(out, sc, df, summary, info, observed)
    print(folder)
    print(f"{sc.name}: {headline(summary)} ({s['replicates']} replicates, scale {s['scale']}, capacity "
          f"{'on' if info['capacity'] else 'off'}, {info['wall_seconds']:.1f} s)")
    return 0


def _errors() -> tuple[type[BaseException], ...]:
    """The exceptions that are user errors (reported in one line), not bugs."""
    from calibration.dfe import DataError
    from calibration.parameters import ParameterError
    from sim.scenario import ScenarioError
    return ScenarioError, ParameterError, DataError, ValueError, OSError


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``caresim`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run(args)
        if args.command == "backtest":
            return backtest(args)
        if args.command == "calibrate":
            return calibrate(args)
        if args.command == "compare":
            return compare(args)
    except _errors() as exc:
        print(f"caresim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("caresim: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
