"""The corpus `scan` is measured on (tests/analysis/test_scan.py, bench/scan_compare.py): hostile
pickles (the project's own gadgets, and published bypasses of picklescan and ModelScan
rebuilt from their advisories) and benign checkpoints written by the real writers.
Each builder takes a folder and returns the path to scan."""

from __future__ import annotations

import io
import os
import pickle
import zipfile


class RunsACommand:
    """tests/formats/test_torch_zip.py's gadget: os.system through __reduce__."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def torch_zip(path, data_pkl: bytes, extra: dict | None = None) -> str:
    """A zip as torch.save lays it out, around a hand-built data.pkl."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/byteorder", b"little")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return str(path)


def _write(path, data: bytes) -> str:
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


def _saved(state, **kwargs) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer, **kwargs)
    return buffer.getvalue()


def _text(value: str) -> bytes:
    """BINUNICODE of value."""
    raw = value.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


EVIL_P0 = b"cos\nsystem\n(S'touch pwned'\ntR."  # protocol 0: GLOBAL, MARK, STRING, TUPLE, REDUCE
# builtins.getattr(builtins.__import__('os'), 'system')('touch pwned'): picklescan's
# denylist knew os.system but not the getattr route (GHSA advisories on getattr gadgets).
GETATTR = (
    b"\x80\x02cbuiltins\ngetattr\n(cbuiltins\n__import__\n("
    + _text("os")
    + b"tR"
    + _text("system")
    + b"tR("
    + _text("touch pwned")
    + b"tR."
)
# runpy._run_code(code, globals): runs source text (a ModelScan bypass, its issue 263).
RUNPY = b"\x80\x02crunpy\n_run_code\n(" + _text("import os; os.system('touch pwned')") + b"}tR."
# pip's main(['install', ...]): installs and runs a package's setup code.
PIP = b"\x80\x02cpip\nmain\n((" + _text("install") + _text("evil-package") + b"ltR."
# operator.attrgetter('system')(__import__('os'))('touch pwned'): no os.system global at all.
ATTRGETTER = (
    b"\x80\x02coperator\nattrgetter\n("
    + _text("system")
    + b"tR(cbuiltins\n__import__\n("
    + _text("os")
    + b"tRtR("
    + _text("touch pwned")
    + b"tR."
)
# STACK_GLOBAL of a module name computed while loading (str('os')), then 'system': a
# scanner that reads the two strings before STACK_GLOBAL sees no module at all.
COMPUTED = (
    b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00cbuiltins\nstr\n("
    + _text("os")
    + b"tR"
    + _text("system")
    + b"\x93("
    + _text("touch pwned")
    + b"tR."
)


def _nested_torch_load() -> bytes:
    """torch.load(io.BytesIO(<a torch file whose pickle runs a command>)): the outer pickle
    names torch.load and _io.BytesIO; the command is in the inner file."""
    inner = _saved({"w": RunsACommand()})
    return b"\x80\x02ctorch\nload\n(c_io\nBytesIO\n(B" + len(inner).to_bytes(4, "little") + inner + b"tRtR."


def _duplicate_entry(path) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name it writes
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
            archive.writestr("archive/data.pkl", EVIL_P0)
    return str(path)


MALICIOUS = {
    "reduce-os-system": lambda d: _write(d / "pytorch_model.bin", _saved({"w": 0, "payload": RunsACommand()})),
    "inst-posix-system": lambda d: torch_zip(d / "model.pt", b"\x80\x02(X\x02\x00\x00\x00idiposix\nsystem\n."),
    "build-on-allowed-global": lambda d: torch_zip(
        d / "model.pt", b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x01\x00\x00\x00aK\x01sb."
    ),
    "builtins-getattr": lambda d: _write(d / "model.pkl", GETATTR),
    "runpy-run-code": lambda d: _write(d / "model.pkl", RUNPY),
    "pip-main": lambda d: _write(d / "model.pkl", PIP),
    "operator-attrgetter": lambda d: _write(d / "model.pkl", ATTRGETTER),
    "stack-global-computed": lambda d: _write(d / "model.pkl", COMPUTED),
    "torch-load-nested": lambda d: _write(d / "model.pkl", _nested_torch_load()),
    "protocol-0-in-zip": lambda d: torch_zip(d / "model.pt", EVIL_P0),
    "protocol-0-in-other-member": lambda d: torch_zip(
        d / "model.pt", pickle.dumps({}, protocol=2), {"archive/extra/state.pkl": EVIL_P0}
    ),
    "pickle-after-stop": lambda d: _write(d / "model.pkl", pickle.dumps({"w": 1}, protocol=2) + EVIL_P0),
    "duplicate-zip-entry": lambda d: _duplicate_entry(d / "model.pt"),
    "legacy-torch": lambda d: _write(
        d / "model.pt", _saved({"w": 0, "payload": RunsACommand()}, _use_new_zipfile_serialization=False)
    ),
    "named-only": lambda d: torch_zip(d / "model.pt", b"\x80\x02}X\x01\x00\x00\x00acos\nsystem\ns."),
    "dict-spray": lambda d: torch_zip(d / "model.pt", b"\x80\x02" + b"}" * 3_000_000 + b"."),
}


def _benign_torch(d, **kwargs) -> str:
    import torch

    return _write(
        d / "model.pt",
        _saved({"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3, dtype=torch.bfloat16)}, **kwargs),
    )


def _benign_gguf(d) -> str:
    import gguf
    import numpy as np

    path = str(d / "model.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_chat_template(
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


BENIGN = {
    "torch-zip": _benign_torch,
    "torch-legacy": lambda d: _benign_torch(d, _use_new_zipfile_serialization=False),
    "gguf-with-template": _benign_gguf,
}


def tar_checkpoint(path, members: dict) -> str:
    """torch.save's format before 0.4, as torch.load still reads it: a tar of named members."""
    import tarfile

    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return str(path)


MALICIOUS["tar-pickle-member"] = lambda d: tar_checkpoint(
    d / "model.tar",
    {
        "sys_info": pickle.dumps({"protocol_version": 1001}, protocol=2),
        "pickle": EVIL_P0,
        "storages": pickle.dumps(0, protocol=2) + b"\0" * 16,
    },
)
