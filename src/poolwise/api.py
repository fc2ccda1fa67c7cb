"""The top-level functions: :func:`fit`, :func:`load`, :func:`compare`, :func:`report`.

:func:`fit` picks the model kind from its arguments exactly as the command line does
(:func:`choose_kind`): a ``model`` (a NumPyro function or ``"file.py:function"``) → custom;
a ``formula`` → mixed; a nested ``group="outer/inner"`` → nested; ``family="nig"`` → NIG;
standard errors ``se`` or ``family="normal"`` → normal; otherwise rates. Every option
either applies to the chosen kind or is refused with a message naming the kinds that take
it (:data:`OPTION_KINDS`); none is silently ignored.

>>> import poolwise
>>> rats = poolwise.datasets.load("rats").query("historical == 1")
>>> fit = poolwise.fit(rats, y="y", n="n", group="experiment", method="eb-moments")
>>> fit.kind, round(float(fit.summary().set_index("param").loc["alpha", "mean"]), 4)
('rates', 1.3778)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from poolwise._threads import on_cluster
from poolwise.data.engines import is_dask_frame
from poolwise.exceptions import SpecificationError
from poolwise.kinds import KINDS, fit_class, model_class
from poolwise.kinds.base import BaseModel
from poolwise.results.comparison import Comparison
from poolwise.results.fit import Fit
from poolwise.results.storage import read
from poolwise.vocabulary import POOLINGS, canonical_family, kinds_text

__all__ = ["COLUMN_OPTIONS", "OPTION_KINDS", "STREAMING_KINDS", "Loaded", "build_model",
           "choose_kind", "compare", "fit", "load", "load_source", "report"]

_ALL = tuple(dict.fromkeys(KINDS))
#: every option of :func:`fit` (and of ``poolwise fit``) and the kinds that take it
OPTION_KINDS: dict[str, tuple[str, ...]] = {
    "y": ("rates", "normal", "nig", "nested"),
    "n": ("rates", "nested"),
    "se": ("normal", "nested"),
    "group": ("rates", "normal", "nig", "nested", "custom"),
    "family": ("rates", "normal", "nig", "mixed", "nested"),
    "pooling": ("rates", "normal", "nig", "mixed", "nested"),
    "prior": ("rates", "normal", "nig", "mixed", "nested"),
    "method": _ALL,
    "draws": _ALL,
    "chains": _ALL,
    "warmup": _ALL,
    "seed": _ALL,
    "progress": _ALL,
    "target_accept": ("rates", "normal", "mixed", "nested", "custom"),
    "parametrisation": ("rates", "normal", "mixed", "nested"),
    "formula": ("mixed",),
    "missing": ("mixed",),
    "agq": ("mixed",),
    "reml": ("mixed",),
    "model": ("custom",),
    "name": ("custom",),
    "coords": ("custom",),
    "init": ("custom",),
    "optimizer": ("custom",),
    "restarts": ("custom",),
    "precondition": ("custom",),
    "start": ("custom",),
}
#: the options that name the data's columns (given to ``fit``, not to the model)
COLUMN_OPTIONS = ("y", "n", "se", "group")


def choose_kind(*, formula: str | None = None, model: Any = None, family: str | None = None,
                group: str | None = None, se: str | None = None) -> str:
    """The kind the arguments describe (module docstring)."""
    if model is not None:
        return "custom"
    if formula is not None:
        return "mixed"
    name = canonical_family(family) if family is not None else None
    if name in ("binomial", "bernoulli", "poisson", "negbinomial"):
        raise SpecificationError(
            f"family {family!r} is a mixed-model family: give the model as a formula, e.g. "
            "formula='y ~ x + (1 | group)' (--formula); the per-group families are "
            "beta-binomial, gamma-poisson, normal and nig")
    if group is not None and "/" in str(group):
        return "nested"
    if name == "nig":
        return "nig"
    if se is not None or name == "normal":
        return "normal"
    return "rates"


def check_options(kind: str, options: Mapping[str, Any], spell: Mapping[str, str] | None = None
                  ) -> None:
    """Refuse an option (given, not None) that ``kind`` does not take, naming the kinds that
    do; ``spell`` maps an option to how the user wrote it (``--new-group-n``)."""
    for name, value in options.items():
        if value is None:
            continue
        kinds = OPTION_KINDS.get(name)
        if kinds is None:
            raise SpecificationError(f"unknown option {name!r}")
        if kind not in kinds:
            written = (spell or {}).get(name, f"{name}=")
            raise SpecificationError(
                f"{written} is for {kinds_text(kinds)} models, not {kind} ones")


def build_model(kind: str, **options: Any) -> BaseModel:
    """The model of ``kind`` with ``options`` (None values left to the kind's defaults)."""
    check_options(kind, options)
    given = {k: v for k, v in options.items() if v is not None}
    if kind == "nig":
        given.pop("family", None)  # the kind is the family
    if kind == "nested" and "family" not in given:
        given["family"] = "normal" if options.get("se") is not None else "beta-binomial"
    if kind in ("rates", "normal") and "family" not in given:
        given["family"] = "normal" if kind == "normal" else "beta-binomial"
    return model_class(kind)(**given)


def fit(data: pd.DataFrame | Mapping[str, Any] | str | Path | Any, *,
        formula: str | None = None, model: Any = None, family: str | None = None,
        y: str | None = None, n: str | None = None, se: str | None = None,
        group: str | None = None, engine: str | None = None, scheduler: Any = None,
        **settings: Any) -> Fit:
    """Fit the model the arguments describe (kind chosen as in the module docstring).

    ``data`` is a table (a pandas DataFrame, or columns by name), a CSV/TSV/Parquet file, a
    glob (``"data/*.parquet"``), a directory of such files, or a Dask DataFrame. Files are
    read by ``engine`` (:func:`load_source`): ``"auto"`` (the default), ``"pandas"``,
    ``"duckdb"`` (out of core) or ``"dask"``, on the ``distributed`` cluster at
    ``scheduler`` (an address such as ``"tcp://host:8786"``, or a ``Client``) if given.

    ``settings`` are the model's: ``pooling``, ``prior``, ``method``, ``draws``,
    ``chains``, ``warmup``, ``seed``, ``progress``, ``target_accept``,
    ``parametrisation``, ``missing``, ``agq`` and ``reml`` (mixed).
    """
    kind = choose_kind(formula=formula, model=model, family=family, group=group, se=se)
    columns = {"y": y, "n": n, "se": se, "group": group}
    check_options(kind, columns)
    built = build_model(kind, formula=formula, model=model, family=family, **settings)
    given = {k: v for k, v in columns.items() if v is not None}
    if (isinstance(data, str | Path) or engine is not None or scheduler is not None
            or is_dask_frame(data)):
        data = load_source(built, data, given, engine=engine or "auto",
                           scheduler=scheduler).data
    with on_cluster(scheduler):  # 10^7 groups' posteriors are summarised there too
        return built.fit(data, **given)


#: the kinds whose data reduce to group statistics, and so can be read out of core (mixed:
#: the normal family with one grouping factor, :mod:`poolwise.kinds.mixed.stream`)
STREAMING_KINDS = ("rates", "normal", "mixed")


class Loaded(NamedTuple):
    """What a model is fitted to — a pandas table, or group statistics an engine reduced
    the rows to — how many rows were read, and notes on how."""

    data: Any
    rows: int
    notes: tuple[str, ...]


def load_source(model: BaseModel, data: str | Path | Any, columns: Mapping[str, str],
                *, engine: str = "auto", scheduler: Any = None,
                text: Mapping[str, str | None] | None = None) -> Loaded:
    """Read ``data`` — a file, glob, directory or Dask DataFrame — for ``model``.

    Rates and normal models are reduced to group statistics by the engine
    (:func:`poolwise.data.engines.reduce`): one small file by pandas, larger files, globs
    and directories by DuckDB out of core, or by Dask. Normal mixed models with one
    grouping factor are reduced the same way to per-group cross-products
    (:func:`poolwise.kinds.mixed.stream.reduce_mixed`); other mixed models, nested, NIG
    and custom models need the rows in memory, so they take one file that pandas reads.
    """
    from poolwise.data.engines import Source, choose_engine, reduce, resolve
    from poolwise.data.tables import read_table_noted

    if isinstance(data, pd.DataFrame | Mapping):
        raise SpecificationError("engine= and scheduler= read files, globs, directories and "
                                 "Dask DataFrames; a pandas table is already in memory")
    source = data if is_dask_frame(data) else resolve(data)
    chosen = choose_engine(source, engine)
    text = {k: v for k, v in (text or {}).items() if v is not None}
    if model.kind not in STREAMING_KINDS:
        if chosen != "pandas" or scheduler is not None or not isinstance(source, Source):
            raise SpecificationError(
                f"{model.kind} models need the rows in memory, so they read one file with "
                f"engine 'pandas'; engines duckdb and dask (and a scheduler) reduce rates, "
                f"normal and normal mixed models only — nested, NIG and custom models still "
                f"need every row in memory")
        table, notes = read_table_noted(source.files[0], **text)
        return Loaded(table, len(table), notes)
    if chosen == "pandas" and isinstance(source, Source):  # the model reduces it
        table, notes = read_table_noted(source.files[0], **text)
        return Loaded(table, len(table), notes)
    if model.kind == "mixed":
        from poolwise.kinds.mixed.model import MixedModel
        from poolwise.kinds.mixed.stream import reduce_mixed

        assert isinstance(model, MixedModel)
        streamed = reduce_mixed(model, source, engine=chosen, scheduler=scheduler,
                                text={k: v for k, v in text.items() if v is not None})
        return Loaded(model.prepare_streamed(streamed), streamed.rows, ())
    family = getattr(model, "family", None)
    normal = family is None or family.name == "normal"
    if normal and columns.get("n") is not None:
        raise SpecificationError(
            "the normal family takes standard errors (se=, --se), not sizes (n=)")
    if family is not None and not normal and columns.get("se") is not None:
        raise SpecificationError(f"the {family.name} family takes sizes (n=, --n), not se=")
    if columns.get("y") is None:
        raise SpecificationError("name the column of counts or estimates: y='...'")
    reduced = reduce(source, None if normal else family, y=columns["y"], n=columns.get("n"),
                     se=columns.get("se"), group=columns.get("group"), engine=chosen,
                     scheduler=scheduler, text=text)
    return Loaded(reduced.stats, reduced.rows, ())


def load(path: str | Path) -> Fit:
    """A fit saved by ``fit.save(path)`` (or ``poolwise fit --out``: the directory or its
    ``posterior.nc``), of the right kind, with everything needed for summaries,
    predictions and plots.

    Raises :class:`~poolwise.exceptions.SpecificationError` with one line for a missing
    file, a file that is not a poolwise fit, a fit of an unknown kind, or one written in
    a newer format than this poolwise reads.
    """
    path = Path(path)
    record = read(path / "posterior.nc" if path.is_dir() else path, tuple(KINDS))
    return fit_class(record.kind).from_tree(record.tree)


def report(fit: Fit | str | Path, path: str | Path = "report.html", *,
           ci_prob: float = 0.95) -> Path:
    """Write the HTML report of ``fit``, or of the fit saved at ``fit`` (see :func:`load`),
    to ``path``: one self-contained page (:mod:`poolwise.outputs.report`). Returns the
    path."""
    from poolwise.outputs.writer import write_report

    if not isinstance(fit, Fit):
        fit = load(fit)
    path = Path(path)
    write_report(path, fit, ci_prob=ci_prob)
    return path


def compare(data: pd.DataFrame | Mapping[str, Any], *, prior: str | None = None,
            method: str | None = None, theta_prior: str | None = None,
            formula: str | None = None, family: str | None = None, y: str | None = None,
            n: str | None = None, se: str | None = None, group: str | None = None,
            formulas: Sequence[str] | None = None, **settings: Any) -> Comparison:
    """Fit no, complete and partial pooling of one model and set them side by side; or,
    with ``formulas``, fit each mixed-model formula with the same settings (complete
    pooling for one without group terms, such as ``"y ~ x"``).

    ``prior`` and ``method`` apply to partial pooling; the other two levels use their
    kind's default method and ``theta_prior`` (rates and normal: θ's fixed prior, default
    Jeffreys) or the default priors (other kinds), because their parameters differ. The
    comparison's :meth:`~poolwise.results.comparison.Comparison.predictive` scores them.
    """
    if formulas is not None:
        given = {"formula": formula, "theta_prior": theta_prior, "y": y, "n": n, "se": se,
                 "group": group}
        if any(value is not None for value in given.values()):
            named = ", ".join(k for k, v in given.items() if v is not None)
            raise SpecificationError(f"formulas= compares mixed models, which take their "
                                     f"columns from the formulas; leave out {named}")
        if len(formulas) < 2 or len(set(formulas)) < len(formulas):
            raise SpecificationError(f"formulas= takes two different formulas or more, got "
                                     f"{list(formulas)}")
        return Comparison({text: build_model("mixed", formula=text, family=family,
                                             prior=prior, method=method, **settings)
                           .fit(data) for text in formulas})
    kind = choose_kind(formula=formula, family=family, group=group, se=se)
    if kind == "nested":
        raise SpecificationError(
            "nested models pool partially at both levels, so there are no pooling levels to "
            "compare; compare a flat model of the inner groups (group='experiment')")
    if theta_prior is not None and kind not in ("rates", "normal"):
        raise SpecificationError("theta_prior (--theta-prior) is for rates and normal models")
    columns = {k: v for k, v in {"y": y, "n": n, "se": se, "group": group}.items()
               if v is not None}
    fits = {}
    for pooling in POOLINGS:
        partial = pooling == "partial"
        chosen = prior if partial else theta_prior
        model = build_model(kind, formula=formula, family=family, pooling=pooling,
                            prior=chosen, method=method if partial else None, **settings)
        fits[pooling] = model.fit(data, **columns)
    return Comparison(fits)
