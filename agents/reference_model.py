"""Mesa 3 reference model: children stepped one at a time in plain Python (DESIGN §5, the oracle).

It reads the same compiled tables as the numba engine (``agents.hazards.compile_tables``), the same event
table (``agents/events.py``) and the same counter-based draws (a pure-Python copy of the splitmix hash in
``sim/rng.py``, tested to agree), so with the same seed it reproduces ``sim.cohort.run_cohort`` exactly.

The month rule for one child, in order (``Child.step``):
  1. age + 1 month; at the 18th birthday the child leaves the model (care leavers count as aged out);
  2. a RETURNED_HOME child whose months since return reach ``returned_max`` leaves (to "previously known");
  3. the hazard row comes from (state, age band, need, UASC, any previous episode, episode band, placement band);
     reform levers that cover the child this month re-cut its draw range (``Child.lever_effects`` and
     ``levers.lever_event``: the pure functions of ``agents/levers.py`` that the kernel compiles);
  4. one uniform draw is compared with the row's cumulative thresholds: no event -> both clocks + 1;
  5. otherwise the event row says what happens (``apply_event``): leave, move to a fixed state, enter care or
     move placement (a destination draw and a provider draw; an entry may end the same month: short stay),
     or transfer to another LA (a draw of the new LA; the child stays where it is). Placement levers that
     cover the child re-cut its destination draw (``Child.placement_effects`` and
     ``levers.placement_event``, the pure functions the kernel compiles).
With a foster capacity plan (``agents/capacity.py``), after every child has stepped the model runs the serial
allocation (``ReferenceModel.allocate_foster``) through the same functions as the kernel: children who entered
FOSTER this month from another state take their region's free places in hashed-priority order, the others go
to RESIDENTIAL_HOME.
Only occupancy and exits are kept here; DfE start/cessation counting lives in the engine's observation model.
The numba kernel (``sim/kernel.step_month``) inlines the same rule for speed; ``tests/test_reference_model.py``
checks that the two agree child by child.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import mesa
import numpy as np

from agents import attributes as A
from agents import capacity as C
from agents import events as E
from agents import levers as L
from agents import states as S
from agents.hazards import HazardTables, row_index

# ---- counter-based draws: the splitmix64 finaliser of sim/rng.draw32, in pure Python -----------------------
MASK64 = (1 << 64) - 1
M1, M2, M3, M4 = 0x9E3779B97F4A7C15, 0xD1B54A32D192ED03, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
MONTH_OFFSET = 8192
DEC_EVENT, DEC_DEST, DEC_PROVIDER, DEC_SHORT, DEC_NEW_LA = 0, 1, 2, 3, 4


def draw32(seed: int, cid: int, month: int, dec: int) -> int:
    """One 32-bit uniform integer for the key (seed, child id, month, decision); equals ``sim.rng.draw32``."""
    z = (seed + cid * M1 + ((month + MONTH_OFFSET) * 64 + dec) * M2) & MASK64
    z = ((z ^ (z >> 30)) * M3) & MASK64
    z = ((z ^ (z >> 27)) * M4) & MASK64
    z ^= z >> 31
    return z >> 32


def select(thresholds, r: int) -> int:
    """Index of the first cumulative threshold above the draw; ``len(thresholds)`` if none (no event)."""
    for k, t in enumerate(thresholds):
        if r < t:
            return k
    return len(thresholds)


# ---- the compiled tables as plain Python lists (fast to index one child at a time) -----------------------
@dataclass
class RuleTables:
    """Plain-Python view of ``HazardTables`` plus the LA thresholds used by transfers."""
    thr: list            # [row][slot] cumulative uint32 thresholds
    event_of_slot: list  # [state][slot] event code
    dest_thr: list       # [kind][age band][need][uasc][dest] cumulative thresholds
    dest_state: list     # [dest] state code
    short_thr: list      # [age band]
    agency_thr: list     # [state]
    la_cum: list         # [la] cumulative thresholds

    @classmethod
    def from_hazard_tables(cls, t: HazardTables, la_cum=None) -> "RuleTables":
        """Convert numpy tables once; ``la_cum`` defaults to a single LA (as ``sim.cohort.run_cohort``)."""
        la = [2**32 - 1] if la_cum is None else [int(x) for x in la_cum]
        return cls(t.thr.tolist(), t.event_of_slot.tolist(), t.dest_thr.tolist(), [int(s) for s in t.dest_state],
                   t.short_thr.tolist(), t.agency_thr.tolist(), la)


EV_REUNIFIED = E.EV["REUNIFIED"]
# band lookups as lists: indexing a Python list is much faster than a numpy scalar lookup, one child at a time
AGE_BAND, EPI_BAND, PLC_BAND = (A.AGE_BAND_OF_MONTH.tolist(), A.EPI_BAND_OF_MONTH.tolist(),
                                A.PLC_BAND_OF_MONTH.tolist())
ENTRY_KIND, MOVE_KIND = 0, 1  # first index of dest_thr


class Child(mesa.Agent):
    """One child: care state, age, need/UASC/provider flags, the two clocks, previous episodes, LA, stable id."""

    def __init__(self, model: "ReferenceModel", cid: int, state: int, age_months: int, flags: int = 0,
                 epi: int = 0, plc: int = 0, prev: int = 0, la: int = 0):
        super().__init__(model)
        self.cid, self.state, self.age_months, self.flags = int(cid), int(state), int(age_months), int(flags)
        self.epi, self.plc, self.prev, self.la = int(epi), int(plc), int(prev), int(la)
        self.state_before = self.state
        self.short_foster = False

    # attributes packed in the flags byte
    @property
    def need(self) -> int:
        return (self.flags >> A.NEED_SHIFT) & 3

    @property
    def uasc(self) -> int:
        return 1 if self.flags & A.FLAG_UASC else 0

    @property
    def agency(self) -> int:
        return 1 if self.flags & A.FLAG_AGENCY else 0

    @property
    def age_band(self) -> int:
        return AGE_BAND[self.age_months]

    def draw(self, decision: int) -> int:
        """This child's draw for a decision this month (same key as the engine)."""
        return draw32(self.model.seed, self.cid, self.model.month, decision)

    def hazard_row(self) -> int:
        """Row of the hazard table for the child's current covariates."""
        return row_index(self.state, self.age_band, self.need, self.uasc, 1 if self.prev > 0 else 0,
                         EPI_BAND[self.epi], PLC_BAND[self.plc])

    # ---- the month rule --------------------------------------------------------------------------------
    def step(self) -> None:
        """One month for this child: age, birthday and return-window exits, one competing-risk draw, the event."""
        self.state_before = self.state  # the capacity pass tells new foster placements from existing ones
        self.short_foster = False       # placed in FOSTER and home again within this month
        self.age_months += 1
        if self.age_months >= A.MAX_AGE_MONTHS:
            return self.leave("aged_out")
        if self.state == S.RETURNED_HOME and self.epi >= self.model.returned_max:
            return self.leave("returned_window_ended")
        tab = self.model.tables
        thr = tab.thr[self.hazard_row()]
        eff = self.lever_effects(self.model.lever_month) if self.model.lever_month is not None else None
        k = select(thr, self.draw(DEC_EVENT)) if eff is None else L.lever_event(thr, *eff, self.draw(DEC_EVENT))
        self.tick_clocks()  # clocks run on; the event restarts them where its table row says so
        if k < E.K_SLOTS:
            self.apply_event(tab.event_of_slot[self.state][k])

    def lever_effects(self, lev: tuple) -> tuple[list, list] | None:
        """Per-slot multipliers and additions of the levers that cover this child this month (None if none
        does): the child's cell, its coverage draw (its stable id under the fixed lever key) and
        ``levers.child_effects``, as in the kernel; ``levers.lever_event`` then picks the event."""
        cell = L.cell_index(self.state, self.age_band, self.need, self.uasc)
        if not lev[0][cell]:
            return None
        u = draw32(L.COVER_SEED, self.cid, L.COVER_MONTH, L.COVER_DEC)
        mk, ak = [1.0] * E.K_SLOTS, [0.0] * E.K_SLOTS
        if not L.child_effects(cell, self.la, u, *lev[3:], mk, ak):
            return None
        return mk, ak

    def tick_clocks(self) -> None:
        """No event this month: both clocks run on (capped at 255, the width of the engine's byte)."""
        self.epi = min(self.epi + 1, 255)
        self.plc = min(self.plc + 1, 255)

    def apply_event(self, ev: int) -> None:
        """Apply one row of the event table (``agents/events.py``) to this child."""
        kind = int(E.EV_DEST_KIND[ev])
        self.model.events[E.EVENT_NAMES[ev]] += 1
        if kind == E.TO_LEAVE:
            return self.leave("prev_known" if E.EV_LEAVE[ev] == E.LEAVE_PREV_KNOWN else E.EVENT_NAMES[ev].lower())
        if kind == E.TO_SAME:  # transferred: a new LA; same placement and episode
            self.la = select(self.model.tables.la_cum, self.draw(DEC_NEW_LA))
            return
        if kind == E.TO_FIXED:
            self.state = int(E.EV_FIXED_STATE[ev])
            self.plc = 0
        else:
            self.place(ENTRY_KIND if kind == E.TO_ENTRY else MOVE_KIND)
        self.update_history(ev)
        if kind == E.TO_ENTRY and self.draw(DEC_SHORT) < self.model.tables.short_thr[self.age_band]:
            # a stay under a month: the child is reunified within the same step
            self.model.events["SHORT_STAY"] += 1
            self.short_foster = self.state == S.FOSTER
            self.state = int(E.EV_FIXED_STATE[EV_REUNIFIED])
            self.update_history(EV_REUNIFIED)

    def update_history(self, ev: int) -> None:
        """Episode clock reset and previous-episode count, as the event row says."""
        if E.EV_RESET_EPI[ev]:
            self.epi = 0
        if E.EV_PREV_PLUS[ev]:
            self.prev = min(self.prev + 1, 255)

    def placement_effects(self, kind: int, lev: tuple) -> list | None:
        """Per-destination multipliers of the placement levers that cover this child's draw (kind 0 entry,
        1 move) this month (None if none does): its placement cell, its coverage draw and
        ``levers.placement_effects``, as in the kernel; ``levers.placement_event`` then picks the placement."""
        pcell = L.placement_cell(kind, self.age_band, self.need, self.uasc)
        if not lev[0][pcell]:
            return None
        u = draw32(L.COVER_SEED, self.cid, L.COVER_MONTH, L.COVER_DEC)
        md = [1.0] * L.N_DEST
        if not L.placement_effects(pcell, self.la, u, *lev[1:], md):
            return None
        return md

    def place(self, kind: int) -> None:
        """Draw a placement (entry or move distribution; re-cut by placement levers that cover the child) and
        its provider; the placement clock restarts."""
        tab = self.model.tables
        row = tab.dest_thr[kind][self.age_band][self.need][self.uasc]
        lev = self.model.placement_month
        md = self.placement_effects(kind, lev) if lev is not None else None
        r = self.draw(DEC_DEST)
        j = min(select(row, r), len(tab.dest_state) - 1) if md is None else L.placement_event(row, md, r)
        self.state = tab.dest_state[j]
        self.plc = 0
        self.flags &= ~A.FLAG_AGENCY
        if self.draw(DEC_PROVIDER) < tab.agency_thr[self.state]:
            self.flags |= A.FLAG_AGENCY

    def leave(self, why: str) -> None:
        """The child leaves the model: counted by reason and removed from the Mesa model."""
        self.model.left[why] += 1
        self.remove()


class ReferenceModel(mesa.Model):
    """A closed cohort of ``Child`` agents stepped one at a time; occupancy by state each month."""

    def __init__(self, tables: HazardTables, seed: int, children: dict, first_month: int = 1,
                 returned_max: int = 72, la_cum=None, order_seed: int = 0, levers: L.LeverTables | None = None,
                 capacity: C.CapacityPlan | None = None):
        """``children``: arrays cid, state, age_months, flags, epi, plc, prev, la (as ``child_arrays`` returns);
        ``levers``: compiled hazard and placement levers (``agents.levers.compile_levers``), applied from their
        start months; ``capacity``: a foster capacity plan (as ``sim.cohort.run_cohort`` takes), applied after
        each month's steps (``capacity_log`` keeps each month's places, occupied, entrants, redirected)."""
        super().__init__(rng=order_seed)  # Mesa's own generator only shuffles the stepping order
        self.tables = RuleTables.from_hazard_tables(tables, la_cum)
        self.levers = levers
        self.capacity = capacity
        self.capacity_log: list[np.ndarray] = []
        self.lever_month = None  # this month's lever tuple as lists (None: no lever in force)
        self.placement_month = None  # this month's placement-lever tuple as lists (None: none in force)
        self.seed = int(seed)
        self.month = first_month - 1
        self.returned_max = int(returned_max)
        self.left: Counter = Counter()
        self.events: Counter = Counter()
        cols = [np.asarray(children[k]).tolist() for k in ("cid", "state", "age_months", "flags", "epi", "plc",
                                                           "prev", "la")]
        for cid, st, age, fl, epi, plc, prev, la in zip(*cols):
            Child(self, cid, st, age, fl, epi, plc, prev, la)
        self.n_start = len(self.agents)
        self.history = [self.occupancy()]

    @classmethod
    def from_population(cls, pop, tables: HazardTables, seed: int, **kw) -> "ReferenceModel":
        """Build the reference model from the live children of an engine ``Population``."""
        m = pop.alive_mask()
        children = {"cid": pop.cid[: pop.n_used][m], "state": pop.state[: pop.n_used][m],
                    "age_months": pop.age[: pop.n_used][m]}
        for k in ("flags", "epi", "plc", "prev", "la"):
            children[k] = getattr(pop, k)[: pop.n_used][m]
        return cls(tables, seed, children, **kw)

    def step(self) -> None:
        """One month: every child takes its step (random order; children do not interact here)."""
        self.month += 1
        lev = self.levers.for_month(self.month) if self.levers is not None else None
        self.lever_month = tuple(a.tolist() for a in lev) if lev is not None else None
        plc = self.levers.placement_for_month(self.month) if self.levers is not None else None
        self.placement_month = tuple(a.tolist() for a in plc) if plc is not None else None
        self.agents.shuffle_do("step")
        if self.capacity is not None:
            self.allocate_foster()
        self.history.append(self.occupancy())

    def allocate_foster(self) -> None:
        """The month's foster allocation (``agents/capacity.py``): children in FOSTER who were not there at the
        start of the month, and those placed there who went home within it, take their region's free places in
        priority order (``capacity.priority_order`` of a draw keyed by seed, child id and month; a short stay
        does not keep its place) when one suits them (``capacity.match_probability``); the others go to
        RESIDENTIAL_HOME (a short stay stays at home) with their provider redrawn (``capacity.redirected_flags``).
        Nobody already in FOSTER moves."""
        region = self.capacity.region_of_la
        places = [int(x) for x in self.capacity.for_month(self.month)]
        occupied = [0] * C.N_REGION
        entrants = []
        for a in self.agents:
            if a.state == S.FOSTER and a.state_before == S.FOSTER:
                occupied[region[a.la]] += 1
            elif a.state == S.FOSTER or a.short_foster:
                entrants.append(a)
        prio = np.array([a.draw(C.DEC_PRIORITY) for a in entrants], dtype=np.uint64)
        ids = np.array([a.cid for a in entrants], dtype=np.uint64)
        order = [int(k) for k in C.priority_order(prio, ids)]
        regions = [int(region[entrants[k].la]) for k in order]
        keeps = [0 if entrants[k].short_foster else 1 for k in order]
        free = [0] * C.N_REGION
        C.free_places(places, occupied, free)
        admitted = [0] * len(order)
        match_u = [entrants[k].draw(C.DEC_MATCH) / C.TWO32 for k in order]
        C.allocate(regions, keeps, free, admitted, match_u, self.capacity.log_miss)
        log = np.zeros((C.N_REGION, C.N_LOG), dtype=np.int64)
        log[:, C.PLACES], log[:, C.OCCUPIED] = places, occupied
        thr = self.tables.agency_thr[S.RESIDENTIAL_HOME]
        for q, k in enumerate(order):
            log[regions[q], C.ENTRANTS] += 1
            if admitted[q]:
                log[regions[q], C.TAKEN] += keeps[q]
                continue
            a = entrants[k]
            if keeps[q]:
                a.state = S.RESIDENTIAL_HOME
            a.flags = C.redirected_flags(a.flags, a.draw(DEC_PROVIDER), thr)
            log[regions[q], C.REDIRECTED] += 1
        self.capacity_log.append(log)

    def run(self, months: int) -> np.ndarray:
        """Step ``months`` times; occupancy [months + 1, N_STATES + 1] as ``sim.cohort.run_cohort`` returns."""
        for _ in range(months):
            self.step()
        return np.array(self.history[-(months + 1):], dtype=np.int64)

    def occupancy(self) -> list[int]:
        """Counts by state, plus the number who have left since the start (the last entry)."""
        c = Counter(a.state for a in self.agents)
        row = [c.get(s, 0) for s in range(S.N_STATES)]
        return row + [self.n_start - sum(row)]

    def child_arrays(self) -> dict[str, np.ndarray]:
        """Attributes of the children still in the model, sorted by child id (for exact comparisons)."""
        kids = sorted(self.agents, key=lambda a: a.cid)
        out = {"cid": np.array([a.cid for a in kids], dtype=np.uint64)}
        for k in ("state", "age_months", "flags", "epi", "plc", "prev", "la"):
            out[k] = np.array([getattr(a, k) for a in kids], dtype=np.int64)
        return out
