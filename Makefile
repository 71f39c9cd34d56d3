# The two commands of the README: `make demo` and `make test`. Both set up .venv on a fresh machine
# (the dev extra for the tests, the docs extra for the documentation's build and quick start tests).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --disable-pip-version-check --quiet -c constraints.txt

.PHONY: demo test lint docs bench transfer-demo clean

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) torch==2.13.0
	$(PY) -m pip install $(PIP_FLAGS) -e '.[dev,docs]'
	@touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/exprssl demo --out demo_report

# two workers (pytest-xdist), a test module per unit: tests/conftest.py says why and in which order
TEST_WORKERS ?= 2
test: $(VENV)/.installed
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests scripts benchmarks

# the documentation site into site/; a warning fails the build, as in CI (tests/test_docs.py)
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

bench: $(VENV)/.installed
	$(PY) benchmarks/throughput.py

# pretrain once on TCGA PRAD miRNA counts, benchmark --model on TCGA BRCA (data: the syng-bts wheel)
transfer-demo: $(VENV)/.installed
	$(PY) -m pip install $(PIP_FLAGS) --no-deps syng-bts
	$(PY) scripts/transfer_demo.py --out transfer_demo

clean:
	rm -rf $(VENV) demo_report transfer_demo site .pytest_cache
