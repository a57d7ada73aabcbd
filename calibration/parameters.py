"""The parameter register (DESIGN §2): load, validate, apply fitted values, resolve tied parameters.

Every parameter has a kind: ``calibrated`` (fitted to a named series), ``prior`` (labelled assumption with a
range), ``structural`` (a structural zero, -inf), ``derived`` (arithmetic on sourced figures), ``data`` or
``fixed`` (a convention). ``first_pass.csv`` holds the values written by ``calibration/first_pass.py``.
"""
from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path
from typing import Mapping

from agents import attributes as A

KINDS = {"calibrated", "prior", "structural", "derived", "data", "fixed"}
ENTRY_CHANNELS = ("cin.enter_care", "cpp.enter_care")


class ParameterError(ValueError):
    """A parameter file or value is malformed; the message names the file, field and value."""


def _read_csv(path: str | Path, text: str | None = None) -> list[dict]:
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ParameterError(f"{path}: file not found") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or "name" not in rows[0] or "value" not in rows[0]:
        raise ParameterError(f"{path}: expected a CSV with columns 'name' and 'value'")
    return rows


def _num(path, row_no, field, raw) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ParameterError(f"{path}: row {row_no}, field '{field}': {raw!r} is not a number") from None


def load_register(path: str | Path | None = None) -> dict[str, dict]:
    """Read and validate the register; returns name -> row (value, low, high as floats or None)."""
    if path is None:
        text = resources.files("calibration").joinpath("parameter_register.csv").read_text(encoding="utf-8")
        path = "calibration/parameter_register.csv"
        rows = _read_csv(path, text)
    else:
        rows = _read_csv(path)
    reg: dict[str, dict] = {}
    for n, r in enumerate(rows, start=2):
        name = r["name"]
        if name in reg:
            raise ParameterError(f"{path}: row {n}, field 'name': duplicate parameter {name!r}")
        if r.get("kind") not in KINDS:
            raise ParameterError(f"{path}: row {n}, field 'kind': {r.get('kind')!r} is not one of {sorted(KINDS)}")
        v = _num(path, n, "value", r["value"])
        lo = _num(path, n, "low", r["low"]) if r.get("low") else None
        hi = _num(path, n, "high", r["high"]) if r.get("high") else None
        if r["kind"] == "prior" and (lo is None or hi is None or not lo <= v <= hi):
            raise ParameterError(f"{path}: row {n}, parameter {name!r}: a prior needs low <= value <= high "
                                 f"(got {lo}, {v}, {hi})")
        if r["kind"] != "fixed" and not r.get("source"):
            raise ParameterError(f"{path}: row {n}, parameter {name!r}: field 'source' is empty")
        reg[name] = dict(r, value=v, low=lo, high=hi)
        _UNITS[name] = r.get("unit", "")
    return reg


PROBABILITY_UNITS = {"share", "probability", "ratio"}


def check_value(name: str, value: float, where: str, unit: str | None = None) -> None:
    """Probabilities and shares (by register unit, or by name when no unit is known) must lie in [0, 1]."""
    if math.isnan(value):
        raise ParameterError(f"{where}: parameter {name!r}: value is not a number")
    if unit is None:
        unit = _UNITS.get(name, "")
    is_prob = unit in PROBABILITY_UNITS or name.endswith(("share", ".p", "share_direct")) \
        or "_share_" in name or ".share." in name
    if is_prob and not 0.0 <= value <= 1.0:
        raise ParameterError(f"{where}: parameter {name!r}: {value} is a probability/share outside [0, 1]")


_UNITS: dict[str, str] = {}


def load_overrides(path: str | Path | None = None, register: Mapping[str, dict] | None = None) -> dict[str, float]:
    """Fitted values (name,value CSV) checked against the register."""
    if path is None:
        res = resources.files("calibration").joinpath("first_pass.csv")
        if not res.is_file():
            return {}
        rows, path = _read_csv("calibration/first_pass.csv", res.read_text(encoding="utf-8")), "calibration/first_pass.csv"
    else:
        rows = _read_csv(path)
    out = {}
    for n, r in enumerate(rows, start=2):
        if register is not None and r["name"] not in register:
            raise ParameterError(f"{path}: row {n}, field 'name': unknown parameter {r['name']!r}")
        out[r["name"]] = _num(path, n, "value", r["value"])
    return out


def base_parameters(overrides: Mapping[str, float] | None = None, use_first_pass: bool = True) -> dict[str, float]:
    """Register values, then first-pass fitted values, then explicit overrides; validated."""
    reg = load_register()
    vals = {k: r["value"] for k, r in reg.items()}
    if use_first_pass:
        vals.update(load_overrides(None, reg))
    for k, v in (overrides or {}).items():
        if k not in reg:
            raise ParameterError(f"parameter override: unknown parameter {k!r}")
        vals[k] = float(v)
    for k, v in vals.items():
        check_value(k, v, "parameters", reg[k].get("unit", ""))
    return vals


def resolve(params: Mapping[str, float]) -> dict[str, float]:
    """Expand tied parameters (shared entry and plan effects) into the per-channel names the tables read."""
    out = dict(params)
    lvl = params.get("entry.level", 0.0)
    for ch in ENTRY_CHANNELS:
        out[f"{ch}.base"] = params[f"{ch}.base"] + lvl
        out[f"{ch}.trend"] = params.get("entry.trend", 0.0)
        for b in range(6):
            out[f"{ch}.age.{b}"] = params.get(f"entry.age.{b}", 0.0)
        for b in A.YOUNG_BANDS:
            out[f"{ch}.age_trend.{b}"] = params.get("entry.young.trend", 0.0)
    out["cin.escalate.base"] = params["cin.escalate.base"] + params.get("cpp.level", 0.0)
    return out
