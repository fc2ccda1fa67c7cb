"""The result of fitting: posterior draws in an ArviZ DataTree plus the model they came from."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray

from poolwise import _arviz
from poolwise._version import __version__
from poolwise.data.tables import GroupCounts
from poolwise.exceptions import SamplingWarning, SpecificationError
from poolwise.inference.base import Draws, EBEstimate, SamplerConfig
from poolwise.model import POOLING_PHRASES, Model

#: columns of :meth:`Fit.summary`, in order; other tools read these names
SUMMARY_COLUMNS = ["param", "group", "mean", "sd", "lower", "upper",
                   "ess_bulk", "ess_tail", "r_hat", "mcse_mean", "pooling_factor"]
MCMC_METHODS = ("gibbs", "nuts")
#: above this many draws × groups the pointwise log likelihood is computed when asked for
#: (by :meth:`Fit.with_log_likelihood`, e.g. for LOO), not stored with every fit
EAGER_LOG_LIKELIHOOD = 10_000_000
R_HAT_LIMIT = 1.01
ESS_PER_CHAIN = 100


def _check_prob(ci_prob: float) -> None:
    if not 0 < ci_prob < 1:
        raise SpecificationError(f"the interval level must be between 0 and 1, got {ci_prob!r}")


@dataclass(frozen=True)
class NewGroup:
    """Posterior (or predictive) draws for a group that was not in the fit.

    ``theta`` are draws of the new group's θ; ``y`` are predictive counts for a group of
    size ``n`` when no data were given; ``importance_ess`` is the effective sample size
    of the reweighting by the new group's data (equal to the draws when there was none).
    """

    theta: NDArray[np.float64]
    y: NDArray[np.float64] | None
    n: float | None
    observed_y: float | None
    importance_ess: float
    #: the closed-form distribution of θ when there is one (fixed hyperparameters)
    distribution: Any = None

    def summary(self, ci_prob: float = 0.95) -> dict[str, float]:
        """Mean, sd and equal-tailed interval of θ (closed form where available)."""
        _check_prob(ci_prob)
        tail = (1 - ci_prob) / 2
        if self.distribution is not None:
            d = self.distribution
            out = {"mean": float(d.mean()), "sd": float(d.std()),
                   "lower": float(d.ppf(tail)), "upper": float(d.ppf(1 - tail))}
        else:
            out = {
                "mean": float(np.mean(self.theta)),
                "sd": float(np.std(self.theta, ddof=1)),
                "lower": float(np.quantile(self.theta, tail)),
                "upper": float(np.quantile(self.theta, 1 - tail)),
            }
        if self.y is not None:
            out |= {
                "y_mean": float(np.mean(self.y)),
                "y_lower": float(np.quantile(self.y, tail)),
                "y_upper": float(np.quantile(self.y, 1 - tail)),
            }
        return out


@dataclass(frozen=True)
class Fit:
    """Posterior draws and everything needed to summarise, predict and save them."""

    model: Model
    data: GroupCounts
    method: str
    config: SamplerConfig
    tree: xr.DataTree
    eb: EBEstimate | None = None
    info: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_draws(
        cls,
        model: Model,
        data: GroupCounts,
        method: str,
        config: SamplerConfig,
        draws: Draws,
        *,
        seconds: float,
    ) -> Fit:
        family = model.family
        posterior: dict[str, np.ndarray] = {}
        if draws.alpha is not None and draws.beta is not None:
            a_name, b_name = family.hyper_names
            posterior |= {a_name: draws.alpha, b_name: draws.beta,
                          **family.derived(draws.alpha, draws.beta)}
        posterior["theta"] = draws.theta
        groups: dict[str, dict[str, np.ndarray]] = {"posterior": posterior}
        if draws.theta.size <= EAGER_LOG_LIKELIHOOD:
            groups["log_likelihood"] = {
                "y": family.log_likelihood(draws.theta, data.y, data.n)}
        groups["observed_data"] = {"y": data.y, "n": data.n}
        if draws.sample_stats:
            groups["sample_stats"] = draws.sample_stats
        info = {**draws.info, "seconds": seconds}
        attrs = {
            "poolwise_version": __version__,
            "family": family.name,
            "pooling": model.pooling,
            "prior": model.prior_spec(),
            "prior_description": model.describe_prior(method),
            "method": method,
            "seed": config.seed,
            "draws": config.draws,
            "chains": config.chains,
            "warmup": config.warmup,
            "parametrisation": config.parametrisation,
            "group_name": data.group_name,
            "notes": json.dumps(list(data.notes)),
            "eb": json.dumps(_eb_to_dict(draws.eb)),
            "info": json.dumps(info, default=float),
        }
        tree = _arviz.make_datatree(
            groups,
            dims={"theta": ["group"], "y": ["group"], "n": ["group"]},
            coords={"group": data.labels},
            attrs=attrs,
        )
        return cls(model, data, method, config, tree, draws.eb, info)

    # ------------------------------------------------------------------ access
    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    def draws(self, name: str) -> NDArray[np.float64]:
        """Draws of one posterior variable, shaped (chain, draw[, group])."""
        return posterior_draws(self.posterior, name)

    def describe_prior(self) -> str:
        """The prior as this fit used it (empirical Bayes uses no hyperprior)."""
        return self.model.describe_prior(self.method)

    def with_log_likelihood(self) -> xr.DataTree:
        """The DataTree with the pointwise log likelihood log p(y_j | θ_j) (for LOO)."""
        if "log_likelihood" in self.tree.children:
            return self.tree
        theta = self.draws("theta")
        values = self.model.family.log_likelihood(theta, self.data.y, self.data.n)
        tree = self.tree.copy()
        tree["log_likelihood"] = xr.DataTree(xr.Dataset(
            {"y": (("chain", "draw", "group"), values)},
            coords={"chain": self.posterior["chain"], "draw": self.posterior["draw"],
                    "group": self.posterior["group"]}))
        return tree

    @property
    def is_mcmc(self) -> bool:
        return self.method in MCMC_METHODS

    # ------------------------------------------------------------------ summaries
    def summary(self, ci_prob: float = 0.95, *, diagnostics: bool = True) -> pd.DataFrame:
        """One row per parameter (and group): mean, sd, equal-tailed interval, diagnostics.

        ESS, R-hat and MCSE are ArviZ's, on all draws; they are missing (NaN) where they do
        not apply (empirical-Bayes point estimates and closed-form conditionals) or when
        ``diagnostics=False`` (they cost about 3 ms per group).
        """
        _check_prob(ci_prob)
        if self.eb is not None:
            return self._summary_eb(ci_prob)
        shared = ("theta",) if self.model.pooling == "complete" else ()
        table = posterior_summary(self.posterior, ci_prob, diagnostics=diagnostics,
                                  group_dims=("group",), shared=shared)
        return self._with_pooling_factors(table)

    def pooling_factors(self) -> NDArray[np.float64]:
        """Posterior mean of each group's pooling factor B_j, the weight of the population
        mean in E[θ_j | y, hyperparameters]: 0 is no pooling, 1 complete pooling.

        B_j = σ_j²/(σ_j² + τ²) (normal), (α+β)/(α+β+n_j) (beta-binomial), β/(β+E_j)
        (gamma-Poisson).
        """
        if self.model.pooling != "partial":
            value = 1.0 if self.model.pooling == "complete" else 0.0
            return np.full(self.data.n_groups, value)
        hyper = self.hyperparameter_draws()
        assert hyper is not None  # partial pooling has hyperparameters
        factors = self.model.family.pooling_factor(hyper[0][:, None], hyper[1][:, None],
                                                   self.data.n)
        return np.asarray(np.mean(factors, axis=0), dtype=float)

    def _with_pooling_factors(self, table: pd.DataFrame) -> pd.DataFrame:
        theta = (table["param"] == "theta").to_numpy()
        if theta.sum() == self.data.n_groups:
            table.loc[theta, "pooling_factor"] = self.pooling_factors()
        elif theta.sum() == 1:  # complete pooling: one row for the common θ
            table.loc[theta, "pooling_factor"] = 1.0
        return table

    def _summary_eb(self, ci_prob: float) -> pd.DataFrame:
        assert self.eb is not None
        tail = (1 - ci_prob) / 2
        family, eb = self.model.family, self.eb
        rows = []
        a_name, b_name = family.hyper_names
        hyper = {a_name: eb.alpha, b_name: eb.beta,
                 **{k: float(v) for k, v in family.derived(eb.alpha, eb.beta).items()}}
        spread: dict[str, tuple[float, float, float]] = {}
        if eb.uv_covariance is not None:
            # sampling distribution of the estimates from the normal approximation in (u, v)
            rng = np.random.default_rng(0)
            centre = np.array(family.to_uv(eb.alpha, eb.beta), dtype=float)
            uv = rng.multivariate_normal(centre, eb.uv_covariance, size=20_000)
            a, b = family.from_uv(uv[:, 0], uv[:, 1])
            for name, sims in {a_name: a, b_name: b, **family.derived(a, b)}.items():
                spread[name] = (float(np.std(sims, ddof=1)),
                                *np.quantile(sims, [tail, 1 - tail]).tolist())
        for name, value in hyper.items():
            sd, lo, hi = spread.get(name, (np.nan, np.nan, np.nan))
            rows.append({"param": name, "group": None, "mean": value, "sd": sd,
                         "lower": lo, "upper": hi})
        conditional = family.conditional(eb.alpha, eb.beta, self.data.y, self.data.n)
        lower, upper = conditional.ppf(tail), conditional.ppf(1 - tail)
        for i, label in enumerate(self.data.labels):
            rows.append({"param": "theta", "group": label,
                         "mean": float(conditional.mean()[i]), "sd": float(conditional.std()[i]),
                         "lower": float(lower[i]), "upper": float(upper[i])})
        return self._with_pooling_factors(pd.DataFrame(rows, columns=SUMMARY_COLUMNS))

    def hyperparameter_draws(self) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
        """Flattened draws (or the fixed values) of (α, β); None under complete pooling."""
        if self.eb is not None:
            return np.array([self.eb.alpha]), np.array([self.eb.beta])
        a_name, b_name = self.model.family.hyper_names
        if a_name in self.posterior:
            return self.draws(a_name).ravel(), self.draws(b_name).ravel()
        if self.model.pooling == "none":
            return np.array([self.model.theta_prior.a]), np.array([self.model.theta_prior.b])
        return None

    def predict_group(
        self, group: str, *, n: float | None = None, seed: int | None = None
    ) -> NewGroup:
        """Posterior predictive for new data from an existing group (lecture 001, step 4):
        θ_j from the posterior, then y* ~ p(y | θ_j, n), with n the group's own size (or
        standard error) unless given."""
        labels = [str(label) for label in self.data.labels]
        if str(group) not in labels:
            shown = ", ".join(repr(label) for label in labels[:8])
            more = f" … ({len(labels)} in all)" if len(labels) > 8 else ""
            raise SpecificationError(f"no group {group!r} in the fit; groups: {shown}{more}")
        index = labels.index(str(group))
        size = float(self.data.n[index]) if n is None else float(n)
        if not np.isfinite(size) or size <= 0:
            raise SpecificationError(f"the new data's size must be a number > 0, got {n!r}")
        rng = np.random.default_rng(self.config.seed + 2 if seed is None else seed)
        theta = self.draws("theta")[..., index].ravel()
        predicted = self.model.family.sample_data(rng, theta, size).astype(float)
        return NewGroup(theta, predicted, size, None, float(theta.size))

    def predict_new_group(
        self, *, y: float | None = None, n: float | None = None, seed: int | None = None
    ) -> NewGroup:
        """θ (and y) for a group that was not in the fit.

        With ``y`` and ``n``: the posterior of the new group's θ given its data. Under full
        Bayes the hyperparameter draws are reweighted by p(y | α, β), which is exact Bayes
        for the enlarged data set; under empirical Bayes the estimates are held fixed (the
        lecture's 0.2229 for the 71st rat experiment).
        With ``n`` only: the predictive θ_new ~ p(θ | α, β) and y_new ~ p(y | θ_new, n)
        for a brand-new group of size ``n``. With neither: θ_new only.
        """
        family = self.model.family
        if y is not None and n is None:
            raise SpecificationError(f"a new group's data need its {family.size_label} n too")
        for name, value in (("y", y), ("n", n)):
            if value is not None and (not np.isfinite(value) or value < 0):
                raise SpecificationError(f"new group {name} must be a number ≥ 0, got {value!r}")
        if y is not None and n is not None:
            if y != round(y):
                raise SpecificationError(f"new group y must be a whole number, got {y!r}")
            family.check_data(np.array([float(y)]), np.array([float(n)]), np.array(["new"]))
        rng = np.random.default_rng(self.config.seed + 1 if seed is None else seed)
        size = self.config.chains * self.config.draws
        if y is not None:
            assert n is not None  # checked above
            y, n = float(y), float(n)
        hyper = self.hyperparameter_draws()
        if hyper is None:  # complete pooling: the new group shares the common θ
            theta = self.draws("theta")[..., 0].ravel()
            if y is not None:
                log_w = family.log_likelihood(theta, y, n)
                theta, ess = theta[_resample(rng, log_w, size)], _kish(log_w)
            else:
                ess = float(size)
            return self._new_group(rng, theta, y, n, ess)
        alpha, beta = (np.broadcast_to(h, size) if h.size == 1 else h for h in hyper)
        ess = float(size)
        if y is not None and self.eb is None and self.model.pooling == "partial":
            log_w = family.log_marginal(alpha, beta, y, n)
            index = _resample(rng, log_w, size)
            alpha, beta, ess = alpha[index], beta[index], _kish(log_w)
        if y is not None and n is not None:
            theta = family.sample_conditional(rng, alpha, beta, y, n)
            fixed = family.conditional(hyper[0][0], hyper[1][0], y, n)
        else:
            theta = family.sample_population(rng, alpha, beta)
            fixed = family.population(hyper[0][0], hyper[1][0])
        return self._new_group(rng, theta, y, n, ess, fixed if hyper[0].size == 1 else None)

    def _new_group(
        self, rng: np.random.Generator, theta: NDArray, y: float | None, n: float | None,
        ess: float, distribution: Any = None,
    ) -> NewGroup:
        predicted = None
        if y is None and n is not None:
            predicted = self.model.family.sample_data(rng, theta, n).astype(float)
        return NewGroup(np.asarray(theta, dtype=float), predicted, n, y, ess, distribution)

    def population_mean(self, ci_prob: float = 0.95) -> dict[str, float]:
        """The population mean rate μ (α/(α+β) or α/β): mean, sd, interval and MAP.

        The MAP is the mode of a kernel density estimate of u = logit μ (or log μ),
        carried back to μ with the Jacobian, so it respects the boundaries of μ.
        """
        _check_prob(ci_prob)
        family = self.model.family
        if self.eb is not None:
            value = float(family.population_mean(self.eb.alpha, self.eb.beta))
            row = self.summary(ci_prob).set_index("param").loc["mu"]
            return {"mean": value, "sd": float(row["sd"]), "lower": float(row["lower"]),
                    "upper": float(row["upper"]), "map": value}
        if "mu" not in self.posterior:
            raise SpecificationError(
                f"{POOLING_PHRASES[self.model.pooling]} has no population distribution; "
                "fit with pooling 'partial'"
            )
        from scipy.stats import gaussian_kde

        mu = self.draws("mu").ravel()
        hyper = self.hyperparameter_draws()
        assert hyper is not None  # partial pooling has hyperparameters
        u = family.to_uv(*hyper)[0]
        low, high = np.quantile(u, [0.0005, 0.9995])
        grid = np.linspace(float(low), float(high), 2001)
        mu_grid = family.population_mean(*family.from_uv(grid, np.zeros_like(grid)))
        density = gaussian_kde(u)(grid) / np.abs(np.gradient(mu_grid, grid))
        tail = (1 - ci_prob) / 2
        return {
            "mean": float(mu.mean()), "sd": float(mu.std(ddof=1)),
            "lower": float(np.quantile(mu, tail)), "upper": float(np.quantile(mu, 1 - tail)),
            "map": float(mu_grid[np.argmax(density)]),
        }

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> None:
        """Write the fit to NetCDF (an ArviZ DataTree; poolwise's settings in its attributes)."""
        _arviz.save(self.tree, path)

    @classmethod
    def load(cls, path: str | Path) -> Fit:
        """Read a fit written by :meth:`save`."""
        tree = _arviz.load(path)
        attrs = tree.attrs
        model = Model(family=attrs["family"], pooling=attrs["pooling"], prior=attrs["prior"])
        observed = tree["observed_data"].to_dataset()
        data = GroupCounts(
            labels=np.asarray(observed["group"].values).astype(str),
            y=np.asarray(observed["y"].values, dtype=float),
            n=np.asarray(observed["n"].values, dtype=float),
            group_name=str(attrs["group_name"]),
            notes=tuple(json.loads(attrs["notes"])),
        )
        config = SamplerConfig(draws=int(attrs["draws"]), chains=int(attrs["chains"]),
                               warmup=int(attrs["warmup"]), seed=int(attrs["seed"]),
                               parametrisation=str(attrs.get("parametrisation", "auto")))
        eb = _eb_from_dict(json.loads(attrs["eb"]))
        return cls(model, data, str(attrs["method"]), config, tree, eb, json.loads(attrs["info"]))


def posterior_draws(posterior: xr.Dataset, name: str) -> NDArray[np.float64]:
    """Draws of the posterior variable ``name``, shaped (chain, draw, ...); an error that
    lists the variables when there is none of that name."""
    if name not in posterior:
        valid = ", ".join(str(v) for v in posterior.data_vars)
        raise SpecificationError(f"no variable {name!r} in the posterior; it has {valid}")
    return np.asarray(posterior[name].values)


def posterior_summary(
    posterior: xr.Dataset,
    ci_prob: float = 0.95,
    *,
    diagnostics: bool = True,
    group_dims: tuple[str, ...] = ("group",),
    shared: tuple[str, ...] = (),
) -> pd.DataFrame:
    """One row per scalar of every posterior variable, in :data:`SUMMARY_COLUMNS`.

    Mean, sd and the equal-tailed ``ci_prob`` interval over all chains and draws; bulk and
    tail ESS, R-hat and the MCSE of the mean from ArviZ (NaN when ``diagnostics=False``).
    A dimension in ``group_dims`` gives the ``group`` column its label; any other dimension
    is written into the name, ``b[Days]`` or ``r_Subject[Intercept]``. Variables in
    ``shared`` repeat one value along their group dimension (complete pooling) and get one
    row.
    """
    _check_prob(ci_prob)
    tail = (1 - ci_prob) / 2
    diag = _arviz.diagnostics(posterior) if diagnostics else {}
    rows = []
    for name in posterior.data_vars:
        variable = posterior[name]
        if name in shared:
            variable = variable.isel({d: 0 for d in variable.dims if d in group_dims})
        extra = [d for d in variable.dims if d not in ("chain", "draw")]
        values = np.asarray(variable.transpose("chain", "draw", *extra).values)
        flat = values.reshape(-1, *values.shape[2:])
        stats = {"mean": flat.mean(axis=0), "sd": flat.std(axis=0, ddof=1)}
        stats["lower"], stats["upper"] = np.quantile(flat, [tail, 1 - tail], axis=0)
        for key, dataset in diag.items():
            chosen = dataset[name]
            if name in shared:
                chosen = chosen.isel({d: 0 for d in chosen.dims if d in group_dims})
            stats[key] = np.asarray(chosen.transpose(*extra).values)
        for key in SUMMARY_COLUMNS[6:10]:
            stats.setdefault(key, np.full(flat.shape[1:], np.nan))
        labels = [[str(v) for v in np.asarray(variable[d].values)] if d in variable.coords
                  else [str(i) for i in range(variable.sizes[d])] for d in extra]
        for index in np.ndindex(*flat.shape[1:]):
            group = [labels[k][i] for k, i in enumerate(index) if extra[k] in group_dims]
            inner = [labels[k][i] for k, i in enumerate(index) if extra[k] not in group_dims]
            rows.append({
                "param": f"{name}[{', '.join(inner)}]" if inner else str(name),
                "group": ", ".join(group) if group else None,
                **{key: float(value[index]) for key, value in stats.items()},
            })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _resample(rng: np.random.Generator, log_weights: NDArray, size: int) -> NDArray[np.intp]:
    """Indices drawn with probability ∝ exp(log_weights) (importance resampling)."""
    w = np.exp(log_weights - np.max(log_weights))
    return rng.choice(w.size, size=size, p=w / w.sum())


def _kish(log_weights: NDArray) -> float:
    """Kish's effective sample size (Σw)² / Σw² of importance weights."""
    w = np.exp(log_weights - np.max(log_weights))
    return float(w.sum() ** 2 / np.sum(w**2))


def _eb_to_dict(eb: EBEstimate | None) -> dict[str, Any] | None:
    if eb is None:
        return None
    cov = None if eb.uv_covariance is None else eb.uv_covariance.tolist()
    return {"method": eb.method, "alpha": eb.alpha, "beta": eb.beta, "uv_covariance": cov,
            "on_boundary": eb.on_boundary, "log_marginal_likelihood": eb.log_marginal_likelihood}


def _eb_from_dict(d: dict[str, Any] | None) -> EBEstimate | None:
    if d is None:
        return None
    cov = None if d["uv_covariance"] is None else np.asarray(d["uv_covariance"])
    return EBEstimate(d["method"], d["alpha"], d["beta"], cov, d["on_boundary"],
                      d["log_marginal_likelihood"])


def diagnostic_problems(fit: Fit) -> list[str]:
    """What the Markov chain diagnostics say is wrong, each with what to do."""
    if not fit.is_mcmc:
        return []
    # models with an exact sampler can point to it; mixed models have none
    exact = " or use --method exact" if isinstance(fit, Fit) else ""
    problems = []
    table = fit.summary()
    worst_rhat = table["r_hat"].max()
    if worst_rhat > R_HAT_LIMIT:
        param = table.loc[table["r_hat"].idxmax()]
        where = (f"{param['param']}[{param['group']}]" if pd.notna(param["group"])
                 else param["param"])
        problems.append(
            f"R-hat is {worst_rhat:.3f} for {where} (> {R_HAT_LIMIT}): the chains disagree; "
            f"run more warm-up and draws (--warmup, --draws){exact}"
        )
    least = min(table["ess_bulk"].min(), table["ess_tail"].min())
    needed = ESS_PER_CHAIN * fit.config.chains
    if least < needed:
        problems.append(
            f"the smallest effective sample size is {least:.0f} (< {needed}, 100 per chain): "
            f"estimates are noisy; run more draws (--draws){exact}"
        )
    if "sample_stats" in fit.tree.children and "diverging" in fit.tree["sample_stats"]:
        count = int(np.sum(np.asarray(fit.tree["sample_stats"]["diverging"])))
        if count:
            problems.append(
                f"{count} divergent transitions: the sampler could not follow the posterior; "
                "the draws may be biased. "
                + ("The centred form has a funnel at small τ: use --parametrisation "
                   "non-centred, or --method exact"
                   if fit.config.parametrisation == "centred"
                   else f"Run a longer warm-up (--warmup){exact}")
            )
    return problems


def check_diagnostics(fit: Fit, stacklevel: int = 1) -> None:
    """Warn (:class:`SamplingWarning`) for each diagnostic problem of a Markov chain fit."""
    for problem in diagnostic_problems(fit):
        warnings.warn(problem, SamplingWarning, stacklevel=stacklevel + 1)
