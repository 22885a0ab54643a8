"""rlscale.core.flops: parameter counts and 6NT compute, checked by hand and against transformers."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.errors import RlscaleError
from rlscale.core.flops import (
    StepAccumulator,
    count_params,
    estimate_phi,
    flops_per_token_factor,
    round_significant,
    size_label,
    step_flops,
)
from rlscale.io.model_config import load_config, nominal_from_model
from tests.conftest import DATA

MODELS = os.path.join(DATA, "models")


def _config(name: str) -> dict:
    return load_config(os.path.join(MODELS, name))[0]


# --- parameter counts, hand-computed ----------------------------------------------------------


def test_qwen25_7b_counts_match_hand_computation_and_published_sizes():
    counts = count_params(_config("Qwen2.5-7B"))
    # by hand: V*h = 152064*3584 = 544,997,376 (embedding and untied head);
    # per layer: q 3584*3584+3584, k and v 3584*512+512 each, o 3584*3584, MLP 3*3584*18944,
    # two norms 2*3584 = 233,057,792; 28 layers + final norm 3584
    per_layer = (3584 * 3584 + 3584) + 2 * (3584 * 512 + 512) + 3584 * 3584 \
        + 3 * 3584 * 18944 + 2 * 3584
    assert per_layer == 233_057_792
    assert counts.non_embedding == 28 * per_layer + 3584 == 6_525_621_760
    assert counts.embedding == 2 * 544_997_376
    assert counts.total == 7_615_616_512
    # the Qwen2.5 report: 7.61B total, 6.53B non-embedding (issue: ~7.62B / ~6.53B)
    assert round(counts.total / 1e9, 2) == 7.62
    assert round(counts.non_embedding / 1e9, 2) == 6.53
    assert not counts.tied_embeddings


def test_tied_embeddings_are_counted_once():
    counts = count_params(_config("Qwen2.5-0.5B-Instruct"))
    assert counts.tied_embeddings
    assert counts.embedding == 151936 * 896
    assert counts.total == 494_032_768  # Qwen2.5-0.5B's published parameter count
    assert round(counts.non_embedding / 1e9, 2) == 0.36  # paper-method.md §1.4
    untied = count_params({**_config("Qwen2.5-0.5B-Instruct"), "tie_word_embeddings": False})
    assert untied.total - counts.total == 151936 * 896
    assert untied.non_embedding == counts.non_embedding


def test_llama_31_8b_matches_its_published_count():
    counts = count_params(_config("Llama-3.1-8B"))
    assert counts.total == 8_030_261_248
    assert counts.non_embedding == 8_030_261_248 - 2 * 128256 * 4096


def test_multimodal_wrapper_reads_text_config():
    wrapped = {"model_type": "llava", "text_config": _config("Qwen2.5-7B")}
    assert count_params(wrapped).total == 7_615_616_512


@pytest.mark.parametrize("change, message", [
    ({"model_type": "gpt2"}, "cannot count parameters of model_type 'gpt2'; supported: llama, "
                             "mistral, qwen2, qwen3 (pass --n-params instead)"),
    ({"hidden_size": None}, "config has no 'hidden_size'"),
    ({"num_hidden_layers": 2.5}, "config field 'num_hidden_layers' must be a non-negative integer, "
                                 "got 2.5"),
    ({"vocab_size": "big"}, "config field 'vocab_size' must be a non-negative integer, got 'big'"),
])
def test_bad_configs_give_clear_errors(change, message):
    config = {**_config("Qwen2.5-7B"), **change}
    with pytest.raises(RlscaleError) as exc:
        count_params(config)
    assert str(exc.value) == message


TINY_CONFIGS = [
    ("qwen2", {"tie_word_embeddings": False}),
    ("qwen2", {"tie_word_embeddings": True}),
    ("llama", {"attention_bias": True, "mlp_bias": True}),
    ("llama", {"tie_word_embeddings": True}),
    ("mistral", {}),
    ("qwen3", {"head_dim": 24}),
    ("qwen3", {"head_dim": 8, "attention_bias": True, "tie_word_embeddings": True}),
]


@pytest.mark.parametrize("model_type, extra", TINY_CONFIGS)
def test_counts_equal_the_instantiated_transformers_model(model_type, extra):
    """Reference equivalence: the config-only count equals numel over a real model's parameters."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = {"model_type": model_type, "vocab_size": 97, "hidden_size": 32,
              "intermediate_size": 56, "num_hidden_layers": 3, "num_attention_heads": 4,
              "num_key_value_heads": 2, "tie_word_embeddings": False, **extra}
    hf_config = transformers.AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(hf_config)
    expected = sum(p.numel() for p in model.parameters())
    assert count_params(hf_config.to_dict()).total == expected
    assert count_params(config).total == expected


# --- nominal size -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("Qwen2.5-7B-Instruct", 7e9), ("Qwen/Qwen2.5-0.5B", 0.5e9), ("Qwen2.5-1.5B", 1.5e9),
    ("Meta-Llama-3.1-70B-Instruct", 70e9), ("SmolLM2-135M", 135e6), ("Qwen2.5-72b", 72e9),
    ("gpt2", None), ("Qwen2.5", None), ("3f2a9b1c", None), ("llama7b", None),
])
def test_size_label(name, expected):
    assert size_label(name) == expected


def test_nominal_from_model_prefers_the_name_then_rounds_the_total(tmp_path):
    config = _config("Qwen2.5-7B")
    assert nominal_from_model(os.path.join(MODELS, "Qwen2.5-7B"), config, 7615616512) == \
        (7e9, "size label in 'Qwen2.5-7B'")
    # the Hugging Face cache layout: the label sits two directories up
    snapshot = tmp_path / "models--Qwen--Qwen2.5-14B" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    assert nominal_from_model(str(snapshot / "config.json"), {}, 1)[0] == 14e9
    plain = tmp_path / "runs-7B" / "checkpoint"  # a parent's name is not the model's
    plain.mkdir(parents=True)
    assert nominal_from_model(str(plain), {"_name_or_path": "Qwen/Qwen2.5-3B"}, 1)[0] == 3e9
    n, how = nominal_from_model(str(plain), {}, 7615616512)
    assert n == 7.6e9 and how.startswith("no size label")


def test_round_significant():
    assert round_significant(7615616512) == 7.6e9
    assert round_significant(494032768) == 4.9e8
    assert round_significant(0) == 0.0


# --- compute ------------------------------------------------------------------------------------


def test_paper_acceptance_example_a_f1():
    """paper-method.md §6 A-F1: N=7e9, 4096 sequences x 800 tokens -> 1.376e17 per step;
    105 identical steps -> C = 1.445e19."""
    per_step = step_flops(7e9, 4096 * 800)
    assert per_step == pytest.approx(1.376e17, rel=1e-3)
    assert per_step == 6 * 7e9 * 3_276_800
    acc = StepAccumulator()
    fields = None
    for step in range(106):  # step 0 = evaluation before training
        fields = acc.add("run", step, 0 if step == 0 else 4096 * 800, 512, 7e9)
    assert fields["C"] == pytest.approx(1.445e19, rel=1e-3)
    assert fields["C"] == pytest.approx(105 * 6 * 7e9 * 3_276_800, rel=1e-12)
    assert fields["D"] == 105 * 512
    assert fields["T"] == 105 * 3_276_800


def test_extra_passes_add_2nt_each():
    assert flops_per_token_factor([]) == 6
    assert flops_per_token_factor(["rollout"]) == 8
    assert flops_per_token_factor(["rollout", "reference", "old-logprob"]) == 12
    assert flops_per_token_factor(["rollout", "rollout"]) == 8  # a pass counts once
    assert step_flops(1e9, 100, ["reference"]) == 8 * 1e9 * 100
    with pytest.raises(ValueError, match="unknown pass 'critic'"):
        flops_per_token_factor(["critic"])


def test_step_zero_adds_nothing_even_with_tokens():
    acc = StepAccumulator()
    assert acc.add("r", 0, 1000, 512, 1e9) == {"flops_step": 0.0, "C": 0.0, "D": 0, "T": 0}
    assert acc.add("r", 1, 1000, 512, 1e9) == {"flops_step": 6e12, "C": 6e12, "D": 512, "T": 1000}


def test_runs_are_independent_and_repeated_steps_share_values():
    acc = StepAccumulator()
    acc.add("a", 1, 10, 4, 1.0)
    acc.add("b", 1, 100, 8, 1.0)
    second = acc.add("a", 2, 20, 4, 1.0)
    assert second == {"flops_step": 120.0, "C": 180.0, "D": 8, "T": 30}
    # a second record of step 2 (e.g. another data_source) does not count the step again
    assert acc.add("a", 2, 20, 4, 1.0) == second
    assert acc.add("b", 2, 100, 8, 1.0)["C"] == 1200.0
    with pytest.raises(ValueError, match="step 2 repeats with n_tokens 21, an earlier record"):
        acc.add("a", 2, 21, 4, 1.0)
    with pytest.raises(ValueError, match=r"step 1 comes after step 2 of the same run"):
        acc.add("a", 1, 10, 4, 1.0)


def test_records_without_step_are_consecutive_steps():
    acc = StepAccumulator()
    assert [acc.add(None, None, 5, 1, 2.0)["C"] for _ in range(3)] == [60.0, 120.0, 180.0]


def test_gaps_are_recorded():
    acc = StepAccumulator()
    acc.add("r", 0, 0, 512, 1.0)
    acc.add("r", 1, 1, 512, 1.0)
    acc.add("r", 5, 1, 512, 1.0)
    acc.add("s", 3, 1, 512, 1.0)
    assert acc.gaps == [("r", 1, 5), ("s", None, 3)]


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 10**7), st.integers(1, 1024)),
                max_size=40),
       st.floats(1e6, 1e12))
def test_cumulative_sums_equal_the_sums_of_the_steps(steps, n_params):
    acc = StepAccumulator()
    seen: dict[str, list[tuple[int, int]]] = {}
    for run, tokens, prompts in steps:
        seen.setdefault(run, []).append((tokens, prompts))
        fields = acc.add(run, None, tokens, prompts, n_params)
        history = seen[run]
        assert fields["C"] == pytest.approx(6 * n_params * sum(t for t, _ in history), rel=1e-9)
        assert fields["D"] == sum(p for _, p in history)
        assert fields["T"] == sum(t for t, _ in history)
        assert math.isfinite(fields["C"]) and fields["C"] >= 0


# --- phi (paper-method.md §1.4, check A-F2) ------------------------------------------------------


def test_phi_constant_tokens_per_step_a_f2():
    """With a constant tau tokens per step: phi = 6 * tau / 512, for every size and globally."""
    tau = 4096 * 800
    rows = [(n, s, 6 * n * tau * s, 512 * s) for n in (0.5e9, 7e9, 72e9) for _ in range(3)
            for s in range(0, 106)]
    phi, per_size = estimate_phi(rows)
    assert phi == pytest.approx(6 * tau / 512, rel=1e-12)
    assert set(per_size) == {0.5e9, 7e9, 72e9}


def test_phi_uses_the_last_half_of_pooled_steps_and_medians():
    rng = np.random.default_rng(0)
    rows = []
    for n in (1e9, 3e9):
        for _run in range(3):
            tokens = rng.uniform(1e5, 2e5, size=20)
            compute = np.cumsum(6 * n * tokens)
            rows += [(n, s + 1, compute[s], 512 * (s + 1)) for s in range(20)]
    phi, per_size = estimate_phi(rows)
    expected = {}
    for n in (1e9, 3e9):
        pooled = sorted((r for r in rows if r[0] == n), key=lambda r: r[1])
        tail = pooled[len(pooled) // 2:]  # 60 rows -> the last 30
        expected[n] = float(np.median([c / (n * d) for _, _, c, d in tail]))
    assert per_size == pytest.approx(expected, rel=1e-12)
    assert phi == pytest.approx(np.median(list(expected.values())), rel=1e-12)
    with pytest.raises(ValueError, match="no rows with D > 0"):
        estimate_phi([(1e9, 0, 0.0, 0)])
