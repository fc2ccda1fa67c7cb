"""The ``poolwise`` command line: a thin layer over the public API.

One path for every model kind: the options are read into the model the data call for
(:func:`poolwise.api.choose_kind`, as :func:`poolwise.fit` does), the model is fitted, and
the fit goes to one writer (:mod:`poolwise.outputs.writer`). An option that does not apply
to the kind ends with an error naming the kinds it is for; none is silently ignored. Every
user mistake ends with one line on standard error and exit code 2; nothing is written
unless the whole job succeeded.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from poolwise.exceptions import PoolwiseError, SpecificationError
from poolwise.vocabulary import kinds_text

if TYPE_CHECKING:
    import pandas as pd

    from poolwise.kinds.base import BaseModel
    from poolwise.results.fit import Fit
    from poolwise.results.prediction import Prediction

#: where NUTS's compiled programs are kept, for the help of the commands that sample
COMPILE_CACHE_HELP = (
    "NUTS keeps its compiled programs in $XDG_CACHE_HOME/poolwise/jax (~/.cache/poolwise/jax), "
    "so a later fit of the same shapes compiles nothing: POOLWISE_COMPILE_CACHE=0 turns this "
    "off, POOLWISE_COMPILE_CACHE=DIR keeps them in DIR.")

app = typer.Typer(
    name="poolwise",
    help="Bayesian hierarchical models for grouped data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console()
stderr = Console(stderr=True)
#: seconds between progress lines when standard error is not a terminal
LOG_PROGRESS_SECONDS = 10.0
#: the width of standard output when it is neither a terminal nor given by COLUMNS
PIPED_WIDTH = 120

FORMATS = ("table", "json")
#: the arguments of the running command, for the report's provenance
COMMAND_LINE: ContextVar[tuple[str, ...]] = ContextVar("COMMAND_LINE", default=())
MAX_TABLE_ROWS = 40

# ----------------------------------------------------------------------------- options
Data = Annotated[str, typer.Argument(
    help="CSV/TSV/Parquet file, a glob ('data/*.parquet') or directory of them, or a bundled "
         "dataset name.")]
Family = Annotated[str | None, typer.Option(
    help="beta-binomial, gamma-poisson, normal (alias gaussian), nig; with --formula normal, "
         "binomial, bernoulli, poisson or negbinomial.")]
YCol = Annotated[str | None, typer.Option(
    "--y", help="Column of counts, estimates or observations.")]
NCol = Annotated[str | None, typer.Option("--n", help="Column of trials or exposure.")]
SeCol = Annotated[str | None, typer.Option(
    "--se", help="Column of standard errors (normal family; omit for raw observations).")]
GroupCol = Annotated[str | None, typer.Option(
    "--group", help="Column of group labels; outer/inner for nested groups; with --model, "
                    "the column whose levels (given to the model as 0, 1, ...) label its plate.")]
Method = Annotated[str | None, typer.Option(
    "--method", help="exact, importance, eb-moments, eb-ml, eb-js, gibbs, nuts, map or "
                     "laplace (the kind's default when left out).")]
Prior = Annotated[str | None, typer.Option(
    help="The prior: 'bda', 'halfnormal(10)', 'beta(0.5, 0.5)', 'mu=normal(0, 5), "
         "tau=halfcauchy(5)', 'b[Days] = normal(0, 5)', ...")]
PoolingOption = Annotated[str | None, typer.Option(
    help="none, complete or partial (default partial).")]
Draws = Annotated[int, typer.Option(help="Draws per chain.", min=1)]
Chains = Annotated[int, typer.Option(help="Number of chains.", min=1)]
Warmup = Annotated[int | None, typer.Option(
    help="Warm-up iterations per chain, for gibbs and nuts (default 1000).")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed gives the same draws.")]
TargetAccept = Annotated[float | None, typer.Option(
    "--target-accept", help="nuts: the step size's target acceptance rate.")]
Parametrisation = Annotated[str | None, typer.Option(
    help="nuts: marginal, non-centred or centred (the kind's default when left out).")]
Agq = Annotated[int | None, typer.Option(
    "--agq", help="eb-ml or importance of a binomial, bernoulli or poisson mixed model: "
                  "quadrature points per group effect, 1 (Laplace) to 25 (default 9), as "
                  "lme4's nAGQ.")]
MaximumLikelihood = Annotated[bool, typer.Option(
    "--ml", help="eb-ml of a normal mixed model: maximum likelihood instead of REML, as "
                 "lme4's lmer(REML = FALSE); prints AIC, BIC, logLik, deviance, df.resid.")]
EbIntervals = Annotated[str | None, typer.Option(
    "--eb-intervals", help="eb-ml, eb-moments, eb-js: the group intervals, kass-steffey "
                           "(default: with the estimates' uncertainty) or plug-in (given "
                           "the estimates, as lme4's conditional variances).")]
Ci = Annotated[float, typer.Option("--ci", help="Interval probability.")]
Out = Annotated[Path | None, typer.Option("--out", help="Directory for summary, draws, plots.")]
Force = Annotated[bool, typer.Option("--force", help="Write into an --out that has files.")]
Overwrite = Annotated[bool, typer.Option("--force", help="Overwrite an existing image file.")]
Format = Annotated[str, typer.Option("--format", help="table or json.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress output.")]
SaveDraws = Annotated[bool, typer.Option(
    "--save-draws", help="Write every group's draws into posterior.nc of --out, in chunks, "
    "also where a fit of many groups keeps only their summaries (fits that keep their "
    "draws write them anyway).")]
Formula = Annotated[str | None, typer.Option(
    "--formula", help="Mixed model, lme4 style: 'Reaction ~ Days + (Days | Subject)'.")]
ModelFile = Annotated[str | None, typer.Option(
    "--model", help="A NumPyro model in a file, FILE.py:FUNCTION (DATA's columns are its "
    "keyword arguments). Only the named file is run.")]
DropMissing = Annotated[bool, typer.Option(
    "--drop-missing", help="Mixed models: drop rows with missing values (else refused).")]
PredictGroup = Annotated[str | None, typer.Option(
    "--predict-group", help="An existing group: predict new data y* from it (its own size).")]
NewGroupFlag = Annotated[bool, typer.Option(
    "--new-group", help="Predict a group not in the data, drawn from the population.")]
NewY = Annotated[float | None, typer.Option(
    "--new-group-y", help="The new group's own count or estimate (needs --new-group-n).")]
NewN = Annotated[float | None, typer.Option(
    "--new-group-n", help="Size of the new group: trials, exposure or observations (for "
                          "the normal family its standard error).")]
NewIn = Annotated[str | None, typer.Option(
    "--new-group-in", help="Predict a new group inside this parent (a lab, a school).")]
NewData = Annotated[Path | None, typer.Option(
    "--new-data", help="Mixed models: a file of rows to predict for.")]
Rank = Annotated[str | None, typer.Option(
    "--rank", help="Rank the groups: 'higher' (higher is better) or 'lower'; adds each "
                   "group's rank, P(best) and P(worst) to the table and ranks.png.")]
RankParam = Annotated[str | None, typer.Option(
    "--rank-param", help="The per-group parameter to rank, as the summary names it (default "
                         "theta, or a mixed model's first group effect), e.g. "
                         "'r_Subject[Days]'.")]
RankDraws = Annotated[int | None, typer.Option(
    "--rank-draws", help="Rank at this many posterior draws (default: all of them up to "
                         "2·10^7 draws × groups, fewer evenly spaced past it).")]
Hypothesis = Annotated[list[str] | None, typer.Option(
    "--hypothesis", help="An expression such as 'theta[A] - theta[B] > 0' or 'b[Days] > 5': "
                         "its posterior probability and the interval of its left side. "
                         "Repeatable.")]
Pairwise = Annotated[str | None, typer.Option(
    "--pairwise", help="Groups to compare two by two, comma-separated: P(θ_i > θ_j).")]
Sep = Annotated[str | None, typer.Option(
    "--sep", help="The file's column separator: ',', ';', tab or '|' (default: the one its "
                  "header shows).")]
Decimal = Annotated[str | None, typer.Option(
    "--decimal", help="The file's decimal mark, '.' or ',' (default '.'; ',' is detected in "
                      "a ';'-separated file).")]
Encoding = Annotated[str | None, typer.Option(
    "--encoding", help="The file's text encoding (default utf-8), e.g. latin-1 or cp1252.")]
EngineOption = Annotated[str, typer.Option(
    "--engine", help="What reads DATA: auto, pandas, duckdb (out of core) or dask (default "
                     "auto: pandas for one file up to 200 MB, DuckDB for larger files, "
                     "globs and directories).")]
Scheduler = Annotated[str | None, typer.Option(
    "--scheduler", help="--engine dask: the address of a distributed scheduler, e.g. "
                        "tcp://host:8786 (default: threads on this machine).")]
PriorPredictive = Annotated[bool, typer.Option(
    "--prior-predictive", help="Draw from the prior predictive instead of fitting.")]

#: how each of :data:`poolwise.api.OPTION_KINDS` is written on the command line
SPELLING = {"y": "--y", "n": "--n", "se": "--se", "group": "--group", "family": "--family",
            "pooling": "--pooling", "prior": "--prior", "method": "--method",
            "target_accept": "--target-accept", "parametrisation": "--parametrisation",
            "formula": "--formula", "missing": "--drop-missing", "model": "--model",
            "agq": "--agq", "reml": "--ml", "eb_intervals": "--eb-intervals"}
#: the prediction options and the kinds that answer them
PREDICTION_KINDS: dict[str, tuple[str, ...]] = {
    "--predict-group": ("rates", "normal", "nig", "mixed", "nested"),
    "--new-group": ("rates", "normal", "nig", "mixed", "nested"),
    "--new-group-n": ("rates", "normal", "nig", "nested"),
    "--new-group-y": ("rates", "normal"),
    "--new-group-in": ("mixed", "nested"),
    "--new-data": ("mixed",),
}


# ----------------------------------------------------------------------------- the source
@dataclass(frozen=True)
class Job:
    """What the command line asks for: the table, the model and the data's columns."""

    name: str
    kind: str
    table: Any
    model: BaseModel
    columns: dict[str, str] = field(default_factory=dict)
    #: a bundled dataset's held-out group (y, n), e.g. the rats' 71st experiment
    held_out: tuple[float, float] | None = None
    #: what reading the file detected (its separator, its decimal mark)
    notes: tuple[str, ...] = ()
    #: DATA as given (a file or a bundled dataset's name) and how many rows it had
    source: str = ""
    rows: int = 0

    def provenance(self, seed: int, notes: Sequence[str], warnings: Sequence[str]) -> Any:
        """This run's :class:`~poolwise.outputs.report.Provenance`."""
        from poolwise.outputs.report import Provenance

        return Provenance.now(seed=seed, command=["poolwise", *COMMAND_LINE.get()],
                              input=self.source,
                              data={"rows": self.rows, "columns": self.columns},
                              notes=(*self.notes, *notes), warnings=warnings)


def is_file_source(data: str) -> bool:
    """Whether DATA names files (a path, a glob, a directory) rather than a bundled
    dataset; one that names neither ends with one line."""
    from poolwise.data import datasets
    from poolwise.data.engines import is_pattern

    path = Path(data)
    if path.is_file() or is_pattern(data) or (path.exists() and data not in datasets.DATASETS):
        return True
    if any(sep in data for sep in "/\\") or path.suffix:
        raise SpecificationError(f"file not found: {data}")
    return False


def build_job(data: str, *, family: str | None = None, y: str | None = None,
              n: str | None = None, se: str | None = None, group: str | None = None,
              formula: str | None = None, model_file: str | None = None,
              drop_missing: bool = False, text: dict[str, str | None] | None = None,
              engine: str = "auto", scheduler: str | None = None, **settings: Any) -> Job:
    """Read DATA and build the model the options describe; refuse options the kind does
    not take (naming the kinds that do), before anything is fitted. Files go through
    :func:`poolwise.api.load_source`: rates and normal models of large files, globs and
    directories are reduced there by DuckDB or Dask (--engine, --scheduler)."""
    from poolwise.api import build_model, check_options, choose_kind, load_source
    from poolwise.data import datasets
    from poolwise.kinds.base import METHOD_SETTINGS
    from poolwise.vocabulary import canonical_family

    text = text or {}
    files = is_file_source(data)
    if not files:
        asked = [f"--{k}" for k, v in text.items() if v is not None]
        asked += [option for option, value in (("--engine", engine if engine != "auto"
                                                 else None), ("--scheduler", scheduler))
                  if value is not None]
        if asked:
            raise SpecificationError(f"{' and '.join(asked)} "
                                     f"{'is' if len(asked) == 1 else 'are'} for data files; "
                                     f"{data!r} is a bundled dataset")
    table: Any = None
    info = None if files else datasets.info(data)
    if info is not None:
        table = datasets.load(data)
    name = Path(data).name if info is None else data
    held_out = None
    columns = {"y": y, "n": n, "se": se, "group": group}
    if info is not None and model_file is None:
        if info.formula is not None and formula is None:
            formula, family = info.formula, family or info.family
        elif formula is None:
            # --se on a dataset of counts: its estimates are modelled as normal
            estimates = se is not None and info.se is None
            same_family = not estimates and (family is None
                                             or canonical_family(family) == info.family)
            family = family or (None if estimates else info.family)
            columns = {"y": y or info.y, "group": group or info.group,
                       "n": n if n is not None or not same_family else info.n,
                       "se": se if se is not None or not same_family else info.se}
            if info.fit_flag is not None:
                held = table[table[info.fit_flag] == 0]
                table = table[table[info.fit_flag] == 1]
                if len(held) == 1 and same_family:
                    held_out = (float(held[info.y].iloc[0]), float(held[str(info.n)].iloc[0]))
    if formula is not None and any(v is not None for v in (y, n, se, group)):
        raise SpecificationError("a mixed model takes its columns, groups included, from "
                                 "--formula; leave out --y, --n, --se and --group")
    kind = choose_kind(formula=formula, model=model_file, family=family,
                       group=columns["group"], se=columns["se"])
    given = {"family": family, "formula": formula, "model": model_file,
             "missing": "drop" if drop_missing else None, **settings}
    check_options(kind, {**columns, **given}, SPELLING)
    if kind == "custom" and info is not None:
        raise SpecificationError(f"a custom model needs a data file, not the bundled "
                                 f"dataset {data!r}")
    if kind in ("rates", "normal", "nig", "nested") and columns["y"] is None:
        raise SpecificationError("name the column of counts, estimates or observations "
                                 "with --y (and --n, --se, --group)")
    model = build_model(kind, **given)
    kind_methods = {m for methods in model.METHODS.values() for m in methods}
    for setting, methods in METHOD_SETTINGS.items():
        if given.get(setting) is not None and model.method not in methods:
            users = [m for m in methods if m in kind_methods] or list(methods)
            raise SpecificationError(
                f"{SPELLING.get(setting, '--' + setting)} is for method "
                f"{' and '.join(users)}; method {model.method!r} does not use it")
    used = {k: v for k, v in columns.items() if v is not None}
    if scheduler is not None and engine != "dask":
        raise SpecificationError(f"--scheduler is for --engine dask, not {engine}")
    notes: tuple[str, ...] = ()
    if files:
        loaded = load_source(model, data, used, engine=engine, scheduler=scheduler, text=text)
        table, rows, notes = loaded
    else:
        rows = len(table)
    return Job(name, kind, table, model, used, held_out, notes, source=data, rows=rows)


def prediction_requests(job: Job, *, predict_group: str | None, new_group: bool,
                        new_y: float | None, new_n: float | None, new_in: str | None,
                        new_data: Path | None,
                        text: dict[str, str | None] | None = None) -> list[Any]:
    """The predictions the options ask for (refused, naming the kinds, where the kind
    answers no such request)."""
    from poolwise.results.prediction import (
        ExistingGroup,
        NewGroup,
        NewGroupIn,
        NewRows,
    )

    given = {"--predict-group": predict_group, "--new-group": new_group or None,
             "--new-group-n": new_n, "--new-group-y": new_y, "--new-group-in": new_in,
             "--new-data": new_data}
    for option, value in given.items():
        if value is not None and job.kind not in PREDICTION_KINDS[option]:
            raise SpecificationError(
                f"{option} is for {kinds_text(PREDICTION_KINDS[option])} models, not "
                f"{job.kind} ones"
                + ("; a mixed model predicts rows: --new-data FILE" if job.kind == "mixed"
                   and option == "--new-group-n" else ""))
    if new_y is not None and new_n is None:
        raise SpecificationError("--new-group-y needs --new-group-n")
    requests: list[Any] = []
    if predict_group is not None:
        requests.append(ExistingGroup(predict_group))
    if new_in is not None:
        requests.append(NewGroupIn(new_in, size=new_n))
    elif new_group or new_n is not None:
        requests.append(NewGroup(size=new_n, y=new_y))
    elif job.held_out is not None:
        requests.append(NewGroup(size=job.held_out[1], y=job.held_out[0]))
    elif job.kind == "nested":  # a nested model always says what a new lab looks like
        requests.append(NewGroup())
    if new_data is not None:
        from poolwise.data.tables import read_table

        requests.append(NewRows(read_table(new_data, **(text or {}))))
    return requests


# ----------------------------------------------------------------------------- output
def check_output_options(output_format: str, ci: float) -> None:
    if output_format not in FORMATS:
        raise SpecificationError(
            f"unknown format {output_format!r}; valid: {', '.join(FORMATS)}")
    if not 0 < ci < 1:
        raise SpecificationError(f"--ci must be between 0 and 1, got {ci}")


def check_output_directory(out: Path | None, force: bool) -> None:
    """Refuse, before any work, an --out that is a file, already has files or cannot be
    written."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise SpecificationError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SpecificationError(
            f"output directory {out} already has files; use --force to overwrite them "
            "or choose another --out")
    check_writable(out, "--out")  # where the files are staged
    if out.is_dir():
        check_writable(out / "summary.csv", "--out")  # where they go


def check_writable(path: Path, option: str) -> None:
    """Refuse, before any work, a ``path`` whose nearest existing folder is a file or
    cannot be written (tried by making and removing a temporary folder there)."""
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise SpecificationError(f"{option} {path}: {folder} is a file, not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".poolwise-", dir=folder))
    except OSError as err:
        raise SpecificationError(f"{option} {path}: cannot write in {folder} "
                                 f"({err.strerror}); choose another {option}") from None


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


@contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """Turn warnings into lines the CLI prints (and reports in JSON and HTML), each once,
    in the list as soon as they are raised."""
    messages: list[str] = []

    def collect(message: Warning | str, *_: Any, **__: Any) -> None:
        if str(message) not in messages:
            messages.append(str(message))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = collect
        yield messages


@contextmanager
def progress(message: str, quiet: bool) -> Iterator[Callable[[str], None]]:
    """A spinner with ``message`` on standard error while the block runs (none if
    ``quiet``); the block may change the message with the function it is given. When
    standard error is a file or a pipe (a batch job's log), where a spinner shows nothing,
    a changed message is written as a line, at most one every
    :data:`LOG_PROGRESS_SECONDS` (so that a quick step writes none)."""
    if quiet:
        yield lambda _: None
    elif not stderr.is_terminal:
        import time

        last = [time.monotonic()]

        def update(text: str) -> None:
            now = time.monotonic()
            if now - last[0] >= LOG_PROGRESS_SECONDS:
                last[0] = now
                print(text, file=sys.stderr, flush=True)

        yield update
    else:
        with stderr.status(message) as status:
            yield status.update


def output_width() -> int:
    """COLUMNS when set, else the terminal's width; :data:`PIPED_WIDTH` when standard output
    is a file or a pipe (there is no terminal to fit, so tables stay whole)."""
    if os.environ.get("COLUMNS", "").isdigit() or sys.stdout.isatty():
        return shutil.get_terminal_size((PIPED_WIDTH, 24)).columns
    return PIPED_WIDTH


def new_table(columns: Sequence[str], left: Sequence[str] = ("param", "group", "row"),
              **options: Any) -> Table:
    """A table whose cells fold onto a second line, never end in '…', when it is too wide."""
    table = Table(show_edge=False, header_style="bold", pad_edge=False, **options)
    for column in columns:
        table.add_column(column, justify="left" if column in left else "right",
                         overflow="fold")
    return table


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[str]], *, keys: int = 1,
               title: str | None = None) -> None:
    """A table where the terminal is wide enough for it; else one row per line,
    ``key: column value  column value …`` (on a second line where even that is too wide),
    so that no name or number is cut."""
    table = new_table(columns, left=columns[:keys])
    for cells in rows:
        table.add_row(*(Text(cell) for cell in cells))
    if title is not None:
        plain(title)
    if fits(table):
        stdout.print(table)
        return
    for cells in rows:
        name = " ".join(cells[:keys])
        values = "  ".join(f"{c} {v}" for c, v in zip(columns[keys:], cells[keys:],
                                                      strict=True))
        plain(f"{name}: {values}" if len(name) + 2 + len(values) <= stdout.width
              else f"{name}\n  {values}")


def fits(table: Table) -> bool:
    """Whether ``table`` prints at its natural width (no cell folded) on standard output."""
    natural = Measurement.get(stdout, stdout.options.update(width=10**6), table).maximum
    return natural <= stdout.width


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _fmt_count(value: Any) -> str:
    return _fmt(value) if not isinstance(value, float) or not math.isfinite(value) else (
        f"{value:.0f}")


def plain(text: str) -> None:
    """Print user text as it is (rich would eat '[floor]' as markup)."""
    stdout.print(text, markup=False, highlight=False, soft_wrap=True)


def print_header(title: str, prior_lines: Sequence[str], notes: Sequence[str],
                 pooling: str | None = None) -> None:
    """What was fitted, notes on the data and the prior in use (and the pooling factor it
    implies), before the table."""
    stdout.print(title)
    for note in notes:
        plain(f"note: {note}")
    if len(prior_lines) == 1:
        plain(f"prior: {prior_lines[0]}")
    else:
        plain("priors:")
        for line in prior_lines:
            plain(f"  {line}")
    if pooling is not None:
        plain(f"  {pooling}")


def print_table(summary: pd.DataFrame, ci_prob: float, what: str = "summary.csv",
                notes: Mapping[str, str] | None = None) -> None:
    """The summary table (its first rows), with diagnostics when it has them; ``notes``
    (:meth:`~poolwise.results.fit.Fit.interval_notes`) say what the intervals are where
    they are not equal-tailed posterior ones: their kinds in the title, in full below.

    Narrower than the table, the diagnostics shrink to one line naming the worst rows;
    narrower still, one parameter per line (:func:`print_records`). Names and numbers are
    never cut."""
    title = f"{100 * ci_prob:g}% equal-tailed intervals"
    kinds = {names: text.partition(": ") for names, text in (notes or {}).items()}
    if kinds:
        title = f"{100 * ci_prob:g}% intervals: " + "; ".join(
            f"{kind} for {names}" for names, (kind, _, _) in kinds.items() if kind != "none")
    by = "row" if "row" in summary.columns else "group"  # predicted rows are numbered
    columns = ["param", by, "mean", "sd", "lower", "upper"]
    with_diag = "ess_bulk" in summary and summary["ess_bulk"].notna().any()
    if with_diag:
        columns += ["ess_bulk", "ess_tail", "r_hat"]
    shown = summary.head(MAX_TABLE_ROWS)
    rows = []
    for row in shown.to_dict("records"):
        cells = [str(row["param"]), _fmt(row.get(by)), _fmt(row["mean"]),
                 _fmt(row.get("sd")), _fmt(row.get("lower")), _fmt(row.get("upper"))]
        if with_diag:
            cells += [_fmt_count(row["ess_bulk"]), _fmt_count(row["ess_tail"]),
                      "—" if not math.isfinite(row["r_hat"]) else f"{row['r_hat']:.3f}"]
        rows.append(cells)
    for width in (len(columns), 6) if with_diag else (6,):
        table = new_table(columns[:width], title=title, title_justify="left")
        for cells in rows:
            table.add_row(*(Text(cell) for cell in cells[:width]))
        if fits(table):
            stdout.print(table)
            if width < len(columns):
                plain(worst_diagnostics(summary))
            break
    else:
        print_records(rows, title, with_diag)
    if len(summary) > len(shown):
        stdout.print(f"… {len(summary) - len(shown)} more rows (all in {what} with --out)")
    for names, (kind, _, how) in kinds.items():
        plain(f"intervals of {names}: {kind} ({how})")


def worst_diagnostics(summary: pd.DataFrame) -> str:
    """One line for the diagnostics a narrow table leaves out: the largest r_hat and the
    smallest effective sample sizes over all rows, each with the row it belongs to."""
    parts = []
    for column, worst in (("r_hat", "largest"), ("ess_bulk", "smallest"),
                          ("ess_tail", "smallest")):
        values = summary[column].astype(float)
        if values.notna().any():
            i = values.idxmax() if worst == "largest" else values.idxmin()
            row = summary.loc[i]
            value = f"{values[i]:.3f}" if column == "r_hat" else f"{values[i]:.0f}"
            parts.append(f"{worst} {column} {value} for "
                         f"{row_name(str(row['param']), _fmt(row.get('group')))}")
    return f"diagnostics over all {len(summary)} rows: {', '.join(parts)}"


def row_name(param: str, group: str) -> str:
    """A summary row's name on one line: ``theta (A)``, or ``mu`` for a row of no group."""
    return param if group == "—" else f"{param} ({group})"


def print_records(rows: Sequence[Sequence[str]], title: str, with_diag: bool) -> None:
    """The summary's rows one parameter per line, for a terminal too narrow for the table:
    ``name (group): mean 1.98  sd 14  [-26.2, 28.5]  ess 3861/3883  r_hat 1.002``; where
    even that is too wide, the numbers go on an indented second line."""
    plain(f"{title}, one parameter per line: mean, sd, [lower, upper]"
          + (", ess bulk/tail, r_hat" if with_diag else ""))
    records = []
    for param, group, mean, sd, lower, upper, *diag in rows:
        name = row_name(param, group)
        values = f"mean {mean}  sd {sd}  [{lower}, {upper}]"
        if with_diag:
            values += f"  ess {diag[0]}/{diag[1]}  r_hat {diag[2]}"
        records.append((name, values))
    one_line = all(len(name) + 2 + len(values) <= stdout.width for name, values in records)
    for name, values in records:
        plain(f"{name}: {values}" if one_line else f"{name}\n  {values}")


def print_sampler(fit: Fit) -> None:
    info = fit.info
    if "acceptance_alpha" in info:
        rates = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(
            info["acceptance_alpha"], info["acceptance_beta"], strict=True))
        plain(f"Metropolis acceptance after warm-up, α/β per chain: {rates}")
    if "pareto_k" in info and info.get("pareto_k") is not None:
        plain(f"importance sampling: Pareto k̂ {info['pareto_k']:.2f} (≤ "
              f"{info['pareto_k_limit']:.2f} needed), ESS {info['importance_ess']:,.0f} of "
              f"{info['proposals']:,} proposals"
              + (f", {info['ess']:,.0f} for the {fit.config.chains * fit.config.draws:,} "
                 "resampled draws" if "ess" in info else ""))
    if "fallback" in info:
        plain(f"fallback: {info['fallback']}")
    if fit.method == "nuts":
        sampled = f"{info['sampled']}; " if "sampled" in info else ""
        plain(f"NUTS: {sampled}divergent transitions: {info.get('divergences', 0)}")
    elif fit.method == "importance":
        plain(f"importance: {info['sampled']}")


def print_population(fit: Any, ci: float) -> None:
    """The population mean of a rate or normal fit with partial pooling."""
    if fit.kind not in ("rates", "normal") or fit.model.pooling != "partial":
        return
    pop = fit.population_mean(ci)
    if fit.eb is not None and not math.isfinite(pop["sd"]):
        line = f"population mean μ: {pop['mean']:.4g} (empirical-Bayes point estimate)"
    elif fit.eb is not None:
        line = (f"population mean μ: estimate {pop['mean']:.4g} (standard error "
                f"{pop['sd']:.4g}, {100 * ci:g}% interval [{pop['lower']:.4g}, "
                f"{pop['upper']:.4g}] from the normal approximation)")
    elif not math.isfinite(pop["mean"]):  # a heavy tail: the median and interval only
        line = (f"population mean μ: no finite posterior mean; median "
                f"{fit.medians(['mu'])['mu']:.4g}, MAP {pop['map']:.4g}, {100 * ci:g}% "
                f"interval [{pop['lower']:.4g}, {pop['upper']:.4g}]")
    else:
        sd = f"sd {pop['sd']:.4g}, " if math.isfinite(pop["sd"]) else ""
        line = (f"population mean μ: {pop['mean']:.4g} ({sd}MAP "
                f"{pop['map']:.4g}, {100 * ci:g}% interval [{pop['lower']:.4g}, "
                f"{pop['upper']:.4g}])")
    plain(line)
    if fit.eb is not None and fit.eb.method == "eb-js":
        from poolwise.inference.eb import james_stein_factor

        factor = james_stein_factor(fit.eb, float(fit.data.n[0]))
        plain(f"James–Stein factor c = 1 − (k − 3)σ²/Σ(y − ȳ)² = {factor:.4g}: each estimate "
              f"keeps {100 * factor:.3g}% of its distance from the mean ȳ = {fit.eb.alpha:.4g}")


def print_prediction(prediction: Prediction, ci: float) -> None:
    """One prediction: what was drawn, then θ and y* (or its rows)."""
    try:
        brief = prediction.brief(ci)
    except SpecificationError:
        plain(f"{prediction.description}:")
        print_table(with_inputs(prediction.summary(ci)), ci, "predictions.csv")
        return
    line = (f"{prediction.description}: θ mean {brief['mean']:.4g}, sd {brief['sd']:.4g}, "
            f"{100 * ci:g}% interval [{brief['lower']:.4g}, {brief['upper']:.4g}]")
    if "y_mean" in brief:
        line += (f"; predicted y mean {brief['y_mean']:.4g}, {100 * ci:g}% interval "
                 f"[{brief['y_lower']:.4g}, {brief['y_upper']:.4g}]")
    plain(line)


def with_inputs(table: pd.DataFrame) -> pd.DataFrame:
    """Predicted rows labelled by their input columns (the columns between ``row`` and
    ``mean``): row ``0`` becomes ``0: Days=0, Subject=308``."""
    import pandas as pd

    if "row" not in table.columns:
        return table
    columns = list(table.columns)
    inputs = columns[columns.index("row") + 1:columns.index("mean")]
    if not inputs:
        return table
    labels = [f"{row['row']}: " + ", ".join(f"{c}={'—' if pd.isna(row[c]) else row[c]}"
                                            for c in inputs)
              for row in table.to_dict("records")]
    return table.drop(columns=inputs).assign(row=labels)


def print_check(check: pd.DataFrame, title: str) -> None:
    """The whole-data statistics of a predictive check and the count of extreme groups."""
    from poolwise.results.checks import describe_extreme, extreme_groups

    replicates = int(check["replicates"].iloc[0]) if len(check) else 0
    plain(f"{title} from {replicates:,} replicated data sets (Bayesian p-values near 0 or 1 "
          "flag a feature of the data the model does not reproduce):")
    table = new_table(("variable", "statistic", "observed", "replicated 90%", "p"),
                      left=("variable", "statistic"))
    for row in check[check["group"].isna()].to_dict("records"):
        table.add_row(Text(str(row["variable"])), row["statistic"], _fmt(row["observed"]),
                      f"[{_fmt(row['lower'])}, {_fmt(row['upper'])}]", f"{row['p_value']:.2f}")
    stdout.print(table)
    for variable, counts in extreme_groups(check).items():
        plain(describe_extreme(variable, *counts))


def print_warnings(messages: list[str]) -> None:
    """The warnings collected during a command, one per line on standard error."""
    for message in messages:
        stderr.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def emit(document: dict[str, Any], out: Path | None, output_format: str) -> None:
    """The JSON document: into ``out``/result.json, and on stdout for --format json."""
    from poolwise.outputs.writer import clean, write_json

    if out is not None:
        write_json(out / "result.json", document)
    if output_format == "json":
        text = json.dumps(clean(document), indent=2, ensure_ascii=False)
        if stdout.is_terminal:  # coloured for a reader
            stdout.print_json(text)
        else:  # a pipe or a file: plain text, without rich's highlighting of every token
            sys.stdout.write(text + "\n")


# ----------------------------------------------------------------------------- commands
@app.command("fit", epilog=COMPILE_CACHE_HELP)
def fit_command(
    data: Data, family: Family = None, y: YCol = None, n: NCol = None, group: GroupCol = None,
    se: SeCol = None, pooling: PoolingOption = None, method: Method = None,
    prior: Prior = None, draws: Draws = 1000, chains: Chains = 4, warmup: Warmup = None,
    seed: Seed = 0, target_accept: TargetAccept = None,
    parametrisation: Parametrisation = None, agq: Agq = None, ml: MaximumLikelihood = False,
    eb_intervals: EbIntervals = None, ci: Ci = 0.95, out: Out = None,
    force: Force = False, output_format: Format = "table", quiet: Quiet = False,
    predict_group: PredictGroup = None, new_group: NewGroupFlag = False,
    new_group_y: NewY = None, new_group_n: NewN = None, new_group_in: NewIn = None,
    new_data: NewData = None, formula: Formula = None, drop_missing: DropMissing = False,
    model_file: ModelFile = None, prior_predictive: PriorPredictive = False,
    rank: Rank = None, rank_param: RankParam = None, rank_draws: RankDraws = None,
    hypothesis: Hypothesis = None,
    pairwise: Pairwise = None,
    sep: Sep = None, decimal: Decimal = None, encoding: Encoding = None,
    engine: EngineOption = "auto", scheduler: Scheduler = None, save_draws: SaveDraws = False,
) -> int:
    """Fit one model and print its summary; with --out also write CSV, NetCDF, plots."""
    check_output_options(output_format, ci)
    check_output_directory(out, force)
    if save_draws and (out is None or prior_predictive):
        raise SpecificationError(
            "--save-draws writes the posterior's draws into posterior.nc of --out: give "
            "--out DIR" if out is None else
            "--save-draws writes the posterior's draws; --prior-predictive fits nothing")
    table_output = output_format == "table"
    bar = not quiet and table_output and stderr.is_terminal
    job = build_job(data, text={"sep": sep, "decimal": decimal, "encoding": encoding},
                    family=family, y=y, n=n, se=se, group=group, formula=formula,
                    model_file=model_file, drop_missing=drop_missing, pooling=pooling,
                    method=method, prior=prior, draws=draws, chains=chains, warmup=warmup,
                    seed=seed, target_accept=target_accept, parametrisation=parametrisation,
                    agq=agq, reml=False if ml else None, eb_intervals=eb_intervals,
                    progress=bar, engine=engine, scheduler=scheduler)
    asked = {"--predict-group": predict_group, "--new-group": new_group or None,
             "--new-group-y": new_group_y, "--new-group-n": new_group_n,
             "--new-group-in": new_group_in, "--new-data": new_data}
    if rank is not None and rank not in ("higher", "lower"):
        raise SpecificationError(f"--rank is 'higher' or 'lower' (which is better), not {rank!r}")
    if rank_param is not None and rank is None:
        raise SpecificationError("--rank-param needs --rank higher or --rank lower")
    if rank_draws is not None and rank is None:
        raise SpecificationError("--rank-draws needs --rank higher or --rank lower")
    if rank_draws is not None and rank_draws < 1:
        raise SpecificationError(f"--rank-draws is a whole number ≥ 1, not {rank_draws}")
    from poolwise.results.decisions import check_hypothesis

    for expression in hypothesis or ():  # read before fitting; names are checked after
        check_hypothesis(expression)
    if prior_predictive and any(value is not None for value in asked.values()):
        raise SpecificationError("--prior-predictive draws from the prior instead of fitting, "
                                 "so it takes no predictions (--predict-group, --new-group…)")
    requests = prediction_requests(job, predict_group=predict_group, new_group=new_group,
                                   new_y=new_group_y, new_n=new_group_n, new_in=new_group_in,
                                   new_data=new_data,
                                   text={"sep": sep, "decimal": decimal, "encoding": encoding})
    model = job.model
    prepared = model.prepare(job.table, **job.columns)
    if prior_predictive:
        return prior_predictive_job(job, prepared, ci, out, force, output_format)
    # refused before the header: no partial output
    model.check_memory(prepared, save_draws=save_draws)
    header_notes = [*job.notes, *getattr(prepared, "notes", ())]
    saved_bytes = model.save_draws_estimate(prepared)[0] if save_draws else 0
    if saved_bytes and out is not None:
        from poolwise.resources import check_disk, format_bytes

        check_disk(saved_bytes, out, what="--save-draws",
                   alternatives=["--out on a larger disk", "fewer --draws",
                                 "no --save-draws (fit.group_draws(indices) in Python draws "
                                 "the groups asked for)"])
        header_notes.append(f"--save-draws: every group's draws go into posterior.nc in "
                            f"chunks, about {format_bytes(saved_bytes)}")
    with output_directory(out, force) as staging, collected_warnings() as caught:
        # nuts draws its own progress bar; the others get a spinner
        with progress(f"fitting {job.name} with {model.method}…",
                      quiet or not table_output or model.method == "nuts"):
            from poolwise._threads import on_cluster

            with on_cluster(scheduler):  # 10^7 groups' posteriors are summarised there too
                fit = model.fit(prepared)
        # ArviZ diagnostics cost ~3 ms a group; exact draws are independent by construction
        summary = fit.summary(ci, diagnostics=fit.is_mcmc or len(summary_groups(fit)) <= 1000)
        predictions = [fit.predict(request) for request in requests]
        check = fit.predictive_check()
        decisions = answer_decisions(fit, rank, rank_param, hypothesis, pairwise, ci,
                                     rank_draws)
        if decisions.higher is not None:
            from poolwise.outputs.writer import with_ranks

            summary = with_ranks(summary, fit.ranks(higher=decisions.higher,
                                                    parameter=rank_param, ci_prob=ci,
                                                    draws=rank_draws))
        draws_note = fit.draws_note("posterior.nc" if save_draws else None)
        if staging is not None:
            from poolwise.outputs.report import REPORT_NAME
            from poolwise.outputs.writer import write_fit, write_report

            notes = (*getattr(prepared, "notes", ()), *([draws_note] if draws_note else []))
            provenance = job.provenance(fit.seed, notes, caught)
            with progress(f"writing {out}/…", quiet or not table_output) as update:
                def written(done: int, groups: int) -> None:
                    update(f"writing every group's draws into posterior.nc: {done:,} of "
                           f"{groups:,} groups")

                write_fit(staging, fit, summary=summary, check=check, predictions=predictions,
                          ci_prob=ci, decisions=decisions, provenance=provenance,
                          save_draws=save_draws, progress=written)
            write_report(staging / REPORT_NAME, fit, ci_prob=ci, summary=summary,
                         check=check, predictions=predictions, decisions=decisions,
                         messages=caught, figures=staging, provenance=provenance)
    from poolwise.outputs.writer import fit_document

    document = fit_document(fit, summary=summary, check=check, predictions=predictions,
                            messages=caught, ci_prob=ci, decisions=decisions)
    document["notes"] = [*job.notes, *document["notes"], *([draws_note] if draws_note else [])]
    if table_output:  # after the fit: an error inside it leaves no partial output
        print_header(f"[bold]{escape(job.name)}[/bold]: {escape(model.title(prepared))}",
                     model.prior_statements(prepared), header_notes,
                     model.implied_pooling(prepared))
        print_table(summary, ci, notes=fit.interval_notes(ci))
        from poolwise.outputs.writer import describe_infinite_moments, likelihood_lines

        if (moments := describe_infinite_moments(fit)) is not None:
            plain(moments)
        print_sampler(fit)
        if draws_note:
            plain(f"note: {draws_note}")
        if fit.method.startswith("eb-"):
            estimate = getattr(fit, "estimate", None)
            from poolwise.inference.eb_intervals import corrected

            plain(f"population-level rows: {fit.method} point estimates (with the "
                  "intervals labelled above)"
                  + (f" ({estimate_phrase(estimate)})" if fit.kind == "mixed" else "")
                  + ("; group rows: intervals with the estimates' uncertainty (Kass–Steffey)"
                     if corrected(fit.interval_notes(ci)) else
                     "; group rows: given the estimates, which ignores their uncertainty"))
        for line in likelihood_lines(fit.likelihood_statistics()):
            plain(line)
        print_population(fit, ci)
        for prediction in predictions:
            print_prediction(prediction, ci)
        print_decisions(summary, decisions, ci, fit.config.chains * fit.config.draws)
        print_check(check, "posterior predictive check")
    emit(document, out, output_format)
    if out is not None and table_output:
        stdout.print(f"wrote {out}/")
    print_warnings(caught)
    return 0


def estimate_phrase(estimate: Any) -> str:
    """A mixed model's eb-ml estimate in words, with its log likelihood as lme4's logLik
    (restricted for REML): ``REML, as lme4; log likelihood -871.8``."""
    if estimate is None:
        return "REML, as lme4"
    how = {"REML": "as lme4", "ML": "as lme4's lmer(REML = FALSE)"}.get(estimate.method,
                                                                       "as lme4's glmer")
    return f"{estimate.method}, {how}; log likelihood {estimate.log_likelihood:.4f}"


def answer_decisions(fit: Fit, rank: str | None, parameter: str | None,
                     hypotheses: list[str] | None, pairwise: str | None, ci: float,
                     rank_draws: int | None = None) -> Any:
    """The decision answers the options ask for (:class:`poolwise.outputs.writer.Decisions`)."""
    from poolwise.outputs.writer import Decisions

    table = None
    if pairwise is not None:
        table = fit.pairwise([g.strip() for g in pairwise.split(",") if g.strip()],
                             parameter=parameter)
    return Decisions(None if rank is None else rank == "higher", parameter,
                     tuple(fit.hypothesis(text, ci_prob=ci) for text in hypotheses or ()),
                     table, rank_draws)


def print_decisions(summary: pd.DataFrame, decisions: Any, ci: float, draws: int) -> None:
    """The ten best groups by rank (with the Monte Carlo errors, and how many of the
    ``draws`` posterior draws were ranked), the hypotheses and the pairwise table."""
    if decisions.higher is not None:
        ranked = summary[summary["rank_mean"].notna()].sort_values("rank_mean").head(10)
        better = "higher" if decisions.higher else "lower"
        count = int(summary["rank_mean"].notna().sum())
        used = int(ranked["rank_draws"].iloc[0])
        print_rows(("param", "group", "mean", "rank ± MCSE", f"{100 * ci:g}% interval",
                    "P(best) ± MCSE", "P(worst)"),
                   [[str(row["param"]), str(row["group"]), _fmt(row["mean"]),
                     f"{row['rank_mean']:.1f} ± {_fmt(row['rank_mean_mcse'], 2)}",
                     f"[{row['rank_lower']:.0f}, {row['rank_upper']:.0f}]",
                     (f"{row['p_best']:.3f} ± {_fmt(row['p_best_mcse'], 2)}"
                      if row["p_best"] > 0 else f"0 of {used:,} draws"),
                     f"{row['p_worst']:.3f}"]
                    for row in ranked.to_dict("records")], keys=2,
                   title=f"ranks ({better} is better; 1 the best) from "
                         f"{'all' if used == draws else f'{used:,} of'} {draws:,} draws, the "
                         f"{'ten best' if count > 10 else 'order'} of {count:,}:")
    for answer in decisions.hypotheses:
        probability = ("" if answer["probability"] is None
                       else f"P = {answer['probability']:.4g}; ")
        plain(f"hypothesis {answer['expression']}: {probability}left side mean "
              f"{answer['mean']:.4g}, {100 * ci:g}% interval [{answer['lower']:.4g}, "
              f"{answer['upper']:.4g}]")
    if decisions.pairwise is not None:
        table = decisions.pairwise.round(3)
        plain(f"{table.index.name}:")
        table.index.name = None
        plain(table.to_string(na_rep="—"))


def summary_groups(fit: Fit) -> set[str]:
    """The groups a fit's summary would list (for the cost of its diagnostics)."""
    import numpy as np

    if "posterior" not in fit.tree.children:
        return set()
    posterior = fit.posterior
    return {str(v) for d in fit.group_dims if d in posterior.dims
            for v in np.asarray(posterior[d].values)}


def prior_predictive_job(job: Job, prepared: Any, ci: float, out: Path | None, force: bool,
                         output_format: str) -> int:
    """``fit --prior-predictive``: what the priors imply for data like these."""
    from poolwise.outputs.writer import prior_document, write_prior_predictive

    model = job.model
    with output_directory(out, force) as staging, collected_warnings() as caught:
        prior = model.prior_predictive(prepared)
        if staging is not None:
            write_prior_predictive(staging, prior, ci_prob=ci)
    if output_format == "table":
        print_header(f"[bold]{escape(job.name)}[/bold]: prior predictive of "
                     f"{escape(model.title(prepared))}", model.prior_statements(prepared),
                     (*job.notes, *getattr(prepared, "notes", ())))
        print_table(prior.summary(ci), ci, "prior_summary.csv")
        print_check(prior.check(), "prior predictive check")
    emit(prior_document(job.kind, prior, caught, ci), out, output_format)
    if out is not None and output_format == "table":
        stdout.print(f"wrote {out}/")
    print_warnings(caught)
    return 0


Sources = Annotated[list[str], typer.Argument(
    help="A data file or bundled dataset: fit no, complete and partial pooling, or each "
         "--formula; or two saved fits or more (the posterior.nc of `poolwise fit --out`).")]
Formulas = Annotated[list[str] | None, typer.Option(
    "--formula", help="Mixed model, lme4 style. Once: compare its pooling levels; repeated: "
                      "compare the formulas.")]
ByGroup = Annotated[str | None, typer.Option(
    "--by-group", help="Leave out one whole group of this column at a time (PSIS-LOGO), "
                       "e.g. Subject; default one observation (one group for rates and "
                       "estimates).")]
#: the options of ``compare`` that build models, which saved fits do not take
MODEL_OPTIONS = ("--family", "--y", "--n", "--group", "--se", "--method", "--prior",
                 "--theta-prior", "--draws", "--chains", "--warmup", "--seed",
                 "--target-accept", "--parametrisation", "--formula", "--drop-missing")


@app.command("compare", epilog=COMPILE_CACHE_HELP)
def compare_command(
    sources: Sources, family: Family = None, y: YCol = None, n: NCol = None,
    group: GroupCol = None, se: SeCol = None, method: Method = None, prior: Prior = None,
    theta_prior: Annotated[str | None, typer.Option(
        help="Fixed θ prior for no and complete pooling, e.g. 'beta(0.5,0.5)'.")] = None,
    draws: Annotated[int | None, typer.Option(help="Draws per chain (default 1000).")] = None,
    chains: Annotated[int | None, typer.Option(help="Number of chains (default 4).")] = None,
    warmup: Warmup = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
    target_accept: TargetAccept = None, parametrisation: Parametrisation = None,
    ci: Ci = 0.95, out: Out = None, force: Force = False, output_format: Format = "table",
    quiet: Quiet = False, formula: Formulas = None, drop_missing: DropMissing = False,
    by_group: ByGroup = None, sep: Sep = None, decimal: Decimal = None,
    encoding: Encoding = None,
) -> int:
    """Compare models of the same data by PSIS-LOO: the pooling levels of one model, several
    --formula, or saved fits; with their estimates side by side."""
    from poolwise.outputs.writer import comparison_document, write_comparison

    check_output_options(output_format, ci)
    check_output_directory(out, force)
    given = dict(zip(MODEL_OPTIONS, (family, y, n, group, se, method, prior, theta_prior,
                                     draws, chains, warmup, seed, target_accept,
                                     parametrisation, formula, drop_missing or None),
                     strict=True))
    text = {"sep": sep, "decimal": decimal, "encoding": encoding}
    saved = len(sources) > 1 or sources[0].endswith(".nc")
    with output_directory(out, force) as staging, collected_warnings() as caught:
        if saved:
            if any(value is not None for value in {**given, **text}.values()):
                named = ", ".join(k for k, v in {**given, **text}.items() if v is not None)
                raise SpecificationError(
                    f"saved fits are compared as they were fitted; leave out {named} (they "
                    "describe models to fit from a data table)")
            job, name, comparison = None, "saved fits", saved_comparison(sources)
        else:
            with progress(f"fitting the models of {sources[0]}…",
                          quiet or output_format == "json"):
                job, comparison = fitted_comparison(
                    sources[0], formulas=formula or [], family=family, y=y, n=n, group=group,
                    se=se, method=method, prior=prior, theta_prior=theta_prior,
                    drop_missing=drop_missing, draws=draws, chains=chains, warmup=warmup,
                    seed=seed, target_accept=target_accept, parametrisation=parametrisation,
                    text=text)
                name = job.name
        loo = comparison.predictive(by=by_group)  # first: it checks the data are the same
        estimates = comparison.estimates(ci)
        caught[:0] = [w for w in loo.warnings if w not in caught]
        if staging is not None:
            from poolwise.outputs.report import REPORT_NAME, Provenance, comparison_report

            write_comparison(staging, comparison, estimates=estimates, loo=loo, ci_prob=ci)
            first = next(iter(comparison.fits.values()))
            provenance = (Provenance.now(command=["poolwise", *COMMAND_LINE.get()],
                                         warnings=caught) if job is None else
                          job.provenance(first.seed, getattr(first.data, "notes", ()),
                                         caught))
            page = comparison_report(staging, comparison, estimates=estimates, loo=loo,
                                     messages=caught, ci_prob=ci, provenance=provenance)
            (staging / REPORT_NAME).write_text(page, encoding="utf-8")
    document = comparison_document(comparison, estimates, loo, list(caught))
    if output_format == "table":
        print_comparison(name, comparison, estimates, ci, () if job is None else job.notes)
        print_loo(loo)
    emit(document, out, output_format)
    if out is not None and output_format == "table":
        stdout.print(f"wrote {out}/")
    print_warnings(list(dict.fromkeys(caught)))
    return 0


def saved_comparison(paths: Sequence[str]) -> Any:
    """The fits saved at ``paths``, labelled by their folder (``a`` for a/posterior.nc) or,
    for other file names, by the path."""
    from poolwise import Comparison, load

    labels = [str(Path(p).parent) if Path(p).name == "posterior.nc" else p for p in paths]
    if len(set(labels)) < len(labels):
        labels = list(paths)
    if len(set(labels)) < len(labels):
        raise SpecificationError("each saved fit is compared once; a path is given twice")
    return Comparison({label: load(path) for label, path in zip(labels, paths, strict=True)})


def fitted_comparison(data: str, *, formulas: list[str], theta_prior: str | None,
                      drop_missing: bool, text: dict[str, str | None],
                      **options: Any) -> tuple[Job, Any]:
    """DATA's job and the fits to compare: each formula (two or more), else the pooling
    levels of the model the options describe."""
    from poolwise.api import compare

    columns = {k: options.pop(k) for k in ("y", "n", "group", "se")}
    if len(formulas) > 1 and theta_prior is not None:
        raise SpecificationError("--theta-prior is for the pooling levels of one model, not "
                                 "for comparing formulas")
    # the job reads the table and checks the options; complete pooling takes any formula
    job = build_job(data, text=text, formula=formulas[0] if formulas else None,
                    drop_missing=drop_missing,
                    pooling="complete" if len(formulas) > 1 else None, **columns, **options)
    spec = job.model.spec()
    settings = {k: spec[k] for k in ("draws", "chains", "warmup", "seed", "target_accept",
                                     "parametrisation", "missing") if k in spec}
    method, prior = options["method"], options["prior"]
    if len(formulas) > 1:
        return job, compare(job.table, formulas=formulas, family=spec.get("family"),
                            method=method, prior=prior, **settings)
    return job, compare(job.table, prior=prior, method=method, theta_prior=theta_prior,
                        formula=spec.get("formula"), family=spec.get("family"),
                        **job.columns, **settings)


def print_comparison(name: str, comparison: Any, estimates: pd.DataFrame, ci: float,
                     notes: Sequence[str] = ()) -> None:
    """What is compared (the pooling levels of one model, or each model's title), notes on
    how the data were read, and the estimates side by side."""
    fits = comparison.fits
    if comparison.poolings:
        stdout.print(f"[bold]{escape(name)}[/bold]: no, complete and partial pooling "
                     f"({escape(fits['partial'].title())})")
        for pooling, fit in fits.items():
            prior = fit.describe_prior()
            plain(f"  {pooling}: {prior if len(prior) <= 300 else prior[:300] + ' …'}")
    else:
        stdout.print(f"[bold]{escape(name)}[/bold]: {len(fits)} models")
        for label, fit in fits.items():
            plain(f"  {label}: {fit.title()}")
    for note in notes:
        plain(f"note: {note}")
    per_group = "group" in estimates.columns and "param" not in estimates.columns
    keys = (["group", "y", "n", "raw"] if per_group else
            [k for k in ("param", "group") if k in estimates.columns])
    table = new_table((*keys, *fits), title_justify="left",
                      title=f"posterior means and {100 * ci:g}% intervals")
    for row in estimates.head(MAX_TABLE_ROWS).to_dict("records"):
        cells = [_fmt(row[k], 3) for k in keys]
        cells += [_estimate(row[f"{p}_mean"], row[f"{p}_lower"], row[f"{p}_upper"])
                  for p in fits]
        table.add_row(*(Text(str(cell)) for cell in cells))
    stdout.print(table)
    if len(estimates) > MAX_TABLE_ROWS:
        stdout.print(f"… {len(estimates) - MAX_TABLE_ROWS} more rows "
                     "(all in estimates.csv with --out)")


def _estimate(mean: float, lower: float, upper: float) -> str:
    """``mean [lower, upper]``; the mean alone for a point estimate, — for none."""
    if not math.isfinite(mean):
        return "—"
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return f"{mean:.3g}"
    return f"{mean:.3g} [{lower:.3g}, {upper:.3g}]"


def print_loo(loo: Any) -> None:
    """The PSIS-LOO table, best first, and how clear each difference is."""
    plain(f"predictive comparison ({loo.criterion}: one {loo.points} left out at a time, "
          f"{loo.table['n_points'].iloc[0]} of them; higher elpd is better; elpd_diff from "
          "the best and its standard error dse):")
    columns = ("elpd", "se", "elpd_diff", "dse", "p_loo", "weight", "pareto_k_max")
    print_rows(("model", *columns), [[str(row["model"]), *(_fmt(row[c]) for c in columns)]
                                     for row in loo.table.to_dict("records")])
    for line in loo.verdicts():
        plain(f"  {line}")


Reps = Annotated[int, typer.Option(
    "--reps", help="Replications: data sets simulated and fitted (at least 10).")]
Jobs = Annotated[int | None, typer.Option(
    "--jobs", help="Worker processes (default: the cores).")]


@app.command("calibrate", epilog=COMPILE_CACHE_HELP)
def calibrate_command(
    data: Data, family: Family = None, y: YCol = None, n: NCol = None, group: GroupCol = None,
    se: SeCol = None, pooling: PoolingOption = None, method: Method = None,
    prior: Prior = None, draws: Draws = 250, chains: Chains = 4, warmup: Warmup = None,
    seed: Seed = 0, target_accept: TargetAccept = None,
    parametrisation: Parametrisation = None, agq: Agq = None, formula: Formula = None,
    drop_missing: DropMissing = False, model_file: ModelFile = None, reps: Reps = 100,
    jobs: Jobs = None, out: Out = None, force: Force = False,
    output_format: Format = "table", quiet: Quiet = False,
    sep: Sep = None, decimal: Decimal = None, encoding: Encoding = None,
) -> int:
    """Simulation-based calibration with DATA's design: simulate, fit, rank the truth."""
    check_output_options(output_format, 0.95)
    check_output_directory(out, force)
    job = build_job(data, text={"sep": sep, "decimal": decimal, "encoding": encoding},
                    family=family, y=y, n=n, se=se, group=group, formula=formula,
                    model_file=model_file, drop_missing=drop_missing, pooling=pooling,
                    method=method, prior=prior, draws=draws, chains=chains, warmup=warmup,
                    seed=seed, target_accept=target_accept, parametrisation=parametrisation,
                    agq=agq)
    model = job.model
    prepared = model.prepare(job.table, **job.columns)
    table_output = output_format == "table"
    title = f"calibration of {model.title(prepared)}"
    with output_directory(out, force) as staging, collected_warnings() as caught:
        with progress(f"calibrating {job.name}: 0 of {reps} replications…",
                      quiet or not table_output) as update:
            def advanced(done: int, total: int) -> None:
                update(f"calibrating {job.name}: {done} of {total} replications…")

            result = model.calibrate(prepared, reps=reps, seed=seed, jobs=jobs,
                                     progress=advanced)
        if staging is not None:
            from poolwise.outputs.calibration import write_calibration

            write_calibration(staging, result, title=title,
                              provenance=job.provenance(seed, result.notes, caught))
    if table_output:
        print_header(f"[bold]{escape(job.name)}[/bold]: {escape(title)}",
                     [result.prior], [*job.notes, *getattr(prepared, "notes", ())])
        table = result.table
        columns = [str(c) for c in table.columns]
        print_rows(columns, [[_fmt(v) if not isinstance(v, str) else v for v in row]
                             for row in table.itertuples(index=False)],
                   title=f"{result.reps} replications, ranks among {result.ranked_draws} "
                         "draws" if result.mode == "sbc" else
                         f"coverage of the group intervals, {result.reps} replications")
        for note in result.notes:
            plain(f"note: {note}")
        plain(f"verdict: {result.verdict}")
    document = {"kind": job.kind, "data": job.name, **result.to_dict()}
    emit(document, None, output_format)  # the files have calibration.json
    if out is not None and table_output:
        stdout.print(f"wrote {out}/")
    print_warnings(caught)
    return 0


@app.command("report")
def report_command(
    path: Annotated[Path, typer.Argument(
        help="A saved fit: posterior.nc, or the --out directory that holds it.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="The HTML file (default report.html beside the fit).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing report.")]
    = False,
    ci: Ci = 0.95,
) -> int:
    """Write the HTML report of a saved fit: one self-contained page."""
    from poolwise.api import load
    from poolwise.outputs.writer import write_report

    check_output_options("table", ci)
    if output is None:
        output = (path if path.is_dir() else path.parent) / "report.html"
    if output.exists() and not force:
        raise SpecificationError(f"{output} exists; use --force to overwrite it or choose "
                                 "another --output")
    check_writable(output, "--output")
    fit = load(path)
    with collected_warnings() as caught:
        write_report(output, fit, ci_prob=ci, messages=caught)
    stdout.print(f"wrote {output}")
    print_warnings(caught)
    return 0


@app.command("graph")
def graph_command(
    data: Data, family: Family = None, y: YCol = None, n: NCol = None, group: GroupCol = None,
    se: SeCol = None, pooling: PoolingOption = None, prior: Prior = None,
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Image file: .png, .svg or .pdf.")] = Path("model.png"),
    force: Overwrite = False, formula: Formula = None, model_file: ModelFile = None,
    sep: Sep = None, decimal: Decimal = None, encoding: Encoding = None,
) -> int:
    """Draw the model's graphical model (plates sized by the data) to an image file."""
    from poolwise.outputs.render import render

    job = build_job(data, text={"sep": sep, "decimal": decimal, "encoding": encoding},
                    family=family, y=y, n=n, se=se, group=group, formula=formula,
                    model_file=model_file, pooling=pooling, prior=prior)
    graph = job.model.graph(job.model.prepare(job.table, **job.columns))
    if output.is_dir():
        raise SpecificationError(f"--output {output} is a directory; give an image file "
                                 "(.png, .svg or .pdf)")
    if output.exists() and not force:
        raise SpecificationError(f"{output} exists; use --force to overwrite it")
    check_writable(output, "--output")
    render(graph, output)
    stdout.print(f"wrote {output}")
    return 0


@app.command("describe")
def describe_command(
    data: Data, family: Family = None, y: YCol = None, n: NCol = None, group: GroupCol = None,
    se: SeCol = None, pooling: PoolingOption = None, prior: Prior = None,
    formula: Formula = None, model_file: ModelFile = None,
    sep: Sep = None, decimal: Decimal = None, encoding: Encoding = None,
) -> int:
    """Print the model as equations (LaTeX lines): likelihood, population, priors with
    their values (for a custom model, the priors its file states)."""
    job = build_job(data, text={"sep": sep, "decimal": decimal, "encoding": encoding},
                    family=family, y=y, n=n, se=se, group=group, formula=formula,
                    model_file=model_file, pooling=pooling, prior=prior)
    for line in job.model.equations(job.model.prepare(job.table, **job.columns)):
        plain(line)
    return 0


@app.command("datasets")
def datasets_command() -> int:
    """List the bundled datasets."""
    from poolwise.data import datasets

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

    Command-line syntax errors (an unknown option, a value of the wrong type) and
    poolwise's own errors for bad data or options are printed as one line (exit code 2).
    """
    COMMAND_LINE.set(tuple(sys.argv[1:] if argv is None else argv))
    stdout.width = output_width()
    try:
        code = app(args=argv, prog_name="poolwise", standalone_mode=False)
    except SystemExit as done:
        code = done.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except PoolwiseError as err:
        return error_line(str(err), 2)
    except typer.Abort:
        return error_line("aborted", 1)
    except Exception as err:  # Click's usage errors (Typer ≥ 0.25 has its own copy of Click)
        usage: Any = err
        if not callable(getattr(usage, "format_message", None)):
            raise
        exit_code = int(getattr(usage, "exit_code", 2))
        if type(usage).__name__ == "NoArgsIsHelpError":
            usage.show()  # the help, as for --help
            return exit_code
        context = getattr(usage, "ctx", None)
        command = context.command_path if context is not None else "poolwise"
        return error_line(f"{usage.format_message()} (see {command} --help)", exit_code)
    return code if isinstance(code, int) else 0


def error_line(message: str, code: int) -> int:
    """``message`` as the one line ``error: …`` on standard error; returns ``code``."""
    stderr.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
