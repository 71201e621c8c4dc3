"""Models that live only on the Hub, read through HTTP ranges from a stand-in Hub
(hub_standin.py) on 127.0.0.1: the same output as the same files in the local Hugging
Face cache, the bytes moved, the header cache, and one line for each refusal."""

import os
import shutil

import pytest

import checkpoints
from hub_standin import HubStandIn
from llm_anatomy.hub import transport, http as remote


@pytest.fixture(autouse=True)
def _retries_without_waiting(monkeypatch):
    """Retries happen at once: no test sleeps through the backoff (test_http_limits counts the waits)."""
    monkeypatch.setattr(remote, "sleep", lambda seconds: None)


@pytest.fixture(scope="session")
def standin():
    hub = HubStandIn()
    yield hub
    hub.close()


@pytest.fixture
def online(standin, tmp_path, monkeypatch):
    """The Hub is the stand-in; the HF cache and the header cache are empty temp folders."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", standin.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(tmp_path / "anatomy_cache"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # huggingface_hub reads these at import, and this process may have imported it already.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", standin.url)
    monkeypatch.setattr(
        huggingface_hub.constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        standin.url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(remote, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    standin.faults.clear()
    standin.clear_log()
    return standin


def as_hf_cache(folder, repo_id, sha, cache):
    """The files of folder as the Hugging Face cache holds repo_id at commit sha."""
    repo_dir = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, os.path.join(repo_dir, "snapshots", sha))
    os.makedirs(os.path.join(repo_dir, "refs"))
    with open(os.path.join(repo_dir, "refs", "main"), "w") as handle:
        handle.write(sha)


@pytest.fixture(scope="session")
def remote_repos(standin, tmp_path_factory, llama_dir, gpt2_dir):
    """Repos on the stand-in: a sharded Llama, a single-file GPT-2, a gated copy."""
    base = tmp_path_factory.mktemp("repos")
    repos = {"org/llama": llama_dir, "org/gpt2": gpt2_dir, "gated-org/llama": llama_dir}
    shas = {repo: standin.add(repo, folder, gated=repo.startswith("gated")) for repo, folder in repos.items()}
    return {repo: (folder, shas[repo]) for repo, folder in repos.items()}, base


COMMANDS = (
    ("params",),
    ("params", "--json"),
    ("tree",),
    ("config",),
    ("config", "--explain"),
    ("summary",),
    ("values", "--filter", "*.0.*"),
    ("values", "--style", "torch"),
)


@pytest.mark.parametrize("repo", ["org/llama", "org/gpt2"])
def test_every_view_prints_what_the_cached_copy_prints(repo, online, remote_repos, cli, tmp_path, monkeypatch):
    repos, _ = remote_repos
    folder, sha = repos[repo]
    remote_out = {args: cli(args[0], repo, *args[1:]) for args in COMMANDS}
    as_hf_cache(folder, repo, sha, os.environ["HF_HUB_CACHE"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for args, result in remote_out.items():
        local = cli(args[0], repo, *args[1:])
        assert (result.code, result.err) == (0, ""), (args, result.err)
        assert result.out == local.out, args


def test_report_page_equals_the_cached_copys(online, remote_repos, cli, tmp_path, monkeypatch):
    repos, _ = remote_repos
    folder, sha = repos["org/llama"]
    assert cli("report", "org/llama", "-o", tmp_path / "remote.html").code == 0
    as_hf_cache(folder, "org/llama", sha, os.environ["HF_HUB_CACHE"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli("report", "org/llama", "-o", tmp_path / "local.html").code == 0
    assert (tmp_path / "remote.html").read_text() == (tmp_path / "local.html").read_text()


def test_headers_come_in_few_requests_and_the_second_call_from_the_cache(online, remote_repos, cli):
    first = cli("params", "org/llama")
    assert first.code == 0
    paths = [(e.host, e.method, e.path.split("?")[0]) for e in online.log]
    shards = sorted(n for n in os.listdir(remote_repos[0]["org/llama"][0]) if n.endswith(".safetensors"))
    sha = remote_repos[0]["org/llama"][1]
    # One model info, the two small files, and per shard: the Hub's redirect and one CDN range.
    assert sorted(p for p in paths if p[2] != "/api/agent-harnesses") == sorted(
        [
            ("hub", "GET", "/api/models/org/llama"),
            ("hub", "GET", f"/org/llama/resolve/{sha}/config.json"),
            ("hub", "GET", f"/org/llama/resolve/{sha}/model.safetensors.index.json"),
        ]
        + [("hub", "GET", f"/org/llama/resolve/{sha}/{s}") for s in shards]
        + [("cdn", "GET", f"/org/llama/{sha}/{s}") for s in shards]
    )
    assert all(e.range == f"bytes=0-{remote.HEAD_BYTES - 1}" for e in online.log if e.host == "cdn")
    online.clear_log()
    again = cli("params", "org/llama")
    assert again.out == first.out
    assert [e.path for e in online.log if e.path != "/api/agent-harnesses"] == [
        "/api/models/org/llama"
    ]  # main -> sha, nothing else
    online.clear_log()
    assert cli("params", "org/llama", "--revision", sha).out == first.out
    assert online.log == []


def test_offline_the_header_cache_serves_and_nothing_is_sent(online, remote_repos, cli, monkeypatch):
    first = cli("params", "org/gpt2")
    online.clear_log()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli("params", "org/gpt2").out == first.out
    assert online.log == []
    values = cli("values", "org/gpt2", "--filter", "*wte.weight")
    assert values.code == 1 and online.log == []
    assert (
        "in the header cache, found they were never fetched; run without HF_HUB_OFFLINE=1 to read them from the Hub"
        in values.err
    )


def test_the_token_goes_to_the_hub_and_never_to_the_cdn(online, remote_repos, cli, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_allowed")
    result = cli("params", "gated-org/llama")
    assert result.code == 0, result.err
    assert {(e.host, e.authorized) for e in online.log if e.path != "/api/agent-harnesses"} == {
        ("hub", True),
        ("cdn", False),
    }


def test_gated_without_access(online, remote_repos, cli, monkeypatch):
    result = cli("params", "gated-org/llama")
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == "llm-anatomy: gated-org/llama: expected a model you may read, found a gated model; accept its license on the model page, then `hf auth login` or set HF_TOKEN\n"
    )
    monkeypatch.setenv("HF_TOKEN", "hf_other")
    assert cli("params", "gated-org/llama").err == result.err


def test_a_token_the_hub_does_not_know(online, remote_repos, cli, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_typo")
    result = cli("params", "org/gpt2")
    assert (result.code, result.err) == (
        1,
        "llm-anatomy: org/gpt2: expected a token the Hub accepts, found invalid credentials (HTTP 401); `hf auth login` again, or fix HF_TOKEN\n",
    )


def test_unknown_repo_and_revision(online, remote_repos, cli):
    result = cli("params", "nobody/nothing")
    assert (result.code, result.err) == (
        1,
        "llm-anatomy: nobody/nothing: expected a model on the Hub, found not found, or private/gated and you are not logged in; check the name, or `hf auth login` / set HF_TOKEN\n",
    )
    result = cli("params", "org/llama", "--revision", "v9")
    assert (result.code, result.err) == (
        1,
        "llm-anatomy: org/llama: expected revision 'v9' of a model on the Hub, found not found, or private/gated and you are not logged in; check the name, or `hf auth login` / set HF_TOKEN\n",
    )


def test_a_branch_is_resolved_with_the_request_huggingface_hub_sends(online, standin, llama_dir, cli):
    """refs/pr/1: HfApi().model_info's request (the / quoted), then every file at its commit."""
    from huggingface_hub import HfApi

    pr = "c" * 40
    standin.add("org/with-pr", llama_dir, revisions={"refs/pr/1": pr, pr: pr})
    assert HfApi().model_info("org/with-pr", revision="refs/pr/1").sha == pr
    theirs = [e.path for e in online.log if e.path.startswith("/api/models/")]
    online.clear_log()
    result = cli("params", "org/with-pr", "--revision", "refs/pr/1")
    assert (result.code, result.err) == (0, "")
    ours = [e.path for e in online.log if e.host == "hub"]
    assert ours[0] == theirs[0] == "/api/models/org/with-pr/revision/refs%2Fpr%2F1"
    assert len(ours) > 1 and all(p.startswith(f"/org/with-pr/resolve/{pr}/") for p in ours[1:])


def local_out(cli, command, folder, repo, *args):
    """What COMMAND prints on folder, named as the model id (as the Hub's copy names it)."""
    return cli(command, str(folder), *args).out.replace(os.path.basename(folder), repo, 1)


def test_a_cached_call_on_a_branch_that_moved_reads_the_new_commit(
    online, standin, remote_repos, cli, monkeypatch, tmp_path
):
    """The CLI asks the Hub which commit main is before it imports the command's modules,
    and the command waits for that answer before it uses a commit: when main has moved, it
    reads the new commit on its first run, and nothing of the old one is fetched or shown
    (params, values, stats; a report page written only from the new commit)."""
    llama, gpt2 = remote_repos[0]["org/llama"][0], remote_repos[0]["org/gpt2"][0]
    refs_main = os.path.join(os.environ["LLM_ANATOMY_CACHE"], "hub", "models--org--moving", "refs", "main")
    cases = [("params", ()), ("values", ("--filter", "*.0.*")), ("stats", ("--json",))]
    for folder, (command, args) in zip([gpt2, llama, gpt2], cases):
        standin.add("org/moving", llama if folder == gpt2 else gpt2)
        assert cli(command, "org/moving", *args).code == 0  # main's commit and headers cached
        sha = standin.add("org/moving", folder)  # main moves
        online.clear_log()
        result = cli(command, "org/moving", *args)
        assert (result.code, result.err) == (0, ""), result.err
        assert result.out == local_out(cli, command, folder, "org/moving", *args), command
        assert [e.path for e in online.log if e.host == "hub"][0] == "/api/models/org/moving"
        assert all(sha in path for path in [e.path for e in online.log if e.host == "hub"][1:]), (
            online.log
        )  # nothing of the old commit
        with open(refs_main) as handle:
            assert handle.read() == sha
    standin.add("org/moving", llama, sha="e" * 40)
    online.faults["cdn:/org/moving/"] = "short-body"  # the new commit's headers cannot be read
    failed = cli("report", "org/moving", "-o", tmp_path / "moved.html")
    assert failed.code == 1 and not (tmp_path / "moved.html").exists()  # and no page from the old commit
    del online.faults["cdn:/org/moving/"]
    moved = cli("report", "org/moving", "-o", tmp_path / "moved.html")  # a file written: held back too
    cache = os.environ["LLM_ANATOMY_CACHE"]
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(tmp_path / "cold"))
    cold = cli("report", "org/moving", "-o", tmp_path / "cold.html")
    monkeypatch.setenv("LLM_ANATOMY_CACHE", cache)
    assert (moved.code, moved.err, moved.out) == (0, "", cold.out.replace("cold.html", "moved.html"))
    assert (tmp_path / "moved.html").read_text() == (tmp_path / "cold.html").read_text()
    sha = standin.add("org/moving", gpt2)
    online.clear_log()
    assert cli("params", "org/moving").out == local_out(cli, "params", gpt2, "org/moving")
    assert [e.path for e in online.log] == ["/api/models/org/moving"]  # unmoved: the one request
    as_hf_cache(gpt2, "org/moving", sha, os.environ["HF_HUB_CACHE"])
    online.clear_log()
    assert cli("params", "org/moving").out == local_out(cli, "params", gpt2, "org/moving")
    assert online.log == []  # held by the Hugging Face cache: never asked, not even early


def test_a_cached_call_says_what_the_hub_refuses_as_a_first_call_does(online, standin, remote_repos, cli, monkeypatch):
    """The Hub's refusal of the one request, not what the cached headers of the last commit
    would have printed: the same line as without a cache."""
    import errno
    import socket

    standin.add("org/closing", remote_repos[0]["org/llama"][0])
    assert cli("params", "org/closing").code == 0
    del standin.repos["org/closing"]
    for command in (("params",), ("values", "--filter", "*.0.*"), ("stats",)):
        result = cli(*command[:1], "org/closing", *command[1:])
        assert (result.code, result.out) == (1, "")
        assert (
            result.err
            == "llm-anatomy: org/closing: expected a model on the Hub, found not found, or private/gated and you are not logged in; check the name, or `hf auth login` / set HF_TOKEN\n"
        )
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    result = cli("params", "org/closing")
    refused = f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}"
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: org/closing: expected an answer from the Hub, found no answer (ConnectionRefusedError: {refused}); check the network or HF_ENDPOINT, and try again later\n"
    )


def test_a_token_file_that_is_no_file_is_one_line(online, remote_repos, cli, tmp_path, monkeypatch):
    """huggingface_hub reads the token file whole, whatever it is (a fifo: it waits forever);
    here a regular file of at most 64 KiB, else one line, on a first call and a cached one."""
    from hostile import assert_refused, run_cli

    fifo, huge = tmp_path / "fifo", tmp_path / "huge"
    os.mkfifo(fifo)
    with open(huge, "wb") as handle:
        handle.truncate(2**30)
    todo = "`hf auth login` again, or set HF_TOKEN"
    for path, line in [
        (fifo, "expected a regular file, found a fifo"),
        (huge, "expected a token file of at most 65536 bytes, found 1073741824 bytes"),
        (tmp_path, "expected a regular file, found a folder"),
    ]:
        monkeypatch.setenv("HF_TOKEN_PATH", str(path))
        assert_refused(run_cli("params", "org/gpt2"), message=f"llm-anatomy: {path}: {line}; {todo}")
    monkeypatch.delenv("HF_TOKEN_PATH")
    assert cli("params", "org/gpt2").code == 0  # cached: main is asked early, on a thread
    monkeypatch.setenv("HF_TOKEN_PATH", str(fifo))
    assert_refused(
        run_cli("params", "org/gpt2"), message=f"llm-anatomy: {fifo}: expected a regular file, found a fifo; {todo}"
    )


@pytest.mark.parametrize("where", ["hub:/api/models/org/gpt2", "cdn:/org/gpt2/"])
def test_a_429_is_retried(where, online, remote_repos, cli):
    online.faults[where] = "429-once"
    result = cli("params", "org/gpt2")
    assert result.code == 0, result.err
    host, _, path = where.partition(":")
    assert [e.status for e in online.log if e.host == host and e.path.startswith(path)] == [
        429,
        200 if host == "hub" else 206,
    ]


def test_a_hostile_model_description_is_one_line(online, remote_repos, cli):
    online.faults["hub:/api/models/org/gpt2"] = "nested-json"
    result = cli("params", "org/gpt2")
    assert (result.code, result.out) == (1, "")
    assert (
        result.err.startswith("llm-anatomy: org/gpt2: expected the model's description from the Hub (JSON)")
        and len(result.err.splitlines()) == 1
    ), result.err


def test_a_hub_that_is_not_there(online, remote_repos, cli, monkeypatch):
    import errno
    import socket

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    result = cli("params", "org/gpt2")
    assert (result.code, result.out) == (1, "")
    refused = f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}"
    assert (
        result.err
        == f"llm-anatomy: org/gpt2: expected an answer from the Hub, found no answer (ConnectionRefusedError: {refused}); check the network or HF_ENDPOINT, and try again later\n"
    )


@pytest.mark.parametrize(
    "fault, found",
    [
        ("lie-range", "found 'bytes 1-"),
        ("short-body", "found 50000 bytes; the answer was cut short; try again"),
    ],
)
def test_lying_or_short_answers_are_refused(fault, found, online, remote_repos, cli):
    online.faults["cdn:/org/gpt2/"] = fault
    result = cli("params", "org/gpt2")
    assert result.code == 1 and result.out == ""
    assert len(result.err.splitlines()) == 1 and found in result.err, result.err


# ---------------------------------------------------------------- the stand-in is the Hub huggingface_hub knows


def test_huggingface_hub_itself_reads_the_standin(online, remote_repos, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download

    folder, sha = remote_repos[0]["org/llama"]
    config = hf_hub_download("org/llama", "config.json", cache_dir=tmp_path / "dl")
    assert open(config, "rb").read() == (folder / "config.json").read_bytes()
    shard = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))[0]
    weights = hf_hub_download("org/llama", shard, cache_dir=tmp_path / "dl")  # HEAD, the CDN redirect, then GET there
    assert open(weights, "rb").read() == (folder / shard).read_bytes()
    assert os.path.dirname(weights).endswith(f"snapshots/{sha}")
    metadata = HfApi().get_safetensors_metadata("org/llama")
    assert metadata.sharded and set(metadata.files_metadata) == {
        n for n in os.listdir(folder) if n.endswith(".safetensors")
    }
    from llm_anatomy.locate import open_catalog

    local = open_catalog(str(folder))
    assert metadata.parameter_count == {"F32": local.total_numel}
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
        RemoteEntryNotFoundError,
    )

    with pytest.raises(GatedRepoError):
        hf_hub_download("gated-org/llama", "config.json", cache_dir=tmp_path / "dl")
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("nobody/nothing")
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info("org/llama", revision="v9")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("org/llama", "missing.json", cache_dir=tmp_path / "dl")
    with pytest.raises(HfHubHTTPError) as refused:  # a bad token is not taken for a missing repo
        HfApi(token="hf_typo").model_info("org/llama")
    assert refused.value.response.status_code == 401 and not isinstance(refused.value, RepositoryNotFoundError)


def test_a_multi_range_request_gets_the_whole_file(online, remote_repos):
    """As S3-backed CDNs answer: why remote.py never sends one."""
    import http.client

    folder, sha = remote_repos[0]["org/gpt2"]
    connection = http.client.HTTPConnection(online.cdn_url.removeprefix("http://"))
    connection.request("GET", f"/org/gpt2/{sha}/model.safetensors", headers={"Range": "bytes=0-9,20-29"})
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, (folder / "model.safetensors").read_bytes())


# ---------------------------------------------------------------- GGUF and .bin repositories


@pytest.fixture(scope="session")
def gguf_repos(standin, llama_dir, tmp_path_factory):
    """One GGUF repo with a single file, one with two quantizations, one with a split model."""
    from test_gguf import _write_gguf
    import numpy as np

    single = tmp_path_factory.mktemp("gguf_single")
    checkpoints.llama_gguf(str(llama_dir), str(single / "tiny-llama.Q8_0.gguf"))
    several = tmp_path_factory.mktemp("gguf_several")
    checkpoints.llama_gguf(str(llama_dir), str(several / "tiny-llama.Q8_0.gguf"))
    checkpoints.llama_gguf(str(llama_dir), str(several / "tiny-llama.Q4_0.gguf"), types={})
    split = tmp_path_factory.mktemp("gguf_split")
    _write_gguf(split / "model.gguf", {f"t{i}": np.full((2, 4), i, np.float32) for i in range(5)}, split_max_tensors=2)
    repos = {"org/tiny-GGUF": single, "org/several-GGUF": several, "org/split-GGUF": split}
    return {repo: (folder, standin.add(repo, folder)) for repo, folder in repos.items()}


@pytest.mark.parametrize("repo", ["org/tiny-GGUF", "org/split-GGUF"])
def test_gguf_repos_print_what_the_cached_copy_prints(repo, online, gguf_repos, cli, monkeypatch):
    folder, sha = gguf_repos[repo]
    commands = [("params",), ("values", "--filter", "*"), ("summary",)] if repo == "org/tiny-GGUF" else [("params",)]
    remote_out = {args: cli(args[0], repo, *args[1:]) for args in commands}
    as_hf_cache(folder, repo, sha, os.environ["HF_HUB_CACHE"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for args, result in remote_out.items():
        assert (result.code, result.err) == (0, ""), (args, result.err)
        assert result.out == cli(args[0], repo, *args[1:]).out, args


def test_gguf_quantization_selector(online, gguf_repos, cli):
    several = cli("params", "org/several-GGUF")
    assert (several.code, several.out) == (2, "")
    assert (
        several.err
        == "llm-anatomy: org/several-GGUF: expected one quantization (repo:QUANT), found 2: Q4_0, Q8_0; pick one, e.g. org/several-GGUF:Q4_0\n"
    )
    online.clear_log()
    chosen = cli("params", "org/several-GGUF:q8_0")
    assert chosen.code == 0 and chosen.out.splitlines()[-1].endswith("in 1 file")
    assert {e.path.split("/")[-1].split("?")[0] for e in online.log if "resolve" in e.path or e.host == "cdn"} == {
        "tiny-llama.Q8_0.gguf"
    }
    missing = cli("params", "org/several-GGUF:Q5_K_M")
    assert (
        missing.err
        == "llm-anatomy: org/several-GGUF:Q5_K_M: expected a quantization the repository has, found Q4_0, Q8_0; pick one, e.g. org/several-GGUF:Q4_0\n"
    )


def test_the_quantization_selector_reads_the_local_cache_first(online, gguf_repos, cli, monkeypatch, tmp_path):
    """REPO:QUANT in the Hugging Face cache is read there, offline; a quantization the cache
    lacks (downloaded one at a time) comes from the Hub, or is one line when offline."""
    folder, sha = gguf_repos["org/several-GGUF"]
    remote_q8 = cli("params", "org/several-GGUF:Q8_0")
    assert remote_q8.code == 0
    partial = tmp_path / "only-q4"
    partial.mkdir()
    shutil.copy(folder / "tiny-llama.Q4_0.gguf", partial)
    as_hf_cache(partial, "org/several-GGUF", sha, os.environ["HF_HUB_CACHE"])
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(tmp_path / "no-header-cache"))
    online.clear_log()
    local_q4 = cli("params", "org/several-GGUF:q4_0")
    assert (local_q4.code, local_q4.err, online.log) == (0, "", [])
    assert local_q4.out == cli("params", "org/several-GGUF").out  # the only quantization cached
    assert local_q4.out.splitlines()[1:] == cli("params", partial / "tiny-llama.Q4_0.gguf").out.splitlines()[1:]
    assert cli("params", "org/several-GGUF:Q8_0").out == remote_q8.out and online.log != []  # from the Hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(tmp_path / "another-empty-header-cache"))
    snapshot = os.path.join(os.environ["HF_HUB_CACHE"], "models--org--several-GGUF", "snapshots", sha)
    offline_q8 = cli("params", "org/several-GGUF:Q8_0")
    assert (offline_q8.code, offline_q8.err) == (
        1,
        f"llm-anatomy: org/several-GGUF:Q8_0: expected the Q8_0 GGUF files in the local Hugging Face cache ({snapshot}), found Q4_0; download them with `hf download org/several-GGUF --include '*Q8_0*'`\n",
    )


def test_a_cached_gguf_repository_with_several_quantizations_asks_for_one(online, gguf_repos, cli, monkeypatch):
    folder, sha = gguf_repos["org/several-GGUF"]
    as_hf_cache(folder, "org/several-GGUF", sha, os.environ["HF_HUB_CACHE"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = cli("params", "org/several-GGUF")
    assert (result.code, result.out) == (2, "")
    assert (
        result.err
        == "llm-anatomy: org/several-GGUF: expected one quantization (repo:QUANT), found 2: Q4_0, Q8_0; pick one, e.g. org/several-GGUF:Q4_0\n"
    )
    assert (
        cli("params", "org/several-GGUF:Q8_0").out.splitlines()[1:]
        == cli("params", folder / "tiny-llama.Q8_0.gguf").out.splitlines()[1:]
    )


@pytest.mark.parametrize("claim", ["2^40 metadata keys", "an array of 2^40 strings"])
def test_a_gguf_too_large_to_exist_is_one_line(claim, online, standin, tmp_path, cli):
    """A Hub GGUF generated as it is read (2^50 bytes): refused on its counts, in one line,
    after the first megabyte (the local reader's caps hold for remote files too)."""
    import struct

    from test_http_remote_file import GGUF_ARRAY, GGUF_STRING, U64, distinct_keys, gguf_head, key, periodic

    if claim == "2^40 metadata keys":
        content, size = distinct_keys(1 << 40)
        line = "expected at most 65536 metadata keys, found 1099511627776"
    else:
        prefix = gguf_head(1) + key("tokenizer.ggml.tokens") + struct.pack("<IIQ", GGUF_ARRAY, GGUF_STRING, 1 << 40)
        content, size = periodic(prefix, U64.pack(1) + b"a", 1 << 40)
        line = "expected at most 16777216 items in tokenizer.ggml.tokens, found 1099511627776"
    served = []

    def serve(first, last):  # a reader that does not stop gets no more than 64 MB: it fails, never hangs
        served.append(last - first + 1)
        assert sum(served) <= 64 << 20
        return content(first, last + 1)

    folder = tmp_path / "empty"
    folder.mkdir()
    sha = standin.add("org/evil-GGUF", folder, generated={"evil.gguf": (size, serve)})
    result = cli("params", "org/evil-GGUF")
    cached = os.path.join(os.environ["LLM_ANATOMY_CACHE"], "hub", "models--org--evil-GGUF", sha, "evil.gguf")
    assert (result.code, result.out, result.err) == (
        1,
        "",
        f"llm-anatomy: {cached}: {line}; the file is corrupt or hostile\n",
    )
    assert (
        sum(e.nbytes for e in online.log if e.host == "cdn") == 1 << 20
    )  # the first 100 KB, then the reader's first window


def test_a_split_model_half_downloaded_is_not_read_from_the_cache(online, gguf_repos, cli, monkeypatch, tmp_path):
    folder, sha = gguf_repos["org/split-GGUF"]
    parts = sorted(os.listdir(folder))
    assert len(parts) == 3  # model-0000N-of-00003.gguf: the quantization tag is "model"
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(folder / parts[0], half)
    as_hf_cache(half, "org/split-GGUF", sha, os.environ["HF_HUB_CACHE"])
    online.clear_log()
    whole = cli("params", "org/split-GGUF:model")
    assert whole.code == 0 and online.log != [] and whole.out.splitlines()[-1].endswith("in 3 files")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(tmp_path / "empty-header-cache"))
    assert cli("params", "org/split-GGUF:model").err.endswith(
        ", found part of them; download them with `hf download org/split-GGUF --include '*model*'`\n"
    )


@pytest.fixture(scope="session")
def bin_repos(standin, llama_dir, tmp_path_factory):
    repos = {
        "org/llama-bin": checkpoints.torch_bin(str(llama_dir), str(tmp_path_factory.mktemp("bin") / "llama")),
        "org/llama-bin-sharded": checkpoints.torch_bin(
            str(llama_dir), str(tmp_path_factory.mktemp("bin") / "llama"), shards=2
        ),
    }
    return {repo: (folder, standin.add(repo, folder)) for repo, folder in repos.items()}


@pytest.mark.parametrize("repo", ["org/llama-bin", "org/llama-bin-sharded"])
def test_bin_repos_print_what_the_cached_copy_prints(repo, online, bin_repos, cli, monkeypatch):
    folder, sha = bin_repos[repo]
    commands = [("params",), ("tree",), ("values", "--style", "torch"), ("stats", "--json")]
    remote_out = {args: cli(args[0], repo, *args[1:]) for args in commands}
    assert all(e.range is None or "," not in e.range for e in online.log)
    as_hf_cache(folder, repo, sha, os.environ["HF_HUB_CACHE"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for args, result in remote_out.items():
        assert (result.code, result.err) == (0, ""), (args, result.err)
        assert result.out == cli(args[0], repo, *args[1:]).out, args


def test_a_bin_repo_header_view_reads_no_local_header(online, bin_repos, cli):
    """The storages' starts come from the zip's directory (torch.save's 64-byte boundaries):
    params fetches the directory and data.pkl only, not one local header per storage."""
    assert cli("params", "org/llama-bin").code == 0
    assert [e.range is not None for e in online.log if e.host == "cdn"] == [True, True]


def with_bytes_between_members(source, target, after):
    """source's members rewritten stored, each one's bytes on a 64-byte boundary behind an
    'FB' padding field as torch.save writes them, with 64 stray bytes after member `after`."""
    import struct
    import zipfile

    with zipfile.ZipFile(source) as old, open(target, "wb") as handle, zipfile.ZipFile(handle, "w") as new:
        for info in sorted(old.infolist(), key=lambda i: i.header_offset):
            member = zipfile.ZipInfo(info.filename, info.date_time)
            pad = -(handle.tell() + 30 + len(info.filename.encode()) + 4) % 64
            member.extra = struct.pack("<HH", 0x4246, pad) + b"\0" * pad
            new.writestr(member, old.read(info))
            if info.filename == after:
                handle.write(b"\xee" * 64)
                new.start_dir = handle.tell()  # where zipfile goes on writing (it seeks there first)


def test_a_bin_whose_directory_misleads_is_refused_before_its_bytes_are_read(online, standin, bin_repos, cli, tmp_path):
    """Starts taken from the directory are held to the local headers before any tensor byte is
    read: stray bytes between members, which torch.save never writes, are one line."""
    folder = tmp_path / "stray"
    shutil.copytree(bin_repos["org/llama-bin"][0], folder)
    with_bytes_between_members(
        os.path.join(bin_repos["org/llama-bin"][0], "pytorch_model.bin"),
        folder / "pytorch_model.bin",
        "pytorch_model/data/0",
    )
    standin.add("org/stray", folder)
    local = cli("values", str(folder), "--filter", "*.0.*")
    assert local.code == 0  # the local reader reads every local header
    assert cli("params", "org/stray").out == cli("params", str(folder)).out.replace("stray", "org/stray", 1)
    result = cli("values", "org/stray", "--filter", "*.0.*")
    assert (result.code, result.out) == (1, "")
    cached = os.path.join(
        os.environ["LLM_ANATOMY_CACHE"],
        "hub",
        "models--org--stray",
        standin.repos["org/stray"].sha,
        "pytorch_model.bin",
    )
    assert result.err.startswith(
        f"llm-anatomy: {cached}: expected pytorch_model/data/0 followed by the next member (as torch.save writes a zip), found its bytes at "
    )
    assert result.err.endswith(", then 64 bytes more; the file is corrupt or hostile; download it again\n")


# ---------------------------------------------------------------- more refusals


def test_a_missing_shard_and_an_oversized_index(online, standin, llama_dir, tmp_path, cli):
    broken = tmp_path / "broken"
    shutil.copytree(llama_dir, broken)
    shard = sorted(n for n in os.listdir(broken) if n.endswith(".safetensors"))[0]
    os.remove(broken / shard)
    standin.add("org/broken", broken)
    result = cli("params", "org/broken")
    assert result.code == 1 and result.err.endswith(
        f"expected shard {shard} named by the index, found no such file; download the missing shard\n"
    )
    huge = tmp_path / "huge"
    shutil.copytree(llama_dir, huge)
    with open(huge / "model.safetensors.index.json", "a") as handle:
        handle.write(" " * (20 * 1024 * 1024))
    standin.add("org/huge-index", huge)
    result = cli("params", "org/huge-index")
    assert result.code == 1 and result.err.endswith(
        f"expected a file of at most {20 * 1024 * 1024} bytes, found {os.path.getsize(huge / 'model.safetensors.index.json')} bytes; the repository's file is corrupt or hostile\n"
    )


@pytest.mark.parametrize("filename", ["model.safetensors", "tiny.Q8_0.gguf", "pytorch_model.bin"])
def test_an_empty_weight_file_is_refused_as_the_local_copy_is(filename, online, standin, tmp_path, cli):
    """The CDN answers a range of an empty file with 416 (bytes */0): the reader then says
    what it expected there, as it does for the same empty file on disk."""
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / filename).write_bytes(b"")
    sha = standin.add(f"org/empty-{filename}", folder)
    result = cli("params", f"org/empty-{filename}")
    local = cli("params", folder / filename)
    assert (result.code, local.code) == (1, 1)
    cached_name = os.path.join(os.environ["LLM_ANATOMY_CACHE"], "hub", f"models--org--empty-{filename}", sha, filename)
    assert result.err == local.err.replace(str(folder / filename), cached_name)
    assert "found an empty file" in result.err and [e.status for e in online.log if e.host == "cdn"] == [416], (
        online.log
    )


def test_a_hub_that_does_not_answer_in_time(online, remote_repos, cli, monkeypatch):
    monkeypatch.setattr(transport, "TIMEOUT_SECONDS", 0.3)
    online.faults["cdn:/org/gpt2/"] = "slow"
    result = cli("params", "org/gpt2")
    assert result.code == 1 and result.err.endswith(
        "found no answer (TimeoutError: timed out); check the network or HF_ENDPOINT, and try again later\n"
    ), result.err


def test_a_snapshot_without_the_weights_is_read_from_the_hub(online, remote_repos, cli, monkeypatch, capsys):
    """huggingface_hub's get_safetensors_metadata leaves the index alone in the HF cache."""
    from huggingface_hub import HfApi

    folder, sha = remote_repos[0]["org/llama"]
    HfApi().get_safetensors_metadata("org/llama")
    capsys.readouterr()  # its progress bar
    snapshot = os.path.join(os.environ["HF_HUB_CACHE"], "models--org--llama", "snapshots", sha)
    assert sorted(os.listdir(snapshot)) == ["model.safetensors.index.json"]
    result = cli("params", "org/llama")
    assert (result.code, result.err) == (0, "")
    assert result.out == cli("params", str(folder)).out.replace(os.path.basename(folder), "org/llama", 1)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(os.environ["LLM_ANATOMY_CACHE"]) + "-empty")
    shard = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))[0]
    assert (
        cli("params", "org/llama").err
        == f"llm-anatomy: {snapshot}/model.safetensors.index.json: expected shard {shard} named by the index, found no such file; download the missing shard\n"
    )


# ---------------------------------------------------------------- stats and diff stream the bytes


def test_stats_and_diff_stream_a_remote_model(online, remote_repos, cli, monkeypatch, tmp_path, capsys):
    folder, sha = remote_repos[0]["org/llama"]
    stats = cli("stats", "org/llama", "--json")
    assert (stats.code, stats.err) == (0, "")
    local = cli("stats", str(folder), "--json")
    assert stats.out == local.out.replace(f'"{os.path.basename(folder)}"', '"org/llama"', 1)
    data_bytes = sum(os.path.getsize(folder / n) for n in os.listdir(folder) if n.endswith(".safetensors"))
    requests, moved = online.moved()
    assert moved < 2 * data_bytes  # headers, then each tensor's bytes once (not the whole of every file again)
    finetune = checkpoints.tiny_llama(str(tmp_path / "finetune"), seed=1)
    capsys.readouterr()  # save_pretrained's progress bar
    diff = cli("diff", finetune, "org/llama")
    assert (diff.code, diff.err) == (0, "")
    expected = cli("diff", finetune, str(folder)).out
    assert "21 tensors compared: 5 bit-identical, 16 changed" in expected  # the norms are ones in both
    assert diff.out == expected.replace(f"B: {os.path.basename(folder)} ", "B: org/llama ", 1)
    assert not os.path.exists(
        os.path.join(os.environ["HF_HUB_CACHE"], "models--org--llama")
    )  # nothing written for the data


# ---------------------------------------------------------------- in a fresh process, as users run it


def test_a_fresh_process_honours_hf_endpoint_and_stays_light(standin, remote_repos, tmp_path):
    """HF_ENDPOINT read as huggingface_hub reads it; a view of a remote model imports neither
    numpy nor torch nor huggingface_hub's HTTP stack (http.client and ssl, the standard
    library's, it does: bench/RESULTS.md has their cost), and the cached call on a commit
    sends nothing, so imports neither, nor even skeleton.py (params on a local folder does not)."""
    from conftest import NOT_ON_THE_LIGHT_PATH, imported_by

    sha = remote_repos[0]["org/llama"][1]
    env = dict(
        os.environ,
        HF_ENDPOINT=standin.url,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_CACHE=str(tmp_path / "hf_cache"),
        LLM_ANATOMY_CACHE=str(tmp_path / "cache"),
    )
    env.pop("HF_HUB_OFFLINE")
    heavy = (
        "numpy",
        "torch",
        "transformers",
        "typing",
        "pathlib",
        "huggingface_hub.utils",
        "huggingface_hub.hf_api",
        "httpx",
    )
    code, loaded, out = imported_by("params", "org/llama", modules=heavy, env=env)
    assert (code, loaded) == (0, []) and out.splitlines()[-1] == "21 tensors, 78,144 parameters, 305.25 KiB in 6 files"
    standin.clear_log()
    code, loaded, again = imported_by("params", "org/llama", modules=heavy, env=env)
    assert (code, loaded, again) == (0, [], out)
    assert [e.path for e in standin.log] == ["/api/models/org/llama"]  # main -> its commit
    code, loaded, again = imported_by(
        "params", "org/llama", "--revision", sha, modules=(*NOT_ON_THE_LIGHT_PATH, "llm_anatomy.hf.skeleton"), env=env
    )
    assert (code, loaded, again) == (0, [], out)


def test_gguf_metadata_comes_in_doubling_ranges(online, standin, tmp_path, cli):
    """A vocabulary of 200,000 strings: megabytes of metadata before the tensor infos."""
    import gguf
    import numpy as np

    folder = tmp_path / "vocab"
    folder.mkdir()
    writer = gguf.GGUFWriter(str(folder / "big-vocab.gguf"), "llama")
    writer.add_token_list([f"token-{i:06d}-" + "x" * 20 for i in range(200_000)])
    writer.add_tensor("token_embd.weight", np.zeros((8, 16), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    standin.add("org/big-vocab", folder)
    result = cli("params", "org/big-vocab")
    assert result.code == 0 and result.out.splitlines()[1].startswith("token_embd.weight")
    ranges = [e.range for e in online.log if e.host == "cdn"]
    size = os.path.getsize(folder / "big-vocab.gguf")
    assert sum(e.nbytes for e in online.log if e.host == "cdn") == size - 31  # 31 bytes stepped over, nothing twice
    # The first 100 KB, the rest of the reader's first 1 MB window, then each range twice the last.
    assert ranges == [
        "bytes=0-99999",
        "bytes=100000-1048575",
        "bytes=1048607-2097182",
        "bytes=2097183-4194334",
        f"bytes=4194335-{size - 1}",
    ]


def test_a_header_cache_that_cannot_be_written_is_one_line(online, remote_repos, cli, tmp_path, monkeypatch):
    """The commit's folder in the header cache is where a model on the Hub is read from: a
    cache under a file is one line and exit 1, not a traceback."""
    (tmp_path / "file").write_text("x")
    cache = tmp_path / "file" / "cache"
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(cache))
    result = cli("params", "org/gpt2")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        f"llm-anatomy: {cache}/hub/models--org--gpt2/refs/main: expected a file llm-anatomy can write in its cache of models on the Hub,"
        " found Not a directory; set LLM_ANATOMY_CACHE to a writable folder\n"
    )


# ---------------------------------------------------------------- the header cache read and written as hostile


def _gpt2_cache(cli):
    """(first output, the commit's folder in the header cache) after one online call on org/gpt2."""
    first = cli("params", "org/gpt2")
    assert first.code == 0, first.err
    base = os.path.join(os.environ["LLM_ANATOMY_CACHE"], "hub", "models--org--gpt2")
    with open(os.path.join(base, "refs", "main")) as handle:
        return first, os.path.join(base, handle.read())


def _nesting_bomb(path):
    with open(path, "wb") as handle:
        handle.write(b"[" * 100_000 + b"]" * 100_000 + b"\n")


def _sparse_3gb(path):
    os.remove(path)
    with open(path, "wb") as handle:
        handle.truncate(3 * 2**30)


def _replace(content):
    def damage(path):
        with open(path, "wb") as handle:
            handle.write(content)

    return damage


def _link_to_dev_zero(path):
    os.remove(path)
    os.symlink("/dev/zero", path)


def _fifo(path):
    os.remove(path)
    os.mkfifo(path)


DAMAGED_CACHE = {
    # .ranges/FILE: a JSON line {"size": N, "ranges": [[start, length], ...]}, then the bytes
    "ranges-list-head": (".ranges/model.safetensors", _replace(b"[1, 2]\n")),
    "ranges-missing-key": (".ranges/model.safetensors", _replace(b'{"size": 10}\n')),
    "ranges-bad-types": (".ranges/model.safetensors", _replace(b'{"size": "10", "ranges": [["a", 1]]}\n')),
    "ranges-past-the-size": (".ranges/model.safetensors", _replace(b'{"size": 10, "ranges": [[8, 4]]}\nabcd')),
    "ranges-bytes-short": (".ranges/model.safetensors", _replace(b'{"size": 100, "ranges": [[0, 8]]}\nabc')),
    "ranges-nesting-bomb": (".ranges/model.safetensors", _nesting_bomb),
    "ranges-devzero": (".ranges/model.safetensors", _link_to_dev_zero),
    "ranges-sparse-3GB": (".ranges/model.safetensors", _sparse_3gb),
    "ranges-fifo": (".ranges/model.safetensors", _fifo),
    "listing-int": (".listing.json", _replace(b"5")),
    "listing-ints": (".listing.json", _replace(b"[1, 2]")),
    "listing-nesting-bomb": (".listing.json", _nesting_bomb),
    "listing-sparse-3GB": (".listing.json", _sparse_3gb),
}


@pytest.mark.parametrize("case", DAMAGED_CACHE)
def test_a_damaged_header_cache_is_a_miss(case, online, remote_repos, cli, tmp_path, monkeypatch):
    """Each file of the header cache is read capped and shape-checked (hostile report R4,
    C1-C3): whatever is wrong with it, the call goes on as if it were not cached: online it
    reads the Hub again (and repairs the file), offline it says the model is not cached, in
    one line, in bounded time and memory."""
    from hostile import assert_refused, run_cli

    first, folder = _gpt2_cache(cli)
    name, damage = DAMAGED_CACHE[case]
    damage(os.path.join(folder, name))
    cache = os.environ["LLM_ANATOMY_CACHE"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = run_cli("params", "org/gpt2")
    monkeypatch.setenv("LLM_ANATOMY_CACHE", str(tmp_path / "never-filled"))
    uncached = cli("params", "org/gpt2")
    assert uncached.code == 1 and uncached.err.startswith(
        "llm-anatomy: org/gpt2: expected a model folder, a weights file, or a model in the local Hugging Face cache"
    )
    assert_refused(offline, codes=(1,), message=uncached.err.rstrip("\n"))
    monkeypatch.setenv("LLM_ANATOMY_CACHE", cache)
    monkeypatch.delenv("HF_HUB_OFFLINE")  # back online, on the damaged cache
    online.clear_log()
    again = run_cli("params", "org/gpt2")
    assert (again.code, again.err, again.out) == (0, "", first.out)
    assert [e.path for e in online.log if e.host == "hub"][0] == "/api/models/org/gpt2"
    assert os.path.isfile(os.path.join(folder, name)) and not os.path.islink(os.path.join(folder, name))  # repaired
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli("params", "org/gpt2").out == first.out


@pytest.mark.parametrize("case", ["ranges-folder", "listing-folder"])
def test_a_folder_in_the_header_cache_is_a_miss(case, online, remote_repos, cli, monkeypatch):
    """A folder where a cache file should be: offline a miss; online the file cannot be
    replaced, and says so in one line."""
    first, folder = _gpt2_cache(cli)
    path = os.path.join(folder, ".ranges/model.safetensors" if case == "ranges-folder" else ".listing.json")
    os.remove(path)
    os.mkdir(path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = cli("params", "org/gpt2")
    assert (offline.code, offline.out) == (1, "")
    assert offline.err.startswith(
        "llm-anatomy: org/gpt2: expected a model folder, a weights file, or a model in the local Hugging Face cache"
    )
    monkeypatch.delenv("HF_HUB_OFFLINE")
    result = cli("params", "org/gpt2")
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: {path}: expected a file llm-anatomy can write in its cache of models on the Hub, found Is a directory; set LLM_ANATOMY_CACHE to a writable folder\n"
    )


@pytest.mark.parametrize("link", [".ranges", "SHA"])
def test_the_header_cache_never_writes_through_a_link(link, online, remote_repos, gpt2_dir, cli, tmp_path):
    """Hostile report C4: in a shared LLM_ANATOMY_CACHE, `.ranges` or the commit's folder
    replaced by a link to a model folder. The next online call would write the cache's
    records over the model's weights: it refuses in one line naming the link, and nothing
    in the model folder changes."""
    from hostile import snapshot

    _, folder = _gpt2_cache(cli)
    victim = tmp_path / "victim"
    shutil.copytree(gpt2_dir, victim)
    linked = os.path.join(folder, ".ranges") if link == ".ranges" else folder
    shutil.rmtree(linked)
    os.symlink(victim, linked)
    before = snapshot(victim)
    weights = (victim / "model.safetensors").read_bytes()
    result = cli("params", "org/gpt2")
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == f"llm-anatomy: {linked}: expected a folder of llm-anatomy's cache of models on the Hub, found a symbolic link; remove the link (llm-anatomy never writes through one in its cache)\n"
    )
    assert snapshot(victim) == before and (victim / "model.safetensors").read_bytes() == weights


def test_a_commit_sha_with_a_final_newline_is_refused(online, standin, gpt2_dir, cli):
    """Hostile report R8: `$` matched before a final newline, so a model description whose
    sha ended in one named a cache folder and the URLs with it."""
    standin.add("org/newline", gpt2_dir, sha="0123abcd" * 5 + "\n")
    result = cli("params", "org/newline")
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == "llm-anatomy: org/newline: expected a commit sha from the Hub, found '0123abcd0123abcd0123abcd0123abcd0123abcd\\n'; check HF_ENDPOINT\n"
    )
    assert not os.path.exists(os.path.join(os.environ["LLM_ANATOMY_CACHE"], "hub", "models--org--newline"))


@pytest.mark.parametrize(
    "revision",
    [
        "..",
        "a/../b",
        ".hidden",
        "v1.lock",
        "refs/heads/x.lock",
        "a@{1}",
        "@",
        "a//b",
        "/main",
        "main/",
        "v1.",
        "a b",
        "v1~1",
        "v1^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "main\n",
        "v1\x1b[2J",
        "v1\x7f",
    ],
)
def test_a_revision_that_is_no_git_ref_name_is_refused_before_any_request(revision, online, remote_repos, cli):
    """git check-ref-format's rules, as the Hub refuses such names: `--revision ..` reached
    the Hub as a dot-segment and wrote refs/.. (hostile report R8); now exit 2, nothing sent."""
    assert cli("params", "org/gpt2").code == 0  # main cached: the early request is not sent either
    online.clear_log()
    result = cli("params", "org/gpt2", "--revision", revision)
    shown = repr(revision).replace("\x1b", "\\x1b").replace("\x7f", "\\x7f")
    assert (result.code, result.out) == (2, "")
    assert (
        result.err
        == f"llm-anatomy: org/gpt2: expected a revision (branch, tag or commit), found {shown}; pass a name such as main, v1.0 or refs/pr/1\n"
    )
    assert online.log == []


@pytest.mark.parametrize("revision", ["refs/pr/1", "v1.0-rc+1", "release/2024.01", "x.locked", "@x", "ünïcode"])
def test_revisions_git_accepts_reach_the_hub(revision, online, remote_repos, standin, gpt2_dir, cli):
    sha = "feed" * 10
    standin.add("org/revisions", gpt2_dir, revisions={revision: sha, sha: sha})
    result = cli("params", "org/revisions", "--revision", revision)
    assert (result.code, result.err) == (0, "")


def test_api_users_catch_each_kind_of_refusal(online, remote_repos, tmp_path):
    """Typed errors under AnatomyError: an API user catches one case and lets the others
    through; each still carries the CLI's one line."""
    import struct

    import llm_anatomy as la
    from llm_anatomy.core import extras

    with pytest.raises(la.GatedRepo) as gated:
        la.open("gated-org/llama")
    assert (
        str(gated.value)
        == "gated-org/llama: expected a model you may read, found a gated model; accept its license on the model page, then `hf auth login` or set HF_TOKEN"
    )
    with pytest.raises(la.RepoNotFound):
        la.open("nobody/nothing")
    with pytest.raises(la.RevisionNotFound) as revision:
        la.open("org/llama", revision="v9")
    assert not isinstance(revision.value, la.RepoNotFound)
    with pytest.raises(la.UsageError):
        la.open("org/llama", revision="..")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(la.CorruptFile):
        la.open(corrupt)
    assert la.MissingExtra is extras.MissingExtra
    kinds = (
        la.HubError,
        la.RepoNotFound,
        la.GatedRepo,
        la.RevisionNotFound,
        la.CorruptFile,
        la.MissingExtra,
        la.UsageError,
    )
    assert all(issubclass(kind, la.AnatomyError) for kind in kinds)
    assert all(issubclass(kind, la.HubError) for kind in (la.RepoNotFound, la.GatedRepo, la.RevisionNotFound))


def test_models_opened_in_one_process_share_no_byte_source(online, remote_repos):
    """A Hub model's remote files travel with its catalog (io.sources.SourcedPath), not in a
    registry of the process: a second open of the same repository reads through its own
    sources, a local model through its files, and a model let go frees its header chunks."""
    import gc
    import weakref

    import llm_anatomy as la
    from llm_anatomy.io import sources

    folder, _ = remote_repos[0]["org/gpt2"]
    first, second, local = la.open("org/gpt2"), la.open("org/gpt2"), la.open(str(folder))
    name = "transformer.h.0.attn.c_attn.bias"
    (file_a,), (file_b,), (file_local,) = first.catalog.files, second.catalog.files, local.catalog.files
    assert file_a == file_b and file_a.source is not file_b.source
    assert not sources.is_local(file_a) and sources.is_local(file_local)
    values = local.get_parameter(name).numpy().tolist()
    assert first.get_parameter(name).numpy().tolist() == second.get_parameter(name).numpy().tolist() == values
    held = weakref.ref(file_a.source)
    del first, file_a
    gc.collect()
    assert held() is None
    assert second.get_parameter(name).numpy().tolist() == values
