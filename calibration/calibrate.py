"""``caresim calibrate``: fit, draw the parameter ensemble, check it with the per-child engine, report.

Writes to one folder (created atomically): ``ensemble.parquet`` + ``ensemble.json`` (the manifest: data hash,
method, settings, noise model, diagnostics), ``check/`` (a run folder: the ensemble run over the fitted years,
one replicate per member, both uncertainties), ``report.html`` and its PNG figures.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from calibration import ensemble as ens
from calibration import first_pass


@dataclass
class CalibrateSettings:
    """Settings of one calibration (defaults: the shipped England ensemble)."""
    fit_until: int = first_pass.DATA_END
    members: int = 200
    seed: int = 20150331
    fit_iterations: int = 40
    fit_scale: float = 0.5
    member_scale: float = 0.25
    member_iterations: int = 3
    check_scale: float = 0.25
    warm_start: bool = True     # start the point fit from the shipped first pass (fewer iterations needed)
    workers: int = 1


def check_run(table, fit_until: int, scale: float, seed: int, workers: int | None, progress: bool = True):
    """The ensemble through the per-child engine over the fitted years: one replicate per member."""
    from sim import runner
    members = int((table["member"] != ens.CENTRAL).sum())
    df, info = runner.run_scenario(_status_quo(), members, seed, fit_until, scale, workers=workers,
                                   progress=progress, ensemble=table, uncertainty="both")
    return df, runner.summarise(df), info


def _status_quo():
    from sim import scenario as scenario_mod
    return scenario_mod.load(Path(__file__).resolve().parent.parent / "runs" / "scenarios" / "status_quo.toml")


def calibrate(out: Path, s: CalibrateSettings, log=print, progress: bool = True) -> Path:
    """Run the whole calibration into a new folder ``out`` (nothing left behind on failure)."""
    from calibration.parameters import load_overrides
    from sim import observe, output

    t0 = time.time()
    start = load_overrides() if s.warm_start else None
    table, manifest = ens.build(s.members, s.fit_until, s.seed, s.fit_iterations, s.fit_scale, s.member_scale,
                                s.member_iterations, s.workers, start=start, log=log)
    log(f"check: {s.members} members through the engine to {s.fit_until} at scale {s.check_scale}")
    df, summary, info = check_run(table, s.fit_until, s.check_scale, s.seed, None, progress)
    manifest["settings"]["check_scale"] = s.check_scale
    manifest["settings"]["warm_start"] = s.warm_start
    manifest["diagnostics"]["seconds"]["check"] = info["wall_seconds"]
    manifest["diagnostics"]["seconds"]["total"] = time.time() - t0
    observed = observe.observed()

    def fill(tmp: Path) -> None:
        ens.write(table, manifest, tmp / "ensemble.parquet")
        output.write_run(tmp / "check", _status_quo(), df, summary, info, observed)
        from calibration import calibration_report
        calibration_report.write(tmp, table, manifest, summary, s.fit_until)

    folder = output.atomic_folder(out, fill)
    log(f"calibration written to {folder} ({time.time() - t0:.0f} s)")
    return folder
