"""Experiments within laboratories: the lecture's "turtles all the way" (seed 000, last part).

The rat-tumour experiments are exchangeable only if nothing distinguishes them. If we know
which laboratory ran each one, experiments are exchangeable within a laboratory, each
laboratory gets its own Beta(α_i, β_i), and the laboratories' (α_i, β_i) are drawn from a
common population:

    y_ij ~ Binomial(n_ij, θ_ij),   θ_ij ~ Beta(α_i, β_i),
    logit(α_i/(α_i+β_i)) ~ N(m_u, s_u²),   log(α_i+β_i) ~ N(m_v, s_v²),

with weakly informative priors on (m_u, s_u, m_v, s_v). This script simulates (seed 0) ten
laboratories running 2-9 experiments of 15-50 rats each, with rates near the rat data's
(a typical laboratory mean of 14%; laboratories differing more than experiments within
one laboratory do: concentrations α_i + β_i near 40 against BDA3's α + β ≈ 14 for the
rats taken together), fits the model with NUTS (θ integrated out, then drawn exactly) and prints:

* the top-level and laboratory-level posteriors beside the values that generated the data;
* the two predictions the nested model distinguishes: a new experiment in a laboratory we
  know (centred at that laboratory's mean) and a new experiment in a new laboratory (wider:
  the laboratory itself is unknown too).

Run: python examples/labs.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special

from poolwise import NestedFit, NestedModel, NewGroup, NewGroupIn
from poolwise.outputs.render import render

#: the generating values: a typical lab mean rate of 14%, labs differing by ~0.6 on the
#: logit scale, concentrations α_i + β_i around 40 varying by ~30% between labs, so that
#: experiments within a lab agree more than labs do (the case for a lab level)
TRUTH = {"m_u": float(special.logit(0.14)), "s_u": 0.6, "m_v": float(np.log(40.0)),
         "s_v": 0.3}
RATS = 50  # the size of the predicted experiments


def simulate(seed: int = 0, labs: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The experiments (lab, experiment, y tumours, n rats) and each lab's true values."""
    rng = np.random.default_rng(seed)
    u = TRUTH["m_u"] + TRUTH["s_u"] * rng.standard_normal(labs)
    v = TRUTH["m_v"] + TRUTH["s_v"] * rng.standard_normal(labs)
    alpha, beta = np.exp(v) * special.expit(u), np.exp(v) * special.expit(-u)
    rows = []
    for i in range(labs):
        for j in range(int(rng.integers(2, 10))):
            n = int(rng.integers(15, 51))
            rows.append((f"lab {chr(65 + i)}", j + 1,
                         int(rng.binomial(n, rng.beta(alpha[i], beta[i]))), n))
    table = pd.DataFrame(rows, columns=["lab", "experiment", "y", "n"])
    truth = pd.DataFrame({"lab": [f"lab {chr(65 + i)}" for i in range(labs)],
                          "true_mean": special.expit(u), "true_kappa": np.exp(v)})
    return table, truth


def plot_labs(fit: NestedFit, table: pd.DataFrame, truth: pd.DataFrame, path: Path) -> None:
    """Per lab: the experiments' raw rates, the posterior of the lab mean, the predictive
    of a new experiment there; the band is a new experiment in a new lab."""
    from matplotlib.figure import Figure

    labs = list(fit.data.labs)
    mu = fit.draws("mu_lab").reshape(-1, len(labs))
    new_lab = fit.predict(NewGroup(), seed=1)
    figure = Figure(figsize=(9.5, 0.45 * len(labs) + 1.8), layout="constrained")
    ax = figure.add_subplot()
    # the last row: a new lab, its mean and a new experiment in it
    row = len(labs)
    ax.axhline(row - 0.5, color="0.6", lw=0.8)
    ax.plot(np.quantile(new_lab["theta"], [0.025, 0.975]), [row - 0.12] * 2, color="#D55E00",
            lw=1.5, label="new experiment in a new lab (95%)")
    ax.plot(np.quantile(new_lab["lab_mean"], [0.025, 0.975]), [row] * 2, color="#D55E00",
            lw=3.5, alpha=0.6, label="a new lab's mean (95%)")
    for row, lab in enumerate(labs):
        mine = table[table["lab"] == lab]
        ax.scatter(mine["y"] / mine["n"], np.full(len(mine), row + 0.18), s=mine["n"],
                   color="#E69F00", alpha=0.7, lw=0,
                   label="experiments' raw rates y/n (size: n)" if row == 0 else None)
        known = fit.predict(NewGroupIn(lab), seed=1).summary().set_index("param").loc["theta"]
        ax.plot([known["lower"], known["upper"]], [row - 0.12] * 2, color="#56B4E9", lw=1.5,
                label="new experiment in this lab (95%)" if row == 0 else None)
        lower, upper = np.quantile(mu[:, row], [0.025, 0.975])
        ax.plot([lower, upper], [row] * 2, color="#0072B2", lw=3.5,
                label="lab mean μ_i (95% posterior)" if row == 0 else None)
        ax.plot(mu[:, row].mean(), row, "o", color="#0072B2", ms=5)
        true = float(truth.set_index("lab").loc[lab, "true_mean"])
        ax.plot(true, row, "x", color="black", ms=7,
                label="true lab mean" if row == 0 else None)
    ax.set_yticks(range(len(labs) + 1), [*labs, "new lab"])
    ax.invert_yaxis()
    ax.set_xlabel("tumour rate")
    ax.set_xlim(0, min(1.0, float(np.quantile(new_lab["theta"], 0.975)) * 1.3))
    ax.set_title("Experiments within laboratories: three levels")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    figure.savefig(path, dpi=150)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few draws, for a smoke test")
    parser.add_argument("--out", type=Path, default=None, help="directory for the figures")
    args = parser.parse_args(argv)
    draws = 300 if args.quick else 2000

    table, truth = simulate(seed=0)
    sizes = table.groupby("lab").size()
    print(f"{len(table)} experiments in {table['lab'].nunique()} labs "
          f"({sizes.min()}-{sizes.max()} per lab, {table['n'].min()}-{table['n'].max()} rats "
          "each)")
    model = NestedModel(family="beta-binomial", draws=draws, warmup=draws, chains=4, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(table, y="y", n="n", group="lab/experiment")
    print(fit.title())
    print(f"prior: {fit.describe_prior()}")
    for note in fit.data.notes:
        print(f"note: {note}")
    print(f"\nNUTS: {fit.info['divergences']} divergences, {fit.info['seconds']:.1f} s "
          f"({fit.info['compile_seconds']:.1f} s compiling)")
    for warning in caught:
        print(f"  {type(warning.message).__name__}: {warning.message}")

    top = fit.top_summary(0.95)
    top.insert(2, "truth", top["param"].map(TRUTH))
    print("\ntop level (95% intervals; u = logit lab mean rate, v = log concentration):")
    print(top[["param", "truth", "mean", "sd", "lower", "upper", "ess_bulk", "r_hat"]]
          .round(3).to_string(index=False))

    labs = fit.lab_summary(0.95).merge(truth, on="lab")
    print("\nlab means μ_i = α_i/(α_i+β_i) (95% intervals) beside each lab's pooled raw rate:")
    print(labs.round(3).to_string(index=False))

    most = str(sizes.idxmax())
    print(f"\npredicted tumour rate θ* and tumours y* among {RATS} rats (95% intervals):")
    known = fit.predict(NewGroupIn(most, size=RATS))
    new = fit.predict(NewGroup(size=RATS))
    for prediction in (known, new):
        s = prediction.summary().set_index("param")
        theta, y = s.loc["theta"], s.loc["y"]
        print(f"  {prediction.description}:\n    θ* {theta['mean']:.3f} [{theta['lower']:.3f}, "
              f"{theta['upper']:.3f}]   y* {y['mean']:.1f} [{y['lower']:.0f}, "
              f"{y['upper']:.0f}]")
    print(f"  the lab mean behind them: {most} {known['lab_mean'].mean():.3f} (sd "
          f"{known['lab_mean'].std():.3f}), a new lab {new['lab_mean'].mean():.3f} (sd "
          f"{new['lab_mean'].std():.3f})")
    print("  A new experiment in a known lab is centred at that lab's mean; one in a new lab\n"
          "  also carries the uncertainty about which lab-level rate it will get.")

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        render(fit.graph(), args.out / "labs_graph.png")
        plot_labs(fit, table, truth, args.out / "labs_means.png")
        print(f"\nfigures written to {args.out}")


if __name__ == "__main__":
    main()
