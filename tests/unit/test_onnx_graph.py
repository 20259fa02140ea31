"""MiniLM written as ONNX without torch (memory/onnx_graph.py): the same vectors as sentence-transformers on
torch, and a service process that never imports torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from memory import onnx_graph
from memory.embedder import packaged_model_path
from memory.onnx_embedding import OnnxMiniLM

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = [
    "hello",
    "Where did I put the spare key? I think it was under the blue flower pot by the door.",
    "def retry(fn, attempts=3):\n    for i in range(attempts):\n        try: return fn()\n        except OSError: pass",
    "Über naïve café – 東京 🚀",
    "my favourite number is 42",
    "The meeting with Dana moved to Thursday at 3pm; bring the Q3 budget draft.",
    "",
    "word " * 400,  # past the 256-token limit: truncated the same way
    "SELECT * FROM episodes WHERE session_id = ? ORDER BY created_at DESC LIMIT 5",
    "a",
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True)
    return model.encode(SAMPLE, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


def test_the_graph_written_without_torch_gives_sentence_transformers_vectors(tmp_path, reference):
    target = tmp_path / "minilm.onnx"
    onnx_graph.write(packaged_model_path(), target)
    model = OnnxMiniLM(packaged_model_path(), target, threads=1)
    together = model.encode(SAMPLE)  # one padded batch
    alone = np.stack([model.encode([text])[0] for text in SAMPLE])
    for got in (together, alone):
        cosine = np.sum(reference * got, axis=1)
        assert cosine.min() >= 0.9999, cosine  # measured: 0.9999999 to 1.0, max abs difference ~2e-7
        assert np.abs(reference - got).max() < 1e-4
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_the_embedder_runs_in_a_process_where_torch_cannot_be_imported(tmp_path, reference):
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path

        class NoTorch:  # as if torch, sentence-transformers and transformers were not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "sentence_transformers", "transformers"):
                    raise ModuleNotFoundError(name)

        sys.meta_path.insert(0, NoTorch())
        import numpy as np
        from memory.embedder import Embedder

        embedder = Embedder(cache_dir=Path({str(tmp_path)!r}), runtime="onnx")
        vectors = embedder.embed({SAMPLE[:3]!r})
        assert embedder.runtime == "onnx", embedder.runtime
        assert "torch" not in sys.modules
        np.save({str(tmp_path / "vectors.npy")!r}, np.array(vectors, dtype=np.float32))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = np.load(tmp_path / "vectors.npy")
    assert np.sum(reference[:3] * got, axis=1).min() >= 0.9999
    assert list(tmp_path.glob("all-MiniLM-L6-v2-*.onnx"))  # written once, kept for the next start
