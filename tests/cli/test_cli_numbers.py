"""Numbers typed on the command line (issue 14): print options, counts, context lengths and
tensor indices out of their documented ranges, or past Python's 4,300-digit int() limit,
are usage errors: exit 2, one escaped stderr line, nothing read or built."""

from __future__ import annotations

import pytest

from hostile import assert_refused, run_cli

HUGE = "9" * 5000  # int() of this raises ValueError past Python's 4,300-digit limit
HUGE_SHOWN = "9" * 30 + "..."
PRECISION = "expected a whole number in 0..100, found "
THRESHOLD = "expected a number in 0..1,000,000 (--full prints every element, streaming), found "
CONTEXT = "expected up to 64 whole numbers in 1..4,294,967,296 separated by commas, found "

# (arguments after MODEL, the exact usage error line after "llm-anatomy COMMAND: error: ")
FAMILIES = {
    "precision 2**31": (
        ("values", "MODEL", "--precision", str(2**31)),
        "argument --precision: " + PRECISION + "2147483648",
    ),
    "precision negative": (("values", "MODEL", "--precision", "-1"), "argument --precision: " + PRECISION + "-1"),
    "precision 5000 digits": (
        ("values", "MODEL", "--precision", HUGE),
        "argument --precision: " + PRECISION + HUGE_SHOWN,
    ),
    "precision a word": (("values", "MODEL", "--precision", "four"), "argument --precision: " + PRECISION + "four"),
    "linewidth huge": (
        ("values", "MODEL", "--linewidth", "10" + "0" * 11),
        "argument --linewidth: expected a whole number in 0..100,000, found 1000000000000",
    ),
    "edgeitems huge": (
        ("values", "MODEL", "--edgeitems", str(10**9)),
        "argument --edgeitems: expected a whole number in 0..1,000, found 1000000000",
    ),
    "edgeitems 5000 digits": (
        ("values", "MODEL", "--edgeitems", HUGE),
        "argument --edgeitems: expected a whole number in 0..1,000, found " + HUGE_SHOWN,
    ),
    "threshold NaN": (("values", "MODEL", "--threshold", "nan"), "argument --threshold: " + THRESHOLD + "nan"),
    "threshold inf": (("values", "MODEL", "--threshold", "inf"), "argument --threshold: " + THRESHOLD + "inf"),
    "threshold 1e400": (("values", "MODEL", "--threshold", "1e400"), "argument --threshold: " + THRESHOLD + "1e400"),
    "threshold negative": (("values", "MODEL", "--threshold", "-3"), "argument --threshold: " + THRESHOLD + "-3"),
    "threshold 5000 digits": (
        ("values", "MODEL", "--threshold", HUGE),
        "argument --threshold: " + THRESHOLD + HUGE_SHOWN,
    ),
    "top 5000 digits": (
        ("diff", "MODEL", "MODEL", "--top", HUGE),
        "argument --top: expected a whole number in 0..1,000,000,000, found " + HUGE_SHOWN,
    ),
    "top beyond range": (
        ("diff", "MODEL", "MODEL", "--top", str(10**12)),
        "argument --top: expected a whole number in 0..1,000,000,000, found 1000000000000",
    ),
    "depth 5000 digits": (
        ("tree", "MODEL", "--depth", HUGE),
        "argument --depth: expected a whole number in 0..10,000, found " + HUGE_SHOWN,
    ),
    "depth negative": (
        ("tree", "MODEL", "--depth", "-2"),
        "argument --depth: expected a whole number in 0..10,000, found -2",
    ),
    "context 5000 digits": (("summary", "MODEL", "--context", HUGE), "argument --context: " + CONTEXT + HUGE_SHOWN),
    "context 10**20": (("summary", "MODEL", "--context", str(10**20)), "argument --context: " + CONTEXT + str(10**20)),
    "context zero": (("summary", "MODEL", "--context", "4096,0"), "argument --context: " + CONTEXT + "4096,0"),
    "context 100 values": (
        ("summary", "MODEL", "--context", ",".join(["1"] * 100)),
        "argument --context: " + CONTEXT + "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,...",
    ),
    "batch 2**40": (
        ("summary", "MODEL", "--batch", str(2**40)),
        "argument --batch: expected up to 64 whole numbers in 1..1,048,576 separated by commas, found 1099511627776",
    ),
    "escape codes in an argument": (
        ("tree", "MODEL", "--depth", "\x1b]0;x\x07"),
        "argument --depth: expected a whole number in 0..10,000, found \\x1b]0;x\\x07",
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_number_out_of_range(llama_dir, family):
    args, message = FAMILIES[family]
    args = [str(llama_dir) if a == "MODEL" else a for a in args]
    assert_refused(run_cli(*args), (2,), f"llm-anatomy {args[0]}: error: {message}")


INDICES = {
    "index 5000 digits": f"model.norm.weight[{HUGE}]",
    "negative index 5000 digits": f"model.norm.weight[-{HUGE}]",
    "slice stop 50 digits": "model.norm.weight[1:" + "9" * 50 + "]",
    "slice step 20 digits": "model.norm.weight[::" + "1" * 20 + "]",
}


@pytest.mark.parametrize("family", list(INDICES))
def test_index_out_of_range(llama_dir, family):
    target = INDICES[family]
    digits = max(len(part.lstrip("-")) for part in target[18:-1].split(":"))
    shown = target if len(target) <= 80 else target[:77] + "..."
    assert_refused(
        run_cli("values", llama_dir, target),
        (2,),
        f"llm-anatomy: {shown}: expected indices of at most 19 digits, found one of {digits:,} digits",
    )


def test_ranges_accept_their_bounds(llama_dir, cli):
    """The limits themselves are allowed."""
    assert (
        cli(
            "values",
            llama_dir,
            "model.norm.weight",
            "--precision",
            "100",
            "--edgeitems",
            "1000",
            "--linewidth",
            "100000",
            "--threshold",
            "1000000",
        ).code
        == 0
    )
    assert cli("summary", llama_dir, "--context", "4294967296", "--batch", "1048576").code == 0
    assert cli("values", llama_dir, "model.norm.weight[" + "9" * 19 + "]").err.endswith("found " + "9" * 19 + "\n")
