# Audio feature pipeline. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# What to work on and where outputs go; override on the command line.
DATASET ?= data/demo
NAME ?= $(notdir $(abspath $(DATASET)))
OUT ?= data/output/$(NAME)/features
TABLE ?= $(OUT)/features.parquet
RUN ?= data/output/$(NAME)/run
EDA ?= data/output/$(NAME)/eda
PATCHES ?= data/output/$(NAME)/patches
JOBS ?= 0
SCHEDULER ?=
CLIP_TIMEOUT ?=
PRESET ?= default
LAYOUT ?=
MANIFEST ?=
SEGMENT ?=
MODELS ?= mlp,logreg,svm,rf,knn,hgb,cnn
CV ?= auto
SEED ?= 0
TUNE ?=
DEMO_CLIPS ?= 1000
MODEL ?= $(RUN)/model
FILE ?=

RUNNER_ARGS := --jobs $(JOBS) \
	$(if $(LAYOUT),--layout $(LAYOUT)) $(if $(MANIFEST),--manifest $(MANIFEST)) \
	$(if $(SCHEDULER),--backend dask --scheduler $(SCHEDULER)) \
	$(if $(CLIP_TIMEOUT),--clip-timeout $(CLIP_TIMEOUT))
FEATURE_ARGS := --out $(OUT) --preset $(PRESET) $(if $(SEGMENT),--segment $(SEGMENT)) $(RUNNER_ARGS)
comma := ,
# The CNN models (cnn, cnn_aug) learn from the log-mel patches of `make patches`.
CNN_MODELS := $(filter cnn cnn_aug,$(subst $(comma), ,$(MODELS)))
TRAIN_ARGS := --models $(MODELS) --cv $(CV) --seed $(SEED) $(if $(TUNE),--tune) \
	$(if $(CNN_MODELS),--patches $(PATCHES))

# A target that depends on its own arguments reruns when they change: the
# argument list is kept in a file that is rewritten only when it differs
# (make then sees a newer prerequisite), so make redoes work only then.
MEMO := data/output/$(NAME)/.make

.PHONY: FORCE help install demo-data features patches train predict eda report demo test test-browser lint bench clean

help: ## List the targets and the variables they take
	@echo "Usage: make TARGET [VAR=value ...]"
	@echo
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-13s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: DATASET=$(DATASET) OUT=$(OUT) RUN=$(RUN) EDA=$(EDA) PATCHES=$(PATCHES)"
	@echo "           JOBS=$(JOBS) (0 = all cores) PRESET=$(PRESET) LAYOUT=$(LAYOUT) MANIFEST=$(MANIFEST)"
	@echo "           SCHEDULER=$(SCHEDULER) (tcp://host:8786 or local:N: run on Dask) CLIP_TIMEOUT=$(CLIP_TIMEOUT)"
	@echo "           SEGMENT=$(SEGMENT) (seconds: one row per window) TUNE=$(TUNE) (1: tune inside the folds)"
	@echo "           MODELS=$(MODELS) CV=$(CV) SEED=$(SEED) DEMO_CLIPS=$(DEMO_CLIPS) MODEL=$(MODEL) FILE=$(FILE)"

install: $(STAMP) ## Create .venv/ and install the project (editable, with dev tools)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo-data: data/demo/metadata/UrbanSound8K.csv ## Generate the synthetic UrbanSound8K-style demo dataset in data/demo/

data/demo/metadata/UrbanSound8K.csv: | $(STAMP)
	$(PY) -m features demo-data data/demo --clips $(DEMO_CLIPS) --seed $(SEED)

features: $(STAMP) ## Extract one row of features per clip (kept when already up to date): DATASET=dir|URL OUT=dir [PRESET SEGMENT LAYOUT MANIFEST JOBS SCHEDULER CLIP_TIMEOUT]
	@if [ "$(DATASET)" = "data/demo" ]; then $(MAKE) --no-print-directory demo-data; fi
	$(PY) -m features extract $(DATASET) $(FEATURE_ARGS)

patches: $(STAMP) ## Write one log-mel patch per clip (the CNN's input) into PATCHES=dir [JOBS SCHEDULER]
	@if [ "$(DATASET)" = "data/demo" ]; then $(MAKE) --no-print-directory demo-data; fi
	$(PY) -m features patches $(DATASET) --out $(PATCHES) $(RUNNER_ARGS)

train: $(RUN)/run.json ## Compare the Keras MLP and CNN with scikit-learn baselines (redone only when the table or options change): TABLE=file RUN=dir [MODELS CV SEED TUNE PATCHES]; the cnn models make PATCHES first if needed

$(RUN)/run.json: $(TABLE) $(MEMO)/train.args $(if $(CNN_MODELS),$(PATCHES)/patches.json) | $(STAMP)
	$(PY) -m classify train $(TABLE) --out $(RUN) $(TRAIN_ARGS)

$(MEMO)/train.args: FORCE
	@mkdir -p $(@D)
	@echo '$(TABLE) $(TRAIN_ARGS)' | cmp -s - $@ || echo '$(TABLE) $(TRAIN_ARGS)' > $@

FORCE:

$(TABLE):
	@echo "make: no feature table $(TABLE); run 'make features' first (or set TABLE=)" >&2; exit 2

# The CNN's patches are brought up to date before training (the command
# keeps them, untouched, when they are): from DATASET, refused when TABLE was
# given without the DATASET it came from; PATCHES= given with patches in it
# is taken as it is.
$(PATCHES)/patches.json: FORCE | $(STAMP)
	@if [ "$(origin PATCHES)" = "command line" ] && [ -f $@ ]; then exit 0; \
	elif [ "$(TABLE)" != "$(OUT)/features.parquet" ] && [ "$(origin DATASET)" = "file" ]; then \
		echo "make: MODELS=$(MODELS) has CNN models, which need the log-mel patches of the clips of $(TABLE): set DATASET= to its dataset (or PATCHES= to a folder from 'make patches'), or leave cnn out of MODELS" >&2; exit 2; \
	else $(MAKE) --no-print-directory patches; fi

predict: $(STAMP) ## Predict labels of new clips with a trained bundle: FILE=path [MODEL=dir]
	@if [ -z "$(FILE)" ]; then echo "make predict: set FILE=path/to/clip.wav (or a folder)" >&2; exit 2; fi
	$(PY) -m classify predict --model $(MODEL) $(FILE)

eda: $(EDA)/index.html ## Write the exploratory HTML page for DATASET (uses its features table if present) into EDA=dir

$(EDA)/index.html: $(OUT)/features.json | $(STAMP)
	$(PY) -m classify eda $(DATASET) --features $(OUT) --out $(EDA)

$(OUT)/features.json:
	@echo "make: no features in $(OUT); run 'make features' first" >&2; exit 2

report: $(RUN)/report/index.html ## Write the HTML report of a training run: RUN=dir

$(RUN)/report/index.html: $(RUN)/run.json | $(STAMP)
	$(PY) -m classify report $(RUN)

demo: $(STAMP) ## Everything on the demo data: data, features, training, EDA and report (a second run takes seconds)
	$(MAKE) --no-print-directory demo-data
	$(MAKE) --no-print-directory features
	$(MAKE) --no-print-directory train
	$(MAKE) --no-print-directory eda
	$(MAKE) --no-print-directory report
	@echo
	@echo "Outputs:"
	@echo "  features  $(OUT)/features.csv (+ .parquet, .schema.csv, .json, errors.csv)"
	$(if $(CNN_MODELS),@echo "  patches   $(PATCHES)/patches.npy (+ patches.csv, .parquet, .json: the CNN's input)")
	@echo "  training  $(RUN)/leaderboard.csv, $(RUN)/report.md, model bundle $(RUN)/model/"
	@echo "  pages     $(EDA)/index.html and $(RUN)/report/index.html"

test: $(STAMP) ## Run the whole test suite
	$(PY) -m pytest

test-browser: $(STAMP) ## Install Chromium from Debian's packages and run the headless page-render tests
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(PY) -m pytest -m browser -v

lint: $(STAMP) ## Check the code with ruff
	$(PY) -m ruff check features classify tests

bench: $(STAMP) ## Benchmarks: extractor vs the tutorial loop, the runner at scale (Dask, memory), the model comparison, the CNN and make demo with it
	$(PY) tests/benchmarks/bench_features.py
	$(PY) tests/benchmarks/bench_runner.py
	$(PY) tests/benchmarks/bench_train.py
	$(PY) tests/benchmarks/bench_cnn.py --demo

clean: ## Remove generated outputs (data/output, the demo and benchmark data); never your datasets
	rm -rf data/output data/bench
	@if [ -f data/demo/.generated ]; then rm -rf data/demo; fi
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
