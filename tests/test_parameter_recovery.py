"""Parameter recovery: data simulated by the engine from known identified parameters, calibrated by the same
pipeline as the shipped ensemble (point fit, fitted noise, Jacobian, randomised-maximum-likelihood members),
must put the known values inside the ensemble's 90% intervals for at least 80% of the identified coordinates
(issue 3).

Small configuration for CI: data, fit and members at scale 0.1; priors held at their true (register) values,
since they are not what is being recovered. About two minutes on the 2-core machine. Measured 95.8% (46 of 48)
on 2026-12-07 (fifth session); 62.5% with the previous damped Gauss-Newton members, whose steps stopped short
of each member's refit and left the ridges of the Jacobian unexplored (docs/CALIBRATION.md).
"""
from __future__ import annotations

import numpy as np
import pytest

from calibration import ensemble as ens
from calibration import first_pass
from calibration.parameters import base_parameters, load_overrides, load_register, resolve

SCALE = 0.1
MEMBERS = 30
SEED = 777


def build_recovery():
    """Known values, synthetic data from them, and the ensemble the shipped pipeline fits to those data."""
    reg = load_register()
    start = base_parameters()  # the shipped point fit: where the calibration starts
    obs_real = first_pass.observed_targets()
    keys = list(first_pass.update(dict(start), obs_real, first_pass.simulated(resolve(start), 1, SCALE), 1.0))
    coords = ens.coordinates(keys, first_pass.DATA_END)
    gen = np.random.default_rng(SEED)
    truth = dict(start)
    for c in coords:  # known values: the shipped fit moved by a random amount the calibration does not know
        sd = 0.01 if c.key.endswith((".trend", ".trend2")) else 0.1
        if c.transform != "logit":
            ens.set_u(truth, c, ens.get_u(truth, c) + gen.normal(0.0, sd))
    data = first_pass.synthetic_targets(first_pass.simulated(resolve(truth), SEED, SCALE))
    priors = {k: r["value"] for k, r in reg.items() if r["kind"] == "prior"}
    table, manifest = ens.build(MEMBERS, first_pass.DATA_END, SEED + 1, fit_iterations=30, fit_scale=SCALE,
                                member_scale=SCALE, member_iterations=3, start=load_overrides(), log=lambda *_: None,
                                obs=data, priors_fixed=priors)
    return coords, truth, table, manifest


@pytest.fixture(scope="module")
def recovery():
    return build_recovery()


def _intervals(recovery) -> list[tuple[ens.Coordinate, float, float]]:
    """Each identified coordinate with its members' 5-95% interval (on the coordinate's own scale)."""
    coords, _, table, _ = recovery
    members = table[table["member"] != ens.CENTRAL]
    out = []
    for c in coords:
        u = np.array([ens.get_u(dict(r), c) for _, r in members.iterrows()])
        lo, hi = np.quantile(u, [0.05, 0.95])
        out.append((c, float(lo), float(hi)))
    return out


def _coverage(recovery) -> tuple[float, list[str]]:
    """Share of identified coordinates whose known value lies in the members' 5-95% interval, and the misses."""
    truth = recovery[1]
    inside = [(c, lo <= ens.get_u(truth, c) <= hi) for c, lo, hi in _intervals(recovery)]
    return float(np.mean([ok for _, ok in inside])), [c.key for c, ok in inside if not ok]


def test_known_values_inside_90_percent_intervals(recovery):
    share, missed = _coverage(recovery)
    assert share >= 0.8, f"{share:.0%} of known values inside the 90% intervals; missed {missed}"


def test_intervals_are_set_by_the_data_not_the_prior(recovery):
    """Coverage by intervals as wide as the weakly informative prior would prove nothing: the members' 90%
    interval must be under half the prior's 90% width for the median coordinate (0.28 measured; ridges of the
    Jacobian, such as the reunification base against its duration shape, stay near the prior's width)."""
    prior_sd = recovery[3]["identified_prior_sd"]
    ratio = [(hi - lo) / (2 * 1.645 * prior_sd[c.key]) for c, lo, hi in _intervals(recovery)]
    assert np.median(ratio) < 0.5, f"median interval / prior width {np.median(ratio):.2f}"


def test_members_differ_and_priors_stay_fixed(recovery):
    coords, _, table, manifest = recovery
    members = table[table["member"] != ens.CENTRAL]
    assert len(members) == MEMBERS
    assert members["care.reunified.base"].std() > 0
    assert manifest["priors_drawn"] == []
    assert members["trend.damping"].nunique() == 1


if __name__ == "__main__":  # python -m tests.test_parameter_recovery: the per-coordinate table behind the figures
    rec = build_recovery()
    truth = rec[1]
    for c, lo, hi in _intervals(rec):
        u = ens.get_u(truth, c)
        print(f"{c.key:34s} {'in ' if lo <= u <= hi else 'OUT'} known {u:+.3f}  members 5-95% {lo:+.3f} .. {hi:+.3f}")
    share, missed = _coverage(rec)
    print(f"known values inside the members' 90% intervals: {share:.1%} of {len(rec[0])}; missed {missed}")
