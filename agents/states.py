"""The care-pathway state table (DESIGN §2), loaded from ``states.csv`` so the kernel sees only integers."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class State:
    code: int
    name: str
    model_category: str
    in_care: bool
    cin: bool
    cpp: bool
    cla: bool
    dfe_old: str
    dfe_current: str
    dfe_2024_group: str
    cost_key: str
    description: str


def _load() -> tuple[State, ...]:
    text = resources.files("agents").joinpath("states.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    out = []
    for i, r in enumerate(rows):
        if int(r["code"]) != i:
            raise ValueError(f"agents/states.csv: field 'code' must run 0..n-1 in order, got {r['code']!r} at row {i + 2}")
        out.append(State(int(r["code"]), r["name"], r["model_category"], r["in_care"] == "1", r["cin"] == "1",
                         r["cpp"] == "1", r["cla"] == "1", r["dfe_old"], r["dfe_current"], r["dfe_2024_group"],
                         r["cost_key"], r["description"]))
    return tuple(out)


STATES: tuple[State, ...] = _load()
N_STATES = len(STATES)
NAMES = tuple(s.name for s in STATES)
CODE = {s.name: s.code for s in STATES}
VACANT = 255  # marks a free slot in the struct-of-arrays population

AT_HOME = CODE["AT_HOME"]
EDGE_OF_CARE = CODE["EDGE_OF_CARE"]
KINSHIP = CODE["KINSHIP"]
FOSTER = CODE["FOSTER"]
RESIDENTIAL_HOME = CODE["RESIDENTIAL_HOME"]
RESIDENTIAL_OTHER = CODE["RESIDENTIAL_OTHER"]
SEMI_INDEPENDENT = CODE["SEMI_INDEPENDENT"]
INDEPENDENT_LIVING = CODE["INDEPENDENT_LIVING"]
PLACED_WITH_PARENTS = CODE["PLACED_WITH_PARENTS"]
PLACED_FOR_ADOPTION = CODE["PLACED_FOR_ADOPTION"]
OTHER_IN_CARE = CODE["OTHER_IN_CARE"]
RETURNED_HOME = CODE["RETURNED_HOME"]
KINSHIP_ORDER = CODE["KINSHIP_ORDER"]

IN_CARE = np.array([s.in_care for s in STATES], dtype=np.bool_)
CARE_STATES = tuple(s.code for s in STATES if s.in_care)


def state_code(name: str, where: str = "state") -> int:
    """Return the code of a state name, or raise a clear error naming the unknown value."""
    try:
        return CODE[name]
    except KeyError:
        raise ValueError(f"{where}: unknown state {name!r}; known states: {', '.join(NAMES)}") from None
