"""The calibration report: ``report.html`` (self-contained, figures embedded) and its PNG figures.

``write(folder, table, manifest, summary, fit_until)`` shows the manifest (data hash, method, settings, timings,
diagnostics), the in-sample criteria (``calibration.criteria``), every DfE target series against the check run's
median and 50%/90% bands, every identified parameter's and drawn prior's spread over the members (priors with
their triangular density), and the fitted noise model.
"""
from __future__ import annotations

import base64
import html
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from calibration import boundaries, criteria  # noqa: E402
from calibration.parameters import load_register  # noqa: E402
from calibration.report import matched  # noqa: E402
from agents.attributes import AGE_LABELS5, AGE_LABELS7  # noqa: E402
from sim.observe import ALL, TOTAL, area_of  # noqa: E402

DPI = 150
SERIES_COLS, SERIES_ROWS = 4, 5     # at most 20 target series per PNG
PARAM_COLS, PARAM_ROWS = 6, 6       # at most 36 parameter histograms per PNG
SERIES_KEYS = ["measure", "scheme", "category", "age_band", "uasc"]
# figure name -> (title, rule picking the matched national series that belong to it)
FAMILIES = {
    "fit_cla_old": ("CLA at 31 March: total and placements (old scheme)",
                    lambda d: (d["measure"] == "cla_31mar") & (d["age_band"] == ALL) & (d["uasc"] == ALL)
                    & ((d["scheme"] == "dfe_old") & (d["category"] != TOTAL)
                       | (d["scheme"] == "dfe_current") & (d["category"] == TOTAL))),
    "fit_cla_current": ("CLA at 31 March: placements (current scheme)",
                        lambda d: (d["measure"] == "cla_31mar") & (d["scheme"] == "dfe_current")
                        & (d["category"] != TOTAL) & (d["age_band"] == ALL) & (d["uasc"] == ALL)),
    "fit_cla_age_uasc": ("CLA at 31 March: age bands and UASC",
                         lambda d: (d["measure"] == "uasc_31mar") | (d["measure"] == "cla_31mar")
                         & (d["scheme"] == "dfe_current") & (d["category"] == TOTAL)
                         & ((d["age_band"] != ALL) | (d["uasc"] != ALL))),
    "fit_started": ("Children starting care: total, age bands, UASC", lambda d: d["measure"] == "started"),
    "fit_ceased": ("Children ceasing care: total, reason, age, UASC", lambda d: d["measure"] == "ceased"),
    "fit_cin_cpp": ("Children in need and child protection",
                    lambda d: d["measure"].isin(["cin_31mar", "cpp_31mar", "cpp_started"])),
}
CSS = """body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0;
font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}
td:first-child{text-align:left}tr.fail td{background:#f8d0d0}tr.pass td{background:#e0f2e0}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}code{font-size:12px}"""


# ---- figures -----------------------------------------------------------------------------------------------
def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


def _grids(items: list, cols: int, rows: int, panel: tuple[float, float], left: float, space: float,
           bottom: float = 0.4):
    """Split ``items`` into pages of at most cols x rows panels of ``panel`` inches (``left``, ``bottom``: margins
    in inches; ``space``: gaps as a fraction of a panel); yields (page, items, figure, axes). Fixed margins, as
    tight_layout takes seconds on a 36-panel figure."""
    per = cols * rows
    for page, start in enumerate(range(0, len(items), per), start=1):
        chunk = items[start:start + per]
        nc = min(cols, len(chunk))
        nr = int(np.ceil(len(chunk) / nc))
        w, h = panel[0] * nc + left, panel[1] * nr + 0.6 + bottom
        fig, axes = plt.subplots(nr, nc, figsize=(w, h), squeeze=False)
        fig.subplots_adjust(left=left / w, right=1 - 0.15 / w, top=1 - 0.6 / h, bottom=bottom / h, wspace=space,
                            hspace=space + 0.15)
        for ax in axes.flat[len(chunk):]:
            ax.axis("off")
        yield page, chunk, fig, axes.flat


AGE_ORDER = list(dict.fromkeys(AGE_LABELS5 + AGE_LABELS7))


def _series_order(key: tuple) -> tuple:
    """Within a figure: headline totals, then categories, then age bands (youngest first), then UASC."""
    measure, scheme, category, age_band, uasc = key
    group = 1 if category != TOTAL else 2 if age_band != ALL else 3 if uasc != ALL else 0
    age = AGE_ORDER.index(age_band) if age_band in AGE_ORDER else -1
    return group, scheme, age, category, uasc, measure


def _series_title(key: tuple) -> str:
    measure, scheme, category, age_band, uasc = key
    bits = [b for b in (category if category != TOTAL else "", age_band if age_band != ALL else "",
                        uasc if uasc != ALL else "") if b] or ["total"]
    title = f"{measure}: {' / '.join(bits)}" + (" (old)" if scheme == "dfe_old" else "")
    return textwrap.fill(title, 44)


def _fan(ax, sim: pd.DataFrame, obs: pd.DataFrame, title: str, fit_until: int, own_from: int | None = None) -> None:
    """90% and 50% bands, median, DfE points, and a dotted line at the end of the fitted years. Points before
    ``own_from`` (an authority created after 2015) are its predecessors' counts x population share: hollow."""
    x = sim["year"].to_numpy(dtype=float)
    ax.fill_between(x, sim["q05"], sim["q95"], color="tab:blue", alpha=0.18, lw=0, label="90% band")
    ax.fill_between(x, sim["q25"], sim["q75"], color="tab:blue", alpha=0.35, lw=0, label="50% band")
    ax.plot(x, sim["q50"], color="tab:blue", lw=1.4, label="median")
    early = obs["year"] < own_from if own_from else pd.Series(False, index=obs.index)
    ax.plot(obs.loc[~early, "year"].to_numpy(dtype=float), obs.loc[~early, "observed"], "o", color="black", ms=3,
            label="DfE")
    if early.any():
        ax.plot(obs.loc[early, "year"].to_numpy(dtype=float), obs.loc[early, "observed"], "o", mfc="none",
                color="black", ms=3, label="predecessors x population share")
    ax.axvline(fit_until, color="grey", ls=":", lw=0.8)
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3, lw=0.5)
    ax.tick_params(labelsize=7)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True, nbins=5))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))


def series_figures(folder: Path, summary: pd.DataFrame, fit_until: int) -> list[tuple[str, Path]]:
    """Small multiples of every national DfE series the run produces, one or more PNGs per family."""
    area = area_of(summary)
    nat = summary[(summary["la"] == area)]
    m = matched(nat, area)
    own = boundaries.own_from(area) if area != "ENG" else None
    out = []
    for name, (title, rule) in FAMILIES.items():
        d = m[rule(m)]
        keys = sorted(set(map(tuple, d[SERIES_KEYS].to_numpy())), key=_series_order)
        pages = _grids(keys, SERIES_COLS, SERIES_ROWS, (3.4, 2.5), 0.6, 0.3, 0.75)
        for page, chunk, fig, axes in pages:
            for ax, key in zip(axes, chunk):
                sel = lambda df: df[(df[SERIES_KEYS] == pd.Series(key, index=SERIES_KEYS)).all(axis=1)]  # noqa: E731
                _fan(ax, sel(nat).sort_values("year"), sel(d), _series_title(key), fit_until, own)
            handles, labels = next(iter(fig.axes)).get_legend_handles_labels()
            fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
            fig.suptitle(title, fontsize=11)
            out.append((title, _save(fig, folder / f"{name}_{page}.png")))
    return out


def _triangular_pdf(x: np.ndarray, lo: float, mode: float, hi: float) -> np.ndarray:
    up = np.where(x < mode, 2 * (x - lo) / ((hi - lo) * max(mode - lo, 1e-300)), 0.0)
    down = np.where(x >= mode, 2 * (hi - x) / ((hi - lo) * max(hi - mode, 1e-300)), 0.0)
    return np.where((x >= lo) & (x <= hi), up + down, 0.0)


def parameter_figures(folder: Path, table: pd.DataFrame, manifest: dict) -> list[tuple[str, Path]]:
    """Histograms over members 1..N: identified parameters with the central fit (member 0) as a line; drawn
    priors with their triangular prior density (constant columns skipped)."""
    reg = load_register()
    members = table[table["member"] != 0]
    central = table[table["member"] == 0].iloc[0] if (table["member"] == 0).any() else None
    ident = [k for k in manifest.get("identified", []) if k in table]
    priors = [k for k in manifest.get("priors_drawn", []) if k in table and k in reg
              and members[k].nunique() > 1 and reg[k]["high"] > reg[k]["low"]]
    bins = int(np.clip(2 * np.sqrt(len(members)), 5, 20))
    out = []
    for kind, names in (("identified", ident), ("prior", priors)):
        for page, chunk, fig, axes in _grids(names, PARAM_COLS, PARAM_ROWS, (2.4, 1.9), 0.2, 0.12):
            for ax, k in zip(axes, chunk):
                r = reg.get(k)
                span = (r["low"], r["high"]) if kind == "prior" else None  # priors: bins over the prior range
                ax.hist(members[k], bins=bins, range=span, density=True, histtype="stepfilled", color="tab:blue",
                        alpha=0.6)
                if kind == "identified" and central is not None:
                    ax.axvline(central[k], color="black", lw=1.2)
                elif kind == "prior":
                    x = np.linspace(r["low"], r["high"], 101)
                    ax.plot(x, _triangular_pdf(x, r["low"], r["value"], r["high"]), color="tab:red", lw=1.2)
                ax.set_title(k, fontsize=7)
                ax.tick_params(labelsize=6)
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
                ax.set_yticks([])
            what = ("Identified parameters: members (histogram) and the central fit (line)" if kind == "identified"
                    else "Drawn priors: members (histogram) and the triangular prior (red)")
            fig.suptitle(what, fontsize=10)
            out.append((what, _save(fig, folder / f"{kind}_{page}.png")))
    return out


# ---- html --------------------------------------------------------------------------------------------------
def _cell(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "NO"
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, row_class=None) -> str:
    """An HTML table of ``df``; ``row_class(row)`` gives an optional class per row (e.g. pass / fail)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cls = f' class="{row_class(r)}"' if row_class else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _kv(d: dict) -> str:
    """A name / value table (object column, so integers such as seeds and years print as written)."""
    values = pd.Series([str(v) if isinstance(v, (list, dict)) else v for v in d.values()], dtype=object)
    return _table(pd.DataFrame({"name": list(d), "value": values}))


def _img(title: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(title)}">' \
           f"<figcaption>{html.escape(path.name)}</figcaption></figure>"


def identified_table(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Central value (member 0) and the median, 5% and 95% over members 1..N of each identified parameter."""
    members = table[table["member"] != 0]
    central = table[table["member"] == 0]
    rows = [{"parameter": k, "central": float(central[k].iloc[0]) if len(central) else np.nan,
             "median": members[k].median(), "q05": members[k].quantile(0.05), "q95": members[k].quantile(0.95)}
            for k in names if k in table]
    return pd.DataFrame(rows, columns=["parameter", "central", "median", "q05", "q95"])


def noise_table(noise: dict) -> pd.DataFrame:
    """The noise model, one row per series: negative-binomial k, Dirichlet-multinomial alpha, random-walk sd."""
    labels = {"negative_binomial_k": "negative binomial k", "dirichlet_multinomial_alpha": "Dirichlet-multinomial "
              "alpha", "random_walk_sd": "discrepancy random-walk sd (log scale, per year)"}
    rows = [{"component": labels.get(kind, kind), "series": s, "value": v}
            for kind, vals in noise.items() for s, v in vals.items()]
    return pd.DataFrame(rows, columns=["component", "series", "value"])


def write(folder: Path, table: pd.DataFrame, manifest: dict, summary: pd.DataFrame, fit_until: int) -> Path:
    """Write the PNG figures and ``report.html`` (figures embedded as data URIs) into ``folder``; returns the
    html path."""
    folder = Path(folder)
    crit = criteria.in_sample(summary, fit_until)
    sc = criteria.score(crit)
    diag = dict(manifest.get("diagnostics", {}))
    seconds = diag.pop("seconds", {})
    fits = series_figures(folder, summary, fit_until)
    params = parameter_figures(folder, table, manifest)
    n = int((table["member"] != 0).sum())
    parts = [
        f"<h1>Calibration report</h1><p>Created {_cell(manifest.get('created', '?'))}; fitted years to "
        f"{fit_until}; {n} ensemble members plus the central fit (member 0).</p>",
        f"<p>DfE data SHA-256: <code>{_cell(manifest.get('data_sha256', '?'))}</code></p>",
        f"<h2>Method</h2><p>{_cell(manifest.get('method', ''))}</p>",
        "<h2>Settings</h2>" + _kv(manifest.get("settings", {})),
        "<h2>Timings (seconds)</h2>" + _kv(seconds),
        "<h2>Diagnostics</h2>" + _kv(diag),
        f"<h2>In-sample criteria</h2><p>{int(crit['passed'].sum())} of {len(crit)} rows pass. Medians (q50) of "
        "the check run against DfE; shares from the medians (q50 category / q50 total).</p>" + _table(sc),
        _table(crit, lambda r: "pass" if r["passed"] else "fail"),
        "<h2>Target series: DfE against the check run</h2>" + "".join(_img(t, p) for t, p in fits),
        "<h2>Identified parameters</h2>" + _table(identified_table(table, manifest.get("identified", []))),
        "<h2>Every prior against its posterior</h2>" + "".join(_img(t, p) for t, p in params),
        "<h2>Noise model</h2>" + _table(noise_table(manifest.get("noise", {}))),
    ]
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Calibration report</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
    path = folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
