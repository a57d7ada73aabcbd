"""Log-linear monthly hazards as data, compiled to cumulative threshold tables (DESIGN §2).

log h = base + state + age band + need band + UASC + previous episodes + duration curve
        + placement-duration curve + calendar trend (+ a change of slope after a knot year, where given)
        + a one-year effect ``{channel}.year.{Y}`` for the DfE year ending March Y (where given)
        + a random-walk discrepancy after the data (ensemble members only; ``discrepancy``).
Parameter names are ``{channel}.{effect}``; a missing effect is 0 and ``-inf`` is a structural zero.
Competing risks: p_k = h_k / H * (1 - exp(-H)). Thresholds are uint32 so the kernel compares a raw 32-bit draw.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from agents import attributes as A
from agents import events as E
from agents import states as S

U32 = 4294967296.0


def p(params: Mapping[str, float], name: str, default: float = 0.0) -> float:
    return float(params.get(name, default))


def trend_x(year: int, params: Mapping[str, float]) -> float:
    """Calendar covariate for the DfE year ending March ``year``: linear to ``trend.end_year``, damped after."""
    ref = p(params, "trend.ref_year", 2016.0)
    end = p(params, "trend.end_year", 2024.0)
    phi = p(params, "trend.damping", 0.0)
    if year <= end:
        return year - ref
    extra = sum(phi ** k for k in range(1, int(year - end) + 1))
    return (end - ref) + extra


def trend_rule(params: Mapping[str, float]) -> str:
    """One line saying which status-quo trend rule produced a projection (for manifests and charts)."""
    end, phi = int(p(params, "trend.end_year", 2024)), p(params, "trend.damping", 0.0)
    if phi == 0:
        how = f"calendar trends held at their {end} level"
    elif phi == 1:
        how = f"calendar trends continued in a straight line after {end}"
    else:
        how = f"calendar trends damped after {end} (each year adds {phi:g}^k of a year's trend)"
    return f"{how} (trend.damping = {phi:g})"


def trend_x2(year: int, params: Mapping[str, float]) -> float:
    """Second calendar covariate, zero until ``trend.knot_year``: years since the knot, damped after the data
    like ``trend_x`` (a change of slope for channels with a ``.trend2`` effect)."""
    knot = p(params, "trend.knot_year", np.inf)
    end = p(params, "trend.end_year", 2024.0)
    if year <= knot or end <= knot:
        return 0.0
    if year <= end:
        return year - knot
    phi = p(params, "trend.damping", 0.0)
    return (end - knot) + sum(phi ** k for k in range(1, int(year - end) + 1))


DISCREPANCY_GROUPS = ("entry", "exit", "residential", "other")  # append only: the index keys the paths
DISCREPANCY_CHANNELS = {"cin.enter_care": "entry", "cpp.enter_care": "entry", "care.reunified": "exit",
                        "care.to_adoption": "exit", "care.sgo_cao": "exit"}
DISCREPANCY_DEST = {"RESIDENTIAL_HOME": "residential", "SEMI_INDEPENDENT": "residential", "OTHER_IN_CARE": "other"}


def discrepancy(year: int, params: Mapping[str, float], group: str) -> float:
    """Log offset of a discrepancy group after the data (DESIGN §2, §4): a random walk from ``trend.end_year``
    with yearly innovations ``disc.{group}.sd`` x z, z standard normal keyed by (``disc.key``, group, year
    after the data), so each ensemble member has its own path and the band widens with the horizon."""
    sd = p(params, f"disc.{group}.sd")
    end = int(p(params, "trend.end_year", 2024.0))
    if sd == 0.0 or year <= end:
        return 0.0
    key, g = int(p(params, "disc.key")), DISCREPANCY_GROUPS.index(group)
    z = [np.random.default_rng([key, g, k]).standard_normal() for k in range(1, int(year - end) + 1)]
    return sd * float(np.sum(z))


def to_threshold(cum: np.ndarray) -> np.ndarray:
    """Cumulative probabilities -> uint32 thresholds (a draw r < thr[k] selects slot k)."""
    return np.minimum(np.floor(np.clip(cum, 0.0, 1.0) * U32), U32 - 1).astype(np.uint32)


def channel_log_hazard(params: Mapping[str, float], ch: str, state: int, year: int) -> np.ndarray:
    """Log hazard of one channel for one state over the grid (age, need, uasc, prev, epi band, plc band)."""
    g = np.full((A.N_AGE, A.N_NEED, 2, A.N_PREV, A.N_EPI, A.N_PLC), p(params, f"{ch}.base", -np.inf))
    g = g + p(params, f"{ch}.state.{S.NAMES[state]}")
    g = g + np.array([p(params, f"{ch}.age.{a}") for a in range(A.N_AGE)])[:, None, None, None, None, None]
    g = g + np.array([p(params, f"{ch}.need.{n}") for n in range(A.N_NEED)])[None, :, None, None, None, None]
    g = g + np.array([0.0, p(params, f"{ch}.uasc")])[None, None, :, None, None, None]
    g = g + np.array([0.0, p(params, f"{ch}.prev")])[None, None, None, :, None, None]
    dur = p(params, f"{ch}.dur_k") * np.log1p(A.EPI_REP) + p(params, f"{ch}.dur_first") * (A.EPI_REP == 0)
    g = g + dur[None, None, None, None, :, None]
    g = g + (p(params, f"{ch}.pdur_k") * np.log1p(A.PLC_REP))[None, None, None, None, None, :]
    disc = discrepancy(year, params, DISCREPANCY_CHANNELS[ch]) if ch in DISCREPANCY_CHANNELS else 0.0
    age_trend = np.array([p(params, f"{ch}.age_trend.{a}") for a in range(A.N_AGE)])[:, None, None, None, None, None]
    return (g + (p(params, f"{ch}.trend") + age_trend) * trend_x(year, params)
            + p(params, f"{ch}.trend2") * trend_x2(year, params) + p(params, f"{ch}.year.{year}") + disc)


@dataclass
class HazardTables:
    """Everything the kernel needs for one simulated year, as flat arrays."""
    thr: np.ndarray          # uint32 [N_STATES * rows_per_state, K_SLOTS] cumulative thresholds
    thr_total: np.ndarray    # uint32 [rows]: the last cumulative threshold (any event), compact for the fast path
    event_of_slot: np.ndarray  # int64 [N_STATES, K_SLOTS]
    dest_thr: np.ndarray     # uint32 [2 (entry, move), N_AGE, N_NEED, 2 (uasc), N_DEST]
    dest_state: np.ndarray   # int64 [N_DEST]
    short_thr: np.ndarray    # uint32 [N_AGE]: same-month exit after entry (stays under a month)
    agency_thr: np.ndarray   # uint32 [N_STATES]: share placed with an agency / private provider
    monthly_prob: np.ndarray  # float64 [N_STATES, N_AGE, N_NEED, 2, N_PREV, N_EPI, N_PLC, K_SLOTS] (for tests)


ROWS_PER_STATE = A.N_AGE * A.N_NEED * 2 * A.N_PREV * A.N_EPI * A.N_PLC


def compile_tables(params: Mapping[str, float], year: int) -> HazardTables:
    """Build the hazard, destination and short-stay tables for the DfE year ending March ``year``."""
    K = E.K_SLOTS
    probs = np.zeros((S.N_STATES, A.N_AGE, A.N_NEED, 2, A.N_PREV, A.N_EPI, A.N_PLC, K))
    for s, chans in E.STATE_CHANNELS.items():
        h = np.stack([np.exp(channel_log_hazard(params, ch, s, year)) for _, ch in chans], axis=-1)
        H = h.sum(axis=-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            pk = np.where(H > 0, h / H * (1.0 - np.exp(-H)), 0.0)
        probs[..., : len(chans)][s] = pk
    cum = np.cumsum(probs, axis=-1)
    thr = to_threshold(cum).reshape(S.N_STATES * ROWS_PER_STATE, K)

    dest = np.zeros((2, A.N_AGE, A.N_NEED, 2, E.N_DEST))
    x = trend_x(year, params)
    for j, s in enumerate(E.DEST_STATES):
        nm = S.NAMES[s]
        disc = discrepancy(year, params, DISCREPANCY_DEST[nm]) if nm in DISCREPANCY_DEST else 0.0
        lw = (p(params, f"dest.{nm}.base", -np.inf) + p(params, f"dest.{nm}.trend") * x + disc
              + np.array([0.0, p(params, f"dest.{nm}.move")])[:, None, None, None]
              + np.array([p(params, f"dest.{nm}.age.{a}") for a in range(A.N_AGE)])[None, :, None, None]
              + np.array([p(params, f"dest.{nm}.need.{n}") for n in range(A.N_NEED)])[None, None, :, None]
              + np.array([0.0, p(params, f"dest.{nm}.uasc")])[None, None, None, :])
        dest[..., j] = np.exp(lw)
    tot = dest.sum(axis=-1, keepdims=True)
    if np.any(tot <= 0):
        raise ValueError("dest.*: every (kind, age band, need band, uasc) cell needs at least one placement with "
                         "a finite weight")
    dest_thr = to_threshold(np.cumsum(dest / tot, axis=-1))
    dest_thr[..., -1] = np.uint32(U32 - 1)

    short = np.array([p(params, "care.short_stay.p") * np.exp(p(params, f"care.short_stay.age.{a}"))
                      for a in range(A.N_AGE)])
    agency = np.zeros(S.N_STATES)
    agency[S.FOSTER] = p(params, "provider.foster.agency_share")
    agency[S.RESIDENTIAL_HOME] = p(params, "provider.childrens_home.private_share")
    agency[S.SEMI_INDEPENDENT] = p(params, "provider.semi_independent.private_share")
    return HazardTables(thr=thr, thr_total=np.ascontiguousarray(thr[:, -1]), event_of_slot=E.EVENT_OF_SLOT.copy(), dest_thr=dest_thr,
                        dest_state=E.DEST_STATES.copy(), short_thr=to_threshold(short),
                        agency_thr=to_threshold(agency), monthly_prob=probs)


def row_index(state: int, age_band: int, need: int, uasc: int, prev: int, epi_band: int, plc_band: int) -> int:
    """Row of ``HazardTables.thr`` for a child's covariates (the kernel inlines the same arithmetic)."""
    return ((((((state * A.N_AGE + age_band) * A.N_NEED + need) * 2 + uasc) * A.N_PREV + prev) * A.N_EPI
             + epi_band) * A.N_PLC + plc_band)
