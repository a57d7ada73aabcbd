"""One local authority's parameter ensemble, partially pooled with England's (``caresim calibrate --la CODE``).

Model. An LA's parameters are England's (each member of the national ensemble) plus LA effects theta on a few
coordinates (``COORDINATES``: entry level and trend, reunification level and trend, adoption, SGO/CAO, leaving
care at 16-17, UASC transfers out and UASC arrivals, the residential placement weight), all on the log scale. The LA's own population and 31 March 2015 stock are
inputs (``calibration.inputs.local``). An authority created after 2015 (``calibration.boundaries``) has its
earlier years mapped from its predecessors by population share, and one more effect, ``mapping``
(``la.mapped.stock``): the log ratio of its true 2015 stock to the mapped one, which also divides the simulated
counts of the mapped years (prior sd ``la.pool.mapping.sd``); its own years identify it.

Fit. Maximum a posteriori theta under
  * a negative-binomial likelihood of the LA's published counts (``local_data.targets``; sizes k from the
    scatter of all LAs' series, ``local_data.noise_k``), suppressed cells entering as censored intervals
    P(lo <= Y <= hi);
  * a normal pooling prior theta_j ~ N(0, tau_j^2), tau from the spread of all LAs' crude rates
    (``local_data.pooling_sds``): empirical-Bayes partial pooling, so a small LA stays near England's rates
    and a large one follows its own data. UASC arrivals are not published by LA: their tau is the register
    prior ``la.pool.uasc.sd``.
The engine's response is linearised in log counts (central differences on the per-child engine with common
random numbers, at theta = 0) and re-centred on an engine run at each new estimate (``OUTER`` times);
scipy.optimize (L-BFGS-B) maximises the surrogate posterior.

Uncertainty. Laplace: theta_b ~ N(theta_hat, H^-1), H the Hessian of the negative log posterior at the MAP
(numerical). Member b = national member b (its priors, its other identified parameters, its discrepancy
path) + theta_b; the discrepancy sds get the LA-specific part in quadrature
(``local_data.discrepancy_extra_sds``). Member 0 = England's central member + theta_hat.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from calibration import ensemble as ens
from calibration import inputs as model_inputs
from calibration import local_data as D

FIT_CLA = 25_000.0      # fit runs simulate the LA at a scale giving about this many children in care
MAX_SCALE = 200.0
OUTER = 3               # engine re-centrings of the linearised fit
HESSIAN_STEP = 1e-3
BOUND_SDS = 5.0         # theta is searched within 5 pooling sds (or 0.3 / 0.03 at least) of England


@dataclass(frozen=True)
class LocalCoordinate:
    """One LA effect: the register parameters it shifts (log scale), its finite-difference step, and the
    target families that identify it (documentation)."""
    key: str
    names: tuple[str, ...]
    step: float
    identified_by: tuple[str, ...]


COORDINATES = (
    LocalCoordinate("entry", ("entry.level",), 0.15, ("started", "cla")),
    LocalCoordinate("entry_trend", ("entry.trend",), 0.03, ("started",)),
    LocalCoordinate("reunified", ("care.reunified.base",), 0.15, ("returned_home", "ceased", "cla")),
    LocalCoordinate("reunified_trend", ("care.reunified.trend",), 0.03, ("returned_home",)),
    LocalCoordinate("adoption", ("care.to_adoption.base",), 0.15, ("adopted",)),
    LocalCoordinate("sgo_cao", ("care.sgo_cao.base",), 0.15, ("sgo_cao",)),
    LocalCoordinate("left_care", ("care.left_care.base",), 0.15, ("left_care_or_aged_out",)),
    LocalCoordinate("transferred", ("care.transferred.uasc",), 0.15, ("care_taken_by_another_la",)),
    LocalCoordinate("uasc", ("arrive.uasc.local",), 0.15, ("started", "care_taken_by_another_la")),
    LocalCoordinate("residential", ("dest.RESIDENTIAL_HOME.base", "dest.SEMI_INDEPENDENT.base"), 0.15,
                    ("residential",)),
)
MAPPING = LocalCoordinate("mapping", ("la.mapped.stock",), 0.1, ("cla", "started", "ceased"))
DISC_GROUPS = ("entry", "exit", "residential")
UASC_SD = "la.pool.uasc.sd"   # register prior: LA spread of UASC arrivals (not published by LA)
MAPPING_SD = "la.pool.mapping.sd"   # register prior: successor's care share vs population share of its predecessors


class LocalError(ValueError):
    """A local calibration cannot run as asked; the message says why and what to do."""


def coordinates_for(targets: list[D.Target]) -> tuple[LocalCoordinate, ...]:
    """The LA effects fitted: ``COORDINATES``, and ``MAPPING`` for an authority whose early years are mapped
    from its predecessors."""
    return COORDINATES + ((MAPPING,) if any(t.mapped for t in targets) else ())


def shifted(params: dict, theta: np.ndarray, coords=COORDINATES) -> dict:
    """England's parameters with the LA effects added (every coordinate is on the log scale)."""
    out = dict(params)
    for c, t in zip(coords, theta):
        for n in c.names:
            out[n] = float(out[n]) + float(t)
    return out


def fit_scale(inputs, fit_cla: float = FIT_CLA) -> float:
    """Simulation scale for the fit runs (Monte Carlo noise well below the data's)."""
    cla = sum(inputs.init_cla_old.values())
    return float(np.clip(fit_cla / max(cla, 1.0), 1.0, MAX_SCALE))


def simulate(params: dict, inputs, seed: int, scale: float, fit_until: int, targets: list[D.Target]) -> np.ndarray:
    """The engine's expected value of each target (one replicate at ``scale``, counts per real LA). A mapped
    target (a year before the authority existed) is the simulated count divided by exp(``la.mapped.stock``): the
    population-share estimate, not the authority's own count."""
    from calibration.parameters import resolve
    from sim import engine, observe
    params = resolve(params)
    tables = engine.YearTables.build(params, D.FIRST_FLOW, fit_until)
    from calibration.first_pass import constrained
    res = engine.run_replicate(params, inputs, tables, seed,
                               engine.Settings(end_year=fit_until, scale=scale, capacity=constrained(params)))
    df = observe.tidy(res, "fit", 0, 0, area=inputs.area)
    df = df[(df["age_band"] == "all") & (df["uasc"] == "all")]
    look = dict(zip(zip(df["year"], df["measure"], df["scheme"], df["category"]), df["value"]))
    ratio = float(np.exp(-params.get(MAPPING.names[0], 0.0)))
    return np.array([look[(t.year, t.measure, t.scheme, t.category)] * (ratio if t.mapped else 1.0)
                     for t in targets], dtype=float)


@dataclass
class Problem:
    """The linearised posterior: log mu(theta) = log mu0 + J (theta - theta0)."""
    lo: np.ndarray
    hi: np.ndarray
    k: np.ndarray
    tau: np.ndarray
    J: np.ndarray
    mu0: np.ndarray
    theta0: np.ndarray
    floor: float

    def mu(self, theta: np.ndarray) -> np.ndarray:
        return np.maximum(self.mu0, self.floor) * np.exp(np.clip(self.J @ (theta - self.theta0), -20, 20))

    def neg_log_lik(self, mu: np.ndarray) -> np.ndarray:
        """Per target: -log P(lo <= Y <= hi), Y ~ NB(mean mu, size k) (a point mass when lo == hi)."""
        p = self.k / (self.k + mu)
        exact = self.lo == self.hi
        out = np.empty_like(mu)
        out[exact] = -stats.nbinom.logpmf(np.round(self.lo[exact]), self.k[exact], p[exact])
        c = ~exact
        if c.any():
            prob = stats.nbinom.cdf(self.hi[c], self.k[c], p[c]) - stats.nbinom.cdf(self.lo[c] - 1, self.k[c], p[c])
            out[c] = -np.log(np.maximum(prob, 1e-300))
        return out

    def objective(self, theta: np.ndarray) -> float:
        return float(self.neg_log_lik(self.mu(theta)).sum() + 0.5 * np.sum((theta / self.tau) ** 2))


def _bounds(tau: np.ndarray, coords) -> list[tuple[float, float]]:
    return [(-max(BOUND_SDS * t, c.step * 2), max(BOUND_SDS * t, c.step * 2)) for t, c in zip(tau, coords)]


def map_fit(prob: Problem, start: np.ndarray, coords=COORDINATES) -> np.ndarray:
    """Maximum a posteriori theta of the linearised problem (L-BFGS-B within the bounds)."""
    r = optimize.minimize(prob.objective, start, method="L-BFGS-B", bounds=_bounds(prob.tau, coords))
    return np.asarray(r.x, dtype=float)


def hessian(f, x: np.ndarray, h: float = HESSIAN_STEP) -> np.ndarray:
    """Central-difference Hessian of a scalar function."""
    n = x.size
    H = np.zeros((n, n))
    for i in range(n):
        for j in range(i, n):
            e_i, e_j = np.eye(n)[i] * h, np.eye(n)[j] * h
            H[i, j] = H[j, i] = (f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)) / (4 * h * h)
    return H


def posterior_cov(prob: Problem, theta: np.ndarray) -> np.ndarray:
    """Laplace covariance: the inverse Hessian at the MAP, its eigenvalues floored at the pooling prior's
    precision (never narrower than the data allow, never wider than the prior)."""
    H = hessian(prob.objective, theta)
    w, V = np.linalg.eigh(0.5 * (H + H.T))
    w = np.maximum(w, 1.0 / np.max(prob.tau) ** 2)
    cov = (V / w) @ V.T
    return np.minimum(cov, np.diag(prob.tau ** 2).max()) if not np.all(np.isfinite(cov)) else cov


def build(code: str, national: pd.DataFrame, members: int = 200, fit_until: int = 2024, seed: int = 20150331,
          log=print, fit_cla: float = FIT_CLA) -> tuple[pd.DataFrame, dict]:
    """Fit one LA and draw its ensemble (table as ``calibration.ensemble``, manifest with the LA fit);
    ``fit_cla`` sets the fit runs' size (smaller: faster and noisier, for tests)."""
    t0 = time.time()
    if fit_until < D.MIN_FIT_UNTIL:
        raise LocalError(f"--fit-until: {fit_until} is too early for a local fit (at least {D.MIN_FIT_UNTIL}: the "
                         f"between-LA statistics of cessations by reason, published from 2015, need 4 years)")
    inputs = model_inputs.local(code)
    targets = D.targets(code, fit_until)
    central = ens.member_params(national, ens.CENTRAL)
    first = D.pool_first(fit_until)
    tau_by = D.pooling_sds(first, fit_until)
    k_by = D.noise_k(first, fit_until)
    from calibration.parameters import base_parameters
    register = base_parameters()
    tau_by = {**tau_by, "uasc": float(register[UASC_SD]), "mapping": float(register[MAPPING_SD])}
    coords = coordinates_for(targets)
    estimates = {**{f"pooling sd {k}": v for k, v in tau_by.items()}, **{f"noise k {k}": v for k, v in k_by.items()}}
    if bad := sorted(k for k, v in estimates.items() if not np.isfinite(v)):
        raise LocalError(f"calibration/data/dfe/la_cla.csv: too few authorities with complete series {first}-"
                         f"{fit_until} to estimate {', '.join(bad)}")
    tau = np.array([max(tau_by[c.key], 1e-3) for c in coords])
    scale = fit_scale(inputs, fit_cla)
    n = len(coords)
    log(f"{code} {inputs.la_names[0]}: {len(targets)} targets ({sum(t.censored for t in targets)} censored), "
        f"fit scale {scale:g}" + (f"; {sum(t.mapped for t in targets)} mapped from predecessors"
                                  if MAPPING in coords else ""))
    run = lambda th: simulate(shifted(central, th, coords), inputs, seed, scale, fit_until, targets)  # noqa: E731
    mu0 = run(np.zeros(n))
    floor = 0.5 / scale
    J = np.zeros((len(targets), n))
    for j, c in enumerate(coords):
        e = np.eye(n)[j] * c.step
        J[:, j] = (np.log(np.maximum(run(e), floor)) - np.log(np.maximum(run(-e), floor))) / (2 * c.step)
    t_jac = time.time() - t0
    prob = Problem(lo=np.array([t.lo for t in targets]), hi=np.array([t.hi for t in targets]),
                   k=np.array([k_by[t.family] for t in targets]), tau=tau, J=J, mu0=mu0, theta0=np.zeros(n),
                   floor=floor)
    history = [{"iteration": 0, "theta": [0.0] * n, "engine_objective": prob.objective(np.zeros(n))}]
    theta = np.zeros(n)
    for it in range(1, OUTER + 1):
        theta = map_fit(prob, theta, coords)
        prob.mu0, prob.theta0 = run(theta), theta.copy()  # re-centre on the engine at the new estimate
        history.append({"iteration": it, "theta": [round(float(x), 5) for x in theta],
                        "engine_objective": prob.objective(theta)})
        log(f"  outer {it}: objective {history[-1]['engine_objective']:.1f}, "
            + ", ".join(f"{c.key} {x:+.3f}" for c, x in zip(coords, theta)))
    theta = map_fit(prob, theta, coords)
    cov = posterior_cov(prob, theta)
    sd = np.sqrt(np.diag(cov))
    t_fit = time.time() - t0

    gen = np.random.default_rng([seed, 7])
    draws = gen.multivariate_normal(theta, cov, size=members, method="eigh")
    nat_members = sorted(int(m) for m in national["member"] if m != ens.CENTRAL) or [ens.CENTRAL]
    extra = D.discrepancy_extra_sds(first, fit_until)
    rows = [{"member": ens.CENTRAL, **shifted(central, theta, coords)}]
    for b in range(1, members + 1):
        p = shifted(ens.member_params(national, nat_members[(b - 1) % len(nat_members)]), draws[b - 1], coords)
        for g in DISC_GROUPS:
            p[f"disc.{g}.sd"] = float(np.hypot(p.get(f"disc.{g}.sd", 0.0), extra[g]))
        rows.append({"member": b, **p})
    table = pd.DataFrame(rows)  # every register parameter (England's table may lack the local-only ones)
    names = [n for c in coords for n in c.names]
    manifest = {
        "area": code, "la_name": inputs.la_names[0],
        "method": ("local authority: England's ensemble members plus LA effects on "
                   + ", ".join(c.key for c in coords) + "; MAP under a negative-binomial likelihood of the "
                   "LA's DfE counts (suppressed cells censored) and a normal partial-pooling prior (between-LA "
                   "sds of crude rates), engine linearised with CRN central differences and re-centred "
                   f"{OUTER} times; members from the Laplace approximation (calibration/local.py)"),
        "settings": {"members": members, "fit_until": fit_until, "seed": seed, "fit_scale": scale,
                     "outer_iterations": OUTER},
        "identified": names, "priors_drawn": [],
        "local": {
            "coordinates": {c.key: {"parameters": list(c.names), "identified_by": list(c.identified_by),
                                    "pooling_sd": float(t), "map": float(x), "posterior_sd": float(s),
                                    "shrinkage_sd_ratio": float(s / t)}
                            for c, t, x, s in zip(coords, tau, theta, sd)},
            "posterior_cov": cov.round(8).tolist(),
            "targets": len(targets), "censored": int(sum(t.censored for t in targets)),
            "mapped": int(sum(t.mapped for t in targets)),
            "history": history, "inputs_note": inputs.notes,
        },
        "noise": {"negative_binomial_k": {f: float(v) for f, v in k_by.items()},
                  "random_walk_sd_extra": {g: float(v) for g, v in extra.items()}},
        "diagnostics": {"seconds": {"jacobian": t_jac, "fit": t_fit - t_jac, "members": time.time() - t0 - t_fit}},
    }
    return table, manifest
