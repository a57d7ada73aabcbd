"""Numba kernels for one simulated month: transitions, arrivals and 31 March counts (DESIGN §2, §6).

The population is a struct of arrays (``sim/population.py``). Slots are split into ``NCHUNK`` fixed chunks;
each chunk owns a slice of every accumulator, so integer totals are identical for any thread count.

Reform levers (``agents/levers.py``) reach ``step_month`` as one small tuple of flat arrays for the month
(``LeverTables.for_month``): per hazard cell (state, age band, need, UASC) whether any lever applies and the
highest draw a lever can turn into an event this month, then per lever the slot it changes in each cell, the
LAs it covers, its coverage-share threshold and this month's phased multiplier and addition. A child whose
cell some lever targets and whose draw lies below that bound gets its coverage draw where a share needs it (a
hash of its stable id, never of the replicate seed); the levers covering it give per-slot multipliers and
additions (``levers.child_effects``, in per-chunk scratch arrays) and ``levers.lever_event`` picks its event
from the re-cut draw range. The event draw is the one the child uses without levers (common random numbers).
With no lever in force the engine passes None and the kernel is the status quo's.

Placement levers reach ``step_month`` and ``add_arrivals`` as a second tuple (``PlacementTables.for_month``,
None when none is in force: again the status-quo kernel, the lever blocks pruned by numba). Only a child that
enters care or moves looks at it: if some lever targets its placement cell (entry / move, age band, need,
UASC), the covering levers give per-destination multipliers (``levers.placement_effects``) and
``levers.placement_event`` re-cuts the child's own destination draw (the one it uses without levers) against
the modified shares; ``_enter_care`` then places the child there.

Foster capacity (``agents/capacity.py``) reaches ``step_month`` as a third tuple (None when the constraint is off:
the status-quo kernel again): each chunk lists the children who entered FOSTER this month from another state
and counts, by region, the children in FOSTER who were there before; ``add_arrivals`` marks arrivals placed in
FOSTER. ``allocate_foster`` then runs serially over those children only, in hashed-priority order, and sends
those who find no free place in their region to RESIDENTIAL_HOME.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from agents import attributes as A
from agents import capacity as CAP
from agents import events as E
from agents import levers as LV
from agents import states as S
from sim.rng import make_id
from sim.rng import (DEC_DEST, DEC_EVENT, DEC_LA, DEC_NEED, DEC_NEW_LA, DEC_NEWBORN, DEC_PROVIDER, DEC_SEX, DEC_SHORT,
                     DEC_AGE,
                     draw32)

NCHUNK = 64
VACANT = np.uint8(S.VACANT)
N_AGE7 = 7
N_REASON = len(E.CEASE_REASONS)
AGED_OUT = E.CR["aged_out"]

# monthly flow counters (acc_flow columns)
F_TO_PREV_KNOWN, F_GONE, F_AGE18, F_CPP_START, F_CARE_ENTRY, F_TRANSFER, F_REENTRY, F_SHORT_STAY = range(8)
F_CIN_START = 8
N_FLOW = 9
FLOW_NAMES = ("to_prev_known", "gone", "age18", "cpp_started", "care_entries", "transfers", "reentries",
              "short_stays", "cin_started")

IN_CARE = S.IN_CARE.astype(np.bool_)
AGE_BAND = A.AGE_BAND_OF_MONTH
EV_DEST_KIND = E.EV_DEST_KIND
EV_FIXED_STATE = E.EV_FIXED_STATE
EV_LEAVE = E.EV_LEAVE
EV_CEASE_REASON = E.EV_CEASE_REASON
EV_COUNTS_START = E.EV_COUNTS_START
EV_CPP_START = E.EV_CPP_START
EV_RESET_EPI = E.EV_RESET_EPI
EV_PREV_PLUS = E.EV_PREV_PLUS
K = E.K_SLOTS
N_NEED = A.N_NEED
N_PREV = A.N_PREV
N_EPI = A.N_EPI
N_PLC = A.N_PLC
N_AGE = A.N_AGE
MAXAGE = A.MAX_AGE_MONTHS
TO_ENTRY, TO_MOVE, TO_SAME, TO_LEAVE = E.TO_ENTRY, E.TO_MOVE, E.TO_SAME, E.TO_LEAVE
LEAVE_PREV_KNOWN = E.LEAVE_PREV_KNOWN
EV_REUNIFIED = E.EV["REUNIFIED"]
RETURNED_HOME = S.RETURNED_HOME
KINSHIP_ORDER = S.KINSHIP_ORDER
EDGE = S.EDGE_OF_CARE
FLAG_UASC = A.FLAG_UASC
FLAG_AGENCY = A.FLAG_AGENCY
NEED_SHIFT = A.NEED_SHIFT


# Row of the hazard table as a sum of pre-multiplied offsets, one lookup per covariate (same layout as
# agents.hazards.row_index, without its chain of dependent multiplications). Index = the raw byte.
_S_ROWS = N_AGE * N_NEED * 2 * N_PREV * N_EPI * N_PLC
_A_ROWS = N_NEED * 2 * N_PREV * N_EPI * N_PLC
_N_ROWS = 2 * N_PREV * N_EPI * N_PLC
_U_ROWS = N_PREV * N_EPI * N_PLC
_BYTE = np.arange(256)
OFF_AGE = (A.AGE_BAND_OF_MONTH.astype(np.int64) * _A_ROWS)
OFF_FLAGS = ((_BYTE >> NEED_SHIFT) & 3) * _N_ROWS + ((_BYTE & FLAG_UASC) > 0) * _U_ROWS
OFF_PREV = (_BYTE > 0) * (N_EPI * N_PLC)
OFF_EPI = A.EPI_BAND_OF_MONTH.astype(np.int64) * N_PLC
OFF_PLC = A.PLC_BAND_OF_MONTH.astype(np.int64)


@njit(inline="always", cache=True)
def _sel(thr_row, r):
    """First slot whose cumulative threshold exceeds the draw; K if none (no event)."""
    for k in range(thr_row.shape[0]):
        if r < thr_row[k]:
            return k
    return thr_row.shape[0]


# the lever rules of agents/levers.py, compiled here (one definition for the kernel and the Mesa model).
# numba's cache of this file does not see edits to agents/levers.py: touch this file after changing them.
_lever_effects = njit(inline="always")(LV.child_effects)
_lever_event = njit(inline="always")(LV.lever_event)
_placement_effects = njit(inline="always")(LV.placement_effects)
_placement_event = njit(inline="always")(LV.placement_event)
N_DEST = LV.N_DEST
COVER_SEED = np.uint64(LV.COVER_SEED)
COVER_MONTH = LV.COVER_MONTH
COVER_DEC = LV.COVER_DEC

# the foster capacity rules of agents/capacity.py, compiled here (the same functions the Mesa model runs);
# as for the lever rules, touch this file after changing them (numba's cache does not see the edit)
_free_places = njit(inline="always")(CAP.free_places)
_allocate = njit(inline="always")(CAP.allocate)
_redirected_flags = njit(inline="always")(CAP.redirected_flags)
_priority_order = njit(cache=True)(CAP.priority_order)
FOSTER = S.FOSTER
RESIDENTIAL_HOME = S.RESIDENTIAL_HOME
DEC_PRIORITY = CAP.DEC_PRIORITY
DEC_MATCH = CAP.DEC_MATCH
TWO32 = CAP.TWO32
N_REGION = CAP.N_REGION
C_PLACES, C_OCCUPIED, C_ENTRANTS, C_REDIRECTED, C_TAKEN = (CAP.PLACES, CAP.OCCUPIED, CAP.ENTRANTS, CAP.REDIRECTED,
                                                         CAP.TAKEN)
E_STARTED, E_SHORT = CAP.E_STARTED, CAP.E_SHORT


@njit(inline="always", cache=True)
def _bsearch(cum, r):
    """First index whose cumulative threshold exceeds the draw (binary search, for long tables such as LAs)."""
    lo, hi = 0, cum.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if r < cum[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


GUIDE_BITS = 10


@njit(cache=True)
def _guide_table(cum):
    """For each of 2**GUIDE_BITS equal slices of the draw range, the first index that can be selected there."""
    n = 1 << GUIDE_BITS
    guide = np.empty(n, dtype=np.int64)
    j = 0
    for g in range(n):
        lo = np.uint64(g) << np.uint64(32 - GUIDE_BITS)
        while j < cum.shape[0] - 1 and cum[j] <= lo:
            j += 1
        guide[g] = j
    return guide


@njit(inline="always", cache=True)
def _guided(cum, guide, r):
    """Same answer as ``_bsearch`` (first index whose threshold exceeds r), in about one step via the guide."""
    j = guide[r >> np.uint64(32 - GUIDE_BITS)]
    last = cum.shape[0] - 1
    while j < last and r >= cum[j]:
        j += 1
    return j


@njit(inline="always", cache=True)
def _record_cease(i, ch, reason, age7, uasc, ymark, cease_yr, cease_cell, acc_ceased, final):
    """DfE rule: a child counts once in 'ceased', with its last cessation of the year."""
    cell = (reason * N_AGE7 + age7) * 2 + uasc
    if final:  # transfers: the cessation is the last one in the old LA
        acc_ceased[ch, cell] += 1
        return
    if cease_yr[i] == ymark:
        acc_ceased[ch, cease_cell[i]] -= 1
    acc_ceased[ch, cell] += 1
    cease_yr[i] = ymark
    cease_cell[i] = cell


@njit(inline="always", cache=True)
def _record_start(i, ch, st, age7, uasc, ymark, start_yr, acc_started, always):
    """DfE rule: a child counts once in 'started', at its first start of the year (per LA for transfers)."""
    if always or start_yr[i] != ymark:
        acc_started[ch, (st * N_AGE7 + age7) * 2 + uasc] += 1
        start_yr[i] = ymark


@njit(inline="always", cache=True)
def _lever_dest(placement, md, seed, cid, month, kind, ab, need, uasc, la_i, dest_thr):
    """The destination index placement levers give this child's draw (kind 0 entry, 1 move), or -1 where
    none covers it (the status-quo draw applies). ``md``: per-chunk scratch [N_DEST]."""
    pcell = ((kind * N_AGE + ab) * N_NEED + need) * 2 + uasc
    flag = placement[0][pcell]
    if flag == 0:
        return -1
    u = draw32(COVER_SEED, cid, COVER_MONTH, COVER_DEC) if flag == 3 else np.uint64(0)
    if not _placement_effects(pcell, la_i, u, placement[1], placement[2], placement[3], placement[4],
                              placement[5], md):
        return -1
    r = np.int64(draw32(seed, cid, month, DEC_DEST))
    return _placement_event(dest_thr[kind, ab, need, uasc], md, r)


@njit(inline="always", cache=True)
def _enter_care(i, ch, seed, cid, month, kind, ab, need, uasc, state, flags, epi, plc, prev, start_yr,
                cease_yr, cease_cell, ymark, dest_thr, dest_state, agency_thr, short_thr, acc_started,
                acc_ceased, acc_flow, count_start, jd):
    """Place a child entering care (kind 0) or moving (kind 1); entries may end within the month. Returns the
    placement drawn. ``jd``: the destination index placement levers chose (``_lever_dest``), or -1 for the
    status-quo draw."""
    if jd >= 0:
        j = jd
    else:
        r = draw32(seed, cid, month, DEC_DEST)
        j = _sel(dest_thr[kind, ab, need, uasc], r)
    if j >= dest_state.shape[0]:
        j = dest_state.shape[0] - 1
    ns = dest_state[j]
    state[i] = ns
    plc[i] = 0
    f = flags[i] & ~FLAG_AGENCY
    if draw32(seed, cid, month, DEC_PROVIDER) < agency_thr[ns]:
        f |= FLAG_AGENCY
    flags[i] = f
    if kind == 0:
        epi[i] = 0
        acc_flow[ch, F_CARE_ENTRY] += 1
        if count_start:
            _record_start(i, ch, ns, ab, uasc, ymark, start_yr, acc_started, False)
        if draw32(seed, cid, month, DEC_SHORT) < short_thr[ab]:
            # stay under a month: the child starts and ceases within this step and returns home
            _record_cease(i, ch, EV_CEASE_REASON[EV_REUNIFIED], ab, uasc, ymark, cease_yr, cease_cell,
                          acc_ceased, False)
            state[i] = RETURNED_HOME
            prev[i] = min(prev[i] + 1, 255)
            acc_flow[ch, F_SHORT_STAY] += 1
    return ns


@njit(parallel=True, cache=True)
def step_month(state, age, flags, epi, plc, prev, la, cid, start_yr, cease_yr, cease_cell, n_used,
               seed, month, ymark, thr, thr_total, event_of_slot, dest_thr, dest_state, short_thr, agency_thr, la_cum,
               returned_max, acc_started, acc_ceased, acc_cm, acc_flow, acc_prevknown, vac_idx, vac_cnt, levers,
               placement, capacity):
    """Advance every live child by one month: age, 18th birthday, one competing-risk draw, the event.
    Vacant slots seen or made are listed per chunk (``vac_idx[lo:lo + vac_cnt[ch]]``, increasing) for arrivals.
    ``levers``: this month's lever tuple (``agents.levers.LeverTables.for_month``), or None for no lever: numba
    compiles each case on its own and prunes the ``levers is not None`` blocks from the None one, so the
    status-quo kernel is the same code, and as fast, as without levers. ``placement``: this month's
    placement-lever tuple (``LeverTables.placement_for_month``) or None, the same way. ``capacity``: None (no
    foster capacity constraint), or (region_of_la, cand_idx, cand_code, cand_cnt, cand_occ): each chunk lists
    its children who entered FOSTER from another state (short stays in it included) in
    ``cand_idx[lo:lo + cand_cnt[ch]]`` (``cand_code``: the entrant codes ``capacity.E_STARTED`` and
    ``E_SHORT``) and counts by region in ``cand_occ[ch]`` the children in FOSTER at both the start and the end
    of the month, for ``allocate_foster``."""
    chunk = (n_used + NCHUNK - 1) // NCHUNK
    for ch in prange(NCHUNK):
        lo = ch * chunk
        hi = min(lo + chunk, n_used)
        nv = 0
        nf = 0
        if capacity is not None:
            for q in range(N_REGION):
                capacity[4][ch, q] = 0
        mk = np.ones(K)                      # scratch for the lever path: per-slot multipliers and additions
        ak = np.zeros(K)
        if placement is not None:
            md = np.ones(N_DEST)             # scratch for placement levers: per-destination multipliers
        for i in range(lo, hi):
            s = state[i]
            if s == VACANT:
                vac_idx[lo + nv] = i
                nv += 1
                continue
            a = age[i] + 1
            fl = flags[i]
            uasc = 1 if (fl & FLAG_UASC) else 0
            if a >= MAXAGE:
                if IN_CARE[s]:
                    _record_cease(i, ch, AGED_OUT, 6, uasc, ymark, cease_yr, cease_cell, acc_ceased, False)
                acc_flow[ch, F_AGE18] += 1
                state[i] = VACANT
                vac_idx[lo + nv] = i
                nv += 1
                continue
            age[i] = a
            ab = AGE_BAND[a]
            need = (fl >> NEED_SHIFT) & 3
            e = epi[i]
            if s == RETURNED_HOME and e >= returned_max:
                acc_flow[ch, F_TO_PREV_KNOWN] += 1
                acc_prevknown[ch, a // 12] += 1
                state[i] = VACANT
                vac_idx[lo + nv] = i
                nv += 1
                continue
            pl = plc[i]
            row = s * _S_ROWS + OFF_AGE[a] + OFF_FLAGS[fl] + OFF_PREV[prev[i]] + OFF_EPI[e] + OFF_PLC[pl]
            c = cid[i]
            r = draw32(seed, c, month, DEC_EVENT)
            # both clocks run on; an event below restarts them where its table row says so
            if e < 255:
                epi[i] = e + 1
            if pl < 255:
                plc[i] = pl + 1
            if levers is not None:  # this child's month re-cut if a lever covers it (same draw r either way)
                adj = False
                tot = thr_total[row]
                cell = ((s * N_AGE + ab) * N_NEED + need) * 2 + uasc
                flag = levers[0][cell]
                # levers reach only draws below the row's total or its bound (LeverTables.for_month)
                if flag != 0 and (r < tot or r < tot * levers[1][cell] + levers[2][cell]):
                    u = draw32(COVER_SEED, c, COVER_MONTH, COVER_DEC) if flag == 3 else np.uint64(0)
                    adj = _lever_effects(cell, la[i], u, levers[3], levers[4], levers[5], levers[6], levers[7],
                                         mk, ak)
                if adj:
                    k = _lever_event(thr[row], mk, ak, r)
                    if k >= K:  # no event
                        acc_cm[ch, (s * 2 + ((fl >> 4) & 1)) * N_NEED + need] += 1
                        if capacity is not None:
                            if s == FOSTER:
                                capacity[4][ch, capacity[0][la[i]]] += 1
                        continue
                elif r >= tot:  # no event
                    acc_cm[ch, (s * 2 + ((fl >> 4) & 1)) * N_NEED + need] += 1
                    if capacity is not None:
                        if s == FOSTER:
                            capacity[4][ch, capacity[0][la[i]]] += 1
                    continue
                else:
                    k = _sel(thr[row], r)
            else:
                if r >= thr_total[row]:  # fast path: no event (compact table of row totals stays in cache)
                    acc_cm[ch, (s * 2 + ((fl >> 4) & 1)) * N_NEED + need] += 1
                    if capacity is not None:
                        if s == FOSTER:
                            capacity[4][ch, capacity[0][la[i]]] += 1
                    continue
                k = _sel(thr[row], r)
            ev = event_of_slot[s, k]
            reason = EV_CEASE_REASON[ev]
            if reason >= 0:
                _record_cease(i, ch, reason, ab, uasc, ymark, cease_yr, cease_cell, acc_ceased,
                              EV_DEST_KIND[ev] == TO_SAME)
            kind = EV_DEST_KIND[ev]
            fresh = False
            placed = -1
            if kind == TO_LEAVE:
                if EV_LEAVE[ev] == LEAVE_PREV_KNOWN:
                    acc_flow[ch, F_TO_PREV_KNOWN] += 1
                    acc_prevknown[ch, a // 12] += 1
                else:
                    acc_flow[ch, F_GONE] += 1
                state[i] = VACANT
                vac_idx[lo + nv] = i
                nv += 1
                continue
            if kind == TO_ENTRY:
                if s == RETURNED_HOME or s == KINSHIP_ORDER:  # re-entry after care
                    acc_flow[ch, F_REENTRY] += 1
                jd = -1
                if placement is not None:
                    jd = _lever_dest(placement, md, seed, c, month, 0, ab, need, uasc, la[i], dest_thr)
                fresh = start_yr[i] != ymark  # _enter_care counts a DfE start now (first start of the year)
                placed = _enter_care(i, ch, seed, c, month, 0, ab, need, uasc, state, flags, epi, plc, prev,
                                     start_yr, cease_yr, cease_cell, ymark, dest_thr, dest_state, agency_thr,
                                     short_thr, acc_started, acc_ceased, acc_flow, True, jd)
            elif kind == TO_MOVE:
                jd = -1
                if placement is not None:
                    jd = _lever_dest(placement, md, seed, c, month, 1, ab, need, uasc, la[i], dest_thr)
                _enter_care(i, ch, seed, c, month, 1, ab, need, uasc, state, flags, epi, plc, prev, start_yr,
                            cease_yr, cease_cell, ymark, dest_thr, dest_state, agency_thr, short_thr,
                            acc_started, acc_ceased, acc_flow, False, jd)
            elif kind == TO_SAME:  # transfer to another LA: cessation there, start here
                r2 = draw32(seed, c, month, DEC_NEW_LA)
                la[i] = _bsearch(la_cum, r2)
                _record_start(i, ch, s, ab, uasc, ymark, start_yr, acc_started, True)
                acc_flow[ch, F_TRANSFER] += 1
            else:
                ns = EV_FIXED_STATE[ev]
                state[i] = ns
                plc[i] = 0
                if EV_RESET_EPI[ev]:
                    epi[i] = 0
                if EV_PREV_PLUS[ev]:
                    prev[i] = min(prev[i] + 1, 255)
                if EV_CPP_START[ev]:
                    acc_flow[ch, F_CPP_START] += 1
            s2 = state[i]
            acc_cm[ch, (s2 * 2 + ((flags[i] >> 4) & 1)) * N_NEED + need] += 1
            if capacity is not None:
                if s2 == FOSTER and s == FOSTER:  # already in foster care: keeps its place (moves between carers too)
                    capacity[4][ch, capacity[0][la[i]]] += 1
                elif s2 == FOSTER or placed == FOSTER:  # a new foster placement (or a stay under a month in one)
                    capacity[1][lo + nf] = i
                    capacity[2][lo + nf] = ((E_STARTED if (kind == TO_ENTRY and fresh) else 0)
                                            + (E_SHORT if s2 != FOSTER else 0))
                    nf += 1
        vac_cnt[ch] = nv
        if capacity is not None:
            capacity[3][ch] = nf


@njit(cache=True)
def take_vacancies(vac_idx, vac_cnt, n_used, need, out):
    """The lowest ``need`` vacant slots from the lists ``step_month`` made (same order as ``find_free_slots``)."""
    chunk = (n_used + NCHUNK - 1) // NCHUNK
    m = 0
    for ch in range(NCHUNK):
        lo = ch * chunk
        for q in range(vac_cnt[ch]):
            if m >= need:
                return m
            out[m] = vac_idx[lo + q]
            m += 1
    return m


@njit(cache=True)
def expand_arrivals(counts, month, targets, uasc, male, ids, ages, tgt, ua, ml):
    """Per-arrival arrays from counts [stream, single year of age]: id = (month, stream, k), age in months."""
    j = 0
    for st in range(counts.shape[0]):
        k = 0
        for a in range(counts.shape[1]):
            for _ in range(counts[st, a]):
                ids[j] = make_id(month, st, k)
                ages[j] = 12 * a
                tgt[j] = targets[st]
                ua[j] = uasc[st]
                ml[j] = male[st]
                k += 1
                j += 1
    return j


@njit(parallel=True, cache=True)
def find_free_slots(state, n_used, need, out):
    """The lowest ``need`` vacant slots, in increasing order (two parallel passes over fixed chunks);
    returns how many were found."""
    chunk = (n_used + NCHUNK - 1) // NCHUNK
    cnt = np.zeros(NCHUNK + 1, dtype=np.int64)
    for ch in prange(NCHUNK):
        lo = ch * chunk
        hi = min(lo + chunk, n_used)
        c = 0
        for i in range(lo, hi):
            if state[i] == VACANT:
                c += 1
        cnt[ch + 1] = c
    for ch in range(NCHUNK):
        cnt[ch + 1] += cnt[ch]
    for ch in prange(NCHUNK):
        m = cnt[ch]
        if m >= need:
            continue
        lo = ch * chunk
        hi = min(lo + chunk, n_used)
        for i in range(lo, hi):
            if m >= need:
                break
            if state[i] == VACANT:
                out[m] = i
                m += 1
    return min(cnt[NCHUNK], need)


@njit(parallel=True, cache=True)
def add_arrivals(slots, ids, ages_m, target, uasc_flag, male_thr, need_thr, newborn_thr, la_cum,
                 state, age, flags, epi, plc, prev, la, cid, start_yr, cease_yr, cease_cell, n_used,
                 seed, month, ymark, dest_thr, dest_state, short_thr, agency_thr,
                 acc_started, acc_ceased, acc_cm, acc_flow, placement, arr_foster):
    """Initialise arriving children in their slots; ``target`` is AT_HOME, EDGE_OF_CARE or -1 (enter care).
    ``placement``: this month's placement-lever tuple or None (as in ``step_month``): entries straight into
    care draw their placement through it. ``arr_foster``: None (no capacity constraint), or uint8 [arrivals] of
    zeros, set to the entrant code (``capacity.E_STARTED``, plus ``E_SHORT`` for a stay under a month) of
    arrivals placed in FOSTER (for ``allocate_foster``)."""
    chunk = (n_used + NCHUNK - 1) // NCHUNK
    # slots are increasing, so each chunk's arrivals are one contiguous run: chunks own their accumulators
    bounds = np.searchsorted(slots, np.arange(NCHUNK + 1) * chunk)
    guide = _guide_table(la_cum)
    for ch in prange(NCHUNK):
        if placement is not None:
            md = np.ones(N_DEST)             # scratch for placement levers
        for j in range(bounds[ch], bounds[ch + 1]):  # attributes of one arriving child from its own draws
            i = slots[j]
            c = ids[j]
            if ages_m[j] == 0 and draw32(seed, c, month, DEC_NEWBORN) < newborn_thr:
                a = 0  # known from birth (pre-birth assessment, newborn removal)
            else:  # otherwise a month of age uniform within the year of age (integer arithmetic)
                a = ages_m[j] + np.int64(draw32(seed, c, month, DEC_AGE) % np.uint64(12))
            if a >= MAXAGE:
                a = MAXAGE - 1
            age[i] = a
            cid[i] = c
            f = 0
            if draw32(seed, c, month, DEC_SEX) < male_thr[j]:
                f |= 1
            need = _sel(need_thr, draw32(seed, c, month, DEC_NEED))
            if need > 3:
                need = 3
            f |= need << NEED_SHIFT
            u = uasc_flag[j]
            if u:
                f |= FLAG_UASC
            flags[i] = f
            la[i] = _guided(la_cum, guide, draw32(seed, c, month, DEC_LA))
            epi[i] = 0
            plc[i] = 0
            prev[i] = 0
            start_yr[i] = 0
            cease_yr[i] = 0
            cease_cell[i] = 0
            t = target[j]
            ab = AGE_BAND[a]
            if t < 0:
                jd = -1
                if placement is not None:
                    jd = _lever_dest(placement, md, seed, c, month, 0, ab, need, u, la[i], dest_thr)
                placed = _enter_care(i, ch, seed, c, month, 0, ab, need, u, state, flags, epi, plc, prev,
                                     start_yr, cease_yr, cease_cell, ymark, dest_thr, dest_state, agency_thr,
                                     short_thr, acc_started, acc_ceased, acc_flow, True, jd)
                if arr_foster is not None:
                    if placed == FOSTER:  # entrant code: a start is always counted; a short stay if gone home
                        arr_foster[j] = E_STARTED + (E_SHORT if state[i] != FOSTER else 0)
            else:
                state[i] = t
                acc_flow[ch, F_CIN_START] += 1
                if t == EDGE:
                    acc_flow[ch, F_CPP_START] += 1
            s2 = state[i]
            acc_cm[ch, (s2 * 2 + ((flags[i] >> 4) & 1)) * N_NEED + need] += 1


@njit(cache=True)
def allocate_foster(cand_idx, cand_code, cand_cnt, cand_occ, n_used_step, arr_slots, arr_code, region_of_la,
                    places, log_miss, state, flags, age, la, cid, seed, month, agency_thr, acc_started, acc_cm, log):
    """The month's serial foster allocation (``agents/capacity.py``): the entrants ``step_month`` listed (chunks
    of ``n_used_step`` slots) and the arrivals ``add_arrivals`` marked, in priority order (a draw keyed by seed,
    child id and month; ties by id), take their region's free places (``places`` less the children already in
    FOSTER; a short stay needs one but does not keep it) when one suits them (a matching draw keyed the same way
    against ``capacity.match_probability`` with the region's ``log_miss``); the others are treated as placed in
    RESIDENTIAL_HOME:
    provider redrawn, the month's child-month and, where the entry counted one, the DfE start re-recorded (a
    short stay stays at home). ``log`` [N_REGION, N_LOG] gets places, occupied, entrants, redirected and places
    taken; returns the number redirected."""
    chunk = (n_used_step + NCHUNK - 1) // NCHUNK
    n = 0
    for ch in range(NCHUNK):
        n += cand_cnt[ch]
    for j in range(arr_code.shape[0]):
        if arr_code[j] != 0:
            n += 1
    idx = np.empty(n, dtype=np.int64)
    code = np.empty(n, dtype=np.uint8)
    k = 0
    for ch in range(NCHUNK):
        lo = ch * chunk
        for q in range(cand_cnt[ch]):
            idx[k] = cand_idx[lo + q]
            code[k] = cand_code[lo + q]
            k += 1
    for j in range(arr_code.shape[0]):
        if arr_code[j] != 0:
            idx[k] = arr_slots[j]
            code[k] = arr_code[j]
            k += 1
    prio = np.empty(n, dtype=np.uint64)
    ids = np.empty(n, dtype=np.uint64)
    for k in range(n):
        ids[k] = cid[idx[k]]
        prio[k] = draw32(seed, ids[k], month, DEC_PRIORITY)
    order = _priority_order(prio, ids)
    regions = np.empty(n, dtype=np.int64)
    keeps = np.empty(n, dtype=np.uint8)
    for q in range(n):
        regions[q] = region_of_la[la[idx[order[q]]]]
        keeps[q] = 0 if (code[order[q]] & E_SHORT) else 1
    occupied = np.zeros(N_REGION, dtype=np.int64)
    for ch in range(NCHUNK):
        for r in range(N_REGION):
            occupied[r] += cand_occ[ch, r]
    free = np.empty(N_REGION, dtype=np.int64)
    _free_places(places, occupied, free)
    admitted = np.empty(n, dtype=np.uint8)
    match_u = np.empty(n)
    for q in range(n):
        match_u[q] = draw32(seed, ids[order[q]], month, DEC_MATCH) / TWO32
    _allocate(regions, keeps, free, admitted, match_u, log_miss)
    for r in range(N_REGION):
        log[r, C_PLACES] = places[r]
        log[r, C_OCCUPIED] = occupied[r]
    moved = 0
    for q in range(n):
        r = regions[q]
        log[r, C_ENTRANTS] += 1
        if admitted[q] != 0:
            if keeps[q] != 0:
                log[r, C_TAKEN] += 1
            continue
        i = idx[order[q]]
        f = flags[i]
        s_now = state[i]                     # FOSTER, or RETURNED_HOME after a stay under a month
        s_new = RESIDENTIAL_HOME if keeps[q] != 0 else s_now
        need = (f >> NEED_SHIFT) & 3
        acc_cm[0, (s_now * 2 + ((f >> 4) & 1)) * N_NEED + need] -= 1
        f2 = _redirected_flags(f, draw32(seed, cid[i], month, DEC_PROVIDER), agency_thr[RESIDENTIAL_HOME])
        flags[i] = f2
        state[i] = s_new
        acc_cm[0, (s_new * 2 + ((f2 >> 4) & 1)) * N_NEED + need] += 1
        if code[order[q]] & E_STARTED:
            ab = AGE_BAND[age[i]]
            uasc = 1 if (f & FLAG_UASC) else 0
            acc_started[0, (FOSTER * N_AGE7 + ab) * 2 + uasc] -= 1
            acc_started[0, (RESIDENTIAL_HOME * N_AGE7 + ab) * 2 + uasc] += 1
        log[r, C_REDIRECTED] += 1
        moved += 1
    return moved


@njit(parallel=True, cache=True)
def count_stock(state, age, flags, epi, la, n_used, returned_cin_months, n_la, stock, la_cla, returned_open):
    """31 March counts: by state x age band (7) x UASC x provider, CLA by LA, and open returned-home cases."""
    chunk = (n_used + NCHUNK - 1) // NCHUNK
    loc = np.zeros((NCHUNK, stock.size), dtype=np.int64)
    loc_la = np.zeros((NCHUNK, n_la), dtype=np.int64)
    loc_ret = np.zeros((NCHUNK, returned_open.size), dtype=np.int64)
    for ch in prange(NCHUNK):
        lo = ch * chunk
        hi = min(lo + chunk, n_used)
        for i in range(lo, hi):
            s = state[i]
            if s == VACANT:
                continue
            ab = AGE_BAND[age[i]]
            u = 1 if (flags[i] & FLAG_UASC) else 0
            g = (flags[i] >> 4) & 1
            loc[ch, ((s * N_AGE7 + ab) * 2 + u) * 2 + g] += 1
            if IN_CARE[s]:
                loc_la[ch, la[i]] += 1
            elif s == RETURNED_HOME and epi[i] < returned_cin_months:
                loc_ret[ch, ab * 2 + u] += 1
    flat = stock.reshape(-1)
    for ch in range(NCHUNK):
        for q in range(flat.size):
            flat[q] += loc[ch, q]
        for q in range(n_la):
            la_cla[q] += loc_la[ch, q]
        fr = returned_open.reshape(-1)
        for q in range(fr.size):
            fr[q] += loc_ret[ch, q]
