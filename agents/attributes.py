"""Child attributes and the bands that hazards and outputs use (DESIGN §2).

A child is one row of a struct-of-arrays population (``sim/population.py``):
  state u1, age_months u1 (0..215), flags u1 (sex, need band, UASC, provider), epi_months u1 (months in the
  current care episode; for RETURNED_HOME / KINSHIP_ORDER months since leaving care; for AT_HOME / EDGE months
  in the episode or plan), plc_months u1 (months in the current placement/state), prev_episodes u1, la u1,
  child_id u8 (stable, keyed by arrival), and three observation markers (start_year u1, cease_year u1,
  cease_cell u2). Durations are capped at 255 months, which exceeds any possible value below age 18.
"""
from __future__ import annotations

import numpy as np

MAX_AGE_MONTHS = 216  # 18th birthday: children leave the model (care leavers are counted as AGED_OUT)

# flags byte layout
FLAG_MALE = 1
NEED_SHIFT = 1          # bits 1-2: need band 0..3
NEED_MASK = 3 << NEED_SHIFT
FLAG_UASC = 1 << 3
FLAG_AGENCY = 1 << 4    # provider: independent fostering agency (FOSTER) or private/voluntary home (RESIDENTIAL_HOME)
N_NEED = 4

# hazard age bands (years): <1, 1-4, 5-9, 10-15, 16, 17; band 6 = 18+ is used only for cessations at 18
HAZ_AGE_EDGES_YEARS = (0, 1, 5, 10, 16, 17, 18)
N_AGE = 6
AGE_LABELS7 = ("under_1", "1_to_4", "5_to_9", "10_to_15", "16", "17", "18_and_over")
# DfE 31 March / starts age bands: the 16 and 17 bands merge into 16_and_over
AGE_LABELS5 = ("under_1", "1_to_4", "5_to_9", "10_to_15", "16_and_over")
AGE7_TO_AGE5 = np.array([0, 1, 2, 3, 4, 4, 4], dtype=np.int64)
YOUNG_BANDS = (0, 1)  # hazard age bands under 1 and 1-4: the entry routes' young-child trend (entry.young.trend)

# episode-duration bands (months) for the duration curve; the representative value feeds log1p(d)
EPI_EDGES = (0, 1, 2, 3, 6, 9, 12, 18, 24, 36, 60)
EPI_REP = np.array([0, 1, 2, 4, 7, 10, 14.5, 20.5, 29.5, 47.5, 84.0])
N_EPI = len(EPI_EDGES)
# placement-duration bands (months)
PLC_EDGES = (0, 3, 12, 24)
PLC_REP = np.array([1.0, 7.0, 17.5, 36.0])
N_PLC = len(PLC_EDGES)
N_PREV = 2  # previous care episodes: none / one or more


def _band_lookup(edges, n=256):
    out = np.zeros(n, dtype=np.uint8)
    for b, lo in enumerate(edges):
        out[lo:] = b
    return out


AGE_BAND_OF_MONTH = _band_lookup(tuple(12 * y for y in HAZ_AGE_EDGES_YEARS[:-1]))  # 0..5 for 0..215
AGE_BAND_OF_MONTH[MAX_AGE_MONTHS:] = 6
EPI_BAND_OF_MONTH = _band_lookup(EPI_EDGES)
PLC_BAND_OF_MONTH = _band_lookup(PLC_EDGES)


def age_band_years(age_years: int) -> int:
    """Hazard age band (0..6) of an age in completed years."""
    return int(AGE_BAND_OF_MONTH[min(12 * age_years, 255)])
