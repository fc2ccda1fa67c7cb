"""Prior strings and densities against SciPy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from poolwise import Model, SpecificationError
from poolwise.families import BetaBinomial
from poolwise.priors import (
    IndependentPrior,
    ReferencePrior,
    make_distribution,
    parse_hyperprior,
    parse_theta_prior,
)

X = np.array([0.05, 0.7, 3.0, 25.0])


@pytest.mark.parametrize(
    ("name", "params", "reference"),
    [
        ("halfnormal", (10.0,), stats.halfnorm(scale=10.0)),
        ("halfcauchy", (5.0,), stats.halfcauchy(scale=5.0)),
        ("exponential", (0.3,), stats.expon(scale=1 / 0.3)),
        ("gamma", (2.0, 0.5), stats.gamma(2.0, scale=2.0)),
        ("lognormal", (0.5, 1.2), stats.lognorm(1.2, scale=np.exp(0.5))),
    ],
)
def test_distributions_match_scipy(name, params, reference):
    np.testing.assert_allclose(make_distribution(name, params).log_density(X),
                               reference.logpdf(X), rtol=1e-12)


def test_reference_prior_is_bda():
    prior = parse_hyperprior("bda")
    assert isinstance(prior, ReferencePrior)
    family = BetaBinomial()
    assert prior.log_density(2.0, 3.0, family) == pytest.approx(-2.5 * np.log(5.0))


@pytest.mark.parametrize(
    ("text", "alpha", "beta"),
    [
        ("halfnormal(10)", "HalfNormal(10)", "HalfNormal(10)"),
        ("halfnormal(10, 5)", "HalfNormal(10)", "HalfNormal(5)"),
        ("alpha=gamma(2, 0.5), beta=halfcauchy(3)", "Gamma(2, 0.5)", "HalfCauchy(3)"),
    ],
)
def test_parse_hyperprior(text, alpha, beta):
    prior = parse_hyperprior(text)
    assert isinstance(prior, IndependentPrior)
    assert (str(prior.alpha), str(prior.beta)) == (alpha, beta)
    assert parse_hyperprior(prior.spec()) == prior  # spec round-trips


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("halfnormal(-1)", "must be > 0"),
        ("halfnormal()", "takes 1 parameter"),
        ("wishart(3)", "unknown prior distribution 'wishart'; valid: halfnormal"),
        ("halfnormal(ten)", "must be numbers"),
        ("beta(1, 1)", "fixed prior for θ"),
        ("normal 3", "cannot read prior"),
    ],
)
def test_bad_hyperpriors(text, message):
    with pytest.raises(SpecificationError, match=message):
        parse_hyperprior(text)


def test_theta_priors():
    family = BetaBinomial()
    assert parse_theta_prior(None, family).a == 0.5
    assert parse_theta_prior("beta(2, 3)", family).b == 3.0
    with pytest.raises(SpecificationError, match="both parameters must be > 0"):
        parse_theta_prior("beta(0, 1)", family)
    with pytest.raises(SpecificationError, match="not a prior for θ"):
        parse_theta_prior("gamma(1, 1)", family)


def test_the_prior_in_use_is_described():
    assert "HalfNormal(10)" in Model(prior="halfnormal(10)").describe_prior()
    assert "(α + β)^(-5/2)" in Model().describe_prior()
    assert "Beta(0.5, 0.5)" in Model(pooling="none").describe_prior()
    assert "Gamma(0.5, 0)" in Model(family="gamma-poisson", pooling="complete").describe_prior()
    with pytest.raises(SpecificationError, match="pooling must be one of none, complete, partial"):
        Model(pooling="some")
    with pytest.raises(SpecificationError,
                       match="valid families: beta-binomial, gamma-poisson, normal"):
        Model(family="binomial")


@pytest.mark.parametrize("family", ["beta-binomial", "gamma-poisson", "normal"])
def test_a_printed_prior_pastes_back(family):
    """The prior line the tool prints (Greek names and '~') reads back as the same prior."""
    from poolwise.families import get_family

    hyper = get_family(family).hyper_names
    text = f"{hyper[0]}=gamma(2, 0.5), {hyper[1]}=halfnormal(10)"
    prior = parse_hyperprior(text, get_family(family))
    printed = prior.describe(get_family(family))
    assert "~" in printed and "=" not in printed
    assert parse_hyperprior(printed, get_family(family)) == prior


def test_a_printed_theta_prior_pastes_back():
    family = BetaBinomial()
    assert parse_theta_prior("θ ~ Beta(0.5, 2)", family) == parse_theta_prior("beta(0.5, 2)",
                                                                               family)


@pytest.mark.parametrize(("family", "text", "message"), [
    ("normal", "mu=normal(0, 5), tua=halfcauchy(5)",
     "unknown hyperparameter 'tua' in prior 'mu=normal(0, 5), tua=halfcauchy(5)' (did you "
     "mean 'tau'?); valid: mu, tau"),
    ("normal", "alpha=gamma(2, 1), beta=gamma(2, 1)", "valid: mu, tau"),
    ("normal", "tau=halfcauchy(5)", "must name both mu= and tau=; e.g. 'bda' or "
                                    "'mu=normal(0, 5), tau=halfcauchy(5)'"),
    ("normal", "halfcauchy(", "write e.g. 'bda' or 'mu=normal(0, 5), tau=halfcauchy(5)'"),
    ("beta-binomial", "halfcauchy(", "write e.g. 'bda', 'halfnormal(10)', "
                                     "'alpha=gamma(2, 0.5), beta=halfnormal(10)' or "
                                     "'mu=beta(2, 20), kappa=lognormal(3, 1)'"),
    ("beta-binomial", "alpah=gamma(2, 1), beta=gamma(2, 1)", "(did you mean 'alpha'?)"),
])
def test_hyperprior_errors_speak_the_family(family, text, message):
    from poolwise.families import get_family

    with pytest.raises(SpecificationError) as error:
        parse_hyperprior(text, get_family(family))
    assert message in str(error.value)


@pytest.mark.parametrize(("family", "prior"), [
    ("normal", "mu=normal(0, 5), tau=halfcauchy(5)"),
    ("beta-binomial", "alpha=gamma(2, 0.5), beta=halfnormal(10)"),
])
def test_a_printed_prior_line_pastes_back(family, prior):
    """The whole line the CLI prints, 'θ_j ~ N(μ, τ²);  μ ~ Normal(0, 5), τ ~ …', reads as
    the same prior (the population statement is the model's, the rest the hyperprior)."""
    from poolwise import Model

    model = Model(family=family, prior=prior)
    printed = model.describe_prior()
    assert printed.startswith("θ_j ~ ") and ";" in printed
    again = Model(family=family, prior=printed)
    assert again.describe_prior() == printed
    assert Model(family=family, prior=printed.replace("), ", "); ")).describe_prior() == printed
