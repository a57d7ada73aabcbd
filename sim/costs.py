"""Unit costs: weekly cost per state, provider and need band, and the price path to cash (DESIGN §2, Costs).

Every number lives in ``calibration/parameter_register.csv`` under ``cost.``:
  * ``cost.week.<cost_key>`` or ``cost.week.<cost_key>.<provider>`` — GBP per child per week in the prices of
    the financial year ending ``cost.price_year_ending`` (2023-24), where ``cost_key`` is the state's column in
    ``agents/states.csv`` and provider is ``la`` (the council's own provision) or ``independent`` (independent
    fostering agency, private/voluntary home or provider: the child's FLAG_AGENCY bit);
  * ``cost.need.index.<band>`` — relative placement cost of each latent need band (in-care states only:
    allowances and casework do not vary with need). The indices are normalised so that their mean over the
    arrival need mix (``need.share.<band>``) is 1, so the sourced unit costs stay the average child's cost;
  * ``cost.inflation.annual`` — the labelled inflation path (no deflator series is in the data): cash prices of
    financial year ending Y are ``(1 + rate) ** (Y - price_year_ending)`` times the base-year prices.
Child-months accumulated by the kernel (``Result.cm``) are priced afterwards with ``WEEKS_PER_MONTH``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from agents import attributes as A
from agents import states as S

PROVIDERS = ("la", "independent")      # index = the child's FLAG_AGENCY bit
WEEKS_PER_MONTH = 52.1775 / 12.0       # mean Gregorian year (365.2425 days) / 7, per month
PREFIX_WEEK = "cost.week."
PREFIX_NEED = "cost.need.index."
INFLATION = "cost.inflation.annual"
PRICE_YEAR = "cost.price_year_ending"


class CostError(ValueError):
    """A cost parameter is missing or invalid; the message names the parameter and value."""


def _get(params: Mapping[str, float], name: str, why: str) -> float:
    """One parameter as a float, or a clear error naming it and where it is needed."""
    if name not in params:
        raise CostError(f"parameters: missing {name!r} ({why}); add it to calibration/parameter_register.csv")
    v = float(params[name])
    if not np.isfinite(v):
        raise CostError(f"parameters: {name!r} = {params[name]!r} is not a finite number")
    return v


def state_weekly_cost(params: Mapping[str, float], state: S.State) -> tuple[float, float]:
    """Weekly cost of one state for (la, independent) providers: a provider pair, or one value for both."""
    base = PREFIX_WEEK + state.cost_key
    pair = [base + "." + p for p in PROVIDERS]
    if all(k in params for k in pair):
        out = tuple(_get(params, k, f"unit cost of state {state.name}") for k in pair)
    else:
        v = _get(params, base, f"unit cost of state {state.name} (agents/states.csv cost_key "
                               f"{state.cost_key!r}; or give {pair[0]!r} and {pair[1]!r})")
        out = (v, v)
    for k, v in zip(pair, out):
        if v < 0:
            raise CostError(f"parameters: unit cost {k!r} = {v} is negative")
    return out


def need_index(params: Mapping[str, float]) -> np.ndarray:
    """Relative placement cost by need band, normalised to mean 1 over the arrival need mix."""
    idx = np.array([_get(params, f"{PREFIX_NEED}{b}", "need-band cost index") for b in range(A.N_NEED)])
    share = np.array([_get(params, f"need.share.{b}", "weights of the need-band cost index")
                      for b in range(A.N_NEED)])
    if (idx <= 0).any() or share.sum() <= 0:
        raise CostError(f"parameters: need cost indices {idx.tolist()} must be > 0 and need shares "
                        f"{share.tolist()} must not all be 0")
    return idx / float(np.dot(idx, share / share.sum()))


def unit_cost_table(params: Mapping[str, float]) -> np.ndarray:
    """Weekly unit costs in base-year (2023-24) prices, shape [N_STATES, 2 providers, N_NEED]."""
    need = need_index(params)
    table = np.zeros((S.N_STATES, len(PROVIDERS), A.N_NEED))
    for st in S.STATES:
        la, ind = state_weekly_cost(params, st)
        mult = need if st.in_care else np.ones(A.N_NEED)
        table[st.code, 0] = la * mult
        table[st.code, 1] = ind * mult
    return table


def price_year_ending(params: Mapping[str, float]) -> int:
    """The financial year (ending March) whose prices the unit costs are in (2024 = 2023-24)."""
    return int(_get(params, PRICE_YEAR, "price base of the unit costs"))


def inflation_rate(params: Mapping[str, float]) -> float:
    """The labelled annual inflation rate of children's services prices (base year to cash)."""
    rate = _get(params, INFLATION, "inflation path from base-year prices to cash")
    if rate <= -1.0:
        raise CostError(f"parameters: {INFLATION!r} = {rate} must be above -1")
    return rate


def _growth(rate: float, year: int, base_year: int) -> float:
    return float((1.0 + rate) ** (int(year) - int(base_year)))


def cash_factor(params: Mapping[str, float], financial_year_ending: int) -> float:
    """Multiplier from base-year prices to cash prices of the financial year ending March ``financial_year_ending``."""
    return _growth(inflation_rate(params), financial_year_ending, price_year_ending(params))


def price_label(price_year: int) -> str:
    """Measure suffix for the prices of a financial year, e.g. 2024 -> ``2023_24``."""
    return f"{price_year - 1}_{price_year % 100:02d}"


@dataclass(frozen=True)
class UnitCosts:
    """Unit costs ready for pricing: the weekly table plus the inflation path (what ``sim.observe`` needs)."""
    weekly: np.ndarray          # [N_STATES, 2, N_NEED], GBP per week, base-year prices
    inflation: float
    price_year_ending: int

    @classmethod
    def from_params(cls, params: Mapping[str, float]) -> "UnitCosts":
        return cls(unit_cost_table(params), inflation_rate(params), price_year_ending(params))

    def cash_factor(self, financial_year_ending: int) -> float:
        return _growth(self.inflation, financial_year_ending, self.price_year_ending)


def monthly_cost(cm: np.ndarray, weekly: np.ndarray) -> np.ndarray:
    """Cost by month and state in base-year prices from child-months ``cm`` [month, state, provider, need]."""
    if cm.shape[1:] != weekly.shape:
        raise CostError(f"child-months have shape {cm.shape[1:]} per month but the unit-cost table is {weekly.shape}")
    return np.einsum("mspn,spn->ms", cm.astype(np.float64), weekly) * WEEKS_PER_MONTH
