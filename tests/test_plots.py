"""Plots: the data each plot draws, checked against independent expectations, and a
smoke test per figure (it builds, renders to PNG and has the expected axes and artists)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from poolwise import Model, SpecificationError, datasets, plots

matplotlib.use("Agg")

DRAWS, CHAINS = 200, 2


def mc_tolerance(sd: np.ndarray | float, z: float = 4.5) -> np.ndarray | float:
    """z Monte Carlo standard errors of a mean of DRAWS × CHAINS independent draws."""
    return z * np.asarray(sd) / np.sqrt(DRAWS * CHAINS)


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def rats() -> pd.DataFrame:
    return datasets.load("rats").query("historical == 1")


def _fit_rats(rats: pd.DataFrame, pooling: str = "partial", method: str = "exact"):
    kwargs = {"draws": DRAWS, "chains": CHAINS} if method == "exact" else {}
    return Model(family="beta-binomial", pooling=pooling, method=method, **kwargs).fit(
        rats, y="y", n="n", group="experiment")


@pytest.fixture(scope="module")
def rats_fits(rats: pd.DataFrame) -> dict:
    return {p: _fit_rats(rats, p) for p in ("none", "complete", "partial")}


@pytest.fixture(scope="module")
def rats_eb(rats: pd.DataFrame):
    return _fit_rats(rats, method="eb-moments")


@pytest.fixture(scope="module")
def spacex():
    table = datasets.load("spacex")
    return Model(family="beta-binomial", prior="halfnormal(10)", method="exact", draws=DRAWS,
                 chains=CHAINS).fit(
        table, y="successes", n="launches", group="vehicle_family")


@pytest.fixture(scope="module")
def counties():
    """250 counties of the kidney-cancer data: many groups, tiny rates, wide exposures."""
    table = datasets.load("kidney").iloc[:250]
    return Model(family="gamma-poisson", method="eb-ml").fit(
        table, y="deaths", n="population", group="Location")


def render(fig: Figure) -> bytes:
    """Draw the figure to PNG; layout and legend problems surface here."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


# ------------------------------------------------------------------------- import
def test_importing_plots_does_not_import_matplotlib():
    code = ("import sys, poolwise.outputs.plots; "
            "print(any(m == 'matplotlib' or m.startswith('matplotlib.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------- shrinkage
def test_eb_shrinkage_fraction_is_the_prior_weight(rats_eb):
    """EB posterior mean (α+y)/(α+β+n) = B μ + (1−B) y/n with B = (α+β)/(α+β+n)."""
    table = plots.shrinkage_data(rats_eb)
    alpha, beta = rats_eb.eb.alpha, rats_eb.eb.beta
    n = rats_eb.data.n
    expected = (alpha + beta) / (alpha + beta + n)
    defined = np.isfinite(table["shrinkage"])
    assert defined.sum() >= 65
    np.testing.assert_allclose(table["shrinkage"][defined], expected[defined], rtol=1e-9)
    assert table["shrinkage"][defined].between(0, 1).all()
    np.testing.assert_allclose(table["target"], alpha / (alpha + beta))
    np.testing.assert_allclose(table["raw"], rats_eb.data.y / n)


def test_gamma_poisson_eb_shrinkage_fraction(counties):
    """Gamma-Poisson: (α+y)/(β+E) = B α/β + (1−B) y/E with B = β/(β+E)."""
    table = plots.shrinkage_data(counties)
    beta = counties.eb.beta
    expected = beta / (beta + counties.data.n)
    defined = np.isfinite(table["shrinkage"])
    np.testing.assert_allclose(table["shrinkage"][defined], expected[defined], rtol=1e-8)


def test_full_bayes_shrinks_small_groups_more(rats_fits):
    fit = rats_fits["partial"]
    table = plots.shrinkage_data(fit)
    np.testing.assert_allclose(table["mean"], fit.draws("theta").mean(axis=(0, 1)))
    fraction = table["shrinkage"].to_numpy()
    # away from the target the fraction is well determined; it lies in [0, 1]
    far = np.abs(table["raw"] - table["target"]) > 0.03
    assert far.sum() > 40
    assert np.all((fraction[far] > 0) & (fraction[far] < 1))
    n = table["n"].to_numpy()
    small, large = far & (n <= 20), far & (n > 30)
    assert small.sum() > 10 and large.sum() > 3
    assert fraction[large].mean() < fraction[small].mean()


def test_complete_pooling_mean_is_the_pooled_value(rats_fits, rats):
    """Under Beta(½, ½), θ | y ~ Beta(½ + Σy, ½ + Σn − Σy), the same for every group."""
    fit = rats_fits["complete"]
    table = plots.shrinkage_data(fit)
    assert table["mean"].nunique() == 1
    a, b = 0.5 + rats["y"].sum(), 0.5 + rats["n"].sum() - rats["y"].sum()
    exact_mean, exact_sd = a / (a + b), np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert abs(table["mean"].iloc[0] - exact_mean) < mc_tolerance(exact_sd)
    np.testing.assert_allclose(table["target"], table["mean"])
    defined = np.isfinite(table["shrinkage"])
    np.testing.assert_allclose(table["shrinkage"][defined], 1.0)


def test_no_pooling_has_no_target(rats_fits):
    """Each θ_j | y_j ~ Beta(½ + y_j, ½ + n_j − y_j)."""
    table = plots.shrinkage_data(rats_fits["none"])
    assert table["target"].isna().all() and table["shrinkage"].isna().all()
    y, n = table["y"].to_numpy(), table["n"].to_numpy()
    a, b = 0.5 + y, 0.5 + n - y
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert np.all(np.abs(table["mean"] - a / (a + b)) < mc_tolerance(sd))


def test_shrinkage_arrows_layouts(rats_fits, counties):
    fit = rats_fits["partial"]
    rows = plots.shrinkage_arrows_data(fit)
    assert rows.layout == "rows"
    assert rows.table["n"].is_monotonic_increasing
    np.testing.assert_array_equal(rows.table["position"], np.arange(70))
    by_raw = plots.shrinkage_arrows_data(fit, sort_by="raw")
    assert by_raw.table["raw"].is_monotonic_increasing
    many = plots.shrinkage_arrows_data(counties, max_rows=100)
    assert many.layout == "size" and many.log_size
    np.testing.assert_array_equal(many.table["position"], many.table["n"])
    with pytest.raises(SpecificationError, match="sort_by"):
        plots.shrinkage_arrows_data(fit, sort_by="size")  # type: ignore[arg-type]


# ------------------------------------------------------------------------- forest
def test_forest_data_three_poolings(rats_fits):
    table = plots.forest_data(rats_fits, max_groups=70)
    assert list(table["model"].unique()) == ["none", "complete", "partial"]
    assert len(table) == 3 * 70
    complete = table[table["model"] == "complete"]
    assert complete["lower"].nunique() == 1 and complete["upper"].nunique() == 1
    partial = table[table["model"] == "partial"].reset_index(drop=True)
    summary = rats_fits["partial"].summary().query("param == 'theta'").reset_index(drop=True)
    np.testing.assert_allclose(partial["mean"], summary["mean"])
    assert (table["lower"] <= table["mean"]).all() and (table["mean"] <= table["upper"]).all()


def test_forest_selects_groups(rats_fits):
    fit = rats_fits["partial"]
    index, note = plots.select_groups(fit, max_groups=10)
    assert index.size == 10 and "10 of 70" in note
    raw = fit.data.y / fit.data.n
    assert raw[index[0]] == raw.min() and raw[index[-1]] == raw.max()
    assert np.all(np.diff(raw[index]) >= 0)
    table = plots.forest_data(fit, groups=["70", "1"])
    assert list(table["group"]) == ["70", "1"]
    with pytest.raises(SpecificationError, match="unknown group"):
        plots.forest_data(fit, groups=["71"])
    with pytest.raises(TypeError, match="Fit"):
        plots.forest_data([fit])  # type: ignore[arg-type]


def test_forest_rejects_fits_to_different_groups(rats_fits, spacex):
    with pytest.raises(SpecificationError, match="share their groups"):
        plots.forest_data({"rats": rats_fits["partial"], "spacex": spacex})


# ------------------------------------------------------------------------- trace
def test_trace_data_defaults_and_ranks(rats_fits):
    fit = rats_fits["partial"]
    data = plots.trace_data(fit)
    names = list(dict.fromkeys(data.draws["variable"]))
    assert names == ["alpha", "beta", "mu", "theta[1]", "theta[2]", "theta[3]"]
    total = DRAWS * CHAINS
    for _, part in data.draws.groupby("variable"):
        # ranks of all draws pooled: they follow the values and run from 1 to N
        order = np.argsort(part["value"].to_numpy(), kind="stable")
        assert np.all(np.diff(part["rank"].to_numpy()[order]) >= 0)
        assert part["rank"].sum() == pytest.approx(total * (total + 1) / 2)
        assert part["rank"].min() >= 1 and part["rank"].max() <= total
    alpha = data.draws[data.draws["variable"] == "alpha"]
    np.testing.assert_array_equal(alpha["value"], fit.draws("alpha").ravel())
    assert np.all(data.diagnostics["r_hat"].between(0.95, 1.1))


def test_trace_data_selection(rats_fits, rats_eb, spacex):
    assert set(plots.trace_data(rats_fits["complete"]).draws["variable"]) == {"theta"}
    eb_vars = set(plots.trace_data(rats_eb).draws["variable"])
    assert eb_vars == {"theta[1]", "theta[2]", "theta[3]"}
    one = plots.trace_data(spacex, ["mu", "theta[Falcon 9]"])
    falcon = one.draws[one.draws["variable"] == "theta[Falcon 9]"]
    np.testing.assert_array_equal(falcon["value"], spacex.draws("theta")[..., 1].ravel())
    with pytest.raises(SpecificationError, match="no group"):
        plots.trace_data(spacex, ["theta[Falcon 10]"])
    with pytest.raises(SpecificationError, match="no variable"):
        plots.trace_data(rats_eb, ["alpha"])


# ------------------------------------------------------------------------- new group, μ
def test_new_group_posterior_is_the_lectures_071(rats_eb):
    """EB by moments, 71st experiment (4 of 14): (α+4)/(α+β+14) = 0.2229 (lecture 000)."""
    data = plots.new_group_data(rats_eb, y=4, n=14)
    assert data.kind == "posterior"
    assert data.summary["mean"] == pytest.approx(0.2229, abs=5e-5)
    assert data.curve is not None
    grid, pdf = data.curve
    assert np.trapezoid(pdf, grid) == pytest.approx(1.0, abs=0.01)
    assert plots.new_group_data(rats_eb).kind == "predictive"


def test_population_mean_data(rats_fits, rats_eb, counties):
    fit = rats_fits["partial"]
    data = plots.population_mean_data(fit)
    assert data.source == "posterior"
    np.testing.assert_allclose(data.draws, fit.draws("mu").ravel())
    assert data.summary == fit.population_mean()
    # the mode of the drawn density is the MAP reported by the fit (to the grid spacing)
    spacing = np.max(np.diff(data.grid))
    assert abs(data.grid[np.argmax(data.density)] - data.summary["map"]) < 2 * spacing
    assert np.trapezoid(data.density, data.grid) == pytest.approx(1.0, abs=0.02)
    assert plots.population_mean_data(counties).source == "sampling"
    assert plots.population_mean_data(rats_eb).source == "point"
    with pytest.raises(SpecificationError, match="population"):
        plots.population_mean_data(rats_fits["none"])


# ------------------------------------------------------------------------- smoke tests
def test_plot_shrinkage(rats_fits, counties):
    fig = plots.plot_shrinkage(rats_fits["partial"])
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.collections) >= 2  # interval bars and points
    assert ax.get_xlabel() == "observed rate y / n"
    assert "experiment" in ax.get_title()
    render(fig)
    many = plots.plot_shrinkage(counties)
    assert len(many.axes[0].collections) >= 1
    render(many)


def test_plot_shrinkage_into_given_axes(rats_eb):
    outer = Figure()
    ax = outer.subplots()
    assert plots.plot_shrinkage(rats_eb, ax=ax) is outer
    render(outer)


@pytest.mark.parametrize("pooling", ["none", "complete", "partial"])
def test_plot_shrinkage_arrows(rats_fits, pooling):
    fig = plots.plot_shrinkage_arrows(rats_fits[pooling])
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].get_yticklabels()) == 70
    render(fig)


def test_plot_shrinkage_arrows_many_groups(counties):
    fig = plots.plot_shrinkage_arrows(counties, max_rows=100)
    assert fig.axes[0].get_yscale() == "log"
    render(fig)


def test_plot_forest(rats_fits, spacex):
    fig = plots.plot_forest(rats_fits, max_groups=12)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 12
    assert "12 of 70" in ax.get_title()
    assert len(fig.legends) == 1
    render(fig)
    single = plots.plot_forest(spacex)
    assert len(single.axes[0].get_yticklabels()) == 4
    render(single)


def test_plot_trace(rats_fits, counties):
    fig = plots.plot_trace(rats_fits["partial"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 6
    assert len(fig.axes[0].get_lines()) == CHAINS
    render(fig)
    assert len(plots.plot_trace(counties, ["theta"], max_theta=2).axes) == 4


@pytest.mark.parametrize("data", [{}, {"y": 4, "n": 14}, {"n": 20}])
def test_plot_new_group(rats_fits, data):
    fig = plots.plot_new_group(rats_fits["partial"], **data)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    title = fig.axes[0].get_title()
    assert ("Posterior" in title) == ("y" in data)
    assert ("brand-new" in title) == ("y" not in data)
    render(fig)


def test_plot_population_mean(rats_fits, rats_eb, counties):
    for fit in (rats_fits["partial"], rats_eb, counties):
        fig = plots.plot_population_mean(fit)
        assert isinstance(fig, Figure) and len(fig.axes) == 1
        render(fig)
    with pytest.raises(SpecificationError):
        plots.plot_population_mean(rats_fits["complete"])


def test_interval_level_is_checked(rats_fits):
    with pytest.raises(SpecificationError, match="between 0 and 1"):
        plots.shrinkage_data(rats_fits["partial"], ci_prob=1.5)
    with pytest.raises(SpecificationError, match="between 0 and 1"):
        plots.forest_data(rats_fits, ci_prob=0)


def test_marginal_of_tau_integrates_to_one_and_draws():
    schools = datasets.load("eight-schools")
    fit = Model(family="normal", draws=500).fit(schools, y="y", se="sigma", group="school")
    data = plots.marginal_data(fit, "tau")
    # the reflected KDE keeps its mass on τ ≥ 0 (up to the 0.05% of draws past the grid)
    mass = np.trapezoid(data.density, data.grid)
    assert mass == pytest.approx(1.0, abs=0.01)
    assert data.summary["median"] == pytest.approx(np.median(fit.draws("tau")))
    figure = plots.plot_marginal(fit, "tau")
    assert len(figure.axes) == 1
    with pytest.raises(SpecificationError, match="one value per group"):
        plots.marginal_data(fit, "theta")


# --------------------------------------------------------------------- readable at scale
def test_one_extreme_interval_does_not_squash_the_forest():
    """No pooling of kidney-like counts: one county of 262 people has an interval ~20 times
    as wide as the others'; it runs past the edge, the rest keep the axis."""
    rng = np.random.default_rng(2)
    size = np.append(rng.integers(20_000, 200_000, 39), 262)
    table = pd.DataFrame({"county": [f"c{i}" for i in range(40)], "n": size,
                          "y": rng.poisson(1e-4 * size)})
    fit = Model(family="gamma-poisson", pooling="none", method="exact", draws=DRAWS,
                chains=CHAINS).fit(table, y="y", n="n", group="county")
    forest = plots.forest_data(fit)
    tiny = forest[forest["group"] == "c39"].iloc[0]
    others = forest[forest["group"] != "c39"]
    fig = plots.plot_forest(fit)
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    assert high < tiny["upper"]  # the extreme interval runs past the edge …
    assert high >= others["upper"].max() and low <= others["lower"].min()  # … no other
    assert high < 3 * others["upper"].max()  # the others fill the axis
    assert "1 interval runs past the edge" in ax.get_title()
    assert len(ax.get_yticklabels()) == 40
    # without an extreme interval the axis holds every interval whole
    plain = plots.plot_forest(fit, groups=[f"c{i}" for i in range(39)])
    assert "past the edge" not in plain.axes[0].get_title()
    assert plain.axes[0].get_xlim()[1] >= others["upper"].max()
    render(fig)


def test_interval_limits_keep_everything_without_outliers():
    lower, upper = np.array([0.0, 1, 2]), np.array([3.0, 4, 5])
    low, high = plots._style.interval_limits(np.array([1.5, 2.5, 3.5]), lower, upper)
    assert low < 0 and high > 5 and high - low < 5.5


def test_shrinkage_legends_read_right():
    """Standard errors all below 1 still get size entries; the 45° line says what it means."""
    table = pd.DataFrame({"study": list("abcdef"), "y": [0.1, 0.5, -0.2, 0.3, 0.8, 0.0],
                          "se": [0.12, 0.2, 0.25, 0.3, 0.4, 0.5]})
    fit = Model(family="normal", method="exact", draws=DRAWS, chains=CHAINS).fit(
        table, y="y", se="se", group="study")
    ax = plots.plot_shrinkage(fit).axes[0]
    lines, sizes = ax.artists[0] if ax.artists else None, ax.get_legend()
    assert [t.get_text() for t in sizes.get_texts()] == ["0.12", "0.28", "0.5"]
    first = [t.get_text() for t in lines.get_texts()] if lines is not None else []
    assert "45° line: no pooling (posterior mean = observed estimate y)" in first


def test_cjk_group_names_map_to_glyphs_where_a_font_has_them(rats):
    """A CJK label is drawn from the first fallback font that has its glyphs (not as boxes);
    without any such font installed matplotlib warns of the missing glyph."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    from poolwise.outputs.plots._style import font_families

    table = rats.tail(3).assign(experiment=["東京", "おおさか", "北京"])
    fit = Model(method="eb-moments").fit(table, y="y", n="n", group="experiment")
    prop = font_manager.FontProperties(family=font_families())
    fonts = font_manager.fontManager._find_fonts_by_props(prop)  # matplotlib's fallback chain
    having = [f for f in fonts
              if all(FT2Font(str(f)).get_char_index(ord(c)) for c in "東京おさか北")]
    fig = plots.plot_forest(fit)
    if not having:
        with pytest.warns(UserWarning, match="Glyph .* missing"):
            render(fig)
        message = ("no font with CJK glyphs is installed here: apt-get install "
                   "fonts-droid-fallback (CI installs it)")
        if os.environ.get("POOLWISE_CI") == "require":
            pytest.fail(message)
        pytest.skip(message)
    render(fig)  # filterwarnings = error: a missing glyph would fail here
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any("東京" in label for label in labels)


def test_predictive_check_ecdf_on_a_grid_is_the_ecdf_at_the_grid_points():
    """Past EXACT_ECDF values the check plot's ECDF is a histogram on a grid (no sort): at
    each grid point it must be the fraction of values below it."""
    from poolwise.outputs.plots.checks import _ecdf

    values = np.random.default_rng(2).gamma(2.0, size=50_000)
    grid = np.linspace(0.5, 6.0, 200)
    x, p = _ecdf(values, grid)
    np.testing.assert_array_equal(x, grid)
    np.testing.assert_allclose(p, np.searchsorted(np.sort(values), grid) / values.size,
                               atol=1e-12)
    exact_x, exact_p = _ecdf(values)
    assert exact_x.size == values.size and exact_p[-1] == 1.0
