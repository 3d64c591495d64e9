#!/usr/bin/env python3
"""Writes tiny-phi3.gguf and tiny-phi3-reference.json for the Phi-3 tests of InferenceTests.

The model is a random two-block Phi-3 (fused attn_qkv, fused ffn_up = [gate | up]) small enough to
commit, with tensors in every type the runtime supports (F32, F16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K).
The reference logits come from an independent float64 forward pass in numpy over the weights as
the `gguf` package dequantises them, so the Swift runtime is checked against a second
implementation that shares none of its code.

Regenerate (from the package root):
    python3 -m pip install gguf==0.19.0      # brings numpy
    python3 Tests/InferenceTests/Fixtures/make_phi3_fixture.py
"""
import json
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import quants

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20241125)

HIDDEN, HEADS, KV_HEADS, FF, BLOCKS, VOCAB, CONTEXT = 64, 4, 2, 256, 2, 96, 128
HEAD = HIDDEN // HEADS
ROPE_BASE = 10000.0
EPS = 1e-5


def random_k_blocks(qtype, rows, columns):
    """Random but well-scaled Q4_K / Q6_K rows (the gguf package cannot quantise these types)."""
    blocks = rows * columns // 256
    if qtype == Q.Q4_K:
        raw = rng.integers(0, 256, size=(blocks, 144), dtype=np.uint8)
        raw[:, 0:2] = np.array([0.0006], dtype=np.float16).view(np.uint8)
        raw[:, 2:4] = np.array([0.002], dtype=np.float16).view(np.uint8)
    else:
        raw = rng.integers(0, 256, size=(blocks, 210), dtype=np.uint8)
        raw[:, 208:210] = np.array([0.00004], dtype=np.float16).view(np.uint8)
    return raw.reshape(rows, -1)


def make(qtype, rows, columns):
    """(bytes as stored, float64 weights as the gguf package reads them back)."""
    if qtype in (Q.Q4_K, Q.Q6_K):
        stored = random_k_blocks(qtype, rows, columns)
    else:
        w = rng.normal(0, 1 / np.sqrt(columns), size=(rows, columns)).astype(np.float32)
        stored = w if qtype == Q.F32 else (w.astype(np.float16) if qtype == Q.F16 else quants.quantize(w, qtype))
    if qtype in (Q.F32, Q.F16):
        dense = stored.astype(np.float64)
    else:
        dense = quants.dequantize(stored, qtype).astype(np.float64).reshape(rows, columns)
    return stored, dense


def main():
    tensors = {}
    dense = {}

    def add(name, qtype, rows, columns):
        stored, weights = make(qtype, rows, columns)
        tensors[name] = (stored, qtype)
        dense[name] = weights

    def add_norm(name):
        w = (1 + 0.1 * rng.normal(size=HIDDEN)).astype(np.float32)
        tensors[name] = (w, Q.F32)
        dense[name] = w.astype(np.float64)

    add("token_embd.weight", Q.F16, VOCAB, HIDDEN)
    add_norm("output_norm.weight")
    add("output.weight", Q.Q8_0, VOCAB, HIDDEN)
    kinds = [
        dict(qkv=Q.Q4_0, out=Q.Q8_0, up=Q.Q4_1, down=Q.Q4_K),
        dict(qkv=Q.Q8_0, out=Q.F32, up=Q.Q4_0, down=Q.Q6_K),
    ]
    for b, k in enumerate(kinds):
        p = f"blk.{b}."
        add_norm(p + "attn_norm.weight")
        add(p + "attn_qkv.weight", k["qkv"], HIDDEN + 2 * KV_HEADS * HEAD, HIDDEN)
        add(p + "attn_output.weight", k["out"], HIDDEN, HIDDEN)
        add_norm(p + "ffn_norm.weight")
        add(p + "ffn_up.weight", k["up"], 2 * FF, HIDDEN)
        add(p + "ffn_down.weight", k["down"], HIDDEN, FF)

    writer = gguf.GGUFWriter(os.path.join(HERE, "tiny-phi3.gguf"), "phi3")
    writer.add_name("tiny-phi3 (random weights, test fixture)")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(FF)
    writer.add_block_count(BLOCKS)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_layer_norm_rms_eps(EPS)
    writer.add_rope_dimension_count(HEAD)
    writer.add_rope_freq_base(ROPE_BASE)
    writer.add_vocab_size(VOCAB)
    for name, (stored, qtype) in tensors.items():
        if qtype in (Q.F32, Q.F16):
            writer.add_tensor(name, stored)
        else:
            writer.add_tensor(name, stored, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    tokens = [int(t) for t in rng.integers(0, VOCAB, size=12)]
    logits = forward(dense, tokens)
    with open(os.path.join(HERE, "tiny-phi3-reference.json"), "w") as f:
        json.dump({
            "note": "float64 numpy forward pass of tiny-phi3.gguf over gguf-dequantised weights",
            "tokens": tokens,
            "logits": [[float(v) for v in row] for row in logits],
        }, f)


def rms_norm(x, w):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * w


def rope_neox(x, positions):
    """Phi-3 in llama.cpp rotates the two halves of each head: (x[i], x[i + HEAD/2])."""
    half = HEAD // 2
    inv = ROPE_BASE ** (-np.arange(half) * 2.0 / HEAD)
    ang = positions[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def forward(w, tokens):
    n = len(tokens)
    positions = np.arange(n, dtype=np.float64)
    x = w["token_embd.weight"][tokens]
    for b in range(BLOCKS):
        p = f"blk.{b}."
        h = rms_norm(x, w[p + "attn_norm.weight"])
        qkv = h @ w[p + "attn_qkv.weight"].T
        q = qkv[:, :HIDDEN].reshape(n, HEADS, HEAD)
        k = qkv[:, HIDDEN:HIDDEN + KV_HEADS * HEAD].reshape(n, KV_HEADS, HEAD)
        v = qkv[:, HIDDEN + KV_HEADS * HEAD:].reshape(n, KV_HEADS, HEAD)
        q, k = rope_neox(q, positions), rope_neox(k, positions)
        out = np.zeros((n, HEADS, HEAD))
        for head in range(HEADS):
            kv = head // (HEADS // KV_HEADS)
            scores = q[:, head, :] @ k[:, kv, :].T / np.sqrt(HEAD)
            scores = np.where(np.tril(np.ones((n, n))) > 0, scores, -np.inf)
            probs = np.exp(scores - scores.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
            out[:, head, :] = probs @ v[:, kv, :]
        x = x + out.reshape(n, HIDDEN) @ w[p + "attn_output.weight"].T
        h = rms_norm(x, w[p + "ffn_norm.weight"])
        gate_up = h @ w[p + "ffn_up.weight"].T
        gate, up = gate_up[:, :FF], gate_up[:, FF:]
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "ffn_down.weight"].T
    return rms_norm(x, w["output_norm.weight"]) @ w["output.weight"].T


if __name__ == "__main__":
    main()
