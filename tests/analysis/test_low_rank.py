"""`diff --low-rank`: a LoRA made by PEFT and merged by its merge_and_unload(), saved in float32
and in bfloat16, is recognised with the ranks it was made with; numpy.linalg.svd is the
reference for the randomised singular values and the ranks."""

import json
import shutil

import numpy as np
import pytest

import llm_anatomy as la
from llm_anatomy.core.errors import UsageError
from llm_anatomy.analysis.low_rank import estimate, singular_values

import checkpoints

pytestmark = pytest.mark.torch  # adapters made and merged by PEFT, on models made by transformers

LORA = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], rank_pattern={"layers.1.self_attn.q_proj": 2})
RANKS = {  # what LORA makes of each module
    "model.layers.0.self_attn.q_proj.weight": 4,
    "model.layers.0.self_attn.v_proj.weight": 4,
    "model.layers.1.self_attn.q_proj.weight": 2,
    "model.layers.1.self_attn.v_proj.weight": 4,
}
VERDICT = [
    "layer 0 q_proj changed with rank 4",
    "layers 0 to 1 v_proj changed with rank 4",
    "layer 1 q_proj changed with rank 2; everything else identical",
    "every change is low-rank (ranks 2 to 4, 4 matrices): B is A with a LoRA merged into it",
]
NOISY = "model.layers.0.mlp.up_proj.weight"  # [96, 64]


@pytest.fixture(scope="module")
def merged(llama_dir, llama_bf16_dir, tmp_path_factory):
    """{dtype: (base, the LoRA merged into it by PEFT)}, and 'noisy': float32 with random noise
    added to one more matrix (a full-rank change)."""
    import torch
    from safetensors.torch import load_file, save_file

    adapter = checkpoints.peft_lora(str(llama_dir), str(tmp_path_factory.mktemp("adapter")), **LORA)
    made = {
        "float32": (
            llama_dir,
            checkpoints.peft_merged(str(llama_dir), adapter, str(tmp_path_factory.mktemp("merged32"))),
        ),
        "bfloat16": (
            llama_bf16_dir,
            checkpoints.peft_merged(str(llama_bf16_dir), adapter, str(tmp_path_factory.mktemp("merged16")), "bfloat16"),
        ),
    }
    noisy = tmp_path_factory.mktemp("noisy")
    shutil.copytree(made["float32"][1], noisy, dirs_exist_ok=True)
    tensors = load_file(noisy / "model.safetensors")
    generator = torch.Generator().manual_seed(1)
    tensors[NOISY] = tensors[NOISY] + 0.01 * torch.randn(tensors[NOISY].shape, generator=generator)
    save_file(tensors, noisy / "model.safetensors", metadata={"format": "pt"})
    made["noisy"] = (llama_dir, str(noisy))
    return made


def _reference_ranks(base, merged_folder, tolerances):
    """{name: rank} from numpy.linalg.svd of the float64 difference, at the tolerances diff used."""
    a, b = la.open(base), la.open(merged_folder)
    ranks = {}
    for name, tolerance in tolerances.items():
        difference = b.get_parameter(name).numpy().astype(np.float64) - a.get_parameter(name).numpy().astype(np.float64)
        ranks[name] = int(np.count_nonzero(np.linalg.svd(difference, compute_uv=False) > tolerance))
    return ranks


@pytest.mark.slow  # PEFT makes and merges the adapter
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_merged_lora_is_recognised_with_its_ranks(dtype, merged, cli):
    base, merged_folder = merged[dtype]
    result = cli("diff", base, merged_folder, "--low-rank")
    assert result.code == 0, result.err
    out = result.out.splitlines()
    assert out[out.index("verdict:") + 1 :] == [f"  {line}" for line in VERDICT]
    data = json.loads(cli("diff", base, merged_folder, "--low-rank", "--json").out)
    assert data["verdict"] == VERDICT
    found = {t["name"]: t["low_rank"] for t in data["tensors"] if t["low_rank"] is not None}
    assert {name: f["rank"] for name, f in found.items()} == RANKS
    assert all(not f["rank_is_lower_bound"] and f["low_rank"] and f["energy"] > 0.9999 for f in found.values())
    assert {f["tolerance_dtype"] for f in found.values()} == {"F32" if dtype == "float32" else "BF16"}
    assert _reference_ranks(base, merged_folder, {n: f["tolerance"] for n, f in found.items()}) == RANKS
    identical = [t for t in data["tensors"] if t["low_rank"] is None]
    assert len(identical) == 17 and all(t["identical"] for t in identical)
    assert la.diff(base, merged_folder, low_rank=True).verdict() == VERDICT  # the API the CLI renders
    with pytest.raises(UsageError, match=r"^Diff.verdict: expected the values compared, found the headers only"):
        la.diff(base, merged_folder, values=False).verdict()


@pytest.mark.slow  # PEFT makes and merges the adapter
def test_text_rows(merged, cli):
    base, merged_folder = merged["float32"]
    out = cli("diff", base, merged_folder, "--low-rank", "--top", "5").out.splitlines()
    start = out.index("name                                    dtype  relative  rank  energy  sigma_max  tolerance")
    rows = [line.split() for line in out[start + 1 : start + 6]]
    assert [row[0] for row in rows[:4]] == sorted(RANKS, key=lambda n: -float(rows[[r[0] for r in rows].index(n)][2]))
    assert {row[0]: row[3] for row in rows[:4]} == {n: f"{r}/{64 if 'q_proj' in n else 32}" for n, r in RANKS.items()}
    assert rows[4][-1] == "bit-identical"
    assert out[start + 6 : start + 8] == ["... 16 more (--top)", "21 tensors compared; 610.50 KiB of tensor data"]


@pytest.mark.slow  # PEFT makes and merges the adapter
def test_a_full_rank_change_is_not_called_low_rank(merged, cli):
    base, noisy = merged["noisy"]
    data = json.loads(cli("diff", base, noisy, "--low-rank", "--json").out)
    assert data["verdict"] == [
        "layer 0 up_proj changed with full rank",
        "layer 0 q_proj changed with rank 4",
        "layers 0 to 1 v_proj changed with rank 4",
        "layer 1 q_proj changed with rank 2; everything else identical",
    ]
    found = next(t["low_rank"] for t in data["tensors"] if t["name"] == NOISY)
    assert (found["rank"], found["full_rank"], found["low_rank"], found["sketch"]) == (64, 64, False, 64)


def test_randomised_singular_values_match_numpy():
    rng = np.random.default_rng(7)
    m, n, rank = 300, 200, 12
    low = (rng.standard_normal((m, rank)) * np.linspace(3, 1, rank)) @ rng.standard_normal((rank, n))
    difference = (low + 1e-2 * rng.standard_normal((m, n))).astype(np.float32)
    exact = np.linalg.svd(difference.astype(np.float64), compute_uv=False)
    sketched = singular_values(difference, 20)
    assert sketched.shape == (20,)
    np.testing.assert_allclose(sketched[:rank], exact[:rank], rtol=1e-5)
    assert np.all(sketched[rank:] <= exact[rank] * 1.001)  # a projection: never above the exact tail
    assert np.array_equal(singular_values(difference, 20), sketched)  # seeded: the same every time
    # the noise is full-rank and above F32's tolerance; the low-rank part alone has rank 12
    exact_low = np.linalg.svd(low, compute_uv=False)
    squares = float(np.sum(low**2))
    found = estimate(low.astype(np.float32), ("F32", "F32"), squares, squares, squares)
    assert (found.rank, found.above, found.full, found.sketch) == (rank, False, 200, 24)
    assert found.rank == int(np.count_nonzero(exact_low > found.tolerance))
    assert found.energy == pytest.approx(float(np.sum(exact_low[:rank] ** 2)) / squares, rel=1e-5)
    squares = float(np.sum(difference.astype(np.float64) ** 2))
    assert estimate(difference, ("F32", "F32"), squares, squares, squares).words() == "full rank"


def test_a_rank_past_the_last_probe_is_a_lower_bound(monkeypatch):
    monkeypatch.setattr("llm_anatomy.analysis.low_rank.PROBES", (4, 8))
    difference = np.random.default_rng(3).standard_normal((60, 50)).astype(np.float32)
    squares = float(np.sum(difference.astype(np.float64) ** 2))
    found = estimate(difference, ("BF16", "BF16"), squares, squares, squares)
    assert (found.rank, found.above, found.low, found.sketch) == (8, True, False, 16)
    assert found.words() == "rank above 8 of 50 (not low-rank)"
