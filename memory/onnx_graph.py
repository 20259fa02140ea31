"""all-MiniLM-L6-v2 written as an ONNX graph straight from its safetensors weights: no torch needed.

The graph is BERT as transformers runs it (embeddings + LayerNorm, N encoder layers of self-attention and
a GELU feed-forward, each with a residual LayerNorm), then the sentence-transformers head (mean pooling
over the attention mask, L2 normalisation), built with the `onnx` package's helpers. The weights are read
from the packaged `model.safetensors` with numpy (the format is a JSON header and raw little-endian
arrays). tests/unit/test_onnx_graph.py measures its vectors against sentence-transformers on torch.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file, as numpy arrays (float16 widened to float32)."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name.removeprefix("bert.")] = array.astype(np.float32) if array.dtype == np.float16 else array
    return out


def build(model_path: Path, opset: int = 17):
    """The ModelProto: inputs input_ids, attention_mask, token_type_ids ([batch, tokens], int64), output
    `embedding` ([batch, hidden], L2-normalised), the same interface as the torch export had."""
    from onnx import TensorProto, helper, numpy_helper

    config = json.loads((model_path / "config.json").read_text())
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        raise ValueError(f"{model_path}: only BERT with GELU is written as ONNX without torch")
    weights = read_safetensors(model_path / "model.safetensors")
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim, eps = hidden // heads, float(config["layer_norm_eps"])
    nodes, inits = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(kind, inputs, [name], name=name, **attrs))
        return name

    def linear(x: str, prefix: str) -> str:  # x @ W.T + b, with W stored [out, in] as torch keeps it
        w = const(f"{prefix}.weight_t", weights[f"{prefix}.weight"].T)
        return op("Add", [op("MatMul", [x, w], f"{prefix}.mm"), const(f"{prefix}.b", weights[f"{prefix}.bias"])],
                  f"{prefix}.out")

    def layer_norm(x: str, prefix: str) -> str:
        return op("LayerNormalization", [x, const(f"{prefix}.g", weights[f"{prefix}.weight"]),
                                         const(f"{prefix}.beta", weights[f"{prefix}.bias"])],
                  f"{prefix}.ln", axis=-1, epsilon=eps)

    # Embeddings: word + position (the first `tokens` rows of the table) + token type, then LayerNorm.
    tokens = op("Shape", ["input_ids"], "tokens", start=1, end=2)  # [tokens], a 1-D array as Slice wants
    word = op("Gather", [const("word_emb", weights["embeddings.word_embeddings.weight"]), "input_ids"], "word")
    pos = op("Slice", [const("pos_emb", weights["embeddings.position_embeddings.weight"]),
                       const("zero_1d", np.array([0], dtype=np.int64)), tokens,
                       const("axis0", np.array([0], dtype=np.int64))], "pos")
    kind = op("Gather", [const("type_emb", weights["embeddings.token_type_embeddings.weight"]), "token_type_ids"],
              "type")
    x = layer_norm(op("Add", [op("Add", [word, pos], "word_pos"), kind], "emb_sum"), "embeddings.LayerNorm")

    # Attention mask as an additive bias [batch, 1, 1, tokens]: 0 where attended, very negative elsewhere.
    mask = op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    bias = op("Mul", [op("Sub", [const("one_f", np.array(1.0, np.float32)), mask], "unmask"),
                      const("neg", np.array(np.finfo(np.float32).min, np.float32))], "mask_bias0")
    bias = op("Unsqueeze", [bias, const("axes12", np.array([1, 2], dtype=np.int64))], "mask_bias")
    split_shape = const("split_shape", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, hidden], dtype=np.int64))
    scale = const("scale", np.array(1.0 / math.sqrt(head_dim), np.float32))
    sqrt_half = const("sqrt_half", np.array(1.0 / math.sqrt(2.0), np.float32))
    half = const("half", np.array(0.5, np.float32))

    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}"

        def heads_of(kind: str, perm: list[int], p: str = p, x: str = x) -> str:
            projected = linear(x, f"{p}.attention.self.{kind}")
            return op("Transpose", [op("Reshape", [projected, split_shape], f"{p}.{kind}.split")],
                      f"{p}.{kind}.heads", perm=perm)

        q, k, v = heads_of("query", [0, 2, 1, 3]), heads_of("key", [0, 2, 3, 1]), heads_of("value", [0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k], f"{p}.qk"), scale], f"{p}.scaled"), bias], f"{p}.scores")
        context = op("MatMul", [op("Softmax", [scores], f"{p}.probs", axis=-1), v], f"{p}.context")
        context = op("Reshape", [op("Transpose", [context], f"{p}.context_t", perm=[0, 2, 1, 3]), merge_shape],
                     f"{p}.context_merged")
        attended = linear(context, f"{p}.attention.output.dense")
        x = layer_norm(op("Add", [attended, x], f"{p}.attn_res"), f"{p}.attention.output.LayerNorm")
        inner = linear(x, f"{p}.intermediate.dense")
        # GELU, the exact (erf) form BERT's "gelu" is: 0.5 x (1 + erf(x / sqrt 2)).
        erf = op("Erf", [op("Mul", [inner, sqrt_half], f"{p}.gelu_in")], f"{p}.erf")
        gelu = op("Mul", [op("Mul", [inner, half], f"{p}.gelu_half"),
                          op("Add", [erf, const(f"{p}.one", np.array(1.0, np.float32))], f"{p}.erf1")], f"{p}.gelu")
        x = layer_norm(op("Add", [linear(gelu, f"{p}.output.dense"), x], f"{p}.ffn_res"), f"{p}.output.LayerNorm")

    # Mean over attended tokens, then L2 normalisation (sentence-transformers' Pooling + Normalize).
    mask3 = op("Unsqueeze", [mask, const("axis2", np.array([2], dtype=np.int64))], "mask3")
    summed = op("ReduceSum", [op("Mul", [x, mask3], "masked"), const("axis1", np.array([1], dtype=np.int64))],
                "summed", keepdims=0)
    count = op("Max", [op("ReduceSum", [mask3, "axis1"], "count0", keepdims=0),
                       const("tiny", np.array(1e-9, np.float32))], "count")
    mean = op("Div", [summed, count], "mean")
    # ReduceL2 takes its axes as an attribute until opset 18 (ReduceSum as an input since 13).
    norm = op("Max", [op("ReduceL2", [mean], "norm0", axes=[-1], keepdims=1),
                      const("eps_norm", np.array(1e-12, np.float32))], "norm")
    nodes.append(helper.make_node("Div", [mean, norm], ["embedding"], name="embedding"))

    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])
    graph = helper.make_graph(nodes, "all-MiniLM-L6-v2", inputs, [output], initializer=inits)
    # IR version 8 (what opset 17 came with): the `onnx` package writes its newest by default, which an
    # older ONNX Runtime refuses.
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8,
                             producer_name="orchestrator-node")


def write(model_path: Path, target: Path, opset: int = 17) -> None:
    """Build the graph and save it to `target` (weights inside: ~90 MB, under protobuf's 2 GB limit)."""
    import onnx

    onnx.save(build(model_path, opset), str(target))
