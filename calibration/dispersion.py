"""The observation model's noise, fitted: negative-binomial dispersion of each yearly DfE count series,
Dirichlet-multinomial concentration of each age mix, and the random-walk discrepancy sd (DESIGN §2, §4).

Dispersions are maximum-likelihood fits (scipy.optimize) of the observed series around the fitted model's
simulated means: whatever the model does not reproduce year to year (misfit and real noise alike) counts as
noise, so the parameter ensemble drawn from it is not overconfident. ``perturb`` draws a replicate data set
from that model, for the parametric bootstrap in ``calibration/ensemble.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

# yearly count series with the same key (and meaning) in observed_targets and simulated
COUNT_SERIES = ("ceased.adopted", "ceased.sgo_cao", "ceased.reunified", "ceased.leaving", "ceased.transferred",
                "ceased.other_exit", "started.uasc", "started.non_uasc", "cin_31mar", "cpp_31mar", "cpp_started",
                "cla_31mar", "stock.res_semi_old", "stock.under_1", "stock.uasc", "stock.other_placements")
MIX_SERIES = ("started.by_age", "ceased.by_age")
MIX_TOTAL = {"started.by_age": "started.non_uasc", "ceased.by_age": "ceased.reunified"}  # dispersion of the row total
# placement-stock targets are window means of yearly stocks; they share the dispersion of this series
STOCK_PROXY = "stock.res_semi_old"
K_BOUNDS = (1.0, 1e7)
ALPHA_BOUNDS = (1.0, 1e7)


@dataclass
class NoiseModel:
    """Fitted noise: NB size ``k`` per count series, DM concentration ``alpha`` per mix, RW sds."""
    k: dict[str, float] = field(default_factory=dict)
    alpha: dict[str, float] = field(default_factory=dict)
    disc_sd: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"negative_binomial_k": self.k, "dirichlet_multinomial_alpha": self.alpha,
                "random_walk_sd": self.disc_sd}


def nb_loglik(y: np.ndarray, mu: np.ndarray, k: float) -> float:
    """Negative-binomial log-likelihood (mean ``mu``, variance mu + mu^2 / k)."""
    y, mu = np.round(np.asarray(y, float)), np.maximum(np.asarray(mu, float), 1e-9)
    return float(np.sum(special.gammaln(y + k) - special.gammaln(k) - special.gammaln(y + 1)
                        + k * np.log(k / (k + mu)) + y * np.log(mu / (k + mu))))


def dm_loglik(y: np.ndarray, shares: np.ndarray, alpha: float) -> float:
    """Dirichlet-multinomial log-likelihood of count rows ``y`` [t, j] given expected shares [t, j]."""
    y = np.round(np.asarray(y, float))
    a = alpha * np.maximum(np.asarray(shares, float), 1e-12)
    n = y.sum(axis=1)
    return float(np.sum(special.gammaln(alpha) - special.gammaln(n + alpha))
                 + np.sum(special.gammaln(y + a) - special.gammaln(a)))


def _fit_log(fun, bounds) -> float:
    """Maximise ``fun`` over a positive scalar on a log scale (bounded Brent)."""
    r = optimize.minimize_scalar(lambda t: -fun(float(np.exp(t))), bounds=tuple(np.log(bounds)), method="bounded")
    return float(np.exp(r.x))


def fit_k(y, mu) -> float:
    return _fit_log(lambda k: nb_loglik(y, mu, k), K_BOUNDS)


def fit_alpha(y, expected) -> float:
    e = np.asarray(expected, float)
    shares = e / e.sum(axis=1, keepdims=True)
    return _fit_log(lambda a: dm_loglik(y, shares, a), ALPHA_BOUNDS)


def rw_sd(series) -> float:
    """Root mean square of year-on-year log changes: the maximum-likelihood innovation sd of a random walk
    without drift. The trend rule carries no drift beyond the data (trends stop at the origin), so a series'
    drift is part of the one-year error of the projection and belongs in the innovation, not outside it."""
    d = np.diff(np.log(np.maximum(np.asarray(series, float), 1e-12)))
    return float(np.sqrt(np.mean(d * d))) if d.size >= 2 else 0.0


def discrepancy_sds(obs: dict) -> dict[str, float]:
    """Innovation sds of the entry, exit, residential and other-placements discrepancies from the observed
    series (register rows disc.*.sd say which)."""
    exits = obs["ceased.reunified"] + obs["ceased.adopted"] + obs["ceased.sgo_cao"]
    rs = obs["stock.res_semi_old"]
    share = rs / obs["cla_31mar"][: rs.size]
    other = obs["stock.other_placements"]
    other_share = other / obs["cla_31mar"][1: other.size + 1]  # the series starts in 2016, CLA in 2015
    return {"entry": rw_sd(obs["started.non_uasc"]), "exit": rw_sd(exits), "residential": rw_sd(share),
            "other": rw_sd(other_share)}


def fit(obs: dict, sim: dict) -> NoiseModel:
    """ML dispersions of the observed targets around one fitted engine run (the central parameter set)."""
    nm = NoiseModel()
    for key in COUNT_SERIES:
        y, mu = np.asarray(obs[key], float), np.asarray(sim[key], float)
        n = min(y.size, mu.size)
        nm.k[key] = fit_k(y[:n], mu[:n])
    for key in MIX_SERIES:
        nm.alpha[key] = fit_alpha(obs[key], sim[key])
    nm.disc_sd = discrepancy_sds(obs)
    return nm


def _nb(rng: np.random.Generator, mu, k) -> np.ndarray:
    mu = np.maximum(np.asarray(mu, float), 1e-9)
    return np.asarray(rng.negative_binomial(k, k / (k + mu)), dtype=float)


def perturb(obs: dict, noise: NoiseModel, rng: np.random.Generator) -> dict:
    """One replicate data set: NB counts around each observed yearly series, DM mixes with NB totals, and
    window-mean stock targets with the variance of a mean of independent NB years (proxy dispersion)."""
    out = dict(obs)
    for key in COUNT_SERIES:
        out[key] = _nb(rng, obs[key], noise.k[key])
    for key in MIX_SERIES:
        y = np.asarray(obs[key], float)
        rows = []
        for t in range(y.shape[0]):
            n = int(_nb(rng, y[t].sum(), noise.k[MIX_TOTAL[key]]))
            rows.append(rng.multinomial(n, rng.dirichlet(noise.alpha[key] * np.maximum(y[t], 0.5) / y[t].sum())))
        out[key] = np.array(rows, float)
    if "ceased.leaving" in obs and "ceased.by_age" in obs:  # leaving = leaving before 18 + every cessation at 18:
        before = np.asarray(obs["ceased.leaving"], float) - np.asarray(obs["ceased.by_age"], float)[:, -1]
        out["ceased.leaving"] = (out["ceased.by_age"][:, -1]  # the replicate's 18s plus its own draw of the rest,
                                 + _nb(rng, np.maximum(before, 1.0), noise.k["ceased.leaving"]))  # not two draws apart
    k = noise.k[STOCK_PROXY]
    years = max(len(obs[STOCK_PROXY]), 1)
    for key, val in obs.items():
        if key.startswith("stock.") and np.ndim(val) == 0:
            mu = float(val)
            sd = np.sqrt((1.0 / mu + 1.0 / k) / years)
            out[key] = mu * float(np.exp(rng.normal(0.0, sd) - sd * sd / 2))
    return out
