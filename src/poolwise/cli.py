"""The ``poolwise`` command line: a thin layer over the public API.

Every user mistake ends with one line on standard error and exit code 2; nothing is
written unless the whole job succeeded.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from poolwise import datasets
from poolwise.exceptions import PoolwiseError, SpecificationError
from poolwise.vocabulary import POOLING_PHRASES

app = typer.Typer(
    name="poolwise",
    help="Bayesian hierarchical models for grouped data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console()
if not stdout.is_terminal:  # piped or captured: no terminal to fit, keep tables whole
    stdout = Console(width=120)
stderr = Console(stderr=True)

FORMATS = ("table", "json")
MAX_TABLE_ROWS = 40


# ----------------------------------------------------------------------------- options
Data = Annotated[str, typer.Argument(help="CSV/TSV/Parquet file, or a bundled dataset name.")]
Family = Annotated[str | None, typer.Option(
    help="beta-binomial, gamma-poisson, normal, or nig (raw observations, unknown variance).")]
#: names of the Normal-Inverse-Gamma model on the command line
NIG_FAMILIES = ("nig", "normal-inverse-gamma")
YCol = Annotated[str | None, typer.Option("--y", help="Column of counts (successes/events).")]
NCol = Annotated[str | None, typer.Option("--n", help="Column of trials or exposure.")]
SeCol = Annotated[str | None, typer.Option(
    "--se", help="Column of standard errors (normal family; omit for raw observations).")]
GroupCol = Annotated[str | None, typer.Option("--group", help="Column of group labels.")]
Method = Annotated[str, typer.Option(help="exact, eb-moments, eb-ml, gibbs or nuts.")]
FitMethod = Annotated[str | None, typer.Option(
    "--method", help="exact (default), eb-moments, eb-ml, gibbs or nuts.")]
Prior = Annotated[
    str | None,
    typer.Option(help="Hyperprior ('bda', 'halfnormal(10)', ...) or θ prior ('beta(0.5,0.5)')."),
]
Draws = Annotated[int, typer.Option(help="Draws per chain.")]
PoolingOption = Annotated[str, typer.Option(help="none, complete or partial.")]
Chains = Annotated[int, typer.Option(help="Number of chains.")]
Warmup = Annotated[int, typer.Option(help="Warm-up iterations per chain (gibbs, nuts).")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed gives the same draws.")]
Ci = Annotated[float, typer.Option("--ci", help="Interval probability.")]
Out = Annotated[Path | None, typer.Option("--out", help="Directory for summary, draws, plots.")]
Force = Annotated[bool, typer.Option("--force", help="Write into an --out that has files.")]
Format = Annotated[str, typer.Option("--format", help="table or json.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress output.")]
Parametrisation = Annotated[str, typer.Option(
    help="nuts: auto, non-centred, centred (normal family) or marginal (θ integrated out).")]
NewY = Annotated[float | None, typer.Option("--new-group-y",
                                            help="Count (successes, events) in a new group.")]
NewN = Annotated[float | None, typer.Option("--new-group-n",
                                            help="Trials or exposure of a new group.")]
Formula = Annotated[str | None, typer.Option(
    "--formula", help="Mixed model, lme4 style: 'Reaction ~ Days + (Days | Subject)'.")]
ModelFile = Annotated[str | None, typer.Option(
    "--model", help="A NumPyro model in a file, FILE.py:FUNCTION (DATA's columns are its "
    "keyword arguments). Only the named file is run.")]
DropMissing = Annotated[bool, typer.Option(
    "--drop-missing", help="Mixed models: drop rows with missing values (else refused).")]
PredictGroup = Annotated[str | None, typer.Option(
    "--predict-group", help="An existing group: predict new data y* from it (its own size).")]


@dataclass(frozen=True)
class Source:
    """A table and the columns to use, from a file or a bundled dataset."""

    name: str
    table: pd.DataFrame
    family: str
    y: str
    n: str | None
    group: str | None
    new_group: tuple[float, float] | None = None
    se: str | None = None
    #: an lme4-style formula: the table is for a mixed model
    formula: str | None = None


def load_source(data: str, family: str | None, y: str | None, n: str | None,
                group: str | None, se: str | None = None, formula: str | None = None
                ) -> Source:
    """Resolve DATA to a table; bundled datasets supply their own columns and family
    (and, for mixed models, their formula)."""
    from poolwise.data.tables import read_table
    from poolwise.kinds.mixed.design import FAMILIES as MIXED_FAMILIES

    path = Path(data)
    if formula is not None or (family or "") in MIXED_FAMILIES:
        return _mixed_source(data, path, family, formula, (y, n, se, group))
    if path.exists():
        if y is None:
            raise SpecificationError("name the count column with --y (and --n, --group)")
        return Source(path.name, read_table(path), family or "beta-binomial", y, n, group,
                      se=se)
    if any(sep in data for sep in "/\\") or path.suffix:
        raise SpecificationError(f"file not found: {data}")
    info = datasets.info(data)
    if info.formula is not None:
        return _mixed_source(data, path, family, formula, (y, n, se, group))
    table = datasets.load(data)
    new_group = None
    if info.fit_flag is not None:
        current = table[table[info.fit_flag] == 0]
        table = table[table[info.fit_flag] == 1]
        if len(current) == 1:
            new_group = (float(current[info.y].iloc[0]), float(current[str(info.n)].iloc[0]))
    if family is not None and family != info.family:  # the user's columns, not the dataset's
        return Source(data, table, family, y or info.y, n, group or info.group, None, se)
    return Source(data, table, info.family, y or info.y, n if n is not None else info.n,
                  group or info.group, new_group, se if se is not None else info.se)


def _mixed_source(data: str, path: Path, family: str | None, formula: str | None,
                  column_options: tuple[str | None, ...]) -> Source:
    """A table for a mixed model: the formula names the columns."""
    from poolwise.data.tables import read_table

    bundled = not path.exists() and data in datasets.DATASETS
    if formula is None and not (bundled and datasets.info(data).formula):
        raise SpecificationError(
            f"--family {family} is a mixed-model family: give the model as --formula, e.g. "
            "--formula 'y ~ x + (1 | group)'; the per-group families are beta-binomial, "
            "gamma-poisson, normal and nig")
    if any(option is not None for option in column_options):
        raise SpecificationError("a mixed model takes its columns, groups included, from "
                                 "--formula; leave out --y, --n, --se and --group")
    if path.exists():
        assert formula is not None  # checked above
        return Source(path.name, read_table(path), family or "gaussian", "", None, None,
                      formula=formula)
    if any(sep in data for sep in "/\\") or path.suffix:
        raise SpecificationError(f"file not found: {data}")
    info = datasets.info(data)
    formula = formula or info.formula
    if formula is None:
        raise SpecificationError(
            f"dataset {data!r} is for the {info.family} family; give a --formula to fit a "
            "mixed model to it")
    return Source(data, datasets.load(data), family or (
        info.family if info.formula is not None else "gaussian"), "", None, None,
        formula=formula)


# ----------------------------------------------------------------------------- output
def _clean(value: Any) -> Any:
    """JSON-ready: NaN and missing become null, NumPy scalars become Python numbers."""
    if value is None:
        return None
    if isinstance(value, float | int) and not isinstance(value, bool):
        return None if isinstance(value, float) and not math.isfinite(value) else value
    if hasattr(value, "item"):
        return _clean(value.item())
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def summary_records(summary: pd.DataFrame) -> list[dict[str, Any]]:
    keys = ["param", "group", "mean", "sd", "lower", "upper", "ess_bulk", "ess_tail", "r_hat"]
    return [_clean({k: row[k] for k in keys}) for row in summary.to_dict("records")]


def fit_document(fit: Any, summary: pd.DataFrame, new_group: dict[str, float] | None,
                 caught: list[str]) -> dict[str, Any]:
    hyper = None
    if fit.eb is not None:
        rows = summary[summary["group"].isna()].set_index("param")
        hyper = {name: _clean({"estimate": rows.loc[name, "mean"], "se": rows.loc[name, "sd"]})
                 for name in rows.index}
    return {
        "family": fit.model.family.name,
        "pooling": fit.model.pooling,
        "method": fit.method,
        "prior": fit.describe_prior(),
        "hyperparameters": hyper,
        "summary": summary_records(summary),
        "new_group": _clean(new_group),
        "notes": list(fit.data.notes),
        "warnings": caught,
        "seed": fit.config.seed,
        "sampler": _clean(sampler_report(fit)),
    }


def sampler_report(fit: Any) -> dict[str, Any]:
    """What a Markov chain method reports about itself: acceptance rates, divergences."""
    keys = ("acceptance_alpha", "acceptance_beta", "divergences")
    return {k: fit.info[k] for k in keys if k in fit.info} | {"seconds": fit.info.get("seconds")}


def check_output_directory(out: Path | None, force: bool) -> None:
    """Refuse, before any work, an --out that is a file or already has files."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise SpecificationError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SpecificationError(
            f"output directory {out} already has files; use --force to overwrite them "
            "or choose another --out"
        )


@contextmanager
def output_directory(out: Path | None, force: bool) -> Iterator[Path | None]:
    """A staging directory whose files move into ``out`` only if the job succeeds."""
    if out is None:
        yield None
        return
    check_output_directory(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".poolwise-", dir=out.parent))
    try:
        yield staging
        out.mkdir(exist_ok=True)
        for item in staging.iterdir():
            item.replace(out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_figure(figure: Any, path: Path) -> None:
    figure.savefig(path, dpi=120, bbox_inches="tight")


@contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """Turn warnings into lines the CLI prints (and reports in JSON)."""
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    messages.extend(dict.fromkeys(str(w.message) for w in caught))


@contextmanager
def progress(message: str, quiet: bool) -> Iterator[None]:
    if quiet:
        yield
    else:
        with stderr.status(message):
            yield


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _fmt_count(value: Any) -> str:
    return _fmt(value) if not isinstance(value, float) or not math.isfinite(value) else (
        f"{value:.0f}")


def print_header(title: str, prior: str | None, notes: tuple[str, ...] | list[str]) -> None:
    """What was fitted, the prior in use and notes on the data, before the table.

    With ``prior=None`` a "priors:" heading is printed for the caller's lines below.
    """
    stdout.print(title)
    for note in notes:
        stdout.print(f"note: {note}", markup=False, highlight=False)
    stdout.print("priors:" if prior is None else f"prior: {prior}", markup=False,
                 highlight=False)


def print_table(summary: pd.DataFrame, ci_prob: float) -> None:
    """The summary table (its first rows), with diagnostics when it has them."""
    level = f"{100 * ci_prob:g}%"
    table = Table(show_edge=False, header_style="bold", title=f"{level} equal-tailed intervals",
                  title_justify="left", pad_edge=False)
    columns = ["param", "group", "mean", "sd", "lower", "upper"]
    with_diag = summary["ess_bulk"].notna().any()
    if with_diag:
        columns += ["ess_bulk", "ess_tail", "r_hat"]
    for column in columns:
        table.add_column(column, justify="left" if column in {"param", "group"} else "right")
    shown = summary.head(MAX_TABLE_ROWS)
    for row in shown.to_dict("records"):
        cells = [row["param"], _fmt(row["group"]), _fmt(row["mean"]), _fmt(row["sd"]),
                 _fmt(row["lower"]), _fmt(row["upper"])]
        if with_diag:
            cells += [_fmt_count(row["ess_bulk"]), _fmt_count(row["ess_tail"]),
                      "—" if not math.isfinite(row["r_hat"]) else f"{row['r_hat']:.3f}"]
        table.add_row(*(Text(str(cell)) for cell in cells))
    stdout.print(table)
    if len(summary) > len(shown):
        stdout.print(f"… {len(summary) - len(shown)} more rows (all in summary.csv with --out)")


def print_summary(fit: Any, source: Source, summary: pd.DataFrame, ci_prob: float) -> None:
    data = fit.data
    print_header(
        f"[bold]{escape(source.name)}[/bold]: {fit.model.family.name}, "
        f"{POOLING_PHRASES[fit.model.pooling]}, method [bold]{fit.method}[/bold], "
        f"{data.n_groups} groups by {escape(repr(data.group_name))}",
        fit.describe_prior(), data.notes)
    print_table(summary, ci_prob)
    report = sampler_report(fit)
    if "acceptance_alpha" in report:
        rates = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(
            report["acceptance_alpha"], report["acceptance_beta"], strict=True))
        stdout.print(f"Metropolis acceptance after warm-up, α/β per chain: {rates}")
    if "divergences" in report:
        stdout.print(f"divergent transitions: {report['divergences']}")
    if fit.eb is not None:
        stdout.print(
            f"hyperparameter rows: {fit.eb.method} point estimates"
            + (", with standard errors and intervals from the normal approximation"
               if fit.eb.uv_covariance is not None else " (no standard errors)")
            + "; θ rows: posterior given the estimates, which ignores their uncertainty",
            markup=False, highlight=False,
        )


# ----------------------------------------------------------------------------- commands
def _check_output_options(output_format: str, ci: float) -> None:
    if output_format not in FORMATS:
        raise SpecificationError(
            f"unknown format {output_format!r}; valid: {', '.join(FORMATS)}")
    if not 0 < ci < 1:
        raise SpecificationError(f"--ci must be between 0 and 1, got {ci}")


@app.command("fit")
def fit_command(
    data: Data, family: Family = None, y: YCol = None, n: NCol = None, group: GroupCol = None,
    se: SeCol = None,
    pooling: PoolingOption = "partial",
    method: FitMethod = None, prior: Prior = None, draws: Draws = 1000, chains: Chains = 4,
    warmup: Warmup = 1000, seed: Seed = 0, ci: Ci = 0.95, out: Out = None, force: Force = False,
    output_format: Format = "table", quiet: Quiet = False, new_group_y: NewY = None,
    new_group_n: NewN = None, parametrisation: Parametrisation = "auto",
    predict_group: PredictGroup = None, formula: Formula = None,
    drop_missing: DropMissing = False, model_file: ModelFile = None,
) -> int:
    """Fit one model and print its summary; with --out also write CSV, NetCDF and plots."""
    from poolwise.model import Model

    _check_output_options(output_format, ci)
    check_output_directory(out, force)
    if model_file is not None:
        given = [name for name, value in (("--family", family), ("--y", y), ("--n", n),
                                          ("--group", group), ("--se", se),
                                          ("--formula", formula), ("--prior", prior))
                 if value is not None]
        if given or pooling != "partial" or parametrisation != "auto":
            raise SpecificationError(
                "--model takes its likelihood, priors and structure from the model file; "
                f"leave out {', '.join(given) or '--pooling / --parametrisation'}")
        custom_options: dict[str, Any] = dict(draws=draws, chains=chains, warmup=warmup,
                                              seed=seed)
        return fit_custom(data, model_file, method, custom_options, ci, out, force,
                          output_format, quiet)
    source = load_source(data, family, y, n, group, se, formula)
    if source.formula is not None:
        options = dict(method=method or "nuts", draws=draws, chains=chains, warmup=warmup,
                       seed=seed, parametrisation=parametrisation,
                       progress=not quiet and output_format == "table" and stderr.is_terminal)
        return fit_mixed(source, pooling, prior, drop_missing, options, ci, out, force,
                         output_format, quiet)
    if drop_missing:
        raise SpecificationError("--drop-missing is for mixed models (--formula); other "
                                 "models refuse missing values so that no row is lost silently")
    if source.family in NIG_FAMILIES and source.group is not None and "/" in source.group:
        raise SpecificationError("the nig family takes one grouping column; nested groups "
                                 "(outer/inner) are for beta-binomial, gamma-poisson and normal")
    if source.family in NIG_FAMILIES:
        return fit_nig(source, pooling, method, prior, draws, chains, seed, ci, out, force,
                       output_format)
    if source.group is not None and "/" in source.group:
        options = dict(draws=draws, chains=chains, warmup=warmup, seed=seed)
        return fit_nested(source, pooling, method, prior, options, new_group_n, ci, out,
                          force, output_format, quiet)
    method = method or "exact"
    new_group = _new_group_request(source, new_group_y, new_group_n)
    model = Model(family=source.family, pooling=pooling, prior=prior)
    with output_directory(out, force) as staging, collected_warnings() as caught:
        # nuts draws its own progress bar; the others get a spinner
        with progress(f"fitting {source.name} with {method}…",
                      quiet or output_format == "json" or method == "nuts"):
            fit = model.fit(source.table, y=source.y, n=source.n, group=source.group, se=source.se,
                            method=method, draws=draws, chains=chains, warmup=warmup, seed=seed,
                            progress=not quiet and output_format == "table"
                            and stderr.is_terminal, parametrisation=parametrisation)
        # ArviZ diagnostics cost ~3 ms a group; exact draws are independent by construction
        summary = fit.summary(ci, diagnostics=fit.is_mcmc or fit.data.n_groups <= 1000)
        new_summary = None
        if new_group is not None:
            new_summary = fit.predict_new_group(y=new_group[0], n=new_group[1]).summary(ci)
        existing, size = None, None
        if predict_group is not None:
            prediction = fit.predict_group(predict_group)
            existing, size = prediction.summary(ci), prediction.n
        if staging is not None:
            write_fit_outputs(staging, fit, summary, new_group, ci)
    document = fit_document(fit, summary, new_summary, caught)
    if existing is not None:
        document["predict_group"] = _clean({"group": predict_group, **existing})
    if staging is not None:
        (out / "result.json").write_text(json.dumps(document, indent=2))  # type: ignore[operator]
    if output_format == "json":
        stdout.print_json(json.dumps(document))
    else:
        print_summary(fit, source, summary, ci)
        print_population(fit, ci)
        if new_summary is not None and new_group is not None:
            label = _new_group_label(new_group)
            stdout.print(
                f"new group ({label}): θ mean {new_summary['mean']:.4g}, sd "
                f"{new_summary['sd']:.4g}, {100 * ci:g}% interval "
                f"[{new_summary['lower']:.4g}, {new_summary['upper']:.4g}]"
                + (f"; predicted y mean {new_summary['y_mean']:.4g}, {100 * ci:g}% interval "
                   f"[{new_summary['y_lower']:.4g}, {new_summary['y_upper']:.4g}]"
                   if "y_mean" in new_summary else ""),
                markup=False, highlight=False,
            )
        if existing is not None:
            stdout.print(
                f"new data from group {predict_group} ({fit.model.family.size_label} "
                f"{size:g}): "
                f"predicted y mean {existing['y_mean']:.4g}, {100 * ci:g}% interval "
                f"[{existing['y_lower']:.4g}, {existing['y_upper']:.4g}]",
                markup=False, highlight=False)
        if out is not None:
            stdout.print(f"wrote {out}/")
    print_warnings(caught)
    return 0


def fit_mixed(source: Source, pooling: str, prior: str | None, drop_missing: bool,
              options: dict[str, Any], ci: float, out: Path | None, force: bool,
              output_format: str, quiet: bool) -> int:
    """``fit --formula``: a (generalised) linear mixed model; priors are shown first."""
    from poolwise.kinds.mixed.model import MixedModel

    assert source.formula is not None
    model = MixedModel(source.formula, source.table, family=source.family, pooling=pooling,
                       priors=prior, missing="drop" if drop_missing else "refuse")
    design = model.design
    title = (f"[bold]{escape(source.name)}[/bold]: {source.family} mixed model "
             f"{escape(repr(source.formula))}, {POOLING_PHRASES[pooling]}, method "
             f"[bold]{options['method']}[/bold], {design.n_obs} rows")
    if output_format == "table" and options["method"] == "eb-ml":
        print_header(title, "none: REML point estimates (as lme4)", design.notes)
    elif output_format == "table":  # the priors before the (long) fit
        print_header(title, None, design.notes)
        for line in model.priors.describe():
            stdout.print(f"  {line}", markup=False, highlight=False)
    with output_directory(out, force) as staging, collected_warnings() as caught:
        # nuts draws its own progress bar; REML gets a spinner
        with progress(f"fitting {source.name} with {options['method']}…",
                      quiet or output_format == "json" or options["method"] == "nuts"):
            fit = model.fit(**options)
        summary = fit.summary(ci)
        if staging is not None:
            write_mixed_outputs(staging, fit, summary, ci)
    document = {"family": source.family, "formula": source.formula, "pooling": pooling,
                "method": fit.method, "prior": fit.describe_prior(),
                "priors": model.priors.describe(), "hyperparameters": None,
                "summary": summary_records(summary), "new_group": None,
                "notes": list(design.notes), "warnings": caught, "seed": options["seed"],
                "sampler": _clean({k: fit.info.get(k) for k in
                                   ("seconds", "divergences", "max_tree_depth_hits",
                                    "parametrisation", "sampled")})}
    if out is not None:
        (out / "result.json").write_text(json.dumps(document, indent=2))
    if output_format == "json":
        stdout.print_json(json.dumps(document))
    else:
        print_table(summary, ci)
        if fit.is_mcmc:
            stdout.print(f"NUTS: {fit.info.get('sampled', '')}; divergent transitions: "
                         f"{fit.info.get('divergences', 0)}", markup=False, highlight=False)
        if out is not None:
            stdout.print(f"wrote {out}/")
    print_warnings(caught)
    return 0


def write_mixed_outputs(directory: Path, fit: Any, summary: pd.DataFrame, ci: float) -> None:
    """summary.csv, posterior.nc and, for draws, the trace, group-effect and group-line
    plots (the last only for designs it can draw)."""
    summary.to_csv(directory / "summary.csv", index=False)
    fit.save(str(directory / "posterior.nc"))
    write_graph(directory, fit.model.graph())
    if not fit.is_mcmc:
        return
    from poolwise import plots

    figures: dict[str, Callable[[], Any]] = {"trace.png": lambda: plots.plot_trace(fit)}
    for term in fit.design.terms:  # one forest per grouping factor
        suffix = "" if len(fit.design.terms) == 1 else "_" + term.factor.replace(":", "_")
        figures[f"group_effects{suffix}.png"] = partial(plots.plot_group_effects, fit,
                                                         term.factor, ci_prob=ci)
    for name, draw in figures.items():
        save_figure(draw(), directory / name)
    try:
        save_figure(plots.plot_group_lines(fit, ci_prob=ci), directory / "group_lines.png")
    except SpecificationError as err:  # e.g. several predictors: no single line per group
        warnings.warn(f"no group_lines.png: {err}", stacklevel=2)


def fit_nested(source: Source, pooling: str, method: str | None, prior: str | None,
               options: dict[str, Any], new_n: float | None, ci: float, out: Path | None,
               force: bool, output_format: str, quiet: bool) -> int:
    """``fit --group outer/inner``: experiments within labs, by NUTS."""
    from poolwise.kinds.nested import NestedModel, parse_group_path

    assert source.group is not None
    outer, inner = parse_group_path(source.group)
    if (method or "nuts") != "nuts":
        raise SpecificationError(f"nested groups are fitted by nuts only, not {method!r}")
    if pooling != "partial":
        raise SpecificationError("nested groups are partial pooling at both levels; for "
                                 f"{pooling} pooling use a single --group column")
    model = NestedModel(source.family, prior=prior)
    with output_directory(out, force) as staging, collected_warnings() as caught:
        with progress(f"fitting {source.name} ({outer}/{inner}) with nuts…",
                      quiet or output_format == "json"):
            fit = model.fit(source.table, y=source.y, n=source.n, se=source.se, outer=outer,
                            inner=inner, **options)
        summary = fit.summary(ci)
        new_lab = fit.predict_new_lab(n=new_n).summary(ci)
        if staging is not None:
            summary.to_csv(staging / "summary.csv", index=False)
            fit.save(staging / "posterior.nc")
            write_graph(staging, fit.graph())
    document = {"family": source.family, "group": source.group, "pooling": "partial",
                "method": "nuts", "prior": fit.describe_prior(),
                "hyperparameters": None, "summary": summary_records(summary),
                "new_group": _clean({"kind": f"a new {inner} in a new {outer}", **new_lab}),
                "notes": list(fit.data.notes), "warnings": caught, "seed": options["seed"],
                "sampler": _clean({"seconds": fit.info.get("seconds"),
                                   "divergences": fit.info.get("divergences")})}
    if out is not None:
        (out / "result.json").write_text(json.dumps(document, indent=2))
    if output_format == "json":
        stdout.print_json(json.dumps(document))
    else:
        print_header(f"[bold]{escape(source.name)}[/bold]: {source.family}, "
                     f"{escape(inner)} within {escape(outer)}, method [bold]nuts[/bold]",
                     fit.describe_prior(), fit.data.notes)
        print_table(summary, ci)
        stdout.print(
            f"new {inner} in a new {outer}: θ mean {new_lab['mean']:.4g}, {100 * ci:g}% "
            f"interval [{new_lab['lower']:.4g}, {new_lab['upper']:.4g}]"
            + (f"; predicted y mean {new_lab['y_mean']:.4g}" if "y_mean" in new_lab else ""),
            markup=False, highlight=False)
        if out is not None:
            stdout.print(f"wrote {out}/")
    print_warnings(caught)
    return 0


def fit_custom(data: str, spec: str, method: str | None, options: dict[str, Any],
               ci: float, out: Path | None, force: bool, output_format: str,
               quiet: bool) -> int:
    """``fit --model FILE.py:FUNCTION DATA``: a user's NumPyro model, started at its mode."""
    from poolwise.kinds.custom import CustomModel, load_model
    from poolwise.data.tables import read_table

    path = Path(data)
    if not path.exists():
        raise SpecificationError(f"file not found: {data} (a custom model needs a data file)")
    model = CustomModel(load_model(spec), read_table(path), name=spec)
    method = method or "nuts"
    with output_directory(out, force) as staging, collected_warnings() as caught:
        with progress(f"fitting {spec} with {method}…", quiet or output_format == "json"):
            fit = model.fit(method, **options)
        summary = fit.summary(ci)
        check = fit.ppc_summary() if method != "map" else None
        graph_note = None
        if staging is not None:
            summary.to_csv(staging / "summary.csv", index=False)
            fit.save(staging / "posterior.nc")
            if check is not None:
                check.to_csv(staging / "predictive_check.csv", index=False)
            if fit.is_mcmc:
                from poolwise import plots

                save_figure(plots.plot_trace(fit), staging / "trace.png")
            try:
                write_graph(staging, model.graph())
            except SpecificationError as err:  # e.g. a dynamic structure
                graph_note = f"no graph drawn: {err}"
    if graph_note is not None:
        caught.append(graph_note)
    document = {"model": spec, "method": fit.method, "prior": fit.describe_prior(),
                "hyperparameters": None, "summary": summary_records(summary),
                "new_group": None,
                "predictive_check": None if check is None else _clean(check.to_dict("records")),
                "ignored_columns": list(model.ignored), "warnings": caught,
                "seed": options["seed"],
                "sampler": _clean({k: fit.info.get(k) for k in
                                   ("seconds", "divergences", "init", "preconditioned")})}
    if out is not None:
        (out / "result.json").write_text(json.dumps(document, indent=2))
    if output_format == "json":
        stdout.print_json(json.dumps(document))
    else:
        notes = [f"columns not used by the model: {', '.join(model.ignored)}"] \
            if model.ignored else []
        print_header(f"[bold]{escape(path.name)}[/bold]: custom model {escape(spec)}, method "
                     f"[bold]{fit.method}[/bold]", fit.describe_prior(), notes)
        print_table(summary, ci)
        if check is not None:
            stdout.print("posterior predictive check (Bayesian p-values near 0 or 1 flag a "
                         "feature of the data the model does not reproduce):")
            stdout.print(check.to_string(index=False), markup=False, highlight=False)
        if out is not None:
            stdout.print(f"wrote {out}/")
    print_warnings(caught)
    return 0


def fit_nig(source: Source, pooling: str, method: str | None, prior: str | None,
            draws: int, chains: int, seed: int, ci: float, out: Path | None, force: bool,
            output_format: str) -> int:
    """``fit --family nig``: raw observations, unknown mean and variance per group."""
    from poolwise.kinds.nig import NIGModel

    if source.n is not None or source.se is not None:
        raise SpecificationError("the nig family takes raw observations (--y, --group), "
                                 "not sizes (--n) or standard errors (--se)")
    model = NIGModel(pooling=pooling, prior=prior)
    with output_directory(out, force) as staging, collected_warnings() as caught:
        fit = model.fit(source.table, y=source.y, group=source.group, method=method,
                        draws=draws, chains=chains, seed=seed)
        summary = fit.summary(ci, diagnostics=fit.data.n_groups <= 1000)
        if staging is not None:
            summary.to_csv(staging / "summary.csv", index=False)
            fit.save(str(staging / "posterior.nc"))
            from poolwise.results.graph import nig_graph

            write_graph(staging, nig_graph(fit.prior, fit.data.n_groups))
    document = {"family": "nig", "pooling": pooling, "method": fit.method,
                "prior": fit.describe_prior(), "hyperparameters": _clean(fit.estimate),
                "summary": summary_records(summary), "new_group": None,
                "notes": list(fit.data.notes), "warnings": caught, "seed": seed,
                "sampler": {"seconds": fit.info.get("seconds")}}
    if out is not None:
        (out / "result.json").write_text(json.dumps(document, indent=2))
    if output_format == "json":
        stdout.print_json(json.dumps(document))
    else:
        print_header(f"[bold]{escape(source.name)}[/bold]: normal-inverse-gamma, "
                     f"{POOLING_PHRASES[pooling]}, method [bold]{fit.method}[/bold], "
                     f"{fit.data.n_groups} groups by {escape(repr(fit.data.group_name))}",
                     fit.describe_prior(), fit.data.notes)
        print_table(summary, ci)
        if out is not None:
            stdout.print(f"wrote {out}/")
    print_warnings(caught)
    return 0


def _new_group_request(source: Source, y: float | None, n: float | None
                       ) -> tuple[float | None, float] | None:
    if y is not None and n is None:
        raise SpecificationError("--new-group-y needs --new-group-n")
    if n is not None:
        return (y, n)
    return source.new_group


def _new_group_label(new_group: tuple[float | None, float]) -> str:
    y, n = new_group
    return f"y = {y:g} of n = {n:g}" if y is not None else f"brand-new, size {n:g}"


def print_population(fit: Any, ci: float) -> None:
    if fit.model.pooling != "partial":
        return
    pop = fit.population_mean(ci)
    if fit.eb is not None and not math.isfinite(pop["sd"]):
        line = f"population mean μ: {pop['mean']:.4g} (empirical-Bayes point estimate)"
    elif fit.eb is not None:
        line = (
            f"population mean μ: estimate {pop['mean']:.4g} (standard error {pop['sd']:.4g}, "
            f"{100 * ci:g}% interval [{pop['lower']:.4g}, {pop['upper']:.4g}] from the "
            "normal approximation)"
        )
    else:
        line = (
            f"population mean μ: {pop['mean']:.4g} (sd {pop['sd']:.4g}, MAP {pop['map']:.4g}, "
            f"{100 * ci:g}% interval [{pop['lower']:.4g}, {pop['upper']:.4g}])"
        )
    stdout.print(line, markup=False, highlight=False)


def write_fit_outputs(directory: Path, fit: Any, summary: pd.DataFrame,
                      new_group: tuple[float | None, float] | None, ci: float) -> None:
    """summary.csv, posterior.nc and the plots."""
    from poolwise import plots

    summary.to_csv(directory / "summary.csv", index=False)
    fit.save(directory / "posterior.nc")
    figures: dict[str, Callable[[], Any]] = {
        "shrinkage.png": lambda: plots.plot_shrinkage(fit, ci_prob=ci),
        "shrinkage_arrows.png": lambda: plots.plot_shrinkage_arrows(fit),
        "forest.png": lambda: plots.plot_forest(fit, ci_prob=ci),
        "trace.png": lambda: plots.plot_trace(fit),
    }
    if fit.model.pooling == "partial":
        figures["population_mean.png"] = lambda: plots.plot_population_mean(fit)
        y, n = new_group if new_group is not None else (None, None)
        figures["new_group.png"] = lambda: plots.plot_new_group(fit, y=y, n=n)
        if fit.eb is None and "tau" in fit.posterior:
            figures["tau.png"] = lambda: plots.plot_marginal(fit, "tau", ci_prob=ci)
    for name, draw in figures.items():
        save_figure(draw(), directory / name)
    write_graph(directory, fit.model.graph(fit.data))


def write_graph(directory: Path, graph: Any) -> None:
    """model.png and model.svg: the graphical model with its plates."""
    from poolwise.results.graph import render

    render(graph, directory / "model", fmt=("png", "svg"))


@app.command("compare")
def compare_command(
    data: Data, family: Family = None, y: YCol = None, n: NCol = None, group: GroupCol = None,
    se: SeCol = None, method: Method = "exact", prior: Prior = None,
    theta_prior: Annotated[str | None, typer.Option(
        help="Fixed θ prior for no and complete pooling, e.g. 'beta(0.5,0.5)'.")] = None,
    draws: Draws = 1000, chains: Chains = 4, warmup: Warmup = 1000, seed: Seed = 0,
    ci: Ci = 0.95, out: Out = None, force: Force = False, output_format: Format = "table",
    quiet: Quiet = False, formula: Formula = None, drop_missing: DropMissing = False,
    parametrisation: Parametrisation = "auto",
) -> int:
    """Fit no, complete and partial pooling and show them side by side."""
    from poolwise.compare import compare

    _check_output_options(output_format, ci)
    source = load_source(data, family, y, n, group, se, formula)
    if source.formula is not None:
        options = dict(draws=draws, chains=chains, warmup=warmup, seed=seed,
                       parametrisation=parametrisation)
        return compare_mixed_command(source, prior, drop_missing, options, ci, out, force,
                                     output_format, quiet)
    with output_directory(out, force) as staging, collected_warnings() as caught:
        with progress(f"fitting three pooling levels of {source.name}…",
                      quiet or output_format == "json"):
            comparison = compare(source.table, family=source.family, y=source.y, n=source.n,
                                 group=source.group, se=source.se, method=method, prior=prior,
                                 theta_prior=theta_prior, draws=draws, chains=chains,
                                 warmup=warmup, seed=seed)
        estimates = comparison.estimates(ci)
        predictive = comparison.predictive()
        if staging is not None:
            from poolwise import plots

            estimates.to_csv(staging / "estimates.csv", index=False)
            predictive.to_csv(staging / "predictive.csv", index=False)
            save_figure(plots.plot_forest(comparison.fits, ci_prob=ci), staging / "forest.png")
    for row in predictive.to_dict("records"):
        if row["n_bad_k"]:
            caught.append(
                f"PSIS-LOO is unreliable for {POOLING_PHRASES[row['pooling']]}: "
                f"{row['n_bad_k']} group(s) with Pareto k > 0.7 (largest "
                f"{row['pareto_k_max']:.2f}); each group weighs heavily on its own θ, so "
                "read these elpd values as rough"
            )
    if output_format == "json":
        stdout.print_json(json.dumps(_clean({
            "family": source.family, "method": method,
            "priors": {p: f.describe_prior() for p, f in comparison.fits.items()},
            "estimates": estimates.to_dict("records"),
            "predictive": predictive.to_dict("records"),
            "warnings": caught,
        })))
    else:
        stdout.print(f"[bold]{escape(source.name)}[/bold]: no, complete and partial pooling "
                     f"({source.family}; partial by {method})")
        for pooling, fit in comparison.fits.items():
            stdout.print(f"  {pooling}: {fit.describe_prior()}", markup=False, highlight=False)
        table = Table(show_edge=False, header_style="bold",
                      title=f"posterior means and {100 * ci:g}% intervals of θ",
                      title_justify="left")
        for column in ("group", "y", "n", "raw", *comparison.fits):
            table.add_column(column, justify="left" if column == "group" else "right")
        for row in estimates.head(MAX_TABLE_ROWS).to_dict("records"):
            cells = [str(row["group"]), _fmt(row["y"]), _fmt(row["n"]), _fmt(row["raw"], 3)]
            cells += [f"{row[f'{p}_mean']:.3g} [{row[f'{p}_lower']:.3g}, "
                      f"{row[f'{p}_upper']:.3g}]" for p in comparison.fits]
            table.add_row(*(Text(str(cell)) for cell in cells))
        stdout.print(table, markup=False)
        if len(estimates) > MAX_TABLE_ROWS:
            stdout.print(f"… {len(estimates) - MAX_TABLE_ROWS} more groups "
                         "(all in estimates.csv with --out)")
        print_predictive(predictive, "groups")
        if out is not None:
            stdout.print(f"wrote {out}/")
    print_warnings(caught)
    return 0


def print_warnings(messages: list[str]) -> None:
    """The warnings collected during a command, one per line on standard error."""
    for message in messages:
        stderr.print(f"[yellow]warning:[/yellow] {escape(message)}")


def print_predictive(predictive: pd.DataFrame, over: str) -> None:
    """The PSIS-LOO table of a comparison, best first."""
    stdout.print(f"predictive comparison (PSIS-LOO over {over}; higher elpd is better):")
    table = Table(show_edge=False, header_style="bold")
    columns = ("elpd_loo", "elpd_diff", "se", "p_loo", "pareto_k_max")
    for column in ("pooling", *columns):
        table.add_column(column, justify="left" if column == "pooling" else "right")
    for row in predictive.to_dict("records"):
        table.add_row(*(Text(str(cell)) for cell in
                        (row["pooling"], *(_fmt(row[c]) for c in columns))))
    stdout.print(table)


def compare_mixed_command(source: Source, prior: str | None, drop_missing: bool,
                          options: dict[str, Any], ci: float, out: Path | None,
                          force: bool, output_format: str, quiet: bool) -> int:
    """``compare --formula``: the three pooling levels of a mixed model (NUTS)."""
    from poolwise.kinds.mixed.model import compare_mixed

    assert source.formula is not None
    with output_directory(out, force) as staging, collected_warnings() as caught:
        with progress(f"fitting three pooling levels of {source.name}…",
                      quiet or output_format == "json"):
            comparison = compare_mixed(source.formula, source.table, family=source.family,
                                       priors=prior,
                                       missing="drop" if drop_missing else "refuse",
                                       **options)
        estimates = comparison.estimates(ci)
        predictive = comparison.predictive()
        if staging is not None:
            estimates.to_csv(staging / "estimates.csv", index=False)
            predictive.to_csv(staging / "predictive.csv", index=False)
            from poolwise import plots

            try:
                figure = plots.plot_group_lines(comparison.fits, ci_prob=ci)
                save_figure(figure, staging / "group_lines.png")
            except SpecificationError as err:  # several predictors: no line per group
                caught.append(f"no group_lines.png: {err}")
    for row in predictive.to_dict("records"):
        if row["n_bad_k"]:
            caught.append(
                f"PSIS-LOO is unreliable for {POOLING_PHRASES[row['pooling']]}: "
                f"{row['n_bad_k']} observation(s) with Pareto k > 0.7 (largest "
                f"{row['pareto_k_max']:.2f}); read these elpd values as rough")
    if output_format == "json":
        stdout.print_json(json.dumps(_clean({
            "family": source.family, "formula": source.formula, "method": "nuts",
            "priors": {p: f.describe_prior() for p, f in comparison.fits.items()},
            "estimates": estimates.to_dict("records"),
            "predictive": predictive.to_dict("records"), "warnings": caught,
        })))
    else:
        stdout.print(f"[bold]{escape(source.name)}[/bold]: {escape(repr(source.formula))} with "
                     "no, complete and "
                     f"partial pooling ({source.family}, nuts)")
        table = Table(show_edge=False, header_style="bold", title_justify="left",
                      title=f"population-level parameters: means and {100 * ci:g}% intervals")
        table.add_column("param")
        for pooling in comparison.fits:
            table.add_column(pooling, justify="right")
        for row in estimates.head(MAX_TABLE_ROWS).to_dict("records"):
            table.add_row(Text(row["param"]), *(
                "—" if not math.isfinite(row[f"{p}_mean"]) else
                f"{row[f'{p}_mean']:.4g} [{row[f'{p}_lower']:.4g}, {row[f'{p}_upper']:.4g}]"
                for p in comparison.fits))
        stdout.print(table, markup=False)
        if len(estimates) > MAX_TABLE_ROWS:
            stdout.print(f"… {len(estimates) - MAX_TABLE_ROWS} more rows (no pooling's "
                         "per-group coefficients; all in estimates.csv with --out)")
        print_predictive(predictive, "observations")
        if out is not None:
            stdout.print(f"wrote {out}/")
    print_warnings(caught)
    return 0


@app.command("graph")
def graph_command(
    data: Data, family: Family = None, y: YCol = None, n: NCol = None, group: GroupCol = None,
    se: SeCol = None,
    pooling: PoolingOption = "partial",
    prior: Prior = None,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Image file: .png, .svg or .pdf.")] = Path("model.png"),
    force: Force = False, formula: Formula = None, model_file: ModelFile = None,
) -> int:
    """Draw the model's graphical model (plates sized by the data) to an image file."""
    from poolwise.results.graph import render

    graph = _model_and_graph(data, family, y, n, group, se, pooling, prior, formula,
                             model_file)[1]
    if output.exists() and not force:
        raise SpecificationError(f"{output} exists; use --force to overwrite it")
    render(graph, output)
    stdout.print(f"wrote {output}")
    return 0


@app.command("describe")
def describe_command(
    data: Data, family: Family = None, y: YCol = None, n: NCol = None, group: GroupCol = None,
    se: SeCol = None,
    pooling: PoolingOption = "partial",
    prior: Prior = None, formula: Formula = None, model_file: ModelFile = None,
) -> int:
    """Print the model as equations (LaTeX lines): likelihood, population, hyperpriors
    (for a custom model, the priors its file states)."""
    from poolwise.results.graph import equations, nested_equations, nig_equations
    from poolwise.kinds.mixed.model import MixedModel
    from poolwise.model import Model

    model, _, counts = _model_and_graph(data, family, y, n, group, se, pooling, prior,
                                        formula, model_file)
    from poolwise.kinds.nested import NestedModel
    from poolwise.kinds.nig import NIGModel, default_prior

    if isinstance(model, MixedModel):
        lines = model.equations()
    elif isinstance(model, Model):
        lines = equations(model, counts)
    elif isinstance(model, NestedModel):
        lines = nested_equations(model.family, model.describe_prior(counts), len(counts.labs))
    elif isinstance(model, NIGModel):
        lines = nig_equations(model.prior or default_prior(counts), counts.n_groups)
    else:  # a custom model: its priors as the model file states them
        lines = [part.strip() for part in model.describe_prior().split(";")]
    for line in lines:
        stdout.print(line, markup=False, highlight=False, soft_wrap=True)
    return 0


def _model_and_graph(data: str, family: str | None, y: str | None, n: str | None,
                     group: str | None, se: str | None, pooling: str, prior: str | None,
                     formula: str | None = None, model_file: str | None = None
                     ) -> tuple[Any, Any, Any]:
    """The model the options describe, its graph and its per-group data (None for mixed
    and custom models, which hold their data)."""
    from poolwise.model import Model

    if model_file is not None:
        from poolwise.kinds.custom import CustomModel, load_model
        from poolwise.data.tables import read_table

        if not Path(data).exists():
            raise SpecificationError(f"file not found: {data} (a custom model needs its data)")
        custom = CustomModel(load_model(model_file), read_table(Path(data)), name=model_file)
        return custom, custom.graph(), None
    source = load_source(data, family, y, n, group, se, formula)
    if source.group is not None and "/" in source.group:
        from poolwise.kinds.nested import NestedModel, nested_data, parse_group_path

        outer, inner = parse_group_path(source.group)
        nested = NestedModel(source.family, prior=prior)
        labs = nested_data(source.table, source.y, n=source.n, se=source.se, outer=outer,
                           inner=inner, family=source.family)
        return nested, nested.graph(labs), labs
    if source.formula is not None:
        from poolwise.kinds.mixed.model import MixedModel

        mixed = MixedModel(source.formula, source.table, family=source.family,
                           pooling=pooling, priors=prior)
        return mixed, mixed.graph(), None
    if source.family in NIG_FAMILIES:
        from poolwise.results.graph import nig_graph
        from poolwise.kinds.nig import NIGModel, default_prior, nig_data

        groups = nig_data(source.table, y=source.y, group=source.group)
        nig = NIGModel(pooling=pooling, prior=prior)
        if pooling == "partial":
            raise SpecificationError("the nig graph draws a fixed prior: use --pooling none "
                                     "or complete")
        return nig, nig_graph(nig.prior or default_prior(groups), groups.n_groups), groups
    model = Model(family=source.family, pooling=pooling, prior=prior)
    counts = model.prepare(source.table, y=source.y, n=source.n, group=source.group,
                           se=source.se)
    return model, model.graph(counts), counts


@app.command("datasets")
def datasets_command() -> int:
    """List the bundled datasets."""
    table = Table(show_edge=False, header_style="bold")
    for column in ("name", "family", "description", "source"):
        table.add_column(column)
    for info in datasets.DATASETS.values():
        table.add_row(info.name, info.family, info.description, info.source)
    stdout.print(table)
    return 0


# ----------------------------------------------------------------------------- entry points
def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv``; return the exit code.

    Usage errors are reported by Typer (exit code 2); poolwise's own errors for bad data
    or options are caught here and printed as one line (exit code 2).
    """
    try:
        app(args=argv, prog_name="poolwise", standalone_mode=True)
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except PoolwiseError as err:
        stderr.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        return 2
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
