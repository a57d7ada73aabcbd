"""Foster capacity (DESIGN §2, Capacity): usable mainstream foster places by region, and the serial allocation.

Stock: approved mainstream fostering households per English region r, month by month from 31 March 2015
(month 0): H[r, m] = H[r, m-1] + recruitment[r, m] / 12 - deregistration[r, m] / 12 x H[r, m-1], with annual
recruitment (gross additions, households a year) and an annual de-registration rate from the register
(``capacity.*`` rows; Ofsted Fostering in England figures). Places = H x ``capacity.places_per_household``;
usable = places x ``capacity.usable_share``. Matching friction: a free usable place suits a given child
(location, age, siblings, needs) only with some probability, so a child finds a match among F free places of
its region with probability 1 - ``capacity.friction`` ^ (F / 1,000): ``capacity.friction`` is the chance that
1,000 free places hold none that suits (0: any free place will do, the hard constraint). F counts free places at
England scale (free places of the run / its scale), so the chance does not depend on the scale simulated. National
figures are split across the 9 regions by each region's share of foster placements at 31 March
``capacity.region_split_year`` (DfE la_cla.csv; a labelled prior). A run that simulates only some LAs (``--la``)
gets each region's capacity times the share of the region's foster children in its LAs (``coverage``), both
counted at 31 March 2015, the year of its starting stock (``split_year``).
Family-and-friends households are approved for a named child (the KINSHIP state): not constrained.

Allocation, once a month after the transitions and arrivals (``sim/kernel.allocate_foster``; the Mesa model
runs the same functions): a child who entered FOSTER this month from another state (entry to care, move,
arrival) is an entrant; the region's free places are its places at the run's scale minus the children in
FOSTER there who were already in FOSTER at the start of the month (``free_places``); entrants take them in the
order of a hashed priority keyed by (seed, child id, month) alone (``priority_order``: the same in every
scenario and for any thread count) and the rest go to RESIDENTIAL_HOME (``allocate``; provider redrawn for a
children's home, ``redirected_flags``; the DfE start, where the entry counted one, is recorded there). A child
placed in FOSTER who goes home within the month (a short stay) needs a free place at its turn but does not keep
it; without one its start is recorded in RESIDENTIAL_HOME. Nobody already in FOSTER is moved when capacity falls.

Capacity levers (kind ``capacity``, ``agents/levers.py``) act on the flows by region, phased in as every lever
(``levers.effect_at``): ``recruitment`` multiplies, or adds households a year to, recruitment; ``retention``
multiplies the annual de-registration rate (0.9 = 10% fewer de-registrations; the shipped scenarios' usage),
or adds to it (-0.02 = two points fewer); ``usable_share`` multiplies, or adds to, the usable share. A lever
on named LAs (``las``) acts in each region in proportion to the covered LAs' share of that region's foster
children w (a multiplier m becomes 1 + w (m - 1), an addition a to a rate or share becomes w a); a
recruitment addition (households a year, for the covered LAs together) is split across regions in
proportion to the covered foster children.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
from numba import njit

from agents import attributes as A
from agents import levers as L

REGION_CODES = ("E12000001", "E12000002", "E12000003", "E12000004", "E12000005", "E12000006", "E12000007",
                "E12000008", "E12000009")
REGION_NAMES = ("North East", "North West", "Yorkshire and The Humber", "East Midlands", "West Midlands",
                "East of England", "London", "South East", "South West")
N_REGION = len(REGION_CODES)
SUBREGIONS = {"E13000001": "E12000007", "E13000002": "E12000007"}  # Inner / Outer London
# decision ids of the allocation priority and matching draws (sim/rng.draw32): sim/rng uses 0-4 and 10-14,
# levers 15
DEC_PRIORITY = 5
DEC_MATCH = 6
TWO32 = 4294967296.0   # draw32 values / TWO32: uniforms in [0, 1)
# columns of the monthly capacity log [month, region, N_LOG]: places at the run's scale, children in FOSTER who were
# there before the month, entrants, entrants redirected, places taken (admitted entrants still in FOSTER at the
# month's end: the month-end FOSTER count is occupied + taken)
PLACES, OCCUPIED, ENTRANTS, REDIRECTED, TAKEN = range(5)
N_LOG = 5
LOG_NAMES = ("places", "occupied", "entrants", "redirected", "taken")
# entrant codes (the kernel's per-entrant byte): the entry counted a DfE start this month; a stay under a month
# (the child was placed and went home within the month: it needs a free place but does not keep it)
E_STARTED, E_SHORT = 1, 2
LOCAL_SPLIT_YEAR = 2015   # the stock year of a run on some LAs only (calibration/inputs.local: 31 March 2015)

_RECRUIT = re.compile(r"^capacity\.recruitment\.(\d{4})$")


# ---- the month's rule: pure functions for the numba kernel and the Mesa model alike ---------------------------
def free_places(places, occupied, free):
    """Free places per region: places at the run's scale less the children already in FOSTER there, at least 0."""
    for r in range(len(places)):
        v = places[r] - occupied[r]
        free[r] = v if v > 0 else 0


@njit(cache=True)
def match_probability(free, log_miss):
    """Chance that one of ``free`` (> 0) free places suits a child: 1 - exp(``log_miss`` x free), ``log_miss`` =
    ln(friction) / (1,000 x scale) (``CapacityPlan.log_miss``; -inf for no friction: any free place suits)."""
    if log_miss == -np.inf:
        return 1.0
    return 1.0 - np.exp(log_miss * free)


def allocate(regions, keeps, free, admitted, match_u, log_miss):
    """Serial allocation: entrant k (in priority order, region r = ``regions[k]``) is placed (``admitted[k]`` = 1)
    if a free place of its region is left and one of them suits it (``match_u[k]``, a uniform draw in [0, 1),
    below ``match_probability(free[r], log_miss[r])``), and keeps it if ``keeps[k]`` (a stay under a month uses a
    place within the month and leaves it free at the month's end); otherwise it is redirected (0). ``free`` is
    used up in place."""
    for k in range(len(regions)):
        r = regions[k]
        if free[r] > 0 and match_u[k] < match_probability(free[r], log_miss[r]):
            if keeps[k]:
                free[r] -= 1
            admitted[k] = 1
        else:
            admitted[k] = 0


def priority_order(prio, cid):
    """Entrants in allocation order: by priority draw, ties by child id (indices into ``prio``/``cid``)."""
    o1 = np.argsort(cid, kind="mergesort")
    o2 = np.argsort(prio[o1], kind="mergesort")
    return o1[o2]


def redirected_flags(flags, provider_draw, agency_thr):
    """Flags of a child redirected to RESIDENTIAL_HOME: its provider redrawn with its own provider draw against
    the children's-home private share (what ``_enter_care`` does for a child placed there)."""
    f = flags & ~A.FLAG_AGENCY
    if provider_draw < agency_thr:
        f |= A.FLAG_AGENCY
    return f


# ---- geography ------------------------------------------------------------------------------------------------
def _region(code) -> int:
    code = SUBREGIONS.get(str(code), str(code))
    return REGION_CODES.index(code)


def _nearest(values: Mapping[int, float], year: int) -> float | None:
    """The value of the year nearest ``year`` (the earlier on a tie), or None."""
    if not values:
        return None
    best = min(values, key=lambda y: (abs(y - year), y))
    return values[best]


@lru_cache(maxsize=None)
def _la_foster(year: int) -> dict[str, tuple[int, float]]:
    """Every LA of la_cla.csv's last year (2024 codes; predecessors left out): (region index, children in foster
    placements at 31 March of the year nearest ``year`` with a published count; suppressed counts (1-5) at 3, none
    at all 0)."""
    from calibration import dfe
    la = dfe.read("la_cla.csv")
    la = la[la["geographic_level"] == "Local authority"]
    la = la[la["new_la_code"].isin(set(la.loc[la["year"] == la["year"].max(), "new_la_code"]))]  # today's LAs
    f = la[(la["measure"] == "placement") & (la["category"] == "foster")]
    out = {}
    for code, g in la.groupby("new_la_code"):
        region = _region(g["region_code"].iloc[0])
        fc = f[f["new_la_code"] == code]
        vals = {int(y): float(v) for y, v in zip(fc["year"], fc["value"]) if v == v}
        v = _nearest(vals, year)
        if v is None:
            v = 3.0 if (fc.get("flag") == "c").any() else 0.0
        out[str(code)] = (region, v)
    return out


@lru_cache(maxsize=None)
def region_shares(year: int) -> np.ndarray:
    """Each region's share of England's children in foster placements at 31 March of the year nearest ``year``
    (la_cla.csv Regional rows; Inner and Outer London count as London): the split of national capacity."""
    from calibration import dfe
    d = dfe.read("la_cla.csv")
    r = d[(d["geographic_level"] == "Regional") & (d["measure"] == "placement") & (d["category"] == "foster")
          & d["region_code"].isin(REGION_CODES)]
    out = np.zeros(N_REGION)
    for code, g in r.groupby("region_code"):
        v = _nearest({int(y): float(x) for y, x in zip(g["year"], g["value"]) if x == x}, year)
        out[REGION_CODES.index(code)] = v or 0.0
    if not out.all():
        from calibration.dfe import DataError
        raise DataError(f"calibration/data/dfe/la_cla.csv: no regional foster count for "
                        f"{[REGION_CODES[i] for i in np.flatnonzero(out == 0)]}")
    return out / out.sum()


def region_index(la_codes: Sequence[str], year: int = 2015) -> np.ndarray:
    """Region index (0-8, ``REGION_CODES``) of each LA code (la_cla.csv region_code; London boroughs: London)."""
    table = _la_foster(year)
    bad = [c for c in la_codes if c not in table]
    if bad:
        from calibration.dfe import DataError
        raise DataError(f"calibration/data/dfe/la_cla.csv: field 'new_la_code': no local authority {bad[0]!r} "
                        f"(capacity needs each LA's region)")
    return np.array([table[c][0] for c in la_codes], dtype=np.int64)


def coverage(la_codes: Sequence[str], year: int = 2015) -> np.ndarray:
    """Per region, the share of its foster children (LA counts at 31 March nearest ``year``) in ``la_codes``."""
    table = _la_foster(year)
    tot, cov = np.zeros(N_REGION), np.zeros(N_REGION)
    for code, (r, v) in table.items():
        tot[r] += v
    for code in set(la_codes):
        if code in table:
            r, v = table[code]
            cov[r] += v
    return np.divide(cov, tot, out=np.zeros(N_REGION), where=tot > 0)


# ---- the stock ------------------------------------------------------------------------------------------------
def dfe_year(month: int) -> int:
    """DfE year (ending 31 March) of model month ``month`` (month 1 = April 2015)."""
    return 2015 + (month + 11) // 12


def recruitment_years(params: Mapping[str, float]) -> dict[int, float]:
    """Annual recruitment by DfE year from the register rows ``capacity.recruitment.YYYY``."""
    return {int(m.group(1)): float(v) for k, v in params.items() if (m := _RECRUIT.match(k))}


def annual_recruitment(params: Mapping[str, float], year: int) -> float:
    """National recruitment (households a year) in DfE year ``year``: the year's register row; before the first
    such row, the first; after the last, ``capacity.recruitment.future`` (held after the data)."""
    by_year = recruitment_years(params)
    if not by_year:
        raise KeyError("capacity.recruitment.YYYY: no such parameters in the register")
    if year in by_year:
        return by_year[year]
    if year < min(by_year):
        return by_year[min(by_year)]
    return float(params["capacity.recruitment.future"])


def households(h0, recruitment, deregistration) -> np.ndarray:
    """H[m] = H[m-1] + recruitment[m] / 12 - deregistration[m] / 12 x H[m-1] from H[0] = h0, for arrays
    [months + 1, ...] of annual recruitment (households a year) and annual de-registration rates."""
    rec = np.asarray(recruitment, dtype=float)
    dr = np.asarray(deregistration, dtype=float)
    out = np.empty(rec.shape)
    out[0] = h0
    for m in range(1, rec.shape[0]):
        out[m] = out[m - 1] + rec[m] / 12.0 - dr[m] / 12.0 * out[m - 1]
    return out


def households_closed_form(h0: float, recruitment: float, deregistration: float, months) -> np.ndarray:
    """The recursion with constant flows: R/d + (h0 - R/d)(1 - d/12)^m (h0 + m R/12 when d = 0)."""
    m = np.asarray(months, dtype=float)
    if deregistration == 0:
        return h0 + m * recruitment / 12.0
    eq = recruitment / deregistration
    return eq + (h0 - eq) * (1.0 - deregistration / 12.0) ** m


@dataclass(frozen=True)
class CapacityPlan:
    """A run's foster capacity: ``places`` int64 [months + 1, N_REGION], the usable places in each region in month
    m at the run's scale (floor(usable x scale)); ``usable`` (England-equivalent places of the run's LAs),
    ``households`` (whole regions) float [months + 1, N_REGION]; ``region_of_la`` int64 [n_la]; ``log_miss``
    float [N_REGION], ln(friction) / (1,000 x scale x coverage): the matching friction per free place of the run
    (``match_probability``). A child's matches are among its whole region's free places: a run holding a share
    (coverage) of a region's places and children counts each free place for 1 / coverage."""
    region_of_la: np.ndarray
    places: np.ndarray
    usable: np.ndarray
    households: np.ndarray
    scale: float
    log_miss: np.ndarray = field(default_factory=lambda: np.full(N_REGION, -np.inf))

    def for_month(self, month: int) -> np.ndarray:
        """Places by region in model month ``month`` (the last month's beyond the plan, month 0's before it)."""
        return self.places[min(max(int(month), 0), self.places.shape[0] - 1)]

    @property
    def regions(self) -> np.ndarray:
        """Indices of the regions the run's LAs lie in."""
        return np.unique(self.region_of_la)

    @classmethod
    def fixed(cls, places, region_of_la, months: int, scale: float = 1.0,
              log_miss: float = -np.inf) -> "CapacityPlan":
        """Constant places by region (at the run's scale) for every month: for closed cohorts and tests."""
        p = np.broadcast_to(np.asarray(places, dtype=np.int64), (months + 1, N_REGION)).copy()
        f = p.astype(float) / scale
        return cls(np.asarray(region_of_la, dtype=np.int64), p, f, f, scale, np.full(N_REGION, float(log_miss)))


def _lever_factors(levers: Sequence[L.Lever], month: int, share: np.ndarray, weights: Mapping[str, np.ndarray]):
    """Per-region (multiplier, addition) of the capacity levers on each target in model month ``month``."""
    out = {t: [np.ones(N_REGION), np.zeros(N_REGION)] for t in L.CAPACITY_TARGETS}
    for lv in levers:
        m, a = L.effect_at(lv, month)
        w = weights[lv.name]
        f = out[lv.capacity]
        f[0] *= 1.0 + w * (m - 1.0)
        if a != 0.0:
            if lv.capacity == "recruitment":
                cov = share * w
                f[1] += a * cov / cov.sum() if cov.sum() > 0 else 0.0
            else:
                f[1] += w * a
    return out


def split_year(params: Mapping[str, float], la_codes: Sequence[str]) -> int:
    """Year whose foster counts split capacity for a run on ``la_codes``: ``capacity.region_split_year`` for an
    England run (its children are placed in LAs by their 2024 shares), ``LOCAL_SPLIT_YEAR`` for a run on some
    LAs only (it starts from those LAs' own stock at 31 March 2015, so each gets its 2015 share of its region's
    carers: an LA whose children in care have since fallen, or risen, is not found short, or flush, in 2015)."""
    year = int(params["capacity.region_split_year"])
    national = (coverage(la_codes, year) > 0.99).all()   # every region (near) whole: the Isles of Scilly aside
    return year if national else LOCAL_SPLIT_YEAR


def build_plan(params: Mapping[str, float], la_codes: Sequence[str], months: int, scale: float,
               levers: Sequence[L.Lever] = ()) -> CapacityPlan:
    """Capacity of a run (model months 0..``months``) whose LA index i is ``la_codes[i]``, with its capacity
    levers (other kinds are ignored)."""
    year = split_year(params, la_codes)
    share = region_shares(year)
    caps = [lv for lv in levers if lv.kind == "capacity"]
    weights = {lv.name: (coverage(lv.las, year) if lv.las else np.ones(N_REGION)) for lv in caps}
    d = float(params["capacity.deregistration.rate"])
    u = float(params["capacity.usable_share"])
    rec = np.zeros((months + 1, N_REGION))
    dr = np.zeros((months + 1, N_REGION))
    us = np.zeros((months + 1, N_REGION))
    for m in range(months + 1):
        nat = annual_recruitment(params, dfe_year(m)) * share
        if caps:
            f = _lever_factors(caps, m, share, weights)
            rec[m] = np.maximum(nat * f["recruitment"][0] + f["recruitment"][1], 0.0)
            dr[m] = np.clip(d * f["retention"][0] + f["retention"][1], 0.0, 12.0)
            us[m] = np.clip(u * f["usable_share"][0] + f["usable_share"][1], 0.0, 1.0)
        else:
            rec[m], dr[m], us[m] = nat, d, u
    h = households(float(params["capacity.households.2015"]) * share, rec, dr)
    run = coverage(la_codes, year)
    usable = h * float(params["capacity.places_per_household"]) * us * run
    places = np.floor(usable * scale).astype(np.int64)
    return CapacityPlan(region_index(la_codes, year), places, usable, h, float(scale),
                        np.array([log_miss(float(params["capacity.friction"]), scale * max(c, 1e-9)) for c in run]))


def log_miss(friction: float, scale: float) -> float:
    """ln(friction) / (1,000 x scale): the per-free-place log chance of no match at the run's scale (-inf for 0)."""
    if not 0.0 <= friction < 1.0:
        raise ValueError(f"capacity.friction: {friction!r} must be in [0, 1)")
    return float(np.log(friction)) / (1000.0 * scale) if friction > 0 else -np.inf
