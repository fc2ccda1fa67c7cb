"""Maximum likelihood of a GLMM by adaptive Gauss–Hermite quadrature, and the exact draws
of its group effects: time against the number of groups.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python bench/agq.py            # 10^2, 10^3, 10^4 groups
    PYTHONPATH=src .venv/bin/python bench/agq.py --groups 100,1000

Workload: a binomial model with 10 rows per group, 5 trials per row, one covariate x,
logit p = −0.5 + 0.4 x + b_g0 (+ b_g1 x for k = 2), sd 0.8 (and 0.4, correlation 0.3),
simulated with a fixed seed. Timed: ``fit_glmm`` (the optimisation with its Hessian and
the final modes) at 1 and 9 points per dimension, then ``draw_glmm_effects`` for 1,000
draws of β from N(β̂, Cov β̂) (one exact draw of every group's effects per β), each once,
in this process (wall-clock ``time.perf_counter``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import poolwise
from poolwise.kinds.mixed.glmm import draw_glmm_effects, fit_glmm


def design(groups: int, k: int):
    rng = np.random.default_rng([20261205, groups, k])
    g = np.repeat(np.arange(groups), 10)
    x = rng.normal(size=g.size)
    sigma = np.array([[0.64, 0.3 * 0.8 * 0.4], [0.3 * 0.8 * 0.4, 0.16]])[:k, :k]
    b = rng.multivariate_normal(np.zeros(k), sigma, size=groups)
    eta = -0.5 + 0.4 * x + b[g, 0] + (b[g, 1] * x if k == 2 else 0.0)
    y = rng.binomial(5, 1.0 / (1.0 + np.exp(-eta)))
    table = pd.DataFrame({"y": y, "n": 5, "x": x, "g": g.astype(str)})
    term = "(1 | g)" if k == 1 else "(1 + x | g)"
    model = poolwise.MixedModel(formula=f"y | trials(n) ~ x + {term}", family="binomial")
    return model.prepare(table).design


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="100,1000,10000")
    args = parser.parse_args()
    print(f"{'k':>2} {'groups':>7} {'agq':>4} {'fit s':>7} {'evals':>6} {'logLik':>13} "
          f"{'draws s':>8}")
    for k in (1, 2):
        for groups in (int(v) for v in args.groups.split(",")):
            data = design(groups, k)
            for n_agq in (1, 9):
                start = time.perf_counter()
                estimate = fit_glmm(data, n_agq=n_agq)
                fitted = time.perf_counter() - start
                drawn = float("nan")
                if n_agq == 9:
                    rng = np.random.default_rng(1)
                    beta = rng.multivariate_normal(estimate.beta, estimate.beta_cov, 1000)
                    start = time.perf_counter()
                    draw_glmm_effects(data, estimate, beta, rng)
                    drawn = time.perf_counter() - start
                print(f"{k:>2} {groups:>7,} {n_agq:>4} {fitted:>7.2f} "
                      f"{estimate.n_iterations:>6} {estimate.log_likelihood:>13.3f} "
                      f"{drawn:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
