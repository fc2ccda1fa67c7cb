"""Rat tumours (BDA3 ch. 5; lecture 000): empirical Bayes, full Bayes, and the 71st experiment.

Run: python examples/rat_tumours.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import poolwise
from poolwise import plots


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few draws, for a smoke test")
    parser.add_argument("--out", type=Path, default=None, help="directory for the figures")
    args = parser.parse_args(argv)
    draws = 200 if args.quick else 2000

    rats = poolwise.datasets.load("rats").query("historical == 1")
    model = poolwise.Model(family="beta-binomial")  # hyperprior p(α, β) ∝ (α + β)^(-5/2)

    # Empirical Bayes by moments, as in the lecture: α = 1.3778, β = 8.7524.
    eb = model.replace(method="eb-moments").fit(rats, y="y", n="n", group="experiment")
    print(f"EB moments: alpha = {eb.eb.alpha:.4f}, beta = {eb.eb.beta:.4f}")
    print(f"71st experiment (4/14): raw 0.2857, EB posterior mean "
          f"{eb.predict(poolwise.NewGroup(y=4, size=14)).brief()['mean']:.4f}")

    # Full Bayes: independent draws of (α, β) by quadrature, θ_j from their Beta conditionals.
    fit = model.replace(method="exact", draws=draws, seed=1).fit(rats, y="y", n="n",
                                                                group="experiment")
    print(fit.summary().head(4).to_string(index=False))
    new = fit.predict(poolwise.NewGroup(y=4, size=14)).brief()
    print(f"71st experiment, full Bayes: mean {new['mean']:.4f}, "
          f"95% interval [{new['lower']:.4f}, {new['upper']:.4f}]")

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plots.plot_shrinkage(eb).savefig(args.out / "rats_eb_shrinkage.png")
        plots.plot_shrinkage(fit).savefig(args.out / "rats_shrinkage.png")


if __name__ == "__main__":
    main()
