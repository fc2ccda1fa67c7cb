"""SpaceX launches (lecture 002): no, complete and partial pooling; a new launcher's θ.

Run: python examples/spacex.py [--quick] [--out DIR]
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
    draws = 200 if args.quick else 5000

    spacex = poolwise.datasets.load("spacex")
    columns = dict(y="successes", n="launches", group="vehicle_family")
    # The notes: Beta(1/2, 1/2) for no and complete pooling, HalfNormal(10) on α and β.
    comparison = poolwise.compare(spacex, **columns, prior="halfnormal(10)", draws=draws, seed=42)
    print(comparison.estimates().round(3).to_string(index=False))

    complete = comparison.fits["complete"].draws("theta")[..., 0].ravel()
    print(f"complete pooling: P(θ > 0.94) = {(complete > 0.94).mean():.3f}")

    partial = comparison.fits["partial"]
    new = partial.predict(poolwise.NewGroup(size=10))
    mu = partial.population_mean()
    print(f"a new launcher: θ mean {new.brief()['mean']:.3f}; "
          f"population mean μ: mean {mu['mean']:.3f}, MAP {mu['map']:.3f}")

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        plots.plot_forest(comparison.fits).savefig(args.out / "spacex_forest.png")
        plots.plot_new_group(partial, n=10).savefig(args.out / "spacex_new_launcher.png")


if __name__ == "__main__":
    main()
