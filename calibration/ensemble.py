"""Parameter ensemble: the fitted point, its uncertainty, and the labelled priors, as N parameter sets.

Method (docs/CALIBRATION.md, "Ensemble"):
1. Point fit: the first pass's fixed-point moment matching (``first_pass.fit``) gives the identified
   parameters theta* (one coordinate per DfE target statistic, the square system ``first_pass.update`` solves).
2. Noise: negative-binomial and Dirichlet-multinomial dispersions fitted by maximum likelihood to the DfE
   series around the engine's run at theta* (``calibration/dispersion.py``).
3. Jacobian J of the target gaps with respect to the identified coordinates, by forward differences on the
   per-child engine with common random numbers.
4. Gap noise: 40 replicate data sets, each with its own engine seed, measure each gap's sd at theta*.
5. Member b (randomised maximum likelihood): a replicate DfE data set drawn from the fitted noise model
   (parametric bootstrap), every labelled prior drawn from its range (triangular, mode at the register value),
   discrepancy innovations keyed by b, and a prior centre for the identified coordinates (theta* plus noise with
   the weakly informative prior's sds, register ``calib.prior_sd.*``); then Gauss-Newton steps with J on the
   per-child engine minimise the noise-weighted squared gaps plus the prior term. The spread of the members is
   the parameter uncertainty: sampling noise in the data, what the labelled priors leave unidentified, and the
   weak prior along the directions the data do not pin down (docs/CALIBRATION.md, "Ensemble").
Why not MCMC or ABC (emcee, pyabc): each likelihood evaluation is a per-child simulation of 1-2 seconds, and
either would need 10^4-10^5 of them; randomised maximum likelihood with the central Jacobian needs about
2 x (identified coordinates) + 40 + (steps) x N.
"""
from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from calibration import dispersion, first_pass
from calibration.parameters import base_parameters, load_register, resolve
from sim import rng as rngmod

HERE = Path(__file__).parent
SHIPPED = HERE / "ensemble.parquet"
DATA_DIR = HERE / "data" / "dfe"
CENTRAL = 0                       # member 0 is the point fit with priors at their register values
INTEGER_UNITS = {"months", "years", "year"}
NOT_DRAWN = {"trend.end_year"}    # data, not priors


@dataclass(frozen=True)
class Coordinate:
    """One identified coordinate: the gap key it answers, the parameters it moves, and how."""
    key: str
    names: tuple[str, ...]
    transform: str   # "add" (log-scale parameter), "log" (a positive factor) or "logit" (a share)
    step: float


def coordinates(gap_keys: list[str], fit_until: int) -> list[Coordinate]:
    """Coordinates for the gap keys of ``first_pass.update``, with its ties (16/17 age effects, the
    semi-independent trend following children's homes)."""
    tied = {"entry.age.4": ("entry.age.5",), "care.reunified.age.4": ("care.reunified.age.5",),
            "dest.RESIDENTIAL_HOME.trend": ("dest.SEMI_INDEPENDENT.trend",)}
    out = []
    for k in gap_keys:
        if k == "arrive.uasc.factor":
            out.append(Coordinate(k, (k,), "log", 0.1))
        elif k in ("arrive.age0.newborn_share", "capacity.friction"):
            out.append(Coordinate(k, (k,), "logit", 0.5))
        elif k.endswith((".trend", ".trend2")):
            out.append(Coordinate(k, (k,) + tied.get(k, ()), "add", 0.03))
        else:
            out.append(Coordinate(k, (k,) + tied.get(k, ()), "add", 0.15))
    return out


def get_u(v: dict, c: Coordinate) -> float:
    x = v[c.names[0]]
    if c.transform == "log":
        return float(np.log(x))
    if c.transform == "logit":
        return float(np.log(x / (1 - x)))
    return float(x)


def set_u(v: dict, c: Coordinate, u: float) -> None:
    if c.transform == "log":
        x = float(np.clip(np.exp(u), 0.01, 2.0))  # arrive.uasc.factor, the one "log" coordinate
    elif c.transform == "logit":
        x = float(1 / (1 + np.exp(-np.clip(u, -4.6, 4.6))))
    else:
        x = float(u)
    for n in c.names:
        v[n] = x


def gap_vector(v: dict, obs: dict, sim: dict, keys: list[str]) -> np.ndarray:
    """The first pass's gaps (observed vs simulated target statistics), in ``keys`` order."""
    g = first_pass.update(dict(v), obs, sim, 1.0)
    return np.array([g[k] for k in keys])


def jacobian(v: dict, obs: dict, coords: list[Coordinate], seed: int, scale: float, fit_until: int,
             log=print) -> tuple[np.ndarray, np.ndarray, dict]:
    """Central-difference Jacobian of the gaps at ``v`` (common random numbers: one seed throughout; steps
    large enough that Monte Carlo noise in small series stays well below the signal)."""
    keys = [c.key for c in coords]
    sim0 = first_pass.simulated(resolve(v), seed, scale, fit_until)
    g0 = gap_vector(v, obs, sim0, keys)
    J = np.zeros((len(keys), len(coords)))
    t0 = time.time()
    for j, c in enumerate(coords):
        side = []
        for sign in (1.0, -1.0):
            w = dict(v)
            set_u(w, c, get_u(v, c) + sign * c.step)
            side.append(gap_vector(w, obs, first_pass.simulated(resolve(w), seed, scale, fit_until), keys))
        J[:, j] = (side[0] - side[1]) / (2 * c.step)
        if (j + 1) % 10 == 0 or j + 1 == len(coords):
            log(f"  Jacobian column {j + 1}/{len(coords)} ({time.time() - t0:.0f}s)")
    return J, g0, sim0


def prior_names(reg: dict) -> list[str]:
    return [k for k, r in reg.items() if r["kind"] == "prior" and k not in NOT_DRAWN]


def draw_priors(reg: dict, names: list[str], gen: np.random.Generator) -> dict[str, float]:
    """Each labelled prior from a triangular distribution on its range with the mode at the register value."""
    out = {}
    for k in names:
        r = reg[k]
        lo, hi, mode = r["low"], r["high"], r["value"]
        x = float(gen.triangular(lo, mode, hi)) if hi > lo else float(mode)
        out[k] = float(np.round(x)) if r.get("unit") in INTEGER_UNITS else x
    return out


PRIOR_SD_ROWS = {"level": "calib.prior_sd.level", "trend": "calib.prior_sd.trend", "share": "calib.prior_sd.logit"}
NOISE_DRAWS = 40    # replicate data sets (each with its own engine seed) that measure the gaps' noise sds
STEP_CAP_SDS = 2.0  # a refit step moves no coordinate by more than this many prior sds (the whole step is scaled)


def coordinate_kind(c: Coordinate) -> str:
    """Which weakly informative prior a coordinate gets: a share (logit), a trend (per year) or a level (log)."""
    if c.transform == "logit":
        return "share"
    return "trend" if c.key.endswith((".trend", ".trend2")) else "level"


def prior_sds(coords: list[Coordinate], reg: dict) -> np.ndarray:
    """The sd of each identified coordinate's weakly informative prior, centred on the point fit (register rows
    ``calib.prior_sd.*``): it bounds the directions the data do not pin down and is negligible where they do."""
    return np.array([float(reg[PRIOR_SD_ROWS[coordinate_kind(c)]]["value"]) for c in coords])


def posterior_step(u: np.ndarray, u_prior: np.ndarray, J: np.ndarray, g: np.ndarray, w: np.ndarray,
                   sd: np.ndarray) -> np.ndarray:
    """Gauss-Newton step on the member's objective sum w g^2 + sum ((u - u_prior) / sd)^2: the gaps weighted by
    their inverse noise variances, the prior keeping the system well conditioned along the ridges of J. No
    damping beyond the prior; a step longer than ``STEP_CAP_SDS`` prior sds in any coordinate is shortened as a
    whole (its direction kept)."""
    H = J.T @ (w[:, None] * J) + np.diag(1.0 / sd ** 2)
    du = -np.linalg.solve(H, J.T @ (w * g) + (u - u_prior) / sd ** 2)
    over = float(np.max(np.abs(du) / (STEP_CAP_SDS * sd)))
    return du / max(over, 1.0)


@dataclass
class MemberTask:
    """Everything one member's refit (or one noise draw) needs (sent to a worker process)."""
    member: int
    central: dict
    obs: dict
    noise: dispersion.NoiseModel
    coords: list
    J: np.ndarray
    priors: list
    seed: int
    scale: float
    fit_until: int
    iterations: int
    gap_w: np.ndarray | None = None
    prior_sd: np.ndarray | None = None


def noise_gaps(t: MemberTask) -> np.ndarray:
    """The gaps at the point fit for one replicate data set and one engine seed (priors at register values):
    a draw of the gaps' noise (data and Monte Carlo), which weights them in the members' refits."""
    gen = np.random.default_rng([t.seed, 1_000_000 + t.member])
    obs_b = dispersion.perturb(t.obs, t.noise, gen)
    sim = first_pass.simulated(resolve(t.central), rngmod.derive_seed(t.seed, 1_000_000 + t.member), t.scale,
                               t.fit_until)
    return gap_vector(dict(t.central), obs_b, sim, [c.key for c in t.coords])


def fit_member(t: MemberTask) -> tuple[int, dict, dict]:
    """Member ``t.member`` by randomised maximum likelihood: draw its data set (parametric bootstrap), its labelled
    priors and a prior centre for the identified coordinates (the point fit plus prior-sd noise), then take
    Gauss-Newton steps with the central Jacobian, each gap evaluated by the per-child engine. In the linear-
    Gaussian limit the members are draws from the posterior; returns its values and diagnostics."""
    gen = np.random.default_rng([t.seed, t.member])
    reg = load_register()
    obs_b = dispersion.perturb(t.obs, t.noise, gen)
    v = dict(t.central)
    v.update(draw_priors(reg, t.priors, gen))
    v.update({f"disc.{g}.sd": sd for g, sd in t.noise.disc_sd.items()})
    v["disc.key"] = float(t.member)
    keys = [c.key for c in t.coords]
    u_prior = np.array([get_u(t.central, c) for c in t.coords]) + t.prior_sd * gen.standard_normal(len(t.coords))
    sim_seed = rngmod.derive_seed(t.seed, 100_000 + t.member)
    rms = []
    for _ in range(t.iterations):
        g = gap_vector(v, obs_b, first_pass.simulated(resolve(v), sim_seed, t.scale, t.fit_until), keys)
        rms.append(float(np.sqrt(np.mean(g ** 2))))
        u = np.array([get_u(v, c) for c in t.coords])
        for c, x in zip(t.coords, u + posterior_step(u, u_prior, t.J, g, t.gap_w, t.prior_sd)):
            set_u(v, c, float(x))
    return t.member, v, {"gap_rms_first": rms[0] if rms else float("nan"),
                         "gap_rms_last": rms[-1] if rms else float("nan")}


GAP_SD_FLOOR = 1e-4  # a gap with no measured noise (a statistic the engine reproduces exactly) still weighs finitely


def _init(threads: int) -> None:
    from sim.runner import set_threads
    set_threads(threads)


@contextmanager
def _mapper(workers: int):
    """``map`` in this process (workers <= 1) or over a spawned pool with one numba thread per worker."""
    if workers <= 1:
        yield map
        return
    import multiprocessing
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init,
                             initargs=(1,)) as ex:
        yield ex.map


def data_hash(files=None) -> str:
    """SHA-256 over the DfE data files the calibration reads (name and bytes, sorted)."""
    h = hashlib.sha256()
    for f in sorted(files or DATA_DIR.glob("*.csv")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def build(members: int = 200, fit_until: int = first_pass.DATA_END, seed: int = 20150331,
          fit_iterations: int = 40, fit_scale: float = 0.5, member_scale: float = 0.25, member_iterations: int = 2,
          workers: int = 1, start: dict | None = None, log=print, obs: dict | None = None,
          priors_fixed: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Fit, then draw ``members`` parameter sets; returns the ensemble table and its manifest. ``obs`` replaces
    the DfE targets and ``priors_fixed`` fixes priors at given values (parameter-recovery test)."""
    if member_iterations < 1:
        raise ValueError(f"member_iterations: {member_iterations!r} must be at least 1")
    t0 = time.time()
    reg = load_register()
    obs = first_pass.observed_targets(fit_until) if obs is None else obs
    log(f"point fit on data to {fit_until}: {fit_iterations} fixed-point iterations at scale {fit_scale}")
    fitted = first_pass.fit(fit_iterations, fit_scale, seed, fit_until=fit_until, start=start, log=log, obs=obs,
                            priors=priors_fixed, average=fit_iterations // 2)
    central = base_parameters(dict(fitted, **(priors_fixed or {}), **{"trend.end_year": fit_until}),
                              use_first_pass=False)
    t_fit = time.time() - t0
    sim0 = first_pass.simulated(resolve(central), seed, fit_scale, fit_until)
    keys = list(first_pass.update(dict(central), obs, sim0, 1.0))
    coords = coordinates(keys, fit_until)
    noise = dispersion.fit(obs, sim0)
    log(f"Jacobian: {len(coords)} identified coordinates at scale {fit_scale}")
    J, g0, _ = jacobian(central, obs, coords, seed, fit_scale, fit_until, log=log)
    t_jac = time.time() - t0 - t_fit
    priors = [k for k in prior_names(reg) if k not in (priors_fixed or {})]
    sd = prior_sds(coords, reg)
    task = lambda b, **kw: MemberTask(b, central, obs, noise, coords, J, priors, seed, member_scale, fit_until,
                                      member_iterations, prior_sd=sd, **kw)
    from tqdm import tqdm
    with _mapper(workers) as pmap:
        n_noise = min(NOISE_DRAWS, max(members, 2))
        log(f"gap noise: {n_noise} replicate data sets at the point fit, scale {member_scale}")
        G = np.array(list(tqdm(pmap(noise_gaps, [task(k) for k in range(n_noise)]),
                               total=n_noise, desc="noise", unit="draw")))
        gap_sd = np.maximum(G.std(axis=0, ddof=1), GAP_SD_FLOOR)
        log(f"members: {members} parameter sets, {member_iterations} Gauss-Newton steps each at scale "
            f"{member_scale}")
        results = {}
        tasks = [task(b, gap_w=1.0 / gap_sd ** 2) for b in range(1, members + 1)]
        for b, v, d in tqdm(pmap(fit_member, tasks), total=members, desc="members", unit="set"):
            results[b] = (v, d)
    t_mem = time.time() - t0 - t_fit - t_jac
    rows = [dict(central, member=CENTRAL, gap_rms_first=float(np.sqrt(np.mean(g0 ** 2))),
                 gap_rms_last=float(np.sqrt(np.mean(g0 ** 2))))]
    rows += [dict(results[b][0], member=b, **results[b][1]) for b in sorted(results)]
    table = pd.DataFrame(rows)
    table = table[["member"] + [c for c in table.columns if c != "member"]]
    manifest = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "data_sha256": data_hash(),
        "method": "fixed-point moment matching point fit; ML negative-binomial / Dirichlet-multinomial "
                  "dispersions; Jacobian by common-random-number finite differences; members = parametric "
                  "bootstrap data sets x triangular prior draws x weakly informative prior centres for the identified "
                  "coordinates (randomised maximum likelihood), refitted by Gauss-Newton on the per-child engine "
                  "with gaps weighted by their measured noise",
        "settings": {"members": members, "fit_until": fit_until, "seed": seed, "fit_iterations": fit_iterations,
                     "fit_scale": fit_scale, "member_scale": member_scale, "member_iterations": member_iterations},
        "identified": [c.key for c in coords], "priors_drawn": priors, "noise": noise.as_dict(),
        "gap_noise_sd": dict(zip((c.key for c in coords), map(float, gap_sd))),
        "identified_prior_sd": dict(zip((c.key for c in coords), map(float, sd))),
        "diagnostics": {"jacobian_condition": float(np.linalg.cond(J)),
                        "central_gap_rms": float(np.sqrt(np.mean(g0 ** 2))),
                        "member_gap_rms_last_median": float(table["gap_rms_last"][1:].median()),
                        "member_gap_rms_last_max": float(table["gap_rms_last"][1:].max()),
                        "seconds": {"fit": t_fit, "jacobian": t_jac, "members": t_mem}},
    }
    return table, manifest


FITTED_AFTER = "cost.ro3."  # RO3 rows are fitted from a run of the finished ensemble: the register holds them


def write(table: pd.DataFrame, manifest: dict, path: Path) -> None:
    """Parquet table and JSON manifest side by side, each written to a temporary name and renamed. Register rows
    fitted after the ensemble (``FITTED_AFTER``) are left out, so runs read their current register values."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    table.drop(columns=[c for c in table.columns if c.startswith(FITTED_AFTER)]).to_parquet(tmp, index=False)
    tmp.replace(path)
    mpath = path.with_suffix(".json")
    tmpm = mpath.with_name(mpath.name + ".tmp")
    tmpm.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmpm.replace(mpath)


class EnsembleError(ValueError):
    """An ensemble file is missing or malformed; the message names the file and field."""


def load(path: str | Path = SHIPPED) -> pd.DataFrame:
    """Read an ensemble table and check it against the register."""
    path = Path(path)
    if not path.is_file():
        raise EnsembleError(f"{path}: ensemble file not found")
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise EnsembleError(f"{path}: not a readable Parquet file ({exc})") from None
    if "member" not in table.columns or CENTRAL not in set(table["member"]):
        raise EnsembleError(f"{path}: field 'member' missing, or no central member {CENTRAL}")
    reg = load_register()
    unknown = [c for c in table.columns if c not in reg and c not in ("member", "gap_rms_first", "gap_rms_last")]
    if unknown:
        raise EnsembleError(f"{path}: unknown parameter column(s) {unknown[:5]}")
    return table.sort_values("member").reset_index(drop=True)


def member_params(table: pd.DataFrame, member: int) -> dict[str, float]:
    """One member's full parameter set (register values for any column the table lacks), validated."""
    row = table.loc[table["member"] == member]
    if row.empty:
        raise EnsembleError(f"ensemble: no member {member}")
    reg = load_register()
    vals = {k: float(row.iloc[0][k]) for k in table.columns if k in reg}
    vals.setdefault("capacity.constraint", 0.0)   # an ensemble without the column was fitted without the constraint
    return base_parameters(vals, use_first_pass=False)
