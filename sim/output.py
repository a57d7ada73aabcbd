"""Run folders: manifest, tidy replicates (Parquet), summary (CSV) and fan chart, written atomically.

Everything is written into a temporary sibling folder that is renamed to the final name only when complete,
so an interrupted or failed run never leaves a half-written folder (DESIGN §5, runs/).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from datetime import datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from agents.hazards import trend_rule

START_YEAR = 2015
DEFAULT_ROOT = Path("runs") / "output"
FILES = ("manifest.json", "replicates.parquet", "summary.csv", "fan_chart.png")


# ---- provenance ---------------------------------------------------------------------------------------------
def caresim_version() -> str:
    """The installed package version, else ``sim.__version__``, else the source tree's pyproject.toml."""
    try:
        return metadata.version("caresim")
    except metadata.PackageNotFoundError:
        pass
    import sim
    if getattr(sim, "__version__", None):
        return str(sim.__version__)
    pyproject = Path(sim.__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]) + "+source"
    except (OSError, KeyError, ValueError):
        return "unknown"


def git_revision() -> str | None:
    """HEAD of the source tree's git repository, if there is one (None otherwise)."""
    import sim
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(sim.__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _walk(node, prefix: str = ""):
    """All files under an importlib.resources node, as (relative path, node), in sorted order."""
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        rel = f"{prefix}{child.name}"
        if child.is_dir():
            if child.name != "__pycache__":
                yield from _walk(child, rel + "/")
        elif child.is_file():
            yield rel, child


def data_hash() -> str:
    """sha256 over the packaged data files (names and bytes, sorted by path): identifies the data vintage."""
    h = hashlib.sha256()
    for rel, node in _walk(resources.files("calibration").joinpath("data")):
        h.update(rel.encode("utf-8") + b"\0")
        h.update(hashlib.sha256(node.read_bytes()).digest())
    return h.hexdigest()


def parameter_hash(params: Mapping[str, float]) -> str:
    """sha256 of the resolved parameter set (sorted names, exact float reprs)."""
    text = "\n".join(f"{k}={float(v)!r}" for k, v in sorted(params.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _versions() -> dict:
    """Versions of the interpreter and the numerical libraries the results depend on."""
    import numba
    return {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "pandas": pd.__version__, "pyarrow": pa.__version__}


def manifest(scenario, info: Mapping) -> dict:
    """The run's provenance and settings (what is needed to reproduce and to trust it)."""
    return {
        "caresim_version": caresim_version(),
        "git_revision": git_revision(),
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "scenario": {"name": scenario.name, "description": scenario.description, "file": str(scenario.path),
                     "sha256": scenario.sha256, "base": scenario.base,
                     "parameter_overrides": scenario.parameters, "inputs": scenario.inputs,
                     "levers": [dict(lv.as_dict(), applied=lv.applies(info.get("capacity", False)))
                                for lv in getattr(scenario, "levers", ())]},
        "data_sha256": data_hash(),
        "parameters_sha256": parameter_hash(info["params"]),
        "trend_rule": trend_rule(info["params"]),
        "seed": info["seed"],
        "replicates": info["replicates"],
        "draws": info.get("draws", 1),
        "uncertainty": info.get("uncertainty", "process"),
        "ensemble": info.get("ensemble"),
        "start_year": START_YEAR,
        "end_year": info["end_year"],
        "scale": info["scale"],
        "by_la": info["by_la"],
        "capacity": "on" if info.get("capacity", False) else "off",
        "individuals_alive": {"max_mean_over_replicates": info["individuals_alive_max_mean"],
                              "at_31_march_2015_mean": info["individuals_alive_2015_mean"],
                              "note": "England-equivalent counts (simulated individuals / scale)"},
        "wall_seconds": round(float(info["wall_seconds"]), 3),
        "workers": info["workers"],
        "threads": info["threads"],
        "versions": _versions(),
        "platform": platform.platform(),
        "files": list(FILES),
    }


# ---- files --------------------------------------------------------------------------------------------------
def plain(df: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as plain values and a fresh RangeIndex, so the Parquet bytes depend only on the data."""
    out = df.reset_index(drop=True).copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(out[c].cat.categories.dtype).astype(object).where(out[c].notna(), None)
    return out


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Deterministic Parquet: no index, no pandas/arrow schema metadata, fixed writer options."""
    table = pa.Table.from_pandas(plain(df), preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, str(path), compression="zstd", compression_level=3, use_dictionary=True,
                   write_statistics=True, store_schema=False, data_page_version="1.0", version="2.6")


def default_out(scenario_name: str, root: str | Path = DEFAULT_ROOT) -> Path:
    """runs/output/<YYYYmmdd-HHMMSS>-<scenario name>, under the current directory, made unique."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in scenario_name)
    base = Path(root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def check_out(out: str | Path) -> Path:
    """The output folder must not exist yet (runs are never overwritten)."""
    out = Path(out)
    if out.exists():
        raise ValueError(f"output folder {out} already exists; choose another --out")
    return out


def atomic_folder(out: str | Path, fill: Callable[[Path], None]) -> Path:
    """Create ``out`` by filling a temporary sibling and renaming it; on any error remove it and re-raise."""
    out = check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        fill(tmp)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_run(out: str | Path, scenario, df: pd.DataFrame, summary: pd.DataFrame, info: Mapping,
              observed: pd.DataFrame | None = None) -> Path:
    """Write the run folder (manifest.json, replicates.parquet, summary.csv, fan_chart.png) atomically."""
    from sim.fanchart import fan_chart

    def fill(tmp: Path) -> None:
        write_parquet(df, tmp / "replicates.parquet")
        plain(summary).to_csv(tmp / "summary.csv", index=False, lineterminator="\n")
        fan_chart(summary, observed, tmp / "fan_chart.png", subtitle=trend_rule(info["params"]))
        text = json.dumps(manifest(scenario, info), indent=2, sort_keys=False, default=_json_default)
        (tmp / "manifest.json").write_text(text + "\n", encoding="utf-8")

    return atomic_folder(out, fill)


def _json_default(x):
    """NumPy scalars as plain JSON numbers."""
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
