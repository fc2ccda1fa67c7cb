"""Simulation-based calibration of ``exact`` (Talts et al. 2018, arXiv:1804.06788).

Draw (α, β) from a proper hyperprior, θ and y from the model, fit, and record the rank of
the true value among the posterior draws. If the sampler is right, ranks are uniform. The
χ² test over 10 bins has a declared false-alarm rate of 1e-3 per quantity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from poolwise import Model

REPLICATIONS = 200
DRAWS = 99  # ranks 0..99: 100 values, 10 bins of 10


@pytest.mark.slow
@pytest.mark.parametrize("family", ["beta-binomial", "gamma-poisson"])
def test_exact_is_calibrated(family):
    rng = np.random.default_rng(2026)
    model = Model(family=family, prior="alpha=gamma(4, 1), beta=gamma(4, 0.2)")
    ranks: dict[str, list[int]] = {"mu": [], "kappa": [], "theta[0]": []}
    groups, size = 8, np.full(8, 20.0)
    for r in range(REPLICATIONS):
        alpha, beta = rng.gamma(4.0, 1.0), rng.gamma(4.0, 5.0)
        theta = model.family.sample_population(rng, np.full(groups, alpha), beta)
        exposure = size if family == "beta-binomial" else size * 10.0
        y = model.family.sample_data(rng, theta, exposure)
        table = pd.DataFrame({"y": y, "n": exposure})
        fit = model.replace(draws=DRAWS, chains=1, seed=r).fit(table, y="y", n="n")
        truth = {"mu": model.family.population_mean(alpha, beta),
                 "kappa": model.family.concentration(alpha, beta), "theta[0]": theta[0]}
        draws = {"mu": fit.draws("mu").ravel(), "kappa": fit.draws("kappa").ravel(),
                 "theta[0]": fit.draws("theta")[..., 0].ravel()}
        for name in ranks:
            ranks[name].append(int(np.sum(draws[name] < truth[name])))
    for name, values in ranks.items():
        counts = np.bincount(np.asarray(values) // 10, minlength=10)
        p = stats.chisquare(counts).pvalue
        assert p > 1e-3, f"{name}: ranks not uniform, counts {counts.tolist()}, p = {p:.2g}"
