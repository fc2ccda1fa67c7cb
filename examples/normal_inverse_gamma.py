"""Normal data with unknown mean and variance: the Normal-Inverse-Gamma prior (lecture 001).

The lecture's model for observations y_1..y_n of one group,

    y_i ~ N(θ, σ²),   θ | σ² ~ N(μ, σ² τ²),   σ² ~ IG(α, β),

is conjugate: σ² | y ~ IG(α*, β*) and θ | σ², y ~ N(m*, σ² v*), so the posterior is sampled
exactly by the lecture's sequential algorithm (σ² from its marginal, then θ given σ²). The
lecture closes by asking for the marginal posterior of θ: it is a Student t with 2α*
degrees of freedom. This script

1. simulates eight labs with their own mean and spread (seed 0),
2. fits each lab separately under a fixed NIG prior (``pooling="none"``) and checks the exact
   draws of θ against the Student-t marginal with a Kolmogorov-Smirnov test,
3. fits the labs together (``pooling="partial"``, μ, τ, α, β by type-II maximum
   likelihood), which pulls small labs' means and variances towards the others,
4. predicts the mean of five new measurements from lab 1 and from a new lab.

Run: python examples/normal_inverse_gamma.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import poolwise

PRIOR = "mu=10, tau=2, alpha=2, beta=1"


def simulate(seed: int = 0) -> pd.DataFrame:
    """Eight labs, 3 to 15 measurements each, lab means around 10 and sds around 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for lab in range(8):
        mean, sd, n = rng.normal(10, 1.5), rng.lognormal(0, 0.4), rng.integers(3, 16)
        rows += [(f"lab {lab + 1}", value) for value in rng.normal(mean, sd, n)]
    return pd.DataFrame(rows, columns=["lab", "value"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws")
    parser.add_argument("--out", type=Path, default=Path("nig-output"))
    args = parser.parse_args()
    draws = 500 if args.quick else 5000
    args.out.mkdir(parents=True, exist_ok=True)

    table = simulate()
    separate = poolwise.NIGModel(pooling="none", prior=PRIOR, draws=draws).fit(
        table, y="value", group="lab")
    print(f"prior: {separate.describe_prior()}")
    theta = separate.posterior["theta"].sel(group="lab 1").values.ravel()
    marginal = separate.theta_marginal("lab 1")
    ks = stats.kstest(theta, marginal.cdf)
    print(f"lab 1: exact draws of θ vs the Student t (df = {marginal.kwds['df']:.0f}): "
          f"KS statistic {ks.statistic:.4f}, p = {ks.pvalue:.2f}")

    pooled = poolwise.NIGModel(pooling="partial", draws=draws).fit(
        table, y="value", group="lab")
    print(f"partial pooling: {pooled.describe_prior()}")
    both = pd.DataFrame({
        "raw mean": table.groupby("lab")["value"].mean(),
        "n": table.groupby("lab")["value"].size(),
        "θ, none": [separate.theta_marginal(lab).mean() for lab in separate.data.labels],
        "θ, partial": [pooled.theta_marginal(lab).mean() for lab in pooled.data.labels],
    })
    print(both.round(3).to_string())
    for request in (poolwise.ExistingGroup("lab 1", size=5), poolwise.NewGroup(size=5)):
        prediction = pooled.predict(request)
        y = prediction.summary().set_index("param").loc["y"]
        print(f"{prediction.description}\n  ȳ* = {y['mean']:.3f}, 95% interval "
              f"({y['lower']:.3f}, {y['upper']:.3f})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(theta, bins=60, density=True, color="#9ecae1", label="exact draws of θ")
    grid = np.linspace(*np.quantile(theta, [0.001, 0.999]), 400)
    ax.plot(grid, marginal.pdf(grid), color="#08519c", label="Student-t marginal")
    ax.set_xlabel("θ (lab 1)")
    ax.set_ylabel("density")
    ax.set_title(f"NIG posterior of θ: KS p = {ks.pvalue:.2f}")
    ax.legend(frameon=False)
    figure.savefig(args.out / "nig_theta.png", dpi=120, bbox_inches="tight")
    print(f"wrote {args.out / 'nig_theta.png'}")


if __name__ == "__main__":
    main()
