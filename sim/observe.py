"""Observation model: simulated children become DfE counts (DESIGN §2, "Observation model").

``tidy(result, ...)`` turns one ``sim.engine.Result`` into a tidy table of published-style measures, and
``observed()`` puts the DfE series from ``calibration/data/dfe`` on the same keys, so fan charts and the
calibration compare like with like. Columns: scenario, replicate, draw, year, measure, scheme, category,
age_band, uasc, la, value (England counts: Result counts / Result.scale; GBP for costs).

Conventions
  * ``scheme``: ``model`` (the model's own categories: ``agents/states.csv`` model_category, cessation reasons
    ``agents.events.CEASE_REASONS``, costs, individuals), ``dfe_old`` (2011-2022 placement categories) or
    ``dfe_current`` (2020-2024 placement categories, and every DfE measure without a category breakdown:
    CIN, CPP, UASC, the age and UASC margins, starts and cessations).
  * Margins: by category (age_band "all", uasc "all"); by age band (category "total", uasc "all"); by UASC status
    (category "total", age_band "all", uasc "uasc" / "non_uasc"). ``uasc_31mar`` rows carry uasc "uasc".
  * Age bands: stocks and starts use DfE's 5 bands (``AGE_LABELS5``); cessations the 7 bands (``AGE_LABELS7``).
  * State RESIDENTIAL_OTHER covers DfE ``other_residential`` and ``residential_schools``: both schemes report the
    two combined under ``other_residential`` (here and in ``observed()``).
  * ``residential_supported_other`` (dfe_current) is the 2024 grouping of the states whose ``dfe_2024_group``
    says so (secure and children's homes, other residential, independent/semi-independent, other placements);
    it overlaps the placement categories, so only the placement categories add up to ``total``.
  * Years: stocks at 31 March of every year (2015 = the initial stock); flows and costs for years ending
    31 March from 2016 (months 12*(Y-2016)+1 .. 12*(Y-2015)); costs per financial year (April Y-1 to March Y).
  * LA rows (``la`` = 2024 ONS code) carry only ``cla_31mar`` totals and only with ``by_la=True``; national rows
    have la "ENG".
  * Foster capacity (runs with the capacity constraint on, ``agents/capacity.py``), scheme ``model``, category
    ``total`` (the run's area) and each region's ONS code (``capacity.REGION_CODES``; the regions of the run's
    LAs): ``foster_capacity_usable`` usable mainstream foster places and
    ``foster_capacity_occupied`` children in FOSTER, both in March (31 March); ``foster_capacity_entrants``
    children who would have entered FOSTER from another state (stays under a month included) and
    ``foster_capacity_redirected`` those placed in residential care for want of a place, in the year. Years
    from 2016.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from agents import attributes as A
from agents import capacity as CAP
from agents import events as E
from agents import states as S
from calibration import dfe
from sim import costs as C
from sim import kernel

COLUMNS = ("scenario", "replicate", "draw", "year", "measure", "scheme", "category", "age_band", "uasc", "la",
           "value")
KEYS = ("measure", "scheme", "category", "age_band", "uasc", "la")
ALL, TOTAL, ENGLAND = "all", "total", "ENG"
MODEL, OLD, CURRENT = "model", "dfe_old", "dfe_current"
UASC_LABELS = ("non_uasc", "uasc")  # index = the child's UASC flag
GROUP_2024 = "residential_supported_other"
RECODED_YEAR = 2024  # DfE recoded supported accommodation / "other placements": the grouping is the comparison

# DfE cessation reasons, harmonised into groups that the model's reasons map onto one to one (or many to one)
CEASE_GROUPS: dict[str, tuple[str, ...]] = {
    "adopted": ("adopted", "adopted_unopposed", "adopted_consent_dispensed"),
    "sgo_cao": ("sgo", "sgo_former_foster_carers", "sgo_other_carers", "residence_or_child_arrangement_order"),
    "returned_home": ("returned_home_planned", "returned_home_unplanned", "left_to_live_with_relatives_no_pr"),
    "left_care_or_aged_out": ("independent_living_supported", "independent_living_unsupported",
                              "aged_18_remained_with_carers", "transferred_adult_residential", "other_reason"),
    "care_taken_by_another_la": ("care_taken_by_another_la",),
    "other_exit": ("sentenced_to_custody", "remand_ended", "age_assessment_18_plus", "moved_abroad", "died"),
}
MODEL_REASON_GROUP: dict[str, str] = {
    "adopted": "adopted", "sgo_cao": "sgo_cao", "reunified": "returned_home",
    "left_care_16_17": "left_care_or_aged_out", "aged_out": "left_care_or_aged_out",
    "transferred": "care_taken_by_another_la", "other_exit": "other_exit",
}
# published placement categories that one model state covers (RESIDENTIAL_OTHER: R1-R5 and S1)
RAW_PARTS: dict[str, tuple[str, ...]] = {"other_residential": ("other_residential", "residential_schools")}


def _check_reason_map() -> None:
    missing = [r for r in E.CEASE_REASONS if MODEL_REASON_GROUP.get(r) not in CEASE_GROUPS]
    if missing:
        raise ValueError(f"sim/observe.py: cessation reason(s) {missing} of agents/events.CEASE_REASONS have no "
                         f"DfE group in MODEL_REASON_GROUP")


_check_reason_map()


def _groups(column: str, states: Sequence[S.State]) -> dict[str, list[int]]:
    """State codes grouped by one column of ``agents/states.csv``, in order of first appearance."""
    out: dict[str, list[int]] = {}
    for st in states:
        out.setdefault(getattr(st, column), []).append(st.code)
    return out


CARE = [st for st in S.STATES if st.in_care]
CARE_CODES = [st.code for st in CARE]
SCHEME_GROUPS = {MODEL: _groups("model_category", CARE), OLD: _groups("dfe_old", CARE),
                 CURRENT: _groups("dfe_current", CARE)}
GROUP_2024_CODES = [st.code for st in CARE if st.dfe_2024_group == GROUP_2024]
# DfE current-scheme categories inside the 2024 grouping (in state order)
GROUP_2024_CATEGORIES = tuple(dict.fromkeys(S.STATES[c].dfe_current for c in GROUP_2024_CODES))
COST_GROUPS = _groups("model_category", S.STATES)
CIN_CODES = [st.code for st in S.STATES if st.cin]
CPP_CODES = [st.code for st in S.STATES if st.cpp]
AGE7_TO_5 = np.eye(len(A.AGE_LABELS5))[A.AGE7_TO_AGE5]  # [7, 5] one-hot


# ---- building blocks ---------------------------------------------------------------------------------------
def _block(measure: str, scheme: str, years, values, labels: Sequence[str], along: str = "category",
           category: str = TOTAL, age_band: str = ALL, uasc: str = ALL, la: str = ENGLAND) -> pd.DataFrame:
    """Rows for ``values`` [year, label] with one key (``along``) varying over ``labels``, the others fixed."""
    years = np.asarray(years, dtype=np.int64)
    labels = list(labels)
    v = np.asarray(values, dtype=float).reshape(years.size, len(labels))
    keys = {"category": category, "age_band": age_band, "uasc": uasc, "la": la}
    keys[along] = np.tile(np.array(labels, dtype=object), years.size)
    return pd.DataFrame({"year": np.repeat(years, len(labels)), "measure": measure, "scheme": scheme, **keys,
                         "value": v.ravel()})


def _by_group(by_state: np.ndarray, groups: Mapping[str, list[int]]) -> np.ndarray:
    """Sum a [year, state] array over each group of states: [year, group]."""
    return np.stack([by_state[:, codes].sum(axis=1) for codes in groups.values()], axis=1)


def _category_rows(measure: str, scheme: str, years, by_state: np.ndarray, groups, total: np.ndarray,
                   extra: Mapping[str, list[int]] | None = None) -> pd.DataFrame:
    """Category rows of one scheme (groups, then optional overlapping groups, then total)."""
    parts = [_by_group(by_state, groups)]
    labels = list(groups)
    if extra:
        parts.append(_by_group(by_state, extra))
        labels += list(extra)
    parts.append(total[:, None])
    return _block(measure, scheme, years, np.concatenate(parts, axis=1), labels + [TOTAL])


def _margins(measure: str, years, age: np.ndarray, age_labels, uasc: np.ndarray) -> list[pd.DataFrame]:
    """Age-band and UASC margins (category total) in scheme dfe_current."""
    return [_block(measure, CURRENT, years, age, age_labels, along="age_band"),
            _block(measure, CURRENT, years, uasc, UASC_LABELS, along="uasc")]


# ---- measures ----------------------------------------------------------------------------------------------
def stock_rows(res, scale: float) -> list[pd.DataFrame]:
    """31 March stocks: CLA by scheme, age and UASC; UASC CLA; CIN (incl. CLA, CPP, open returned-home); CPP."""
    y = res.years
    stock = res.stock / scale                                   # [year, state, age7, uasc, provider]
    by_state = stock.sum(axis=(2, 3, 4))
    care = stock[:, CARE_CODES].sum(axis=(1, 4))                # [year, age7, uasc]
    cla = care.sum(axis=(1, 2))
    out = [_category_rows("cla_31mar", MODEL, y, by_state, SCHEME_GROUPS[MODEL], cla),
           _category_rows("cla_31mar", OLD, y, by_state, SCHEME_GROUPS[OLD], cla),
           _category_rows("cla_31mar", CURRENT, y, by_state, SCHEME_GROUPS[CURRENT], cla,
                          {GROUP_2024: GROUP_2024_CODES})]
    out += _margins("cla_31mar", y, care.sum(axis=2) @ AGE7_TO_5, A.AGE_LABELS5, care.sum(axis=1))
    out.append(_block("uasc_31mar", CURRENT, y, care.sum(axis=1)[:, 1], [TOTAL], uasc="uasc"))
    cin = by_state[:, CIN_CODES].sum(axis=1) + res.returned_open.sum(axis=(1, 2)) / scale
    out.append(_block("cin_31mar", CURRENT, y, cin, [TOTAL]))
    out.append(_block("cpp_31mar", CURRENT, y, by_state[:, CPP_CODES].sum(axis=1), [TOTAL]))
    return out


def start_rows(res, scale: float) -> list[pd.DataFrame]:
    """Children starting care (first start of the year): total, by age band and UASC, by entry placement."""
    y = res.years[1:]
    st = res.started[1:] / scale                                # [year, state, age7, uasc]
    total = st.sum(axis=(1, 2, 3))
    out = [_block("started", CURRENT, y, total, [TOTAL])]
    out += _margins("started", y, st.sum(axis=(1, 3)) @ AGE7_TO_5, A.AGE_LABELS5, st.sum(axis=(1, 2)))
    out.append(_category_rows("started", MODEL, y, st.sum(axis=(2, 3)), SCHEME_GROUPS[MODEL], total))
    return out


def cease_rows(res, scale: float) -> list[pd.DataFrame]:
    """Children ceasing care (last cessation of the year): by model reason, DfE group, age (7 bands), UASC."""
    y = res.years[1:]
    ce = res.ceased[1:] / scale                                 # [year, reason, age7, uasc]
    by_reason = ce.sum(axis=(2, 3))
    total = by_reason.sum(axis=1)
    reasons = {r: [i] for i, r in enumerate(E.CEASE_REASONS)}
    groups = {g: [E.CR[r] for r in E.CEASE_REASONS if MODEL_REASON_GROUP[r] == g] for g in CEASE_GROUPS}
    out = [_category_rows("ceased", MODEL, y, by_reason, reasons, total),
           _category_rows("ceased", CURRENT, y, by_reason, groups, total)]
    out += _margins("ceased", y, ce.sum(axis=(1, 3)), A.AGE_LABELS7, ce.sum(axis=(1, 2)))
    return out


def _by_year(monthly: np.ndarray, n_years: int, what: str) -> np.ndarray:
    """Sum monthly rows 1..12*n_years into DfE/financial years (row 0, the start, is skipped)."""
    if monthly.shape[0] != 12 * n_years + 1:
        raise ValueError(f"Result.{what}: {monthly.shape[0]} rows, expected 12 x {n_years} years + 1")
    return monthly[1:].reshape(n_years, 12, *monthly.shape[1:]).sum(axis=1)


def flow_rows(res, scale: float) -> list[pd.DataFrame]:
    """Child protection plans started (from the kernel's monthly counter) and individuals alive at 31 March."""
    y = res.years[1:]
    cpp = _by_year(res.flows, y.size, "flows")[:, kernel.F_CPP_START] / scale
    alive = res.alive[0::12][: res.years.size] / scale
    return [_block("cpp_started", CURRENT, y, cpp, [TOTAL]),
            _block("individuals_alive", MODEL, res.years, alive, [TOTAL])]


def capacity_rows(res, scale: float) -> list[pd.DataFrame]:
    """Foster capacity by region and in total: usable places and occupancy in March, entrants and redirected
    children in the year (England counts); none when the run had no capacity constraint."""
    log = getattr(res, "foster_capacity", None)
    if log is None:
        return []
    y = res.years[1:]
    labels = [CAP.REGION_CODES[r] for r in res.foster_capacity_regions] + [TOTAL]
    march = log[12::12][: y.size]                                   # [year, region, N_LOG], month 12 x yi
    flows = _by_year(log, y.size, "foster_capacity")

    def with_total(v):
        return np.concatenate([v, v.sum(axis=1, keepdims=True)], axis=1) / scale

    usable = march[:, :, CAP.PLACES]
    occupied = march[:, :, CAP.OCCUPIED] + march[:, :, CAP.TAKEN]
    return [_block(f"foster_capacity_{name}", MODEL, y, with_total(v), labels)
            for name, v in (("usable", usable), ("occupied", occupied), ("entrants", flows[:, :, CAP.ENTRANTS]),
                            ("redirected", flows[:, :, CAP.REDIRECTED]))]


def _covered_share(res, la_codes: Sequence[str] | None):
    """For LA-limited unit-cost levers: the covered LAs' share of the care stock at the last 31 March."""
    codes = list(la_codes or [])

    def share(lever, month: int) -> float:
        yi = min((month - 1) // 12, res.la_cla.shape[0] - 1)
        tot = res.la_cla[yi].sum()
        idx = [codes.index(c) for c in lever.las if c in codes]
        return float(res.la_cla[yi, idx].sum() / tot) if tot > 0 else 0.0
    return share


def cost_rows(res, scale: float, unit: C.UnitCosts, la_codes: Sequence[str] | None = None) -> list[pd.DataFrame]:
    """Costs per financial year by model category: base-year prices and cash (child-months x weekly cost,
    with the scenario's unit-cost levers month by month, x the real price path of the keys that have one)."""
    y = res.years[1:]
    weekly = unit.weekly
    if unit.levers:
        weekly = unit.monthly_weekly(res.cm.shape[0] - 1, _covered_share(res, la_codes))
    by_state = _by_year(C.monthly_cost(res.cm, weekly), y.size, "cm") / scale * unit.real_index(y)
    real = np.concatenate([_by_group(by_state, COST_GROUPS), by_state.sum(axis=1)[:, None]], axis=1)
    cash = real * np.array([unit.cash_factor(int(v)) for v in y])[:, None]
    labels = list(COST_GROUPS) + [TOTAL]
    return [_block("cost_gbp_cash", MODEL, y, cash, labels),
            _block(f"cost_gbp_{C.price_label(unit.price_year_ending)}", MODEL, y, real, labels)]


def la_rows(res, scale: float, la_codes: Sequence[str] | None) -> list[pd.DataFrame]:
    """CLA at 31 March by local authority (2024 ONS codes)."""
    if la_codes is None or len(la_codes) != res.la_cla.shape[1]:
        got = "none" if la_codes is None else len(la_codes)
        raise ValueError(f"tidy(by_la=True): la_codes must list one code per Result.la_cla column "
                         f"({res.la_cla.shape[1]}); got {got} (use calibration.inputs.ModelInputs.la_codes)")
    y = res.years
    return [_block("cla_31mar", CURRENT, y, res.la_cla / scale, [str(c) for c in la_codes], along="la")]


def _unit_costs(unit_costs) -> C.UnitCosts | None:
    if unit_costs is None or isinstance(unit_costs, C.UnitCosts):
        return unit_costs
    if isinstance(unit_costs, Mapping):
        return C.UnitCosts.from_params(unit_costs)
    raise TypeError(f"tidy: unit_costs must be None, a sim.costs.UnitCosts or a parameter mapping, "
                    f"not {type(unit_costs).__name__}")


def tidy(result, scenario: str, replicate: int, draw: int, unit_costs=None, by_la: bool = False,
         la_codes: Sequence[str] | None = None, area: str = ENGLAND) -> pd.DataFrame:
    """One replicate's Result as a tidy DataFrame of DfE-style measures (see the module docstring).

    ``unit_costs``: a ``sim.costs.UnitCosts`` or a parameter mapping (priced with ``UnitCosts.from_params``);
    with None, no cost rows are produced. ``area``: the ``la`` label of the whole-population rows ("ENG", or
    the 2024 code of the local authority a local run simulates).
    """
    scale = float(result.scale)
    if not scale > 0:
        raise ValueError(f"Result.scale must be > 0, got {result.scale!r}")
    parts = stock_rows(result, scale) + start_rows(result, scale) + cease_rows(result, scale)
    parts += flow_rows(result, scale) + capacity_rows(result, scale)
    unit = _unit_costs(unit_costs)
    if unit is not None:
        parts += cost_rows(result, scale, unit, la_codes)
    if by_la:
        parts += la_rows(result, scale, la_codes)
    df = pd.concat(parts, ignore_index=True)
    if area != ENGLAND:
        df.loc[df["la"] == ENGLAND, "la"] = str(area)
    df.insert(0, "scenario", str(scenario))
    df.insert(1, "replicate", int(replicate))
    df.insert(2, "draw", int(draw))
    return df[list(COLUMNS)]


# ---- the DfE observed series on the same keys --------------------------------------------------------------
OBS_COLUMNS = ("year", "measure", "scheme", "category", "age_band", "uasc", "la", "value", "source")


def _obs(df: pd.DataFrame, measure: str, scheme: str = CURRENT, along: str = "category",
         label: str = "category", **fixed) -> pd.DataFrame:
    """Observed rows from a DfE extract (year, value, source and a ``label`` column) onto the tidy keys;
    the label goes to key ``along``, the other keys are "total"/"all"/"ENG" unless given in ``fixed``."""
    d = df.dropna(subset=["value"])
    keys = {"category": TOTAL, "age_band": ALL, "uasc": ALL, "la": ENGLAND, **fixed}
    keys[along] = d[label].astype(str).to_numpy()
    return pd.DataFrame({"year": d["year"].astype(np.int64).to_numpy(), "measure": measure, "scheme": scheme,
                         **keys, "value": d["value"].astype(float).to_numpy(),
                         "source": d["source"].astype(str).to_numpy()})


def _sum_parts(df: pd.DataFrame, parts: Mapping[str, Sequence[str]], label: str,
               allow_empty: bool = False) -> pd.DataFrame:
    """Sum the published categories of each new category, year by year (each year sums the parts it publishes,
    e.g. 2015-2018's split adopted_*/sgo_*); 'z' (not applicable) counts as 0, another empty value drops the row."""
    d = df.copy()
    if "flag" in d:
        d.loc[d["value"].isna() & (d["flag"] == "z"), "value"] = 0.0
    rows = []
    for year, g in d.groupby("year"):
        vals = g.set_index("category")
        for new, cats in parts.items():
            present = [c for c in cats if c in vals.index]
            if not present or vals.loc[present, "value"].isna().any():
                continue
            src = "+".join(sorted(set(vals.loc[present, "source"].astype(str))))
            rows.append({"year": year, "category": new, "value": float(vals.loc[present, "value"].sum()),
                         "source": src})
    if not rows and allow_empty:
        return pd.DataFrame(columns=["year", "category", "value", "source"])
    if not rows:
        raise dfe.DataError(f"calibration/data/dfe: no {label} rows could be formed from categories "
                            f"{sorted(set(df['category']))}")
    return pd.DataFrame(rows)


def _check_covered(df: pd.DataFrame, parts: Mapping[str, Sequence[str]], label: str) -> None:
    """Every published category must belong to some tidy category, or the observed groups would be short."""
    covered = {c for cats in parts.values() for c in cats} | {TOTAL}
    unknown = sorted(set(df["category"]) - covered)
    if unknown:
        raise dfe.DataError(f"{label}: field 'category': {unknown} not mapped to any model category "
                            f"(sim/observe.py)")


def _placement_parts(scheme: str) -> dict[str, tuple[str, ...]]:
    """Published categories making up each tidy placement category of a scheme (and the 2024 group)."""
    parts = {cat: RAW_PARTS.get(cat, (cat,)) for cat in SCHEME_GROUPS[scheme]}
    if scheme == CURRENT:
        parts[GROUP_2024] = tuple(raw for cat in GROUP_2024_CATEGORIES for raw in parts[cat])
    return parts


def _obs_cla() -> list[pd.DataFrame]:
    """CLA at 31 March: headline total, placements in both schemes, age bands, UASC."""
    name = "national_cla_31mar.csv"
    c = dfe.read(name)
    out = [_obs(c[c["measure"] == "total"], "cla_31mar")]
    for scheme, code in ((OLD, "old"), (CURRENT, "current")):
        p = c[(c["measure"] == "placement") & (c["scheme"] == code)]
        parts = _placement_parts(scheme)
        _check_covered(p, parts, f"calibration/data/dfe/{name} (placement, scheme {code})")
        out.append(_obs(_sum_parts(p, parts, f"{code}-scheme placement"), "cla_31mar", scheme))
        if scheme == OLD:
            out.append(_obs(p[p["category"] == TOTAL], "cla_31mar", OLD))
    age = c[(c["measure"] == "age_group") & (c["category"] != TOTAL)]
    out.append(_obs(age, "cla_31mar", along="age_band"))
    u = c[(c["measure"] == "uasc") & c["category"].isin(UASC_LABELS)]
    out.append(_obs(u, "cla_31mar", along="uasc"))
    out.append(_obs(u[u["category"] == "uasc"].assign(category=TOTAL), "uasc_31mar", uasc="uasc"))
    return out


def _obs_cin() -> list[pd.DataFrame]:
    c = dfe.read("national_cin_cp.csv")
    return [_obs(c[(c["measure"] == m) & (c["category"] == TOTAL)], m)
            for m in ("cin_31mar", "cpp_31mar", "cpp_started")]


def _obs_flows() -> list[pd.DataFrame]:
    """Starts and cessations: totals, by age, by UASC; cessations by harmonised reason group."""
    name = "national_cla_flows.csv"
    f = dfe.read(name)

    def rows(measure: str, breakdown: bool = False) -> pd.DataFrame:
        d = f[f["measure"] == measure]
        return d[d["category"] != TOTAL] if breakdown else d

    reasons = rows("ceased_by_reason")
    _check_covered(reasons, CEASE_GROUPS, f"calibration/data/dfe/{name} (ceased_by_reason)")
    age7 = rows("ceased_by_age", True)
    return [_obs(rows("started"), "started"),
            _obs(rows("started_by_age", True), "started", along="age_band"),
            _obs(rows("started_uasc", True), "started", along="uasc"),
            _obs(rows("ceased"), "ceased"),
            _obs(_sum_parts(reasons, CEASE_GROUPS, "ceased_by_reason group"), "ceased"),
            _obs(age7[age7["category"].isin(A.AGE_LABELS7)], "ceased", along="age_band"),
            _obs(rows("ceased_uasc", True), "ceased", along="uasc")]


def _obs_la() -> pd.DataFrame:
    la = dfe.read("la_cla.csv")
    t = la[(la["geographic_level"] == "Local authority") & (la["measure"] == TOTAL)]
    return _obs(t, "cla_31mar", along="la", label="new_la_code")


def area_of(summary: pd.DataFrame) -> str:
    """The area a run simulated: "ENG", or the local authority code of a local run (its only ``la`` label)."""
    labels = set(summary["la"].astype(str))
    return ENGLAND if ENGLAND in labels or not labels else sorted(labels)[0]


def local_rows(code: str) -> pd.DataFrame:
    """One local authority's rows of ``la_cla.csv`` (2024 code), or a clear error for an unknown code. An
    authority created after 2015 gets its earlier years from its predecessors by population share
    (``calibration.boundaries``; those rows' ``source`` starts with 'mapped')."""
    from calibration import boundaries
    la = dfe.read("la_cla.csv")
    d = la[(la["geographic_level"] == "Local authority") & (la["new_la_code"] == code)]
    if d.empty:
        raise dfe.DataError(f"calibration/data/dfe/la_cla.csv: field 'new_la_code': no local authority {code!r} "
                            f"(use a 2024 ONS code such as E06000017; `caresim calibrate --help` lists how to find them)")
    return boundaries.with_predecessors(d, code)


def _obs_local(code: str) -> list[pd.DataFrame]:
    """One LA's published series on the tidy keys (la = its code): CLA total, placements in both schemes, age
    bands, starts, cessations and cessations by reason group. Groups with a suppressed part are left out here
    (the calibration treats them as censored: calibration/local.py)."""
    d = local_rows(code)
    rows = lambda m: d[d["measure"] == m]  # noqa: E731
    out = [_obs(rows("total"), "cla_31mar", la=code)]
    for scheme, sch in ((OLD, "old"), (CURRENT, "current")):
        p = rows("placement")
        p = p[p["scheme"] == sch]
        if p.empty:
            continue
        parts = _placement_parts(scheme)
        _check_covered(p, parts, f"calibration/data/dfe/la_cla.csv ({code}, placement, scheme {sch})")
        out.append(_obs(_sum_parts(p, parts, f"{sch}-scheme placement", True), "cla_31mar", scheme,
                        la=code))
        if scheme == OLD:
            out.append(_obs(p[p["category"] == TOTAL], "cla_31mar", OLD, la=code))
    age = rows("age_group")
    out.append(_obs(age[age["category"] != TOTAL], "cla_31mar", along="age_band", la=code))
    out += [_obs(rows("started"), "started", la=code), _obs(rows("ceased"), "ceased", la=code)]
    reasons = rows("ceased_by_reason")
    _check_covered(reasons, CEASE_GROUPS, f"calibration/data/dfe/la_cla.csv ({code}, ceased_by_reason)")
    out.append(_obs(_sum_parts(reasons, CEASE_GROUPS, "ceased_by_reason group", True), "ceased", la=code))
    return out


def observed(by_la: bool = False, area: str = ENGLAND) -> pd.DataFrame:
    """DfE observed series on the tidy keys (plus ``source``): what fan charts and calibration compare against.

    Ceased by age keeps the 7 bands (2015's merged 16_and_over is left out); LA rows (``by_la``) are CLA totals
    for every authority in ``la_cla.csv`` under its 2024 code (predecessor authorities keep their own codes).
    ``area``: "ENG" (national series), or a 2024 LA code for that authority's own published series.
    """
    if area != ENGLAND:
        df = pd.concat(_obs_local(area), ignore_index=True)
        return df[list(OBS_COLUMNS)].sort_values(list(KEYS) + ["year"], kind="stable").reset_index(drop=True)
    parts = _obs_cla() + _obs_cin() + _obs_flows()
    if by_la:
        parts.append(_obs_la())
    df = pd.concat(parts, ignore_index=True)
    return df[list(OBS_COLUMNS)].sort_values(list(KEYS) + ["year"], kind="stable").reset_index(drop=True)
