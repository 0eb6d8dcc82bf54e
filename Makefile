# learnsyn: two commands for a fresh machine.
#   make demo   creates .venv, installs, runs the main job on the CPU
#   make test   creates .venv if needed, installs, runs the whole suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU wheel of torch: installing it first keeps pip from pulling a multi-GB CUDA build
# (PyPI's torch for Linux is the CUDA one). Tried in turn: the +cpu wheel from pip's own
# sources (a local wheelhouse), then from TORCH_INDEX, then TORCH_CPU as PyPI has it (macOS,
# whose wheels are CPU-only). Give TORCH_CPU=torch==X to choose another release.
TORCH_CPU ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test lint bench scoreboard clean install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_CPU)+cpu" 2>/dev/null \
	  || $(PY) -m pip install --quiet "$(TORCH_CPU)+cpu" --extra-index-url "$(TORCH_INDEX)" \
	  || $(PY) -m pip install --quiet "$(TORCH_CPU)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/learnsyn demo --out runs/demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# two interleaved parts side by side, one per core (each test is single-threaded)
	OMP_NUM_THREADS=1 $(PY) tests/run_shards.py -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(VENV)/bin/learnsyn bench

# The N = 1000 cells of the scoreboard (about 30 min on one core; cached, so it resumes);
# learned runs to score: make scoreboard RUNS="runs/ideal runs/bounded"; OVERWRITE=1 replaces a
# board that holds cells or runs this call leaves out
RUNS ?=
OVERWRITE ?=
scoreboard: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/learnsyn scoreboard --synapses 1000 --out runs/scoreboard \
		$(if $(RUNS),--runs $(RUNS)) $(if $(OVERWRITE),--overwrite)

clean:
	rm -rf $(VENV) build *.egg-info
