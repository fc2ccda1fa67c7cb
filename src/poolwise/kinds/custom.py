r"""Custom models: a NumPyro model function, fitted and summarised like the built-in kinds.

A custom model is any NumPyro model function: it draws its parameters with
``numpyro.sample(name, distribution)`` and its data with
``numpyro.sample(name, distribution, obs=data)``. :class:`CustomModel` holds the function
(or its name, ``"file.py:function"``) and the fitting settings; ``fit(data, constants)``
calls the function with the data as **keyword arguments**: a dict's keys, or a table's
columns by name (each column a NumPy array), plus the ``constants`` (fixed values such as
a known bound). A table's columns that the function does not take are ignored (and listed
in :attr:`CustomData.ignored`); a dict's keys must all be arguments of the function, unless
it takes ``**kwargs``.

The lecture's workflow (notes 004, the radioactive widgets fitted with Stan's
``optimizing`` then ``sampling``) is the default method, ``nuts``:

1. the posterior mode (:meth:`CustomModel.map`): SciPy's trust-region Newton method (or
   L-BFGS-B) on the unconstrained coordinates, with derivatives from JAX, from the model's
   own initialisation and a few random restarts (the best optimum is kept);
2. a Laplace approximation there (``method="laplace"``): the Hessian H of the negative log
   density in the unconstrained coordinates z gives z ~ N(mode, H⁻¹), whose draws are
   carried back through the constraining transforms;
3. NUTS (poolwise's jitted chains, :func:`poolwise.inference.nuts.run_chains`) started at
   the mode, each chain from its own draw of the Laplace approximation.

Two modes. The mode of the density of the parameters as written (constrained space, no
Jacobian) is what Stan's ``optimizing`` reports and what :meth:`CustomModel.map` returns
by default (``jacobian=False``). The Laplace approximation and the start of NUTS use the
mode of the density of the unconstrained coordinates (``jacobian=True``), which always lies
inside the support (a bounded parameter whose likelihood is flat has its constrained mode
on a boundary, where the unconstrained coordinate is infinite). For an unconstrained model
the two are the same.

A custom model has no pooling choice (its structure is its own) and answers no prediction
requests: its replicated data are :meth:`~poolwise.results.fit.Fit.posterior_predictive`.
A saved fit holds the draws, the data, the graph, the priors' description and the
equations, but not the function: :func:`poolwise.load` runs no code.

>>> import numpyro, numpyro.distributions as dist
>>> def normal_mean(y, sigma):
...     mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
...     with numpyro.plate("obs", len(y)):
...         numpyro.sample("y", dist.Normal(mu, sigma), obs=y)
>>> model = CustomModel(model=normal_mean)
>>> data = {"y": [1.0, 2.0, 3.0], "sigma": 1.0}
>>> round(float(model.map(data).params["mu"]), 3)   # (0/100 + 6/1) / (1/100 + 3/1)
1.993
>>> model.describe_prior(data)
'mu ~ Normal(0, 10)'
>>> graph = model_graph_from_numpyro(normal_mean, y=[1.0, 2.0], sigma=1.0)
>>> [(node.name, node.kind) for node in graph.nodes]
[('mu', 'latent'), ('y', 'observed'), ('sigma', 'fixed')]
>>> print(graph.plates[0].label)
obs, $i = 1, \ldots, 2$
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import re
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Self, Unpack, cast

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise._random import Stream, generator, jax_key
from poolwise.data.rows import Check, frame_violations, raise_first, unique_columns
from poolwise.exceptions import ConvergenceWarning, DataError, SpecificationError
from poolwise.kinds.base import VALUE, BaseModel, Settings
from poolwise.resources import MemoryEstimate
from poolwise.results.checks import CheckData
from poolwise.results.fit import Fit, finish_fit
from poolwise.results.graph import GraphNode, ModelGraph, Plate
from poolwise.results.storage import FitRecord, record_attrs
from poolwise.vocabulary import Boolean, Constraint, Integer, OneOf, validate

__all__ = ["CUSTOM_METHODS", "CustomData", "CustomFit", "CustomModel", "MAPResult",
           "describe_distribution", "distribution_values", "latex_label", "load_model",
           "model_graph_from_numpyro"]

#: how a custom model can be fitted, the default first
CUSTOM_METHODS = ("nuts", "map", "laplace")
#: where the chains start: at the posterior mode (jittered by the Laplace approximation) or
#: at NumPyro's default, uniform in (−2, 2) on every unconstrained coordinate
INIT_CHOICES = ("map", "prior")
#: the optimisers of :meth:`CustomModel.map`: SciPy's trust-region Newton method with
#: Hessian-vector products from JAX (``trust-krylov``), or its L-BFGS-B
OPTIMIZERS = ("newton", "lbfgs")
#: random restarts of the optimiser besides the start from the model's own initialisation
RESTARTS = 3
#: half-width of the uniform jitter around the mode when the Hessian there is not positive
#: definite (unconstrained scale)
MODE_JITTER = 0.1
#: distributions whose wrappers the priors' description looks through
WRAPPERS = ("Independent", "ExpandedDistribution", "MaskedDistribution")
#: a distribution at 0 folded onto the positive half-line (|X|) is named as its half
HALVES = {"StudentT": "HalfStudentT", "Normal": "HalfNormal", "Cauchy": "HalfCauchy"}
#: NumPyro's truncated distributions and the bounds each holds
TRUNCATED = {"LeftTruncatedDistribution": ("low",), "RightTruncatedDistribution": ("high",),
             "TwoSidedTruncatedDistribution": ("low", "high")}


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


# --------------------------------------------------------------------------- loading
def load_model(spec: str, data: Mapping[str, Any] | pd.DataFrame | None = None
               ) -> Callable[..., Any]:
    """The model function named by ``"path/to/file.py:function"``.

    Only the named file is imported (by its path, with :mod:`importlib`; nothing is
    searched for), so it runs whatever code the file holds: load files you trust. With
    ``data`` the function is also called on them to check that it is a model (it draws
    parameters with ``numpyro.sample`` and has at least one observed site).

    Raises
    ------
    SpecificationError
        With a one-line message when the spec has no ``:function``, the file is missing or
        not a ``.py`` file, importing it fails (the error in one line), the file has no
        such name (its functions are listed), the name is not callable, or (with
        ``data``) the function is not a model.
    """
    if not isinstance(spec, str):
        raise TypeError(f"the model must be named as a string FILE.py:FUNCTION, not "
                        f"{type(spec).__name__}")
    path_text, sep, name = spec.rpartition(":")
    if not sep or not path_text or not name.isidentifier():
        hint = ("; a fit of a Python function records only its name: pass the function "
                "itself (model=function)" if not sep and "." in spec else "")
        raise SpecificationError(
            f"name the model as FILE.py:FUNCTION, e.g. my_model.py:model; got {spec!r}{hint}")
    path = Path(path_text).expanduser()
    if not path.exists():
        raise SpecificationError(f"no model file {str(path)!r}")
    if path.is_dir():
        raise SpecificationError(f"{str(path)!r} is a directory, not a Python file")
    if path.suffix != ".py":
        raise SpecificationError(f"{str(path)!r} is not a Python file (.py)")
    module = _import_file(path)
    if not hasattr(module, name):
        defined = sorted(n for n, obj in vars(module).items()
                         if callable(obj) and not n.startswith("_")
                         and getattr(obj, "__module__", None) == module.__name__)
        listed = ", ".join(defined) if defined else "none"
        raise SpecificationError(
            f"{path.name} has no function {name!r}; the functions it defines: {listed}")
    function = getattr(module, name)
    if not callable(function):
        raise SpecificationError(
            f"{path.name}: {name!r} is a {type(function).__name__}, not a model function")
    if data is not None:
        CustomModel(model=function).prepare(data)
    return function


def _import_file(path: Path) -> Any:
    """Import one Python file by its path, under a module name of its own."""
    resolved = path.resolve()
    stem = re.sub(r"\W", "_", resolved.stem)
    module_name = f"poolwise_user_model_{stem}_{abs(hash(str(resolved))):x}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise SpecificationError(f"cannot import {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        sys.modules.pop(module_name, None)
        raise SpecificationError(
            f"{path.name} has a syntax error on line {error.lineno}: {error.msg}") from error
    except Exception as error:  # anything the file raises while it is imported
        sys.modules.pop(module_name, None)
        raise SpecificationError(f"importing {path.name} failed: {_one_line(error)}"
                                 ) from error
    return module


# ----------------------------------------------------------------------- data → kwargs
def _as_value(value: Any) -> Any:
    """A column or list as a NumPy array; numbers and arrays as they are."""
    if isinstance(value, (pd.Series, pd.Index)):
        return value.to_numpy()
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return value


def _model_kwargs(function: Callable[..., Any], data: Any, fixed: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The keyword arguments to call the model with (the data and the constants ``fixed``),
    and the table columns it ignores."""
    from_table = isinstance(data, pd.DataFrame)
    if data is None:
        given: dict[str, Any] = {}
    elif from_table:
        if data.empty:
            raise DataError("the table has no rows")
        unique_columns([str(column) for column in data.columns])
        given = {str(column): data[column].to_numpy() for column in data.columns}
    elif isinstance(data, Mapping):
        given = {str(key): _as_value(value) for key, value in data.items()}
    else:
        raise TypeError(f"data must be a dict of arrays or a pandas DataFrame, not "
                        f"{type(data).__name__}")
    for key, value in fixed.items():
        if key in given:
            raise DataError(f"{key!r} is given twice, in the data and in the constants")
        given[key] = _as_value(value)
    name = getattr(function, "__name__", "model")
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # no signature to check (a builtin or C callable)
        return given, ()
    kinds = {p.name: p.kind for p in parameters.values()}
    if any(kind == inspect.Parameter.VAR_KEYWORD for kind in kinds.values()):
        return given, ()
    accepted = {n for n, kind in kinds.items() if kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    ignored = tuple(key for key in given if key not in accepted)
    unknown = [key for key in ignored if not from_table or key in fixed]
    if unknown:
        raise DataError(
            f"{name}() has no argument {', '.join(map(repr, unknown))}; its arguments: "
            f"{', '.join(p for p in parameters) or 'none'}")
    required = [p.name for p in parameters.values() if p.default is inspect.Parameter.empty
                and p.kind not in (inspect.Parameter.VAR_POSITIONAL,)]
    missing = [p for p in required if p not in given]
    if missing:
        have = ", ".join(given) or "nothing"
        raise DataError(
            f"{name}() needs {', '.join(map(repr, missing))}, which the data do not have "
            f"(the data give: {have})")
    if from_table:  # the columns the model takes: numbers, none missing
        names = [str(column) for column in data.columns]
        checks = [Check(test, name, "model argument") for name in names
                  if name not in ignored for test in ("missing", "number")]
        raise_first(checks, frame_violations(data.set_axis(names, axis=1), checks))
    return {k: v for k, v in given.items() if k not in ignored}, ignored


def _group_codes(data: Any, group: str) -> tuple[Any, tuple[str, ...], NDArray[np.intp]]:
    """The data with the column ``group`` replaced by each row's level (0, 1, ... in order
    of first appearance), the levels as text, and the codes."""
    if isinstance(data, pd.DataFrame):
        columns = [str(c) for c in data.columns]
    elif isinstance(data, Mapping):
        columns = [str(k) for k in data]
    else:
        raise DataError("group= names a column of a table (or a key of a dict)")
    if group not in columns:
        raise DataError(f"no column {group!r} for group=; the data's columns: "
                        f"{', '.join(columns) or 'none'}")
    values = pd.Series(np.asarray(data[group]).ravel())
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        raise DataError(f"row {missing[0] + 1}: the group column {group!r} is missing; "
                        "every row needs a group label")
    codes, levels = pd.factorize(values)
    replaced = (data.assign(**{group: codes}) if isinstance(data, pd.DataFrame)
                else {**data, group: codes})
    return replaced, tuple(str(level) for level in levels), codes.astype(np.intp)


# -------------------------------------------------------------------------- tracing
def _x64() -> None:
    from poolwise._ops import start_jax

    start_jax()


def _trace(bound: Callable[[], Any], seed: int) -> dict[str, Any]:
    """One run of the model: latent sites drawn as NumPyro initialises them (uniform in
    (−2, 2) on the unconstrained scale, so improper priors work too)."""
    from numpyro import handlers
    from numpyro.infer.initialization import init_to_uniform

    model = handlers.substitute(handlers.seed(bound, rng_seed=seed),
                                substitute_fn=init_to_uniform)
    return dict(handlers.trace(model).get_trace())


def _sample_sites(trace: Mapping[str, Any]) -> list[str]:
    return [name for name, site in trace.items() if site["type"] == "sample"]


def _check_model(name: str, trace: Mapping[str, Any]) -> None:
    """Refuse a function that is not a model poolwise can fit."""
    samples = _sample_sites(trace)
    if not samples:
        raise SpecificationError(
            f"{name}() is not a NumPyro model: it has no numpyro.sample statements")
    observed = [s for s in samples if trace[s]["is_observed"]]
    if not observed:
        raise SpecificationError(
            f"{name}() is not a model of data: none of its numpyro.sample sites "
            f"({', '.join(samples)}) is observed (numpyro.sample(name, dist, obs=data))")
    for site in observed:  # NumPyro broadcasts a smaller distribution over its data
        shape, data = tuple(trace[site]["fn"].shape()), tuple(np.shape(trace[site]["value"]))
        if shape != data:
            raise SpecificationError(
                f"{name}(): the observed site {site!r} has data of shape {data} but its "
                f"distribution has shape {shape}; draw it inside numpyro.plate(..., "
                f"{data[0] if data else 1}) or give the distribution that shape (.expand)")
    discrete = [s for s in samples if not trace[s]["is_observed"]
                and trace[s]["fn"].support.is_discrete]
    if discrete:
        raise SpecificationError(
            f"{name}(): the latent site(s) {', '.join(discrete)} are discrete; NUTS and "
            "the optimiser need continuous parameters (sum the discrete ones out)")
    params = [n for n, site in trace.items() if site["type"] == "param"]
    if params:
        raise SpecificationError(
            f"{name}(): numpyro.param sites ({', '.join(params)}) are not supported; give "
            "each parameter a prior with numpyro.sample")


def _site_dims(name: str, shape: tuple[int, ...], frames: Sequence[Any]) -> list[str]:
    """Dimension names of a site's value: its plates' names where they fit, else
    ``<site>_dim_<k>``."""
    dims = [f"{name}_dim_{k}" for k in range(len(shape))]
    for frame in frames:
        axis = len(shape) + frame.dim
        if 0 <= axis < len(shape) and shape[axis] == frame.size:
            dims[axis] = frame.name
    return dims

# ------------------------------------------------------------------- describing the model
@dataclass(frozen=True)
class _SiteText:
    """A sample site as the priors' description and the equations write it: its
    distribution with its arguments (:func:`describe_distribution`), as text and LaTeX."""

    name: str
    observed: bool
    law: str                 # e.g. ``HalfStudentT(4, 3.7)``
    latex_law: str           # e.g. ``\mathrm{HalfStudentT}(4, 3.7)``
    symbol: str              # LaTeX, without $
    ranges: tuple[str, ...]  # LaTeX ``i = 1, \ldots, 100`` of its plates, outermost first

    def plain(self) -> str:
        return f"{self.name} ~ {self.law}"

    def latex(self) -> str:
        line = rf"{self.symbol} \sim {self.latex_law}"
        return line + "".join(rf", \quad {extent}" for extent in self.ranges)


def _number_text(value: Any) -> str:
    """A distribution's argument: its number where every element is the same, else
    ``<n values>``."""
    flat = np.asarray(value, dtype=float).ravel()
    if flat.size and np.all(flat == flat[0]):
        return f"{float(flat[0]):g}"
    return f"<{flat.size} values>"


def _is_argument(value: Any) -> bool:
    """Whether a stored attribute is a numeric argument (not a constraint, a shape tuple,
    a flag or a string)."""
    if isinstance(value, bool | str | tuple) or value is None:
        return False
    try:
        array = np.asarray(value)
    except Exception:  # an object NumPy cannot hold
        return False
    return array.dtype.kind in "biuf" and array.size > 0


def _terms(distribution: Any) -> tuple[str, list[tuple[str | None, Any]]]:
    """A distribution's (or a transform's) name and arguments as one would write them
    to NumPyro: ``[(keyword or None for a positional one, value)]``, a value an array, a
    distribution or a list of transforms.

    Wrappers of shape (Independent, expand, mask) are looked through; ``Probs``/``Logits``
    classes take the name of the function that makes them (``Binomial``); a distribution at
    0 folded to the half-line takes its half's name (``HalfStudentT(df, scale)``);
    truncations are written as NumPyro's ``TruncatedNormal(loc, scale, low=…)`` where it
    has one, else ``TruncatedDistribution(base, low=…, high=…)``. Other arguments are those
    of the class's signature that the object holds (not computed on demand), positional up
    to the first one left out.
    """
    import numpyro.distributions as dist

    distribution = _unwrap(distribution)
    kind = type(distribution).__name__
    if kind == "FoldedDistribution":
        base = _unwrap(distribution.base_dist)
        base_kind = type(base).__name__
        if base_kind in HALVES and not np.any(np.asarray(base.loc)):
            held = [(f, v) for f, v in _held(base, type(base)) if f != "loc"]
            return HALVES[base_kind], _written(held)
        return kind, [(None, base)]
    if kind in TRUNCATED:
        base = _unwrap(distribution.base_dist)
        bounds: list[tuple[str | None, Any]] = [
            (bound, getattr(distribution, bound)) for bound in TRUNCATED[kind]]
        truncated = f"Truncated{type(base).__name__}"
        if hasattr(dist, truncated):
            return truncated, [*_terms(base)[1], *bounds]
        return "TruncatedDistribution", [(None, base), *bounds]
    if type(distribution) is dist.TransformedDistribution:
        return kind, [(None, distribution.base_dist), (None, list(distribution.transforms))]
    name = kind.removesuffix("Probs").removesuffix("Logits")
    maker = getattr(dist, name, type(distribution)) if name != kind else type(distribution)
    return name, _written(_held(distribution, maker))


def _held(item: Any, maker: Any) -> list[tuple[str, Any | None]]:
    """Each positional-or-keyword parameter of ``maker`` (a class or the function that makes
    ``item``) with the numeric value ``item`` holds for it, None where it holds none (a
    value NumPyro would compute on demand, a constraint, a flag)."""
    from numpyro.distributions.util import lazy_property

    target = cast(Any, maker).__init__ if isinstance(maker, type) else maker
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    stored = vars(item)
    held: list[tuple[str, Any | None]] = []
    for parameter in parameters:
        if parameter.name == "self" or parameter.kind != inspect.Parameter.POSITIONAL_OR_KEYWORD:
            continue
        on_demand = isinstance(inspect.getattr_static(type(item), parameter.name, None),
                               lazy_property)
        value = stored[parameter.name] if parameter.name in stored else (
            None if on_demand else getattr(item, parameter.name, None))
        held.append((parameter.name, value if _is_argument(value) else None))
    return held


def _written(held: Sequence[tuple[str, Any | None]]) -> list[tuple[str | None, Any]]:
    """The values held, positional up to the first one missing, keywords after it."""
    written: list[tuple[str | None, Any]] = []
    positional = True
    for name, value in held:
        if value is None:
            positional = False
        else:
            written.append((None if positional else name, value))
    return written


def describe_distribution(distribution: Any,
                          value_text: Callable[[int, Any], str] | None = None, *,
                          latex: bool = False) -> str:
    r"""A NumPyro distribution written out with its parameters: ``Normal(0, 10)``,
    ``HalfStudentT(4, 3.7)`` (a folded StudentT at 0), ``Binomial(10, logits=0.2)``,
    ``TruncatedNormal(0, 1, low=0)``,
    ``TransformedDistribution(Normal(0, 1), [AffineTransform(2, 3), ExpTransform()])``
    (:func:`_terms` says how each is named).

    ``value_text(k, value)`` writes the k-th numeric argument (in the order written;
    default: its number, or ``<n values>`` when its elements differ); ``latex``: names in
    ``\mathrm{}`` and keywords as ``\mathrm{low} = 0``.

    >>> import numpyro.distributions as dist
    >>> describe_distribution(dist.FoldedDistribution(dist.StudentT(4.0, 0.0, 3.7)))
    'HalfStudentT(4, 3.7)'
    """
    count = [0]

    def leaf(value: Any) -> str:
        k, count[0] = count[0], count[0] + 1
        return value_text(k, value) if value_text is not None else _number_text(value)

    def write(item: Any) -> str:
        if isinstance(item, list):
            return "[" + ", ".join(write(t) for t in item) + "]"
        if not hasattr(item, "__dict__") or _is_argument(item):
            return leaf(item)
        name, args = _terms(item)
        parts = []
        for keyword, value in args:
            text = write(value)
            if keyword is not None:
                text = (rf"{_tex_word(keyword)} = {text}" if latex else f"{keyword}={text}")
            parts.append(text)
        return (rf"\mathrm{{{name}}}" if latex else name) + f"({', '.join(parts)})"

    return write(distribution)


def distribution_values(distribution: Any) -> list[Any]:
    """The numeric arguments of :func:`describe_distribution`, in the order it writes them
    (so that two runs of a model can be compared argument by argument)."""
    values: list[Any] = []

    def keep(k: int, value: Any) -> str:
        values.append(value)
        return ""

    describe_distribution(distribution, keep)
    return values


def _unwrap(distribution: Any) -> Any:
    """The distribution inside Independent, Expanded and Masked wrappers."""
    while type(distribution).__name__ in WRAPPERS and hasattr(distribution, "base_dist"):
        distribution = distribution.base_dist
    return distribution


def _broadcast_equal(value: NDArray, other: Any) -> bool:
    """Whether ``other``, broadcast to the shape of ``value``, is ``value``."""
    try:
        target = np.broadcast_to(np.asarray(other), value.shape)
    except ValueError:
        return False
    return bool(np.array_equal(value, target))


def _outer_first(stack: Sequence[Any]) -> list[Any]:
    """A site's plate frames, the outermost (most negative ``dim``) first."""
    return sorted(stack, key=lambda frame: frame.dim)


def _plate_letters(stacks: Mapping[str, list[Any]], name: str) -> dict[str, str]:
    """The index letter of each plate, as the graph assigns them (nesting order)."""
    try:
        order = [plate.name for plate in _plates(stacks, name)[0]]
    except SpecificationError:  # crossed plates: in the order the model opens them
        order = list(dict.fromkeys(f.name for stack in stacks.values() for f in stack))
    return {plate: PLATE_INDICES[k % len(PLATE_INDICES)] for k, plate in enumerate(order)}


def _frames_fitting(shape: tuple[int, ...], stack: Sequence[Any]) -> list[Any]:
    """The frames of ``stack`` whose size the array's shape has at the frame's axis."""
    return [f for f in stack if len(shape) >= -f.dim and shape[len(shape) + f.dim] == f.size]


def _site_texts(function: Callable[..., Any], kwargs: Mapping[str, Any], name: str
                ) -> list[_SiteText]:
    """Every sample site's distribution with its arguments written out.

    An argument that is the same in two runs of the model with different parameter values
    is a constant: a number (when all its elements are equal), the name of the data argument
    it equals, or ``<n values>``. One that changes is a function of the parameters: the
    name of the parent site it equals, else ``f(parents)`` (NumPyro's
    :func:`~numpyro.infer.inspect.get_model_relations` gives the parents).
    """
    bound = partial(function, **kwargs)
    first, second = _trace(bound, 0), _trace(bound, 1)
    try:
        from numpyro.infer.inspect import get_model_relations

        parents: Mapping[str, list[str]] = get_model_relations(bound)["sample_sample"]
    except Exception:  # a structure that cannot be traced: no parents named
        parents = {}
    samples = _sample_sites(first)
    latent = [s for s in samples if not first[s]["is_observed"]]
    stacks = {s: _outer_first(first[s].get("cond_indep_stack", [])) for s in samples}
    letters = _plate_letters(stacks, name)
    data = {k: np.asarray(v) for k, v in kwargs.items()
            if np.asarray(v).dtype.kind in "biuf"}

    def symbol(site: str, stack: Sequence[Any]) -> str:
        return latex_label(site, [letters[f.name] for f in stack])[1:-1]

    def argument(site: str, one: Any, two: Any) -> tuple[str, str]:
        one, two = np.asarray(one), np.asarray(two)
        if one.shape != two.shape or not np.array_equal(one, two, equal_nan=True):
            linked = [p for p in parents.get(site, []) if p in latent]
            for parent in linked:
                if (_broadcast_equal(one, first[parent]["value"])
                        and parent in second
                        and _broadcast_equal(two, second[parent]["value"])):
                    return parent, symbol(parent, stacks[parent])
            if not linked:
                return "f(parameters)", r"f(\cdot)"
            return (f"f({', '.join(linked)})",
                    f"f({', '.join(symbol(p, stacks[p]) for p in linked)})")
        flat = one.ravel()
        if flat.size and np.all(flat == flat[0]):
            return _number_text(one), _number_text(one)
        for key, value in data.items():
            if _broadcast_equal(one, value):
                return key, symbol(key, _frames_fitting(value.shape, stacks[site]))
        return _number_text(one), r"\ldots"

    def pick(written: list[tuple[str, str]], column: int) -> Callable[[int, Any], str]:
        """The text (0) or LaTeX (1) of each argument, as worked out."""
        return lambda k, _: written[k][column]

    texts = []
    for site in samples:
        distribution = first[site]["fn"]
        values = distribution_values(distribution)
        others = distribution_values(second[site]["fn"]) if site in second else values
        if len(others) != len(values):  # another structure in the other run
            others = values
        written = [argument(site, one, two) for one, two in zip(values, others, strict=True)]
        ranges = tuple(rf"{letters[f.name]} = 1, \ldots, {f.size}" for f in stacks[site])
        texts.append(_SiteText(
            site, bool(first[site]["is_observed"]),
            describe_distribution(distribution, pick(written, 0)),
            describe_distribution(distribution, pick(written, 1), latex=True),
            symbol(site, stacks[site]), ranges))
    return texts


# ------------------------------------------------------------------------- the target
@dataclass(frozen=True)
class _Target:
    """The model's posterior on a flat vector z of unconstrained coordinates."""

    potential: Callable[[Any], Any]        # −log p(z), Jacobian included (what NUTS samples)
    neg_log_density: Callable[[Any], Any]  # −log p(constrain(z)), no Jacobian
    constrain: Callable[[Any], dict[str, Any]]  # z → latent and deterministic sites
    start: NDArray[np.float64]             # the model's initialisation
    fixed: NDArray[np.bool_]               # coordinates given by the user's start values


@dataclass(frozen=True)
class MAPResult:
    """The posterior mode found by optimisation.

    ``params`` are the constrained values of every latent and deterministic site;
    ``unconstrained`` the flat vector of unconstrained coordinates at the mode;
    ``log_density`` the log density maximised (of the parameters as written when
    ``jacobian`` is False, of the unconstrained coordinates when True), up to a constant;
    ``converged`` and ``message`` are SciPy's verdict on the best of ``starts`` runs.
    """

    params: dict[str, NDArray[np.float64]]
    unconstrained: NDArray[np.float64]
    log_density: float
    jacobian: bool
    converged: bool
    message: str
    iterations: int
    starts: int
    optimizer: str
    seconds: float

    def table(self) -> pd.DataFrame:
        """One row per scalar: ``param`` (``name`` or ``name[i, ...]``) and ``value``."""
        rows = []
        for name, value in self.params.items():
            array = np.asarray(value)
            for index in np.ndindex(*array.shape):
                label = f"{name}[{', '.join(map(str, index))}]" if index else name
                rows.append({"param": label, "value": float(array[index])})
        return pd.DataFrame(rows, columns=["param", "value"])

    def to_dict(self) -> dict[str, Any]:
        """The mode as JSON-ready values (saved with a fit)."""
        return {"params": {k: np.asarray(v).tolist() for k, v in self.params.items()},
                "unconstrained": self.unconstrained.tolist(), "log_density": self.log_density,
                "jacobian": self.jacobian, "converged": self.converged,
                "message": self.message, "iterations": self.iterations,
                "starts": self.starts, "optimizer": self.optimizer, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MAPResult:
        """The mode :meth:`to_dict` wrote."""
        return cls(**{**data, "params": {k: np.asarray(v, dtype=float)
                                          for k, v in data["params"].items()},
                      "unconstrained": np.asarray(data["unconstrained"], dtype=float)})


def _resimulate(fn: Callable[..., Any]) -> Any:
    """``fn`` under a NumPyro effect handler that turns observed sites into latent ones, so
    that they are drawn afresh (the posterior and prior predictive)."""
    from numpyro.primitives import Messenger

    class Resimulate(Messenger):
        def process_message(self, msg: Any) -> None:
            if msg["type"] == "sample" and msg["is_observed"]:
                msg["value"] = None
                msg["is_observed"] = False

    return Resimulate(fn)


def _from_white(mode: NDArray, chol: NDArray, w: NDArray) -> NDArray[np.float64]:
    """z = mode + L⁻ᵀ w for each row of w (any leading shape), with H = L Lᵀ: standard
    normal w give z ~ N(mode, H⁻¹)."""
    from scipy.linalg import solve_triangular

    flat = w.reshape(-1, mode.size)
    z = mode + solve_triangular(chol.T, flat.T, lower=False).T
    return np.asarray(z).reshape(w.shape)


def _jax_key_from(rng: np.random.Generator) -> Any:
    """A JAX key drawn from a NumPy generator (one of the :mod:`poolwise._random` streams)."""
    import jax

    _x64()
    return jax.random.PRNGKey(int(rng.integers(2**63)))


# --------------------------------------------------------------------------- the data
@dataclass(frozen=True)
class CustomData:
    """Data bound to a model function, and what a run of the function on them shows.

    ``kwargs`` are the keyword arguments the function is called with (empty in a fit read
    from a file, which holds no function); ``ignored`` the table columns it does not take.
    ``latent`` and ``observed`` name the sample sites, ``observed_data`` holds each observed
    site's values, ``plates`` each plate's size and ``dims`` the dimension names of every
    sample and deterministic site (its plates where they fit, else ``<site>_dim_<k>``).
    ``distributions`` are the sample sites' NumPyro distributions at NumPyro's initial
    values (empty when read from a file); ``discrete`` the observed sites whose
    distribution is discrete and whose values are whole numbers. ``group`` names the column
    of group labels the data were given with (``group=``, ``--group``), ``labels`` its
    levels (in order of first appearance), ``codes`` each row's level (0, 1, ...: what
    the function was given for the column) and ``group_plate`` the plate they label.
    """

    kwargs: Mapping[str, Any]
    ignored: tuple[str, ...]
    latent: tuple[str, ...]
    observed: tuple[str, ...]
    observed_data: Mapping[str, NDArray[Any]]
    plates: Mapping[str, int]
    dims: Mapping[str, tuple[str, ...]]
    distributions: Mapping[str, Any]
    discrete: tuple[str, ...]
    #: how many values each sample and deterministic site holds at one draw (empty when
    #: read from a file)
    sizes: Mapping[str, int] = field(default_factory=dict)
    group: str | None = None
    labels: tuple[str, ...] = ()
    codes: NDArray[np.intp] | None = None
    group_plate: str | None = None

    @property
    def notes(self) -> tuple[str, ...]:
        """What was done to the data on the way, for the output."""
        if not self.ignored:
            return ()
        return (f"columns not used by the model: {', '.join(self.ignored)}",)

    @property
    def size(self) -> int:
        """The number of observed values."""
        return sum(int(np.size(values)) for values in self.observed_data.values())

    def to_dict(self) -> dict[str, Any]:
        """What a saved fit keeps besides its ``observed_data`` group."""
        return {"ignored": list(self.ignored), "latent": list(self.latent),
                "observed": list(self.observed), "plates": dict(self.plates),
                "dims": {k: list(v) for k, v in self.dims.items()},
                "discrete": list(self.discrete), "group": self.group,
                "labels": list(self.labels), "group_plate": self.group_plate,
                "codes": None if self.codes is None else self.codes.tolist()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], observed: xr.Dataset) -> CustomData:
        """The data :meth:`to_dict` wrote, with the observed values from the tree."""
        codes = record.get("codes")
        return cls({}, tuple(record["ignored"]), tuple(record["latent"]),
                   tuple(record["observed"]),
                   {name: np.asarray(observed[name].values) for name in record["observed"]},
                   {k: int(v) for k, v in record["plates"].items()},
                   {k: tuple(v) for k, v in record["dims"].items()}, {},
                   tuple(record["discrete"]), group=record.get("group"),
                   labels=tuple(record.get("labels", ())),
                   codes=None if codes is None else np.asarray(codes, dtype=np.intp),
                   group_plate=record.get("group_plate"))


# --------------------------------------------------------------------------- the model
class CustomModel(BaseModel):
    """A NumPyro model function and how to fit it.

    Parameters
    ----------
    model
        The model: a function that draws parameters with ``numpyro.sample`` and at least
        one observed site ``numpyro.sample(name, dist, obs=...)`` (deterministic sites,
        ``numpyro.deterministic``, are kept in the posterior); or its name,
        ``"path/to/file.py:function"``, loaded with :func:`load_model` (which runs the
        file: load files you trust).
    name
        A name for tables and titles (default: ``file.py:function`` or the function's
        name).
    coords
        Labels for the plates, ``{"widgets": ids}``, used in the summary's ``group``
        column, the predictive check and the plate diagram (default 0, 1, 2, ...). A table
        with a column of group labels can name it instead: ``fit(table, group="school")``
        (:meth:`prepare`).
    method
        ``"nuts"`` (default), ``"map"`` (the mode of :meth:`map` as a single draw) or
        ``"laplace"`` (normal in the unconstrained coordinates at their mode).
    draws, chains, warmup, seed, progress, target_accept
        Draws and warm-up per chain, the seed of every random stream, a progress bar, and
        NUTS's target acceptance rate (default 0.8). A ``map`` fit is one draw of one
        chain; a ``laplace`` fit has no warm-up.
    init
        ``"map"`` (default): NUTS starts at the mode of the unconstrained coordinates, each
        chain at its own draw of the Laplace approximation there; ``"prior"``: where
        NumPyro would start (uniform in (−2, 2) on the unconstrained scale).
    optimizer
        ``"newton"`` (default): SciPy's trust-region Newton method (``trust-krylov``) with
        exact Hessian-vector products from JAX; ``"lbfgs"``: SciPy's L-BFGS-B. On the
        widgets (101 parameters) the first takes 50-70 iterations, L-BFGS 900-3500, as a
        hierarchical posterior is badly conditioned.
    restarts
        Further runs of the optimiser from random starts (uniform in (−2, 2) on every
        unconstrained coordinate not given in ``start``); the best optimum is kept.
    precondition
        NUTS started at the mode runs on the coordinates whitened by the Laplace
        approximation (below).
    start
        Values to start the optimiser from for some latent sites, e.g. ``{"alpha": 0.05}``
        (the notes start Stan's optimiser at the true α); the others start as NumPyro
        initialises them.

    ``nuts`` runs ``chains`` × (``warmup`` + ``draws``) iterations of poolwise's jitted
    NUTS. With ``init="map"`` and ``precondition=True`` it samples w = Lᵀ(z − mode), where
    H = L Lᵀ is the Hessian at the mode: a linear change of variables (constant Jacobian,
    the same posterior) that gives the sampler the Laplace covariance as a dense mass
    matrix, on top of its own diagonal adaptation. On the widgets it halves or thirds the
    sampling time (tree depth 7 → 5-6). Where the Hessian is not positive definite the
    chains start at the mode ± 0.1, unwhitened.
    """

    kind = "custom"
    METHODS: ClassVar[Mapping[str, tuple[str, ...]]] = {"partial": CUSTOM_METHODS}
    #: a custom model is its own structure: no pooling level, no parametrisation to choose
    TAKES = ("method", "draws", "chains", "warmup", "seed", "progress", "target_accept")
    CONSTRAINTS: ClassVar[Mapping[str, Constraint]] = {
        "init": OneOf(INIT_CHOICES), "optimizer": OneOf(OPTIMIZERS), "restarts": Integer(0),
        "precondition": Boolean()}

    function: Callable[..., Any] | None

    def __init__(self, *, model: Callable[..., Any] | str, name: str | None = None,
                 coords: Mapping[str, Sequence[Any]] | None = None, init: str = "map",
                 optimizer: str = "newton", restarts: int = RESTARTS, precondition: bool = True,
                 start: Mapping[str, Any] | None = None,
                 **settings: Unpack[Settings]) -> None:
        if isinstance(model, str):
            self.function = load_model(model)
        elif callable(model):
            self.function = model
        else:
            raise SpecificationError(
                "model must be a NumPyro model function or 'FILE.py:FUNCTION', not "
                f"{type(model).__name__}")
        _x64()
        self._configure({"model": model, "name": name, "coords": coords, "init": init,
                         "optimizer": optimizer, "restarts": restarts,
                         "precondition": precondition, "start": start, **settings})

    def _configure(self, spec: Mapping[str, Any]) -> None:
        """Check and store the settings (coords and start values as plain lists)."""
        spec = dict(spec)
        if spec.get("name") is not None and not isinstance(spec["name"], str):
            raise SpecificationError(f"name must be a string, got {spec['name']!r}")
        for key in ("coords", "start"):
            if spec.get(key) is not None and not isinstance(spec[key], Mapping):
                raise SpecificationError(
                    f"{key} must be a mapping of names to values, not "
                    f"{type(spec[key]).__name__}")
        if spec.get("coords") is not None:
            spec["coords"] = {str(k): np.asarray(v).tolist() for k, v in spec["coords"].items()}
        if spec.get("start") is not None:
            spec["start"] = {str(k): np.asarray(v, dtype=float).tolist()
                             for k, v in spec["start"].items()}
        common = Settings.__annotations__
        self._settle({k: v for k, v in spec.items() if k not in common},
                     {k: v for k, v in spec.items() if k in common})
        self.model_spec: Callable[..., Any] | str = spec["model"]
        self.name: str = spec.get("name") or _default_name(spec["model"])
        self.coords = {k: np.asarray(v) for k, v in (spec.get("coords") or {}).items()}
        self.start: dict[str, Any] | None = spec.get("start")
        self.init: str = spec.get("init") or "map"
        self.optimizer: str = spec.get("optimizer") or "newton"
        restarts = spec.get("restarts")
        self.restarts: int = RESTARTS if restarts is None else int(restarts)
        self.precondition: bool = spec.get("precondition", True) is not False
        if self.method == "map":
            self.config = replace(self.config, draws=1, chains=1, warmup=0)
        elif self.method == "laplace":
            self.config = replace(self.config, warmup=0)

    @classmethod
    def _without_function(cls, spec: Mapping[str, Any]) -> CustomModel:
        """The model of a saved fit: its settings, but no function (nothing is run)."""
        model = cls.__new__(cls)
        model.function = None
        model._configure(spec)
        return model

    def replace(self, **changes: Any) -> Self:
        """A copy with some settings changed, e.g. ``model.replace(method="laplace")``; the
        function is kept (a file is not loaded again) unless ``model`` changes."""
        if "model" in changes:
            return super().replace(**changes)
        new = copy.copy(self)
        new._configure({**self.spec(), **changes})
        return new

    @property
    def pooling_phrase(self) -> str:
        return "a model of its own"

    @property
    def reloadable(self) -> bool:
        """Whether :attr:`model_spec` names a file the model can be loaded from again (a
        function given in Python is saved by its name only)."""
        return isinstance(self.model_spec, str) and ":" in self.model_spec

    def _saved_spec(self) -> dict[str, Any]:
        """The spec as JSON for a saved fit: a function by its ``module.qualname``, with
        ``"reloadable": False``."""
        spec = self.spec()
        if callable(spec["model"]):
            function = spec["model"]
            spec["model"] = (f"{getattr(function, '__module__', None) or '?'}."
                             f"{getattr(function, '__qualname__', type(function).__name__)}")
        if not isinstance(spec["model"], str) or ":" not in spec["model"]:
            spec["reloadable"] = False
        return spec

    def _require_function(self, what: str) -> Callable[..., Any]:
        """The model function, or the error saying that a saved fit has none."""
        if self.function is not None:
            return self.function
        if self.reloadable:
            how = f"CustomModel(model={self.model_spec!r}).fit(data)"
        else:
            short = str(self.model_spec).rsplit(".", 1)[-1]
            how = (f"CustomModel(model={short}).fit(data), passing the function itself "
                   f"(saved as {self.model_spec!r})")
        raise SpecificationError(
            f"{what} needs the model function, which a saved fit does not hold "
            f"(poolwise.load runs no code): refit with {how}")

    # ------------------------------------------------------------------ data
    def prepare(self, data: Mapping[str, Any] | pd.DataFrame | CustomData | None,
                constants: Mapping[str, Any] | None = None, **columns: Any) -> CustomData:
        """Bind ``data`` (and the ``constants``) to the function's keyword arguments and run
        it once (module docstring); data already prepared are returned as they are.

        ``group="school"`` names a column of group labels (text or numbers): the function
        is given each row's level, 0, 1, ..., K − 1 in order of first appearance, in its
        place (to index a plate's parameters, ``theta[school]``), and the plate of K
        elements (one not labelled by ``coords``) is labelled with the levels in the
        summary, the predictive check and the plate diagram; the predictive check groups
        the rows of an observed site by them.

        Raises
        ------
        DataError
            When the data do not fit the function's arguments, or the group column is
            missing or has missing values.
        SpecificationError
            When calling the function on them fails, it is not a model (no sample sites,
            none observed, discrete or ``param`` sites), ``coords`` do not fit its plates,
            no plate (or more than one) has as many elements as the group column has
            levels, or columns other than ``group`` are named (``y=``): the function's
            arguments name them.
        """
        if isinstance(data, CustomData) and constants is None and not columns:
            return data
        group = columns.pop("group", None)
        if columns:
            raise SpecificationError(
                f"a custom model takes no column names ({', '.join(f'{k}=' for k in columns)}"
                "): the data's keys or columns are the function's arguments; give fixed "
                "values as constants={...} (group= names a column of group labels)")
        function = self._require_function("preparing data")
        labels: tuple[str, ...] = ()
        codes = None
        if group is not None:
            data, labels, codes = _group_codes(data, str(group))
        if constants is not None and not isinstance(constants, Mapping):
            raise SpecificationError(
                f"constants must be a mapping of names to values, not "
                f"{type(constants).__name__}")
        kwargs, ignored = _model_kwargs(function, data, constants or {})
        try:
            trace = _trace(partial(function, **kwargs), 0)
        except SpecificationError:
            raise
        except Exception as error:  # whatever the user's function raises
            raise SpecificationError(
                f"calling {self.name}() on the data failed: {_one_line(error)}") from error
        _check_model(self.name, trace)
        samples = _sample_sites(trace)
        latent = tuple(s for s in samples if not trace[s]["is_observed"])
        observed = tuple(s for s in samples if trace[s]["is_observed"])
        observed_data = {s: np.asarray(trace[s]["value"]) for s in observed}
        plates = {site["name"]: int(site["args"][0]) for site in trace.values()
                  if site["type"] == "plate"}
        dims = {s: tuple(_site_dims(s, tuple(np.shape(site["value"])),
                                    site.get("cond_indep_stack", [])))
                for s, site in trace.items() if site["type"] in ("sample", "deterministic")}
        discrete = tuple(s for s in observed if trace[s]["fn"].support.is_discrete
                         and _whole(observed_data[s]))
        self._check_coords(plates)
        group_plate = None if group is None else self._group_plate(str(group), len(labels),
                                                                   plates)
        sizes = {s: int(np.size(site["value"])) for s, site in trace.items()
                 if site["type"] in ("sample", "deterministic")}
        return CustomData(kwargs, ignored, latent, observed, observed_data, plates, dims,
                          {s: trace[s]["fn"] for s in samples}, discrete, sizes,
                          None if group is None else str(group), labels, codes, group_plate)

    def _group_plate(self, group: str, levels: int, plates: Mapping[str, int]) -> str:
        """The one plate of ``levels`` elements that ``coords`` leave unlabelled."""
        fitting = [p for p, size in plates.items() if size == levels and p not in self.coords]
        if len(fitting) == 1:
            return fitting[0]
        sizes = ", ".join(f"{p} {size}" for p, size in plates.items()) or "none"
        if not fitting:
            raise SpecificationError(
                f"the group column {group!r} has {levels} levels, but no plate of "
                f"{self.name}() has {levels} elements to label (its plates: {sizes}); open "
                f"one with numpyro.plate(name, {levels}) for the groups' parameters")
        raise SpecificationError(
            f"the group column {group!r} has {levels} levels, and plates "
            f"{' and '.join(map(repr, fitting))} both have {levels} elements; label the "
            f"right one with coords={{{fitting[0]!r}: labels}} instead of group=")

    def _check_coords(self, plates: Mapping[str, int]) -> None:
        for plate, labels in self.coords.items():
            if plate not in plates:
                raise SpecificationError(
                    f"coords name an unknown plate {plate!r}; the model's plates: "
                    f"{', '.join(plates) or 'none'}")
            if len(labels) != plates[plate]:
                raise SpecificationError(
                    f"plate {plate!r} has {plates[plate]} elements but {len(labels)} labels "
                    "were given")

    def _prepared(self, data: Any) -> CustomData:
        """Prepared data from prepared or raw data (None: the function takes none)."""
        if isinstance(data, CustomData):
            return data
        return self.prepare({} if data is None else data)

    def _plate_labels(self, data: CustomData) -> dict[str, NDArray[Any]]:
        """The labels of the plates that have them: the coords given, and the group column's
        levels on its plate."""
        labelled = dict(self.coords)
        if data.group_plate is not None:
            labelled[data.group_plate] = np.asarray(data.labels)
        return labelled

    def _plate_coords(self, data: CustomData) -> dict[str, NDArray[Any]]:
        """Each plate's labels (:meth:`_plate_labels`), else 0, 1, 2, ..."""
        labelled = self._plate_labels(data)
        return {plate: labelled.get(plate, np.arange(size))
                for plate, size in data.plates.items()}

    # ------------------------------------------------------------------ describing
    def describe_prior(self, data: Any = None) -> str:
        """The priors of the latent sites with their arguments, e.g.
        ``alpha ~ HalfNormal(1); N_initial ~ Uniform(0, 10)`` (:func:`describe_distribution`);
        an argument that depends on other parameters is written as the parent it equals or
        ``f(parents)``. ``data`` (raw or prepared) are needed to run the function."""
        function = self._require_function("describing the prior")
        prepared = self._prepared(data)
        return "; ".join(text.plain()
                         for text in _site_texts(function, prepared.kwargs, self.name)
                         if not text.observed)

    def equations(self, data: Any = None) -> list[str]:
        r"""The model as LaTeX lines: each observed site's distribution, then each latent
        site's, from the data up (``\alpha \sim \mathrm{HalfNormal}(1)``),
        with the range of its plates."""
        function = self._require_function("writing the equations")
        prepared = self._prepared(data)
        texts = _site_texts(function, prepared.kwargs, self.name)
        ordered = [t for t in texts if t.observed] + [t for t in texts if not t.observed][::-1]
        return [text.latex() for text in ordered]

    def graph(self, data: Any = None) -> ModelGraph:
        """The graphical model of the function on ``data`` (see
        :func:`model_graph_from_numpyro`)."""
        function = self._require_function("drawing the graph")
        prepared = self._prepared(data)
        return _graph(function, prepared.kwargs, self.name, self._plate_labels(prepared))

    def title(self, data: CustomData) -> str:
        extent = (", ".join(f"{size} {plate}" for plate, size in data.plates.items())
                  or f"{data.size} observed values")
        return f"custom model {self.name}, method {self.method}, {extent}"

    def _group_dims(self, data: CustomData) -> tuple[str, ...]:
        return tuple(data.plates)

    # ------------------------------------------------------------------ checks
    def check_data(self, data: CustomData, replicated: Mapping[str, NDArray]
                   ) -> list[CheckData]:
        """Each observed site, flattened, with the label of each element: its row's group
        (``group=``) for a site of one value per row, else its label in the site's first
        plate (None for a site outside every plate)."""
        coords = self._plate_coords(data)
        checks = []
        for name in data.observed:
            observed = np.asarray(data.observed_data[name], dtype=float)
            values = np.asarray(replicated[name], dtype=float)
            dims = data.dims[name]
            groups = None
            plated = [axis for axis, dim in enumerate(dims) if dim in data.plates]
            if data.codes is not None and observed.shape == data.codes.shape:
                groups = np.asarray(data.labels)[data.codes]
            elif plated:
                axis = plated[0]
                shape = [1] * observed.ndim
                shape[axis] = -1
                labels = np.asarray(coords[dims[axis]]).astype(str).reshape(shape)
                groups = np.broadcast_to(labels, observed.shape).ravel()
            checks.append(CheckData(name, observed.ravel(), values.reshape(-1, observed.size),
                                    groups, name in data.discrete, label=name))
        return checks

    def _prior_draws(self, data: CustomData, rng: np.random.Generator, size: int
                     ) -> tuple[dict[str, tuple[NDArray, list[str]]],
                                dict[str, tuple[NDArray, list[str]]], dict[str, Any]]:
        """Parameters from their priors and the observed sites drawn given them (NumPyro's
        ``Predictive``); refused where a latent site's prior is improper."""
        import jax
        from numpyro.distributions import ImproperUniform
        from numpyro.infer import Predictive

        function = self._require_function("the prior predictive")
        for site in data.latent:
            distribution = data.distributions[site]
            try:
                improper = isinstance(_unwrap(distribution), ImproperUniform)
                if not improper:
                    distribution.sample(jax.random.PRNGKey(0))
            except NotImplementedError:
                improper = True
            if improper:
                raise SpecificationError(
                    f"the prior of {site!r} ({type(_unwrap(distribution)).__name__}) is "
                    "improper or cannot be sampled, so the model has no prior predictive; "
                    f"give {site} a proper prior")
        predictive = Predictive(_resimulate(partial(function, **data.kwargs)),
                                num_samples=size)
        samples = predictive(_jax_key_from(rng))
        prior: dict[str, tuple[NDArray, list[str]]] = {}
        replicated: dict[str, tuple[NDArray, list[str]]] = {}
        for name, values in samples.items():
            array = np.asarray(values)
            dims = list(data.dims.get(name, ()))
            if len(dims) != array.ndim - 1:
                dims = [f"{name}_dim_{k}" for k in range(array.ndim - 1)]
            (replicated if name in data.observed else prior)[name] = (array, dims)
        return prior, replicated, self._plate_coords(data)

    # ------------------------------------------------------------------ calibration
    def _calibration_model(self, data: CustomData) -> CustomModel:
        """The model itself; ``map`` is refused: it gives one point, not draws to rank."""
        if self.method == "map":
            raise SpecificationError("method 'map' gives one point, not posterior draws, so "
                                     "it cannot be calibrated; calibrate 'laplace' or 'nuts'")
        return self

    def _with_simulated(self, data: CustomData, simulated: Mapping[str, NDArray]
                        ) -> CustomData:
        """The function's arguments with each observed site's simulated values in the
        argument of the same name."""
        for site in simulated:
            if site not in data.kwargs:
                raise SpecificationError(
                    f"the observed site {site!r} is not an argument of {self.name}(): "
                    "calibration passes each simulated site as the argument of its name; "
                    f"call the argument {site}")
        values = {site: np.asarray(v).astype(np.asarray(data.kwargs[site]).dtype)
                  for site, v in simulated.items()}
        return replace(data, kwargs={**data.kwargs, **values},
                       observed_data={**data.observed_data, **values})

    # ------------------------------------------------------------------ the target
    def _target(self, data: CustomData, start: Mapping[str, Any] | None, seed: int
                ) -> _Target:
        from jax.flatten_util import ravel_pytree
        from numpyro.infer.initialization import init_to_uniform, init_to_value
        from numpyro.infer.util import constrain_fn, initialize_model, log_density

        if start is not None:
            unknown = [k for k in start if k not in data.latent]
            if unknown:
                raise SpecificationError(
                    f"start values for unknown site(s) {', '.join(unknown)}; the latent "
                    f"sites: {', '.join(data.latent)}")
            strategy = init_to_value(values={k: np.asarray(v, dtype=float)
                                             for k, v in start.items()})
        else:
            strategy = init_to_uniform
        bound = partial(self._require_function("fitting"), **data.kwargs)
        try:
            info = initialize_model(jax_key(seed, Stream.INIT), bound, init_strategy=strategy)
        except Exception as error:
            raise SpecificationError(
                f"cannot initialise {self.name}(): {_one_line(error)}") from error
        z_dict = info.param_info.z
        flat, unravel = ravel_pytree(z_dict)
        given = {k: np.full(np.shape(v), k in (start or {})) for k, v in z_dict.items()}
        fixed_mask = np.asarray(ravel_pytree(given)[0], dtype=bool)

        def potential(z: Any) -> Any:
            return info.potential_fn(unravel(z))

        def neg_log_density(z: Any) -> Any:
            params = constrain_fn(bound, (), {}, unravel(z))
            return -log_density(bound, (), {}, params)[0]

        def constrain(z: Any) -> dict[str, Any]:
            return dict(info.postprocess_fn(unravel(z)))

        return _Target(potential, neg_log_density, constrain,
                       np.asarray(flat, dtype=float), fixed_mask)

    def _optimise(self, target: _Target, *, jacobian: bool, restarts: int, seed: int,
                  optimizer: str) -> MAPResult:
        """The best of SciPy's runs from the model's start and ``restarts`` random ones
        (drawn from the seed's initialisation stream)."""
        import jax
        from scipy.optimize import minimize

        started = time.perf_counter()
        objective = target.potential if jacobian else target.neg_log_density
        value_and_grad = jax.jit(jax.value_and_grad(objective))
        hvp = jax.jit(lambda z, v: jax.jvp(jax.grad(objective), (z,), (v,))[1])

        def fun(z: NDArray) -> tuple[float, NDArray]:
            value, grad = value_and_grad(z)
            value, grad = float(value), np.asarray(grad, dtype=float)
            if not np.isfinite(value) or not np.all(np.isfinite(grad)):
                return np.inf, np.zeros_like(z)
            return value, grad

        def hessp(z: NDArray, v: NDArray) -> NDArray:
            return np.nan_to_num(np.asarray(hvp(z, v), dtype=float))

        options: dict[str, Any] = (
            {"method": "trust-krylov", "hessp": hessp, "options": {"maxiter": 2000}}
            if optimizer == "newton" else
            {"method": "L-BFGS-B", "options": {"maxiter": 10000, "maxfun": 20000,
                                               "maxcor": 50}})
        rng = generator(seed, Stream.INIT)
        starts = [target.start]
        for _ in range(restarts):
            z = rng.uniform(-2.0, 2.0, size=target.start.size)
            starts.append(np.where(target.fixed, target.start, z))
        best = None
        try:
            # a trust region may overshoot into overflow before it shrinks
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                for z0 in starts:
                    if not np.isfinite(fun(z0)[0]):
                        continue
                    result = minimize(fun, z0, jac=True, **options)
                    if np.isfinite(result.fun) and (best is None or result.fun < best.fun):
                        best = result
        except SpecificationError:
            raise
        except Exception as error:  # JAX cannot compile or differentiate the model
            raise SpecificationError(
                f"cannot optimise {self.name}(): {_one_line(error)}") from error
        if best is None:
            raise SpecificationError(
                f"the log density of {self.name}() is not finite at any of {len(starts)} "
                "starting points; give start values (start={...})")
        z = np.asarray(best.x, dtype=float)
        params = {k: np.asarray(v) for k, v in jax.jit(target.constrain)(z).items()}
        return MAPResult(params, z, -float(best.fun), jacobian, bool(best.success),
                         str(best.message), int(best.nit), len(starts), optimizer,
                         time.perf_counter() - started)

    # ------------------------------------------------------------------ public
    def map(self, data: Mapping[str, Any] | pd.DataFrame | CustomData | None,
            constants: Mapping[str, Any] | None = None, *,
            start: Mapping[str, Any] | None = None, jacobian: bool = False,
            optimizer: str | None = None, restarts: int | None = None,
            seed: int | None = None) -> MAPResult:
        """The posterior mode of the model on ``data``, by optimisation on the
        unconstrained coordinates.

        Parameters
        ----------
        data, constants
            As for :meth:`fit` (or data from :meth:`prepare`).
        start, optimizer, restarts, seed
            The model's settings unless given here (see :class:`CustomModel`).
        jacobian
            False (default): the mode of the density of the parameters as written, what
            Stan's ``optimizing`` reports. True: the mode of the density of the
            unconstrained coordinates (Jacobian of the transforms included), always inside
            the support; the Laplace approximation and NUTS start there.

        Warns
        -----
        ConvergenceWarning
            When SciPy reports that the best run did not converge (often: the mode of the
            parameters as written lies on a boundary of their support).

        Notes
        -----
        The joint mode of a hierarchical model can be a poor estimate (the notes warn that
        optimisation "can easily end up with a biased result"): with ``jacobian=False`` the
        widgets' mode puts many N_initial on their bounds and α well below its posterior.
        """
        validate({"optimizer": optimizer, "restarts": restarts, "jacobian": jacobian},
                 {**self.CONSTRAINTS, "jacobian": Boolean()}, "CustomModel.map")
        prepared = data if isinstance(data, CustomData) else self.prepare(data, constants)
        seed = self.config.seed if seed is None else seed
        validate({"seed": seed}, {"seed": Integer(0)}, "CustomModel.map")
        target = self._target(prepared, self.start if start is None else start, seed)
        result = self._optimise(
            target, jacobian=jacobian, seed=seed,
            restarts=self.restarts if restarts is None else restarts,
            optimizer=self.optimizer if optimizer is None else optimizer)
        if not result.converged:
            warnings.warn(f"the optimiser stopped without converging: {result.message}",
                          ConvergenceWarning, stacklevel=2)
        return result

    def laplace(self, data: Mapping[str, Any] | pd.DataFrame | None,
                constants: Mapping[str, Any] | None = None, **settings: Any) -> CustomFit:
        """A Laplace approximation: ``replace(method="laplace", **settings).fit(data,
        constants)``.

        The mode is found as by ``map(jacobian=True)``; the covariance is the inverse of the
        Hessian of −log p(z) there (from JAX). ``chains`` × ``draws`` independent draws of z
        are carried through the constraining transforms (so a positive parameter has a
        log-normal approximation).

        Raises
        ------
        SpecificationError
            When the Hessian at the mode is not positive definite.
        """
        return self.replace(method="laplace", **settings).fit(data, constants)

    def memory_estimate(self, data: CustomData) -> MemoryEstimate:
        """The sample and deterministic sites at every draw (one draw for ``map``), the
        pointwise log likelihood (the model run at every draw at once: its values and,
        allowed for, as many intermediate ones), the Hessian of ``map`` and ``laplace``."""
        latent = sum(data.sizes[s] for s in data.latent)
        stored = sum(size for s, size in data.sizes.items() if s not in data.observed)
        other = [] if self.method == "nuts" else [("Hessian", latent * latent * VALUE * 2)]
        return self._draws_estimate(
            stored=stored, sampled=latent, pointwise=2 * data.size, observed=data.size,
            jax=True, other=other, samples=1 if self.method == "map" else None)

    def fit(self, data: Mapping[str, Any] | pd.DataFrame | CustomData | None,
            constants: Mapping[str, Any] | None = None, **columns: Any) -> CustomFit:
        """Fit the model to ``data`` (a dict of arrays and numbers or a table, with
        ``constants`` as further keyword arguments of the function) by the model's method.

        The fit warns (:class:`~poolwise.exceptions.SamplingWarning`) when the chains'
        diagnostics fail (R-hat, effective sample size, divergences), and
        (:class:`~poolwise.exceptions.ConvergenceWarning`) when the optimiser of ``map``
        or ``laplace`` did not converge.
        """
        prepared = self.prepare(data, constants, **columns)
        self.check_memory(prepared)
        started = time.perf_counter()
        config = self.config
        steer: dict[str, Any] = {"restarts": self.restarts, "seed": config.seed,
                                 "optimizer": self.optimizer}
        target = self._target(prepared, self.start, config.seed)
        mode: MAPResult | None = None
        stats: dict[str, NDArray] = {}
        if self.method == "map":
            mode = self._optimise(target, jacobian=False, **steer)
            posterior = {k: np.asarray(v)[None, None] for k, v in mode.params.items()}
            info: dict[str, Any] = {"log_density": mode.log_density,
                                    "converged": mode.converged, "optimiser": mode.message,
                                    "iterations": mode.iterations}
        elif self.method == "laplace":
            mode = self._optimise(target, jacobian=True, **steer)
            chol = _hessian_cholesky(target, mode.unconstrained)
            if chol is None:
                raise SpecificationError(
                    "the Hessian at the mode is not positive definite (a saddle point, a "
                    "parameter the data do not identify, or a mode at infinity): no "
                    "Laplace approximation; use method 'nuts'")
            eps = generator(config.seed, Stream.FIT).standard_normal(
                (config.chains * config.draws, mode.unconstrained.size))
            z = _from_white(mode.unconstrained, chol, eps)
            posterior = _constrain_draws(target, z.reshape(config.chains, config.draws, -1))
            info = {"log_density": mode.log_density, "converged": mode.converged,
                    "optimiser": mode.message}
        else:
            z, stats, info, mode = self._nuts(target, steer)
            posterior = _constrain_draws(target, z)
        if mode is not None and not mode.converged and self.method != "nuts":
            warnings.warn(f"the optimiser stopped without converging: {mode.message}",
                          ConvergenceWarning, stacklevel=2)
        info["seconds"] = time.perf_counter() - started
        tree = self._tree(prepared, posterior, stats, info, mode)
        fit = CustomFit(self, prepared, tree, info, mode)
        finish_fit(fit, stacklevel=2)
        return fit

    # ------------------------------------------------------------------ pieces of fit
    def _nuts(self, target: _Target, steer: dict[str, Any]
              ) -> tuple[NDArray, dict[str, NDArray], dict[str, Any], MAPResult | None]:
        """NUTS from the mode (or where NumPyro starts): z, statistics, info, the mode."""
        config = self.config
        rng = generator(config.seed, Stream.INIT, 1)
        mode: MAPResult | None = None
        whiten: tuple[NDArray, NDArray] | None = None
        if self.init == "map":
            mode = self._optimise(target, jacobian=True, **steer)
            chol = _hessian_cholesky(target, mode.unconstrained)
            if chol is not None:
                eps = rng.standard_normal((config.chains, mode.unconstrained.size))
                if self.precondition:
                    whiten, starts = (mode.unconstrained, chol), eps
                    how = ("posterior mode, each chain at a draw of the Laplace "
                           "approximation; NUTS on coordinates whitened by it")
                else:
                    starts = _from_white(mode.unconstrained, chol, eps)
                    how = "posterior mode, each chain at a draw of the Laplace approximation"
            else:
                jitter = rng.uniform(-MODE_JITTER, MODE_JITTER,
                                     (config.chains, mode.unconstrained.size))
                starts = mode.unconstrained + jitter
                how = (f"posterior mode ± {MODE_JITTER} (the Hessian there is not positive "
                       "definite)")
        else:
            starts = np.where(target.fixed, target.start,
                              rng.uniform(-2.0, 2.0, (config.chains, target.start.size)))
            how = "uniform in (−2, 2) on the unconstrained scale"
        z, stats, timings = self._run_nuts(target, starts, whiten)
        info: dict[str, Any] = {"divergences": int(np.sum(stats["diverging"])), "init": how,
                                "preconditioned": whiten is not None,
                                "target_accept": config.target_accept, **timings}
        if mode is not None:
            info |= {"map_log_density": mode.log_density, "map_converged": mode.converged,
                     "map_seconds": mode.seconds}
        return z, stats, info, mode

    def _run_nuts(self, target: _Target, starts: NDArray,
                  whiten: tuple[NDArray, NDArray] | None
                  ) -> tuple[NDArray, dict[str, NDArray], dict[str, float]]:
        """NUTS on z, or on w with z = mode + L⁻ᵀ w when ``whiten`` = (mode, L); returns z."""
        import jax
        import jax.numpy as jnp
        from jax.scipy.linalg import solve_triangular

        from poolwise.inference.nuts import run_chains

        potential = target.potential
        if whiten is not None:
            centre, upper = jnp.asarray(whiten[0]), jnp.asarray(whiten[1].T)

            def potential(w: Any) -> Any:
                return target.potential(centre + solve_triangular(upper, w, lower=False))

        try:
            value = float(jax.jit(potential)(starts[0]))
        except Exception as error:  # JAX cannot compile the model
            raise SpecificationError(
                f"JAX cannot compile {self.name}(): {_one_line(error)}") from error
        if not np.isfinite(value):
            raise SpecificationError(
                f"the log density of {self.name}() is not finite where the chains start")
        timings: dict[str, float] = {}
        z, stats = run_chains(lambda z, _: potential(z), starts, self.config,
                              self.config.target_accept, timings=timings)
        if whiten is not None:
            z = _from_white(whiten[0], whiten[1], z)
        return z, stats, timings

    def _tree(self, data: CustomData, posterior: dict[str, NDArray],
              stats: dict[str, NDArray], info: dict[str, Any], mode: MAPResult | None
              ) -> xr.DataTree:
        """The fit's DataTree: posterior, log likelihood, observed and constant data, sampler
        statistics; the settings, the data's structure and what was found in its attrs
        (with the graph, the priors' description and the equations, which a saved fit
        cannot work out again without the function)."""
        function = self._require_function("fitting")
        ordered = {k: posterior[k] for k in (*data.latent, *posterior) if k in posterior}
        groups: dict[str, dict[str, NDArray]] = {
            "posterior": ordered, "log_likelihood": self._log_likelihood(data, ordered),
            "observed_data": dict(data.observed_data)}
        sites = set(data.dims)
        constant = {k: np.asarray(v) for k, v in data.kwargs.items()
                    if np.asarray(v).dtype.kind in "biuf" and k not in sites
                    and not any(_same(v, observed) for observed in data.observed_data.values())}
        if constant:
            groups["constant_data"] = constant
        if stats:
            groups["sample_stats"] = stats
        dims = {k: list(d) for k, d in data.dims.items() if k in ordered or k in data.observed}
        for k, values in ordered.items():  # deterministic sites the trace did not size
            if k not in dims or len(dims[k]) != values.ndim - 2:
                dims[k] = [f"{k}_dim_{i}" for i in range(values.ndim - 2)]
        dims |= {k: [f"{k}_dim_{i}" for i in range(v.ndim)] for k, v in constant.items()}
        texts = _site_texts(function, data.kwargs, self.name)
        try:
            graph: dict[str, Any] | None = _graph(function, data.kwargs, self.name,
                                                  self._plate_labels(data)).to_dict()
            graph_error = None
        except SpecificationError as error:
            graph, graph_error = None, str(error)
        ordered_texts = ([t for t in texts if t.observed]
                         + [t for t in texts if not t.observed][::-1])
        fitted = {"info": info, "mode": mode.to_dict() if mode is not None else None,
                  "prior": "; ".join(t.plain() for t in texts if not t.observed),
                  "equations": [t.latex() for t in ordered_texts], "graph": graph,
                  "graph_error": graph_error}
        attrs = record_attrs(self.kind, self._saved_spec(), data.to_dict(), fitted)
        return _arviz.make_datatree(groups, dims=dims, coords=self._plate_coords(data),
                                    attrs=attrs)

    def _log_likelihood(self, data: CustomData, posterior: Mapping[str, NDArray]
                        ) -> dict[str, NDArray]:
        """log p(y_i | parameters) of every observed site at every draw (for LOO)."""
        from numpyro.infer import log_likelihood

        chains, draws = next(iter(posterior.values())).shape[:2]
        latent = {k: v.reshape(-1, *v.shape[2:]) for k, v in posterior.items()
                  if k in data.latent}
        bound = partial(self._require_function("fitting"), **data.kwargs)
        values = log_likelihood(bound, latent, batch_ndims=1)
        return {k: np.asarray(v).reshape(chains, draws, *np.shape(v)[1:])
                for k, v in values.items() if k in data.observed}


def _default_name(model: Callable[..., Any] | str) -> str:
    """``file.py:function`` for a file, the function's name otherwise."""
    if isinstance(model, str):
        path, sep, function = model.rpartition(":")
        return f"{Path(path).name}:{function}" if sep else model.rsplit(".", 1)[-1]
    return str(getattr(model, "__name__", type(model).__name__))


def _whole(values: NDArray) -> bool:
    """Whether every value is a finite whole number."""
    array = np.asarray(values, dtype=float)
    return bool(np.all(np.isfinite(array)) and np.all(array == np.round(array)))


def _same(value: Any, observed: NDArray) -> bool:
    """Whether a data argument is an observed site's values (not a constant)."""
    array = np.asarray(value)
    return value is observed or (array.shape == observed.shape
                                 and bool(np.array_equal(array, observed)))


def _hessian_cholesky(target: _Target, z: NDArray) -> NDArray | None:
    """The Cholesky factor L of the Hessian H = L Lᵀ of −log p at z, or None."""
    import jax

    hessian = np.asarray(jax.jit(jax.hessian(target.potential))(z), dtype=float)
    hessian = (hessian + hessian.T) / 2
    if not np.all(np.isfinite(hessian)):
        return None
    try:
        return np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return None


def _constrain_draws(target: _Target, z: NDArray) -> dict[str, NDArray]:
    """The latent and deterministic sites at every draw of z (chains, draws, dim)."""
    import jax

    chains, draws, dim = z.shape
    values = jax.jit(jax.vmap(target.constrain))(z.reshape(chains * draws, dim))
    return {k: np.asarray(v).reshape(chains, draws, *np.shape(v)[1:])
            for k, v in values.items()}


# ----------------------------------------------------------------------------- the fit
@dataclass(frozen=True, repr=False)  # Fit.__repr__: one line, not the tree
class CustomFit(Fit):
    """Draws of a :class:`CustomModel`.

    ``tree`` holds ``posterior`` (latent and deterministic sites, dims ``chain``, ``draw``
    and the plates), ``log_likelihood`` (each observed site, pointwise), ``observed_data``,
    ``constant_data`` (the numeric data arguments), ``posterior_predictive`` and, for NUTS,
    ``sample_stats``; its attributes hold the graph, the priors' description and the
    equations as worked out at fit time. ``mode`` is the optimum the fit started from or
    consists of (None for NUTS started at the prior).
    """

    mode: MAPResult | None = None

    model: CustomModel
    data: CustomData

    #: divergences that smaller steps do not remove are most often a funnel: a group-level
    #: scale and the parameters it scales, drawn together (Betancourt & Girolami 2015)
    DIVERGENCE_HINT: ClassVar[str | None] = (
        "if divergences remain, the model likely has a funnel: write its group-level "
        "parameters non-centred, e.g. z = numpyro.sample('z', dist.Normal(0, 1)) in the "
        "plate and theta = numpyro.deterministic('theta', mu + tau * z) instead of "
        "numpyro.sample('theta', dist.Normal(mu, tau)) (or wrap the model in "
        "numpyro.handlers.reparam(config={'theta': LocScaleReparam(0)}))")

    @property
    def group_dims(self) -> tuple[str, ...]:
        """The plates (their labels go in the summary's ``group``)."""
        return tuple(self.data.plates)

    def point_groupings(self) -> dict[str, NDArray]:
        """The numeric data arguments shaped like the one observed site (a group index
        per observation); none when the model observes several sites."""
        if len(self.data.observed) != 1 or "constant_data" not in self.tree.children:
            return {}
        shape = np.shape(self.data.observed_data[self.data.observed[0]])
        constant = self.tree["constant_data"].to_dataset()
        return {str(name): np.asarray(values.values) for name, values in
                constant.data_vars.items() if values.shape == shape}

    # ------------------------------------------------------------------ as fitted
    def _fitted(self) -> dict[str, Any]:
        return FitRecord(self.tree).fitted

    def describe_prior(self) -> str:
        """The priors as the function stated them at fit time."""
        return str(self._fitted()["prior"])

    def equations(self) -> list[str]:
        return list(self._fitted()["equations"])

    def graph(self) -> ModelGraph:
        """The graphical model, as worked out at fit time; the reason where there is none
        (crossed plates, a structure that changes from run to run)."""
        fitted = self._fitted()
        if fitted["graph"] is None:
            raise SpecificationError(fitted["graph_error"])
        return ModelGraph.from_dict(fitted["graph"])

    # ------------------------------------------------------------------ predictions
    def _replicate(self, rng: np.random.Generator) -> dict[str, tuple[NDArray, list[str]]]:
        """Each observed site drawn afresh at every posterior draw (NumPyro resimulation:
        the observed sites made latent, the parameters substituted)."""
        import jax
        from numpyro import handlers

        function = self.model._require_function(
            "posterior_predictive(seed=...) (without a seed: the draws stored at fit time)")
        bound = _resimulate(partial(function, **self.data.kwargs))
        posterior = self.posterior
        chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
        latent = {k: jax.numpy.asarray(self.draws(k).reshape(chains * draws,
                                                             *self.draws(k).shape[2:]))
                  for k in self.data.latent}
        observed = self.data.observed

        def one(key: Any, params: dict[str, Any]) -> dict[str, Any]:
            model = handlers.substitute(handlers.seed(bound, key), data=params)
            trace = handlers.trace(model).get_trace()
            return {name: trace[name]["value"] for name in observed}

        keys = jax.random.split(_jax_key_from(rng), chains * draws)
        values = jax.jit(jax.vmap(one))(keys, latent)
        return {name: (np.asarray(values[name]).reshape(
                    chains, draws, *self.data.observed_data[name].shape),
                       list(self.data.dims[name])) for name in observed}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_tree(cls, tree: xr.DataTree) -> CustomFit:
        """The saved fit, with a model that has its settings but no function."""
        record = FitRecord(tree)
        spec = {k: v for k, v in record.model.items() if k != "reloadable"}
        model = CustomModel._without_function(spec)
        data = CustomData.from_record(record.data, tree["observed_data"].to_dataset())
        mode = record.fitted["mode"]
        return cls(model, data, tree, record.fitted["info"],
                   MAPResult.from_dict(mode) if mode is not None else None)


# ----------------------------------------------------------------------------- graphs
#: names written as Greek letters in the graph's labels
GREEK = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
         "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi",
         "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma",
         "Upsilon", "Phi", "Psi", "Omega")
#: the letters that index plates, outermost first
PLATE_INDICES = ("i", "j", "k", "l", "m", "n", "p", "q")


def _tex_word(word: str) -> str:
    if word in GREEK:
        return "\\" + word
    escaped = re.sub(r"[&~\\]", " ", word)  # no mathtext escape for these
    escaped = re.sub(r"([#$%{}^_])", r"\\\1", escaped)
    return rf"\mathrm{{{escaped}}}" if escaped else ""


def latex_label(name: str, indices: Sequence[str] = ()) -> str:
    r"""A site's name as a mathtext label: Greek names as letters (``alpha`` → ``$\alpha$``),
    others upright; the part after the first underscore and the plate indices as a subscript.

    >>> latex_label("sigma_y", ["i"])
    '$\\sigma_{\\mathrm{y},i}$'
    >>> latex_label("N_initial")
    '$\\mathrm{N}_{\\mathrm{initial}}$'
    """
    base, _, rest = name.partition("_")
    if not base:  # a name starting with an underscore
        base, rest = name, ""
    subscript = [r"\_".join(_tex_word(part) for part in rest.split("_"))] if rest else []
    subscript += list(indices)
    text = _tex_word(base)
    if subscript:
        text += "_{" + ",".join(subscript) + "}"
    return f"${text}$"


def model_graph_from_numpyro(model_fn: Callable[..., Any], /, **data: Any) -> ModelGraph:
    """The graphical model of a NumPyro model function called with ``data``.

    Nodes are the sample sites, in the order the model draws them (observed sites
    ``"observed"``, the others ``"latent"``), and the numeric data arguments that their
    densities depend on (``"fixed"``; not those used as observed values or only for sizes).
    Edges come from NumPyro's :func:`~numpyro.infer.inspect.get_model_relations` (which
    traces through deterministic computations) and from the provenance of each site's log
    density in the data. Plates are the model's ``numpyro.plate`` contexts, nested where
    one holds only sites that are also in another, labelled ``widgets, i = 1, …, 100``.

    Raises
    ------
    SpecificationError
        When the structure cannot be worked out: the model fails when traced, two runs with
        different seeds have different sites or shapes (a dynamic structure), or plates
        cross. Callers can print the message and carry on without a graph.
    """
    if not callable(model_fn):
        raise TypeError(f"model_fn must be a function, not {type(model_fn).__name__}")
    _x64()
    kwargs = {k: _as_value(v) for k, v in data.items()}
    return _graph(model_fn, kwargs, str(getattr(model_fn, "__name__", "model")))


def _graph(model_fn: Callable[..., Any], kwargs: Mapping[str, Any], title: str,
           labels: Mapping[str, Any] | None = None) -> ModelGraph:
    """:func:`model_graph_from_numpyro`, with the plates' ``labels`` where given (``widgets,
    $i$ = w1, w2, …, w100``)."""
    from numpyro.infer.inspect import get_model_relations

    name = getattr(model_fn, "__name__", "model")
    bound = partial(model_fn, **kwargs)
    try:
        first, second = _trace(bound, 0), _trace(bound, 1)
    except Exception as error:  # anything the user's model raises when traced
        raise SpecificationError(
            f"cannot draw the graph of {name}(): tracing it failed ({_one_line(error)})"
        ) from error
    shapes = [{k: (s["type"], np.shape(s["value"]) if s["type"] != "plate" else s["args"])
               for k, s in trace.items()} for trace in (first, second)]
    if shapes[0] != shapes[1]:
        changed = sorted(set(shapes[0].items()) ^ set(shapes[1].items()))
        raise SpecificationError(
            f"cannot draw the graph of {name}(): its structure changes from run to run "
            f"(sites {', '.join(dict.fromkeys(k for k, _ in changed))} differ between two "
            "traces); a graph needs a fixed set of sites")
    try:
        relations = get_model_relations(bound)
    except Exception as error:  # e.g. Python control flow on a parameter's value
        raise SpecificationError(
            f"cannot draw the graph of {name}(): its dependencies cannot be traced "
            f"({_one_line(error)}); a graph needs a structure that does not depend on the "
            "values of the parameters") from error
    samples = _sample_sites(first)
    frames = {s: list(first[s].get("cond_indep_stack", [])) for s in samples}
    edges = [(parent, child) for child in samples
             for parent in relations["sample_sample"].get(child, []) if parent in samples]
    fixed, fixed_edges, fixed_frames = _data_nodes(bound, model_fn, kwargs, first)
    frames |= fixed_frames
    plates, chains = _plates(frames, name)
    letters = {plate.name: PLATE_INDICES[i % len(PLATE_INDICES)]
               for i, plate in enumerate(plates)}
    nodes = []
    for site in samples:
        kind = "observed" if first[site]["is_observed"] else "latent"
        label = latex_label(site, [letters[p] for p in chains[site]])
        nodes.append(GraphNode(site, label, kind))  # type: ignore[arg-type]
    for data_name in fixed:
        label = latex_label(data_name, [letters[p] for p in chains[data_name]])
        nodes.append(GraphNode(data_name, label, "fixed"))
    labels = labels or {}
    labelled = tuple(Plate(p.name, f"{_plain(p.name)}, ${letters[p.name]}$ = "
                                   f"{_plain(_label_range(labels[p.name]))}"
                           if p.name in labels else
                           f"{_plain(p.name)}, ${letters[p.name]} = 1, \\ldots, {p.label}$",
                           p.nodes, p.inside) for p in plates)
    return ModelGraph(tuple(nodes), tuple(edges + fixed_edges), labelled, _plain(title))


def _label_range(labels: Sequence[Any]) -> str:
    """A plate's labels in a few words: all of up to four, else ``w1, w2, …, w100``."""
    words = [str(label) for label in labels]
    return ", ".join(words if len(words) <= 4 else [*words[:2], "…", words[-1]])


def _plain(text: str) -> str:
    """Text for matplotlib outside maths: a dollar sign would start maths."""
    return text.replace("$", r"\$")


def _data_nodes(bound: Callable[[], Any], model_fn: Callable[..., Any],
                kwargs: Mapping[str, Any], trace: Mapping[str, Any]
                ) -> tuple[list[str], list[tuple[str, str]], dict[str, list[Any]]]:
    """The data arguments that sites' log densities depend on: names, edges and the plate
    frames each sits in (those of its children's common plates that its shape fills)."""
    from numpyro import handlers
    from numpyro.ops.provenance import eval_provenance

    samples = _sample_sites(trace)
    latent = {s: trace[s]["value"] for s in samples if not trace[s]["is_observed"]}
    observed_values = [trace[s]["value"] for s in samples if trace[s]["is_observed"]]

    def used_as_data(value: Any) -> bool:
        return any(value is v or (np.shape(value) == np.shape(v)
                                  and np.array_equal(np.asarray(value), np.asarray(v)))
                   for v in observed_values)

    names: list[str] = []
    edges: list[tuple[str, str]] = []
    frames: dict[str, list[Any]] = {}
    for key, value in kwargs.items():
        array = np.asarray(value) if not hasattr(value, "dtype") else value
        if getattr(array, "dtype", np.dtype(object)).kind not in "iuf" or used_as_data(value):
            continue

        def log_probs(key: str = key, **tracked: Any) -> dict[str, Any]:
            run = partial(model_fn, **{**kwargs, **tracked})
            model = handlers.substitute(handlers.seed(run, rng_seed=0), data=latent)
            sites = handlers.trace(model).get_trace()
            return {s: site["fn"].log_prob(site["value"]) for s, site in sites.items()
                    if site["type"] == "sample"}

        try:
            provenance = eval_provenance(log_probs, **{key: array})
        except Exception:  # used in Python control flow or as a size: not a node
            continue
        children = [s for s in samples if key in provenance.get(s, frozenset())]
        if not children:
            continue
        node = key if key not in trace else f"{key}_data"
        names.append(node)
        edges += [(node, child) for child in children]
        common = [f for f in trace[children[0]].get("cond_indep_stack", [])
                  if all(f in trace[c].get("cond_indep_stack", []) for c in children)]
        shape = np.shape(array)
        frames[node] = [f for f in common
                        if len(shape) >= -f.dim and shape[len(shape) + f.dim] == f.size]
    return names, edges, frames


def _plates(frames: Mapping[str, list[Any]], name: str
            ) -> tuple[list[Plate], dict[str, list[str]]]:
    """The plates, nested, and each node's plates outermost first. ``Plate.label`` here is
    the plate's size (the caller writes the label)."""
    members: dict[str, set[str]] = {}
    info: dict[str, tuple[int, int]] = {}
    for node, stack in frames.items():
        for frame in stack:
            members.setdefault(frame.name, set()).add(node)
            info[frame.name] = (int(frame.size), int(frame.dim))
    chains: dict[str, list[str]] = {}
    for node, stack in frames.items():
        names = sorted({f.name for f in stack},
                       key=lambda p: (-len(members[p]), info[p][1]))
        chains[node] = names
    parent: dict[str, str | None] = {}
    for chain in chains.values():
        for depth, plate in enumerate(chain):
            outer = chain[depth - 1] if depth else None
            if parent.setdefault(plate, outer) != outer:
                raise SpecificationError(
                    f"cannot draw the graph of {name}(): plates {plate!r} and "
                    f"{parent[plate] or outer!r} cross (some sites are in both, others in "
                    "one only), which nested boxes cannot show")
    order = list(dict.fromkeys(p for chain in chains.values() for p in chain))
    order.sort(key=lambda p: len(_ancestry(p, parent)))
    plates = [Plate(p, str(info[p][0]),
                    tuple(n for n, chain in chains.items() if chain and chain[-1] == p),
                    parent[p]) for p in order]
    return plates, chains


def _ancestry(plate: str, parent: Mapping[str, str | None]) -> list[str]:
    chain = [plate]
    while parent.get(chain[-1]) is not None:
        chain.append(parent[chain[-1]])  # type: ignore[arg-type]
    return chain
