# Audio feature pipeline. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# A value as one shell word: '...' with any ' inside escaped (paths with spaces).
q = '$(subst ','\'',$(1))'

# What to work on and where outputs go; override on the command line.
DATASET ?= data/demo
# One output folder per dataset: its folder name (plus a short hash of its path
# or URL unless it sits in ./data/), so /a/data and /b/data never share one.
ifeq ($(origin NAME),undefined)
NAME := $(shell $(PYTHON) -m features.io.naming $(call q,$(DATASET)))
endif
$(if $(NAME),,$(error cannot name the outputs of DATASET=$(DATASET): $(PYTHON) -m features.io.naming failed (is $(PYTHON) installed?)))
OUT ?= data/output/$(NAME)/features
TABLE ?= $(OUT)/features.parquet
RUN ?= data/output/$(NAME)/run
EDA ?= data/output/$(NAME)/eda
PATCHES ?= data/output/$(NAME)/patches
# How runs run: the defaults are RunOptions' own (python -m features.engine.options).
RUN_DEFAULTS := $(shell $(PYTHON) -m features.engine.options)
run_default = $(patsubst $(1)=%,%,$(filter $(1)=%,$(RUN_DEFAULTS)))
JOBS ?= $(call run_default,jobs)
SCHEDULER ?=
CLIP_TIMEOUT ?=
PRESET ?= default
LAYOUT ?=
MANIFEST ?=
SEGMENT ?=
FRAMES ?=
DURATION ?=
MODELS ?= mlp,logreg,svm,rf,knn,hgb,cnn
CV ?= auto
SEED ?= 0
TUNE ?=
SELECT ?=
DEMO_CLIPS ?= 1000
MODEL ?=
FILE ?=

# Make cannot name a file target with a space in it: the folders it writes must have none.
$(foreach v,NAME OUT TABLE RUN EDA PATCHES,$(if $(word 2,$($(v))),$(error $(v)='$($(v))' has a space; make cannot use it as a file name: choose a folder without one (DATASET may have spaces))))

RUNNER_ARGS := --jobs $(JOBS) \
	$(if $(LAYOUT),--layout $(LAYOUT)) $(if $(MANIFEST),--manifest $(call q,$(MANIFEST))) \
	$(if $(SCHEDULER),--backend dask --scheduler $(SCHEDULER)) \
	$(if $(CLIP_TIMEOUT),--clip-timeout $(CLIP_TIMEOUT))
FEATURE_ARGS := --out $(OUT) --preset $(PRESET) $(if $(SEGMENT),--segment $(SEGMENT)) $(if $(FRAMES),--frames) $(RUNNER_ARGS)
comma := ,
# The CNN models (cnn, cnn_aug) learn from the log-mel patches of `make patches`.
CNN_MODELS := $(filter cnn cnn_aug,$(subst $(comma), ,$(MODELS)))
TRAIN_ARGS := --models $(MODELS) --cv $(CV) --seed $(SEED) $(if $(TUNE),--tune) \
	$(if $(SELECT),--select $(SELECT)) \
	$(if $(CNN_MODELS),--patches $(PATCHES))

# A target that depends on its own arguments reruns when they change: the
# argument list is kept in a file that is rewritten only when it differs
# (make then sees a newer prerequisite), so make redoes work only then.
MEMO ?= data/output/$(NAME)/.make

.PHONY: FORCE help install demo-data features patches train predict eda report demo test test-browser lint bench clean

help: ## List the targets and the variables they take
	@echo "Usage: make TARGET [VAR=value ...]"
	@echo
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-13s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: DATASET=$(DATASET) (outputs under data/output/$(NAME)/)"
	@echo "           OUT=$(OUT) RUN=$(RUN) EDA=$(EDA) PATCHES=$(PATCHES)"
	@echo "           JOBS=$(JOBS) (0 = all cores) PRESET=$(PRESET) LAYOUT=$(LAYOUT) MANIFEST=$(MANIFEST) DURATION=$(DURATION) (seconds per CNN patch)"
	@echo "           SCHEDULER=$(SCHEDULER) (tcp://host:8786 or local:N: run on Dask) CLIP_TIMEOUT=$(CLIP_TIMEOUT) (empty: $(call run_default,default_clip_timeout) s + $(call run_default,seconds_per_mb) s per MB)"
	@echo "           SEGMENT=$(SEGMENT) (seconds: one row per window) FRAMES=$(FRAMES) (1: also the frame-level values, OUT/frames/*.parquet) TUNE=$(TUNE) (1: tune inside the folds)"
	@echo "           SELECT=$(SELECT) (nested: also score 'pick the best model, then fit it' honestly)"
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
	@if [ $(call q,$(DATASET)) = "data/demo" ]; then $(MAKE) --no-print-directory demo-data; fi
	$(PY) -m features extract $(call q,$(DATASET)) $(FEATURE_ARGS)

patches: $(STAMP) ## Write one log-mel patch per clip (the CNN's input) into PATCHES=dir [DURATION JOBS SCHEDULER]
	@if [ $(call q,$(DATASET)) = "data/demo" ]; then $(MAKE) --no-print-directory demo-data; fi
	$(PY) -m features patches $(call q,$(DATASET)) --out $(PATCHES) $(if $(DURATION),--duration $(DURATION)) $(RUNNER_ARGS)

train: $(RUN)/run.json ## Compare the Keras MLP and CNN with scikit-learn baselines (redone only when the table or options change; features and patches are brought up to date first): TABLE=file RUN=dir [MODELS CV SEED TUNE PATCHES DURATION]

$(RUN)/run.json: $(TABLE) $(MEMO)/train.args $(if $(CNN_MODELS),$(PATCHES)/patches.json) | $(STAMP)
	$(PY) -m classify train $(TABLE) --out $(RUN) $(TRAIN_ARGS)

$(MEMO)/train.args: FORCE
	@mkdir -p $(@D)
	@echo '$(TABLE) $(RUN) $(TRAIN_ARGS)' | cmp -s - $@ || echo '$(TABLE) $(RUN) $(TRAIN_ARGS)' > $@

FORCE:

# The features of DATASET are brought up to date before they are used (the
# command keeps them, untouched, when they are); a TABLE= given on the
# command line is taken as it is.
$(OUT)/features.json: FORCE | $(STAMP)
	@$(MAKE) --no-print-directory features

ifneq ($(origin TABLE),file)
$(TABLE):
	@echo "make: no feature table $(TABLE); give the path of a features.parquet or features.csv (or leave TABLE= out to extract DATASET's)" >&2; exit 2
else
$(TABLE): $(OUT)/features.json
endif

# The CNN's patches are brought up to date before training (the command
# keeps them, untouched, when they are): from DATASET, refused when TABLE was
# given without the DATASET it came from; PATCHES= given with patches in it
# is taken as it is.
$(PATCHES)/patches.json: FORCE | $(STAMP)
	@if [ "$(origin PATCHES)" = "command line" ] && [ -f $@ ]; then exit 0; \
	elif [ "$(TABLE)" != "$(OUT)/features.parquet" ] && [ "$(origin DATASET)" = "file" ]; then \
		echo "make: MODELS=$(MODELS) has CNN models, which need the log-mel patches of the clips of $(TABLE): set DATASET= to its dataset (or PATCHES= to a folder from 'make patches'), or leave cnn out of MODELS" >&2; exit 2; \
	else $(MAKE) --no-print-directory patches; fi

# Which bundle predict uses: MODEL=, else RUN='s, else the one trained on the
# DATASET= named (checked against the bundle). Never the demo's by default.
ifneq ($(MODEL),)
PREDICT_MODEL := --model $(call q,$(MODEL))
else ifneq ($(filter command environment,$(origin RUN)),)
PREDICT_MODEL := --model $(RUN)/model
else ifneq ($(filter command environment,$(origin DATASET)),)
PREDICT_MODEL := --model $(RUN)/model --trained-on $(call q,$(DATASET))
endif

predict: $(STAMP) ## Predict labels of new clips with a trained bundle: FILE=path and MODEL=dir (or RUN=dir, or the DATASET= it was trained on)
	@if [ -z $(call q,$(FILE)) ]; then echo "make predict: set FILE=path/to/clip.wav (or a folder)" >&2; exit 2; fi
	@if [ -z "$(PREDICT_MODEL)" ]; then echo "make predict: say which model labels the files: MODEL=path/to/run/model, RUN=path/to/run, or DATASET= the dataset it was trained on (nothing is taken by default: the demo's model would give plausible-looking wrong labels)" >&2; exit 2; fi
	$(PY) -m classify predict $(PREDICT_MODEL) $(call q,$(FILE))

eda: $(EDA)/index.html ## Write the exploratory HTML page for DATASET into EDA=dir (its features are brought up to date first)

$(EDA)/index.html: $(OUT)/features.json | $(STAMP)
	$(PY) -m classify eda $(call q,$(DATASET)) --features $(OUT) --out $(EDA)

# The report reads a run and never makes one over it: it is redone when its
# run.json is newer, and only a missing default run is trained first.
report: | $(STAMP) ## Write the HTML report of a training run: RUN=dir (any run folder; never retrained)
	@if [ ! -f $(RUN)/run.json ]; then \
		if [ "$(origin RUN)" = "file" ] && [ ! -e $(RUN) ]; then $(MAKE) --no-print-directory train || exit $$?; \
		else echo "make report: $(RUN) holds no training run (no run.json); train into it first ('make train RUN=$(RUN)' or 'python -m classify train TABLE --out $(RUN)')" >&2; exit 2; fi; \
	fi
	@if [ -f $(RUN)/report/index.html ] && [ ! $(RUN)/run.json -nt $(RUN)/report/index.html ]; then \
		echo "make: the report of $(RUN) is up to date ($(RUN)/report/index.html)"; \
	else $(PY) -m classify report $(RUN); fi

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

bench: $(STAMP) ## Benchmarks: extractor vs the tutorial loop (and the rich preset), the runner at scale (Dask, memory), the model comparison, rich vs default preset on two data sets, --tune and --select nested on the demo, the CNN and make demo with it
	$(PY) tests/benchmarks/bench_features.py
	$(PY) tests/benchmarks/bench_runner.py
	$(PY) tests/benchmarks/bench_train.py
	$(PY) tests/benchmarks/bench_presets.py
	$(MAKE) --no-print-directory features DATASET=data/demo
	$(PY) tests/benchmarks/bench_train.py --tune-on data/output/demo/features/features.parquet
	$(PY) tests/benchmarks/bench_cnn.py --demo

clean: ## Remove what the pipeline generated (output sets in data/output and data/bench, the generated demo data); never your datasets or your files
	$(PYTHON) -m features.io.ownership clean data/output data/bench data/demo
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
