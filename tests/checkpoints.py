"""Tiny real checkpoints written with the real writers (transformers save_pretrained,
safetensors), shared by the tests. Each builder writes into the folder it is given."""

from __future__ import annotations

import os
from importlib.metadata import version

# What the outputs name as the transformers that built them: the installed release, never a
# hard-coded one (a fresh install resolves the newest allowed; test_versions keeps it so).
TRANSFORMERS_VERSION = version("transformers")


def _save(model, folder: str, **kwargs) -> str:
    model.save_pretrained(folder, **kwargs)
    return folder


# The sizes every tiny decoder of the tests shares (families add their own fields): small
# enough to build in milliseconds, and unlike every class default, so a dropped field shows.
TINY_DECODER = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)


def tiny_llama(
    folder: str, *, tied: bool = False, dtype: str = "float32", shard: str | None = "60KB", seed: int = 0
) -> str:
    """Llama with grouped-query attention (4 heads, 2 KV heads), 2 layers, sharded by default."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        **TINY_DECODER,
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
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=64,
    )
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


def _hf_state_dict(hf_folder: str) -> dict:
    """Every tensor of a save_pretrained folder, in the files' order, as torch tensors."""
    import glob

    from safetensors.torch import load_file

    tensors = {}
    for path in sorted(glob.glob(os.path.join(hf_folder, "*.safetensors"))):
        tensors.update(load_file(path))
    return tensors


# GGUF name prefix -> GGML type name used by llama_gguf (others stay F32).
LLAMA_GGUF_TYPES = {
    "token_embd": "F16",
    "blk.0.attn_q": "Q8_0",
    "blk.0.attn_k": "Q8_0",
    "blk.0.ffn_gate": "Q4_0",
    "blk.0.ffn_up": "Q4_0",
    "blk.1.attn_v": "BF16",
}


def llama_gguf(
    hf_folder: str, path: str, types: dict | None = None, vocab_tokens: bool = True, strings: dict | None = None
) -> str:
    """A GGUF written with gguf.GGUFWriter from a save_pretrained Llama folder: llama.cpp's
    names (gguf.TensorNameMap) and metadata keys, q and k rows permuted as its converter
    does, tensors quantized with gguf.quants; strings: more string key/values (general.name, say)."""
    import json
    from types import SimpleNamespace

    from gguf_writers import _llama_tensor

    import gguf
    import numpy as np

    types = LLAMA_GGUF_TYPES if types is None else types
    with open(os.path.join(hf_folder, "config.json")) as handle:
        config = json.load(handle)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base((config.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])
    for key, value in (strings or {}).items():
        writer.add_string(key, value)
    if vocab_tokens:
        writer.add_tokenizer_model("llama")
        writer.add_token_list([f"<t{i}>" for i in range(config["vocab_size"])])
        writer.add_token_scores([float(-i) for i in range(config["vocab_size"])])
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    for hf_name, tensor in _hf_state_dict(hf_folder).items():
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        array = _llama_tensor(hf_name, tensor.float(), SimpleNamespace(**config)).contiguous().numpy()
        kind = next((t for prefix, t in types.items() if name.startswith(prefix + ".")), "F32")
        if kind == "F16":
            writer.add_tensor(name, array.astype(np.float16))
        elif kind == "F32":
            writer.add_tensor(name, array)
        else:
            qtype = gguf.GGMLQuantizationType[kind]
            writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def lora_gguf(peft_folder: str, base_folder: str, path: str, name: str = "Lora") -> str:
    """A LoRA GGUF written with gguf.GGUFWriter from a PEFT LoRA folder of a Llama, as llama.cpp's
    convert_lora_to_gguf.py writes one: general.type adapter, adapter.type lora and
    adapter.lora.alpha; each pair under its base weight's GGUF name + .lora_a / .lora_b, the rows
    of q's and k's lora_b permuted as the converter permutes the base's q and k (B @ A's rows)."""
    import json
    from types import SimpleNamespace

    from gguf_writers import _llama_tensor
    from safetensors.numpy import load_file

    import gguf

    with open(os.path.join(base_folder, "config.json")) as handle:
        config = json.load(handle)
    with open(os.path.join(peft_folder, "adapter_config.json")) as handle:
        alpha = json.load(handle)["lora_alpha"]
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_name(name)
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    for stored, array in load_file(os.path.join(peft_folder, "adapter_model.safetensors")).items():
        module, part = stored.removeprefix("base_model.model.").rsplit(".", 2)[:2]
        hf_name = module + ".weight"
        suffix = {"lora_A": ".lora_a", "lora_B": ".lora_b"}[part]
        if suffix == ".lora_b":
            array = _llama_tensor(hf_name, array, SimpleNamespace(**config))
        writer.add_tensor(names.get_name(hf_name, try_suffixes=(".weight",)) + suffix, array.copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# transformers' Llama names -> Meta's original ones (convert_llama_weights_to_hf.py, backwards).
META_NAMES = (
    ("model.embed_tokens", "tok_embeddings"),
    ("model.norm", "norm"),
    ("lm_head", "output"),
    ("model.layers", "layers"),
    ("self_attn.q_proj", "attention.wq"),
    ("self_attn.k_proj", "attention.wk"),
    ("self_attn.v_proj", "attention.wv"),
    ("self_attn.o_proj", "attention.wo"),
    ("mlp.gate_proj", "feed_forward.w1"),
    ("mlp.down_proj", "feed_forward.w2"),
    ("mlp.up_proj", "feed_forward.w3"),
    ("input_layernorm", "attention_norm"),
    ("post_attention_layernorm", "ffn_norm"),
)


def meta_name(hf_name: str) -> str:
    for old, new in META_NAMES:
        hf_name = hf_name.replace(old, new)
    return hf_name


def torch_bin(hf_folder: str, folder: str, shards: int = 1) -> str:
    """The older Hugging Face layout: pytorch_model.bin (torch.save of the state dict), or
    pytorch_model-0000N-of-0000M.bin shards with pytorch_model.bin.index.json, as
    transformers 4 wrote them; config.json beside them."""
    import json
    import shutil

    import torch

    os.makedirs(folder, exist_ok=True)
    shutil.copy(os.path.join(hf_folder, "config.json"), folder)
    state = _hf_state_dict(hf_folder)
    if shards == 1:
        torch.save(state, os.path.join(folder, "pytorch_model.bin"))
        return folder
    names = list(state)
    weight_map = {}
    for number in range(shards):
        shard_name = f"pytorch_model-{number + 1:05d}-of-{shards:05d}.bin"
        part = names[number::shards]
        torch.save({name: state[name] for name in part}, os.path.join(folder, shard_name))
        weight_map.update({name: shard_name for name in part})
    with open(os.path.join(folder, "pytorch_model.bin.index.json"), "w") as handle:
        json.dump(
            {
                "metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())},
                "weight_map": weight_map,
            },
            handle,
        )
    return folder


def meta_layout(tensor, heads: int):
    """q or k in Meta's rotary layout, from transformers' (the inverse of the permutation
    convert_llama_weights_to_hf.py applies): each head's rows (h, 2, half) read as (h, half, 2)."""
    rows = tensor.shape[0]
    return tensor.reshape(heads, 2, rows // heads // 2, *tensor.shape[1:]).transpose(1, 2).reshape(tensor.shape)


def meta_checkpoint(hf_folder: str, folder: str, dtype: str = "bfloat16", permute=meta_layout) -> str:
    """Meta's original release layout: consolidated.00.pth (Meta's names, q and k in Meta's
    rotary layout: PERMUTE(tensor, heads)) and params.json."""
    import json

    import torch

    with open(os.path.join(hf_folder, "config.json")) as handle:
        config = json.load(handle)
    os.makedirs(folder, exist_ok=True)
    heads = {"q_proj": config["num_attention_heads"], "k_proj": config["num_key_value_heads"]}
    state = {}
    for name, tensor in _hf_state_dict(hf_folder).items():
        projection = name.split(".")[-2]
        stored = permute(tensor, heads[projection]) if projection in heads else tensor
        state[meta_name(name)] = stored.to(getattr(torch, dtype)).contiguous()
    torch.save(state, os.path.join(folder, "consolidated.00.pth"))
    params = {
        "dim": config["hidden_size"],
        "n_layers": config["num_hidden_layers"],
        "n_heads": config["num_attention_heads"],
        "n_kv_heads": config["num_key_value_heads"],
        "multiple_of": 32,
        "norm_eps": config["rms_norm_eps"],
        "vocab_size": -1,
    }
    with open(os.path.join(folder, "params.json"), "w") as handle:
        json.dump(params, handle)
    return folder


def reference_model(folder, **kwargs):
    """The model as a tutorial user gets it: from_pretrained of the class config.json names
    (AutoModelForCausalLM's choice for decoders; the right class for encoders such as BERT)."""
    import transformers

    architecture = transformers.AutoConfig.from_pretrained(str(folder)).architectures[0]
    return getattr(transformers, architecture).from_pretrained(str(folder), **kwargs)


def printed_parameters(model, names=lambda name: True) -> str:
    """What the tutorial's loop prints: `for name, p in model.named_parameters(): print(p)`,
    for the parameters whose name `names` accepts."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        for name, p in model.named_parameters():
            if names(name):
                print(p)
    return buffer.getvalue()


def with_config(src, dst, edit):
    """A copy of the checkpoint at src whose config.json is changed by edit(config_dict)."""
    import json
    import shutil

    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    edit(config)
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    return dst


# BitsAndBytesConfig arguments of the quantized checkpoints the tests write (bitsandbytes runs on CPU).
BNB_MODES = {
    "nf4": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True},
    "fp4": {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"},
    "int8": {"load_in_8bit": True},
}


def bnb_llama(folder: str, source: str, mode: str) -> str:
    """The float16 checkpoint at source, loaded quantized by bitsandbytes through transformers
    (BitsAndBytesConfig) and saved as transformers saves it."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    model = AutoModelForCausalLM.from_pretrained(
        source, quantization_config=BitsAndBytesConfig(**BNB_MODES[mode]), device_map="cpu", dtype=torch.float16
    )
    return _save(model, folder)


def word_tokenizer(folder: str, vocab_size: int) -> str:
    """A whitespace word-level tokenizer ("[UNK]", "w0", "w1", ...) of vocab_size entries,
    written beside a tiny model with tokenizers and transformers' save_pretrained."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[UNK]"] + [f"w{i}" for i in range(vocab_size - 1)]
    tokenizer = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]").save_pretrained(folder)
    return folder


def record_module_outputs(model) -> dict[str, dict]:
    """Forward hooks on every module of model: path -> {"calls": n, "outputs": [{"shape",
    "dtype"}]}, filled by the forwards run after this call (a tensor once however nested)."""
    import torch

    def tensors(value):
        if isinstance(value, torch.Tensor):
            return [value]
        if isinstance(value, dict):
            return [t for v in value.values() for t in tensors(v)]
        if isinstance(value, (list, tuple)):
            return [t for v in value for t in tensors(v)]
        return []

    seen: dict[str, dict] = {}

    def hook_for(path):
        def hook(module, args, output):
            unique = list({id(t): t for t in tensors(output)}.values())
            seen.setdefault(
                path,
                {
                    "calls": 0,
                    "outputs": [{"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for t in unique],
                },
            )["calls"] += 1

        return hook

    for path, module in model.named_modules():
        module.register_forward_hook(hook_for(path))
    return seen


def random_index(rng, shape):
    """A random index expression torch takes: integers (negative too), slices with steps and
    out-of-range bounds, at most one ..., fewer items than dimensions; one item alone or a tuple."""
    if not shape:
        return ()
    explicit = rng.randint(1, len(shape))
    at = rng.randint(0, explicit) if rng.random() < 0.4 else None  # where the ... goes
    dims = list(range(explicit)) if at is None else [*range(at), *range(len(shape) - explicit + at, len(shape))]
    items = []
    for dim in dims:
        size = shape[dim]
        if size and rng.random() < 0.35:
            items.append(rng.randrange(-size, size))
        else:
            bound = lambda size=size: rng.choice([None, rng.randint(-size - 2, size + 2)])  # noqa: E731
            items.append(slice(bound(), bound(), rng.choice([None, 1, 2, 3])))
    if at is not None:
        items.insert(at, Ellipsis)
    return items[0] if len(items) == 1 and rng.random() < 0.5 else tuple(items)


def peft_lora(base: str, folder: str, *, seed: int = 0, safe_serialization: bool = True, **lora) -> str:
    """A LoRA adapter of the model in `base`, made and saved by PEFT itself (LoraConfig(**lora));
    A and B both random (init_lora_weights=False), so the merged weights differ from the base's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(init_lora_weights=False, **lora))
    model.save_pretrained(folder, safe_serialization=safe_serialization)
    return folder


def peft_merged(base: str, adapter: str, folder: str, dtype: str = "float32") -> str:
    """The adapter merged into its base by PEFT's merge_and_unload(), the base loaded in DTYPE, saved."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=getattr(torch, dtype))
    return _save(PeftModel.from_pretrained(model, adapter).merge_and_unload(), folder)


def peft_model(base: str, adapter: str):
    """PEFT's own reading of a saved adapter on its base, trainable as when it was saved."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter, is_trainable=True)


def mlx_lora(base: str, folder: str, *, num_layers: int, fine_tune_type: str = "lora", seed: int = 0, **parameters):
    """An mlx-lm adapter of the model in `base`, made by mlx-lm itself: its LoRA (or DoRA) layers
    on the last num_layers blocks (linear_to_lora_layers with lora_parameters `parameters`),
    lora_b made random (mlx-lm starts it at zero), saved as its trainer saves them: the trainable
    parameters to adapters.safetensors, the run's arguments to adapter_config.json. Returns
    (folder, mlx-lm's print_trainable_parameters() line)."""
    import contextlib
    import io
    import pathlib

    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm.lora import CONFIG_DEFAULTS
    from mlx_lm.tuner.utils import linear_to_lora_layers, print_trainable_parameters
    from mlx_lm.utils import load_model, save_config

    model, _ = load_model(pathlib.Path(base))
    model.freeze()
    linear_to_lora_layers(model, num_layers, parameters, use_dora=fine_tune_type == "dora")
    mx.random.seed(seed)
    trainable = tree_flatten(model.trainable_parameters())
    model.update(tree_unflatten([(n, mx.random.normal(p.shape) * 0.1) for n, p in trainable if n.endswith("lora_b")]))
    os.makedirs(folder, exist_ok=True)
    mx.save_safetensors(os.path.join(folder, "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters())))
    arguments = {
        **CONFIG_DEFAULTS,
        "model": base,
        "train": True,
        "fine_tune_type": fine_tune_type,
        "num_layers": num_layers,
        "lora_parameters": parameters,
        "adapter_path": folder,
    }
    save_config(arguments, os.path.join(folder, "adapter_config.json"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_trainable_parameters(model)
    return folder, printed.getvalue().strip()
