"""Exogenous model inputs built from data: population by age, UASC arrivals, LAs, 31 March 2015 margins."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration import boundaries, dfe

START_YEAR = 2015   # the stock date: 31 March 2015
DATA_END = 2024


@dataclass
class ModelInputs:
    """Everything the engine takes from data (not parameters)."""
    population: dict[int, np.ndarray]      # mid-year (ONS) children by single year of age 0..17
    uasc_arrivals: dict[int, float]        # new UASC arrivals by DfE year: starts less transfers (uasc_arrivals)
    la_codes: list[str]
    la_names: list[str]
    la_weights: np.ndarray                 # share of children looked after at 31 March 2024 by LA (2024 codes)
    init_cla_old: dict[str, float]         # 31 March 2015 CLA by old-scheme placement category
    init_age: dict[str, float]             # 31 March 2015 CLA by age band
    init_uasc: float
    init_cin: float
    init_cpp: float
    notes: list[str] = field(default_factory=list)
    area: str = "ENG"                      # "ENG", or the 2024 code of the local authority simulated
    uasc_share: float = 1.0                # the area's share of England's UASC arrivals (scales future arrivals)


def population_by_age(code: str | None = None) -> dict[int, np.ndarray]:
    """ONS 0-17 totals (POP_DFE, mid-2012..2024) split by the mean single-year shares of mid-2022/2023, for
    England or (``code``) one local authority (its own single-year shares)."""
    pop = dfe.read("population_0_17.csv")
    if code is None:
        eng = pop[(pop["geographic_level"] == "National") & (pop["sex"] == "persons")]
        tot = eng[eng["source"] == "POP_DFE"].drop_duplicates("year").set_index("year")["value"]
    else:
        eng = pop[(pop["geographic_level"] == "Local authority") & (pop["area_code"] == code)
                  & (pop["sex"] == "persons")]
        tot = boundaries.population_totals(code)  # a clear error for an unknown code
    single = eng[eng["source"].isin(["POP_MYE22", "POP_MYE23"]) & (eng["age"] != "0-17")].copy()
    single["age"] = single["age"].astype(int)
    shares = single.pivot_table(index="age", columns="year", values="value").mean(axis=1)
    shares = (shares / shares.sum()).reindex(range(18)).to_numpy()
    return {int(y): np.round(float(v) * shares).astype(np.int64) for y, v in tot.items()}


def uasc_starts() -> dict[int, float]:
    """UASC starts: published 2020-2024; 2015-2019 from absent-parenting (N8) starts (DESIGN §2, within ~5%)."""
    out = {int(y): float(v) for y, v in dfe.series("national_cla_flows.csv", "started_by_need",
                                                    "absent_parenting").items() if y < 2020}
    out.update({int(y): float(v) for y, v in dfe.series("national_cla_flows.csv", "started_uasc", "uasc").items()})
    return out


def uasc_arrivals() -> dict[int, float]:
    """New UASC arrivals by DfE year: UASC starts less the year's cessations to another LA's care
    (``care_taken_by_another_la``, mostly National Transfer Scheme transfers: 270 in 2016, 2,140 in 2024). A
    transferred child re-starts in the receiving LA, and the engine simulates that cessation + start itself
    (``care.transferred.*``); counting the re-starts again as arrivals would double them. Non-UASC transfers
    are subtracted too (no split is published): their share is what ``arrive.uasc.factor`` absorbs."""
    moved = dfe.series("national_cla_flows.csv", "ceased_by_reason", "care_taken_by_another_la")
    out = {}
    for y, v in uasc_starts().items():
        if y not in moved.index:
            raise dfe.DataError(f"calibration/data/dfe/national_cla_flows.csv: field 'category': no "
                                f"care_taken_by_another_la cessations for {y}, needed for UASC arrivals")
        out[y] = max(v - float(moved.loc[y]), 0.0)
    return out


def la_table() -> tuple[list[str], list[str], np.ndarray]:
    """The 2024 local authorities and each one's share of children looked after at 31 March 2024: the weights
    that place a new child in an LA. The stock, not the starts: starts are dominated in some LAs by
    unaccompanied children who move on (Kent: 2.3% of CLA, 8.3% of starts in 2024), and the foster capacity of
    each region (agents/capacity.py) must meet a regional population of children like the real one."""
    la = dfe.read("la_cla.csv")
    s = la[(la["geographic_level"] == "Local authority") & (la["measure"] == "total") & (la["year"] == DATA_END)]
    s = s.sort_values("new_la_code")
    w = s["value"].fillna(3.0).to_numpy(dtype=float)  # suppressed cells (1-5) taken at their midpoint
    return s["new_la_code"].tolist(), s["la_name"].tolist(), w / w.sum()


def build() -> ModelInputs:
    c = dfe.read("national_cla_31mar.csv")
    y = c[c["year"] == START_YEAR]
    old = y[(y["measure"] == "placement") & (y["scheme"] == "old") & (y["category"] != "total")]
    age = y[(y["measure"] == "age_group") & (y["category"] != "total")]
    codes, names, w = la_table()
    return ModelInputs(
        population=population_by_age(),
        uasc_arrivals=uasc_arrivals(),
        la_codes=codes, la_names=names, la_weights=w,
        init_cla_old=dict(zip(old["category"], old["value"].astype(float))),
        init_age=dict(zip(age["category"], age["value"].astype(float))),
        init_uasc=float(dfe.series("national_cla_31mar.csv", "uasc", "uasc").loc[START_YEAR]),
        init_cin=float(dfe.series("national_cin_cp.csv", "cin_31mar").loc[START_YEAR]),
        init_cpp=float(dfe.series("national_cin_cp.csv", "cpp_31mar").loc[START_YEAR]),
    )


def population_for_year(inputs: ModelInputs, dfe_year: int) -> np.ndarray:
    """Children by age during DfE year ``dfe_year`` (Apr y-1 .. Mar y): ONS mid-(y-1); held after the data."""
    last = max(inputs.population)
    return inputs.population[min(max(dfe_year - 1, min(inputs.population)), last)]


# ---- one local authority -------------------------------------------------------------------------------------
def _impute(rows, cats: list[str], total: float) -> dict[str, float]:
    """Published counts by category, suppressed cells ('c') sharing what the published total leaves over
    (equally; secondary suppression means a cell may exceed 5); 'z' and missing categories count as 0."""
    vals = {c: float(v) for c, v in zip(rows["category"], rows["value"]) if c in cats and v == v}
    hidden = [c for c, f in zip(rows["category"], rows["flag"]) if c in cats and f == "c"]
    left = max(total - sum(vals.values()), 0.0)
    out = {c: vals.get(c, 0.0) for c in cats}
    for c in hidden:
        out[c] = left / len(hidden)
    return out


def local(code: str) -> ModelInputs:
    """Inputs for one local authority (2024 code): its own population and 31 March 2015 stock (DfE la_cla.csv);
    England's UASC arrivals, CIN and CPP stocks scaled to it (not published by LA in the data):

    * UASC arrivals and the 2015 UASC stock by the LA's share of England's children (the National Transfer
      Scheme's aim is UASC at 0.1% of each LA's child population: a labelled assumption, DESIGN §2);
    * CIN and CPP at 31 March 2015 by the LA's share of England's children in care in 2015 (CIN and CLA rates
      move together across LAs: an assumption; the LA calibration fits care entry to the LA's own starts).

    An authority created after 2015 starts from its predecessors' 2015 stock times its population share
    (``calibration.boundaries``); the local fit scales that stock (``la.mapped.stock``).
    """
    from sim.observe import local_rows
    d = local_rows(code)
    y = d[d["year"] == START_YEAR]
    total = y[y["measure"] == "total"]["value"]
    if total.empty or not total.notna().all():
        have = sorted(set(d["year"]))
        raise dfe.DataError(f"calibration/data/dfe/la_cla.csv: local authority {code!r} has no CLA total for "
                            f"31 March {START_YEAR} (years {have[0]}-{have[-1]}); local runs start from the "
                            f"{START_YEAR} stock")
    total = float(total.iloc[0])
    nat = build()
    old = y[(y["measure"] == "placement") & (y["scheme"] == "old")]
    age = y[y["measure"] == "age_group"]
    pop = population_by_age(code)
    share_children = float(pop[START_YEAR + 1].sum()) / float(nat.population[START_YEAR + 1].sum())
    share_cla = total / sum(nat.init_cla_old.values())
    return ModelInputs(
        population=pop,
        uasc_arrivals={yr: v * share_children for yr, v in nat.uasc_arrivals.items()},
        la_codes=[code], la_names=[str(d["la_name"].iloc[0])], la_weights=np.array([1.0]),
        init_cla_old=_impute(old, list(nat.init_cla_old), total),
        init_age=_impute(age, list(nat.init_age), total),
        init_uasc=nat.init_uasc * share_children,
        init_cin=nat.init_cin * share_cla,
        init_cpp=nat.init_cpp * share_cla,
        notes=[f"local authority {code}: UASC by child-population share {share_children:.5f}; CIN/CPP 2015 by "
               f"share of England's CLA {share_cla:.5f}"]
        + ([f"created after {START_YEAR}: counts and population {boundaries.source_note(code)}; the 2015 stock "
            f"is scaled by exp(la.mapped.stock)"] if boundaries.change_of(code) else []),
        area=code, uasc_share=share_children,
    )
