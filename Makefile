# Two commands on a fresh machine:  `make run` (set up + launch the app)  and  `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
# This machine only; `make run ADDRESS=0.0.0.0` serves the network (put a proxy in front of it).
ADDRESS ?= 127.0.0.1

.PHONY: run test setup setup-dev screenshots report clean deploy-local

$(VENV)/.app-installed: requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps facenet-pytorch==2.6.0
	touch $@

$(VENV)/.dev-installed: $(VENV)/.app-installed requirements-dev.txt requirements-scale.txt
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

setup: $(VENV)/.app-installed
setup-dev: $(VENV)/.dev-installed

run: setup
	$(VENV)/bin/streamlit run Home.py --server.port $(PORT) --server.address $(ADDRESS)

# nginx in front of the app and two API replicas, all on 127.0.0.1 (needs Debian's nginx); Ctrl-C stops it.
deploy-local: setup
	deploy/local.sh

test: setup-dev
	$(PY) -m pytest

# The README's page pictures (docs/screenshots/*.jpg), taken by the headless-Chromium tests.
screenshots: setup-dev
	EMOLENS_DOCS_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/browser

# docs/REPORT.md tables and docs/slides.pptx, regenerated from weights/reports/*.json.
report: setup-dev
	$(PY) -m training.make_report

clean:
	rm -rf $(VENV) .pytest_cache artifacts
