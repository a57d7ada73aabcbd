"""Fan charts: median, 50% and 90% bands of children looked after, total and by placement group, with DfE points.

Reads the run summary (``sim.runner.summarise``) and the DfE observed values (``sim.observe.observed``), both
tidy frames keyed by year, measure, scheme, category, age_band, uasc, la.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sim.observe import ALL, CURRENT, ENGLAND, GROUP_2024, TOTAL, area_of  # noqa: E402

CLA_MEASURE = "cla_31mar"
PLACEMENT_SCHEME = CURRENT  # DfE's current categories: DfE points exist for them (2020-2024)
PANELS = (  # (category, title); the 2024 group overlaps the categories it combines
    (TOTAL, "All children looked after"),
    ("foster", "Foster care (incl. kinship)"),
    ("secure_childrens_homes", "Secure and children's homes"),
    ("other_residential", "Other residential (incl. schools)"),
    ("independent_semi_independent_supported", "Independent and semi-independent"),
    ("placed_with_parents", "Placed with parents"),
    ("placed_for_adoption", "Placed for adoption"),
    ("other_placements", "Other placements"),
    (GROUP_2024, "Residential + supported + other (2024 grouping)"),
)
DPI = 110


def select(df: pd.DataFrame | None, measure: str = CLA_MEASURE, scheme: str = PLACEMENT_SCHEME,
           category: str = TOTAL, age_band: str = ALL, uasc: str = ALL, la: str = ENGLAND) -> pd.DataFrame:
    """Rows of one series (national, all ages and UASC groups by default), sorted by year."""
    if df is None or df.empty:
        return pd.DataFrame(columns=["year", "value"])
    m = ((df["measure"] == measure) & (df["scheme"] == scheme) & (df["category"] == category)
         & (df["age_band"] == age_band) & (df["uasc"] == uasc) & (df["la"] == la))
    return df[m].sort_values("year")


def cla_total(summary: pd.DataFrame) -> pd.DataFrame:
    """Summary rows of children looked after at 31 March in the run's area (all placements, ages, UASC status)."""
    return select(summary, la=area_of(summary)) if not summary.empty else select(summary)


def _panel(ax, sim: pd.DataFrame, obs: pd.DataFrame, title: str) -> None:
    """One fan: 90% band, 50% band, median line, DfE points."""
    if not sim.empty:
        x = sim["year"].to_numpy(dtype=float)
        ax.fill_between(x, sim["q05"], sim["q95"], color="tab:blue", alpha=0.18, lw=0, label="90% band")
        ax.fill_between(x, sim["q25"], sim["q75"], color="tab:blue", alpha=0.35, lw=0, label="50% band")
        ax.plot(x, sim["q50"], color="tab:blue", lw=1.6, label="median")
    if not obs.empty:
        ax.plot(obs["year"].to_numpy(dtype=float), obs["value"], "o", color="black", ms=3.5, label="DfE observed")
    if sim.empty and obs.empty:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, lw=0.5)
    ax.tick_params(labelsize=8)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.0f}"))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _title(summary: pd.DataFrame) -> str:
    """Scenario name(s) and number of replicates."""
    names = ", ".join(sorted(map(str, summary["scenario"].unique()))) if "scenario" in summary else "?"
    n = int(summary["n"].max()) if "n" in summary and not summary.empty else 0
    area = area_of(summary) if "la" in summary and not summary.empty else ENGLAND
    where = "England" if area == ENGLAND else f"local authority {area}"
    return f"Children looked after at 31 March, {where} - scenario {names}, {n} replicates"


def fan_chart(summary_df: pd.DataFrame, observed_df: pd.DataFrame | None, path: str | Path,
              subtitle: str | None = None) -> Path:
    """Draw the CLA total and placement-group fans with DfE points and save a PNG at ``path``."""
    have = set(summary_df.loc[(summary_df["measure"] == CLA_MEASURE) & (summary_df["scheme"] == PLACEMENT_SCHEME),
                              "category"]) if not summary_df.empty else set()
    panels = [(title, cat) for cat, title in PANELS if cat in have or cat == TOTAL]
    ncol = min(len(panels), 3)
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.1 * nrow + 0.7), squeeze=False)
    first = summary_df["year"].min() if not summary_df.empty else None
    area = area_of(summary_df) if not summary_df.empty else ENGLAND
    for ax, (title, cat) in zip(axes.flat, panels):
        obs = select(observed_df, category=cat, la=area)
        _panel(ax, select(summary_df, category=cat, la=area), obs[obs["year"] >= first] if first is not None else obs,
               title)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(_title(summary_df) + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return Path(path)
