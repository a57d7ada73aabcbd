"""Exogenous model inputs built from data: population by age, UASC arrivals, LAs, 31 March 2015 margins."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from calibration import dfe

START_YEAR = 2015   # the stock date: 31 March 2015
DATA_END = 2024


@dataclass
class ModelInputs:
    """Everything the engine takes from data (not parameters)."""
    population: dict[int, np.ndarray]      # mid-year (ONS) children by single year of age 0..17
    uasc_starts: dict[int, float]          # published UASC starts by DfE year (N8 proxy before 2020)
    la_codes: list[str]
    la_names: list[str]
    la_weights: np.ndarray                 # share of care starts by LA (2024 codes)
    init_cla_old: dict[str, float]         # 31 March 2015 CLA by old-scheme placement category
    init_age: dict[str, float]             # 31 March 2015 CLA by age band
    init_uasc: float
    init_cin: float
    init_cpp: float
    notes: list[str] = field(default_factory=list)


def population_by_age() -> dict[int, np.ndarray]:
    """ONS 0-17 totals (POP_DFE, mid-2012..2024) split by the mean single-year shares of mid-2022/2023."""
    pop = dfe.read("population_0_17.csv")
    eng = pop[(pop["geographic_level"] == "National") & (pop["sex"] == "persons")]
    tot = eng[eng["source"] == "POP_DFE"].drop_duplicates("year").set_index("year")["value"]
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


def la_table() -> tuple[list[str], list[str], np.ndarray]:
    """The 2024 local authorities and each one's share of care starts in the year ending March 2024."""
    la = dfe.read("la_cla.csv")
    s = la[(la["geographic_level"] == "Local authority") & (la["measure"] == "started") & (la["year"] == DATA_END)]
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
        uasc_starts=uasc_starts(),
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
