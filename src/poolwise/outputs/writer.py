"""What a fit leaves in an output directory, and the JSON document of it: for every kind.

Every fit writes the same core files (:data:`CORE_FILES`): ``summary.csv``,
``posterior.nc`` (:func:`poolwise.load` reads it back), ``result.json``, the HTML page
``report.html`` (:mod:`poolwise.outputs.report`), the graphical
model ``model.png`` / ``model.svg``, the predictive check ``ppc.png`` and
``predictive_check.csv``; a fit with draws adds ``trace.png``, one with predictions
``predictions.csv``, and each kind the figures of its own (:data:`KIND_FIGURES`: the
shrinkage and forest plots of per-group rates and estimates, the group lines and group
effects of mixed models).

A new output that works for every kind is one function here (or one module beside this
one called from :func:`write_fit`).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from poolwise.exceptions import SpecificationError
from poolwise.results.checks import extreme_groups
from poolwise.results.prediction import NewGroup, NewGroupIn, Prediction

if TYPE_CHECKING:
    from poolwise.outputs.report import Provenance
    from poolwise.results.checks import PriorPredictive
    from poolwise.results.comparison import Comparison, LooComparison
    from poolwise.results.fit import Fit

__all__ = ["CORE_FILES", "KIND_FIGURES", "LIKELIHOOD_COLUMNS", "Decisions", "check_record",
           "clean", "comparison_document", "draw_figures", "fit_document", "fit_figures",
           "hyperparameters", "likelihood_lines", "prediction_table", "prior_document",
           "save_figure", "summary_records", "with_ranks", "write_comparison", "write_fit",
           "write_json", "write_prior_predictive", "write_report"]

#: the files every fit writes, whatever its kind
CORE_FILES = ("summary.csv", "posterior.nc", "result.json", "report.html", "model.png",
              "model.svg", "ppc.png", "predictive_check.csv")
#: the sampler's reports that go into the JSON document, where a fit has them
SAMPLER_KEYS = ("seconds", "divergences", "max_tree_depth_hits", "acceptance_alpha",
                "acceptance_beta", "parametrisation", "sampled", "init", "preconditioned",
                "pareto_k", "pareto_k_limit", "importance_ess", "ess", "proposals",
                "fallback")
#: summary rows up to which the JSON document carries every row (past it, summary.csv)
JSON_SUMMARY_ROWS = 10_000
#: the summary columns in the JSON document
SUMMARY_KEYS = ["param", "group", "mean", "sd", "lower", "upper", "ess_bulk", "ess_tail",
                "r_hat", "rank_mean", "rank_mean_mcse", "rank_lower", "rank_upper", "p_best",
                "p_best_mcse", "p_worst", "rank_draws"]


def clean(value: Any) -> Any:
    """JSON-ready: NaN and missing become null, NumPy scalars become Python numbers."""
    if value is None:
        return None
    if isinstance(value, float | int) and not isinstance(value, bool):
        return None if isinstance(value, float) and not math.isfinite(value) else value
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return clean(value.item())
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if hasattr(value, "tolist"):
        return clean(value.tolist())
    return value


def summary_records(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """The summary's rows as JSON records (NaN as null), column by column."""
    keys = [k for k in SUMMARY_KEYS if k in summary.columns]
    columns = {}
    for key in keys:
        column = summary[key]
        if column.dtype.kind == "f":
            values = column.to_numpy().tolist()
            columns[key] = [None if not math.isfinite(v) else v for v in values]
        else:  # text, or whole numbers that are missing on some rows
            columns[key] = [clean(v) for v in column.to_numpy(dtype=object, na_value=None)]
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def json_summary(summary: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """The summary rows the JSON document carries: all of them up to
    :data:`JSON_SUMMARY_ROWS`, else the rows without a group and the first groups' rows,
    with a note of how many there are (every row is in summary.csv)."""
    if len(summary) <= JSON_SUMMARY_ROWS:
        return summary_records(summary), None
    shared = summary["group"].isna().to_numpy()
    kept = shared | ((~shared).cumsum() <= JSON_SUMMARY_ROWS)
    return summary_records(summary[kept]), {"rows": len(summary), "in_json": int(kept.sum())}


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` without its index, as :meth:`pandas.DataFrame.to_csv` does (missing
    values empty, text quoted only where needed) but through Arrow's writer, which is
    several times faster for tables of a million groups."""
    import pyarrow as pa
    from pyarrow import csv

    columns = {}
    for name, column in table.items():
        if column.dtype == object:  # text and None: Arrow wants one type per column
            try:
                columns[str(name)] = pa.array(column, type=pa.string(), from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # labels that are not text
                columns[str(name)] = pa.array(
                    column.map(lambda v: None if v is None else str(v)), type=pa.string())
        else:
            columns[str(name)] = pa.array(column, from_pandas=True)
    csv.write_csv(pa.table(columns), path, csv.WriteOptions(quoting_style="needed"))


def save_figure(figure: Any, path: Path) -> None:
    figure.savefig(path, dpi=120, bbox_inches="tight")


# ------------------------------------------------------------------------------ a fit
def _conjugate_figures(fit: Any, ci_prob: float, predictions: Sequence[Prediction]
                       ) -> dict[str, Callable[[], Any]]:
    from poolwise.outputs import plots

    figures: dict[str, Callable[[], Any]] = {
        "shrinkage.png": partial(plots.plot_shrinkage, fit, ci_prob=ci_prob),
        "shrinkage_arrows.png": partial(plots.plot_shrinkage_arrows, fit),
        "forest.png": partial(plots.plot_forest, fit, ci_prob=ci_prob),
    }
    if fit.model.pooling == "partial":
        new = next((p.request for p in predictions if isinstance(p.request, NewGroup)), None)
        figures["population_mean.png"] = partial(plots.plot_population_mean, fit)
        figures["new_group.png"] = partial(plots.plot_new_group, fit,
                                           y=None if new is None else new.y,
                                           n=None if new is None else new.size)
        if fit.eb is None and "tau" in fit.posterior:
            figures["tau.png"] = partial(plots.plot_marginal, fit, "tau", ci_prob=ci_prob)
    return figures


def _mixed_figures(fit: Any, ci_prob: float, predictions: Sequence[Prediction]
                   ) -> dict[str, Callable[[], Any]]:
    from poolwise.outputs import plots

    figures: dict[str, Callable[[], Any]] = {}
    terms = fit.design.terms
    for term in terms:  # one forest per grouping factor
        suffix = "" if len(terms) == 1 else "_" + term.factor.replace(":", "_")
        figures[f"group_effects{suffix}.png"] = partial(plots.plot_group_effects, fit,
                                                         term.factor, ci_prob=ci_prob)
    if not fit.data.streamed:  # they draw rows; a streamed fit's notes say so
        figures["group_lines.png"] = partial(plots.plot_group_lines, fit, ci_prob=ci_prob)
    figures["conditional_effects.png"] = partial(plots.plot_conditional_effects, fit,
                                                 ci_prob=ci_prob)
    return figures


#: kind → the figures of its own: (fit, ci_prob, predictions) → {file name: draw}
KIND_FIGURES: dict[str, Callable[[Any, float, Sequence[Prediction]],
                                 dict[str, Callable[[], Any]]]] = {
    "rates": _conjugate_figures,
    "normal": _conjugate_figures,
    "mixed": _mixed_figures,
}


@dataclass(frozen=True)
class Decisions:
    """The decision answers asked for: ranks in a direction (at ``rank_draws`` draws, or
    as many as :func:`~poolwise.results.decisions.ranks` chooses), hypotheses, pairwise
    table."""

    higher: bool | None = None
    parameter: str | None = None
    hypotheses: tuple[dict[str, Any], ...] = ()
    pairwise: pd.DataFrame | None = None
    rank_draws: int | None = None


def with_ranks(summary: pd.DataFrame, ranks: pd.DataFrame) -> pd.DataFrame:
    """The summary with the rank columns on the ranked parameter's rows (NaN elsewhere)."""
    from poolwise.results.decisions import RANK_COLUMNS

    keyed = ranks.set_index(["param", "group"])[RANK_COLUMNS]
    joined = summary.join(keyed, on=["param", "group"])
    joined["rank_draws"] = joined["rank_draws"].astype("Int64")  # a count, missing elsewhere
    return joined


def fit_figures(fit: Fit, *, ci_prob: float, predictions: Sequence[Prediction] = (),
                decisions: Decisions = Decisions()) -> dict[str, Callable[[], Any]]:
    """The figures of a fit, by file name: the predictive check, the trace of draws, the
    ranks asked for and the kind's own (:data:`KIND_FIGURES`)."""
    from poolwise.outputs import plots

    figures: dict[str, Callable[[], Any]] = {
        "ppc.png": partial(plots.plot_predictive_check, fit.check_data(),
                           table=fit.predictive_check()),
    }
    # a trace is of full Bayes's draws; empirical Bayes draws given point estimates
    if ("posterior" in fit.tree.children and fit.config.draws > 1
            and not fit.method.startswith("eb-")):
        figures["trace.png"] = partial(plots.plot_trace, fit)
    if decisions.higher is not None:
        figures["ranks.png"] = partial(plots.plot_ranks, fit, higher=decisions.higher,
                                       parameter=decisions.parameter, ci_prob=ci_prob,
                                       draws=decisions.rank_draws)
    # summaries only (empirical Bayes of thousands of groups keeps no draws): the same
    if fit.kind in KIND_FIGURES and {"posterior", "group_summary"} & set(fit.tree.children):
        figures |= KIND_FIGURES[fit.kind](fit, ci_prob, predictions)
    return figures


def draw_figures(directory: Path, fit: Fit, figures: Mapping[str, Callable[[], Any]]
                 ) -> None:
    """Save each figure, and the graphical model as ``model.png`` and ``model.svg``. A
    figure these data do not allow (e.g. group lines with several predictors) is left out
    with a warning that says why."""
    from poolwise.outputs.render import render

    for name, draw in figures.items():
        try:
            figure = draw()
        except SpecificationError as err:  # a display these data do not allow
            warnings.warn(f"no {name}: {err}", stacklevel=3)
            continue
        save_figure(figure, directory / name)
    try:
        render(fit.graph(), directory / "model", fmt=("png", "svg"))
    except SpecificationError as err:  # e.g. a custom model whose structure changes
        warnings.warn(f"no graph drawn: {err}", stacklevel=3)


def write_fit(directory: Path, fit: Fit, *, summary: pd.DataFrame, check: pd.DataFrame,
              predictions: Sequence[Prediction], ci_prob: float,
              decisions: Decisions = Decisions(), provenance: Provenance | None = None,
              save_draws: bool = False, progress: Callable[[int, int], None] | None = None
              ) -> None:
    """Every file of :data:`CORE_FILES` but ``result.json`` and ``report.html``, the
    trace, the predictions, the decision answers and the kind's own figures; the
    provenance, when given, is saved with the fit, and with ``save_draws`` every group's
    draws (:meth:`~poolwise.results.fit.Fit.save`, reporting to ``progress``).

    ``summary.csv`` and ``predictive_check.csv`` (a million rows each: about a second)
    are written in a thread while the figures and the posterior file are made: Arrow's
    writer releases the GIL that matplotlib and xarray hold, so the two run on two cores.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        tables = pool.submit(_write_tables, directory, {"summary.csv": summary,
                                                        "predictive_check.csv": check})
        if predictions:
            prediction_table(predictions, ci_prob).to_csv(directory / "predictions.csv",
                                                          index=False)
        if decisions.hypotheses:
            pd.DataFrame(list(decisions.hypotheses)).to_csv(directory / "hypotheses.csv",
                                                            index=False)
        if decisions.pairwise is not None:
            decisions.pairwise.to_csv(directory / "pairwise.csv")
        draw_figures(directory, fit, fit_figures(fit, ci_prob=ci_prob,
                                                 predictions=predictions,
                                                 decisions=decisions))
        if provenance is not None:
            provenance.store(fit.tree)
        fit.save(directory / "posterior.nc", group_draws=save_draws, progress=progress)
        tables.result()  # its error, if it failed


def _write_tables(directory: Path, tables: Mapping[str, pd.DataFrame]) -> None:
    for name, table in tables.items():
        write_csv(table, directory / name)


def write_report(path: Path, fit: Fit, *, ci_prob: float = 0.95,
                 summary: pd.DataFrame | None = None, check: pd.DataFrame | None = None,
                 predictions: Sequence[Prediction] = (), decisions: Decisions = Decisions(),
                 messages: Sequence[str] = (), figures: Path | None = None,
                 provenance: Provenance | None = None) -> None:
    """``report.html`` of a fit (:func:`poolwise.outputs.report.fit_report`). Its figures
    are those :func:`write_fit` left in the directory ``figures``; without one they are
    drawn afresh (a saved fit's report). The summary and check are computed where not
    given."""
    import tempfile

    from poolwise.outputs.report import fit_report

    summary = fit.summary(ci_prob, diagnostics=fit.is_mcmc) if summary is None else summary
    check = fit.predictive_check() if check is None else check
    with tempfile.TemporaryDirectory(prefix="poolwise-figures-") as scratch:
        if figures is None:
            figures = Path(scratch)
            draw_figures(figures, fit, fit_figures(fit, ci_prob=ci_prob,
                                                   predictions=predictions,
                                                   decisions=decisions))
        page = fit_report(figures, fit, summary=summary, check=check,
                          predictions=predictions, decisions=decisions, messages=messages,
                          ci_prob=ci_prob, provenance=provenance)
    path.write_text(page, encoding="utf-8")


def prediction_table(predictions: Sequence[Prediction], ci_prob: float) -> pd.DataFrame:
    """Every prediction's summary rows, with the request in words."""
    tables = []
    for prediction in predictions:
        table = prediction.summary(ci_prob)
        table.insert(0, "request", prediction.description)
        tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _prediction_record(prediction: Prediction, ci_prob: float,
                       size_label: str | None = None) -> dict[str, Any]:
    """A prediction in the JSON document: its flat θ record where it has one, its
    description, the size (and own y) a new group's prediction was made for, with what the
    size is (``size_label``: trials, exposure, standard error), and all its rows."""
    record: dict[str, Any] = {"description": prediction.description}
    request = prediction.request
    if isinstance(request, (NewGroup, NewGroupIn)):
        record |= {"size": request.size, "size_label": size_label}
        if isinstance(request, NewGroup):
            record["y"] = request.y
    try:
        record |= prediction.brief(ci_prob)
    except SpecificationError:  # several quantities (a mixed model's coefficients, rows)
        pass
    record["rows"] = summary_records(prediction.summary(ci_prob))
    if prediction.importance_ess is not None:
        record["importance_ess"] = prediction.importance_ess
    return dict(clean(record))


def hyperparameters(fit: Fit, summary: pd.DataFrame) -> dict[str, Any] | None:
    """Empirical-Bayes estimates and standard errors (the summary's population-level rows);
    None for full Bayes."""
    if not fit.method.startswith("eb-"):
        return None
    rows = summary[summary["group"].isna()]
    return {str(row["param"]): clean({"estimate": row["mean"], "se": row["sd"]})
            for row in rows.to_dict("records")}


def check_record(check: pd.DataFrame) -> dict[str, Any]:
    """The predictive check in the JSON document: the whole-data statistics, and for each
    quantity how many groups' means have p < 0.025 or > 0.975 (null when too few replicated
    data sets to tell; every row is in the CSV)."""
    whole = check[check["group"].isna()].drop(columns="group")
    groups = {variable: {"checked": checked, "extreme": extreme, "replicates": replicates}
              for variable, (extreme, checked, replicates) in extreme_groups(check).items()}
    return {"statistics": clean(whole.to_dict("records")), "groups": groups}


def infinite_moments(fit: Fit) -> dict[str, dict[str, Any]] | None:
    """The variables whose posterior mean or sd does not exist (left out of the summary),
    with the moments missing and the median to read instead; None when every one exists."""
    missing = fit.infinite_moments()
    if not missing:
        return None
    medians = fit.medians(list(missing))
    return {name: {"missing": moments, "median": medians[name]}
            for name, moments in missing.items()}


def describe_infinite_moments(fit: Fit) -> str | None:
    """One line naming the variables without a finite mean or sd, and their medians."""
    found = infinite_moments(fit)
    if found is None:
        return None
    what = " or ".join(dict.fromkeys(m for entry in found.values() for m in entry["missing"]))
    return (f"no finite posterior {what} (a heavy tail; left out of the table): "
            + ", ".join(f"{name} median {entry['median']:.4g}" for name, entry in found.items()))


#: lme4's columns of an ML fit's statistics, in its order (``summary(lmer(...))``)
LIKELIHOOD_COLUMNS = ("AIC", "BIC", "logLik", "deviance", "df.resid")


def likelihood_lines(statistics: Mapping[str, float] | None) -> list[str]:
    """A fit's likelihood statistics (:meth:`~poolwise.results.fit.Fit.likelihood_statistics`)
    printed as lme4's summary prints them, to one decimal: ``REML criterion at
    convergence: 1743.6``, or a header ``AIC BIC logLik deviance df.resid`` over its values.
    None: no lines."""
    if not statistics:
        return []
    if "REML criterion" in statistics:
        return [f"REML criterion at convergence: {statistics['REML criterion']:.1f}"]
    values = [f"{statistics[c]:.0f}" if c == "df.resid" else f"{statistics[c]:.1f}"
              for c in LIKELIHOOD_COLUMNS]
    widths = [max(len(c), len(v)) + 1 for c, v in zip(LIKELIHOOD_COLUMNS, values, strict=True)]
    return ["".join(c.rjust(w) for c, w in zip(LIKELIHOOD_COLUMNS, widths, strict=True)),
            "".join(v.rjust(w) for v, w in zip(values, widths, strict=True))]


def fit_document(fit: Fit, *, summary: pd.DataFrame, check: pd.DataFrame,
                 predictions: Sequence[Prediction], messages: Sequence[str],
                 ci_prob: float, decisions: Decisions = Decisions()) -> dict[str, Any]:
    """The JSON document of a fit, the same keys for every kind (null where a key does not
    apply): ``kind``, ``family``, ``pooling``, ``method``, ``prior``, ``hyperparameters``,
    ``priors`` (the prior's statements), ``summary`` (every row up to
    :data:`JSON_SUMMARY_ROWS`), ``summary_rows`` (null, or how many rows there are and
    how many the document holds), ``new_group``, ``predict_group``,
    ``predictions``, ``predictive_check``, ``hypotheses``, ``pairwise``, ``notes``,
    ``infinite_moments`` (variables without a finite mean or sd: which, and their median),
    ``ignored_columns`` (custom models' unused columns), ``warnings``, ``seed``, ``sampler``,
    ``likelihood`` (eb-ml of a mixed model: lme4's ``REML criterion``, or ``AIC``, ``BIC``,
    ``logLik``, ``deviance``, ``df.resid`` and ``df``), ``intervals`` (where the intervals
    are not equal-tailed posterior ones: the parameters → what theirs are, e.g. ``"Wald:
    …"``) and the model's own description (``formula`` for mixed models, ``model`` for
    custom ones). The summary rows carry the rank columns when ranks were asked for."""
    from poolwise.results.prediction import ExistingGroup

    spec = fit.model.spec()
    size_label = getattr(getattr(fit.model, "family", None), "size_label", None)
    records = {type(p.request): _prediction_record(p, ci_prob, size_label)
               for p in predictions}
    existing = next((p for p in predictions if isinstance(p.request, ExistingGroup)), None)
    predict_group = None
    if existing is not None:
        predict_group = {"group": existing.request.group, **records[ExistingGroup]}
    rows, shortened = json_summary(summary)
    return {
        "kind": fit.kind,
        "family": spec.get("family"),
        "formula": spec.get("formula"),
        "model": (spec["model"] if isinstance(spec.get("model"), str) else
                  getattr(fit.model, "name", None)) if fit.kind == "custom" else None,
        "pooling": fit.model.pooling if fit.kind != "custom" else None,
        "method": fit.method,
        "prior": fit.describe_prior(),
        "priors": fit.prior_statements(),
        "implied_pooling": fit.implied_pooling(),
        "hyperparameters": hyperparameters(fit, summary),
        "summary": rows,
        "summary_rows": shortened,
        "new_group": records.get(NewGroup),
        "predict_group": predict_group,
        "predictions": [_prediction_record(p, ci_prob, size_label) for p in predictions],
        "predictive_check": check_record(check),
        "hypotheses": clean(list(decisions.hypotheses)) or None,
        "infinite_moments": infinite_moments(fit),
        "pairwise": None if decisions.pairwise is None else clean(
            {str(row): {str(col): value for col, value in values.items()}
             for row, values in decisions.pairwise.to_dict("index").items()}),
        "notes": list(getattr(fit.data, "notes", ())),
        "ignored_columns": list(getattr(fit.data, "ignored", ())) or None,
        "warnings": list(messages),
        "seed": fit.seed,
        "sampler": clean({k: fit.info[k] for k in SAMPLER_KEYS if k in fit.info}),
        "likelihood": clean(fit.likelihood_statistics()),
        "intervals": fit.interval_notes(ci_prob) or None,
    }


# --------------------------------------------------------------------- prior predictive
def write_prior_predictive(directory: Path, prior: PriorPredictive, *, ci_prob: float
                           ) -> None:
    """``prior_summary.csv``, ``prior_check.csv``, ``prior.nc`` and
    ``prior_predictive.png``."""
    from poolwise import _arviz
    from poolwise.outputs import plots

    prior.summary(ci_prob).to_csv(directory / "prior_summary.csv", index=False)
    prior.check().to_csv(directory / "prior_check.csv", index=False)
    _arviz.save(prior.tree, directory / "prior.nc")
    save_figure(plots.plot_predictive_check(prior.checks, stage="prior"),
                directory / "prior_predictive.png")


def prior_document(kind: str, prior: PriorPredictive, messages: Sequence[str],
                   ci_prob: float) -> dict[str, Any]:
    return {"kind": kind, "prior": prior.prior,
            "prior_summary": summary_records(prior.summary(ci_prob)),
            "prior_check": check_record(prior.check()), "warnings": list(messages)}


# --------------------------------------------------------------------------- comparison
def write_comparison(directory: Path, comparison: Comparison, *, estimates: pd.DataFrame,
                     loo: LooComparison, ci_prob: float) -> None:
    """``estimates.csv`` (the fits side by side), ``comparison.csv`` (the PSIS-LOO table,
    :data:`~poolwise.results.comparison.LOO_COLUMNS`), ``elpd_pointwise.csv`` (each point's
    elpd_i per model) and, for the three pooling levels, the side-by-side figure of the
    kind."""
    from poolwise.outputs import plots

    estimates.to_csv(directory / "estimates.csv", index=False)
    loo.table.to_csv(directory / "comparison.csv", index=False)
    loo.pointwise.to_csv(directory / "elpd_pointwise.csv")
    if not comparison.poolings:
        return
    fits: dict[str, Any] = dict(comparison.fits)
    kind = next(iter(fits.values())).kind
    try:
        if kind in ("rates", "normal"):
            save_figure(plots.plot_forest(fits, ci_prob=ci_prob), directory / "forest.png")
        elif kind == "mixed":
            save_figure(plots.plot_group_lines(fits, ci_prob=ci_prob),
                        directory / "group_lines.png")
    except SpecificationError as err:  # several predictors: no line per group
        warnings.warn(f"no comparison figure: {err}", stacklevel=2)


def comparison_document(comparison: Comparison, estimates: pd.DataFrame,
                        loo: LooComparison, messages: Sequence[str]) -> dict[str, Any]:
    """The JSON of ``poolwise compare``: each model (kind, title, method, prior), the
    estimates side by side, the PSIS-LOO comparison (``predictive``:
    :meth:`~poolwise.results.comparison.LooComparison.to_dict`) and the warnings; for the
    pooling levels also the kind, family, formula and partial pooling's method."""
    fits = comparison.fits
    document: dict[str, Any] = {
        "models": {label: {"kind": fit.kind, "title": fit.title(), "method": fit.method,
                           "prior": fit.describe_prior()} for label, fit in fits.items()}}
    if comparison.poolings:
        spec = fits["partial"].model.spec()
        document |= {"kind": fits["partial"].kind, "family": spec.get("family"),
                     "formula": spec.get("formula"), "method": fits["partial"].method,
                     "priors": {p: f.describe_prior() for p, f in fits.items()}}
    return clean(document | {"estimates": estimates.to_dict("records"),
                             "predictive": loo.to_dict(), "warnings": list(messages)})


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(clean(document), indent=2))
