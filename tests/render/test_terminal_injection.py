"""Terminal injection (issue 14): strings from files, paths and library messages reach the
terminal escaped on every command and output form; JSON stays valid JSON that round-trips
the original strings (as \\u escapes); the same holds when stdout is a terminal."""

import json
import os
import pty
import re
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import checkpoints
from hostile import TERMINAL_UNSAFE, assert_clean_output
from llm_anatomy.cli.main import BUILD_NOTICE

# CSI (colour, clear screen), OSC (window title, ended by BEL), a C1 CSI, DEL, an RTL
# override and a line separator: what a hostile checkpoint would put in a string.
HOSTILE = "evil\x1b[31mRED\x1b[2J\x1b]0;pwned\x07\x9b1m\x7f\u202eslh.\u2028end"
FOLDER = "model\x1b[41m\u202e"  # a hostile folder name, shown as the model's name


@pytest.fixture(scope="module")
def hostile_models(tmp_path_factory, llama_dir):
    """(safetensors folder with hostile metadata and config strings, GGUF with hostile
    string metadata, folder whose config model_type transformers rejects, folder whose
    truncated shard has a hostile name, folder with a hostile rope_type), all under
    folders with hostile names."""
    root = tmp_path_factory.mktemp("inject")
    folder = root / FOLDER
    shutil.copytree(llama_dir, folder)
    for shard in sorted(folder.glob("*.safetensors")):
        save_file(load_file(shard), shard, metadata={"format": "pt", "note": HOSTILE, "creator" + HOSTILE: "x"})
    config = json.loads((folder / "config.json").read_text())
    config.update(
        note=HOSTILE,
        torch_dtype="float32",
        architectures=["LlamaForCausalLM"],
        rope_scaling={"rope_type": "default", "comment": HOSTILE},
    )
    (folder / "config.json").write_text(json.dumps(config))
    gguf = checkpoints.llama_gguf(
        str(llama_dir), str(root / f"{FOLDER}.gguf"), strings={"general.name": HOSTILE, "general.description": HOSTILE}
    )
    rejected = root / (FOLDER + "rejected")
    shutil.copytree(llama_dir, rejected)
    config = json.loads((rejected / "config.json").read_text())
    config["model_type"] = HOSTILE
    (rejected / "config.json").write_text(json.dumps(config))
    broken = root / (FOLDER + "broken")
    shutil.copytree(llama_dir, broken)
    index = json.loads((broken / "model.safetensors.index.json").read_text())
    first = sorted(set(index["weight_map"].values()))[0]
    hostile_shard = "shard" + HOSTILE.replace("/", "") + ".safetensors"
    os.rename(broken / first, broken / hostile_shard)
    with open(broken / hostile_shard, "r+b") as handle:
        handle.truncate(os.path.getsize(broken / hostile_shard) - 64)
    index["weight_map"] = {k: (hostile_shard if v == first else v) for k, v in index["weight_map"].items()}
    (broken / "model.safetensors.index.json").write_text(json.dumps(index))
    rope = root / (FOLDER + "rope")  # transformers warns about this rope_type on stderr, quoting it
    shutil.copytree(llama_dir, rope)
    config = json.loads((rope / "config.json").read_text())
    config["rope_scaling"] = {"rope_type": HOSTILE, "factor": 2.0}
    (rope / "config.json").write_text(json.dumps(config))
    return folder, gguf, rejected, broken, rope


TEXT_COMMANDS = [
    ("params",),
    ("params", "--metadata"),
    ("values", "model.norm.weight"),
    ("tree",),
    ("config",),
    ("config", "--explain"),
    ("summary",),
    ("stats",),
    ("stats", "--csv"),
]
JSON_COMMANDS = [
    ("params", "--json"),
    ("params", "--metadata", "--json"),
    ("tree", "--json"),
    ("config", "--json"),
    ("summary", "--json"),
    ("stats", "--json"),
    ("values", "model.norm.weight", "--json"),
]


def _strings(value):
    """Every string in a parsed JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _model(hostile_models, which):
    return dict(zip(MODELS, hostile_models))[which]


MODELS = ("folder", "gguf", "rejected", "broken", "rope")
CASES = [(which, args) for which in MODELS for args in TEXT_COMMANDS + JSON_COMMANDS]


@pytest.mark.parametrize("which, args", CASES, ids=[f"{w}-{'-'.join(a)}" for w, a in CASES])
def test_every_output_is_clean(hostile_models, cli, which, args):
    if which == "gguf" and args[0] == "values":
        args = ("values", "output_norm.weight") + args[2:]
    result = cli(args[0], _model(hostile_models, which), *args[1:])
    assert result.code in (0, 1, 2), result.err
    assert_clean_output(result.out)
    assert_clean_output(result.err)
    if "--json" in args and result.code == 0:
        json.loads(result.out)  # still one valid document


@pytest.mark.parametrize(
    "args, where",
    [
        (("params", "--metadata", "--json"), "folder"),
        (("params", "--metadata", "--json"), "gguf"),
        (("config", "--json"), "folder"),
    ],
)
def test_json_round_trips_the_hostile_strings(hostile_models, cli, args, where):
    result = cli(args[0], _model(hostile_models, where), *args[1:])
    assert result.code == 0, result.err
    assert_clean_output(result.out)
    strings = list(_strings(json.loads(result.out)))
    assert HOSTILE in strings
    assert "\\u001b[31mRED" in result.out and "\\u009b1m\\u007f\\u202eslh.\\u2028end" in result.out


def test_text_shows_the_escapes(hostile_models, cli):
    result = cli("params", hostile_models[0], "--metadata")
    assert result.code == 0
    assert "evil\\x1b[31mRED\\x1b[2J\\x1b]0;pwned\\x07\\x9b1m\\x7f\\u202eslh.\\u2028end" in result.out


def test_stats_error_lines_name_the_shard_escaped(hostile_models, cli):
    for extra in ((), ("--json",), ("--csv",)):
        result = cli("stats", hostile_models[3], *extra)
        assert result.code == 1, result.err
        assert_clean_output(result.out)
        assert "shardevil" in result.out
    errors = json.loads(cli("stats", hostile_models[3], "--json").out)["errors"]
    assert (
        "/shardevil\\x1b[31mRED\\x1b[2J\\x1b]0;pwned\\x07\\x9b1m\\x7f\\u202eslh.\\u2028end.safetensors: tensor "
        in errors[0]["error"]
    )


def test_relayed_transformers_message_is_escaped(hostile_models, cli):
    result = cli("tree", hostile_models[2])
    assert_clean_output(result.out + result.err)
    assert "evil\\x1b[31mRED" in result.out + result.err


def _on_a_terminal(cache, *args):
    """Run the CLI with stdout and stderr on a pseudo-terminal: (exit status, what it showed).
    A fresh skeleton cache, so that transformers builds the model and says what it says."""
    main, child = pty.openpty()
    env = {**os.environ, "LLM_ANATOMY_CACHE": str(cache)}
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_anatomy.cli.main", *map(str, args)],
        stdout=child,
        stderr=child,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(child)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    return process.wait(timeout=60), shown.decode("utf-8", "replace")


@pytest.mark.parametrize(
    "args, which",
    [
        (("params", "--metadata"), 0),
        (("params", "--metadata", "--json"), 0),
        (("config", "--explain"), 4),
        (("config",), 4),
        (("tree",), 2),
        (("stats", "--json"), 0),
    ],
)
def test_on_a_terminal(hostile_models, tmp_path, args, which):
    which = hostile_models[which]
    code, shown = _on_a_terminal(tmp_path, args[0], which, *args[1:])
    assert code == 0, shown
    text = shown.replace("\r\n", "\n")  # the terminal's own line discipline
    if BUILD_NOTICE in text:  # ours, its controls meant: shown while transformers builds, then cleared
        text = text.replace(BUILD_NOTICE, "", 1).replace("\r\x1b[K", "", 1)
    assert TERMINAL_UNSAFE.search(text) is None, text[:2000]
    if "--json" in args:
        json.loads(text)


# --- Invisible characters in names (hostile report 2026-12, O1) ---------------------------------

# Names that read as lm_head.weight on a terminal: a zero-width space, LRM, RLM, the Arabic
# letter mark, a BOM, a tag character and an interlinear annotation anchor.
LOOKALIKES = [
    "lm_head\u200b.weight",
    "lm_head.weight\u200e",
    "lm_head.weight\u200f",
    "\u061clm_head.weight",
    "lm_head.\ufeffweight",
    "lm_head.weight\U000e0041",
    "lm_\ufff9head.weight",
]


@pytest.fixture(scope="module")
def lookalikes(tmp_path_factory, llama_dir):
    """(the tiny Llama in one safetensors file, beside its real lm_head.weight the LOOKALIKES of
    shape [2, 3], and a metadata key and value with a word joiner; the same names without a
    config, lm_head.weight of shape [4, 2]), in a safetensors header as the safetensors
    library writes it."""
    root = tmp_path_factory.mktemp("lookalikes")
    folder, bare = root / "model", root / "bare"
    folder.mkdir()
    bare.mkdir()
    shutil.copy(llama_dir / "config.json", folder)
    tensors = {}
    for shard in sorted(llama_dir.glob("*.safetensors")):
        tensors.update(load_file(shard))
    fakes = {name: torch.full((2, 3), float(i)) for i, name in enumerate(LOOKALIKES)}
    save_file({**tensors, **fakes}, folder / "model.safetensors", metadata={"format": "pt", "no\u2060te": "x\u2060y"})
    save_file({"lm_head.weight": torch.zeros(4, 2), **fakes}, bare / "model.safetensors")
    return folder, bare


PROGRESS = re.compile(r"[^\n]*\r\x1b\[K")


def _lines_with(text, part):
    return [line for line in text.split("\n") if part in line]


# What each command shows of the lookalikes: (arguments, which model, a part of the lines to
# keep, those lines exactly). The llama folder is A of the diff.
PARAMS_ROW = "{:<48}{:<11}F32         6       24 B  model.safetensors"
LOOKALIKE_VIEWS = {
    "params": (
        ("params",),
        0,
        "lm_",
        [
            "lm_head.weight                                  [128, 64]  F32     8,192  32.00 KiB  model.safetensors",
            *(
                PARAMS_ROW.format(name, "[2, 3]")
                for name in (
                    "lm_head.weight\\u200e",
                    "lm_head.weight\\u200f",
                    "lm_head.weight\\U000e0041",
                    "lm_head.\\ufeffweight",
                    "lm_head\\u200b.weight",
                    "lm_\\ufff9head.weight",
                    "\\u061clm_head.weight",
                )
            ),
        ],
    ),
    "metadata": (("params", "--metadata"), 0, "no", ["no\\u2060te  x\\u2060y"]),
    "values": (
        ("values", "--filter", "*lm_*head*"),
        0,
        "F32",
        [
            "lm_head.weight  [128, 64]  F32",
            "lm_head.weight\\u200e  [2, 3]  F32",
            "lm_head.weight\\u200f  [2, 3]  F32",
            "lm_head.weight\\U000e0041  [2, 3]  F32",
            "lm_head.\\ufeffweight  [2, 3]  F32",
            "lm_head\\u200b.weight  [2, 3]  F32",
            "lm_\\ufff9head.weight  [2, 3]  F32",
            "\\u061clm_head.weight  [2, 3]  F32",
        ],
    ),
    "tree": (
        ("tree",),
        1,
        "lm_",
        [
            "├── lm_head                32            32",
            "├── lm_head\\u200b           6             6",
            "├── lm_\\ufff9head           6             6",
            "└── \\u061clm_head           6             6",
        ],
    ),
    "diff": (
        ("diff", "llama"),
        0,
        "  lm_",
        [
            "  lm_head.weight\\u200e",
            "  lm_head.weight\\u200f",
            "  lm_head.weight\\U000e0041",
            "  lm_head.\\ufeffweight",
            "  lm_head\\u200b.weight",
            "  lm_\\ufff9head.weight",
        ],
    ),
    "summary": (
        ("summary",),
        0,
        "lm_",
        [
            "  lm_head.weight\\u200e (and 3 more like it): expected shape [128, 64] (vocab_size 128, hidden_size 64) from config.json, found [2, 3]"
        ],
    ),
}


def _lookalike_args(lookalikes, llama_dir, view):
    args, which, part, lines = LOOKALIKE_VIEWS[view]
    model = lookalikes[which]
    if args[0] == "diff":  # diff A B: the real Llama, then the one with lookalikes
        return ("diff", llama_dir, model), part, lines
    return (args[0], model, *args[1:]), part, lines


@pytest.mark.parametrize("view", LOOKALIKE_VIEWS)
def test_lookalike_names_are_shown_escaped_on_a_pipe(lookalikes, llama_dir, cli_subprocess, view):
    args, part, lines = _lookalike_args(lookalikes, llama_dir, view)
    result = cli_subprocess(*args)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert_clean_output(result.stdout)
    assert _lines_with(result.stdout, part) == lines


@pytest.mark.parametrize("view", LOOKALIKE_VIEWS)
def test_lookalike_names_are_shown_escaped_on_a_terminal(lookalikes, llama_dir, tmp_path, view):
    args, part, lines = _lookalike_args(lookalikes, llama_dir, view)
    code, shown = _on_a_terminal(tmp_path, *args)
    # The terminal's line discipline; our progress lines (diff's, the build notice), their
    # controls meant, each cleared at its end.
    text = PROGRESS.sub("", shown.replace("\r\n", "\n"))
    assert code == 0, text
    assert TERMINAL_UNSAFE.search(text) is None, text[:2000]
    assert _lines_with(text, part) == lines


JSON_VIEWS = {  # arguments: (which model, strings the document holds, a JSON escape it shows)
    ("params", "--json"): (0, LOOKALIKES, "lm_head.weight\\udb40\\udc41"),
    ("params", "--metadata", "--json"): (0, ["no\u2060te", "x\u2060y"], "no\\u2060te"),
    ("tree", "--json"): (1, ["weight\u200e", "weight\U000e0041", "lm_head\u200b"], "weight\\u200e"),
}


@pytest.mark.parametrize("args", JSON_VIEWS, ids=" ".join)
def test_lookalike_names_round_trip_in_json(lookalikes, cli_subprocess, args):
    which, held, shown = JSON_VIEWS[args]
    result = cli_subprocess(args[0], lookalikes[which], *args[1:])
    assert result.returncode == 0, result.stderr
    assert_clean_output(result.stdout)
    assert shown in result.stdout
    strings = set(_strings(json.loads(result.stdout)))
    assert set(held) <= strings


def test_the_html_report_shows_lookalike_names_escaped(lookalikes, tmp_path, cli):
    page = tmp_path / "report.html"
    result = cli("report", lookalikes[0], "-o", page)
    assert result.code == 0, result.err
    html = page.read_text(encoding="utf-8")
    assert TERMINAL_UNSAFE.search(html) is None
    shown = html.replace("<wbr>", "")  # where a long name may wrap
    escaped = [
        "lm_head\\u200b.weight",
        "lm_head.weight\\u200e",
        "lm_head.weight\\u200f",
        "\\u061clm_head.weight",
        "lm_head.\\ufeffweight",
        "lm_head.weight\\U000e0041",
        "lm_\\ufff9head.weight",
    ]
    assert [f"<td><code>{name}</code></td><td><code>[2, 3]</code></td>" in shown for name in escaped] == [True] * len(
        LOOKALIKES
    )
    assert (
        "</span> lm_head.weight\\u200e (and 3 more like it): expected shape [128, 64] (vocab_size 128, hidden_size 64) from config.json, found [2, 3]"
        in shown
    )
