"""The radioactive widgets (lecture 004, hierarchical models): a custom NumPyro model.

A company made 100 widgets over 35 days, each with an unknown amount N_0 ≤ N_0,max = 10 of
radioactive material. Starting 14 days after the last one was made, investigators measured
each widget once over 90 days, with noise. The material decays as

    N(t_1) = N_0 exp(−α (t_1 − t_0)),

and the company wants the decay rate α. The data are simulated exactly as in the notes
(NumPy's legacy generator seeded with 0, times in seconds; the true α = 0.5488·10⁻⁶ per
second), then fitted with the notes' Stan model rewritten in NumPyro
(``examples/models/decay.py``, times in days) by the notes' workflow: the posterior mode,
then NUTS started there,

    (a) with the times of manufacture t_0 known, as in the notes' Stan model;
    (b) with t_0 known only to the day: t_0 ~ Uniform(day, day + 1), a parameter per widget.

The script prints α's posterior mean and 90% interval under both, whether the true α is
inside, and how much the unknown t_0 widens the interval. It also prints the joint mode of
the parameters as written (what Stan's ``optimizing`` returns): a hierarchical model's
joint mode is a poor estimate — many N_0 sit on their bounds and α is far too small — which
is why the notes sample rather than optimise.

Run: python examples/radioactive_widgets.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from poolwise import CustomFit, CustomModel, SpecificationError
from poolwise.outputs.render import render

DAY = 24 * 60 * 60  # seconds
MODEL_FILE = Path(__file__).parent / "models" / "decay.py"
CI_PROB = 0.9


def simulate(seed: int = 0) -> dict[str, np.ndarray | float]:
    """The notes' faux data, line by line (times in seconds)."""
    # the notes seed NumPy's legacy global generator; a RandomState gives the same numbers
    # without touching global state
    random = np.random.RandomState(seed)
    alpha = random.uniform() * 1e-6
    n_widgets = 100
    n_initial_max = 10
    manufacturing_time_span = 35 * DAY
    n_initial_true = random.uniform(0, n_initial_max, size=(n_widgets, 1))
    t_initial_true = random.uniform(0, manufacturing_time_span, size=(n_widgets, 1))
    t_delay = 14 * DAY
    measurement_time_span = 90 * DAY
    n_observations = 1
    t_measured = (manufacturing_time_span + t_delay
                  + random.uniform(0, measurement_time_span,
                                      size=(n_widgets, n_observations)))
    t_measured = np.sort(t_measured, axis=1)
    n_now_true = n_initial_true * np.exp(-alpha * (t_measured - t_initial_true))
    v = 0.10
    sigma_n_measured = v * random.normal(0, 1, size=n_now_true.shape)
    n_measured = n_now_true + random.normal(0, 1, size=n_now_true.shape) * sigma_n_measured
    sigma_n_measured = np.abs(sigma_n_measured)
    return {"alpha": alpha, "N_initial_max": float(n_initial_max),
            "N_initial": n_initial_true.ravel(), "t_initial": t_initial_true.ravel(),
            "t_measured": t_measured.ravel(), "N_measured": n_measured.ravel(),
            "sigma_N_measured": sigma_n_measured.ravel()}


def datasets(sim: dict[str, np.ndarray | float]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The data of fits (a) and (b), in days."""
    common = {"t_measured": np.asarray(sim["t_measured"]) / DAY,
              "N_measured": sim["N_measured"], "sigma_N_measured": sim["sigma_N_measured"],
              "N_initial_max": sim["N_initial_max"]}
    known = {"t_initial": np.asarray(sim["t_initial"]) / DAY, **common}
    day = {"manufacture_day": np.floor(np.asarray(sim["t_initial"]) / DAY), **common}
    return known, day


def alpha_interval(fit: CustomFit) -> tuple[float, float, float]:
    """Posterior mean and equal-tailed 90% interval of α (per day)."""
    row = fit.summary(CI_PROB, diagnostics=False).set_index("param").loc["alpha"]
    return float(row["mean"]), float(row["lower"]), float(row["upper"])


def fit_quietly(model: CustomModel, data: dict[str, Any]) -> CustomFit:
    """Fit, printing (not raising) the sampler's warnings: with --quick's few draws the
    effective-sample-size check can warn."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(data)
    for warning in caught:
        print(f"  {type(warning.message).__name__}: {warning.message}")
    return fit


def plot_alpha(fits: dict[str, CustomFit], truth: float, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = figure.subplots()
    colours = ("#0072B2", "#E69F00")
    for (label, fit), colour in zip(fits.items(), colours, strict=True):
        draws = fit.draws("alpha").ravel()
        ax.hist(draws, bins=50, density=True, histtype="step", lw=1.5, color=colour,
                label=label)
        _, lower, upper = alpha_interval(fit)
        ax.axvspan(lower, upper, color=colour, alpha=0.12)
    ax.axvline(truth, color="#555555", ls=":", lw=1.5, label="true α")
    ax.set_xlabel("decay rate α (per day)")
    ax.set_ylabel("posterior density")
    ax.set_title(f"radioactive widgets: α with {CI_PROB:.0%} intervals")
    ax.legend(fontsize=8)
    figure.savefig(path, dpi=150)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few draws, for a smoke test")
    parser.add_argument("--out", type=Path, default=None, help="directory for the figures")
    args = parser.parse_args(argv)
    sampling = ({"draws": 300, "warmup": 300, "chains": 2} if args.quick
                else {"draws": 2000, "warmup": 1000, "chains": 4})

    sim = simulate(seed=0)
    truth = float(sim["alpha"]) * DAY
    print(f"true decay rate α = {sim['alpha']:.4g} per second = {truth:.5f} per day")
    known_data, day_data = datasets(sim)
    known = CustomModel(model=f"{MODEL_FILE}:model", name="known t0", seed=0, **sampling)
    by_day = CustomModel(model=f"{MODEL_FILE}:model_day", name="t0 to the day", seed=0,
                         **sampling)
    print(f"priors: {by_day.describe_prior(day_data)}")

    # Stan's `optimizing`: the joint mode of the parameters as written
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mode = known.map(known_data)
    n_initial = np.asarray(mode.params["N_initial"])
    near_bound = int(np.sum((n_initial < 0.1) | (n_initial > 9.9)))
    print(f"\njoint posterior mode of the parameters as written (Stan's optimizing): "
          f"α = {float(mode.params['alpha']):.5f} per day, with {near_bound} of 100 N_0 "
          "within 1% of a bound of (0, 10)")
    for warning in caught:
        print(f"  {type(warning.message).__name__}: {warning.message}")
    print("  the joint mode of a hierarchical model is biased (here α is far too small); "
          "NUTS, started at the mode of the unconstrained coordinates, is not:")

    results = {}
    for label, model, data in (("(a) t0 known", known, known_data),
                               ("(b) t0 known to the day", by_day, day_data)):
        fit = fit_quietly(model, data)
        mean, lower, upper = alpha_interval(fit)
        inside = lower <= truth <= upper
        results[label] = fit
        print(f"\n{label}: α = {mean:.5f} per day, {CI_PROB:.0%} interval "
              f"[{lower:.5f}, {upper:.5f}] (width {upper - lower:.5f}); true α "
              f"{'inside' if inside else 'OUTSIDE'} the interval")
        print(f"  NUTS {fit.config.chains} × ({fit.config.warmup} + {fit.config.draws}), "
              f"{fit.info['divergences']} divergences, {fit.info['seconds']:.1f} s "
              f"({fit.info['compile_seconds']:.1f} s compiling, "
              f"{fit.info['sample_seconds']:.1f} s sampling)")
    widths, sds = [], []
    for fit in results.values():
        _, lower, upper = alpha_interval(fit)
        widths.append(upper - lower)
        sds.append(float(fit.draws("alpha").std(ddof=1)))
    label_a = next(iter(results))
    print(f"\nknowing t0 only to the day changes the width of α's {CI_PROB:.0%} interval by "
          f"a factor {widths[1] / widths[0]:.3f} ({widths[0]:.5f} → {widths[1]:.5f} per day) "
          f"and its posterior sd by {sds[1] / sds[0]:.3f}: a day is small beside the 14-139 "
          "days of decay, and the unknown N_0 dominate the uncertainty"
          + (" (with --quick's few draws the factors are mostly Monte Carlo noise)"
             if args.quick else ""))

    print("\nposterior predictive check of (a), N_measured (mid-p Bayesian p-values):")
    check = results[label_a].predictive_check(CI_PROB)
    print(check[check["group"].isna()].drop(columns=["variable", "group"]).round(3)
          .to_string(index=False))

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plot_alpha(results, truth, args.out / "widgets_alpha.png")
        try:
            render(results["(b) t0 known to the day"].graph(), args.out / "widgets_graph.png")
        except SpecificationError as error:
            print(f"no graph: {error}")


if __name__ == "__main__":
    main()
