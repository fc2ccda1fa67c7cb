"""Datasets shipped with poolwise, each with its source and the columns a model needs.

Rate datasets (``beta-binomial``, ``gamma-poisson``) name a count column ``y`` and a
size column ``n``; normal datasets name an estimate ``y`` and its standard error ``se``.
Mixed-model datasets (families ``normal``, ``binomial``, ``poisson``) give a default
``formula`` for :func:`poolwise.kinds.mixed.parse_formula`; their ``y`` is its response and
``group`` its outermost grouping factor.

>>> from poolwise import datasets
>>> datasets.load("rats").shape
(71, 4)
>>> datasets.info("eight-schools").se
'sigma'
>>> datasets.info("sleepstudy").formula
'Reaction ~ Days + (Days | Subject)'
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import pandas as pd

from poolwise.exceptions import SpecificationError


@dataclass(frozen=True)
class Dataset:
    """A bundled dataset and how poolwise reads it."""

    name: str
    filename: str
    description: str
    source: str
    family: str
    #: counts (rate families), estimates (normal family) or the response (mixed models)
    y: str
    group: str
    #: trials or exposure, for the rate families; None for the normal family
    n: str | None = None
    #: standard error of ``y``, for the normal family; None for the rate families
    se: str | None = None
    #: column that is 1 for rows to fit and 0 for the new group(s) reported separately
    fit_flag: str | None = None
    #: columns computed from the file's columns, name -> (formula text, function)
    derived: dict[str, tuple[str, Callable[[pd.DataFrame], pd.Series]]] = field(
        default_factory=dict
    )
    #: the default lme4-style formula, for the mixed-model families; None otherwise
    formula: str | None = None
    #: columns read as categories (e.g. a treatment coded 1, 2)
    categorical: tuple[str, ...] = ()


_BASEBALL_SE = "sqrt(ybar * (1 - ybar) / 45), ybar = mean(avg_45) over the players"


def _baseball_se(table: pd.DataFrame) -> pd.Series:
    """Binomial standard error of a 45-at-bat average at the players' common mean.

    Efron & Morris (1977, *Scientific American* 236(5)) use this σ² = ȳ(1 − ȳ)/45 in the
    James–Stein shrinkage factor c = 1 − (k − 3)σ²/Σ(y − ȳ)² = 0.212.
    """
    ybar = float(table["avg_45"].mean())
    return pd.Series(math.sqrt(ybar * (1.0 - ybar) / 45.0), index=table.index, name="se")


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="rats",
            filename="rat_tumors.csv",
            description="Rat tumours: 70 historical experiments and a current one (4 of 14)",
            source="Tarone (1982), Biometrics 38:215-220; BDA3 Table 5.1",
            family="beta-binomial",
            y="y",
            n="n",
            group="experiment",
            fit_flag="historical",
        ),
        Dataset(
            name="spacex",
            filename="spacex_launches_early2024.csv",
            description="SpaceX launches and successes by vehicle family, early 2024",
            source="as given by the requesting team; not checked against a public source",
            family="beta-binomial",
            y="successes",
            n="launches",
            group="vehicle_family",
        ),
        Dataset(
            name="kidney",
            filename="kidney_cancer_us_counties.csv",
            description="US kidney-cancer deaths 1980-89: 3,110 rows, 3,109 counties",
            source="BDA3 section 2.7; cleaned by R. Ryder (robinryder/BDA-kidney, MIT)",
            family="gamma-poisson",
            y="deaths",
            n="population",
            group="Location",
            derived={
                "deaths": ("dc + dc.2", lambda t: t["dc"] + t["dc.2"]),
                "population": ("(pop + pop.2) / 2", lambda t: (t["pop"] + t["pop.2"]) / 2.0),
            },
        ),
        Dataset(
            name="eight-schools",
            filename="eight_schools.csv",
            description="SAT coaching effects and standard errors in 8 schools",
            source="Rubin (1981), J. Educ. Stat. 6:377-400; BDA3 Table 5.2 (via posteriordb)",
            family="normal",
            y="y",
            se="sigma",
            group="school",
        ),
        Dataset(
            name="aspirin",
            filename="aspirin_mi_draper1992.csv",
            description="Aspirin after heart attack: mortality difference (% points) in 6 trials",
            source="Draper et al. (1992), NRC; counts from Peto (1980) via bayesmeta Peto1980",
            family="normal",
            y="y",
            se="sd",
            group="study",
        ),
        Dataset(
            name="baseball",
            filename="efron_morris_1975.csv",
            description="1970 batting averages of 18 players after 45 at-bats, and for the "
            "rest of the season (remaining_avg)",
            source="Efron & Morris (1975), JASA 70:311-319, Table 1 (R package pscl)",
            family="normal",
            y="avg_45",
            se="se",
            group="player",
            derived={"se": (_BASEBALL_SE, _baseball_se)},
        ),
        Dataset(
            name="sleepstudy",
            filename="sleepstudy.csv",
            description="Reaction times of 18 subjects over 10 days of sleep deprivation",
            source="Belenky et al. (2003), J. Sleep Res. 12:1-12; lme4 sleepstudy (Rdatasets)",
            family="normal",
            y="Reaction",
            group="Subject",
            formula="Reaction ~ Days + (Days | Subject)",
        ),
        Dataset(
            name="sleep",
            filename="sleep.csv",
            description="Extra hours of sleep of 10 patients, each given both of two drugs",
            source="Student (1908), Biometrika 6:1-25, data of Cushny & Peebles (1905); "
            "R datasets::sleep (Rdatasets)",
            family="normal",
            y="extra",
            group="ID",
            formula="extra ~ group + (1 | ID)",
            categorical=("group",),
        ),
        Dataset(
            name="radon",
            filename="radon_mn.csv",
            description="Log radon in 919 Minnesota houses in 85 counties, by floor and "
            "county soil uranium",
            source="EPA radon survey; Gelman & Hill (2007) ch. 12 (via posteriordb radon data)",
            family="normal",
            y="log_radon",
            group="county",
            formula="log_radon ~ floor + log_uppm + (1 | county)",
        ),
        Dataset(
            name="pastes",
            filename="pastes.csv",
            description="Paste strength: 2 analyses of 3 casks in each of 10 batches (nested)",
            source="Davies & Goldsmith (1972), Statistical Methods in Research and Production, "
            "p. 136; lme4 Pastes (Rdatasets)",
            family="normal",
            y="strength",
            group="batch",
            formula="strength ~ 1 + (1 | batch/cask)",
        ),
        Dataset(
            name="cbpp",
            filename="cbpp.csv",
            description="Contagious bovine pleuropneumonia: new cases in 15 Ethiopian herds "
            "over 4 periods",
            source="Lesnoff et al. (2004), Am. J. Vet. Res. 65:1479-1485; lme4 cbpp "
            "(Rdatasets)",
            family="binomial",
            y="incidence",
            group="herd",
            n="size",
            formula="incidence | trials(size) ~ period + (1 | herd)",
            categorical=("period",),
        ),
    )
}


def names() -> list[str]:
    """Names of the bundled datasets."""
    return list(DATASETS)


def info(name: str) -> Dataset:
    """The description of the bundled dataset ``name``."""
    try:
        return DATASETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecificationError(
            f"unknown dataset {name!r}{hint}; bundled datasets: {', '.join(DATASETS)}"
        ) from None


def load(name: str) -> pd.DataFrame:
    """The bundled dataset ``name`` as a DataFrame, with its derived columns added."""
    dataset = info(name)
    with resources.files("poolwise.data").joinpath("files", dataset.filename).open("rb") as fh:
        table = pd.read_csv(fh)
    for column, (_, compute) in dataset.derived.items():
        table[column] = compute(table)
    for column in dataset.categorical:
        table[column] = table[column].astype("category")
    return table


__all__ = ["DATASETS", "Dataset", "info", "load", "names"]
