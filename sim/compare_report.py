"""The comparison report: ``report.html`` (self-contained: figures embedded) and its PNGs, from a ``Comparison``.

Shows fan charts per scenario, a table for 2025, 2030 and 2035 of children in care (total, residential, foster,
kinship) and cost (median and 90% band), the paired differences against the status quo, present values, every
lever with its source or assumption, and the labelled priors the bands vary.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from sim.compare import BASE, NAIVE, NO_CAPACITY, WITH_INVESTMENT  # noqa: E402

TABLE_YEARS = (2025, 2030, 2035)
# (label, measure, scheme, category): what the tables show
ROWS = (("Children looked after (31 March)", "cla_31mar", "dfe_current", "total"),
        ("  in residential care", "cla_31mar", "model", "residential"),
        ("  in foster care (not kinship)", "cla_31mar", "model", "foster"),
        ("  in kinship foster care", "cla_31mar", "model", "kinship"),
        ("Cost incl. investment, GBP m a year (2023-24 prices)", WITH_INVESTMENT, "model", "total"))
DPI = 110
CSS = """body{font-family:sans-serif;margin:2em;max-width:1300px}table{border-collapse:collapse;margin:1em 0;
font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}img{max-width:100%}details{margin:1em 0}.note{color:#555}"""


def _pick(t: pd.DataFrame, scenario: str, kind: str, measure: str, scheme: str, category: str) -> pd.DataFrame:
    return t[(t["scenario"] == scenario) & (t["kind"] == kind) & (t["measure"] == measure) & (t["scheme"] == scheme)
             & (t["category"] == category) & (t["age_band"] == "all") & (t["uasc"] == "all")
             & (t["la"] == "ENG")].sort_values("year")


def _fmt(r: pd.Series, money: bool) -> str:
    f = (lambda v: f"{v / 1e6:,.0f}") if money else (lambda v: f"{v:,.0f}")
    if r["q05"] == r["q95"]:
        return f(r["q50"])
    return f"{f(r['q50'])} <span class='note'>({f(r['q05'])} to {f(r['q95'])})</span>"


def headline_table(t: pd.DataFrame, names: list[str], kind: str) -> str:
    """Rows = measures x scenarios, columns = TABLE_YEARS; cells 'median (5% to 95%)'."""
    head = "".join(f"<th>{y}</th>" for y in TABLE_YEARS)
    body = []
    for label, measure, scheme, cat in ROWS:
        body.append(f"<tr><th colspan='{len(TABLE_YEARS) + 1}' style='text-align:left'>{html.escape(label)}</th></tr>")
        for name in names:
            if kind == "difference" and name in (BASE, NAIVE):
                continue
            d = _pick(t, name, kind, measure, scheme, cat)
            if name == NAIVE and measure == "cla_31mar" and cat == "total":
                d = _pick(t, name, "level", measure, scheme, cat)
            if d.empty:
                continue
            cells = []
            for y in TABLE_YEARS:
                r = d[d["year"] == y]
                cells.append(f"<td>{_fmt(r.iloc[0], measure == WITH_INVESTMENT)}</td>" if len(r) else "<td>-</td>")
            body.append(f"<tr><td>{html.escape(name)}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th>scenario</th>{head}</tr>{''.join(body)}</table>"


def _observed(observed: pd.DataFrame, category: str) -> pd.DataFrame:
    """DfE's England series of children looked after at 31 March in one current-scheme category, by year."""
    return observed[(observed["year"] >= 2015) & (observed["measure"] == "cla_31mar")
                    & (observed["scheme"] == "dfe_current") & (observed["category"] == category)
                    & (observed["age_band"] == "all") & (observed["uasc"] == "all")
                    & (observed["la"] == "ENG")].sort_values("year")


def _style(ax, title: str) -> None:
    """Title, light grid, whole years on x and thousands separators on y."""
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, lw=0.5)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))


def fan_figure(t: pd.DataFrame, names: list[str], observed: pd.DataFrame | None, path: Path) -> Path:
    """CLA total per scenario: 90% and 50% bands, median, the status quo's median dashed, DfE points."""
    sims = [n for n in names if n != NAIVE]
    cols = min(3, len(sims))
    rows = int(np.ceil(len(sims) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.2 * rows + 0.6), squeeze=False, sharey=True)
    sq = _pick(t, BASE, "level", "cla_31mar", "dfe_current", "total")
    naive = _pick(t, NAIVE, "level", "cla_31mar", "dfe_current", "total")
    obs = _observed(observed, "total") if observed is not None else None
    for ax, name in zip(axes.flat, sims):
        d = _pick(t, name, "level", "cla_31mar", "dfe_current", "total")
        x = d["year"].to_numpy(dtype=float)
        ax.fill_between(x, d["q05"], d["q95"], color="tab:blue", alpha=0.18, lw=0, label="90% band")
        ax.fill_between(x, d["q25"], d["q75"], color="tab:blue", alpha=0.35, lw=0, label="50% band")
        ax.plot(x, d["q50"], color="tab:blue", lw=1.5, label="median")
        if name != BASE:
            ax.plot(sq["year"], sq["q50"], color="black", lw=1, ls="--", label="status quo median")
        if len(naive):
            ax.plot(naive["year"], naive["q50"], color="tab:red", lw=1, ls=":", label="naive growth")
        if obs is not None:
            ax.plot(obs["year"], obs["value"], "o", color="black", ms=3, label="DfE")
        _style(ax, name)
    for ax in list(axes.flat)[len(sims):]:
        ax.axis("off")
    handles, labels = {}, {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=6, fontsize=8, frameon=False)
    fig.suptitle("Children looked after at 31 March, England, by scenario", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


RESIDENTIAL_PANELS = (("Secure units and children's homes (current scheme)", "secure_childrens_homes"),
                      ("Residential, semi-independent and other (2024 grouping)", "residential_supported_other"))


def residential_figure(t: pd.DataFrame, observed: pd.DataFrame | None, path: Path) -> Path | None:
    """The status quo's residential projection with and without the foster capacity constraint (same members,
    same random numbers), with the DfE counts; None when the runs had no constraint."""
    if not (t["scenario"] == NO_CAPACITY).any():
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), squeeze=False)
    for ax, (title, cat) in zip(axes.flat, RESIDENTIAL_PANELS):
        for name, colour, label in ((BASE, "tab:blue", "with the constraint"),
                                    (NO_CAPACITY, "tab:orange", "without it")):
            d = _pick(t, name, "level", "cla_31mar", "dfe_current", cat)
            x = d["year"].to_numpy(dtype=float)
            ax.fill_between(x, d["q05"], d["q95"], color=colour, alpha=0.2, lw=0, label=f"{label}: 90% band")
            ax.plot(x, d["q50"], color=colour, lw=1.5, label=f"{label}: median")
        if observed is not None:
            o = _observed(observed, cat)
            ax.plot(o["year"], o["value"], "o", color="black", ms=3, label="DfE")
        _style(ax, title)
    h, lab = axes.flat[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Status quo: children in residential care at 31 March, with and without the foster capacity "
                 "constraint", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 0.94))
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


def residential_table(t: pd.DataFrame) -> str:
    """Median (90% band) of the status quo's residential counts with and without the constraint."""
    head = "".join(f"<th>{y}</th>" for y in TABLE_YEARS)
    body = []
    for title, cat in RESIDENTIAL_PANELS:
        body.append(f"<tr><th colspan='{len(TABLE_YEARS) + 1}' style='text-align:left'>{html.escape(title)}</th></tr>")
        for name, label in ((BASE, "with the constraint"), (NO_CAPACITY, "without it")):
            d = _pick(t, name, "level", "cla_31mar", "dfe_current", cat).set_index("year")
            cells = "".join(f"<td>{_fmt(d.loc[y], False) if y in d.index else ''}</td>" for y in TABLE_YEARS)
            body.append(f"<tr><td>{label}</td>{cells}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>"


def difference_figure(t: pd.DataFrame, names: list[str], path: Path) -> Path:
    """Paired differences against the status quo: CLA total and residential care, median and 90% band."""
    reforms = [n for n in names if n not in (BASE, NAIVE)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (title, scheme, cat) in zip(axes, (("Children looked after", "dfe_current", "total"),
                                               ("In residential care", "model", "residential"))):
        for i, name in enumerate(reforms):
            d = _pick(t, name, "difference", "cla_31mar", scheme, cat)
            d = d[d["year"] >= 2024]
            c = f"C{i}"
            ax.fill_between(d["year"], d["q05"], d["q95"], color=c, alpha=0.15, lw=0)
            ax.plot(d["year"], d["q50"], color=c, lw=1.5, label=name)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(f"{title}: paired difference from the status quo", fontsize=10)
        ax.grid(alpha=0.3, lw=0.5)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


def crn_paragraph(crn: dict) -> str:
    """The common-random-numbers measurement in words."""
    what = {"process": "one parameter set (the central member) in every replicate: Monte Carlo noise alone",
            "parameter_and_process": "ensemble members in turn, as in the comparison: the effect's spread across "
                                     "members is parameter uncertainty, which common random numbers keep"}
    items = "".join(
        f"<li>{html.escape(what[k])}: variance {m['var_shared']:,.0f} with shared random numbers against "
        f"{m['var_independent']:,.0f} with independent ones, a <b>{m['reduction']:.1f}-fold</b> reduction (mean "
        f"difference {m['mean_difference']:+,.0f}).</li>" for k, m in crn.items() if k in what)
    return (f"<p>Variance of the {crn['year']} CLA-total paired difference ({html.escape(crn['reform'])} minus "
            f"the status quo, {crn['replicates']} replicates, scale {crn['scale']:g}), same parameter draws:</p>"
            f"<ul>{items}</ul>")


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"></figure>'


def _table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
                   for r in df.astype(object).where(df.notna(), "").itertuples(index=False))
    return f"<table><tr>{head}</tr>{rows}</table>"


def lever_table(scenarios: list, capacity: bool = False) -> pd.DataFrame:
    """Every lever of every scenario with its size, timing, coverage and evidence; ``capacity``: whether the
    runs had the foster capacity constraint on (capacity levers act only then)."""
    rows = []
    for sc in scenarios:
        for lv in sc.levers:
            d = lv.as_dict()
            target = {"hazard": f"{'/'.join(lv.from_states)} -> {lv.to}", "placement": d.get("to", ""),
                      "capacity": lv.capacity, "unit_cost": f"{lv.cost_key} {lv.provider}".strip(),
                      "investment": "GBP a year"}.get(lv.kind, "")
            if lv.kind == "placement":
                to = d.get("to", [])
                target = f"{', '.join(to) if isinstance(to, list) else to} share on {lv.on or 'both'}"
            evidence = lv.source or (f"ASSUMPTION: {lv.rationale} (range {lv.low} to {lv.high})")
            rows.append({"scenario": sc.name, "lever": lv.name, "kind": lv.kind, "target": target,
                         "size": ("x" if lv.multiplier is not None else "+" if lv.addition is not None else "GBP ")
                         + f"{lv.value:,.4g}", "start": d["start"], "phase-in (months)": lv.phase_in_months,
                         "coverage": lv.coverage if lv.coverage != "share" else f"share {lv.share:g}",
                         "applied in runs": "yes" if lv.applies(capacity) else "no (capacity off)",
                         "evidence": evidence})
    return pd.DataFrame(rows, columns=["scenario", "lever", "kind", "target", "size", "start", "phase-in (months)",
                                       "coverage", "applied in runs", "evidence"])


def prior_table() -> pd.DataFrame:
    """The register's labelled priors (kind prior): value, range and rationale."""
    from calibration.parameters import load_register
    reg = load_register()
    rows = [{"parameter": k, "value": r["value"], "low": r["low"], "high": r["high"], "unit": r.get("unit", ""),
             "rationale": r.get("source", "")} for k, r in reg.items() if r["kind"] == "prior"]
    return pd.DataFrame(rows)


def write(folder: Path, comp, observed: pd.DataFrame | None, pv: pd.DataFrame, crn: dict | None) -> Path:
    """Write the PNGs and report.html into ``folder``; returns the html path."""
    names = comp.info["scenarios"]
    names = [BASE] + [n for n in names if n != BASE]
    fan = fan_figure(comp.table, names, observed, folder / "fan_charts.png")
    diff = difference_figure(comp.table, names, folder / "differences.png")
    resid = residential_figure(comp.table, observed, folder / "residential_capacity.png")
    info = comp.info
    crn_html = ("<p>Not measured in this run (<code>caresim compare ... --crn-check</code> measures it).</p>"
                if not crn else crn_paragraph(crn))
    parts = [
        "<h1>caresim: reform scenarios compared</h1>",
        f"<p>{info['replicates']} replicates per scenario (one parameter-ensemble member each, the same members "
        f"and the same random numbers in every scenario), {info['scale']:g} of England simulated, seed "
        f"{info['seed']}, to 31 March {info['end_year']}; {info['wall_seconds']:.0f} s. Bands are 5% to 95% over "
        "replicates (parameter, trend and process uncertainty together). Differences are paired replicate by "
        "replicate against the status quo. The naive comparator is a point forecast from DfE data alone.</p>",
        "<h2>Children in care and cost: median (90% band)</h2>", headline_table(comp.table, names, "level"),
        "<h2>Paired differences from the status quo: median (90% band)</h2>",
        headline_table(comp.table, names, "difference"),
        "<h2>Present values</h2><p>Cost including investment, 2023-24 prices, discounted at the HM Treasury Green "
        "Book rate (3.5%) to 2024-25, summed over the financial years shown; median (90% band) over replicates.</p>",
        _table(pv),
        "<h2>Fan charts</h2>", _img(fan, "fan charts"), _img(diff, "paired differences"),
        "<h2>Foster capacity</h2>" + (
            "<p>The runs apply the foster capacity constraint: usable mainstream foster places by region (Ofsted "
            "stock and flows), and a child who would enter foster care and finds no suitable free place in its "
            "region goes to residential care; the matching friction is fitted with the ensemble, with no separate "
            "children's homes trend. The status quo again without the constraint (same members and random "
            "numbers) shows what the constraint adds.</p>" + residential_table(comp.table)
            + _img(resid, "residential with and without the constraint")
            if resid is not None else "<p>These runs have no foster capacity constraint "
            "(<code>--capacity off</code>): capacity levers do nothing.</p>"),
        "<h2>Common random numbers</h2>", crn_html,
        "<h2>Levers</h2><p>Hazard levers (transition probabilities) and placement levers (a placement's share of "
        "the placement drawn on entry or move) act in the engine from their start month; unit-cost levers reprice "
        "child-months; investment levers are costed; capacity levers change foster recruitment, retention or the "
        "usable share in runs with the foster capacity constraint on (<code>--capacity on</code>), and do nothing "
        f"without it. These runs: capacity constraint {'on' if info.get('capacity') else 'off'}.</p>",
        _table(lever_table(comp.scenarios, bool(info.get("capacity")))),
        "<h2>Assumptions and priors</h2><details><summary>Every labelled prior of the parameter register (varied "
        "across ensemble members)</summary>" + _table(prior_table()) + "</details>",
    ]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>caresim comparison</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
