"""MiniLM on ONNX Runtime: the packaged weights written once as an ONNX graph, then run; torch is needed
for neither (it is the optional `torch` extra).

For one short sentence, ONNX Runtime is about three times faster than torch eager on this kind of CPU
(4-7 ms instead of 12-18), and the vectors are the same (cosine 0.9999999-1.0 to sentence-transformers',
measured by tests/unit/test_onnx_graph.py). The graph is derived from the installed package only, never
downloaded: it is written once to a cache directory, keyed by the model files, and re-made when they change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

EXPORT_FORMAT = 2  # bump when the written graph changes: older cached files are then ignored (2: without torch)
OPSET = 17
MIN_COSINE = 0.9999  # an export whose vectors differ more from torch's is not used
PROBES = (
    "hello",
    "Where did I put the spare key? I think it was under the blue flower pot by the door.",
    "def retry(fn, attempts=3):\n    for i in range(attempts):\n        try: return fn()\n        except OSError: pass",
)


def default_cache_dir() -> Path:
    """Where derived model files are kept: $XDG_CACHE_HOME/orchestrator-node, else ~/.cache/orchestrator-node."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orchestrator-node"


def model_key(model_path: Path) -> str:
    """What the export depends on: the model files' names, sizes and configs, and the export format."""
    parts = [f"format={EXPORT_FORMAT}", f"opset={OPSET}"]
    for name in ("config.json", "sentence_bert_config.json", "1_Pooling/config.json", "tokenizer.json"):
        file = model_path / name
        parts.append(f"{name}={hashlib.sha256(file.read_bytes()).hexdigest() if file.exists() else '-'}")
    for weights in sorted(model_path.glob("*.safetensors")) + sorted(model_path.glob("*.bin")):
        parts.append(f"{weights.name}:{weights.stat().st_size}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def check_supported(model_path: Path) -> int:
    """The model's max sequence length; raises ValueError for a layout this runtime does not reproduce
    (only mean pooling followed by normalisation, as all-MiniLM-L6-v2 has)."""
    pooling = _read_json(model_path / "1_Pooling" / "config.json")
    modules = [m.get("type", "") for m in json.loads((model_path / "modules.json").read_text())]
    if not pooling.get("pooling_mode_mean_tokens") or not any(t.endswith("Normalize") for t in modules):
        raise ValueError(f"{model_path}: only mean pooling + normalisation is supported by the ONNX runtime")
    return int(_read_json(model_path / "sentence_bert_config.json").get("max_seq_length", 256))


def export(model_path: Path, target: Path) -> None:
    """Write transformer + mean pooling + L2 normalisation as one ONNX graph at `target` (atomically),
    straight from the packaged weights (memory/onnx_graph.py: numpy and `onnx`, no torch). Where torch and
    sentence-transformers are installed (the `torch` extra), the vectors are also checked against them on a
    few probe sentences; tests/unit/test_onnx_graph.py measures the same thing on every test run."""
    from memory import onnx_graph

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        onnx_graph.write(model_path, Path(tmp), OPSET)
        got = OnnxMiniLM(model_path, Path(tmp), threads=1).encode(list(PROBES))
        cosine = _cosine_to_torch(model_path, got)
        if cosine is not None and cosine < MIN_COSINE:
            raise ValueError(f"the ONNX graph drifts from torch (cosine {cosine:.6f} < {MIN_COSINE})")
        os.replace(tmp, target)
        log.info("wrote the embedding model as ONNX to %s (%s)", target,
                 "not checked against torch: not installed" if cosine is None else f"cosine to torch {cosine:.7f}")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _cosine_to_torch(model_path: Path, got: np.ndarray) -> float | None:
    """The lowest cosine between `got` (the PROBES' vectors) and sentence-transformers' on torch; None
    without torch."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    reference = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
    expected = reference.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True,
                                show_progress_bar=False)
    return float(np.min(np.sum(expected * got, axis=1)))


class OnnxMiniLM:
    """Sentence embeddings from an exported ONNX graph: tokenizer (Rust) + ONNX Runtime, no torch."""

    def __init__(self, model_path: Path, onnx_path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        max_tokens = check_supported(model_path)
        self.tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of a batch
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        # Worker threads sleep between calls instead of spinning: the service has other work for the cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised vectors, one row per text."""
        if len(texts) > batch_size:
            return np.concatenate([self.encode(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])
        batch = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in batch], dtype=np.int64)
        mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return self.session.run(None, feeds)[0]


def load(model_path: Path, cache_dir: Path | None = None, threads: int | None = None) -> OnnxMiniLM:
    """The ONNX model for `model_path`: from the cache, else written now (about 3 s, once)."""
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / f"all-MiniLM-L6-v2-{model_key(model_path)}.onnx"
    if not target.exists():
        log.info("exporting the embedding model to ONNX once (onnxruntime %s)", metadata.version("onnxruntime"))
        export(model_path, target)
    return OnnxMiniLM(model_path, target, threads)
