"""The HTML report: one self-contained page for every kind, checked as text and in a real
browser (headless Chromium driven by Selenium).

The browser test needs Debian's ``chromium`` and ``chromium-driver``; ``.ci/run``
installs them and sets ``POOLWISE_CI=require``, so that in CI a missing browser is a
failure, not a skip.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_contract import FAST, KINDS

import poolwise
from poolwise.cli import main
from poolwise.vocabulary import MCMC_METHODS

#: a group name that would run as code if the page did not escape it
SCRIPT = "<script>alert(1)</script>"
#: the sections every fit's page has, by id
SECTIONS = ("data", "model", "diagnostics", "results", "check", "provenance")
#: the column that names each kind's groups (custom models have none)
GROUP_COLUMN = {"rates": "g", "normal": "g", "nig": "g", "mixed": "g", "nested": "lab"}


def _data(name: str) -> pd.DataFrame:
    """The contract's tiny data for a kind, with its first group renamed to :data:`SCRIPT`."""
    table = KINDS[name].data()
    if name in GROUP_COLUMN:
        column = GROUP_COLUMN[name]
        first = table[column].iloc[0]
        table[column] = table[column].replace(first, SCRIPT)
    return table


def _fit_out(name: str, directory: Path, *extra: str) -> Path:
    kind = KINDS[name]
    csv = directory / f"{name}.csv"
    _data(name).to_csv(csv, index=False)
    out = directory / name
    warmup = ["--warmup", "60"] if kind.model(**kind.options).method in MCMC_METHODS else []
    code = main(["fit", str(csv), *kind.cli, "--draws", "60", "--chains", "2", *warmup,
                 "--quiet", "--out", str(out), *extra])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``poolwise fit --out`` for every kind, its first group named :data:`SCRIPT`."""
    directory = tmp_path_factory.mktemp("reports")
    return {name: _fit_out(name, directory) for name in KINDS}


# ------------------------------------------------------------------------ as text
@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_writes_one_self_contained_page(outputs, name):
    page = (outputs[name] / "report.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    # nothing is fetched: every src and href is a data URI or a link inside the page
    for reference in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert reference.startswith(("data:", "#")), reference
    assert "<script" not in page.replace("&lt;script", "")
    assert "<link" not in page and "@import" not in page and "url(" not in page
    if name in GROUP_COLUMN:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # the figures the output directory holds are in the page
    images = re.findall(r'<img src="data:image/(?:png|svg\+xml);base64,', page)
    pngs = [p for p in outputs[name].iterdir() if p.suffix == ".png" and p.name != "model.png"]
    assert len(images) >= len(pngs) + 1  # + the plate diagram (+ equations)


@pytest.mark.parametrize("name", ["rates", "mixed"])
def test_a_single_fit_shows_its_psis_loo_pareto_k(outputs, name):
    """The diagnostics table holds PSIS-LOO's largest k̂ of this one fit (it said "a
    comparison needs two fits or more"), and a k̂ over 0.7 is not 'no problem found'."""
    page = (outputs[name] / "report.html").read_text(encoding="utf-8")
    assert "largest Pareto k̂ (PSIS-LOO)" in page and "needs two fits" not in page
    bad = re.search(r"points with k̂ &gt; 0.7</td>\s*<td[^>]*>(\d+)<", page)
    assert bad is not None
    assert (int(bad.group(1)) > 0) == ("PSIS-LOO is unreliable" in page)
    if int(bad.group(1)) > 0:
        assert "No problem found" not in page


def test_the_page_says_where_it_came_from(outputs):
    page = (outputs["rates"] / "report.html").read_text(encoding="utf-8")
    digest = hashlib.sha256((outputs["rates"].parent / "rates.csv").read_bytes()).hexdigest()
    assert digest in page
    assert "poolwise fit" in page and "--draws 60" in page
    assert poolwise.__version__ in page
    # the provenance travels with the saved fit
    stored = json.loads(poolwise.load(outputs["rates"]).tree.attrs["provenance"])
    assert stored["input_sha256"] == digest and stored["data"]["rows"] == 6


def test_the_page_shows_the_model_as_fitted(outputs):
    page = (outputs["mixed"] / "report.html").read_text(encoding="utf-8")
    fit = poolwise.load(outputs["mixed"])
    for line in fit.equations():  # each equation drawn, its LaTeX as the image's text
        assert f'alt="{line}"' in page.replace("&#39;", "'") or line in page
    for prior in fit.describe_prior().split(";"):
        assert prior.strip().replace(">", "&gt;").replace("<", "&lt;") in page
    assert f"<code>{fit.method}</code>" in page


def test_a_saved_fit_gets_its_report_back(outputs, tmp_path, capsys):
    out = outputs["normal"]
    assert main(["report", str(out)]) == 2  # report.html is there: not overwritten
    assert "--force" in capsys.readouterr().err
    target = tmp_path / "again.html"
    assert main(["report", str(out / "posterior.nc"), "--output", str(target)]) == 0
    page = target.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert "forest.png" in page  # the figures are drawn again from the saved draws


def test_python_writes_the_same_page(tmp_path):
    kind = KINDS["rates"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = kind.model(**kind.options, method="exact", **FAST).fit(_data("rates"),
                                                                        **kind.columns)
        path = poolwise.report(fit, tmp_path / "rates.html")
    page = path.read_text(encoding="utf-8")
    assert "made" in page and "in Python" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_decisions_and_predictions_are_in_the_page(tmp_path):
    out = _fit_out("rates", tmp_path, "--rank", "higher", "--hypothesis",
                   "theta[b] > theta[c]", "--pairwise", "b,c,d", "--new-group")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert '<section id="decisions">' in page and '<section id="predictions">' in page
    assert "theta[b] &gt; theta[c]" in page and "ranks.png" in page
    assert "P(row &gt; column)" in page
    # the groups ranked first, in the order of their mean rank (the summary.csv's)
    import pandas as pd

    summary = pd.read_csv(out / "summary.csv").dropna(subset=["rank_mean"])
    first = summary.nsmallest(3, "rank_mean", keep="first")["group"].astype(str).tolist()
    ranked = page[page.index("Ranked first"):page.index("</table>", page.index("Ranked first"))]
    positions = [ranked.index(f"<td>{group}</td>") for group in first]
    assert positions == sorted(positions)


def test_compare_writes_a_report(tmp_path):
    csv = tmp_path / "rates.csv"
    _data("rates").to_csv(csv, index=False)
    out = tmp_path / "compare"
    assert main(["compare", str(csv), "--y", "y", "--n", "n", "--group", "g", "--quiet",
                 "--out", str(out)]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    for section in ("data", "models", "predictive", "estimates", "provenance"):
        assert f'<section id="{section}">' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for reference in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert reference.startswith(("data:", "#")), reference


# ------------------------------------------------------------------------ in a browser
def _browser():  # -> selenium webdriver, or skip / fail
    required = os.environ.get("POOLWISE_CI") == "require"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        chromium = None
    if chromium is None or driver is None:
        message = ("headless Chromium and Selenium are needed: apt-get install chromium "
                   "chromium-driver, and pip install -e '.[test]' (CI installs both)")
        if required:
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_opens_in_a_browser(browser, outputs, name):
    from PIL import Image
    from selenium.webdriver.common.by import By

    browser.get_log("performance")  # what earlier pages did
    browser.get((outputs[name] / "report.html").as_uri())
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
    requested = [json.loads(entry["message"])["message"]["params"]["request"]["url"]
                 for entry in browser.get_log("performance")
                 if '"Network.requestWillBeSent"' in entry["message"]]
    assert requested, "the browser log shows no request, not even the page"
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
    for section in SECTIONS:
        assert browser.find_element(By.ID, section).is_displayed()
    assert browser.execute_script("return document.scripts.length") == 0
    if name in GROUP_COLUMN:  # the escaped group name is on the page as text
        assert SCRIPT in browser.find_element(By.ID, "results").text
    broken = browser.execute_script(
        "return Array.from(document.images).filter(i => !i.complete || "
        "i.naturalWidth === 0).length")
    assert broken == 0
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L"))
    assert shot.std() > 10 and len(np.unique(shot)) > 20  # not a blank page


def test_a_saved_fit_report_keeps_the_fit_s_warnings(tmp_path):
    out = tmp_path / "schools"
    assert main(["fit", "eight-schools", "--method", "eb-ml", "--quiet", "--out",
                 str(out)]) == 0
    assert main(["report", str(out), "--output", str(tmp_path / "again.html")]) == 0
    for page in (out / "report.html", tmp_path / "again.html"):
        text = page.read_text(encoding="utf-8")
        assert "maximised on a boundary" in text
        assert "point estimates" in text  # no draws of the population parameters


def test_rank_columns_are_whole_numbers_with_separators():
    """Ranks of 10^5 groups read 66,500.4 and [956, 8,194], not 6.65e+04."""
    from poolwise.outputs.report import _cell

    assert _cell("rank_mean", 66500.43) == "66,500.4"
    assert (_cell("rank_lower", 955.8), _cell("rank_upper", 8194.1)) == ("956", "8,194")
    assert _cell("replicates", 12) == "12"
