"""Aspirin after a heart attack (lecture 003): a meta-analysis of six studies.

Each study reports y, the difference in mean survivorship between aspirin and placebo, with
a standard error (``sd``). The notes fit

    y_i ~ N(θ_i, sd_i²),  θ_i ~ N(μ, τ²),  μ ~ N(ȳ, 10 s_y),  τ ~ HalfCauchy(5 s_y),

with ȳ and s_y the mean and population standard deviation of the six y (``jnp.std``), by
NUTS with 1000 draws, and print μ mean 1.51 (sd 1.14), τ mean 1.99 (sd 1.34) and θ_6 (AMIS,
the one large study with a negative effect) mean −0.49 (sd 0.90). poolwise gets the same
posterior by quadrature (``exact``) and by NUTS; the notes' intervals (5.5%, 94.5%)
are numpyro's 89% highest-density intervals, poolwise's equal-tailed ones.

Run: python examples/aspirin.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pandas as pd

import poolwise
from poolwise import plots

#: The notes' NUTS summary: mean, sd, median, 5.5%, 94.5%, n_eff.
NOTES = {
    "mu": (1.51, 1.14, 1.43, -0.15, 3.28, 608.59),
    "tau": (1.99, 1.34, 1.71, 0.37, 3.35, 323.30),
    "UK-1": (2.10, 1.28, 2.04, -0.08, 4.01, 725.30),
    "CDPA": (2.07, 1.15, 2.04, 0.33, 3.92, 689.17),
    "GAMS": (1.55, 1.51, 1.49, -0.92, 3.81, 722.80),
    "UK-2": (2.01, 1.35, 1.90, -0.02, 4.14, 682.23),
    "PARIS": (1.77, 1.39, 1.67, -0.33, 3.98, 779.43),
    "AMIS": (-0.49, 0.90, -0.48, -1.77, 1.05, 668.06),
}
COLUMNS = dict(y="y", se="sd", group="study")


def side_by_side(fit: poolwise.Fit) -> pd.DataFrame:
    """The fit's mean, sd and 89% interval beside the notes' values.

    ``z_vs_notes`` is the difference of the means in units of the notes' Monte Carlo
    standard error, sd / sqrt(n_eff): the notes ran 1000 NUTS draws (n_eff 323 for τ), so
    their second decimal is itself uncertain.
    """
    table = fit.summary(ci_prob=0.89)
    rows = []
    for _, row in table.iterrows():
        key = row["param"] if row["param"] != "theta" else row["group"]
        if key not in NOTES:  # θ_new and I², which the notes do not report
            continue
        notes = NOTES[key]
        rows.append({"param": row["param"] if row["param"] != "theta" else f"theta[{key}]",
                     "mean": row["mean"], "notes_mean": notes[0],
                     "sd": row["sd"], "notes_sd": notes[1],
                     "5.5%": row["lower"], "notes_5.5%": notes[3],
                     "94.5%": row["upper"], "notes_94.5%": notes[4],
                     # how many of the notes' own Monte Carlo standard errors apart
                     "z_vs_notes": (row["mean"] - notes[0]) / (notes[1] / notes[5] ** 0.5)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few draws, for a smoke test")
    parser.add_argument("--out", type=Path, default=None, help="directory for the figures")
    args = parser.parse_args(argv)
    draws = 200 if args.quick else 2000

    aspirin = poolwise.datasets.load("aspirin")
    ybar = float(aspirin["y"].mean())
    s_y = float(aspirin["y"].std(ddof=0))  # population sd, as jnp.std in the notes
    prior = f"mu=normal({ybar!r}, {10 * s_y!r}), tau=halfcauchy({5 * s_y!r})"
    print(f"ȳ = {ybar:.4f}, s_y = {s_y:.4f}; prior: {prior}")
    model = poolwise.Model(family="normal", prior=prior)
    print(model.describe_prior())

    exact = model.replace(method="exact", draws=draws, seed=2).fit(aspirin, **COLUMNS)
    print(f"\nexact (quadrature over τ, {exact.info['seconds']:.2f} s) beside the notes:")
    print(side_by_side(exact).round(2).to_string(index=False))

    # NUTS (non-centred θ, the default for the normal family), like the notes. With few
    # draws the effective-sample-size check can warn; the warnings are printed, not raised.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nuts = model.replace(method="nuts", draws=draws, warmup=draws, seed=2).fit(
            aspirin, **COLUMNS)
    print(f"\nnuts ({nuts.info['divergences']} divergences, {nuts.info['seconds']:.1f} s "
          "including compilation) beside the notes:")
    print(side_by_side(nuts).round(2).to_string(index=False))
    for warning in caught:
        print(f"  {type(warning.message).__name__}: {warning.message}")

    worst = max(side_by_side(fit)["z_vs_notes"].abs().max() for fit in (exact, nuts))
    verdict = "within" if worst < 4 else "beyond"
    print(f"largest |z_vs_notes| {worst:.1f}: {verdict} 4 of the notes' own Monte Carlo "
          "standard errors (the tolerance of tests/test_normal.py). The notes' 5.5%/94.5% "
          "columns are numpyro's 89% highest-density intervals, poolwise's are equal-tailed, "
          "so the skewed τ differs most at the upper end.")

    mu = exact.population_mean()
    print(f"\npopulation mean effect μ: mean {mu['mean']:.2f}, 95% interval "
          f"[{mu['lower']:.2f}, {mu['upper']:.2f}], P(μ > 0) = "
          f"{(exact.draws('mu') > 0).mean():.3f}")

    comparison = poolwise.compare(aspirin, family="normal", **COLUMNS, prior=prior, draws=draws,
                                  seed=2)
    print("\nno, complete and partial pooling (95% intervals):")
    print(comparison.estimates().drop(columns="n").round(2).to_string(index=False))

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plots.plot_forest(comparison.fits).savefig(args.out / "aspirin_forest.png")


if __name__ == "__main__":
    main()
