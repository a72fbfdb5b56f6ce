# One command per job; every target creates .venv and installs the project when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STUDY ?= ablations/lesson_grid.yaml
TUNE ?= ablations/tune_dropout_lr.yaml
# The shared stores of a multi-machine set-up come from the environment when set (see docs/workers.md).
TRACKING_URI ?= $(if $(MLFLOW_TRACKING_URI),$(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlflow.db)
STORAGE ?= $(if $(OPTUNA_STORAGE),$(OPTUNA_STORAGE),sqlite:///$(CURDIR)/optuna.db)
DASHBOARD_PORT ?= 8080
HOST ?= 127.0.0.1
PORT ?= 5000
DATA_DIR ?=
# `make test` runs this many pytest processes: half the suite waits on subprocesses, stores and servers, so
# three keep two cores busy (measured: docs/tests.md); 0 runs it in this process. A process gets a test (or all
# tests of a module with a module-scoped fixture, so it is built once: --dist loadgroup, see tests/conftest.py)
# when it has at most two waiting, in the suite's order (slow first): no long test starts last.
TEST_WORKERS ?= 3
WORKERS ?=
ARGS ?=
DATA_ARG := $(if $(DATA_DIR),--data-dir $(DATA_DIR),)
WORKERS_ARG := $(if $(WORKERS),--workers $(WORKERS),)
# RAY=local (a new Ray instance on this machine) or RAY=host:6379 (an existing cluster): the workers as Ray actors.
RAY ?=
RAY_ARG := $(if $(RAY),--ray $(RAY),)
RAY_INSTALL := $(if $(RAY),install-ray,)
DOCS_PORT ?= 8000
comma := ,
PIP_INSTALL := $(BIN)/python -m pip install --quiet

.PHONY: install install-ray install-docs ablate plan worker status report synthesize ui tune dashboard test test-fast clean bench bench-grid docs docs-serve

install: $(VENV)/.installed

# setuptools' editable build prints a 13-line BuildBackendWarning ("Editable installation ...") through pip even
# with --quiet; filtered by its message while installing, so a first `make ablate` prints only our lines.
$(VENV)/.installed $(VENV)/.installed-ray $(VENV)/.installed-docs: \
  export PYTHONWARNINGS := $(if $(PYTHONWARNINGS),$(PYTHONWARNINGS)$(comma),)ignore:Editable installation

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) -e '.[test]'
	touch $@

install-ray: $(VENV)/.installed-ray  ## the optional Ray extra (study run/tune --ray); CI installs it to run its tests

$(VENV)/.installed-ray: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[test,ray]'
	touch $@

install-docs: $(VENV)/.installed-docs  ## the optional docs extra (MkDocs, Material, mkdocstrings); `make docs` installs it when needed

$(VENV)/.installed-docs: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[test,docs]'
	touch $@

ablate: install $(RAY_INSTALL)  ## train every pending trial of STUDY with WORKERS local processes (or Ray workers: RAY=), then write its report
	$(BIN)/python -m study run $(STUDY) $(WORKERS_ARG) $(RAY_ARG) --tracking-uri $(TRACKING_URI) --storage $(STORAGE) $(DATA_ARG) $(ARGS)

plan: install  ## before running STUDY: its trials, trial-epochs, predicted wall time per executor and worker count (calibrates this machine once), detectable differences from an earlier run
	$(BIN)/python -m study plan $(STUDY) --tracking-uri $(TRACKING_URI) $(DATA_ARG) $(ARGS)

worker: install  ## join STUDY's queue (STORAGE) from this machine and train until no trial is left
	$(BIN)/python -m study worker $(STUDY) --tracking-uri $(TRACKING_URI) --storage $(STORAGE) $(DATA_ARG) $(ARGS)

status: install  ## STUDY's trials by state, workers seen alive, ETA
	$(BIN)/python -m study status $(STUDY) --tracking-uri $(TRACKING_URI) --storage $(STORAGE)

report: install  ## rewrite reports/<study>/ from the MLflow store
	$(BIN)/python -m study report $(STUDY) --tracking-uri $(TRACKING_URI) $(DATA_ARG)

synthesize: install  ## reports/lesson/README.md: every lesson claim x every lesson study's verdict, one line per claim
	$(BIN)/python -m study synthesize $(ARGS)

ui: install  ## MLflow UI on http://$(HOST):$(PORT) for our store
	$(BIN)/python -m study ui --tracking-uri $(TRACKING_URI) --host $(HOST) --port $(PORT)

tune: install $(RAY_INSTALL)  ## Optuna-tune TUNE with WORKERS local processes or Ray workers (RAY=; resumes the same study), retrain base vs tuned, write reports/<study>/
	$(BIN)/python -m study tune $(TUNE) $(WORKERS_ARG) $(RAY_ARG) --storage $(STORAGE) --tracking-uri $(TRACKING_URI) $(DATA_ARG) $(ARGS)

dashboard: install  ## optuna-dashboard on http://$(HOST):$(DASHBOARD_PORT) for the Optuna storage
	$(BIN)/optuna-dashboard $(STORAGE) --host $(HOST) --port $(DASHBOARD_PORT)

test: install  ## the whole test suite (unit + integration on the real stack), on TEST_WORKERS processes (pytest-xdist)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(ARGS)

test-fast: install  ## the tests not marked slow (unit + the tiny real-stack studies): quick feedback
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not slow" $(ARGS)

docs: install-docs  ## the manual (docs/, mkdocs.yml) as a site in site/; strict: a broken link or a missing page fails
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: install-docs  ## the manual on http://$(HOST):$(DOCS_PORT), rebuilt as you edit it
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr $(HOST):$(DOCS_PORT)

clean:  ## remove generated stores (not reports)
	rm -rf mlflow.db mlflow.db-shm mlflow.db-wal optuna.db optuna.db-shm optuna.db-wal mlflow.db.lock optuna.db.lock mlartifacts .pytest_cache

bench: install  ## throughput benchmark (naive lesson code vs our runner); writes benchmarks/results/
	$(BIN)/python benchmarks/bench.py $(if $(DATA_DIR),--data-dir $(DATA_DIR),) $(ARGS)

bench-grid: install  ## the lesson grid end to end with each executor (keras, fused), their wall times and equivalence
	$(BIN)/python benchmarks/grid_executors.py --no-confirm --workers $(if $(filter-out 1,$(WORKERS)),$(WORKERS),2) $(if $(DATA_DIR),--data-dir $(DATA_DIR),) $(ARGS)
