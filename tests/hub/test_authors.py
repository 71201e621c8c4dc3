"""Hub users and organisations (scan --author NAME): their models listed through
GET /api/models?author=NAME, page after page by the Link header's rel="next" (the stand-in
pages 2 models at a time), each then read header-only as any model on the Hub; a gated repo
is an error row, a hostile id is refused before any request for it."""

import pytest

from test_hub import online, standin  # noqa: F401 (fixtures: the Hub stand-in, empty caches)

from llm_anatomy import api
from llm_anatomy.cli.main import main
from llm_anatomy.hub import authors

HOSTILE = "mallory/evil\x1b]0;owned\x07"


@pytest.fixture
def alice(standin, online, llama_tied_dir, tmp_path):  # noqa: F811
    import checkpoints

    gguf = tmp_path / "gguf"
    gguf.mkdir()
    checkpoints.llama_gguf(str(llama_tied_dir), str(gguf / "tiny.Q8_0.gguf"))
    standin.add("alice/one", llama_tied_dir, sha="1" * 40)
    standin.add("alice/two", gguf, sha="2" * 40)
    standin.add("alice/gated", llama_tied_dir, gated=True, sha="3" * 40)
    standin.add(HOSTILE, llama_tied_dir, sha="4" * 40)
    standin.page_size = 2
    standin.clear_log()
    yield standin
    standin.page_size = 1000
    for repo in ("alice/one", "alice/two", "alice/gated", HOSTILE):
        del standin.repos[repo]


def test_models_listed_over_two_pages(alice):
    assert list(authors.models_of("alice")) == [
        ("alice/gated", "3" * 40),
        ("alice/one", "1" * 40),
        ("alice/two", "2" * 40),
    ]
    assert [e.path for e in alice.log] == [
        "/api/models?author=alice&full=true",
        "/api/models?author=alice&full=true&cursor=2",  # the Link header's URL, as given
    ]


def test_rows_of_an_author(alice, capsys):
    assert main(["scan", "--author", "alice"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [
        "location     format       architecture      params  dtypes                                       weights  KV/1k tokens  findings",
        "alice/gated  error                                                                                                      alice/gated: expected a model you may read, found a gated model; accept its license on the model page, then `hf auth login` or set HF_TOKEN",
        "alice/one    safetensors  LlamaForCausalLM  69.95K  F32:100%                                  273.25 KiB    512.00 KiB  -",
        "alice/two    gguf         llama             69.95K  F32:59% Q4_0:18% F16:12% Q8_0:9% BF16:3%  194.38 KiB    512.00 KiB  -",
        "3 checkpoints, 1 unreadable",
    ]


def test_resumed_by_commit(alice, tmp_path):
    out = tmp_path / "inventory.jsonl"
    first = api.inventory([], out, authors=["alice"])
    assert [(r.location, r.content) for r in first.rows] == [
        ("alice/gated", "3" * 40),
        ("alice/one", "1" * 40),
        ("alice/two", "2" * 40),
    ]
    assert api.inventory([], out, authors=["alice"]) == api.Inventory([], 3)


def test_a_hostile_id_is_refused_before_any_request(alice):
    (row,) = api.inventory([], authors=["mallory"]).rows
    assert row.location == "mallory/evil\\x1b]0;owned\\x07"
    assert row.error == (
        "mallory/evil\\x1b]0;owned\\x07: expected a repository id from the Hub's list, found another string; check HF_ENDPOINT"
    )
    assert [e.path for e in alice.log] == ["/api/models?author=mallory&full=true"]


def test_an_author_name_is_checked_first(capsys):
    assert main(["scan", "--author", "../etc"]) == 2
    assert capsys.readouterr().err == (
        "llm-anatomy: ../etc: expected a Hub user or organisation name, found another string; pass --author NAME, e.g. --author Qwen\n"
    )
    assert main(["scan"]) == 2
    assert "expected a MODEL or --author NAME" in capsys.readouterr().err


def test_next_page_from_the_link_header():
    assert authors.next_page('<https://h/api/models?p=1>; rel="prev", <https://h/api/models?p=3>; rel="next"') == (
        "https://h/api/models?p=3"
    )
    assert authors.next_page('<https://h/x>; rel="last"') is None
    assert authors.next_page(None) is None
