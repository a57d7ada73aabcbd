"""Reform levers: what a scenario changes, defined once for the numba engine and the Mesa model (DESIGN §3).

A lever is one named change with a start month, a phase-in, a coverage and its evidence. Five kinds:

* ``hazard`` — multiplies (``multiplier``), or adds to (``addition``), the monthly probability of one event
  of ``agents/events.py`` for children in given states: ``from`` (a state of ``agents/states.csv``, a list of
  them, or ``IN_CARE`` for every in-care state) and ``to`` (an event such as ``ENTER_CARE``, ``MOVE``,
  ``REUNIFIED``, ``CASE_CLOSE``, or a state that one event of ``from`` reaches: ``RETURNED_HOME`` means
  ``REUNIFIED``, ``EDGE_OF_CARE`` from ``AT_HOME`` means ``ESCALATE``). Optional filters: hazard age bands
  (``age_band``: labels of ``attributes.AGE_LABELS7`` below 18), need bands (``need_band``: 0-3), ``uasc``
  (true: UASC only; false: other children only). Stays under a month (entry and return home in one step,
  ``care.short_stay.p``) are part of entering care, not a hazard of their own: no lever reaches them yet.
  The effect is on the event's competing-risk probability in the month (``agents/hazards.compile_tables``):
  the other events of the month keep theirs and "no event" absorbs the change; for the small monthly
  probabilities of this model a multiplier on the probability is, to first order, the same multiplier on the
  hazard. Several levers on one event multiply (multipliers) and add (additions): p' = p x prod(m) + sum(a).
  An addition only acts where the event has a positive probability (structural zeros stay zero). The change
  is drawn against the same random number as the status quo and moves only the children whose draw falls in
  the changed part (``lever_event``); if levers push a month's total above 1, the extra is cut there.
  Applied by the numba kernel (``sim/kernel.step_month``) and the Mesa model (``agents/reference_model.py``)
  through ``child_effects`` and ``lever_event`` below: the same functions, compiled by numba for the kernel
  and run as plain Python by Mesa.
* ``placement`` — multiplies (``multiplier`` only) the share of one or more destination placements (``to``:
  a state of ``events.DEST_STATES``, or a list of them) in the draw a child makes when it enters care
  (``on = "entry"``: ENTER_CARE from any state, and children who arrive straight into care), when it moves
  placement (``on = "move"``: MOVE) or both (``on = "both"``, the default). Optional filters as for hazard
  levers: ``age_band``, ``need_band``, ``uasc`` (the child's, at the draw). In the child's destination row
  (``agents/hazards.compile_tables``: entry or move, age band, need band, UASC) each target's probability is
  multiplied (RESIDENTIAL_HOME x 0.5 halves the share of children's homes) and the placements no lever
  targets absorb the difference in proportion to their shares; if targets would exceed the whole row, or
  nothing else can absorb, the targets are scaled to fill it. Structural zeros stay zero. Several levers on
  one placement multiply. The draw is the child's status-quo destination draw, re-cut
  (``placement_event``): a shrunk placement keeps the start of its interval, and the cut-off ends, in
  destination order, are handed to the grown placements in destination order, so only children whose draw
  falls in a cut-off end change placement (a maximal coupling: the fewest children move). It does not change
  whether or when a child enters care or moves, only where it goes (keeping children out of care is a hazard
  lever). Applied by the numba kernel and the Mesa model through ``placement_effects`` and
  ``placement_event``.
* ``capacity`` — foster capacity: ``capacity`` = ``recruitment``, ``retention`` or ``usable_share``, by a
  multiplier or an addition (recruitment: mainstream fostering households added a year; retention: the annual
  de-registration rate, which a multiplier multiplies (0.9 = 10% fewer de-registrations) and an addition adds
  to; usable share: the share of approved places that can be used). Applied by the foster capacity model
  (``agents/capacity.py``) in runs with the capacity constraint on (``capacity.constraint``: the default with
  the shipped ensemble), region by region (``las``: in proportion to the covered LAs' share of each region's
  foster children); without the constraint a capacity lever has no effect on a run.
* ``unit_cost`` — a unit cost: ``cost_key`` (a ``cost_key`` of ``agents/states.csv``; ``provider`` = ``la`` or
  ``independent``, default both), by a multiplier or an addition in GBP a week, phased in like the others;
  applied when child-months are priced (``sim/costs.UnitCosts.monthly_weekly``; with ``las``, to the covered
  LAs' share of the care stock, an expected cost).
* ``investment`` — a reform's own cost, ``annual_gbp`` a year (in the prices of ``cost.price_year_ending``)
  from ``start`` to ``end`` (default: the end of the run), costed by ``caresim compare`` (``sim/compare.py``).

Timing: ``start`` is a year-month (``"2025-04"``, the default; not before ``"2024-04"``, the first projected
month; April 2024 to the start is projected under the status quo). Model month m = 1 is April 2015
(``model_month``). ``phase_in_months`` = P: the effect is 0 at the start month and rises linearly to full
strength P months later (fraction d / P in month start + d); P = 0 means full strength from the start month.

Coverage: all children (default); ``las`` = a list of 2024 LA codes (only children whose LA is one of them);
``share`` = a fixed share of children (hazard and placement levers), chosen by a hash of the child's stable id
that does not depend on the seed, the scenario or the lever, so the same children are covered in every scenario
and replicate (and by every lever with a share) and a smaller share is a subset of a larger one; with both, that
share of those LAs' children.

Evidence: a ``source`` (where the size comes from), or ``assumption = true`` with a ``rationale`` and a range
``low``..``high`` that contains the lever's value (for sensitivity analysis).

Every error is a ``LeverError`` naming the field and the value; ``sim/scenario.py`` adds the file.
"""
from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from agents import attributes as A
from agents import events as E
from agents import states as S

KINDS = ("hazard", "placement", "capacity", "unit_cost", "investment")
CAPACITY_TARGETS = ("recruitment", "retention", "usable_share")
PLACEMENT_ON = ("entry", "move", "both")
DEST_NAMES = tuple(S.NAMES[s] for s in E.DEST_STATES)   # placements an entry or a move can draw, in draw order
PROVIDERS = ("la", "independent")
COST_KEYS = tuple(sorted({s.cost_key for s in S.STATES}))
HAZARD_AGE_LABELS = A.AGE_LABELS7[: A.N_AGE]   # the hazard age bands (18 and over is not a hazard band)
GROUPS = {"IN_CARE": tuple(S.NAMES[s] for s in S.CARE_STATES)}
# exit names of DESIGN §2 that are events under another name
EVENT_ALIASES = {"CASE_CLOSED": "CASE_CLOSE", "LEFT_CARE_16_17": "LEFT_CARE"}

DEFAULT_START = (2025, 4)
FIRST_START = (2024, 4)        # the first projected month: the data end at 31 March 2024
LAST_START = (2040, 3)         # the last month any run simulates (sim/scenario.LAST_END_YEAR)
MONTH_ONE = (2015, 4)          # model month 1 (docs/ARCHITECTURE.md)
MAX_MULTIPLIER = 10.0          # a monthly probability x more than 10 is almost surely a unit mistake
MAX_PHASE_IN = 240
MAX_COST_ADDITION = 100_000.0  # GBP a week
MAX_RECRUITMENT_ADDITION = 100_000.0  # fostering households a year
MAX_ANNUAL_GBP = 1e11

U32 = 4294967296.0
THR_MAX = 4294967295           # the largest uint32 threshold (hazards.to_threshold)
FULL_SHARE = 4294967296        # coverage threshold that covers every child (a draw is below 2**32)
# the coverage draw: sim/rng.draw32 keyed by the child's id with this fixed seed, month and decision (never a
# replicate's seed), so coverage is the same in every scenario and replicate
COVER_SEED = 0x6C657665725F6964  # b"lever_id"
COVER_MONTH = 0
COVER_DEC = 15

# a hazard cell: (state, hazard age band, need band, uasc); the kernel looks levers up by cell
N_CELLS = S.N_STATES * A.N_AGE * A.N_NEED * 2
# a placement cell: (0 entry / 1 move, hazard age band, need band, uasc), the layout of HazardTables.dest_thr
N_PCELLS = 2 * A.N_AGE * A.N_NEED * 2
N_DEST = E.N_DEST


class LeverError(ValueError):
    """A lever is malformed: ``field`` and ``value`` say where, the message says why."""

    def __init__(self, field_: str, value, why: str, lever: str | None = None):
        self.field, self.value, self.why, self.lever = field_, value, why, lever
        super().__init__(f"field '{field_}': {value!r} {why}")


def model_month(year: int, month: int) -> int:
    """Model month of a calendar year-month (April 2015 = 1, March 2016 = 12, April 2025 = 121)."""
    return (year - MONTH_ONE[0]) * 12 + month - MONTH_ONE[1] + 1


def cell_index(state: int, age_band: int, need: int, uasc: int) -> int:
    """Index of a hazard cell (state, hazard age band 0-5, need band 0-3, uasc 0/1)."""
    return ((state * A.N_AGE + age_band) * A.N_NEED + need) * 2 + uasc


def placement_cell(kind: int, age_band: int, need: int, uasc: int) -> int:
    """Index of a placement cell (0 entry / 1 move, hazard age band 0-5, need band 0-3, uasc 0/1): the flat
    index of ``HazardTables.dest_thr[kind, age_band, need, uasc]``."""
    return ((kind * A.N_AGE + age_band) * A.N_NEED + need) * 2 + uasc


@dataclass(frozen=True)
class Lever:
    """One validated lever (see the module docstring for the fields' meaning); build it with ``from_table``
    from a scenario's ``[[lever]]`` table, or directly (checked on construction)."""
    name: str
    kind: str
    start: tuple[int, int] = DEFAULT_START
    phase_in_months: int = 0
    multiplier: float | None = None
    addition: float | None = None
    description: str = ""
    # hazard: the transition and the children it applies to
    from_states: tuple[str, ...] = ()
    to: str = ""
    age_bands: tuple[str, ...] = ()      # empty: every age band
    need_bands: tuple[int, ...] = ()     # empty: every need band
    uasc: bool | None = None             # None: UASC and other children
    # placement: the destinations whose weight it multiplies, on entries, moves or both
    placements: tuple[str, ...] = ()
    on: str = ""
    # coverage
    las: tuple[str, ...] = ()            # empty: every LA
    share: float = 1.0
    # capacity, unit_cost, investment
    capacity: str = ""
    cost_key: str = ""
    provider: str = ""                   # "" = both providers
    annual_gbp: float | None = None
    end: tuple[int, int] | None = None
    # evidence
    source: str = ""
    assumption: bool = False
    rationale: str = ""
    low: float | None = None
    high: float | None = None

    def __post_init__(self):
        _check(self)

    # ---- derived -------------------------------------------------------------------------------------------
    @property
    def first_month(self) -> int:
        """Model month of the start."""
        return model_month(*self.start)

    @property
    def value(self) -> float:
        """The lever's size: its multiplier, addition, or (investment) annual cost."""
        for v in (self.multiplier, self.addition, self.annual_gbp):
            if v is not None:
                return v
        raise AssertionError("a validated lever has a value")

    @property
    def coverage(self) -> str:
        """'all', 'las', 'share' or 'las+share'."""
        parts = (["las"] if self.las else []) + (["share"] if self.share < 1.0 else [])
        return "+".join(parts) or "all"

    @property
    def applied(self) -> bool:
        """Whether every run applies this lever: hazard and placement levers in the engine, unit-cost levers in
        the pricing (``sim/costs.UnitCosts``), investment levers in ``caresim compare``; capacity levers only in
        runs with the capacity constraint on (``applies``)."""
        return self.kind in ("hazard", "placement", "unit_cost", "investment")

    def applies(self, capacity: bool) -> bool:
        """Whether a run with the foster capacity constraint on (``capacity``) or off applies this lever."""
        return self.applied or (self.kind == "capacity" and bool(capacity))

    def transitions(self) -> tuple[tuple[int, int], ...]:
        """(state code, slot of ``events.STATE_CHANNELS``) pairs the lever changes (hazard levers)."""
        return resolve_transitions(self.from_states, self.to) if self.kind == "hazard" else ()

    def as_dict(self) -> dict[str, Any]:
        """The lever's non-default fields, as written in a scenario file (for manifests)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("name", "kind") or v != f.default:
                key = {"from_states": "from", "age_bands": "age_band", "need_bands": "need_band",
                       "placements": "to"}.get(f.name, f.name)
                out[key] = _ym_text(v) if f.name in ("start", "end") and v is not None else (
                    list(v) if isinstance(v, tuple) else v)
        out["start"] = _ym_text(self.start)
        return out


# ---- timing: the one definition of phase-in -------------------------------------------------------------------
def ramp(lever: Lever, month: int) -> float:
    """Share of the lever's effect in model month ``month``: 0 before the start; from the start, d / P in
    month start + d (P = ``phase_in_months``), capped at 1; 1 from the start month when P = 0."""
    d = month - lever.first_month
    if d < 0:
        return 0.0
    if lever.phase_in_months == 0:
        return 1.0
    return min(1.0, d / lever.phase_in_months)


def effect_at(lever: Lever, month: int) -> tuple[float, float]:
    """(multiplier, addition) of a hazard lever in model month ``month``, phase-in applied: the multiplier
    moves linearly from 1 to its value, the addition from 0 to its value; (1.0, 0.0) before the start."""
    f = ramp(lever, month)
    if f == 0.0:
        return 1.0, 0.0
    if lever.multiplier is not None:
        return 1.0 + f * (lever.multiplier - 1.0), 0.0
    return 1.0, f * lever.addition


# ---- one child in one month: the pure functions both engines run ----------------------------------------------
def child_effects(cell, la, u, cell_slot, la_ok, share, mult, add, mk, ak):
    """Per-slot multipliers ``mk`` and additions ``ak`` from the hazard levers that cover one child this
    month; returns True if any does (``mk``/``ak`` are reset to 1/0 first), False otherwise (untouched).

    ``cell``: the child's hazard cell (``cell_index``); ``la``: its LA index; ``u``: its coverage draw
    (``COVER_*``; any value will do in a cell whose levers all cover every child); the other arguments are
    the per-lever part of a ``LeverTables.for_month`` tuple (flat arrays, lever l's block at l * N_CELLS and
    l * n_la). Written for numba (``sim/kernel.py`` compiles it) and plain Python alike."""
    n_lev = len(share)
    if n_lev == 0:
        return False
    n_la = len(la_ok) // n_lev
    hit = False
    for lv in range(n_lev):
        k = cell_slot[lv * N_CELLS + cell]
        if k < 0 or la_ok[lv * n_la + la] == 0 or u >= share[lv]:
            continue
        if not hit:
            for j in range(len(mk)):
                mk[j] = 1.0
                ak[j] = 0.0
            hit = True
        mk[k] *= mult[lv]
        ak[k] += add[lv]
    return hit


def new_probability(p, m, a):
    """Slot probability p (in units of 2**-32) after a multiplier m and an addition a (a probability):
    floor(p x m + a x 2**32), at least 0; p = 0 stays 0 (structural zeros)."""
    if p <= 0:
        return 0
    x = p * m + a * U32
    return math.floor(x) if x > 0.0 else 0


def lever_event(thr_row, mk, ak, r):
    """The slot a draw ``r`` selects in a hazard row (cumulative uint32 thresholds) whose slot k probability
    p_k becomes q_k = ``new_probability(p_k, mk[k], ak[k])``; K (the row's length) for no event.

    Every other event keeps its interval of the draw: a lowered slot keeps the start of its interval and the
    rest becomes "no event"; a raised slot keeps its interval and takes the extra from "no event", just above
    the row's total (raised slots in slot order; capped at a total of 2**32 - 1). So only children whose draw
    falls in a changed part have a different month, the tightest pairing with the status quo (common random
    numbers); with mk = 1 and ak = 0 (a zero-effect lever) every draw selects what the row selects."""
    n = len(thr_row)
    prev = 0
    for k in range(n):                   # the row's own intervals, lowered slots cut short
        t = int(thr_row[k])
        if r < t:
            if mk[k] == 1.0 and ak[k] == 0.0:
                return k
            x = (t - prev) * mk[k] + ak[k] * U32      # new_probability, inlined (numba compiles this function)
            q = math.floor(x) if x > 0.0 else 0
            return k if r < prev + q else n
        prev = t
    ext = prev                           # above the row's total: what raised slots gained, in slot order
    prev = 0
    for k in range(n):
        t = int(thr_row[k])
        if (mk[k] != 1.0 or ak[k] != 0.0) and t > prev:
            x = (t - prev) * mk[k] + ak[k] * U32
            gain = (math.floor(x) if x > 0.0 else 0) - (t - prev)
            if gain > 0:
                ext = ext + gain
                if ext > THR_MAX:
                    ext = THR_MAX
                if r < ext:
                    return k
        prev = t
    return n


def placement_effects(pcell, la, u, cell_ok, dest_ok, la_ok, share, mult, md):
    """Per-destination share multipliers ``md`` (length ``N_DEST``) from the placement levers that cover one
    child's destination draw; returns True if any does, False otherwise (``md`` untouched). On a hit ``md`` is
    reset to -1 (the destination is no lever's target: it absorbs the change) and each covering lever's
    targets get its multiplier (several levers on one destination multiply).

    ``pcell``: the draw's placement cell (``placement_cell``); ``la``: the child's LA index; ``u``: its coverage
    draw (as for ``child_effects``); the other arguments are the per-lever part of a
    ``PlacementTables.for_month`` tuple (lever l's block at l * N_PCELLS, l * N_DEST and l * n_la). Written
    for numba (``sim/kernel.py`` compiles it) and plain Python alike."""
    n_lev = len(share)
    if n_lev == 0:
        return False
    n_la = len(la_ok) // n_lev
    n_dest = len(md)
    hit = False
    for lv in range(n_lev):
        if cell_ok[lv * N_PCELLS + pcell] == 0 or la_ok[lv * n_la + la] == 0 or u >= share[lv]:
            continue
        if not hit:
            for j in range(n_dest):
                md[j] = -1.0
            hit = True
        for j in range(n_dest):
            if dest_ok[lv * n_dest + j] != 0:
                md[j] = mult[lv] if md[j] < 0.0 else md[j] * mult[lv]
    return hit


def placement_event(thr_row, md, r):
    """The destination (index into ``events.DEST_STATES``) a draw ``r`` selects in a destination row
    (cumulative uint32 thresholds; the last one is the row's total) when the share of each target destination
    (``md[j] >= 0``, from ``placement_effects``) is multiplied by md[j] and the other destinations
    (``md[j] < 0``) absorb the difference in proportion to their shares: width p_j becomes q_j = p_j x md[j]
    for a target and p_j x a for the others, a = (total - sum of targets' p x md) / (total - sum of targets'
    p). If there is nothing to absorb it (the targets hold the whole row) or the targets would exceed the
    whole, the targets are scaled to fill the row and the others get nothing. Structural zeros stay zero.

    Re-cut of the status-quo draw: a draw in the first min(p_j, q_j) of destination j's interval keeps j. The
    ends cut off shrunk destinations, taken in destination order, form one range that is handed to the grown
    destinations (their gains q_j - p_j) in destination order. So only children whose draw falls in a cut-off
    end change placement, the fewest possible (a maximal coupling with the status quo: common random numbers);
    with every target's md = 1 every draw selects what the row selects, bit for bit. Rounding down leaves the
    gains a few units of 2**-32 short of the cuts: the last grown destination takes those draws. A draw at or
    above the total and a row the targets would empty (all their md = 0 and nothing else to absorb) keep
    their status-quo destination."""
    n = len(thr_row)
    total = int(thr_row[n - 1])
    orig = n - 1                         # the status-quo destination (a draw at the total: the last one)
    for k in range(n):
        if r < int(thr_row[k]):
            orig = k
            break
    if r >= total:
        return orig
    xt = 0.0                             # the targets' new widths, before rounding
    pt = 0                               # the targets' old widths
    prev = 0
    for k in range(n):
        t = int(thr_row[k])
        if md[k] >= 0.0:
            xt += (t - prev) * md[k]
            pt += t - prev
        prev = t
    rest = total - pt
    if rest > 0 and xt <= total:
        a = (total - xt) / rest          # what the other destinations keep of their width (exactly 1 if md = 1)
        scale = 1.0
    elif xt > 0.0:
        a = 0.0                          # nothing absorbs, or the targets overflow: they fill the row
        scale = total / xt
    else:
        return orig
    off = -1                             # the draw's place in the range of cut-off ends
    cut = 0
    prev = 0
    for k in range(n):
        t = int(thr_row[k])
        p = t - prev
        x = p * (md[k] * scale if md[k] >= 0.0 else a)   # the new width (inlined: numba compiles this function)
        q = math.floor(x) if x > 0.0 else 0
        if k == orig:
            if q >= p or r - prev < q:
                return k
            off = cut + (r - prev - q)
            break
        if q < p:
            cut += p - q
        prev = t
    gained = 0
    last = orig                          # rounding leaves the gains a few units short of the cuts: the last
    prev = 0                             # grown destination takes those draws too
    for k in range(n):
        t = int(thr_row[k])
        p = t - prev
        x = p * (md[k] * scale if md[k] >= 0.0 else a)
        q = math.floor(x) if x > 0.0 else 0
        if q > p:
            gained += q - p
            last = k
            if off < gained:
                return k
        prev = t
    return last


# ---- compiled tables ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeverTables:
    """The hazard levers of a run as flat arrays for the kernel (one row block per lever), and the placement
    levers' tables (``placement``, None without placement levers):

    * ``cell_flag`` uint8 [N_CELLS]: 0 where no lever changes the cell, else 1, or 3 where a lever of the cell
      covers a share of children (the child's coverage draw is needed);
    * ``cell_slot`` int8 [L * N_CELLS]: the slot lever l changes in a cell, -1 where it does not apply
      (state, age band, need band and UASC filters folded in);
    * ``la_ok`` uint8 [L * n_la]: 1 where lever l covers the run's LA index (``ModelInputs.la_codes``);
    * ``share`` uint64 [L]: lever l covers a child whose coverage draw is below it (2**32 = every child);
    * ``targets`` bool [L, N_CELLS]: ``cell_slot >= 0``.
    ``for_month`` adds the month's phased multipliers and additions and, per cell, a bound above which no draw
    can meet an event whatever the child's coverage (the kernel's quick test; see ``for_month``)."""
    levers: tuple[Lever, ...]
    cell_flag: np.ndarray
    cell_slot: np.ndarray
    la_ok: np.ndarray
    share: np.ndarray
    targets: np.ndarray
    first_month: int
    placement: "PlacementTables | None" = None   # the run's placement levers (``compile_levers``)

    def placement_for_month(self, month: int) -> tuple | None:
        """The kernel's placement-lever argument for model month ``month`` (``PlacementTables.for_month``):
        None (the status-quo destination draw) with no placement lever or before the earliest one starts."""
        return self.placement.for_month(month) if self.placement is not None else None

    def for_month(self, month: int) -> tuple | None:
        """The kernel's lever argument for model month ``month``: None (the status-quo kernel) before the
        earliest start or with no hazard lever, else the tuple (cell_flag, cell_mult, cell_add, cell_slot,
        la_ok, share, mult, add): ``mult``/``add`` float64 [L] the levers' phased effects this month;
        ``cell_mult``/``cell_add`` float64 [N_CELLS] bound the draw range a lever can reach in a cell: a draw
        r >= total x cell_mult + cell_add (total = the row's last threshold; cell_mult the product of the
        cell's multipliers above 1, cell_add its positive additions x 2**32, plus 1 against rounding) is no
        event for every child, covered or not, so the kernel skips the lever path there."""
        if not self.levers or month < self.first_month:
            return None
        eff = np.array([effect_at(lv, month) for lv in self.levers], dtype=np.float64)
        mult, add = np.ascontiguousarray(eff[:, 0]), np.ascontiguousarray(eff[:, 1])
        t = self.targets
        cell_mult = np.prod(np.where(t, np.maximum(mult, 1.0)[:, None], 1.0), axis=0)
        cell_add = np.sum(np.where(t, np.maximum(add, 0.0)[:, None] * U32, 0.0), axis=0) + 1.0
        return (self.cell_flag, cell_mult, cell_add, self.cell_slot, self.la_ok, self.share, mult, add)


@dataclass(frozen=True)
class PlacementTables:
    """The placement levers of a run as flat arrays for the kernel (one row block per lever):

    * ``cell_flag`` uint8 [N_PCELLS]: 0 where no lever changes the placement cell's draw, else 1, or 3 where a
      lever of the cell covers a share of children (the child's coverage draw is needed);
    * ``cell_ok`` uint8 [L * N_PCELLS]: 1 where lever l applies in the cell (entry / move, age band, need
      band and UASC filters folded in);
    * ``dest_ok`` uint8 [L * N_DEST]: 1 where lever l multiplies destination j (``events.DEST_STATES[j]``);
    * ``la_ok`` uint8 [L * n_la], ``share`` uint64 [L]: coverage, as for hazard levers."""
    levers: tuple[Lever, ...]
    cell_flag: np.ndarray
    cell_ok: np.ndarray
    dest_ok: np.ndarray
    la_ok: np.ndarray
    share: np.ndarray
    first_month: int

    def for_month(self, month: int) -> tuple | None:
        """None (the status-quo draw) before the earliest start or with no placement lever, else the tuple
        (cell_flag, cell_ok, dest_ok, la_ok, share, mult), ``mult`` float64 [L] the levers' phased multipliers
        this month (``effect_at``)."""
        if not self.levers or month < self.first_month:
            return None
        mult = np.array([effect_at(lv, month)[0] for lv in self.levers], dtype=np.float64)
        return (self.cell_flag, self.cell_ok, self.dest_ok, self.la_ok, self.share, mult)


def _coverage(lv: Lever, index: Mapping[str, int], n_la: int) -> tuple[np.ndarray, int]:
    """A lever's LA flags [n_la] and coverage-share threshold (FULL_SHARE = every child)."""
    la_ok = np.zeros(n_la, dtype=np.uint8)
    if lv.las:
        la_ok[[index[c] for c in lv.las if c in index]] = 1
    else:
        la_ok[:] = 1
    return la_ok, (FULL_SHARE if lv.share >= 1.0 else int(math.floor(lv.share * U32)))


def _filters(lv: Lever) -> tuple[list[int], list[int], list[int]]:
    """The age bands, need bands and UASC values a hazard or placement lever applies to."""
    ages = [HAZARD_AGE_LABELS.index(a) for a in lv.age_bands] or list(range(A.N_AGE))
    needs = list(lv.need_bands) or list(range(A.N_NEED))
    uascs = [int(lv.uasc)] if lv.uasc is not None else [0, 1]
    return ages, needs, uascs


def compile_placement(levers: Sequence[Lever], la_codes: Sequence[str]) -> PlacementTables:
    """Tables of the placement levers among ``levers`` for a run whose LA index i is ``la_codes[i]``."""
    pl = tuple(lv for lv in levers if lv.kind == "placement")
    n_la = max(len(la_codes), 1)
    cell_ok = np.zeros((len(pl), 2, A.N_AGE, A.N_NEED, 2), dtype=np.uint8)
    dest_ok = np.zeros((len(pl), N_DEST), dtype=np.uint8)
    la_ok = np.zeros((len(pl), n_la), dtype=np.uint8)
    share = np.zeros(len(pl), dtype=np.uint64)
    index = {c: i for i, c in enumerate(la_codes)}
    for i, lv in enumerate(pl):
        ages, needs, uascs = _filters(lv)
        kinds = {"entry": [0], "move": [1], "both": [0, 1]}[lv.on]
        cell_ok[i][np.ix_(kinds, ages, needs, uascs)] = 1
        dest_ok[i, [DEST_NAMES.index(d) for d in lv.placements]] = 1
        la_ok[i], share[i] = _coverage(lv, index, n_la)
    flat = cell_ok.reshape(len(pl), N_PCELLS).astype(bool)
    partial = (share < FULL_SHARE)[:, None]
    cell_flag = flat.any(axis=0).astype(np.uint8) | (2 * (flat & partial).any(axis=0)).astype(np.uint8)
    first = min((lv.first_month for lv in pl), default=0)
    return PlacementTables(pl, np.ascontiguousarray(cell_flag, dtype=np.uint8),
                           np.ascontiguousarray(cell_ok.reshape(-1)), np.ascontiguousarray(dest_ok.reshape(-1)),
                           np.ascontiguousarray(la_ok.reshape(-1)), share, first)


def compile_levers(levers: Sequence[Lever], la_codes: Sequence[str]) -> LeverTables:
    """Tables of the hazard levers among ``levers`` for a run whose LA index i is ``la_codes[i]``, with the
    placement levers' tables (``compile_placement``) attached; capacity (``agents/capacity.build_plan``),
    unit-cost and investment levers act outside the kernel (see the module docstring) and are left out."""
    haz = tuple(lv for lv in levers if lv.kind == "hazard")
    n_la = max(len(la_codes), 1)
    cell_slot = np.full((len(haz), S.N_STATES, A.N_AGE, A.N_NEED, 2), -1, dtype=np.int8)
    la_ok = np.zeros((len(haz), n_la), dtype=np.uint8)
    share = np.zeros(len(haz), dtype=np.uint64)
    index = {c: i for i, c in enumerate(la_codes)}
    for i, lv in enumerate(haz):
        ages, needs, uascs = _filters(lv)
        for s, k in lv.transitions():
            cell_slot[i, s][np.ix_(ages, needs, uascs)] = k
        la_ok[i], share[i] = _coverage(lv, index, n_la)
    targets = (cell_slot >= 0).reshape(len(haz), N_CELLS)
    partial = (share < FULL_SHARE)[:, None]
    cell_flag = (targets.any(axis=0).astype(np.uint8) | (2 * (targets & partial).any(axis=0)).astype(np.uint8))
    first = min((lv.first_month for lv in haz), default=0)
    placement = compile_placement(levers, la_codes)
    return LeverTables(haz, np.ascontiguousarray(cell_flag, dtype=np.uint8),
                       np.ascontiguousarray(cell_slot.reshape(-1)), np.ascontiguousarray(la_ok.reshape(-1)), share,
                       targets, first, placement if placement.levers else None)


# ---- transitions ----------------------------------------------------------------------------------------------
def _events_from(s: int) -> list[str]:
    return [e for e, _ in E.STATE_CHANNELS[s]]


def resolve_transitions(from_states: Sequence[str], to: str) -> tuple[tuple[int, int], ...]:
    """(state, slot) pairs for ``from`` -> ``to``; a LeverError names a state or transition the model lacks."""
    names: list[str] = []
    for f in from_states:
        if f in GROUPS:
            names.extend(GROUPS[f])
        elif f in S.CODE:
            names.append(f)
        else:
            raise LeverError("from", f, f"is not a state of agents/states.csv nor a group "
                                        f"(known: {', '.join(S.NAMES + tuple(GROUPS))})")
    ev = EVENT_ALIASES.get(to, to)
    out = []
    for nm in dict.fromkeys(names):
        s = S.CODE[nm]
        events = _events_from(s)
        if ev in E.EV:
            if ev not in events:
                raise LeverError("to", to, f"is not a transition the model has from {nm} "
                                           f"(events from {nm}: {', '.join(events)})")
            out.append((s, events.index(ev)))
        elif to in S.CODE:
            fixed = [e for e in events if E.EV_DEST_KIND[E.EV[e]] == E.TO_FIXED
                     and E.EV_FIXED_STATE[E.EV[e]] == S.CODE[to]]
            if fixed:
                out.append((s, events.index(fixed[0])))
                continue
            drawn = [e for e in ("ENTER_CARE", "MOVE") if e in events]
            if drawn and S.CODE[to] in E.DEST_STATES:
                raise LeverError("to", to, f"is a placement drawn after {drawn[0]} from {nm}, not an event of its "
                                           f"own: a hazard lever changes an event (use to = {drawn[0]!r}); a "
                                           f"kind = \"placement\" lever changes the placements drawn")
            raise LeverError("to", to, f"is not reached from {nm} by any event of the model "
                                       f"(events from {nm}: {', '.join(events)})")
        else:
            why = ("happens at the 18th birthday, not by a hazard" if to == "AGED_OUT" else
                   f"is not an event ({', '.join(E.EVENT_NAMES)}) nor a state of agents/states.csv")
            raise LeverError("to", to, why)
    return tuple(out)


# ---- parsing and checks ---------------------------------------------------------------------------------------
_YM = re.compile(r"^(\d{4})-(\d{2})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
COMMON_KEYS = ("name", "kind", "description", "start", "phase_in_months", "las", "source", "assumption",
               "rationale", "low", "high")
KIND_KEYS = {
    "hazard": ("from", "to", "age_band", "need_band", "uasc", "multiplier", "addition", "share"),
    "placement": ("to", "on", "age_band", "need_band", "uasc", "multiplier", "share"),
    "capacity": ("capacity", "multiplier", "addition"),
    "unit_cost": ("cost_key", "provider", "multiplier", "addition"),
    "investment": ("annual_gbp", "end"),
}
ALL_KEYS = tuple(dict.fromkeys(COMMON_KEYS + sum(KIND_KEYS.values(), ())))


def _ym_text(ym: tuple[int, int]) -> str:
    return f"{ym[0]:04d}-{ym[1]:02d}"


def parse_year_month(field_: str, value) -> tuple[int, int]:
    """"YYYY-MM" (or a TOML date on the 1st of a month) -> (year, month)."""
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        if value.day != 1:
            raise LeverError(field_, value, "must be the first of a month (or a \"YYYY-MM\" string)")
        return value.year, value.month
    m = _YM.match(value) if isinstance(value, str) else None
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise LeverError(field_, value, "must be a year-month string \"YYYY-MM\" such as \"2025-04\"")
    return int(m.group(1)), int(m.group(2))


def _number(field_: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise LeverError(field_, v, "is not a finite number")
    return float(v)


def _string(field_: str, v) -> str:
    if not isinstance(v, str):
        raise LeverError(field_, v, "is not a string")
    return v


def _strings(field_: str, v) -> tuple[str, ...]:
    """A string or a non-empty list of strings."""
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
        raise LeverError(field_, v, "must be a string or a non-empty list of strings")
    if len(set(items)) != len(items):
        raise LeverError(field_, v, "lists a value twice")
    return tuple(items)


def from_table(table: Mapping[str, Any], la_codes: Sequence[str] | None = None) -> Lever:
    """A ``Lever`` from one ``[[lever]]`` table of a scenario file. Unknown keys, keys of another kind, wrong
    types and out-of-range values raise ``LeverError``; LA codes are checked against ``la_codes`` (the 2024
    codes the engine uses, ``calibration.inputs.la_table``) when given."""
    if not isinstance(table, Mapping):
        raise LeverError("lever", table, "must be a table ([[lever]])")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise LeverError("name", name, "is required: letters, digits, '_', '.' or '-' (a name for the lever)")
    try:
        return _from_table(table, la_codes)
    except LeverError as exc:
        exc.lever = name
        raise


def _from_table(table: Mapping[str, Any], la_codes: Sequence[str] | None) -> Lever:
    for k, v in table.items():
        if k not in ALL_KEYS:
            raise LeverError(k, v, f"is not a known lever key (known: {', '.join(ALL_KEYS)})")
    kind = table.get("kind")
    if kind not in KINDS:
        raise LeverError("kind", kind, f"must be one of {', '.join(KINDS)}")
    allowed = set(COMMON_KEYS) | set(KIND_KEYS[kind])
    for k, v in table.items():
        if k not in allowed:
            owners = [kd for kd, ks in KIND_KEYS.items() if k in ks]
            raise LeverError(k, v, f"is a key of {' / '.join(owners)} levers, not of a {kind} lever")
    kw: dict[str, Any] = {"name": table["name"], "kind": kind}
    for k in ("description", "source", "rationale", "to", "capacity", "cost_key", "provider", "on"):
        if k in table and not (k == "to" and kind == "placement"):
            kw[k] = _string(k, table[k])
    if kind == "placement":
        kw["on"] = kw.get("on", "both")
        if "to" in table:
            kw["placements"] = _strings("to", table["to"])
    for k in ("multiplier", "addition", "share", "low", "high", "annual_gbp"):
        if k in table:
            kw[k] = _number(k, table[k])
    if "start" in table:
        kw["start"] = parse_year_month("start", table["start"])
    if "end" in table:
        kw["end"] = parse_year_month("end", table["end"])
    if "phase_in_months" in table:
        v = table["phase_in_months"]
        if isinstance(v, bool) or not isinstance(v, int):
            raise LeverError("phase_in_months", v, "is not an integer (months)")
        kw["phase_in_months"] = v
    for k in ("assumption", "uasc"):
        if k in table:
            if not isinstance(table[k], bool):
                raise LeverError(k, table[k], "must be true or false")
            kw[k] = table[k]
    if "from" in table:
        kw["from_states"] = _strings("from", table["from"])
    if "age_band" in table:
        kw["age_bands"] = _strings("age_band", table["age_band"])
    if "need_band" in table:
        v = table["need_band"]
        items = [v] if isinstance(v, int) and not isinstance(v, bool) else v
        if (not isinstance(items, list) or not items
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in items)):
            raise LeverError("need_band", v, "must be an integer or a non-empty list of integers (0-3)")
        kw["need_bands"] = tuple(items)
    if "las" in table:
        kw["las"] = _strings("las", table["las"])
        if la_codes is not None:
            known = set(la_codes)
            bad = [c for c in kw["las"] if c not in known]
            if bad:
                raise LeverError("las", bad[0] if len(bad) == 1 else bad,
                                 f"{'is not a 2024 LA code' if len(bad) == 1 else 'are not 2024 LA codes'} "
                                 f"of the engine (calibration/inputs.la_table; e.g. {', '.join(sorted(known)[:3])})")
    return Lever(**kw)


def _check(lv: Lever) -> None:
    """Checks a constructed lever (types are the parser's job; ranges and combinations are checked here)."""
    if lv.kind not in KINDS:
        raise LeverError("kind", lv.kind, f"must be one of {', '.join(KINDS)}")
    if not isinstance(lv.name, str) or not _NAME.match(lv.name):
        raise LeverError("name", lv.name, "is required: letters, digits, '_', '.' or '-'")
    # timing
    for f_, ym in (("start", lv.start), ("end", lv.end)):
        if ym is None:
            continue
        if not 1 <= ym[1] <= 12:
            raise LeverError(f_, _ym_text(ym), "has no such month")
        if not FIRST_START <= tuple(ym) <= LAST_START:
            raise LeverError(f_, _ym_text(ym), f"must lie between {_ym_text(FIRST_START)} (the first projected "
                                               f"month; earlier months are data) and {_ym_text(LAST_START)}")
    if lv.end is not None and tuple(lv.end) <= tuple(lv.start):
        raise LeverError("end", _ym_text(lv.end), f"must be after the start {_ym_text(lv.start)}")
    if not 0 <= lv.phase_in_months <= MAX_PHASE_IN:
        raise LeverError("phase_in_months", lv.phase_in_months, f"must be between 0 and {MAX_PHASE_IN}")
    # effect
    if lv.kind == "placement" and lv.addition is not None:
        raise LeverError("addition", lv.addition, "is not for a placement lever: it multiplies destination "
                                                  "weights (use 'multiplier')")
    if lv.kind == "placement" and lv.multiplier is None:
        raise LeverError("multiplier", None, "is required for a placement lever (the factor on the weights of "
                                             "the placements in 'to')")
    effects = [k for k in ("multiplier", "addition") if getattr(lv, k) is not None]
    if lv.kind == "investment":
        if lv.annual_gbp is None:
            raise LeverError("annual_gbp", None, "is required for an investment lever (GBP a year)")
        _in_range("annual_gbp", lv.annual_gbp, 0.0, MAX_ANNUAL_GBP)
        effects = ["annual_gbp"]
    elif len(effects) != 1:
        raise LeverError("multiplier" if effects else "multiplier / addition",
                         None if not effects else (lv.multiplier, lv.addition),
                         "a lever needs exactly one of 'multiplier' and 'addition'")
    lo_hi = _value_range(lv, effects[0])
    _in_range(effects[0], lv.value, *lo_hi)
    # target
    if lv.kind == "placement":
        _check_placement(lv)
    elif lv.kind == "hazard":
        if not lv.from_states:
            raise LeverError("from", None, "is required for a hazard lever (a state, a list, or IN_CARE)")
        if not lv.to:
            raise LeverError("to", None, "is required for a hazard lever (an event or the state it reaches)")
        resolve_transitions(lv.from_states, lv.to)
        _check_filters(lv)
    elif lv.kind == "capacity" and lv.capacity not in CAPACITY_TARGETS:
        raise LeverError("capacity", lv.capacity or None, f"must be one of {', '.join(CAPACITY_TARGETS)}")
    elif lv.kind == "unit_cost":
        if lv.cost_key not in COST_KEYS:
            raise LeverError("cost_key", lv.cost_key or None, f"must be a cost_key of agents/states.csv "
                                                              f"(known: {', '.join(COST_KEYS)})")
        if lv.provider and lv.provider not in PROVIDERS:
            raise LeverError("provider", lv.provider, f"must be one of {', '.join(PROVIDERS)} (or absent: both)")
    # evidence
    if lv.assumption:
        if not lv.rationale.strip():
            raise LeverError("rationale", lv.rationale or None, "is required when assumption = true (why this "
                                                                "value, in a sentence)")
        if lv.low is None or lv.high is None:
            raise LeverError("low" if lv.low is None else "high", None,
                             "is required when assumption = true (the range sensitivity analysis varies)")
        for k in ("low", "high"):
            _in_range(k, getattr(lv, k), *lo_hi)
        if not lv.low <= lv.value <= lv.high:
            raise LeverError(effects[0], lv.value, f"must lie in its assumption range low..high "
                                                   f"({lv.low:g}..{lv.high:g})")
    else:
        if not lv.source.strip():
            raise LeverError("source", lv.source or None, "is required: where the lever's size comes from (or "
                                                          "assumption = true with a rationale, low and high)")
        for k in ("rationale", "low", "high"):
            if getattr(lv, k) not in (None, ""):
                raise LeverError(k, getattr(lv, k), "is only for an assumption (set assumption = true)")


def _check_filters(lv: Lever) -> None:
    """Age band, need band and share of a hazard or placement lever."""
    for a in lv.age_bands:
        if a not in HAZARD_AGE_LABELS:
            raise LeverError("age_band", a, f"is not a hazard age band (known: {', '.join(HAZARD_AGE_LABELS)})")
    for n in lv.need_bands:
        if not 0 <= n < A.N_NEED:
            raise LeverError("need_band", n, f"is not a need band (0-{A.N_NEED - 1})")
    if not 0.0 <= lv.share <= 1.0:
        raise LeverError("share", lv.share, "must be a share of children between 0 and 1")


def _check_placement(lv: Lever) -> None:
    """Destinations, draw (entry / move / both) and filters of a placement lever."""
    if not lv.placements:
        raise LeverError("to", None, f"is required for a placement lever: a placement or a list of them "
                                     f"(known: {', '.join(DEST_NAMES)})")
    for d in lv.placements:
        if d in DEST_NAMES:
            continue
        if d == "PLACED_FOR_ADOPTION":
            why = ("is reached by the TO_ADOPTION event, not drawn on entry or a move (use a hazard lever: "
                   "from = \"IN_CARE\", to = \"PLACED_FOR_ADOPTION\")")
        elif d in S.CODE:
            why = f"is not a placement in care (placements drawn on entry or a move: {', '.join(DEST_NAMES)})"
        else:
            why = f"is not a state of agents/states.csv (placements: {', '.join(DEST_NAMES)})"
        raise LeverError("to", d, why)
    if lv.on not in PLACEMENT_ON:
        raise LeverError("on", lv.on or None, f"must be one of {', '.join(PLACEMENT_ON)} (the placements drawn on "
                                              f"entry to care, on a move, or both)")
    _check_filters(lv)


def _value_range(lv: Lever, effect: str) -> tuple[float, float]:
    """Allowed range of a lever's value."""
    if effect == "annual_gbp":
        return 0.0, MAX_ANNUAL_GBP
    if effect == "multiplier":
        return 0.0, MAX_MULTIPLIER
    if lv.kind == "hazard":
        return -1.0, 1.0          # an addition to a monthly probability
    if lv.kind == "unit_cost":
        return -MAX_COST_ADDITION, MAX_COST_ADDITION   # GBP a week
    if lv.capacity == "recruitment":
        return -MAX_RECRUITMENT_ADDITION, MAX_RECRUITMENT_ADDITION  # approved fostering households a year
    return -1.0, 1.0              # retention (annual de-registration rate) or usable share: a share


def _in_range(field_: str, v: float, lo: float, hi: float) -> None:
    if not lo <= v <= hi:
        raise LeverError(field_, v, f"must lie between {lo:g} and {hi:g}")
