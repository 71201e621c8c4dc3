"""`config --explain`: every field with its value and explanation in English or Chinese,
the derived facts (head_dim, attention kind, FFN, context), and bad input."""

import json
import pytest

from llm_anatomy import replicas
from llm_anatomy.analysis.architecture import derive
from llm_anatomy.render.explain import language_from_locale


@pytest.fixture
def llama7b(published):
    return published("Llama-2-7b-chat-hf")


def _config_folder(folder, config):
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    replicas.write_safetensors_layout(str(folder / "model.safetensors"), [replicas.TensorSpec("w", "F32", (1,))])
    return folder


def test_english(llama7b, cli):
    result = cli("config", llama7b, "--explain", "--lang", "en")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "Llama-2-7b-chat-hf: the 21 fields of config.json, explained"
    at = lines.index("hidden_size = 4096")
    assert (
        lines[at + 1]
        == "    The width of the model: the length of the vector that represents each token, at the output of the embedding and of every layer."
    )
    at = lines.index('torch_dtype = "float16"')
    assert lines[at + 1] == (
        "    The precision the weights are stored in and loaded as by default. Each parameter takes 4 bytes in float32 and 2 bytes in float16 or bfloat16. "
        "float16: half precision, half the memory of float32 with a narrower range (largest value 65504)."
    )
    assert (
        lines[lines.index("rope_scaling = null") + 1]
        == "    How rotary position embedding is stretched to reach longer contexts than it was trained on; null means no scaling."
    )
    assert "(no glossary entry)" not in result.out
    assert result.out.split("Derived from the config:\n")[1] == (
        "  head_dim: 128 (hidden_size / num_attention_heads = 4096 / 32)\n"
        "  attention: MHA (multi-head): 32 query heads, each with its own key/value head\n"
        "  KV heads: 32\n"
        "  layers: 32\n"
        "  feed-forward: dense, inner size 11008 (gate, up, down)\n"
        "  vocabulary: 32000 tokens\n"
        "  context: 4096 tokens\n"
        "  embeddings: untied: separate embedding and output head matrices\n"
        "  sliding window: none (every layer attends to the whole context)\n"
        "  weights dtype: F16\n"
    )


def test_chinese(llama7b, cli):
    result = cli("config", llama7b, "--explain", "--lang", "zh")
    lines = result.out.splitlines()
    assert lines[0] == "Llama-2-7b-chat-hf：config.json 的 21 个字段及其含义"
    assert (
        lines[lines.index("hidden_size = 4096") + 1]
        == "    模型的宽度：表示每个词元的向量长度，即嵌入层和每一层输出的维度。"
    )
    assert (
        lines[lines.index("intermediate_size = 11008") + 1]
        == "    每层前馈网络（MLP）的中间维度：隐藏向量先投影到这个维度，再投影回 hidden_size。"
    )
    assert (
        lines[lines.index("max_position_embeddings = 4096") + 1]
        == "    模型设计支持的最长序列长度（以词元计），即上下文长度。"
    )
    assert lines[lines.index('torch_dtype = "float16"') + 1] == (
        "    权重保存时的精度，也是默认加载的精度。float32 每个参数占 4 字节，float16 或 bfloat16 占 2 字节。"
        "float16：半精度，内存只有 float32 的一半，但数值范围较窄（最大 65504）。"
    )
    assert result.out.split("由配置推导出的信息：\n")[1] == (
        "  每个头的维度：128（hidden_size / num_attention_heads = 4096 / 32）\n"
        "  注意力：MHA（多头注意力）：32 个查询头，每个头有自己的键/值头\n"
        "  键/值头数：32\n"
        "  层数：32\n"
        "  前馈网络：稠密，中间维度 11008（gate、up、down）\n"
        "  词表：32000 个词元\n"
        "  上下文长度：4096 个词元\n"
        "  嵌入：不共享：嵌入矩阵与输出头是两个矩阵\n"
        "  滑动窗口：无（每一层都关注整个上下文）\n"
        "  权重精度：F16\n"
    )


@pytest.mark.parametrize(
    "environ, lang",
    [
        ({"LANG": "zh_CN.UTF-8"}, "zh"),
        ({"LANG": "zh_TW.UTF-8"}, "zh"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({}, "en"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8"}, "zh"),
        ({"LC_ALL": "", "LANG": "zh_CN"}, "zh"),
    ],
)
def test_language_from_locale(environ, lang):
    assert language_from_locale(environ) == lang


def test_locale_picks_the_default_language(llama7b, cli_subprocess):
    env = {"LANG": "zh_CN.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
    result = cli_subprocess("config", llama7b, "--explain", env=env)
    assert result.stdout.startswith("Llama-2-7b-chat-hf：config.json 的 21 个字段及其含义\n")


def test_field_without_glossary_entry(tmp_path, cli):
    folder = _config_folder(
        tmp_path / "m", {**replicas.published_config("Llama-2-7b-chat-hf"), "my_private_knob": [1, 2]}
    )
    lines = cli("config", folder, "--explain", "--lang", "en").out.splitlines()
    assert lines[lines.index("my_private_knob = [1, 2]") + 1] == "    (no glossary entry)"
    assert "1 of 22 fields have no glossary entry." in lines
    lines = cli("config", folder, "--explain", "--lang", "zh").out.splitlines()
    assert lines[lines.index("my_private_knob = [1, 2]") + 1] == "    （术语表中没有此字段）"
    assert "22 个字段中有 1 个在术语表中没有条目。" in lines


def test_nested_rope_scaling_and_effective_context(tmp_path, cli):
    config = {
        **replicas.published_config("Meta-Llama-3-8B"),
        "max_position_embeddings": 131072,
        "rope_scaling": {
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
    }
    lines = cli("config", _config_folder(tmp_path / "m", config), "--explain", "--lang", "en").out.splitlines()
    assert lines[lines.index("rope_scaling = {...}") + 2 : lines.index("rope_scaling = {...}") + 4] == [
        "  rope_scaling.factor = 8.0",
        "      How many times the context is stretched by the scaling.",
    ]
    assert lines[lines.index('  rope_scaling.rope_type = "llama3"') + 1].startswith(
        "      The rotary position embedding variant. llama3: Llama 3.1's scaling"
    )
    assert "  effective context: 131072 tokens after RoPE scaling llama3 (max_position_embeddings 131072)" in lines
    assert "  attention: GQA (grouped-query): 32 query heads share 8 key/value heads, 4 per group" in lines


def test_transformers5_rope_parameters(tmp_path, cli):
    config = {
        **replicas.published_config("Llama-2-7b-chat-hf"),
        "rope_parameters": {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 4096,
            "rope_theta": 10000.0,
        },
    }
    del config["rope_scaling"]
    result = cli("config", _config_folder(tmp_path / "m", config), "--explain", "--lang", "zh")
    lines = result.out.splitlines()
    assert lines[lines.index("  rope_parameters.factor = 4.0") + 1] == "      缩放把上下文拉伸的倍数。"
    assert (
        lines[lines.index("  rope_parameters.rope_theta = 10000.0") + 1]
        == "      旋转位置编码频率的底数；底数越大越适合长上下文。"
    )
    assert (
        "  有效上下文：RoPE 缩放（yarn）后为 16384 个词元（original_max_position_embeddings 4096 x factor 4）" in lines
    )
    assert "（术语表中没有此字段）" not in result.out


def test_qwen3_head_dim_from_config(tmp_path, cli):
    """Qwen3-0.6B: head_dim 128 while hidden_size / num_attention_heads is 64."""
    config = {
        "architectures": ["Qwen3ForCausalLM"],
        "model_type": "qwen3",
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 40960,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "sliding_window": None,
        "use_sliding_window": False,
        "max_window_layers": 28,
    }
    lines = cli("config", _config_folder(tmp_path / "m", config), "--explain", "--lang", "en").out.splitlines()
    assert "  head_dim: 128 (head_dim in config.json; hidden_size / num_attention_heads would give 64)" in lines
    assert "  embeddings: tied: the output head reuses the embedding matrix" in lines
    assert derive(config).head_dim == 128


def test_base_model_claims_no_tied_head(bert_dir, cli):
    """BertModel has no output head, though tie_word_embeddings defaults to true."""
    assert (
        '"BertModel"' in (bert_dir / "config.json").read_text()
        and '"tie_word_embeddings": true' in (bert_dir / "config.json").read_text()
    )
    result = cli("config", bert_dir, "--explain", "--lang", "en")
    assert result.out.split("Derived from the config:\n")[1] == (
        "  head_dim: 16 (hidden_size / num_attention_heads = 32 / 2)\n"
        "  attention: MHA (multi-head): 2 query heads, each with its own key/value head\n"
        "  KV heads: 2\n"
        "  layers: 2\n"
        "  feed-forward: dense, inner size 48 (up, down)\n"
        "  vocabulary: 100 tokens\n"
        "  context: 64 tokens\n"
        "  embeddings: no output head to tie (architectures names a model without one)\n"
        "  sliding window: none (every layer attends to the whole context)\n"
        "  weights dtype: F32\n"
    )
    lines = cli("config", bert_dir, "--explain", "--lang", "zh").out.splitlines()
    assert "  嵌入：没有可共享的输出头（architectures 表明模型不含输出头）" in lines


def test_gpt2_field_names(gpt2_dir, cli):
    lines = cli("config", gpt2_dir, "--explain", "--lang", "en").out.splitlines()
    assert (
        lines[lines.index("n_embd = 32") + 1]
        == "    GPT-2's name for hidden_size: the length of the vector that represents each token."
    )
    assert "  head_dim: 16 (n_embd / n_head = 32 / 2)" in lines
    assert "  feed-forward: dense, inner size 128 (up, down)" in lines
    assert "  context: 64 tokens" in lines


@pytest.mark.parametrize(
    "config, attention, kv_heads, group",
    [
        ({"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 32}, "MHA", 32, 1),
        ({"hidden_size": 4096, "num_attention_heads": 32}, "MHA", 32, 1),
        ({"hidden_size": 8192, "num_attention_heads": 64, "num_key_value_heads": 8}, "GQA", 8, 8),
        ({"hidden_size": 2048, "num_attention_heads": 8, "num_key_value_heads": 1}, "MQA", 1, 8),
        ({"hidden_size": 768, "n_head": 12}, "MHA", 12, 1),
        (
            {
                "hidden_size": 5120,
                "num_attention_heads": 128,
                "num_key_value_heads": 128,
                "kv_lora_rank": 512,
                "q_lora_rank": 1536,
                "qk_rope_head_dim": 64,
            },
            "MLA",
            None,
            None,
        ),
    ],
)
def test_attention_kind(config, attention, kv_heads, group):
    arch = derive({"num_hidden_layers": 2, "vocab_size": 10, **config})
    assert (arch.attention, arch.num_kv_heads, arch.query_group_size) == (attention, kv_heads, group)


def test_mla_and_moe_derived_text(tmp_path, cli):
    config = {
        "architectures": ["DeepseekV3ForCausalLM"],
        "model_type": "deepseek_v3",
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "num_hidden_layers": 61,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "n_routed_experts": 256,
        "n_shared_experts": 1,
        "num_experts_per_tok": 8,
        "first_k_dense_replace": 3,
        "moe_layer_freq": 1,
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128,
        "v_head_dim": 128,
        "max_position_embeddings": 163840,
        "vocab_size": 129280,
        "tie_word_embeddings": False,
        "rope_scaling": {
            "beta_fast": 32,
            "beta_slow": 1,
            "factor": 40,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
            "original_max_position_embeddings": 4096,
            "type": "yarn",
        },
    }
    result = cli("config", _config_folder(tmp_path / "m", config), "--explain", "--lang", "en")
    assert result.out.split("Derived from the config:\n")[1] == (
        "  head_dim: 192 for queries and keys (qk_nope_head_dim 128 + qk_rope_head_dim 64), 128 for values (v_head_dim)\n"
        "  attention: MLA (multi-head latent): 128 query heads; keys and values are cached as a 512-dim latent plus a 64-dim RoPE key per token\n"
        "  KV heads: none (MLA caches one latent per token)\n"
        "  layers: 61\n"
        "  feed-forward: MoE: 256 experts, 8 per token, inner size 2048 each; shared experts with inner size 2048 in all; experts in 58 of 61 layers, the others dense\n"
        "  vocabulary: 129280 tokens\n"
        "  context: 163840 tokens\n"
        "  effective context: 163840 tokens after RoPE scaling yarn (original_max_position_embeddings 4096 x factor 40)\n"
        "  embeddings: untied: separate embedding and output head matrices\n"
        "  sliding window: none (every layer attends to the whole context)\n"
    )
    assert "(no glossary entry)" not in result.out


def test_config_not_json(tmp_path, cli):
    folder = tmp_path / "m"
    _config_folder(folder, {})
    (folder / "config.json").write_text("{oops")
    result = cli("config", folder, "--explain")
    assert result.code == 1
    assert result.out == ""
    assert (
        result.err
        == f"llm-anatomy: {folder}/config.json: expected a JSON config, found invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); fix or re-download config.json\n"
    )


def test_missing_fields_are_findings(tmp_path, cli):
    folder = _config_folder(tmp_path / "m", {"model_type": "llama", "hidden_size": "4096", "vocab_size": 32000})
    result = cli("config", folder, "--explain", "--lang", "en")
    assert result.code == 0
    assert result.out.split("Findings:\n")[1] == (
        '  config.json: expected hidden_size to be an integer in 1..1,048,576, found "4096"\n'
        "  config.json: expected num_hidden_layers (or n_layer, num_layers, n_layers) for the layer count, found no such field\n"
        "  config.json: expected num_attention_heads (or n_head, num_heads, n_heads) for the attention heads, found no such field\n"
    )
    assert "  layers: unknown (see findings)" in result.out.splitlines()
    result = cli("config", folder, "--explain", "--lang", "zh")
    assert result.out.split("发现的问题：\n")[1] == (
        '  config.json：hidden_size 的值 "4096" 类型不对或超出范围，应为 1..1,048,576；分析时不用它\n'
        "  config.json：缺少层数所需的字段 num_hidden_layers（或 n_layer, num_layers, n_layers）\n"
        "  config.json：缺少注意力头数所需的字段 num_attention_heads（或 n_head, num_heads, n_heads）\n"
    )


def test_json(llama7b, cli):
    data = json.loads(cli("config", llama7b, "--explain", "--lang", "zh", "--json").out)
    assert data["fields"][5] == {
        "path": "hidden_size",
        "value": 4096,
        "explanation": "模型的宽度：表示每个词元的向量长度，即嵌入层和每一层输出的维度。",
    }
    assert data["architecture"]["head_dim"] == 128
    assert data["architecture"]["attention"] == "MHA"
    assert data["findings"] == []
    assert (data["model"], data["lang"], len(data["fields"])) == ("Llama-2-7b-chat-hf", "zh", 21)
    assert data["derived"][:2] == [
        {"label": "每个头的维度", "text": "128（hidden_size / num_attention_heads = 4096 / 32）"},
        {"label": "注意力", "text": "MHA（多头注意力）：32 个查询头，每个头有自己的键/值头"},
    ]


def test_heads_not_a_multiple_of_kv_heads():
    arch = derive(
        {
            "hidden_size": 96,
            "num_hidden_layers": 2,
            "num_attention_heads": 6,
            "num_key_value_heads": 4,
            "vocab_size": 10,
        }
    )
    assert (arch.attention, [f.line() for f in arch.findings]) == (
        None,
        ["config.json: expected num_attention_heads 6 to be a multiple of num_key_value_heads, found 4"],
    )


def test_label_maps_shown_whole(tmp_path, cli):
    """Objects keyed by labels or class names are one value, not fields to explain."""
    config = {**replicas.published_config("Llama-2-7b-chat-hf"), "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}}
    lines = cli("config", _config_folder(tmp_path / "m", config), "--explain", "--lang", "en").out.splitlines()
    assert (
        lines[lines.index('id2label = {"0": "NEGATIVE", "1": "POSITIVE"}') + 1]
        == "    For classification heads: the label name of each output index."
    )
    assert not any(line.lstrip().startswith("id2label.") for line in lines)


def test_gemma4_layers_that_differ_derived_text(tmp_path, cli):
    """Gemma 4's MoE layout as llama.cpp converts it (the tests' tiny GGUF): the full-attention
    layers' own head size and KV heads, keys as values, the KV-sharing layers, the dense MLP
    beside the experts and its double width; every derived field explained."""
    import gguf_writers

    path, _ = gguf_writers.whole_model(str(tmp_path), "gemma4-moe")
    result = cli("config", path, "--explain", "--lang", "en")
    assert result.out.split("Derived from the config:\n")[1] == (
        "  head_dim: 16 (head_dim in config.json)\n"
        "  attention: GQA (grouped-query): 4 query heads share 2 key/value heads, 2 per group\n"
        "  KV heads: 2\n"
        "  full-attention layers: head_dim 32, KV heads 1; keys are also the values (no v_proj)\n"
        "  shared KV: the last 2 of 4 layers reuse earlier layers' keys and values and cache none\n"
        "  layers: 4\n"
        "  feed-forward: MoE: 4 experts, 2 per token, inner size 32 each; beside a dense MLP with inner size 96 in every layer; dense MLPs twice as wide (192) in the 2 KV-sharing layers\n"
        "  vocabulary: 128 tokens\n"
        "  context: 256 tokens\n"
        "  embeddings: tied: the output head reuses the embedding matrix\n"
        "  sliding window: 64 tokens, in 2 of 4 layers\n"
    )
    assert "(no glossary entry)" not in result.out
    lines = cli("config", path, "--explain", "--lang", "zh").out.splitlines()
    assert "  共享键值：4 层中的最后 2 层复用前面层的键和值，自己不缓存" in lines
