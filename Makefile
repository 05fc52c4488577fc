# Two entry points a newcomer needs; each sets itself up (a local .venv with the CPU torch wheel, then the project).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1

.PHONY: demo test install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-cache-dir --upgrade pip

# torch is pinned on its own first: an unpinned torch would pull a multi-GB CUDA build (docs/DESIGN.md, "Install").
install: $(BIN)/python
	$(BIN)/pip install --quiet --no-cache-dir torch==2.13.0
	$(BIN)/pip install --quiet --no-cache-dir -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet --no-cache-dir torch==2.13.0
	$(BIN)/pip install --quiet --no-cache-dir -e '.[dev]'

demo: install
	bash scripts/demo.sh

test: install-dev
	$(BIN)/python -m pytest -q

clean:
	rm -rf out/demo
