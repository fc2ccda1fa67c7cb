r"""Custom models: a NumPyro model function, fitted and summarised like the built-in families.

A custom model is any NumPyro model function: it draws its parameters with
``numpyro.sample(name, distribution)`` and its data with
``numpyro.sample(name, distribution, obs=data)``. poolwise calls it with the data as
**keyword arguments**: a dict's keys, or a table's columns by name (each column a NumPy
array), plus any fixed values given to :class:`CustomModel` as further keywords
(``CustomModel(model, table, N_initial_max=10.0)``). A table's columns that the function
does not take are ignored (and listed in ``CustomModel.ignored``); a dict's keys must all
be arguments of the function, unless it takes ``**kwargs``.

The lecture's workflow (notes 004, the radioactive widgets fitted with Stan's
``optimizing`` then ``sampling``) is the default of :meth:`CustomModel.fit`:

1. the posterior mode by L-BFGS (:meth:`CustomModel.map`): SciPy's ``L-BFGS-B`` on the
   unconstrained coordinates, with the gradient from JAX, from the model's own
   initialisation and a few random restarts (the best optimum is kept);
2. a Laplace approximation there (:meth:`CustomModel.laplace`): the Hessian of the
   negative log density in the unconstrained coordinates gives a normal approximation,
   whose draws are carried back through the constraining transforms;
3. NUTS (poolwise's jitted chains, :func:`poolwise.inference.nuts.run_chains`) started at
   the mode, each chain from its own draw of the Laplace approximation.

Two modes. The mode of the density of the parameters as written (constrained space, no
Jacobian) is what Stan's ``optimizing`` reports and what :meth:`CustomModel.map` returns
by default (``jacobian=False``). The Laplace approximation and the start of NUTS use the
mode of the density of the unconstrained coordinates (``jacobian=True``), which always lies
inside the support (a bounded parameter whose likelihood is flat has its constrained mode
on a boundary, where the unconstrained coordinate is infinite). For an unconstrained model
the two are the same.

>>> import numpyro, numpyro.distributions as dist
>>> def normal_mean(y, sigma):
...     mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
...     with numpyro.plate("obs", len(y)):
...         numpyro.sample("y", dist.Normal(mu, sigma), obs=y)
>>> model = CustomModel(normal_mean, {"y": [1.0, 2.0, 3.0], "sigma": 1.0})
>>> round(float(model.map().params["mu"]), 3)   # (0/100 + 6/1) / (1/100 + 3/1)
1.993
>>> graph = model_graph_from_numpyro(normal_mean, y=[1.0, 2.0], sigma=1.0)
>>> [(node.name, node.kind) for node in graph.nodes]
[('mu', 'latent'), ('y', 'observed'), ('sigma', 'fixed')]
>>> print(graph.plates[0].label)
obs, $i = 1, \ldots, 2$
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise._version import __version__
from poolwise.exceptions import ConvergenceWarning, SpecificationError
from poolwise.results.summary import check_prob as _check_prob
from poolwise.results.summary import posterior_draws, posterior_summary
from poolwise.results.graph import GraphNode, ModelGraph, Plate
from poolwise.inference.base import SamplerConfig

__all__ = ["CUSTOM_METHODS", "CustomFit", "CustomModel", "MAPResult", "load_model",
           "model_graph_from_numpyro"]

#: how a custom model can be fitted
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
#: statistics of the posterior predictive check, each a function of one data array
PPC_STATISTICS: dict[str, Callable[[NDArray], NDArray]] = {
    "mean": lambda y: np.mean(y, axis=-1),
    "sd": lambda y: np.std(y, axis=-1, ddof=1) if y.shape[-1] > 1 else np.zeros(y.shape[:-1]),
    "min": lambda y: np.min(y, axis=-1),
    "max": lambda y: np.max(y, axis=-1),
}


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
        raise SpecificationError(
            f"name the model as FILE.py:FUNCTION, e.g. my_model.py:model; got {spec!r}")
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
        CustomModel(function, data)
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
    """The keyword arguments to call the model with, and the table columns it ignores."""
    from_table = isinstance(data, pd.DataFrame)
    if data is None:
        given: dict[str, Any] = {}
    elif from_table:
        given = {str(column): data[column].to_numpy() for column in data.columns}
    elif isinstance(data, Mapping):
        given = {str(key): _as_value(value) for key, value in data.items()}
    else:
        raise TypeError(f"data must be a dict of arrays or a pandas DataFrame, not "
                        f"{type(data).__name__}")
    for key, value in fixed.items():
        if key in given:
            raise SpecificationError(f"{key!r} is given twice, in the data and as a keyword")
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
        raise SpecificationError(
            f"{name}() has no argument {', '.join(map(repr, unknown))}; its arguments: "
            f"{', '.join(p for p in parameters) or 'none'}")
    required = [p.name for p in parameters.values() if p.default is inspect.Parameter.empty
                and p.kind not in (inspect.Parameter.VAR_POSITIONAL,)]
    missing = [p for p in required if p not in given]
    if missing:
        have = ", ".join(given) or "nothing"
        raise SpecificationError(
            f"{name}() needs {', '.join(map(repr, missing))}, which the data do not have "
            f"(the data give: {have})")
    return {k: v for k, v in given.items() if k not in ignored}, ignored


# -------------------------------------------------------------------------- tracing
def _x64() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)


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
    """The posterior mode found by L-BFGS.

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


def _resimulate(fn: Callable[..., Any]) -> Any:
    """``fn`` under a NumPyro effect handler that turns observed sites into latent ones, so
    that they are drawn afresh (the posterior predictive)."""
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


# --------------------------------------------------------------------------- the model
class CustomModel:
    """A NumPyro model function with its data, ready to fit.

    Parameters
    ----------
    model_fn
        The model: a function that draws parameters with ``numpyro.sample`` and at least
        one observed site ``numpyro.sample(name, dist, obs=...)``; deterministic sites
        (``numpyro.deterministic``) are kept in the posterior.
    data
        A dict of arrays or numbers, or a DataFrame whose columns are passed as arrays,
        all as keyword arguments named as the keys or columns. None: the model takes no
        data arguments (or gets them all as ``fixed``).
    name
        A name for tables and titles (default: the function's name).
    coords
        Labels for the plates, ``{"widgets": ids}``, used in the summary's ``group``
        column (default 0, 1, 2, ...).
    **fixed
        Further keyword arguments for the model, e.g. a known constant.

    Raises
    ------
    SpecificationError
        When the data do not fit the function's arguments, calling it on them fails, or it
        is not a model (no sample sites, none observed, discrete or ``param`` sites).
    """

    def __init__(self, model_fn: Callable[..., Any],
                 data: Mapping[str, Any] | pd.DataFrame | None = None, *,
                 name: str | None = None, coords: Mapping[str, Sequence[Any]] | None = None,
                 **fixed: Any) -> None:
        if not callable(model_fn):
            raise TypeError(f"model_fn must be a function, not {type(model_fn).__name__}")
        _x64()
        self.model_fn = model_fn
        self.name: str = name or str(getattr(model_fn, "__name__", "model"))
        self.kwargs, self.ignored = _model_kwargs(model_fn, data, fixed)
        trace = self._trace_or_raise(0)
        _check_model(self.name, trace)
        self.latent = tuple(s for s in _sample_sites(trace) if not trace[s]["is_observed"])
        self.observed = tuple(s for s in _sample_sites(trace) if trace[s]["is_observed"])
        self.observed_data = {s: np.asarray(trace[s]["value"]) for s in self.observed}
        self.plates = {site["name"]: int(site["args"][0]) for site in trace.values()
                       if site["type"] == "plate"}
        self.dims = {s: _site_dims(s, tuple(np.shape(site["value"])),
                                   site.get("cond_indep_stack", []))
                     for s, site in trace.items() if site["type"] in ("sample", "deterministic")}
        self.distributions = {s: trace[s]["fn"] for s in self.latent}
        self.coords = {k: np.asarray(v) for k, v in (coords or {}).items()}
        for plate, labels in self.coords.items():
            if plate not in self.plates:
                raise SpecificationError(
                    f"coords name an unknown plate {plate!r}; the model's plates: "
                    f"{', '.join(self.plates) or 'none'}")
            if len(labels) != self.plates[plate]:
                raise SpecificationError(
                    f"plate {plate!r} has {self.plates[plate]} elements but "
                    f"{len(labels)} labels were given")

    def __repr__(self) -> str:
        return f"CustomModel({self.name}, latent={list(self.latent)}, " \
               f"observed={list(self.observed)})"

    # ------------------------------------------------------------------ helpers
    def _bound(self) -> Callable[[], Any]:
        return partial(self.model_fn, **self.kwargs)

    def _trace_or_raise(self, seed: int) -> dict[str, Any]:
        try:
            return _trace(self._bound(), seed)
        except SpecificationError:
            raise
        except Exception as error:  # whatever the user's function raises
            raise SpecificationError(
                f"calling {self.name}() on the data failed: {_one_line(error)}") from error

    def describe_prior(self) -> str:
        """The priors of the latent sites, e.g. ``alpha ~ HalfNormal(scale=1)``."""
        parts = []
        for site, distribution in self.distributions.items():
            while hasattr(distribution, "base_dist") and type(distribution).__name__ in (
                    "Independent", "ExpandedDistribution", "MaskedDistribution"):
                distribution = distribution.base_dist
            args = []
            for arg in getattr(distribution, "arg_constraints", {}):
                value = getattr(distribution, arg, None)
                if value is None:
                    continue
                array = np.asarray(value)
                if array.size == 1 or np.all(array == array.ravel()[0]):
                    args.append(f"{arg}={float(array.ravel()[0]):g}")
                else:
                    args.append(f"{arg}=<{array.size} values>")
            dist_name = type(distribution).__name__
            parts.append(f"{site} ~ {dist_name}({', '.join(args)})")
        return "; ".join(parts)

    def _target(self, start: Mapping[str, Any] | None, seed: int) -> _Target:
        import jax
        from jax.flatten_util import ravel_pytree
        from numpyro.infer.initialization import init_to_uniform, init_to_value
        from numpyro.infer.util import constrain_fn, initialize_model, log_density

        if start is not None:
            unknown = [k for k in start if k not in self.latent]
            if unknown:
                raise SpecificationError(
                    f"start values for unknown site(s) {', '.join(unknown)}; the latent "
                    f"sites: {', '.join(self.latent)}")
            strategy = init_to_value(values={k: np.asarray(v, dtype=float)
                                             for k, v in start.items()})
        else:
            strategy = init_to_uniform
        bound = self._bound()
        try:
            info = initialize_model(jax.random.PRNGKey(seed), bound, init_strategy=strategy)
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
        import jax
        from scipy.optimize import minimize

        if optimizer not in OPTIMIZERS:
            raise SpecificationError(
                f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if isinstance(restarts, bool) or not isinstance(restarts, (int, np.integer)) \
                or restarts < 0:
            raise SpecificationError(f"restarts must be an integer ≥ 0, got {restarts!r}")
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
        rng = np.random.default_rng(seed)
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
    def map(self, *, start: Mapping[str, Any] | None = None, jacobian: bool = False,
            optimizer: str = "newton", restarts: int = RESTARTS, seed: int = 0
            ) -> MAPResult:
        """The posterior mode, by optimisation on the unconstrained coordinates.

        Parameters
        ----------
        start
            Values to start from for some latent sites, e.g. ``{"alpha": 0.05}`` (the
            notes start Stan's optimiser at the true α); the others start as NumPyro
            initialises them.
        jacobian
            False (default): the mode of the density of the parameters as written, what
            Stan's ``optimizing`` reports. True: the mode of the density of the
            unconstrained coordinates (Jacobian of the transforms included), always inside
            the support; the Laplace approximation and NUTS start there.
        optimizer
            ``"newton"`` (default): SciPy's trust-region Newton method (``trust-krylov``)
            with exact Hessian-vector products from JAX; ``"lbfgs"``: SciPy's L-BFGS-B with
            JAX gradients. On the widgets (101 parameters) the first takes 50-70 iterations,
            L-BFGS 900-3500, as a hierarchical posterior is badly conditioned.
        restarts
            Further runs of the optimiser from random starts (uniform in (−2, 2) on every
            unconstrained coordinate not given in ``start``); the best optimum is kept.
        seed
            Seeds the model's initialisation and the restarts.

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
        result = self._optimise(self._target(start, seed), jacobian=jacobian,
                                restarts=restarts, seed=seed, optimizer=optimizer)
        if not result.converged:
            warnings.warn(f"the optimiser stopped without converging: {result.message}",
                          ConvergenceWarning, stacklevel=2)
        return result

    def laplace(self, *, draws: int = 1000, chains: int = 1, seed: int = 0,
                start: Mapping[str, Any] | None = None, optimizer: str = "newton",
                restarts: int = RESTARTS) -> CustomFit:
        """A Laplace approximation: normal in the unconstrained coordinates at their mode.

        The mode is found as by ``map(jacobian=True)``; the covariance is the inverse of the
        Hessian of −log p(z) there (from JAX). ``chains`` × ``draws`` independent draws of z
        are carried through the constraining transforms (so a positive parameter has a
        log-normal approximation). Same as ``fit(method="laplace")``.

        Raises
        ------
        SpecificationError
            When the Hessian at the mode is not positive definite.
        """
        return self.fit(method="laplace", draws=draws, chains=chains, seed=seed,
                        start=start, optimizer=optimizer, restarts=restarts)

    def fit(self, method: str = "nuts", *, draws: int = 1000, chains: int = 4,
            warmup: int = 1000, seed: int = 0, init: str = "map",
            start: Mapping[str, Any] | None = None, optimizer: str = "newton",
            restarts: int = RESTARTS, precondition: bool = True,
            target_accept: float = 0.8, progress: bool = False) -> CustomFit:
        """Fit the model by ``"nuts"`` (default), ``"map"`` or ``"laplace"``.

        ``nuts``
            ``chains`` × (``warmup`` + ``draws``) iterations of poolwise's jitted NUTS. With
            ``init="map"`` (default) the chains start at the unconstrained mode, each at
            its own draw of the Laplace approximation there, and (``precondition=True``)
            NUTS runs on the whitened coordinates w = Lᵀ(z − mode), where H = L Lᵀ is the
            Hessian at the mode: a linear change of variables (constant Jacobian, the same
            posterior) that gives the sampler the Laplace covariance as a dense mass
            matrix, on top of its own diagonal adaptation. On the widgets it halves or
            thirds the sampling time (tree depth 7 → 5-6). Where the Hessian is not
            positive definite the chains start at the mode ± 0.1, unwhitened.
            ``init="prior"``: the chains start where NumPyro would start them (uniform in
            (−2, 2) on the unconstrained scale), unwhitened.
        ``map``
            The mode of :meth:`map` (``jacobian=False``) as a single draw.
        ``laplace``
            See :meth:`laplace`.

        ``start``, ``optimizer`` and ``restarts`` steer the optimiser (see :meth:`map`).
        The fit warns (:class:`~poolwise.exceptions.SamplingWarning`) when the chains'
        diagnostics fail (R-hat, effective sample size, divergences).
        """
        from poolwise.results.diagnostics import check_diagnostics

        if method not in CUSTOM_METHODS:
            raise SpecificationError(
                f"unknown method {method!r} for a custom model; valid: "
                f"{', '.join(CUSTOM_METHODS)}")
        if init not in INIT_CHOICES:
            raise SpecificationError(
                f"unknown init {init!r}; valid: {', '.join(INIT_CHOICES)}")
        for label, value, least in (("draws", draws, 1), ("chains", chains, 1),
                                    ("warmup", warmup, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < least:
                raise SpecificationError(f"{label} must be an integer ≥ {least}, got {value!r}")
        if not 0 < target_accept < 1:
            raise SpecificationError(
                f"target_accept must be between 0 and 1, got {target_accept!r}")
        started = time.perf_counter()
        steer: dict[str, Any] = {"restarts": restarts, "seed": seed, "optimizer": optimizer}
        if method == "map":
            config = SamplerConfig(draws=1, chains=1, warmup=0, seed=seed)
            point = self.map(start=start, **steer)
            posterior = {k: np.asarray(v)[None, None] for k, v in point.params.items()}
            info = {"log_density": point.log_density, "converged": point.converged,
                    "optimiser": point.message, "iterations": point.iterations}
            return self._make_fit("map", config, posterior, {}, info, started, point)
        target = self._target(start, seed)
        rng = np.random.default_rng(seed)
        if method == "laplace":
            config = SamplerConfig(draws=int(draws), chains=int(chains), warmup=0, seed=seed)
            peak = self._optimise(target, jacobian=True, **steer)
            if not peak.converged:
                warnings.warn(f"the optimiser stopped without converging: {peak.message}",
                              ConvergenceWarning, stacklevel=2)
            chol = self._hessian_cholesky(target, peak.unconstrained)
            if chol is None:
                raise SpecificationError(
                    "the Hessian at the mode is not positive definite (a saddle point, a "
                    "parameter the data do not identify, or a mode at infinity): no "
                    "Laplace approximation; use method 'nuts'")
            eps = rng.standard_normal((chains * draws, peak.unconstrained.size))
            z = _from_white(peak.unconstrained, chol, eps)
            posterior = self._constrain_draws(target, z.reshape(chains, draws, -1))
            info = {"log_density": peak.log_density, "converged": peak.converged,
                    "optimiser": peak.message}
            return self._make_fit("laplace", config, posterior, {}, info, started, peak)
        config = SamplerConfig(draws=int(draws), chains=int(chains), warmup=int(warmup),
                               seed=seed, progress=progress)
        mode: MAPResult | None = None
        whiten: tuple[NDArray, NDArray] | None = None
        if init == "map":
            mode = self._optimise(target, jacobian=True, **steer)
            chol = self._hessian_cholesky(target, mode.unconstrained)
            if chol is not None:
                eps = rng.standard_normal((chains, mode.unconstrained.size))
                if precondition:
                    whiten, starts = (mode.unconstrained, chol), eps
                    how = ("posterior mode, each chain at a draw of the Laplace "
                           "approximation; NUTS on coordinates whitened by it")
                else:
                    starts = _from_white(mode.unconstrained, chol, eps)
                    how = "posterior mode, each chain at a draw of the Laplace approximation"
            else:
                jitter = rng.uniform(-MODE_JITTER, MODE_JITTER,
                                     (chains, mode.unconstrained.size))
                starts = mode.unconstrained + jitter
                how = (f"posterior mode ± {MODE_JITTER} (the Hessian there is not positive "
                       "definite)")
        else:
            starts = np.where(target.fixed, target.start,
                              rng.uniform(-2.0, 2.0, (chains, target.start.size)))
            how = "uniform in (−2, 2) on the unconstrained scale"
        z, stats, timings = self._run_nuts(target, starts, config, target_accept, whiten)
        posterior = self._constrain_draws(target, z)
        info = {"divergences": int(np.sum(stats["diverging"])), "init": how,
                "preconditioned": whiten is not None, "target_accept": target_accept,
                **timings}
        if mode is not None:
            info |= {"map_log_density": mode.log_density, "map_converged": mode.converged,
                     "map_seconds": mode.seconds}
        fit = self._make_fit("nuts", config, posterior, stats, info, started, mode)
        check_diagnostics(fit, stacklevel=2)  # type: ignore[arg-type]
        return fit

    # ------------------------------------------------------------------ pieces of fit
    @staticmethod
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

    def _run_nuts(self, target: _Target, starts: NDArray, config: SamplerConfig,
                  target_accept: float, whiten: tuple[NDArray, NDArray] | None
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
        z, stats = run_chains(potential, starts, config, target_accept, timings=timings)
        if whiten is not None:
            z = _from_white(whiten[0], whiten[1], z)
        return z, stats, timings

    @staticmethod
    def _constrain_draws(target: _Target, z: NDArray) -> dict[str, NDArray]:
        """The latent and deterministic sites at every draw of z (chains, draws, dim)."""
        import jax

        chains, draws, dim = z.shape
        values = jax.jit(jax.vmap(target.constrain))(z.reshape(chains * draws, dim))
        return {k: np.asarray(v).reshape(chains, draws, *np.shape(v)[1:])
                for k, v in values.items()}

    def _make_fit(self, method: str, config: SamplerConfig, posterior: dict[str, NDArray],
                  stats: dict[str, NDArray], info: dict[str, Any], started: float,
                  mode: MAPResult | None) -> CustomFit:
        ordered = {k: posterior[k] for k in (*self.latent, *posterior) if k in posterior}
        log_lik = self._log_likelihood(ordered, config)
        info = {**info, "seconds": time.perf_counter() - started}
        groups: dict[str, dict[str, NDArray]] = {"posterior": ordered,
                                                 "log_likelihood": log_lik,
                                                 "observed_data": self.observed_data}
        constant = {k: np.asarray(v) for k, v in self.kwargs.items()
                    if np.asarray(v).dtype.kind in "biuf"
                    and not any(v is self.observed_data.get(s) for s in self.observed)}
        constant = {k: v for k, v in constant.items() if k not in self.observed}
        if constant:
            groups["constant_data"] = constant
        if stats:
            groups["sample_stats"] = stats
        dims = {k: d for k, d in self.dims.items() if k in ordered or k in self.observed}
        for k, values in ordered.items():  # deterministic sites the trace did not size
            if k not in dims or len(dims[k]) != values.ndim - 2:
                dims[k] = [f"{k}_dim_{i}" for i in range(values.ndim - 2)]
        for k, v in constant.items():
            dims[f"{k}"] = dims.get(k, [f"{k}_dim_{i}" for i in range(v.ndim)])
        coords = {plate: self.coords.get(plate, np.arange(size))
                  for plate, size in self.plates.items()}
        attrs = {"poolwise_version": __version__, "model": self.name, "method": method,
                 "prior": self.describe_prior(), "seed": config.seed, "draws": config.draws,
                 "chains": config.chains, "warmup": config.warmup,
                 "info": json.dumps(info, default=float)}
        tree = _arviz.make_datatree(groups, dims=dims, coords=coords, attrs=attrs)
        return CustomFit(self, method, config, tree, info, mode)

    def _log_likelihood(self, posterior: Mapping[str, NDArray], config: SamplerConfig
                        ) -> dict[str, NDArray]:
        """log p(y_i | parameters) of every observed site at every draw (for LOO)."""
        from numpyro.infer import log_likelihood

        latent = {k: v.reshape(-1, *v.shape[2:]) for k, v in posterior.items()
                  if k in self.latent}
        values = log_likelihood(self._bound(), latent, batch_ndims=1)
        return {k: np.asarray(v).reshape(config.chains, config.draws, *np.shape(v)[1:])
                for k, v in values.items() if k in self.observed}

    def graph(self) -> ModelGraph:
        """The graphical model of this model on its data (see
        :func:`model_graph_from_numpyro`)."""
        return _graph(self.model_fn, self.kwargs, self.name)


# ----------------------------------------------------------------------------- the fit
@dataclass(frozen=True)
class CustomFit:
    """Posterior draws of a :class:`CustomModel` in an ArviZ DataTree.

    ``tree`` holds ``posterior`` (latent and deterministic sites, dims ``chain``, ``draw``
    and the plates), ``log_likelihood`` (each observed site, pointwise), ``observed_data``,
    ``constant_data`` (the numeric data arguments) and, for NUTS, ``sample_stats``.
    ``mode`` is the optimum the fit started from or consists of (None for NUTS started at
    the prior).
    """

    model: CustomModel
    method: str
    config: SamplerConfig
    tree: xr.DataTree
    info: dict[str, Any] = field(default_factory=dict)
    mode: MAPResult | None = None

    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    @property
    def is_mcmc(self) -> bool:
        return self.method == "nuts"

    def describe_prior(self) -> str:
        return self.model.describe_prior()

    def draws(self, name: str) -> NDArray[np.float64]:
        """Draws of one posterior variable, shaped (chain, draw, ...)."""
        return posterior_draws(self.posterior, name)

    def summary(self, ci_prob: float = 0.95, *, diagnostics: bool = True) -> pd.DataFrame:
        """One row per scalar of every latent and deterministic site, in
        :data:`~poolwise.fit.SUMMARY_COLUMNS`; a plate's index goes in ``group``.

        A ``map`` fit has the mode in ``mean`` and nothing else.
        """
        _check_prob(ci_prob)
        group_dims = tuple(self.model.plates)
        if self.method == "map":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the sd of one draw
                table = posterior_summary(self.posterior, ci_prob, diagnostics=False,
                                          group_dims=group_dims)
            table[["sd", "lower", "upper"]] = np.nan
            return table
        return posterior_summary(self.posterior, ci_prob, diagnostics=diagnostics,
                                 group_dims=group_dims)

    def with_log_likelihood(self) -> xr.DataTree:
        """The DataTree, which already holds the pointwise log likelihood (for LOO)."""
        return self.tree

    def posterior_predictive(self, seed: int | None = None) -> xr.Dataset:
        """Replicated data: each observed site drawn afresh at every posterior draw,
        shaped (chain, draw, ...) like the data."""
        import jax
        from numpyro import handlers

        bound = _resimulate(self.model._bound())
        observed = self.model.observed
        latent = {k: jax.numpy.asarray(self.draws(k).reshape(-1, *self.draws(k).shape[2:]))
                  for k in self.model.latent}
        count = self.config.chains * self.config.draws
        key = jax.random.PRNGKey(self.config.seed + 5 if seed is None else seed)

        def one(key: Any, params: dict[str, Any]) -> dict[str, Any]:
            model = handlers.substitute(handlers.seed(bound, key), data=params)
            trace = handlers.trace(model).get_trace()
            return {name: trace[name]["value"] for name in observed}

        values = jax.jit(jax.vmap(one))(jax.random.split(key, count), latent)
        data_vars = {}
        for name in observed:
            array = np.asarray(values[name]).reshape(self.config.chains, self.config.draws,
                                                     *self.model.observed_data[name].shape)
            data_vars[name] = (("chain", "draw", *self.model.dims[name]), array)
        coords = {plate: self.model.coords.get(plate, np.arange(size))
                  for plate, size in self.model.plates.items()}
        dataset = xr.Dataset(data_vars)
        used = {d for name in observed for d in self.model.dims[name]}
        return dataset.assign_coords({k: v for k, v in coords.items() if k in used}
                                     | {"chain": np.arange(self.config.chains),
                                        "draw": np.arange(self.config.draws)})

    def ppc_summary(self, ci_prob: float = 0.9, *, seed: int | None = None) -> pd.DataFrame:
        """A posterior predictive check of each observed site.

        For the mean, sd, min and max of the data (over all of a site's elements): the
        observed value, the replicated values' mean and equal-tailed ``ci_prob`` interval,
        and the Bayesian p-value P(T(y_rep) ≥ T(y)); near 0 or 1 the model does not
        reproduce that feature of the data. ``coverage`` is the fraction of the data points
        inside their own ``ci_prob`` predictive interval (near ``ci_prob`` if the spread is
        right), the same on every row of a site.
        """
        _check_prob(ci_prob)
        replicated = self.posterior_predictive(seed)
        tail = (1 - ci_prob) / 2
        rows = []
        for name in self.model.observed:
            y = np.asarray(self.model.observed_data[name], dtype=float).ravel()
            rep = np.asarray(replicated[name].values, dtype=float)
            rep = rep.reshape(rep.shape[0] * rep.shape[1], -1)
            lower, upper = np.quantile(rep, [tail, 1 - tail], axis=0)
            coverage = float(np.mean((y >= lower) & (y <= upper)))
            for statistic, function in PPC_STATISTICS.items():
                observed = float(function(y[None])[0])
                values = function(rep)
                rows.append({
                    "site": name, "statistic": statistic, "observed": observed,
                    "predictive_mean": float(np.mean(values)),
                    "lower": float(np.quantile(values, tail)),
                    "upper": float(np.quantile(values, 1 - tail)),
                    "p_value": float(np.mean(values >= observed)),
                    "coverage": coverage,
                })
        return pd.DataFrame(rows)

    def graph(self) -> ModelGraph:
        """The graphical model (see :func:`model_graph_from_numpyro`)."""
        return self.model.graph()

    def save(self, path: str | Path) -> None:
        """Write the fit to NetCDF (an ArviZ DataTree; settings in its attributes). The model
        function itself is not saved."""
        _arviz.save(self.tree, path)


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


def _graph(model_fn: Callable[..., Any], kwargs: Mapping[str, Any], title: str
           ) -> ModelGraph:
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
    labelled = tuple(Plate(p.name, f"{_plain(p.name)}, ${letters[p.name]} = 1, \\ldots, "
                                   f"{p.label}$", p.nodes, p.inside) for p in plates)
    return ModelGraph(tuple(nodes), tuple(edges + fixed_edges), labelled, _plain(title))


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
