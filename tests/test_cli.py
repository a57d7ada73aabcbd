"""The ``caresim run`` command: run folder contents, byte-for-byte reproducibility, and clean failures."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sim import cli, output, runner

REPO = Path(__file__).resolve().parents[1]
STATUS_QUO = REPO / "runs" / "scenarios" / "status_quo.toml"
TINY = ["--scale", "0.02", "--replicates", "3", "--end-year", "2018", "--quiet"]
TIDY_COLUMNS = ["scenario", "replicate", "draw", "year", "measure", "scheme", "category", "age_band", "uasc",
                "la", "value"]


def _run(tmp_path: Path, name: str, *extra: str, scenario: Path = STATUS_QUO) -> tuple[int, Path]:
    out = tmp_path / name
    rc = cli.main(["run", str(scenario), "--out", str(out), *TINY, *extra])
    return rc, out


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---- (a) a run folder ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One tiny in-process run shared by several tests (workers 1, threads 1)."""
    tmp = tmp_path_factory.mktemp("ref")
    rc, out = _run(tmp, "ref", "--workers", "1", "--threads", "1")
    assert rc == 0
    return out


def test_run_folder_has_files_manifest_and_tidy_parquet(reference_run, capsys):
    out = reference_run
    assert sorted(p.name for p in out.iterdir()) == sorted(output.FILES)
    assert not list(out.parent.glob("*.tmp-*"))
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 20240331 and man["replicates"] == 3 and man["scale"] == 0.02
    assert man["start_year"] == 2015 and man["end_year"] == 2018
    assert man["scenario"]["name"] == "status_quo"
    assert man["scenario"]["sha256"] == __import__("hashlib").sha256(STATUS_QUO.read_bytes()).hexdigest()
    for key in ("data_sha256", "parameters_sha256"):
        assert len(man[key]) == 64
    assert man["individuals_alive"]["at_31_march_2015_mean"] > 0
    assert man["workers"] == 1 and man["threads"] == 1
    assert {"python", "numpy", "numba"} <= set(man["versions"])
    df = pq.read_table(out / "replicates.parquet").to_pandas()
    assert list(df.columns) == TIDY_COLUMNS
    assert sorted(df["replicate"].unique()) == [0, 1, 2] and set(df["draw"]) == {1, 2, 3}  # shipped ensemble members in turn
    assert df["year"].between(2015, 2018).all()
    assert pq.read_metadata(out / "replicates.parquet").metadata is None  # no pandas/arrow metadata
    summary = pd.read_csv(out / "summary.csv")
    assert {"mean", "q05", "q25", "q50", "q75", "q95"} <= set(summary.columns)
    assert (out / "fan_chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summarise_matches_numpy_quantiles():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"scenario": "s", "replicate": np.repeat(np.arange(7), 4), "draw": 0,
                       "year": np.tile([2016, 2016, 2017, 2017], 7), "measure": "m", "scheme": None,
                       "category": np.tile(["a", "b", "a", "b"], 7), "age_band": None, "uasc": None, "la": None,
                       "value": rng.normal(size=28)})
    s = runner.summarise(df)
    assert len(s) == 4 and (s["n"] == 7).all()
    cell = df[(df["year"] == 2017) & (df["category"] == "b")]["value"].to_numpy()
    row = s[(s["year"] == 2017) & (s["category"] == "b")].iloc[0]
    assert row["q05"] == np.quantile(cell, 0.05) and row["q50"] == np.quantile(cell, 0.5)
    assert row["mean"] == pytest.approx(cell.mean())


# ---- (b) reproducibility ---------------------------------------------------------------------------------------
def test_parquet_write_is_deterministic(tmp_path):
    df = pd.DataFrame({"a": ["x", None, "y"], "b": [1.5, 2.0, np.nan], "c": pd.Categorical(["u", "v", "u"])})
    output.write_parquet(df, tmp_path / "1.parquet")
    output.write_parquet(df, tmp_path / "2.parquet")
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()
    assert str(pq.read_table(tmp_path / "1.parquet").schema.field("c").type) == "string"


def test_same_seed_identical_across_workers_and_threads(reference_run, tmp_path):
    ref = (reference_run / "replicates.parquet").read_bytes()
    rc, two_threads = _run(tmp_path, "t2", "--workers", "1", "--threads", "2")
    assert rc == 0
    assert (two_threads / "replicates.parquet").read_bytes() == ref
    rc, two_workers = _run(tmp_path, "w2", "--workers", "2", "--threads", "1")
    assert rc == 0
    assert (two_workers / "replicates.parquet").read_bytes() == ref


def test_different_seed_gives_different_results(reference_run, tmp_path):
    rc, other = _run(tmp_path, "s2", "--workers", "1", "--seed", "7")
    assert rc == 0
    assert (other / "replicates.parquet").read_bytes() != (reference_run / "replicates.parquet").read_bytes()


# ---- (c) bad input: a clear message and nothing left behind ---------------------------------------------------
def _scenario(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "scen.toml"
    p.write_text(body, encoding="utf-8")
    return p


def _fails(tmp_path, capsys, scenario: Path, *needles: str, extra: tuple[str, ...] = ()) -> None:
    """The run exits non-zero, names what is wrong, and leaves no output or temporary folder."""
    outdir = tmp_path / "outputs"
    outdir.mkdir(exist_ok=True)
    rc = cli.main(["run", str(scenario), "--out", str(outdir / "run"), *TINY, "--workers", "1", *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("caresim: error: ")
    for needle in needles:
        assert needle in err, (needle, err)
    assert _leftovers(outdir) == []


HEAD = '[scenario]\nname = "bad"\n'


def test_malformed_toml(tmp_path, capsys):
    p = _scenario(tmp_path, HEAD + "[parameters\n")
    _fails(tmp_path, capsys, p, str(p), "not valid TOML")


def test_unknown_key_in_scenario(tmp_path, capsys):
    p = _scenario(tmp_path, HEAD + 'colour = "blue"\n')
    _fails(tmp_path, capsys, p, str(p), "scenario.colour", "'blue'")


def test_unknown_table(tmp_path, capsys):
    p = _scenario(tmp_path, HEAD + "[levers]\nx = 1\n")
    _fails(tmp_path, capsys, p, str(p), "'levers'")


def test_unknown_parameter(tmp_path, capsys):
    p = _scenario(tmp_path, HEAD + "[parameters]\n\"care.no_such_thing\" = 0.2\n")
    _fails(tmp_path, capsys, p, str(p), "parameters.care.no_such_thing", "0.2")


def test_probability_above_one(tmp_path, capsys):
    p = _scenario(tmp_path, HEAD + "[parameters]\ncare.short_stay.p = 1.5\n")
    _fails(tmp_path, capsys, p, str(p), "care.short_stay.p", "1.5")


def test_parameter_not_a_number(tmp_path, capsys):
    p = _scenario(tmp_path, HEAD + "[parameters]\n\"care.short_stay.p\" = \"high\"\n")
    _fails(tmp_path, capsys, p, str(p), "care.short_stay.p", "'high'")


def test_bad_run_setting_in_file_and_on_command_line(tmp_path, capsys):
    p = _scenario(tmp_path, HEAD + "[run]\nscale = 2.0\n")
    _fails(tmp_path, capsys, p, str(p), "run.scale", "2.0")
    _fails(tmp_path, capsys, STATUS_QUO, "--end-year", "2050", extra=("--end-year", "2050"))
    _fails(tmp_path, capsys, STATUS_QUO, "--replicates", "0", extra=("--replicates", "0"))


def test_missing_scenario_file(tmp_path, capsys):
    p = tmp_path / "nope.toml"
    _fails(tmp_path, capsys, p, str(p), "not found")


def test_existing_output_folder_is_not_overwritten(tmp_path, capsys):
    outdir = tmp_path / "outputs"
    (outdir / "run").mkdir(parents=True)
    rc = cli.main(["run", str(STATUS_QUO), "--out", str(outdir / "run"), *TINY])
    assert rc == 2 and "already exists" in capsys.readouterr().err
    assert _leftovers(outdir) == ["run"] and _leftovers(outdir / "run") == []


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    """A private copy of the DfE data that a test may break; readers are pointed at it."""
    from calibration import dfe
    src = Path(str(dfe.data_path("national_cla_31mar.csv"))).parent
    dst = tmp_path / "dfe"
    shutil.copytree(src, dst)
    monkeypatch.setattr(dfe, "data_path", lambda name: dst / name)
    dfe.read.cache_clear()
    yield dst
    dfe.read.cache_clear()


def test_missing_data_file(tmp_path, capsys, data_copy):
    (data_copy / "national_cla_31mar.csv").unlink()
    _fails(tmp_path, capsys, STATUS_QUO, "national_cla_31mar.csv", "not found")


def test_broken_csv(tmp_path, capsys, data_copy):
    path = data_copy / "national_cla_31mar.csv"
    lines = path.read_text().splitlines()
    head = lines[0].split(",")
    row = lines[1].split(",")
    row[head.index("value")] = "lots"
    path.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    _fails(tmp_path, capsys, STATUS_QUO, "national_cla_31mar.csv", "'value'", "'lots'")


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    def boom(tmp: Path) -> None:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        output.atomic_folder(tmp_path / "out" / "run", boom)
    assert _leftovers(tmp_path / "out") == []


# ---- scenario files --------------------------------------------------------------------------------------------
def test_scenario_base_inputs_and_overrides(tmp_path):
    from sim import scenario
    (tmp_path / "base.toml").write_text('[scenario]\nname = "base"\n[run]\nseed = 5\nreplicates = 7\n'
                                        '[parameters]\ncare.short_stay.p = 0.12\n[inputs]\nuasc_future_annual = 4000\n')
    child = _scenario(tmp_path, '[scenario]\nname = "reform"\nbase = "base.toml"\n[run]\nseed = 9\n'
                                '[parameters]\n"arrive.uasc.future_annual" = 5000\n')
    sc = scenario.load(child)
    assert sc.name == "reform" and sc.run == {"seed": 9, "replicates": 7}
    assert sc.overrides() == {"care.short_stay.p": 0.12, "arrive.uasc.future_annual": 5000.0}
    assert scenario.load(STATUS_QUO).overrides() == {}


def test_scenario_errors_name_the_field(tmp_path):
    from sim import scenario
    cases = {'[inputs]\nuasc_future_annual = -1\n': "inputs.uasc_future_annual",
             '[run]\nreplicates = "many"\n': "run.replicates",
             '[parameters]\ncare.short_stay.p = 0.1\n"care.short_stay.p" = 0.2\n': "care.short_stay.p",
             '[scenario.extra]\n': "scenario.extra"}
    for body, field in cases.items():
        p = _scenario(tmp_path, HEAD + body)
        with pytest.raises(scenario.ScenarioError, match=field.replace(".", r"\.")):
            scenario.load(p)
    loop = tmp_path / "loop.toml"
    loop.write_text('[scenario]\nname = "loop"\nbase = "loop.toml"\n')
    with pytest.raises(scenario.ScenarioError, match="cycle"):
        scenario.load(loop)


def test_member_cache_is_per_run():
    """A member's tables and spin-up pool are reused within a run only: a later run in the same process (here
    at another scale) gives what it gives in a fresh process."""
    from calibration import ensemble as ens
    table = ens.load()
    table = table[table["member"] <= 3]
    kw = dict(workers=1, progress=False, threads=1, ensemble=table)
    runner.run_scenario(STATUS_QUO, 1, 5, 2016, 0.03, **kw)         # leaves member 1 (scale 0.03) in the cache
    later, _ = runner.run_scenario(STATUS_QUO, 2, 5, 2017, 0.02, **kw)
    runner._MEMBER_CACHE.clear()
    fresh, _ = runner.run_scenario(STATUS_QUO, 2, 5, 2017, 0.02, **kw)
    assert later.equals(fresh)
