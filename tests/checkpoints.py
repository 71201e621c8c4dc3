"""Tiny real checkpoints written with the real writers (transformers save_pretrained,
safetensors), shared by the tests. Each builder writes into the folder it is given."""

from __future__ import annotations

import os


def _save(model, folder: str, **kwargs) -> str:
    model.save_pretrained(folder, **kwargs)
    return folder


def tiny_llama(folder: str, *, tied: bool = False, dtype: str = "float32", shard: str | None = "60KB", seed: int = 0) -> str:
    """Llama with grouped-query attention (4 heads, 2 KV heads), 2 layers, sharded by default."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tied,
    )
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    kwargs = {"max_shard_size": shard} if shard else {}
    return _save(model, folder, **kwargs)


def tiny_bert(folder: str, seed: int = 0) -> str:
    """BERT: absolute position embeddings, a position_ids buffer, LayerNorm with bias."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48, max_position_embeddings=64)
    return _save(BertModel(config), folder)


def tiny_gpt2(folder: str, seed: int = 0) -> str:
    """GPT-2: Conv1D layers, tied lm_head, n_embd / n_layer / n_head naming."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64)
    return _save(GPT2LMHeadModel(config), folder)


def safetensors_file(path: str, tensors: dict) -> str:
    """One .safetensors file from a dict of torch tensors, with the safetensors writer."""
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    save_file(tensors, path)
    return path
