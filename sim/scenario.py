"""Scenario files (TOML): a name, run defaults, parameter overrides and exogenous inputs (DESIGN §3).

A scenario file looks like::

    [scenario]
    name = "status_quo"
    description = "..."
    base = "status_quo.toml"      # optional: inherit from another scenario file (same folder)
    method = "microsimulation"    # default; "naive_growth" = the comparator (DfE data alone; nothing else allowed)

    [run]                         # optional defaults; the command line overrides them
    replicates = 100
    seed = 20240331
    end_year = 2035
    scale = 1.0

    [parameters]                  # optional overrides of register parameters
    "care.short_stay.p" = 0.12    # or, equivalently, care.short_stay.p = 0.12 (dotted keys)

    [inputs]                      # optional exogenous inputs
    uasc_future_annual = 5000     # UASC arrivals a year from April 2024

    [[lever]]                     # optional, any number: reform levers (agents/levers.py)
    name = "family_group_conferences"
    kind = "hazard"               # hazard | placement | capacity | unit_cost | investment
    from = "EDGE_OF_CARE"         # a state of agents/states.csv, a list of states, or "IN_CARE"
    to = "ENTER_CARE"             # an event of agents/events.py, or the state one event of `from` reaches
    multiplier = 0.81             # or: addition = -0.002 (to the event's monthly probability)
    start = "2025-04"             # default; April 2024 at the earliest (earlier months are data)
    phase_in_months = 12          # linear ramp from no effect at the start to full effect 12 months later
    las = ["E08000025", ...]      # optional coverage: 2024 LA codes (default every LA)
    share = 0.5                   # optional coverage: a fixed share of children (hazard and placement levers)
    age_band = ["10_to_15"]       # optional filters (hazard and placement levers): age_band, need_band (0-3), uasc
    source = "FGC trial: 36.2% vs 44.8% looked after at 12 months"
    # ...or, where no source sizes it: assumption = true, rationale = "...", low = 0.7, high = 1.0

Hazard levers change the kernel's transition probabilities from their start, and placement levers (``to`` a
placement, ``on`` entry/move/both) multiply that placement's share of the destination draw (engine and Mesa
reference model alike); unit_cost levers reprice child-months (``sim/costs.py``); investment levers are costed by
``caresim compare``; capacity levers change foster recruitment, retention or the usable share of places in runs
with the capacity constraint on (``--capacity on``; ``agents/capacity.py``) and do nothing without it. A scenario
with a ``base`` keeps the base's levers; a lever of the same name replaces the base's.

Every error is a ``ScenarioError`` whose message names the file, the field and the offending value.
"""
from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from agents import levers as levers_mod
from calibration.parameters import ParameterError, check_value, load_register


class ScenarioError(ValueError):
    """A scenario file is missing or malformed; the message names the file, field and value."""


SECTIONS = {"scenario", "run", "parameters", "inputs", "lever"}
SCENARIO_KEYS = {"name": str, "description": str, "base": str, "method": str}
METHODS = ("microsimulation", "naive_growth")  # naive_growth: the comparator, projected from DfE data alone
RUN_KEYS = {"replicates": int, "seed": int, "end_year": int, "scale": float}
FIRST_END_YEAR, LAST_END_YEAR = 2016, 2040
# exogenous inputs: name -> (register parameter it sets, lower bound, meaning)
INPUTS = {
    "uasc_future_annual": ("arrive.uasc.future_annual", 0.0, "UASC arrivals a year from April 2024"),
}


@dataclass
class Scenario:
    """A validated scenario: parameter overrides and run defaults, with the file it came from."""
    name: str
    path: str
    sha256: str
    description: str = ""
    base: str | None = None
    run: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, float] = field(default_factory=dict)
    inputs: dict[str, float] = field(default_factory=dict)
    levers: tuple[levers_mod.Lever, ...] = ()
    method: str = "microsimulation"

    @property
    def hazard_levers(self) -> tuple[levers_mod.Lever, ...]:
        """The levers that change transition probabilities (kind hazard); placement levers are separate."""
        return tuple(lv for lv in self.levers if lv.kind == "hazard")

    def overrides(self) -> dict[str, float]:
        """Parameter overrides for ``base_parameters``: [parameters] plus the parameters [inputs] set."""
        out = dict(self.parameters)
        out.update({INPUTS[k][0]: v for k, v in self.inputs.items()})
        return out


def run_problem(key: str, value) -> str | None:
    """Why a run setting is out of range (None if it is fine); shared by scenario files and the CLI."""
    if key == "replicates" and value < 1:
        return "must be at least 1"
    if key == "scale" and not 0.0 < value <= 1.0:
        return "must be in (0, 1]"
    if key == "end_year" and not FIRST_END_YEAR <= value <= LAST_END_YEAR:
        return f"must be between {FIRST_END_YEAR} and {LAST_END_YEAR}"
    if key == "seed" and not 0 <= value < 2**64:
        return "must be between 0 and 2**64 - 1"
    if key in ("workers", "threads") and value is not None and value < 1:
        return "must be at least 1"
    return None


def _fail(path, where: str, value, why: str):
    raise ScenarioError(f"{path}: field '{where}': {value!r} {why}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _typed(path, where: str, value, kind: type):
    """Check one scalar against its expected type (ints accepted where floats are expected)."""
    if kind is float:
        if not _is_number(value) or not math.isfinite(float(value)):
            _fail(path, where, value, "is not a finite number")
        return float(value)
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        _fail(path, where, value, "is not an integer")
    if kind is str and not isinstance(value, str):
        _fail(path, where, value, "is not a string")
    return value


def _table(path, doc: Mapping, name: str, required: bool = False) -> dict:
    """A top-level table of the file (empty if optional and absent)."""
    if name not in doc:
        if required:
            raise ScenarioError(f"{path}: missing table [{name}]")
        return {}
    if not isinstance(doc[name], dict):
        _fail(path, name, doc[name], "must be a table")
    return doc[name]


def _keyed(path, section: str, table: Mapping, spec: Mapping[str, type]) -> dict:
    """Validate a flat table against a {key: type} spec; unknown keys are errors."""
    out = {}
    for k, v in table.items():
        if k not in spec:
            _fail(path, f"{section}.{k}", v, f"is not a known key of [{section}] (known: {', '.join(sorted(spec))})")
        out[k] = _typed(path, f"{section}.{k}", v, spec[k])
    return out


def _flatten(path, table: Mapping, prefix: str = "") -> dict[str, Any]:
    """Dotted TOML keys (care.short_stay.p = 1) become nested tables; join them back into register names."""
    out: dict[str, Any] = {}
    for k, v in table.items():
        name = f"{prefix}{k}"
        items = _flatten(path, v, name + ".") if isinstance(v, dict) else {name: v}
        for n, x in items.items():
            if n in out:
                _fail(path, f"parameters.{n}", x, "is given twice")
            out[n] = x
    return out


def _parameters(path, table: Mapping) -> dict[str, float]:
    """Overrides must name register parameters, be numbers, and pass the register's range checks."""
    register = load_register()
    out = {}
    for name, v in _flatten(path, table).items():
        where = f"parameters.{name}"
        if name not in register:
            _fail(path, where, v, "is not a parameter in the register (calibration/parameter_register.csv)")
        if not _is_number(v) or math.isnan(float(v)):
            _fail(path, where, v, "is not a number")
        try:
            check_value(name, float(v), f"{path}: field '{where}'")
        except ParameterError as exc:
            raise ScenarioError(str(exc)) from None
        out[name] = float(v)
    return out


def _inputs(path, table: Mapping, parameters: Mapping[str, float]) -> dict[str, float]:
    """Exogenous inputs: known names, numbers at or above their lower bound, not also set in [parameters]."""
    out = {}
    for k, v in table.items():
        where = f"inputs.{k}"
        if k not in INPUTS:
            _fail(path, where, v, f"is not a known input (known: {', '.join(sorted(INPUTS))})")
        value = _typed(path, where, v, float)
        pname, low, _ = INPUTS[k]
        if value < low:
            _fail(path, where, v, f"is below {low}")
        if pname in parameters:
            _fail(path, where, v, f"sets {pname!r}, which [parameters] also sets")
        out[k] = value
    return out


def _la_codes() -> list[str]:
    """The 2024 LA codes the engine uses (read only when a lever names LAs)."""
    from calibration.inputs import la_table
    return la_table()[0]


def _levers(path, doc: Mapping) -> tuple[levers_mod.Lever, ...]:
    """The file's [[lever]] tables, each validated by ``agents.levers.from_table``; names must be unique."""
    if "lever" not in doc:
        return ()
    tables = doc["lever"]
    if not isinstance(tables, list):
        _fail(path, "lever", tables, "must be an array of tables: write each lever as [[lever]]")
    codes = _la_codes() if any(isinstance(t, dict) and "las" in t for t in tables) else None
    out: dict[str, levers_mod.Lever] = {}
    for i, t in enumerate(tables):
        if not isinstance(t, dict):
            _fail(path, f"lever[{i}]", t, "must be a table: write each lever as [[lever]]")
        try:
            lv = levers_mod.from_table(t, codes)
        except levers_mod.LeverError as exc:
            where = f"lever.{exc.lever}" if exc.lever else f"lever[{i}]"
            _fail(path, f"{where}.{exc.field}", exc.value, exc.why)
        if lv.name in out:
            _fail(path, f"lever.{lv.name}.name", lv.name, "is given to two levers of this file")
        out[lv.name] = lv
    return tuple(out.values())


def _merge_levers(base: tuple, levers: tuple) -> tuple:
    """The base's levers, a lever of this file replacing the base's of the same name, then this file's new ones."""
    mine = {lv.name: lv for lv in levers}
    merged = [mine.pop(lv.name, lv) for lv in base]
    return tuple(merged) + tuple(lv for lv in levers if lv.name in mine)


def _merge(base: Scenario, run: dict, params: dict, inputs: dict) -> tuple[dict, dict, dict]:
    """This file's settings over its base's; whichever of an input and a parameter is given here wins."""
    merged_params = {**base.parameters, **params}
    merged_inputs = {**base.inputs, **inputs}
    for k in inputs:
        merged_params.pop(INPUTS[k][0], None)
    for k in base.inputs:
        if k not in inputs and INPUTS[k][0] in params:
            merged_inputs.pop(k)
    return {**base.run, **run}, merged_params, merged_inputs


def _read(path: Path) -> tuple[dict, str]:
    """Parse the TOML file; returns the document and the sha256 of its bytes."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ScenarioError(f"{path}: scenario file not found") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: not valid TOML ({exc})") from None
    return doc, hashlib.sha256(raw).hexdigest()


def _parse(path: Path, chain: tuple[Path, ...]) -> Scenario:
    """Validate one file and merge it over its base (if any); ``chain`` guards against cycles."""
    doc, digest = _read(path)
    for k, v in doc.items():
        if k not in SECTIONS:
            _fail(path, k, v, f"is not a known table (known: {', '.join(sorted(SECTIONS))})")
    head = _keyed(path, "scenario", _table(path, doc, "scenario", required=True), SCENARIO_KEYS)
    if not head.get("name", "").strip():
        _fail(path, "scenario.name", head.get("name"), "must be a non-empty string")
    run = _keyed(path, "run", _table(path, doc, "run"), RUN_KEYS)
    for k, v in run.items():
        if (why := run_problem(k, v)) is not None:
            _fail(path, f"run.{k}", v, why)
    params = _parameters(path, _table(path, doc, "parameters"))
    inputs = _inputs(path, _table(path, doc, "inputs"), params)
    levers = _levers(path, doc)
    method = head.get("method", "microsimulation")
    if method not in METHODS:
        _fail(path, "scenario.method", method, f"is not one of {', '.join(METHODS)}")
    if method != "microsimulation" and (levers or params or inputs or head.get("base")):
        _fail(path, "scenario.method", method, "takes no base, levers, [parameters] or [inputs]: the naive "
                                               "comparator projects DfE data alone")
    base_name = head.get("base")
    if base_name:
        base_path = (path.parent / base_name).resolve()
        if base_path in chain:
            _fail(path, "scenario.base", base_name, "makes a cycle of base scenarios")
        base = _parse(base_path, chain + (base_path,))
        run, params, inputs = _merge(base, run, params, inputs)
        levers = _merge_levers(base.levers, levers)
    return Scenario(name=head["name"], path=str(path), sha256=digest, description=head.get("description", ""),
                    base=base_name, run=run, parameters=params, inputs=inputs, levers=levers, method=method)


def load(path: str | Path) -> Scenario:
    """Load and validate a scenario file (and its base chain)."""
    p = Path(path)
    return _parse(p, (p.resolve(),))
