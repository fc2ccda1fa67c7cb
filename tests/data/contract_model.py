"""A small NumPyro model for the contract tests: normal observations with a common mean."""

import numpyro
import numpyro.distributions as dist


def model(y, sd):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    with numpyro.plate("obs", len(y)):
        numpyro.sample("y", dist.Normal(mu, sd), obs=y)
