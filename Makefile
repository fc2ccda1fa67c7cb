# Set-up and everyday commands. Only Python 3.11 (or newer) and make are needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# A second interpreter for a smoke run on the newest Python we support (ArviZ 1.x there).
# Its full path: python3.13 itself, or pyenv's 3.13 when it is not the active version
# (pyenv's shim then exists but refuses to run). Empty when there is none.
ifndef PYTHON313
PYTHON313 := $(shell for py in python3.13 "env PYENV_VERSION=3.13 python3.13"; do \
	$$py -c 'import sys; print(sys.executable)' 2>/dev/null && break; done)
endif
VENV313 := .venv313
STAMP313 := $(VENV313)/.installed
# installed before the tests start, beside the first venv under `make -j2` (as CI runs it)
INSTALL313 := $(if $(PYTHON313),$(STAMP313))
# the Fit contract for every kind, the command line and the README: a few minutes on two cores
SMOKE := tests/test_contract.py tests/test_cli.py tests/test_readme.py

.PHONY: demo test test-slow test313 bench bench-scale clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

$(STAMP313): pyproject.toml
	$(PYTHON313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet --upgrade pip
	$(VENV313)/bin/python -m pip install --quiet -e ".[test]"
	touch $(STAMP313)

demo: $(STAMP)
	$(BIN)/poolwise fit rats --out demo-output --force

test: $(STAMP) $(INSTALL313)
	$(BIN)/ruff check .
	$(BIN)/mypy src
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not full" --durations=15
	$(MAKE) --no-print-directory test313

# The full statistical checks (simulation-based calibration at its declared power): the tests
# marked `full`, which `make test` leaves to their fast versions. Tens of minutes on two cores.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m full

# The smoke tests on Python 3.13, skipped with a message where there is no python3.13.
ifeq ($(PYTHON313),)
test313:
	@echo "test313: skipped, no python3.13 here (make test313 PYTHON313=/path/to/python3.13)"
else
test313: $(STAMP313)
	$(VENV313)/bin/python -m pytest -q -n auto --dist loadfile $(SMOKE)
endif

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python bench/rates.py
	$(BIN)/python bench/normal.py
	$(BIN)/python bench/mixed.py

# the command line at 10^4, 10^5 and 10^6 groups per family and method, and the peers (issue 11)
bench-scale: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) $(VENV313) demo-output .pytest_cache .mypy_cache .ruff_cache
