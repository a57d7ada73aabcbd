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
    financial year ending Y are ``(1 + rate) ** (Y - price_year_ending)`` times the base-year prices;
  * ``cost.real_growth.<cost_key>`` and ``cost.real_growth.<cost_key>.future`` — real price growth of one
    cost key above that path (children's homes: NAO's cost per place rose 7.3% a year in real terms from 2019-20
    to 2023-24): before the price year the key's real price of year Y is ``(1 + g) ** (Y - price_year_ending)``
    times its base-year price; after it, ``(1 + future) ** (Y - price_year_ending)`` (a labelled prior).
Child-months accumulated by the kernel (``Result.cm``) are priced afterwards with ``WEEKS_PER_MONTH``.

Present values (HM Treasury Green Book): ``cost.discount.rate`` (3.5% a year) discounts real amounts (unit-cost
prices) to year 0 = the financial year ending ``cost.discount.base_year_ending``. ``investment_costs`` turns a
reform's investment schedule (financial year -> GBP, in a stated price year or cash) into real, cash and
discounted amounts; ``present_value`` discounts any real stream (e.g. the ``cost_gbp_2023_24`` rows of a run).
Reconciliation with MHCLG RO3 spending lines: ``calibration/ro3.py``.
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
PREFIX_REAL = "cost.real_growth."


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


def real_growth(params: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Real price growth by cost key, (before the price year, after it), for the keys the register gives."""
    keys = {k[len(PREFIX_REAL):].removesuffix(".future") for k in params if k.startswith(PREFIX_REAL)}
    known = {st.cost_key for st in S.STATES}
    out = {}
    for key in sorted(keys):
        if key not in known:
            raise CostError(f"parameters: {PREFIX_REAL + key!r} names cost key {key!r}, which no state has "
                            f"(agents/states.csv cost_key: {sorted(known)})")
        pair = tuple(_get(params, PREFIX_REAL + key + sfx, f"real price growth of {key}") for sfx in ("", ".future"))
        for sfx, g in zip(("", ".future"), pair):
            if g <= -1.0:
                raise CostError(f"parameters: {PREFIX_REAL + key + sfx!r} = {g} must be above -1")
        out[key] = pair
    return out


def cash_factor(params: Mapping[str, float], financial_year_ending: int) -> float:
    """Multiplier from base-year prices to cash prices of the financial year ending March ``financial_year_ending``."""
    return _growth(inflation_rate(params), financial_year_ending, price_year_ending(params))


def price_label(price_year: int) -> str:
    """Measure suffix for the prices of a financial year, e.g. 2024 -> ``2023_24``."""
    return f"{price_year - 1}_{price_year % 100:02d}"


@dataclass(frozen=True)
class UnitCosts:
    """Unit costs ready for pricing: the weekly table plus the inflation path (what ``sim.observe`` needs),
    and a scenario's unit-cost levers (``agents/levers.py``, kind ``unit_cost``), applied month by month."""
    weekly: np.ndarray          # [N_STATES, 2, N_NEED], GBP per week, base-year prices
    inflation: float
    price_year_ending: int
    levers: tuple = ()
    real_growth: tuple = ()     # ((cost_key, growth before the price year, growth after it), ...)

    @classmethod
    def from_params(cls, params: Mapping[str, float], levers=()) -> "UnitCosts":
        return cls(unit_cost_table(params), inflation_rate(params), price_year_ending(params),
                   tuple(lv for lv in levers if lv.kind == "unit_cost"),
                   tuple((k, *g) for k, g in real_growth(params).items()))

    def real_index(self, years) -> np.ndarray:
        """Real price of each state in each financial year relative to the base year [len(years), N_STATES]:
        1 except for the cost keys with a real growth path."""
        y = np.asarray(years, dtype=np.int64) - self.price_year_ending
        out = np.ones((y.size, S.N_STATES))
        for key, before, after in self.real_growth:
            f = np.where(y < 0, (1.0 + before) ** y.astype(float), (1.0 + after) ** y.astype(float))
            for st in S.STATES:
                if st.cost_key == key:
                    out[:, st.code] = f
        return out

    def monthly_weekly(self, months: int, covered_share=None) -> np.ndarray:
        """Weekly costs for model months 0..months [months + 1, N_STATES, 2, N_NEED] with the unit-cost levers:
        from its start a lever multiplies (``multiplier``) or adds GBP a week (``addition``) to the unit cost of
        the states with its ``cost_key`` (one provider or both), ramped over its phase-in. A lever limited to
        named LAs acts on ``covered_share(lever, month)`` of the child-months (their share of the care stock):
        the expected cost, as child-months are not priced by LA."""
        from agents.levers import ramp
        out = np.broadcast_to(self.weekly, (months + 1,) + self.weekly.shape).copy()
        for lv in self.levers:
            states = [st.code for st in S.STATES if st.cost_key == lv.cost_key]
            prov = [PROVIDERS.index(lv.provider)] if lv.provider else list(range(len(PROVIDERS)))
            for m in range(lv.first_month, months + 1):
                f = ramp(lv, m) * (covered_share(lv, m) if lv.las and covered_share is not None else 1.0)
                for s in states:
                    for p in prov:
                        if lv.multiplier is not None:
                            out[m, s, p] *= 1.0 + f * (lv.multiplier - 1.0)
                        else:
                            out[m, s, p] = np.maximum(out[m, s, p] + f * lv.addition, 0.0)
        return out

    def cash_factor(self, financial_year_ending: int) -> float:
        return _growth(self.inflation, financial_year_ending, self.price_year_ending)


def monthly_cost(cm: np.ndarray, weekly: np.ndarray) -> np.ndarray:
    """Cost by month and state in base-year prices from child-months ``cm`` [month, state, provider, need];
    ``weekly`` is one table [state, provider, need] or one per month [month, state, provider, need]."""
    if weekly.ndim == cm.ndim and weekly.shape == cm.shape:
        return np.einsum("mspn,mspn->ms", cm.astype(np.float64), weekly) * WEEKS_PER_MONTH
    if cm.shape[1:] != weekly.shape:
        raise CostError(f"child-months have shape {cm.shape[1:]} per month but the unit-cost table is {weekly.shape}")
    return np.einsum("mspn,spn->ms", cm.astype(np.float64), weekly) * WEEKS_PER_MONTH


# ---- discounting and investment costs (HM Treasury Green Book) ----------------------------------------------
DISCOUNT_RATE = "cost.discount.rate"
DISCOUNT_BASE = "cost.discount.base_year_ending"
GREEN_BOOK_HORIZON = 30  # the Green Book's 3.5% applies to years 0-30; later years use lower rates (not modelled)


def discount_rate(params: Mapping[str, float]) -> float:
    """The Green Book discount rate (``cost.discount.rate``, 3.5% a year)."""
    rate = _get(params, DISCOUNT_RATE, "present values (HM Treasury Green Book discount rate)")
    if not 0.0 <= rate < 1.0:
        raise CostError(f"parameters: {DISCOUNT_RATE!r} = {rate} must be in [0, 1)")
    return rate


def discount_base_year(params: Mapping[str, float]) -> int:
    """Year 0 of present values: the financial year (ending March) that is not discounted."""
    return int(_get(params, DISCOUNT_BASE, "year 0 of present values"))


def discount_factors(years, rate: float, base_year: int) -> np.ndarray:
    """Green Book discount factors ``1 / (1 + rate) ** (year - base_year)`` for financial years ending March.

    Years before ``base_year`` get factors above 1 (compounded forward to year 0). Years more than
    ``GREEN_BOOK_HORIZON`` after year 0 are refused: the Green Book lowers the rate after 30 years."""
    y = np.asarray(years, dtype=np.int64)
    t = y - int(base_year)
    if (t > GREEN_BOOK_HORIZON).any():
        bad = int(y[t > GREEN_BOOK_HORIZON][0])
        raise CostError(f"present value: year {bad} is more than {GREEN_BOOK_HORIZON} years after year 0 "
                        f"({base_year}); the Green Book's rate falls after 30 years and that is not modelled")
    return (1.0 + float(rate)) ** (-t.astype(np.float64))


def _schedule(schedule: Mapping[int, float], what: str) -> tuple[np.ndarray, np.ndarray]:
    """A year -> GBP mapping as sorted (years, amounts), or a clear error naming the year and value."""
    if not isinstance(schedule, Mapping) or not schedule:
        raise CostError(f"{what}: expected a non-empty mapping of financial year (ending March) -> GBP, "
                        f"got {schedule!r}")
    years, amounts = [], []
    for y, v in schedule.items():
        try:
            yi, vf = int(y), float(v)
        except (TypeError, ValueError):
            raise CostError(f"{what}: year {y!r} -> {v!r} is not an integer year and a number") from None
        if yi != y or not 2000 <= yi <= 2100:
            raise CostError(f"{what}: year {y!r} must be an integer financial year ending March, 2000-2100")
        if not np.isfinite(vf) or vf < 0:
            raise CostError(f"{what}: year {yi}: amount {v!r} must be a finite number >= 0 (GBP)")
        years.append(yi)
        amounts.append(vf)
    order = np.argsort(years)
    return np.array(years, dtype=np.int64)[order], np.array(amounts, dtype=np.float64)[order]


@dataclass(frozen=True)
class InvestmentCosts:
    """An investment schedule priced three ways, year by year (financial years ending March)."""
    years: np.ndarray
    real: np.ndarray        # GBP in the unit costs' prices (``cost.price_year_ending``, 2023-24)
    cash: np.ndarray        # GBP cash (nominal) in each year, on the labelled inflation path
    discounted: np.ndarray  # real x Green Book discount factor: each year's contribution to the present value
    price_year_ending: int
    discount_rate: float
    base_year: int

    @property
    def total_cash(self) -> float:
        return float(self.cash.sum())

    @property
    def present_value(self) -> float:
        """Present value at ``discount_rate`` in year 0 ``base_year``, in ``price_year_ending`` prices."""
        return float(self.discounted.sum())

    def as_rows(self) -> list[dict]:
        return [{"year": int(y), "real_gbp": float(r), "cash_gbp": float(c), "pv_gbp": float(d)}
                for y, r, c, d in zip(self.years, self.real, self.cash, self.discounted)]


def investment_costs(schedule: Mapping[int, float], price_year: int | None, params: Mapping[str, float],
                     base_year: int | None = None) -> InvestmentCosts:
    """Cash and present value of a reform's investment schedule.

    ``schedule``: financial year ending March -> GBP spent in that year. ``price_year``: the financial year
    (ending March) whose prices the amounts are in; ``None`` means the amounts are cash in their own year.
    Amounts are moved to the unit costs' prices (``cost.price_year_ending``) and to cash along the labelled
    inflation path (``cost.inflation.annual``), then discounted in real terms at ``cost.discount.rate``
    (Green Book 3.5%) to year 0 = ``base_year`` (default ``cost.discount.base_year_ending``).
    """
    years, amounts = _schedule(schedule, "investment schedule")
    infl, py = inflation_rate(params), price_year_ending(params)
    to_cash = np.array([_growth(infl, int(y), py) for y in years])  # base-year prices -> cash of year y
    real = amounts / (to_cash if price_year is None else _growth(infl, int(price_year), py))
    rate = discount_rate(params)
    base = discount_base_year(params) if base_year is None else int(base_year)
    disc = real * discount_factors(years, rate, base)
    return InvestmentCosts(years, real, real * to_cash, disc, py, rate, base)


def present_value(values: Mapping[int, float], params: Mapping[str, float], base_year: int | None = None) -> float:
    """Present value of a stream of GBP in the unit costs' prices (e.g. ``cost_gbp_2023_24`` rows by year), at
    the Green Book rate to year 0 ``base_year`` (default ``cost.discount.base_year_ending``)."""
    years = np.array([int(y) for y in values], dtype=np.int64)
    amounts = np.array([float(v) for v in values.values()], dtype=np.float64)
    if not np.isfinite(amounts).all():
        raise CostError(f"present value: values must be finite numbers, got {dict(values)!r}")
    base = discount_base_year(params) if base_year is None else int(base_year)
    return float(np.dot(amounts, discount_factors(years, discount_rate(params), base)))
