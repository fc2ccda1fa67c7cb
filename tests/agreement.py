"""Shared assertions: two samplers' draws of the same posterior agree within MCSE.

The tolerance is Z combined Monte Carlo standard errors (ArviZ's MCSE of the mean and of
the sd); |difference| ≥ 4 MCSE happens by chance with probability about 6e-5.
"""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import xarray as xr

Z = 4.0


def assert_same_posterior(first: np.ndarray, second: np.ndarray, label: str) -> None:
    """Mean and sd of two (chain, draw) arrays of draws agree within Monte Carlo error."""
    for method, stat in (("mean", np.mean), ("sd", np.std)):
        diff = abs(float(stat(first)) - float(stat(second)))
        error = np.hypot(float(azs.mcse(first, method=method)),
                         float(azs.mcse(second, method=method)))
        assert diff < Z * error, (
            f"{label}: {method} differs by {diff:.4g}, more than {Z:g} × MCSE {error:.3g} "
            f"({float(stat(first)):.5g} against {float(stat(second)):.5g})"
        )


def assert_agree(sampler: xr.Dataset, exact: xr.Dataset, min_ess: float) -> None:
    """Every variable's posterior mean and sd agree within Z Monte Carlo errors, and the
    sampler's bulk ESS exceeds ``min_ess`` so that the comparison means something."""
    mcse = {(name, m): azs.mcse(ds, method=m) for name, ds in (("g", sampler), ("e", exact))
            for m in ("mean", "sd")}
    ess = azs.ess(sampler, method="bulk")
    problems = []
    for var in sampler.data_vars:
        g, e = np.asarray(sampler[var]).ravel(), np.asarray(exact[var]).ravel()
        assert float(ess[var]) > min_ess, f"{var}: ESS {float(ess[var]):.0f} too small to test"
        for m, stat in (("mean", np.mean), ("sd", lambda x: np.std(x, ddof=1))):
            diff = abs(float(stat(g)) - float(stat(e)))
            tol = Z * float(np.hypot(mcse["g", m][var], mcse["e", m][var]))
            if not diff < tol:
                problems.append(f"{var} {m}: sampler {stat(g):.5g}, exact {stat(e):.5g}, "
                                f"difference {diff:.3g} ≥ {Z:g} MCSE = {tol:.3g}")
    assert not problems, "; ".join(problems)
