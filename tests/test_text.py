"""The shared number formats of the text renderers."""

import math

from llm_anatomy.render.text import counted, human_bytes, human_count, json_number, share, significant


def test_share():
    assert [share(1, 3), share(266_240, 6_738_415_616), share(0, 5), share(5, 5), share(0, 0)] == ["33.3%", "<0.1%", "0.0%", "100.0%", "-"]


def test_counts_and_sizes():
    assert [counted(1, "tensor"), counted(291, "tensor"), counted(6_738_415_616, "parameter")] == ["1 tensor", "291 tensors", "6,738,415,616 parameters"]
    assert [human_bytes(34), human_bytes(13_476_831_232), human_count(6_738_415_616), human_count(999)] == ["34 B", "12.55 GiB", "6.74B", "999"]


def test_statistics_numbers():
    assert [significant(0.019973), significant(-2.4671e-05), significant(759.53)] == ["0.01997", "-2.467e-05", "759.5"]
    assert [json_number(math.nan), json_number(-math.inf), json_number(1.5), json_number(3)] == [None, None, 1.5, 3]
