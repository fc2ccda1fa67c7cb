"""ML as well as REML for linear mixed models (``reml=False``, ``--ml``), lme4's likelihood
statistics, and the Wald intervals of eb-ml, each against something independent:

* sleepstudy, ``Reaction ~ Days + (Days | Subject)``, against lme4's printed summaries:
  REML criterion at convergence 1743.6 (``lmer(...)``); with ``REML = FALSE`` AIC 1763.9,
  BIC 1783.1, logLik −876.0, deviance 1751.9, df.resid 174 (the same line from lme4's
  ``anova`` and MATLAB's ``fitlme``, e.g. dalejbarr.github.io/stat-models-2023 and
  torwager.github.io/ComputationalFoundations, sleepstudy_lme_example) and lme4's ML sds
  23.780 and 5.717, standard errors 6.632 and 1.502;
* a regression without group terms against least squares in closed form: β̂ = (XᵀX)⁻¹Xᵀy,
  σ̂² = RSS/n (ML) or RSS/(n − p) (REML), the log likelihoods, AIC, and the Wald
  intervals β̂ ± z·SE.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import poolwise
from poolwise import MixedModel, SpecificationError
from poolwise.cli import main, print_table
from poolwise.outputs.report import fit_report
from poolwise.outputs.writer import LIKELIHOOD_COLUMNS, fit_document, likelihood_lines

SLEEP = "Reaction ~ Days + (Days | Subject)"
FEW = {"draws": 20, "chains": 1}


@pytest.fixture(scope="module")
def sleep():
    return poolwise.datasets.load("sleepstudy")


@pytest.fixture(scope="module")
def ml_fit(sleep):
    return MixedModel(formula=SLEEP, method="eb-ml", reml=False, **FEW).fit(sleep)


def test_ml_of_sleepstudy_is_lme4s(sleep, ml_fit, tmp_path, capsys) -> None:
    """lme4's statistics to its printed precision and its ML estimates; ML's sds and
    standard errors are smaller than REML's, whose criterion is lme4's too; the JSON
    document and the report carry the statistics and label β's intervals Wald; a saved
    fit stays ML."""
    assert likelihood_lines(ml_fit.likelihood_statistics())[1].split() == [
        "1763.9", "1783.1", "-876.0", "1751.9", "174"]
    assert ml_fit.likelihood_statistics()["df"] == 6
    ml = ml_fit.estimate
    assert ml.method == "ML"
    np.testing.assert_allclose(ml.sd["Subject"], [23.780, 5.717], atol=6e-4)
    np.testing.assert_allclose(ml.beta_se, [6.632, 1.502], atol=6e-4)

    reml = MixedModel(formula=SLEEP, method="eb-ml", **FEW).fit(sleep)
    assert likelihood_lines(reml.likelihood_statistics()) == [
        "REML criterion at convergence: 1743.6"]
    assert np.all(ml.sd["Subject"] < reml.estimate.sd["Subject"])
    assert np.all(ml.beta_se < reml.estimate.beta_se) and ml.sigma < reml.estimate.sigma
    # a balanced design: β̂ is ordinary least squares whatever the variances
    np.testing.assert_allclose(ml.beta, reml.estimate.beta, rtol=1e-8)

    summary, check = ml_fit.summary(), ml_fit.predictive_check()
    document = fit_document(ml_fit, summary=summary, check=check, predictions=[],
                            messages=[], ci_prob=0.95)
    assert document["likelihood"] == ml_fit.likelihood_statistics()
    assert document["intervals"]["b"].startswith("Wald: estimate ± 1.96 × sd")
    assert document["intervals"]["sigma, sd_Subject, cor_Subject"] == "none: point estimates"
    print_table(summary, 0.95, notes=ml_fit.interval_notes())
    printed = capsys.readouterr().out
    assert "95% intervals: Wald for b; Kass–Steffey for r_Subject" in printed
    assert "intervals of sigma, sd_Subject, cor_Subject: none (point estimates)" in printed
    page = fit_report(tmp_path, ml_fit, summary=summary, check=check)
    assert "Wald: estimate ± 1.96 × sd" in page and "1763.9" in page
    ml_fit.save(tmp_path / "ml.nc")
    loaded = poolwise.load(tmp_path / "ml.nc")
    assert loaded.model.reml is False
    assert loaded.likelihood_statistics() == ml_fit.likelihood_statistics()


def test_ml_and_reml_of_a_regression_are_least_squares(sleep, capsys) -> None:
    """Without group terms ML is least squares with σ̂² = RSS/n, REML with RSS/(n − p):

        ℓ_ML = −n/2 (log 2πσ̂² + 1),
        −2ℓ_REML = (n − p)(1 + log 2πσ̂²) + log|XᵀX|   (Bates et al. 2015, eq. 42, Λ = 0),

    AIC = −2ℓ + 2(p + 1); Wald intervals β̂ ± z·SE with SE² = σ̂² diag (XᵀX)⁻¹."""
    x = np.column_stack([np.ones(len(sleep)), sleep["Days"].to_numpy(float)])
    y = sleep["Reaction"].to_numpy(float)
    n, p = x.shape
    beta, rss = np.linalg.lstsq(x, y, rcond=None)[:2]
    inverse = np.linalg.inv(x.T @ x)
    z = stats.norm.ppf(0.95)
    for reml in (False, True):
        fit = MixedModel(formula="Reaction ~ Days", pooling="complete", method="eb-ml",
                         reml=reml, **FEW).fit(sleep)
        sigma2 = float(rss[0]) / (n - p if reml else n)
        se = np.sqrt(sigma2 * np.diag(inverse))
        table = fit.summary(0.9).set_index("param")
        np.testing.assert_allclose(table.loc[["b[Intercept]", "b[Days]"], "mean"], beta,
                                   rtol=1e-9)
        np.testing.assert_allclose(table.loc[["b[Intercept]", "b[Days]"], "sd"], se,
                                   rtol=1e-7)
        np.testing.assert_allclose(table.loc[["b[Intercept]", "b[Days]"], "lower"],
                                   beta - z * se, rtol=1e-7)
        np.testing.assert_allclose(table.loc[["b[Intercept]", "b[Days]"], "upper"],
                                   beta + z * se, rtol=1e-7)
        assert table.loc["sigma", "mean"] == pytest.approx(math.sqrt(sigma2), rel=1e-9)
        found = fit.likelihood_statistics()
        assert found is not None
        if reml:
            criterion = ((n - p) * (1 + math.log(2 * math.pi * sigma2))
                         + np.linalg.slogdet(x.T @ x)[1])
            assert found == {"REML criterion": pytest.approx(criterion, rel=1e-10)}
        else:
            ml_found = found
            log_lik = -n / 2 * (math.log(2 * math.pi * sigma2) + 1)
            assert found == pytest.approx({
                "AIC": -2 * log_lik + 2 * (p + 1), "BIC": -2 * log_lik + (p + 1) * math.log(n),
                "logLik": log_lik, "deviance": -2 * log_lik, "df.resid": n - p - 1,
                "df": p + 1}, rel=1e-10)
        assert set(fit.interval_notes(0.9)) == {"b", "sigma"}
        assert fit.interval_notes(0.9)["b"].startswith("Wald: estimate ± 1.64 × sd")
    # the command line prints ML's statistics as lme4 does, and labels the intervals
    code = main(["fit", "sleepstudy", "--formula", "Reaction ~ Days", "--pooling", "complete",
                 "--method", "eb-ml", "--ml", "--draws", "20", "--chains", "1", "--quiet"])
    printed, err = capsys.readouterr()
    assert code == 0, err
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines)
                  if line.split() == list(LIKELIHOOD_COLUMNS))
    expected = [f"{ml_found[c]:.0f}" if c == "df.resid" else f"{ml_found[c]:.1f}"
                for c in LIKELIHOOD_COLUMNS]
    assert lines[header + 1].split() == expected
    assert "95% intervals: Wald for b" in [line.strip() for line in lines]
    assert "intervals of b: Wald (estimate ± 1.96 × sd" in printed
    assert "ML, as lme4's lmer(REML = FALSE)" in printed and "REML criterion" not in printed


def test_full_bayes_has_no_likelihood_line_nor_interval_notes(rats) -> None:
    fit = poolwise.fit(rats, y="y", n="n", group="experiment", method="exact", draws=100)
    assert fit.likelihood_statistics() is None and fit.interval_notes() == {}


@pytest.mark.parametrize(("settings", "error", "message"), [
    ({"method": "nuts", "reml": False}, SpecificationError,
     "reml (--ml) chooses REML or ML for method eb-ml of a normal mixed model, not for "
     "method 'nuts'"),
    ({"method": "eb-ml", "reml": False, "family": "poisson",
      "formula": "y ~ 1 + (1 | g)"}, SpecificationError, "not for method 'eb-ml' of a poisson"),
    ({"method": "eb-ml", "reml": "no"}, TypeError, "reml must be True or False, not 'no'"),
])
def test_reml_is_refused_where_it_means_nothing(settings, error, message) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        MixedModel(**{"formula": SLEEP, **settings})


@pytest.mark.parametrize(("args", "message"), [
    (["sleepstudy", "--ml"], "--ml) chooses REML or ML for method eb-ml"),
    (["rats", "--ml", "--method", "eb-ml"], "--ml is for mixed models"),
])
def test_ml_option_is_refused_in_one_line(args, message, capsys) -> None:
    code = main(["fit", *args])
    _, err = capsys.readouterr()
    assert code == 2 and message in err and err.count("\n") == 1
