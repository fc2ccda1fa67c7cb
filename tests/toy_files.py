"""Small files the command-line tests write: a custom NumPyro model (with a helper function
that is not a model), for tests/test_cli.py and tests/test_bad_input.py."""

CUSTOM_MODEL = '''
import numpyro
import numpyro.distributions as dist


def model(y, sd):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
    with numpyro.plate("obs", len(y)):
        numpyro.sample("y", dist.Normal(mu, sd), obs=y)


def helper():
    return 1
'''
