"""With age, duration, need, UASC, previous-episode and trend effects off, the engine is a Markov chain.

A hand-built parameter dict gives every channel a constant monthly log hazard (some states differ through
``.state.*`` effects; a few structural zeros, none of them age-dependent) and age-independent placement
weights. The transition matrix P over the 13 live states plus an absorbing "left the model" state is derived
here from those numbers alone (competing risks p_k = h_k / H * (1 - exp(-H)), what each event does written
out from DESIGN §2), not from the compiled tables. One million children run through the numba kernel; the
occupancy after t months must equal n * p0 P^t within 4 standard errors, sqrt(n p (1 - p)) per state (a
sum of independent Bernoullis with mean n p has variance at most n p (1 - p)).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from agents import states as S
from agents.hazards import compile_tables
from sim.cohort import make_cohort_from_arrays, run_cohort

N = 1_000_000
SEED = 20240331
MONTHS = 12
CHECK_T = (1, 3, 6, 12)
Z = 4.0
AGE0 = 60            # 5 years: everyone stays in hazard age band 5-9 for the whole horizon
YEAR = 2020          # any year: trend effects are zero
LEFT = S.N_STATES    # index of the absorbing "left the model" state
NS = S.N_STATES + 1
NEG = -math.inf
L = math.log

CARE = [s.name for s in S.STATES if s.in_care]
DEST = [nm for nm in CARE if nm != "PLACED_FOR_ADOPTION"]   # placements reachable by entry or move

# constant monthly hazards (per month), chosen so one year moves a good share of children between states
PARAMS: dict[str, float] = {
    "cin.escalate.base": L(0.03), "cin.enter_care.base": L(0.012), "cin.close.base": L(0.08),
    "cpp.enter_care.base": L(0.04), "cpp.end.base": L(0.07),
    "returned.reenter.base": L(0.025), "korder.breakdown.base": L(0.006),
    "care.move.base": L(0.04), "care.move.state.RESIDENTIAL_HOME": L(2.0),
    "care.move.state.PLACED_FOR_ADOPTION": NEG,
    "care.to_adoption.base": L(0.02), "care.to_adoption.state.PLACED_FOR_ADOPTION": NEG,
    "care.to_adoption.state.SEMI_INDEPENDENT": NEG, "care.to_adoption.state.INDEPENDENT_LIVING": NEG,
    "care.adopted.base": L(0.1),
    "care.sgo_cao.base": L(0.008), "care.sgo_cao.state.KINSHIP": L(5.0),
    "care.reunified.base": L(0.03), "care.reunified.state.PLACED_WITH_PARENTS": L(3.0),
    "care.reunified.state.PLACED_FOR_ADOPTION": NEG,
    "care.other_exit.base": L(0.005),
    "care.transferred.base": L(0.01),
    # care.left_care.* absent: a structural zero at every age
    "dest.KINSHIP.base": L(0.15), "dest.FOSTER.base": 0.0, "dest.RESIDENTIAL_HOME.base": L(0.08),
    "dest.RESIDENTIAL_OTHER.base": L(0.03), "dest.SEMI_INDEPENDENT.base": L(0.05),
    "dest.INDEPENDENT_LIVING.base": L(0.03), "dest.PLACED_WITH_PARENTS.base": L(0.06),
    "dest.OTHER_IN_CARE.base": L(0.02), "dest.PLACED_WITH_PARENTS.move": L(3.0),
    "dest.FOSTER.move": L(0.5),
    "care.short_stay.p": 0.0,
    "provider.foster.agency_share": 0.4, "provider.childrens_home.private_share": 0.8,
    "provider.semi_independent.private_share": 0.7,
}
for _nm in CARE:
    if _nm != "PLACED_FOR_ADOPTION":
        PARAMS[f"care.adopted.state.{_nm}"] = NEG


def _h(channel: str, state: str) -> float:
    """Monthly hazard of a channel in a state, straight from PARAMS (missing base = structural zero)."""
    return math.exp(PARAMS.get(f"{channel}.base", NEG) + PARAMS.get(f"{channel}.state.{state}", 0.0))


def _dest(move: bool) -> np.ndarray:
    """Placement distribution over states for an entry (move=False) or a move."""
    out = np.zeros(NS)
    for nm in DEST:
        out[S.CODE[nm]] = math.exp(PARAMS.get(f"dest.{nm}.base", NEG) + (PARAMS.get(f"dest.{nm}.move", 0.0)
                                                                          if move else 0.0))
    return out / out.sum()


def _unit(code: int) -> np.ndarray:
    v = np.zeros(NS)
    v[code] = 1.0
    return v


def transition_matrix(competing: bool = True) -> np.ndarray:
    """P[s, s'] from the parameter values; what each event does is written out from DESIGN §2."""
    entry, move = _dest(False), _dest(True)
    left = _unit(LEFT)
    channels: dict[str, list[tuple[str, np.ndarray]]] = {
        "AT_HOME": [("cin.escalate", _unit(S.CODE["EDGE_OF_CARE"])), ("cin.enter_care", entry),
                    ("cin.close", left)],
        "EDGE_OF_CARE": [("cpp.enter_care", entry), ("cpp.end", _unit(S.CODE["AT_HOME"]))],
        "RETURNED_HOME": [("returned.reenter", entry)],
        "KINSHIP_ORDER": [("korder.breakdown", entry)],
    }
    for nm in CARE:
        channels[nm] = [("care.move", move), ("care.to_adoption", _unit(S.CODE["PLACED_FOR_ADOPTION"])),
                        ("care.adopted", left), ("care.sgo_cao", _unit(S.CODE["KINSHIP_ORDER"])),
                        ("care.reunified", _unit(S.CODE["RETURNED_HOME"])), ("care.left_care", left),
                        ("care.other_exit", left), ("care.transferred", _unit(S.CODE[nm]))]
    P = np.zeros((NS, NS))
    P[LEFT, LEFT] = 1.0
    for nm, chans in channels.items():
        s = S.CODE[nm]
        h = np.array([_h(ch, nm) for ch, _ in chans])
        H = h.sum()
        pk = h / H * (1.0 - math.exp(-H)) if competing else h
        for p_k, (_, dest) in zip(pk, chans):
            P[s] += p_k * dest
        P[s, s] += 1.0 - pk.sum()
    assert np.allclose(P.sum(axis=1), 1.0)
    return P


@pytest.fixture(scope="module")
def occupancy():
    """One million children, spread evenly over the 13 states, with every other attribute varied."""
    k = np.arange(N)
    pop = make_cohort_from_arrays(state=k % S.N_STATES, age_months=AGE0 + (k % 7) // 3, need=k % 4,
                                  uasc=(k // 13) % 2, prev=k % 3, epi=k % 61, plc=(k * 7) % 37, agency=k % 2,
                                  male=(k // 2) % 2)
    occ = run_cohort(pop, compile_tables(PARAMS, YEAR), SEED, MONTHS, returned_max=10_000)
    return occ


def _z(occ: np.ndarray, P: np.ndarray, t: int) -> np.ndarray:
    p0 = occ[0] / N
    pt = p0 @ np.linalg.matrix_power(P, t)
    sd = np.sqrt(N * pt * (1.0 - pt))
    diff = occ[t] - N * pt
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, diff / sd, np.where(diff == 0, 0.0, np.inf))


def test_ages_stay_in_one_hazard_band():
    assert AGE0 // 12 >= 5 and (AGE0 + 2 + MONTHS) // 12 < 10


def test_initial_distribution_is_what_was_asked(occupancy):
    expected = np.bincount(np.arange(N) % S.N_STATES, minlength=NS)
    assert np.array_equal(occupancy[0], expected)


@pytest.mark.parametrize("t", CHECK_T)
def test_occupancy_matches_markov_chain(occupancy, t):
    z = _z(occupancy, transition_matrix(), t)
    bad = {(S.NAMES[i] if i < S.N_STATES else "LEFT"): round(float(v), 2) for i, v in enumerate(z) if abs(v) > Z}
    assert not bad, f"month {t}: states more than {Z} SE from n * p0 P^t: {bad}"


def test_every_state_is_occupied_and_moving(occupancy):
    """Guards the test's power: every state is reached and the chain has moved far from p0 by month 12."""
    P = transition_matrix()
    pt = (occupancy[0] / N) @ np.linalg.matrix_power(P, MONTHS)
    assert np.all(pt > 1e-3)
    assert np.all(occupancy[MONTHS] > 0)
    assert np.abs(occupancy[MONTHS] - occupancy[0]).sum() > 0.2 * N


def test_wrong_discretisation_is_detected(occupancy):
    """Power check: using p_k = h_k (no competing-risk correction) must be rejected at the same 4 SE."""
    z = _z(occupancy, transition_matrix(competing=False), MONTHS)
    assert np.max(np.abs(z)) > Z
