"""Student's sleep trial (lecture 003, task 23): two sleep drugs, ten people, paired.

Cushny and Peebles (1905) gave each of ten patients two soporific drugs in turn and recorded
the extra hours of sleep against a control night; Student (1908) used the data to show his
t test. Because every person took both drugs, the design is hierarchical: a person who
sleeps well on one drug tends to sleep well on the other. The model

    extra_ij ~ N(β₀ + β₁ [drug j = 2] + u_i, σ²),   u_i ~ N(0, τ²),

(``extra ~ group + (1 | ID)``, poolwise's weakly informative default priors) has β₀ the mean
extra sleep on drug 1, β₀ + β₁ on drug 2, and β₁ the difference, estimated from the
within-person contrasts as the paired t test does: its posterior centre is the mean paired
difference 1.58 h and its 95% interval close to the t interval (0.70, 2.46), a little wider
because the prior on σ is nearly flat rather than the t test's 1/σ (about one degree of
freedom fewer). The script also shows REML (``eb-ml``) estimates, whose standard error of
the difference is the paired t test's 0.389, and answers the lecture's questions: did each
drug have an effect, and which is better?

Run: python examples/sleep_trial.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.figure
import numpy as np
import pandas as pd
from scipy import stats

import poolwise


def classical(sleep: pd.DataFrame) -> dict[str, float]:
    """Student's paired t test of drug 2 against drug 1, and one-sample t intervals of
    each drug's mean (each person's two nights are not independent, so only the paired
    test compares the drugs)."""
    wide = sleep.pivot(index="ID", columns="group", values="extra")
    test = stats.ttest_rel(wide[2], wide[1])
    interval = test.confidence_interval(0.95)
    differences = (wide[2] - wide[1]).to_numpy()
    out = {"difference": float(differences.mean()),
           "se": float(differences.std(ddof=1) / np.sqrt(differences.size)),
           "lower": float(interval.low), "upper": float(interval.high),
           "t": float(test.statistic), "p": float(test.pvalue),
           # the same drugs compared as if twenty different people had taken them
           "unpaired_p": float(stats.ttest_ind(wide[2], wide[1], equal_var=False).pvalue)}
    for drug in (1, 2):
        one = stats.ttest_1samp(wide[drug], 0.0)
        ci = one.confidence_interval(0.95)
        out[f"drug{drug}"] = float(wide[drug].mean())
        out[f"drug{drug}_lower"], out[f"drug{drug}_upper"] = float(ci.low), float(ci.high)
        out[f"drug{drug}_p"] = float(one.pvalue)
    return out


def drug_effects(fit: poolwise.MixedFit) -> pd.DataFrame:
    """Posterior of each drug's mean extra sleep (β₀, β₀ + β₁) and of their difference β₁:
    mean, sd, 95% interval and the probability that it is positive."""
    b = fit.draws("b").reshape(-1, 2)
    rows = []
    for label, draws in (("drug 1", b[:, 0]), ("drug 2", b[:, 0] + b[:, 1]),
                         ("drug 2 − drug 1", b[:, 1])):
        low, high = np.quantile(draws, [0.025, 0.975])
        rows.append({"effect": label, "mean": draws.mean(), "sd": draws.std(ddof=1),
                     "2.5%": low, "97.5%": high, "P(> 0)": (draws > 0).mean()})
    return pd.DataFrame(rows)


def figure(sleep: pd.DataFrame, fit: poolwise.MixedFit,
           reference: dict[str, float]) -> matplotlib.figure.Figure:
    """Left: each person's extra sleep on the two drugs, joined (the lecture's plot).
    Right: the posterior of the difference, with the paired t interval."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    wide = sleep.pivot(index="ID", columns="group", values="extra")
    for person, row in wide.iterrows():
        left.plot([1, 2], [row[1], row[2]], "o-", color="tab:blue", alpha=0.6)
        left.annotate(str(person), (2.03, row[2]), fontsize=7, va="center")
    left.plot([1, 2], [wide[1].mean(), wide[2].mean()], "s--", color="black", lw=2,
              label="drug means")
    left.axhline(0.0, color="grey", lw=0.8)
    left.set(xticks=[1, 2], xticklabels=["drug 1", "drug 2"], xlim=(0.8, 2.2),
             ylabel="extra hours of sleep", title="Ten people, both drugs")
    left.legend(loc="upper left")

    difference = fit.draws("b")[..., 1].ravel()
    right.hist(difference, bins=50, density=True, color="tab:orange", alpha=0.7,
               label="posterior of drug 2 − drug 1")
    low, high = np.quantile(difference, [0.025, 0.975])
    right.axvspan(low, high, color="tab:orange", alpha=0.15, label="95% posterior interval")
    grid = np.linspace(difference.min(), difference.max(), 200)
    right.plot(grid, stats.t.pdf(grid, 9, reference["difference"], reference["se"]),
               color="black",
               label=f"paired t: t₉({reference['difference']:.2f}, {reference['se']:.3f})")
    for end in (reference["lower"], reference["upper"]):
        right.axvline(end, color="black", ls=":", lw=1)
    right.axvline(0.0, color="grey", lw=0.8)
    right.set(xlabel="extra hours of sleep, drug 2 − drug 1", ylabel="density",
              title="The difference between the drugs")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few draws, for a smoke test")
    parser.add_argument("--out", type=Path, default=None, help="directory for the figures")
    args = parser.parse_args(argv)
    draws = 500 if args.quick else 4000

    sleep = poolwise.datasets.load("sleep")
    formula = poolwise.datasets.info("sleep").formula
    model = poolwise.MixedModel(formula=formula, draws=draws, chains=4, seed=1)
    data = model.prepare(sleep)
    print(f"{len(sleep)} rows, {sleep['ID'].nunique()} people; formula {formula}")
    print("priors: " + model.describe_prior(data))

    fit = model.fit(data)
    info = fit.info
    how = (f"importance sampling, Pareto k̂ {info['pareto_k']:.2f}, ESS {info['ess']:.0f}"
           if fit.method == "importance" else f"NUTS, {info['divergences']} divergences")
    print(f"\n{fit.method} ({how}, {info['seconds']:.1f} s):")
    print(fit.summary().query("group.isna()").drop(columns=["group", "pooling_factor"])
          .round(3).to_string(index=False))

    effects = drug_effects(fit)
    print("\neach drug's mean extra sleep and their difference (hours):")
    print(effects.round(3).to_string(index=False))

    reference = classical(sleep)
    print(f"\nclassical paired t test (Student 1908): mean difference "
          f"{reference['difference']:.2f} h, se {reference['se']:.3f}, "
          f"t = {reference['t']:.2f} on 9 df, p = {reference['p']:.4f}, "
          f"95% interval ({reference['lower']:.2f}, {reference['upper']:.2f})")
    for drug in (1, 2):
        print(f"  drug {drug} alone: mean {reference[f'drug{drug}']:.2f} h, 95% t interval "
              f"({reference[f'drug{drug}_lower']:.2f}, {reference[f'drug{drug}_upper']:.2f}),"
              f" p = {reference[f'drug{drug}_p']:.4f} against no effect")

    reml = model.replace(method="eb-ml").fit(data).summary().set_index("param")
    print(f"REML (lme4's lmer): difference {reml.loc['b[group[2]]', 'mean']:.3f}, "
          f"se {reml.loc['b[group[2]]', 'sd']:.3f} (= the paired t test's), sd between "
          f"people {reml.loc['sd_ID[Intercept]', 'mean']:.2f}, within "
          f"{reml.loc['sigma', 'mean']:.2f}")

    first, second, difference = (effects.iloc[i] for i in range(3))
    between, within = reml.loc["sd_ID[Intercept]", "mean"], reml.loc["sigma", "mean"]
    print(f"\nConclusions: drug 1's mean effect is uncertain (95% interval "
          f"{first['2.5%']:.2f} to {first['97.5%']:.2f} h, P(> 0) = {first['P(> 0)']:.2f}); "
          f"drug 2 adds sleep (95% interval {second['2.5%']:.2f} to {second['97.5%']:.2f} h, "
          f"P(> 0) = {second['P(> 0)']:.3f}); drug 2 beats drug 1 by {difference['mean']:.2f} h "
          f"(95% interval {difference['2.5%']:.2f} to {difference['97.5%']:.2f}, "
          f"P(drug 2 better) = {difference['P(> 0)']:.3f}), as the paired t test says. "
          f"Pairing matters: people differ (sd {between:.2f} h between them against "
          f"{within:.2f} h within), and comparing the drugs as if twenty different people had "
          f"taken them (Welch's t test) gives p = {reference['unpaired_p']:.3f} instead of "
          f"{reference['p']:.4f}.")

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        figure(sleep, fit, reference).savefig(args.out / "sleep_trial.png", dpi=120)
        print(f"wrote {args.out / 'sleep_trial.png'}")


if __name__ == "__main__":
    main()
