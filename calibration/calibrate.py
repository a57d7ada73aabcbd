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
    la: str | None = None       # a local authority's 2024 code: fit it on top of a national ensemble
    national: str | None = None  # the national ensemble an LA fit builds on (default: the shipped one)
    la_check_scale: float = 1.0  # an LA's check run simulates it at its real size (its own process noise)


def check_run(table, fit_until: int, scale: float, seed: int, workers: int | None, progress: bool = True,
              area: str = "ENG"):
    """The ensemble through the per-child engine over the fitted years: one replicate per member."""
    from sim import runner
    members = int((table["member"] != ens.CENTRAL).sum())
    df, info = runner.run_scenario(_status_quo(), members, seed, fit_until, scale, workers=workers,
                                   progress=progress, ensemble=table, uncertainty="both", area=area)
    return df, runner.summarise(df), info


def _status_quo():
    from sim import scenario as scenario_mod
    return scenario_mod.load(Path(__file__).resolve().parent.parent / "runs" / "scenarios" / "status_quo.toml")


def _local(s: CalibrateSettings, log):
    """An LA's ensemble on top of a national one fitted to the same year (calibration/local.py)."""
    import json
    from calibration import local
    path = Path(s.national) if s.national else ens.SHIPPED
    national = ens.load(path)
    meta = path.with_suffix(".json")
    fitted = json.loads(meta.read_text()).get("settings", {}).get("fit_until") if meta.is_file() else None
    if fitted is not None and int(fitted) != s.fit_until:
        raise local.LocalError(f"{path}: national ensemble fitted to {fitted}, but --fit-until is {s.fit_until}; "
                               f"calibrate England to {s.fit_until} first (caresim calibrate --fit-until "
                               f"{s.fit_until} --out DIR) and pass it with --ensemble DIR/ensemble.parquet")
    table, manifest = local.build(s.la, national, s.members, s.fit_until, s.seed, log=log)
    manifest["national_ensemble"] = {"file": str(path), "sha256": _sha256(path)}
    return table, manifest


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def calibrate(out: Path, s: CalibrateSettings, log=print, progress: bool = True) -> Path:
    """Run the whole calibration into a new folder ``out`` (nothing left behind on failure)."""
    from calibration.parameters import load_overrides
    from sim import observe, output

    t0 = time.time()
    area = s.la or "ENG"
    if s.la:
        table, manifest = _local(s, log)
        check_scale = s.la_check_scale
    else:
        start = load_overrides() if s.warm_start else None
        table, manifest = ens.build(s.members, s.fit_until, s.seed, s.fit_iterations, s.fit_scale, s.member_scale,
                                    s.member_iterations, s.workers, start=start, log=log)
        manifest["settings"]["warm_start"] = s.warm_start
        check_scale = s.check_scale
    manifest["data_sha256"] = manifest.get("data_sha256") or ens.data_hash()
    log(f"check: {s.members} members through the engine to {s.fit_until} at scale {check_scale}")
    df, summary, info = check_run(table, s.fit_until, check_scale, s.seed, None, progress, area)
    manifest["settings"]["check_scale"] = check_scale
    manifest["diagnostics"]["seconds"]["check"] = info["wall_seconds"]
    manifest["diagnostics"]["seconds"]["total"] = time.time() - t0
    observed = observe.observed(area=area)

    def fill(tmp: Path) -> None:
        ens.write(table, manifest, tmp / "ensemble.parquet")
        output.write_run(tmp / "check", _status_quo(), df, summary, info, observed)
        from calibration import calibration_report
        calibration_report.write(tmp, table, manifest, summary, s.fit_until)

    folder = output.atomic_folder(out, fill)
    log(f"calibration written to {folder} ({time.time() - t0:.0f} s)")
    return folder
