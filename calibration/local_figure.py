"""One figure comparing local calibrations: per LA, CLA total, starts, cessations and children in secure or
children's homes — DfE points against the check run's median, 50% and 90% bands.

Run:  ``python -m calibration.local_figure OUT.png CALIBRATION_FOLDER...`` (folders from
``caresim calibrate --la CODE --out FOLDER``); it also prints each LA's scores (``scores``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from calibration import boundaries  # noqa: E402
from calibration.calibration_report import _fan  # noqa: E402
from sim.observe import ALL, TOTAL, observed  # noqa: E402

PANELS = (("Children looked after, 31 March", "cla_31mar", "dfe_current", TOTAL),
          ("Started to be looked after", "started", "dfe_current", TOTAL),
          ("Ceased to be looked after", "ceased", "dfe_current", TOTAL),
          ("Secure and children's homes", "cla_31mar", "dfe_current", "secure_childrens_homes"))


def figure(folders: list[Path], out: Path) -> Path:
    """Rows = local authorities (as given), columns = ``PANELS``."""
    fig, axes = plt.subplots(len(folders), len(PANELS), figsize=(3.4 * len(PANELS), 2.6 * len(folders)),
                             squeeze=False)
    for row, folder in zip(axes, folders):
        man = json.loads((folder / "ensemble.json").read_text())
        area, fit_until = man["area"], int(man["settings"]["fit_until"])
        s = pd.read_csv(folder / "check" / "summary.csv", keep_default_na=False)
        o = observed(area=area).rename(columns={"value": "observed"})
        for ax, (title, measure, scheme, cat) in zip(row, PANELS):
            pick = lambda d: d[(d["measure"] == measure) & (d["scheme"] == scheme) & (d["category"] == cat)  # noqa: E731
                               & (d["age_band"] == ALL) & (d["uasc"] == ALL) & (d["la"] == area)].sort_values("year")
            sim = pick(s)
            _fan(ax, sim[sim["year"] >= (2016 if measure != "cla_31mar" else 2015)], pick(o),
                 f"{man.get('la_name', area)}:" + ("\n" if len(man.get("la_name", area)) > 20 else " ") + title,
                 fit_until, boundaries.own_from(area))
    handles, labels = {}, {}
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    handles, labels = list(handles.values()), list(handles)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("Local calibrations: DfE (points) against the ensemble check run (median, 50% and 90% bands)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    fig.savefig(out, dpi=120, metadata={"Software": None})
    plt.close(fig)
    return out


def scores(folders: list[Path]) -> pd.DataFrame:
    """Per LA and series (CLA total, starts, cessations; 2016, or an authority's own first year, to the fit year):
    mean absolute % error of the check run's median against DfE, and the years whose DfE value lies inside the
    90% band (the docs' LA table). Mapped years are left out: they are estimates from the predecessors."""
    rows = []
    for folder in folders:
        man = json.loads((folder / "ensemble.json").read_text())
        area, fit_until = man["area"], int(man["settings"]["fit_until"])
        s = pd.read_csv(folder / "check" / "summary.csv", keep_default_na=False)
        o = observed(area=area)
        for measure in ("cla_31mar", "started", "ceased"):
            pick = lambda d: d[(d["measure"] == measure) & (d["scheme"] == "dfe_current")  # noqa: E731
                               & (d["category"] == TOTAL) & (d["age_band"] == ALL) & (d["uasc"] == ALL)
                               & d["year"].between(max(2016, boundaries.own_from(area) or 0), fit_until)
                               ].set_index("year")
            m = pick(s).join(pick(o)["value"], how="inner")
            rows.append({"la": f"{man.get('la_name', area)} {area}", "series": measure,
                         "mean_abs_pct_error": float(((m["q50"] / m["value"] - 1).abs() * 100).mean()),
                         "inside_90": f"{int(((m['q05'] <= m['value']) & (m['value'] <= m['q95'])).sum())}/{len(m)}",
                         "seconds": man.get("diagnostics", {}).get("seconds", {}).get("total")})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("folders", nargs="+")
    a = ap.parse_args(argv)
    folders = [Path(f) for f in a.folders]
    print(figure(folders, Path(a.out)))
    print(scores(folders).round(1).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
