"""Hostile input to the readers (issue 14, the reading side): JSON bombs in every JSON file a
checkpoint carries, oversized files (sparse, so "3 GB" costs no disk), caps on names,
counts, ranks and dimensions, pickle bombs, and paths that are not readable files. Each
family runs the CLI in a bounded subprocess (tests/hostile.py) and asserts the exact line,
exit 1 (2 for usage), no traceback, and nothing written into the model folder."""

import io
import os
import pickle
import socket
import stat
import struct
import zipfile
from collections import OrderedDict

import pytest

from hostile import assert_refused, permissions_bind, run_cli, snapshot

GB3 = 3 << 30
F32_2 = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'


def _safetensors(path, header: bytes, data: bytes = b"\0" * 8) -> str:
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header + data)
    return str(path)


def _refused(args, message, folders=(), codes=(1,), **kwargs):
    before = snapshot(*folders)
    outcome = run_cli(*args, **kwargs)
    assert_refused(outcome, codes, f"llm-anatomy: {message}")
    assert snapshot(*folders) == before


# --- JSON: every JSON file of a checkpoint, every kind of bomb -------------------------------


def _header_kind(folder, value: bytes):
    path = _safetensors(folder / "model.safetensors", b'{"w":' + value + b"}")
    return ("params", path), path, "a JSON header", "the file is corrupt; download it again", 5


def _index_kind(folder, value: bytes):
    path = folder / "model.safetensors.index.json"
    path.write_bytes(b'{"weight_map":' + value + b"}")
    return ("params", folder), str(path), "a JSON index with a weight_map", "download the index again", 14


def _config_kind(folder, value: bytes):
    _safetensors(folder / "model.safetensors", F32_2)
    path = folder / "config.json"
    path.write_bytes(b'{"x":' + value + b"}")
    return ("config", folder), str(path), "a JSON config", "fix or re-download config.json", 5


def _meta_params_kind(folder, value: bytes):
    with zipfile.ZipFile(folder / "consolidated.00.pth", "w") as archive:
        archive.writestr("consolidated/data.pkl", pickle.dumps({}, protocol=2))
    path = folder / "params.json"
    path.write_bytes(b'{"x":' + value + b"}")
    return ("config", folder), str(path), "Meta's params.json", "fix or re-download params.json", 5


JSON_KINDS = {"header": _header_kind, "index": _index_kind, "config": _config_kind, "params.json": _meta_params_kind}

JSON_BOMBS = {
    "nested-100000": (
        b"[" * 100_000 + b"]" * 100_000,
        "expected {what} nested at most 64 levels deep, found deeper nesting; {todo}",
    ),
    "unclosed-100000": (b"[" * 100_000, "expected {what} nested at most 64 levels deep, found deeper nesting; {todo}"),
    "objects-65": (
        b'{"a":' * 65 + b"1" + b"}" * 65,
        "expected {what} nested at most 64 levels deep, found deeper nesting; {todo}",
    ),
    "brackets-in-strings": (
        b'["' + b"[" * 100_000 + b'"' + b',"\\\\"' * 3 + b"," + b"[" * 70 + b"]" * 70 + b"]",
        "expected {what} nested at most 64 levels deep, found deeper nesting; {todo}",
    ),
    "int-5000-digits": (b"1" * 5000, "expected {what}, found an integer of more than 4300 digits; {todo}"),
    "negative-int-5000-digits": (
        b"[-" + b"9" * 5000 + b"]",
        "expected {what}, found an integer of more than 4300 digits; {todo}",
    ),
    "invalid-utf8": (b'"\xff"', "expected {what}, found invalid UTF-8 at byte {at}; {todo}"),
}


@pytest.mark.parametrize("kind", JSON_KINDS)
@pytest.mark.parametrize("bomb", JSON_BOMBS)
def test_json_bombs_in_every_json_file(tmp_path, kind, bomb):
    value, template = JSON_BOMBS[bomb]
    args, path, what, todo, value_at = JSON_KINDS[kind](tmp_path, value)
    at = value_at + value.find(b"\xff")  # in the JSON text
    _refused(args, f"{path}: " + template.format(what=what, todo=todo, at=at), [tmp_path])


def test_json_nested_within_the_bound_still_reads(tmp_path):
    """The bound is on nesting, not on brackets: 60 levels, and brackets inside strings, read."""
    folder = tmp_path / "m"
    folder.mkdir()
    _safetensors(folder / "model.safetensors", F32_2)
    (folder / "config.json").write_bytes(
        b'{"deep":' + b"[" * 60 + b"]" * 60 + b', "name": "[[[{{{\\"\\\\", "model_type": "llama"}'
    )
    from llm_anatomy.locate import open_catalog

    config = open_catalog(str(folder)).require_config()
    assert config["name"] == '[[[{{{"\\' and config["model_type"] == "llama"


@pytest.mark.parametrize(
    "kind, message",
    [
        (
            "index",
            "{path}: expected a JSON index with a weight_map of at most 20971520 bytes, found 3221225472 bytes; download the index again",
        ),
        (
            "config",
            "{path}: expected a JSON config of at most 4194304 bytes, found 3221225472 bytes; fix or re-download config.json",
        ),
        (
            "params.json",
            "{path}: expected Meta's params.json of at most 4194304 bytes, found 3221225472 bytes; fix or re-download params.json",
        ),
    ],
)
def test_sparse_3gb_json_files_are_refused_unread(tmp_path, kind, message):
    args, path, _, _, _ = JSON_KINDS[kind](tmp_path, b"1")
    os.truncate(path, GB3)
    _refused(args, message.format(path=path), [tmp_path])


def test_sparse_3gb_header_length(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", GB3) + b"{")
    os.truncate(path, GB3 + 8)
    _refused(
        ("params", path),
        f"{path}: expected a header of at most 104857600 bytes, found a header length of 3221225472 bytes; the file is corrupt or not safetensors",
        [tmp_path],
    )


# --- The Hugging Face cache's refs -------------------------------------------------------------


def _hub_repo(tmp_path, ref_content: bytes):
    repo = tmp_path / "hub" / "models--acme--m"
    (repo / "refs").mkdir(parents=True)
    (repo / "snapshots").mkdir()
    ref = repo / "refs" / "main"
    ref.write_bytes(ref_content)
    return {"HF_HUB_CACHE": str(tmp_path / "hub")}, ref


DAMAGED = "the cache is damaged; download the model again"


@pytest.mark.parametrize(
    "content, found",
    [
        (b"../../elsewhere", "'../../elsewhere'"),
        (b"", "''"),
        (b"0123abcd" * 5 + b"/x", "'" + "0123abcd" * 5 + "/x'"),
        (b"\x1b]0;pwned\x07" + b"a" * 40, "'\\x1b]0;pwned\\x07" + "a" * 40 + "'"),
        (b"\xff\xfe" + b"a" * 38, "b'\\xff\\xfe" + "a" * 38 + "'"),
        (b"ABCDEF" + b"0" * 34, "'ABCDEF" + "0" * 34 + "'"),
    ],
    ids=["traversal", "empty", "slash", "terminal-escape", "binary", "upper-case"],
)
def test_refs_main_must_hold_a_commit_hash(tmp_path, content, found):
    env, ref = _hub_repo(tmp_path, content)
    _refused(("params", "acme/m"), f"{ref}: expected a commit hash, found {found}; {DAMAGED}", [tmp_path], env=env)


@pytest.mark.parametrize("size", [101, GB3])
def test_refs_main_is_read_at_most_100_bytes(tmp_path, size):
    env, ref = _hub_repo(tmp_path, b"0123abcd" * 5)
    os.truncate(ref, size)
    _refused(
        ("params", "acme/m"),
        f"{ref}: expected a commit hash of at most 100 bytes, found {size} bytes; {DAMAGED}",
        [tmp_path],
        env=env,
    )


@pytest.mark.parametrize("revision", ["../../../etc", "/etc", "a/../../b", "..", "v1\x1b[2J"])
def test_revisions_that_leave_refs_are_usage_errors(tmp_path, revision):
    env, _ = _hub_repo(tmp_path, b"0123abcd" * 5)
    shown = repr(revision).replace("\x1b", "\\x1b")
    _refused(
        ("params", "acme/m", "--revision", revision),
        f"acme/m: expected a revision (branch, tag or commit), found {shown}; pass a name such as main, v1.0 or refs/pr/1",
        [tmp_path],
        codes=(2,),
        env=env,
    )


# --- Paths that are not regular files, or not readable ------------------------------------------


def _fifo(tmp_path):
    path = tmp_path / "model.safetensors"
    os.mkfifo(path)
    return str(path), "a fifo"


def _socket(tmp_path):
    path = tmp_path / "model.safetensors"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return str(path), "a socket"


def _link_to_device(tmp_path):
    path = tmp_path / "model.safetensors"
    os.symlink("/dev/zero", path)
    return str(path), "a character device"


@pytest.mark.parametrize(
    "make",
    [
        lambda _: ("/dev/null", "a character device"),
        lambda _: ("/dev/zero", "a character device"),
        _fifo,
        _socket,
        _link_to_device,
    ],
    ids=["dev-null", "dev-zero", "fifo", "socket", "link-to-device"],
)
@pytest.mark.parametrize("command", ["params", "values", "summary", "stats"])
def test_model_that_is_not_a_file_or_folder(tmp_path, make, command):
    """Named as given (never its folder, as `params /dev/null` once said of /dev), at once:
    a fifo is never opened for reading, which would block until a writer came."""
    path, kind = make(tmp_path)
    _refused(
        (command, path),
        f"{path}: expected a model folder or a weights file, found {kind}; pass a model folder or a weights file",
        [tmp_path],
    )


SHARD = "model-00001-of-00001.safetensors"


def _shard_fifo(folder):
    os.mkfifo(folder / SHARD)
    return "a fifo", "put the shard file in its place, or download it again"


def _shard_folder(folder):
    (folder / SHARD).mkdir()
    return "a folder", "put the shard file in its place, or download it again"


def _shard_link_loop(folder):
    os.symlink(SHARD + ".other", folder / SHARD)
    os.symlink(SHARD, folder / (SHARD + ".other"))
    return "a symlink loop", "put the shard file in its place, or download it again"


def _shard_link_to(target):
    def make(folder):
        os.symlink(target, folder / SHARD)
        return "a character device", "put the shard file in its place, or download it again"

    return make


def _shard_broken_link(folder):
    os.symlink(folder / "gone.safetensors", folder / SHARD)
    return "a broken symlink", "put the shard file in its place, or download it again"


@pytest.mark.parametrize(
    "make",
    [
        _shard_fifo,
        _shard_link_to("/dev/zero"),
        _shard_link_to("/dev/urandom"),
        _shard_folder,
        _shard_link_loop,
        _shard_broken_link,
    ],
    ids=["fifo", "link-to-dev-zero", "link-to-dev-urandom", "folder", "symlink-loop", "broken-link"],
)
@pytest.mark.parametrize("command", ["params", "values", "stats"])
def test_index_shard_that_is_not_a_file(tmp_path, make, command):
    """What the index names is said for what it is (it was "no such file"), and never opened:
    a fifo would block, /dev/zero would never end."""
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": {"w": "%s"}}' % SHARD)
    kind, todo = make(tmp_path)
    index = tmp_path / "model.safetensors.index.json"
    _refused(
        (command, tmp_path), f"{index}: expected shard {SHARD} named by the index, found {kind}; {todo}", [tmp_path]
    )


def test_index_shard_linked_outside_the_folder_is_refused(tmp_path):
    """A downloaded model's index cannot make the tools read a file elsewhere on the machine
    (docs/security.md): a shard that is a link out of the model folder is refused, even to a
    readable safetensors file; a link to a file inside the folder is read."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _safetensors(outside / "secret.safetensors", F32_2)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors.index.json").write_text('{"weight_map": {"w": "%s"}}' % SHARD)
    os.symlink(outside / "secret.safetensors", model / SHARD)
    index = model / "model.safetensors.index.json"
    _refused(
        ("params", model),
        f"{index}: expected shard {SHARD} named by the index inside the model folder, found a link to {outside / 'secret.safetensors'}; copy the shard into the model folder",
        [tmp_path],
    )
    os.unlink(model / SHARD)
    _safetensors(model / "stored.safetensors", F32_2)
    os.symlink("stored.safetensors", model / SHARD)
    outcome = run_cli("params", model)
    assert (outcome.code, outcome.out.splitlines()[1]) == (0, f"w     [2]    F32         2    8 B  {SHARD}"), (
        outcome.err
    )


@pytest.mark.parametrize(
    "blob", ["../../blobs/b1", "../../../elsewhere.safetensors"], ids=["into-blobs", "out-of-the-repository"]
)
def test_cache_snapshot_shards_link_into_their_blobs(tmp_path, blob):
    """A Hugging Face cache snapshot's files are links into the repository's blobs/ folder:
    those are inside; a link out of the repository is refused as in any folder."""
    sha = "0123abcd" * 5
    env, _ = _hub_repo(tmp_path, sha.encode())
    repo = tmp_path / "hub" / "models--acme--m"
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir()
    (repo / "blobs").mkdir()
    _safetensors(repo / "blobs" / "b1", F32_2)
    _safetensors(tmp_path / "hub" / "elsewhere.safetensors", F32_2)
    (repo / "blobs" / "b2").write_text('{"weight_map": {"w": "%s"}}' % SHARD)
    os.symlink("../../blobs/b2", snapshot / "model.safetensors.index.json")
    os.symlink(blob, snapshot / SHARD)
    outcome = run_cli("params", snapshot, env=dict(os.environ, **env, HF_HUB_OFFLINE="1"))
    if blob.startswith("../../blobs"):
        assert (outcome.code, outcome.out.splitlines()[1]) == (0, f"w     [2]    F32         2    8 B  {SHARD}"), (
            outcome.err
        )
    else:
        index = snapshot / "model.safetensors.index.json"
        assert_refused(
            outcome,
            (1,),
            f"llm-anatomy: {index}: expected shard {SHARD} named by the index inside the model folder, found a link to {tmp_path / 'hub' / 'elsewhere.safetensors'}; copy the shard into the model folder",
        )


def _tiny_torch(path):
    import torch

    torch.save({"w": torch.zeros(2)}, path)
    return str(path)


def _tiny_gguf(path):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("w", np.zeros(4, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def _unreadable_weights(tmp_path, name, build):
    path = build(tmp_path / name)
    os.chmod(path, 0)
    return ("params", path), path, "a readable file"


def _unreadable_folder(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    _safetensors(folder / "model.safetensors", F32_2)
    os.chmod(folder, 0)
    return ("params", folder), str(folder), "a readable folder"


def _unreadable_shard(tmp_path):
    _safetensors(tmp_path / "a.safetensors", F32_2)
    shard = _safetensors(tmp_path / "b.safetensors", F32_2.replace(b'"w"', b'"v"'))
    os.chmod(shard, 0)
    return ("params", tmp_path), shard, "a readable file"


def _unreadable_index(tmp_path):
    index = tmp_path / "model.safetensors.index.json"
    index.write_text('{"weight_map": {}}')
    os.chmod(index, 0)
    return ("params", tmp_path), str(index), "a readable file"


def _unreadable_config(tmp_path):
    _safetensors(tmp_path / "model.safetensors", F32_2)
    config = tmp_path / "config.json"
    config.write_text("{}")
    os.chmod(config, 0)
    return ("config", tmp_path), str(config), "a readable file"


def _unreadable_refs_main(tmp_path):
    env, ref = _hub_repo(tmp_path, b"0123abcd" * 5)
    os.chmod(ref, 0)
    return ("params", "acme/m"), str(ref), "a readable file", env


UNREADABLE = {
    "safetensors-file": lambda tmp: _unreadable_weights(tmp, "w.safetensors", lambda p: _safetensors(p, F32_2)),
    "torch-file": lambda tmp: _unreadable_weights(tmp, "w.pt", _tiny_torch),
    "gguf-file": lambda tmp: _unreadable_weights(tmp, "w.gguf", _tiny_gguf),
    "folder": _unreadable_folder,
    "shard": _unreadable_shard,
    "index": _unreadable_index,
    "config": _unreadable_config,
    "refs-main": _unreadable_refs_main,
}


@pytest.mark.parametrize("case", UNREADABLE)
def test_unreadable_files_and_folders(tmp_path, case):
    why_not = permissions_bind()
    if why_not:
        pytest.skip(why_not)
    args, path, expected, *env = UNREADABLE[case](tmp_path)
    try:
        _refused(
            args,
            f"{path}: expected {expected}, found permission denied; check its permissions",
            [],
            env=env[0] if env else None,
            unprivileged=True,
        )
    finally:
        os.chmod(path, 0o755)  # so that pytest can remove it


# --- Names, counts, ranks and dimensions, in every format ---------------------------------------


def _st(entries):
    """entries: the header, or a function making it (built only when its case runs)."""
    return lambda tmp: _safetensors(tmp / "model.safetensors", entries() if callable(entries) else entries)


def _gguf_bytes(tensor_infos: bytes, count: int, data: bytes = b"\0" * 64) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", 3, count, 0)
    body = head + tensor_infos
    return body + b"\0" * (-len(body) % 32) + data


def _gguf_info(name: bytes, dims: tuple) -> bytes:
    return struct.pack("<Q", len(name)) + name + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, 0, 0)


@pytest.mark.parametrize("command", ["params", "values", "stats"])
def test_gguf_quantized_tensor_of_0_dimensions(tmp_path, command):
    """One element cannot fill a 32-element Q4_0 block: said so by every command (params said
    "1 parameter, 0 B", values "truncated", stats printed a 4.941e-324 row)."""
    q4_0 = 2
    info = struct.pack("<Q", 1) + b"w" + struct.pack("<IIQ", 0, q4_0, 0)
    path = tmp_path / "model.gguf"
    path.write_bytes(_gguf_bytes(info, 1))
    _refused(
        (command, path),
        f"{path}: tensor w: expected rows of whole Q4_0 blocks (32 elements), found a tensor of 0 dimensions (one element); the file is corrupt",
        [tmp_path],
    )


def test_gguf_plain_tensor_of_0_dimensions_is_a_scalar(tmp_path):
    """The same shape in F32 is a scalar: one element, 4 bytes."""
    info = struct.pack("<Q", 1) + b"w" + struct.pack("<IIQ", 0, 0, 0)
    path = tmp_path / "model.gguf"
    path.write_bytes(_gguf_bytes(info, 1))
    outcome = run_cli("params", path)
    assert (outcome.code, outcome.out.splitlines()[-1]) == (0, "1 tensor, 1 parameter, 4 B in 1 file"), outcome.err


def _gguf(content: bytes, size: int | None = None):
    def build(tmp):
        path = tmp / "model.gguf"
        path.write_bytes(content)
        if size:
            os.truncate(path, size)
        return str(path)

    return build


class _Storage:
    """Stands for a torch storage in a hand-built data.pkl (persistent id below)."""


class _Tensor:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)."""

    def __init__(self, size, stride, offset=0):
        self.size, self.stride, self.offset = size, stride, offset

    def __reduce__(self):
        import torch

        return torch._utils._rebuild_tensor_v2, (_STORAGE, self.offset, self.size, self.stride, False, OrderedDict())


_STORAGE = _Storage()


def _data_pkl(state) -> bytes:
    import torch

    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.persistent_id = lambda obj: ("storage", torch.FloatStorage, "0", "cpu", 4) if obj is _STORAGE else None
    pickler.dump(state)
    return buffer.getvalue()


def _torch_zip(path, data_pkl: bytes, compression=zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl, compress_type=compression)
        archive.writestr("archive/byteorder", b"little")
        archive.writestr("archive/data/0", b"\0" * 16)
    return str(path)


def _pt(state=None, raw: bytes | None = None, compression=zipfile.ZIP_STORED):
    return lambda tmp: _torch_zip(tmp / "model.pt", raw if raw is not None else _data_pkl(state), compression)


LONG = "n" * 2000
HOSTILE = "the file is corrupt or hostile"
NOT_LOADABLE = "the file is corrupt or hostile; do not load it"
TRUNCATED = "the file is truncated or corrupt; download it again"
STRUCTURE = {
    "safetensors-long-name": (
        _st(F32_2.replace(b'"w"', f'"{LONG}"'.encode())),
        f"expected tensor names of at most 1024 characters, found a name of 2000 characters; {HOSTILE}",
    ),
    "safetensors-rank-20000": (
        _st(b'{"w":{"dtype":"F32","shape":[' + b",".join([b"1"] * 20000) + b'],"data_offsets":[0,4]}}'),
        "tensor w: expected a shape of at most 64 integers in 0..2**63-1, found a shape of rank 20000",
    ),
    "safetensors-dim-2**64": (
        _st(b'{"w":{"dtype":"F32","shape":[0,18446744073709551616],"data_offsets":[0,0]}}'),
        "tensor w: expected a shape of at most 64 integers in 0..2**63-1, found [0, 18446744073709551616]",
    ),
    "safetensors-offset-2**70": (
        _st(b'{"w":{"dtype":"F32","shape":[0],"data_offsets":[0,1180591620717411303424]}}'),
        "tensor w: expected data_offsets [begin, end], found [0, 1180591620717411303424]",
    ),
    "safetensors-1000002-tensors": (
        _st(lambda: b"{" + b",".join(b'"%d":{}' % i for i in range(1_000_002)) + b"}"),
        f"expected at most 1000000 tensors in one file, found 1000002 header entries; {HOSTILE}",
    ),
    "gguf-long-name": (
        _gguf(_gguf_bytes(_gguf_info(LONG.encode(), (4,)), 1)),
        f"expected a tensor name of at most 1024 bytes, found 2000 bytes; {TRUNCATED}",
    ),
    "gguf-dim-2**63": (
        _gguf(_gguf_bytes(_gguf_info(b"w", (2**63, 0)), 1)),
        f"expected dimensions below 2**63 for w, found 9223372036854775808; {TRUNCATED}",
    ),
    "gguf-3000000-tensors": (
        _gguf(_gguf_bytes(b"", 3_000_000), 100 << 20),
        f"expected at most 1000000 tensors, found 3000000; {HOSTILE}",
    ),
    "torch-long-name": (
        _pt({LONG: _Tensor((2,), (1,))}),
        f"expected tensor names of at most 1024 characters, found a name of 2000 characters; {HOSTILE}",
    ),
    "torch-rank-20000": (
        _pt({"w": _Tensor((1,) * 20000, (1,) * 20000)}),
        "expected a tensor of rank at most 64, found rank 20000; the file is not a plain state dict and may run code when loaded with torch.load; do not load it",
    ),
    "torch-dim-2**64": (
        _pt({"w": _Tensor((0, 2**64), (2**64, 1))}),
        "expected a tensor with an offset, shape and strides of integers in 0..2**63-1, found something else; the file is not a plain state dict and may run code when loaded with torch.load; do not load it",
    ),
}


@pytest.mark.parametrize("case", STRUCTURE)
@pytest.mark.parametrize("command", ["params", "values"])
def test_names_counts_ranks_and_dimensions_are_bounded(tmp_path, case, command):
    build, message = STRUCTURE[case]
    path = build(tmp_path)
    _refused((command, path), f"{path}: {message}", [tmp_path])


def test_gguf_metadata_strings_are_kept_within_a_budget(tmp_path):
    """30 string values of 100 MB (sparse zeros): 3 GB of metadata, read in bounded memory,
    each shown by its size and first characters."""
    size = 100 << 20
    path = tmp_path / "model.gguf"
    with open(path, "wb") as handle:
        handle.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 30))
        for i in range(30):
            key = b"big.%02d" % i
            handle.write(struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, size))
            handle.seek(size, os.SEEK_CUR)
        handle.write(b"\0" * 32)
    before = snapshot(tmp_path)
    outcome = run_cli("params", path, "--metadata")
    assert outcome.code == 0, outcome.err
    # Stepped over, not read: 3 GB of strings, of which the shown first characters are read.
    assert outcome.max_rss < 500 << 20 and outcome.read_chars < 256 << 20, (outcome.max_rss, outcome.read_chars)
    lines = outcome.out.splitlines()
    assert len(lines) == 32 and lines[-1] == "30 metadata keys in gguf"
    for number, line in enumerate(lines[1:-1]):
        assert line.startswith(f"big.{number:02d}  string of 104857600 bytes '\\x00\\x00\\x00"), line[:80]
    assert snapshot(tmp_path) == before


# --- Pickles: memory and time bombs -----------------------------------------------------------


def _laughs(depth=20, fan=10):
    level = {"x": 1}
    for _ in range(depth):
        level = {f"k{i}": level for i in range(fan)}
    return level


# {t100: 1} where t0 = () and t(n+1) = (tn, tn) through the memo: hashing the key walks
# 2**100 tuples. Written as opcodes, since building it in Python would hash it.
HASH_BOMB = b"\x80\x02}" + b")" + b"q\x00h\x00\x86" * 100 + b"K\x01s."


def _long1(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


# Python hashes an int modulo 2**61 - 1: these keys all hash to 1, so a dict of n of them
# costs n**2 / 2 comparisons (100,000 keys: 43 s). SETITEMS: the pairs, then one insertion.
COLLIDING = [1 + i * (2**61 - 1) for i in range(100_000)]
COLLISION_BOMB = b"\x80\x02}(" + b"".join(_long1(k) + b"K\x00" for k in COLLIDING) + b"u."


PICKLES = {
    "billion-laughs": (
        _pt(_laughs()),
        f"expected a state dict holding each of its dicts once, found the dict under {'k0.' * 14}k1 again; {NOT_LOADABLE}",
    ),
    "dict-spray-deflated": (
        _pt(raw=b"\x80\x02" + b"}" * 3_000_000 + b".", compression=zipfile.ZIP_DEFLATED),
        f"expected a pickle of at most 2500000 operations, found more; {NOT_LOADABLE}",
    ),
    "list-spray": (
        _pt(raw=b"\x80\x02]" + b"]a" * 1_500_000 + b"."),
        f"expected a pickle of at most 2500000 operations, found more; {NOT_LOADABLE}",
    ),
    "hash-bomb-key": (
        _pt(raw=HASH_BOMB),
        f"expected dict keys that are strings or numbers, found a key of type tuple; {NOT_LOADABLE}",
    ),
    "set-protocol-2": (
        _pt({"w": {1, 2}}),
        "expected only tensors and state dicts, found the disallowed global __builtin__.set; the file is not a plain state dict and may run code when loaded with torch.load; do not load it",
    ),
    "set-protocol-4": (
        _pt(raw=pickle.dumps({"w": {1, 2}}, protocol=4)),
        f"expected a state dict, found a set; {NOT_LOADABLE}",
    ),
    "frozenset": (
        _pt(raw=pickle.dumps({"w": frozenset({1})}, protocol=4)),
        f"expected a state dict, found a frozenset; {NOT_LOADABLE}",
    ),
    "int-key-hash-collision": (
        _pt(raw=COLLISION_BOMB),
        f"expected integer dict keys below 2**61, found an integer key of 62 bits; {NOT_LOADABLE}",
    ),
    "long4-int": (
        _pt({"w": 1 << 4000}),
        f"expected a state dict, found an integer of more than 255 bytes; {NOT_LOADABLE}",
    ),
    "bzip2-data-pkl": (
        _pt({"w": 1}, compression=zipfile.ZIP_BZIP2),
        "expected archive/data.pkl stored or deflated, found compression method 12; save it again with torch.save",
    ),
}


@pytest.mark.parametrize("case", PICKLES)
def test_pickle_bombs(tmp_path, case):
    build, message = PICKLES[case]
    path = build(tmp_path)
    _refused(("params", path), f"{path}: {message}", [tmp_path])


def test_colliding_int_keys_are_refused_before_they_are_hashed():
    """The work is bounded by the rule, not by luck: keys set one SETITEM at a time are
    refused at the first that could collide, after 8 operations (PROTO, EMPTY_DICT, then key,
    value and SETITEM twice), with one key in the dict; every int key the rule admits hashes
    to itself, so no two admitted keys share a hash but -1 and -2."""
    from llm_anatomy.formats.restricted_pickle import MAX_KEY_INT, Machine, TooLarge

    data = b"\x80\x02}" + b"".join(_long1(k) + b"K\x00s" for k in COLLIDING) + b"."
    machine = Machine(data)
    with pytest.raises(TooLarge, match="found an integer key of 62 bits"):
        machine.run()
    assert machine.operations == 8
    assert machine.stack == [{1: 0}]
    assert [hash(k) for k in (MAX_KEY_INT, -MAX_KEY_INT, 2**40 + 3)] == [MAX_KEY_INT, -MAX_KEY_INT, 2**40 + 3]
    assert hash(MAX_KEY_INT + 1) == 0  # the first int past the rule shares the hash of 0


def test_many_small_int_keys_read(tmp_path):
    """What the rule admits: 100,000 small int keys (an optimizer's parameter numbers) read."""
    keys = range(100_000)
    data = b"\x80\x02}(" + b"".join(_long1(k) + b"K\x00" for k in keys) + b"u."
    from llm_anatomy.formats.restricted_pickle import Machine

    assert Machine(data).run() == dict.fromkeys(keys, 0)


def _patched(path, find: bytes, offset: int, value: bytes) -> None:
    data = bytearray(open(path, "rb").read())
    at = data.rfind(find)
    data[at + offset : at + offset + len(value)] = value
    open(path, "wb").write(bytes(data))


def test_declared_pickle_size_is_checked_before_inflating(tmp_path):
    path = _torch_zip(tmp_path / "model.pt", _data_pkl({"w": _Tensor((2,), (1,))}))
    central = b"PK\x01\x02"
    data = open(path, "rb").read()
    entry = data.find(central)  # the first member: data.pkl
    _patched(path, data[entry : entry + 46], 24, struct.pack("<I", 0xFFFFFFF0))
    stored = len(_data_pkl({"w": _Tensor((2,), (1,))}))
    _refused(
        ("params", path),
        f"{path}: expected archive/data.pkl of at most 33554432 bytes, found 4294967280 bytes ({stored} stored); the file is corrupt or hostile; download it again",
        [tmp_path],
    )


def test_central_directory_larger_than_the_file(tmp_path):
    path = _torch_zip(tmp_path / "model.pt", _data_pkl({"w": _Tensor((2,), (1,))}))
    _patched(path, b"PK\x05\x06", 12, struct.pack("<I", 0x7FFFFFFF))
    size = os.path.getsize(path)
    _refused(
        ("params", path),
        f"{path}: expected a zip directory of at most {size} bytes, found 2147483647 bytes; the file is corrupt or hostile; download it again",
        [tmp_path],
    )


def test_hand_built_pickles_read_when_sound(tmp_path):
    """The builders above make files the reader accepts when nothing is hostile, so the
    refusals above come from the bombs, not from the packing."""
    path = _torch_zip(tmp_path / "model.pt", _data_pkl(OrderedDict(w=_Tensor((2, 2), (2, 1)), step=7)))
    outcome = run_cli("params", path, "--json")
    assert outcome.code == 0, outcome.err
    import json

    listing = json.loads(outcome.out)
    assert [(t["name"], t["shape"], t["dtype"]) for t in listing["tensors"]] == [("w", [2, 2], "F32")]
    assert stat.S_ISREG(os.stat(path).st_mode)


def test_a_million_tiny_tensors_are_refused_at_once(tmp_path):
    """The issue's 1.2 million two-value tensors (params took 65 s and 1.2 GB): refused from
    the header's bytes, before a single entry is parsed, by every command."""
    count = 1_200_000
    header = (
        b"{"
        + b",".join(
            b'"t.%d":{"dtype":"F16","shape":[2],"data_offsets":[%d,%d]}' % (i, 4 * i, 4 * i + 4) for i in range(count)
        )
        + b"}"
    )
    path = tmp_path / "tiny.safetensors"
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
    os.truncate(path, 8 + len(header) + 4 * count)
    for command in ("params", "stats", "summary", "values"):
        _refused(
            (command, path),
            f"{path}: expected at most 1000000 tensors in one file, found 1200000 header entries; {HOSTILE}",
            [tmp_path],
        )


def test_the_tensor_cap_holds_across_shards(tmp_path, monkeypatch):
    """Shards each under the cap, together over it: refused for the checkpoint."""
    import llm_anatomy.formats as formats
    from llm_anatomy.core.errors import AnatomyError
    from llm_anatomy.locate import open_catalog

    _safetensors(
        tmp_path / "a.safetensors",
        b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
    )
    _safetensors(
        tmp_path / "b.safetensors",
        b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
    )
    monkeypatch.setattr(formats, "MAX_TENSORS", 3)
    with pytest.raises(AnatomyError) as refused:
        open_catalog(str(tmp_path))
    assert (
        refused.value.line()
        == f"{tmp_path}: expected at most 3 tensors in one checkpoint, found 4 in its first 2 files; the checkpoint is corrupt or hostile"
    )
    monkeypatch.setattr(formats, "MAX_TENSORS", 4)
    assert len(open_catalog(str(tmp_path)).tensors) == 4


def test_names_with_unusual_digits_sort_as_numbers_where_they_are_digits(tmp_path):
    """Superscripts are no decimal digits (int('²') fails): they sort as text; other
    scripts' decimal digits (Arabic-Indic ٣) are numbers."""
    names = ["w1²", "w10", "w2", "w٣", "w²"]
    header = (
        "{"
        + ",".join(
            f'"{name}":{{"dtype":"F32","shape":[1],"data_offsets":[{4 * i},{4 * i + 4}]}}'
            for i, name in enumerate(names)
        )
        + "}"
    )
    path = _safetensors(tmp_path / "model.safetensors", header.encode(), b"\0" * 20)
    outcome = run_cli("params", path)
    assert outcome.code == 0, outcome.err
    assert [line.split()[0] for line in outcome.out.splitlines()[1:-1]] == ["w1²", "w2", "w٣", "w10", "w²"]
