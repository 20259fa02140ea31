"""Whatever `max_tokens` a request carries, the contract's JSON schema becomes a grammar llama.cpp accepts.

llama-cpp-python's server converts the schema into a GBNF grammar and hands it to llama.cpp when it samples;
a grammar llama.cpp refuses (`maxLength` of 96,000 for `max_tokens: 32000`, as Claude Code sends) came back
NULL and crashed the embedded node. Here the same conversion and llama.cpp's own parser (the bundled model's
vocabulary, loaded alone) check the schema the infer node sends for each limit."""

from __future__ import annotations

import json

import llama_cpp
import pytest
from llama_cpp.llama_grammar import json_schema_to_gbnf

from graph.contract import contract_response_format, reply_text_limit
from inference.local_node import bundled_model_path


@pytest.fixture(scope="module")
def vocab():
    model = llama_cpp.Llama(model_path=str(bundled_model_path()), vocab_only=True, verbose=False)
    yield llama_cpp.llama_model_get_vocab(model.model)
    model.close()


def llama_cpp_accepts(vocab, grammar: str) -> bool:
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


@pytest.mark.parametrize("max_tokens", [1, 20, 96, 256, 257, 1024, 4096, 32000, 1_000_000])
def test_the_grammar_of_any_reply_limit_is_accepted(vocab, max_tokens):
    response_format = contract_response_format("schema-embedded", reply_text_limit(max_tokens))
    grammar = json_schema_to_gbnf(json.dumps(response_format["schema"]))
    assert llama_cpp_accepts(vocab, grammar)


def test_a_short_limit_still_bounds_the_answer():
    schema = contract_response_format("schema", reply_text_limit(96))["json_schema"]["schema"]
    assert schema["properties"]["assistant_response"]["maxLength"] == 288  # closes before 96 tokens cut it


def test_the_check_itself_sees_a_grammar_llama_cpp_refuses(vocab):
    assert not llama_cpp_accepts(vocab, json_schema_to_gbnf(json.dumps({"type": "string", "maxLength": 3000})))
