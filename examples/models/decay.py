"""The radioactive widgets of the lecture notes (004, hierarchical models) as NumPyro models.

The notes write the model in Stan::

    parameters { real<lower=0> alpha; vector<lower=0, upper=N_initial_max>[N_widgets] N_initial; }
    model { N_measured[i] ~ normal(N_initial[i] * exp(-alpha * (t_measured[i] - t_initial[i])),
                                   sigma_N_measured[i]); }

Here the same model is a plain Python function, as a user would write it in a file and fit
with ``poolwise fit --model examples/models/decay.py:model widgets.csv``. poolwise calls
the function with the data as keyword arguments (a table's columns by name), so the
arguments are the columns:

``t_measured``
    when each widget was measured, in days (any origin; the same as ``t_initial``);
``N_measured``, ``sigma_N_measured``
    the amount of material measured and the standard deviation of that measurement;
``N_initial_max``
    the company's upper limit on the initial amount (one value per widget, or a number);
``t_initial`` (:func:`model`)
    when each widget was made, in days — known exactly;
``manufacture_day`` (:func:`model_day`)
    the day each widget was made (0, 1, 2, ...) when only the day is known: the time of
    manufacture is then a parameter, uniform within that day.

Priors. N_initial_i ~ Uniform(0, N_initial_max_i) as the Stan model's bounds imply.
Stan's ``real<lower=0> alpha`` with no prior statement is a flat prior on α > 0; here
α ~ HalfNormal(1) per day, which is flat to within 0.2% over the rates these data allow
(α < 0.06 per day: after 14 days or more every widget would otherwise have decayed to
nothing), and makes the posterior proper (with a flat prior the likelihood does not vanish
as α → ∞, where every widget has decayed to zero). Time is in days rather than seconds
so that α is of order 0.05 rather than 5·10⁻⁷; multiply by 1/86400 for a rate per second.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(t_initial, t_measured, N_measured, sigma_N_measured, N_initial_max):
    """The lecture's Stan model: times of manufacture known."""
    alpha = numpyro.sample("alpha", dist.HalfNormal(1.0))
    with numpyro.plate("widgets", len(t_measured)):
        N_initial = numpyro.sample("N_initial", dist.Uniform(0.0, N_initial_max))
        expected = N_initial * jnp.exp(-alpha * (t_measured - t_initial))
        numpyro.sample("N_measured", dist.Normal(expected, sigma_N_measured), obs=N_measured)


def model_day(manufacture_day, t_measured, N_measured, sigma_N_measured, N_initial_max):
    """Times of manufacture known only to the day: t_initial_i ~ Uniform(day_i, day_i + 1)."""
    alpha = numpyro.sample("alpha", dist.HalfNormal(1.0))
    with numpyro.plate("widgets", len(t_measured)):
        N_initial = numpyro.sample("N_initial", dist.Uniform(0.0, N_initial_max))
        t_initial = numpyro.sample("t_initial",
                                   dist.Uniform(manufacture_day, manufacture_day + 1.0))
        expected = N_initial * jnp.exp(-alpha * (t_measured - t_initial))
        numpyro.sample("N_measured", dist.Normal(expected, sigma_N_measured), obs=N_measured)
