"""What the Markov chain diagnostics say, with what to do about it: once, for every kind.

The checks are R-hat (rank-normalised split R-hat > 1.01: the chains disagree), the bulk
and tail effective sample sizes (< 100 per chain: the estimates are noisy; Vehtari et al.
2021) and divergent transitions of NUTS (the sampler could not follow the posterior).
Each problem's advice names the settings both as Python keywords and as command-line
options, and a faster exact method where the model kind has one for its pooling level.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from poolwise.exceptions import SamplingWarning

if TYPE_CHECKING:
    from poolwise.results.fit import Fit

__all__ = ["ESS_PER_CHAIN", "R_HAT_LIMIT", "check_diagnostics", "diagnostic_problems",
           "settings_advice", "smaller_steps_advice"]

R_HAT_LIMIT = 1.01
ESS_PER_CHAIN = 100


def settings_advice(*names: str) -> str:
    """How to change settings, for Python and for the command line:
    ``settings_advice("warmup", "draws")`` → ``"warmup=, draws= in Python; --warmup,
    --draws on the command line"``."""
    python = ", ".join(f"{name}=" for name in names)
    cli = ", ".join("--" + name.replace("_", "-") for name in names)
    return f"{python} in Python; {cli} on the command line"


def smaller_steps_advice(target_accept: float) -> str:
    """Raise NUTS's step-size target (Stan's ``adapt_delta``) above ``target_accept``, to
    0.95 (0.99 from 0.95 up), named for Python and the command line."""
    higher = 0.95 if target_accept < 0.95 else 0.99
    return (f"take smaller steps: raise the step-size target from {target_accept:g} to "
            f"{higher:g} (target_accept={higher:g} in Python; --target-accept {higher:g} on "
            "the command line), with a longer warm-up (warmup=2000; --warmup 2000)")


def _exact_alternative(fit: Fit) -> str:
    """", or use method 'exact'" when the fit's kind offers it for its pooling level."""
    offered = fit.model.methods_for(fit.model.pooling)
    return "; or use method 'exact' (--method exact)" if "exact" in offered else ""


def diagnostic_problems(fit: Fit) -> list[str]:
    """What the Markov chain diagnostics say is wrong, each with what to do (empty for fits
    that are not Markov chains)."""
    if not fit.is_mcmc:
        return []
    exact = _exact_alternative(fit)
    problems = []
    table = fit.summary()
    if table["r_hat"].notna().any():
        worst = table.loc[table["r_hat"].idxmax()]
        if worst["r_hat"] > R_HAT_LIMIT:
            where = (f"{worst['param']}[{worst['group']}]" if pd.notna(worst["group"])
                     else worst["param"])
            problems.append(
                f"R-hat is {worst['r_hat']:.3f} for {where} (> {R_HAT_LIMIT}): the chains "
                f"disagree; run more warm-up and draws ({settings_advice('warmup', 'draws')})"
                f"{exact}")
    least = min(table["ess_bulk"].min(), table["ess_tail"].min())
    needed = ESS_PER_CHAIN * fit.config.chains
    if least < needed:
        problems.append(
            f"the smallest effective sample size is {least:.0f} (< {needed}, "
            f"{ESS_PER_CHAIN} per chain): estimates are noisy; run more draws "
            f"({settings_advice('draws')}){exact}")
    if "sample_stats" in fit.tree.children and "diverging" in fit.tree["sample_stats"]:
        count = int(np.sum(np.asarray(fit.tree["sample_stats"]["diverging"])))
        if count:
            centred = fit.info.get("parametrisation") == "centred"
            advice = ("the centred form has a funnel where the group-level spread is small: "
                      f"use parametrisation 'non-centred' ({settings_advice('parametrisation')})"
                      if centred else smaller_steps_advice(fit.config.target_accept)
                      + (f"; {fit.DIVERGENCE_HINT}" if fit.DIVERGENCE_HINT else ""))
            problems.append(
                f"{count} divergent transitions: the sampler could not follow the posterior "
                f"and the draws may be biased; {advice}{exact}")
    return problems


def check_diagnostics(fit: Fit, stacklevel: int = 1) -> None:
    """Warn (:class:`~poolwise.exceptions.SamplingWarning`) for each problem of a Markov
    chain fit."""
    for problem in diagnostic_problems(fit):
        warnings.warn(problem, SamplingWarning, stacklevel=stacklevel + 1)
