"""Tests of rlscale.core.curation: text normalisation, dedup, MinHash, decontamination,
difficulty, ordering, held-out and data-reuse splits (checked against the paper's files)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from itertools import pairwise

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlscale.core import curation as cur
from tests.conftest import DATA

CURATE_DATA = os.path.join(DATA, "curate")
POOL_12800 = os.path.join(CURATE_DATA, "math__sampled_1_4_12800.parquet")
SUBSET_512 = os.path.join(CURATE_DATA, "math__sampled_1_100_512.parquet")
TEST_500 = os.path.join(CURATE_DATA, "math__full_difficulty_ordered_test_500.parquet")


# --- template and normalisation ------------------------------------------------------------

def test_paper_prefix_is_the_exact_95_characters_of_the_released_prompts():
    assert len(cur.PAPER_PREFIX) == 95
    first = pq.read_table(SUBSET_512).slice(0, 1).to_pylist()[0]["prompt"][0]["content"]
    assert first.startswith(cur.PAPER_PREFIX)
    assert first.endswith(cur.PAPER_BOXED_INSTRUCTION)


def test_apply_paper_template_adds_only_what_is_missing():
    assert cur.apply_paper_template("What is 2+2?") == (
        cur.PAPER_PREFIX + "What is 2+2? Please output the final answer within \\boxed{}.")
    boxed = "Put the answer in \\boxed{} please: 2+2?"
    assert cur.apply_paper_template(boxed) == cur.PAPER_PREFIX + boxed
    once = cur.apply_paper_template("x?")
    assert cur.apply_paper_template(once) == once


def test_strip_template_removes_prefix_and_any_known_instruction():
    aime = (cur.PAPER_PREFIX + "Find $x$. Please solve step by step and put your final answer "
            "within \\boxed{}.")
    assert cur.strip_template(aime) == "Find $x$."
    assert cur.strip_template("Find $x$.") == "Find $x$."


@pytest.mark.parametrize("a, b", [
    ("Find  $x$ if $\\dfrac{x}{2} = 3$.", "FIND x IF \\(\\frac {x}{2}\\,=\\,3\\)."),
    ("Let $f(x)=\\left(x+1\\right)^2$.", "let f(x) = (x + 1)^2."),
    ("Compute $\\tfrac12 \\cdot 4$", "Compute $\\frac12\\cdot4$"),
    ("a\u00a0b", "a b"),  # NFKC folds the no-break space
    ("$S=\\textstyle\\sum_{p=1}^{9} b(p)$", "S = \\sum_{p=1}^{9}b(p)"),
])
def test_normalise_text_equates_trivial_variants(a, b):
    assert cur.normalise_text(a) == cur.normalise_text(b)


def test_normalise_text_hand_computed():
    assert cur.normalise_text("Find  $x$ if $\\dfrac{x}{2} = 3$.") == "find x if\\frac{x}{2}=3."
    assert cur.normalise_text("The   Cat\tsat") == "the cat sat"


@pytest.mark.parametrize("a, b", [
    ("Find x if x+1=2.", "Find x if x+1=3."),
    ("the cat", "thecat"),
    ("\\leftarrow", "arrow"),  # \left is only dropped as a whole command
])
def test_normalise_text_keeps_real_differences(a, b):
    assert cur.normalise_text(a) != cur.normalise_text(b)


@given(st.text())
def test_normalise_text_is_idempotent(text):
    once = cur.normalise_text(text)
    assert cur.normalise_text(once) == once


ascii_math = st.text(alphabet="abcxyzABCXYZ0123456789 +-=()^{}$\\.,", max_size=60)


@given(ascii_math)
def test_normalise_text_ignores_case_and_spacing(text):
    base = cur.normalise_text(text)
    assert cur.normalise_text(text.swapcase()) == base
    assert cur.normalise_text(re.sub(" ", "   ", text)) == base
    assert cur.normalise_text(" \n" + text + "\t ") == base


@given(st.text(min_size=1))
def test_prompt_id_does_not_depend_on_the_paper_template(text):
    templated = cur.apply_paper_template(text)
    assert cur.hashed_prompt_id(templated) == cur.hashed_prompt_id(text)
    assert cur.apply_paper_template(templated) == templated


def test_last_boxed():
    assert cur.last_boxed("so $x=\\boxed{\\frac{1}{2}}$ and \\boxed{3}") == "3"
    assert cur.last_boxed("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert cur.last_boxed("\\boxed{unclosed") is None
    assert cur.last_boxed("none") is None
    # an unclosed last box is no box (the final answer was never written), as the graders read it
    assert cur.last_boxed("\\boxed{1} then \\boxed{2") is None
    from rlscale.core.grading.extraction import last_boxed
    assert cur.last_boxed is last_boxed


# --- MinHash -------------------------------------------------------------------------------

def test_char_ngram_hashes_have_set_semantics():
    hashes = cur.char_ngram_hashes("abcabcabc", 3)
    assert len(set(hashes.tolist())) == len(cur.char_ngrams("abcabcabc", 3)) == 3
    assert cur.char_ngram_hashes("ab", 5).size == 1  # shorter than n: the whole text
    assert cur.char_ngram_hashes("", 5).size == 0


def test_minhash_of_identical_texts_is_identical():
    hasher = cur.MinHasher(num_perm=64)
    text = "Let $n$ be the smallest positive integer such that"
    assert cur.estimate_jaccard(hasher.signature(text), hasher.signature(str(text))) == 1.0


@given(st.text(alphabet="abcde ", min_size=1, max_size=80),
       st.text(alphabet="abcde ", min_size=1, max_size=80))
def test_minhash_estimate_is_close_to_exact_jaccard(a, b):
    hasher = cur.MinHasher(num_perm=256, ngram=3)
    estimate = cur.estimate_jaccard(hasher.signature(a), hasher.signature(b))
    exact = cur.exact_jaccard(a, b, 3)
    # standard error is sqrt(J(1-J)/256) <= 0.031; allow about five of them
    assert abs(estimate - exact) <= 0.16


def test_minhash_estimate_unbiased_on_a_known_overlap():
    # two sets of 400 distinct 4-grams sharing 200: J = 200 / 600 = 1/3
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghij"), 4)) for _ in range(5000)]
    grams = list(dict.fromkeys(words))[:600]
    a = "|".join(grams[:400])
    b = "|".join(grams[200:])
    exact = cur.exact_jaccard(a, b, 4)
    hasher = cur.MinHasher(num_perm=1024, ngram=4)
    estimate = cur.estimate_jaccard(hasher.signature(a), hasher.signature(b))
    assert abs(estimate - exact) < 0.05


def test_minhash_signature_is_stable_across_processes():
    code = ("from rlscale.core.curation import MinHasher; "
            "print(MinHasher(16, 5).signature('stable across runs').tolist())")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")}
    assert len(runs) == 1
    assert runs.pop().strip() == str(cur.MinHasher(16, 5).signature("stable across runs").tolist())


@pytest.mark.parametrize("num_perm, threshold", [(128, 0.9), (128, 0.5), (64, 0.8), (256, 0.95)])
def test_lsh_bands_are_the_most_selective_with_99_percent_recall(num_perm, threshold):
    bands, rows = cur.lsh_bands(num_perm, threshold)
    assert bands * rows <= num_perm
    assert 1 - (1 - threshold ** rows) ** bands >= 0.99
    wider_rows = rows + 1
    assert 1 - (1 - threshold ** wider_rows) ** (num_perm // wider_rows) < 0.99


def test_near_duplicate_index_keeps_first_and_drops_close_copy():
    index = cur.NearDuplicateIndex(0.8, num_perm=128, ngram=5)
    base = ("in triangle abc, ab=13, bc=14 and ca=15. find the area of the triangle and the "
            "radius of its inscribed circle.")
    assert index.check_and_add("a", base) is None
    match = index.check_and_add("b", base.replace("radius", "radii"))
    assert match is not None and match[0] == "a"
    assert match[1] >= 0.8
    assert index.check_and_add("c", "how many primes are below one hundred?") is None


# --- dedup ---------------------------------------------------------------------------------

def test_deduplicator_counts_each_kind():
    dedup = cur.Deduplicator("normalised", near_threshold=0.85, ngram=5)
    text = ("Let $a$ and $b$ be positive reals with $a+b=1$. Find the minimum of "
            "$\\frac{1}{a}+\\frac{4}{b}$ over all such pairs.")
    assert dedup.check("p1", text, "9") is None
    assert dedup.check("p2", text, "9") == ("exact-duplicate", "p1")
    assert dedup.check("p3", text.upper(), "10") == ("normalised-duplicate", "p1")
    near = text.replace("all such pairs", "all such pair")
    assert dedup.check("p4", near, "9") == ("near-duplicate", "p1")
    assert dedup.check("p5", "A different problem: compute 2+2.", "4") is None
    counts = dedup.counts
    assert (counts.exact, counts.normalised, counts.near, counts.answer_conflicts) == (1, 1, 1, 1)


def test_deduplicator_exact_level_keeps_normalised_copies():
    dedup = cur.Deduplicator("exact")
    assert dedup.check("a", "What is 1+1?", "2") is None
    assert dedup.check("b", "what is 1 + 1?", "2") is None
    assert dedup.check("c", "What is 1+1?", "2") == ("exact-duplicate", "a")


def test_deduplicator_ignores_the_paper_template():
    dedup = cur.Deduplicator("normalised")
    assert dedup.check("a", "Compute 7*6.", "42") is None
    assert dedup.check("b", cur.apply_paper_template("Compute 7*6."), "42") == (
        "normalised-duplicate", "a")


# --- decontamination -----------------------------------------------------------------------

def test_contamination_exact_match_across_templates():
    index = cur.ContaminationIndex(ngram=13, overlap=0.5)
    aime = pq.read_table(os.path.join(CURATE_DATA, "aime2024.parquet")).to_pylist()
    for row_number, row in enumerate(aime, 1):
        index.add(row["prompt"][0]["content"], f"aime2024.parquet:{row_number}")
    bare = cur.strip_template(aime[4]["prompt"][0]["content"])
    retyped = "  " + bare.upper().replace(" ", "  ") + " Please output the final answer within \\boxed{}."
    assert index.match(retyped) == ("aime2024.parquet:5", 1.0)
    assert index.match("Compute the number of primes below 100.") is None


def test_contamination_overlap_is_shared_over_smaller_ngram_set():
    # 3-grams of tokens; benchmark "a b c d e f" has 4 grams: abc bcd cde def
    index = cur.ContaminationIndex(ngram=3, overlap=0.5)
    index.add("a b c d e f", "bench:1")
    # train "x a b c d y" has 4 grams: xab abc bcd cdy -> shares abc, bcd: 2 / min(4, 4) = 0.5
    assert index.match("x a b c d y") == ("bench:1", 0.5)
    # train "x a b c y z" shares only abc: 1 / 4 < 0.5
    assert index.match("x a b c y z") is None
    # a benchmark problem inside a longer training problem: 4 / min(10, 4) = 1.0
    assert index.match("p q r s t u a b c d e f") == ("bench:1", 1.0)


def test_contamination_ignores_boilerplate_shared_by_many_benchmark_problems():
    boiler = "the original answer is in the form m over n, please give the value of m plus n"
    index = cur.ContaminationIndex(ngram=5, overlap=0.5)
    for i in range(4):
        index.add(f"problem number {i} asks about {i} apples. {boiler}", f"b:{i}")
    # only the boilerplate is shared: not contaminated
    assert index.match(f"how many ways to tile a 2 by 9 board with dominoes? {boiler}") is None
    # the content is shared: contaminated
    assert index.match(f"problem number 2 asks about 2 apples. {boiler}")[0] == "b:2"


def test_cjk_text_is_tokenised_per_character():
    assert cur.token_ngrams(cur.normalise_text("求 x 的最小值"), 2) == {
        "求 x", "x 的", "的 最", "最 小", "小 值"}


# --- difficulty and order ------------------------------------------------------------------

def test_difficulty_threshold_and_missing():
    assert cur.difficulty(5 / 16) == "easy"
    assert cur.difficulty(4 / 16) == "hard"
    assert cur.difficulty(0.3) == "easy"
    assert cur.difficulty(None) == "hard"
    assert cur.difficulty(0.5, threshold=0.6) == "hard"


def test_curriculum_order_sorts_descending_with_missing_last_and_seeded_ties():
    rates = [0.25, None, 0.5, 0.25, 0.0, 0.25, 1.0, 0.25]
    order = cur.curriculum_order(rates, np.random.default_rng(0))
    assert order[:2] == [6, 2]
    assert sorted(order[2:6]) == [0, 3, 5, 7]
    assert sorted(order[6:]) == [1, 4]  # missing sorts with 0.0
    assert order == cur.curriculum_order(rates, np.random.default_rng(0))
    tie_orders = {tuple(cur.curriculum_order(rates, np.random.default_rng(s))[2:6])
                  for s in range(20)}
    assert len(tie_orders) > 1  # ties really are shuffled by the seed


# --- held-out split ------------------------------------------------------------------------

def _pandas_sample_positions(n_population, n, seed):
    return sorted(pd.DataFrame({"x": range(n_population)}).sample(n, random_state=seed).index)


def test_holdout_easy_hard_matches_pandas_sample_with_seeds_42_and_43():
    easy = [i % 5 == 0 for i in range(1000)]  # 200 easy, 800 hard
    split = cur.holdout_split(easy, 100, "easy-hard", seed=42)
    easy_positions = [i for i in range(1000) if easy[i]]
    hard_positions = [i for i in range(1000) if not easy[i]]
    expected = sorted([easy_positions[i] for i in _pandas_sample_positions(200, 50, 42)]
                      + [hard_positions[i] for i in _pandas_sample_positions(800, 50, 43)])
    assert split.test == expected
    assert (split.n_easy_test, split.n_hard_test) == (50, 50)
    assert sorted(split.test + split.train) == list(range(1000))


def test_holdout_shortfall_is_filled_from_the_other_class():
    easy = [i < 10 for i in range(100)]
    split = cur.holdout_split(easy, 40, "easy-hard", seed=1)
    assert (split.n_easy_test, split.n_hard_test) == (10, 30)
    assert sum(easy[i] for i in split.test) == 10
    assert split.notes and "only 10 easy" in split.notes[0]


def test_holdout_proportional_keeps_the_easy_share():
    easy = [i % 4 == 0 for i in range(1000)]  # 25 % easy
    split = cur.holdout_split(easy, 101, "proportional", seed=3)
    assert split.n_easy_test == 101 * 250 // 1000 == 25
    assert sum(easy[i] for i in split.test) == 25 and len(split.test) == 101


def test_holdout_larger_than_input_is_an_error():
    with pytest.raises(ValueError, match="cannot hold out 5 problems: only 3 remain"):
        cur.holdout_split([True, False, True], 5, "easy-hard", 0)


# --- data-reuse subsets --------------------------------------------------------------------

@pytest.mark.parametrize("tau, easy, hard", [
    (4, 2888, 9912), (5, 2310, 7930), (10, 1155, 3965), (20, 577, 1983), (25, 462, 1586),
    (50, 231, 793), (100, 115, 397)])
def test_reuse_counts_match_the_released_files(tau, easy, hard):
    # spec §2.5: 11,554 easy among the first 51,200 curriculum rows (found from the files)
    assert cur.reuse_counts(11554, 51200, tau) == (easy, hard)


def _pandas_index(path):
    table = pq.read_table(path)
    rates = [row["qwen2.5_7b_pass_rate"] for row in table.column("extra_info").to_pylist()]
    return table.column("__index_level_0__").to_pylist(), rates


@pytest.mark.parametrize("path, tau", [(POOL_12800, 4), (SUBSET_512, 100)])
def test_nested_reuse_reproduces_the_released_subsets_exactly(path, tau):
    # The released files keep pandas' row labels: positions in the 51,200-row pool, whose
    # first 11,554 rows are easy (curriculum order). Rebuild the pool's easy flags and draw.
    positions, rates = _pandas_index(path)
    easy_pool = [i < 11554 for i in range(51200)]
    assert all((r >= 0.3) == (p < 11554) for p, r in zip(positions, rates, strict=True))
    chosen = cur.reuse_subset(easy_pool, tau, 51200, nested=True, seed=42)
    assert chosen == positions


def _pool_rows():
    table = pq.read_table(POOL_12800, columns=["prompt", "extra_info"])
    extra = table.column("extra_info").to_pylist()
    prompts = [p[0]["content"] for p in table.column("prompt").to_pylist()]
    return prompts, [e["qwen2.5_7b_pass_rate"] for e in extra]


TAUS = (2, 4, 5, 10, 20, 25, 50, 100)


@pytest.mark.parametrize("nested", [False, True])
def test_reuse_on_the_released_12800_pool(nested):
    """Issue check: 12800-row pool, budget 12800 -> 6400/3200/.../128 rows with the pool's
    easy share (+-1 row), pass rate non-increasing, no overlap with the held-out file."""
    prompts, rates = _pool_rows()
    easy = [cur.difficulty(r) == "easy" for r in rates]
    pool_share = sum(easy) / len(easy)
    held_out = {row[0]["content"] for row in
                pq.read_table(TEST_500, columns=["prompt"]).column("prompt").to_pylist()}
    subsets = {}
    for tau in TAUS:
        chosen = cur.reuse_subset(easy, tau, 12800, nested=nested, seed=42)
        target = 12800 // tau
        assert len(chosen) == len(set(chosen)) == target
        assert target == {2: 6400, 4: 3200, 5: 2560, 10: 1280, 20: 640, 25: 512, 50: 256,
                          100: 128}[tau]
        n_easy = sum(easy[i] for i in chosen)
        assert abs(n_easy - target * pool_share) <= 1
        chosen_rates = [rates[i] for i in chosen]
        assert all(a >= b for a, b in pairwise(chosen_rates))
        assert not held_out & {prompts[i] for i in chosen}
        subsets[tau] = set(chosen)
    nested_pairs = [subsets[small] <= subsets[big] for big, small in pairwise(TAUS)]
    assert all(nested_pairs) if nested else not any(nested_pairs)


def test_reuse_independent_draws_are_seeded():
    easy = [i % 3 == 0 for i in range(300)]
    assert cur.reuse_subset(easy, 5, seed=7) == cur.reuse_subset(easy, 5, seed=7)
    assert cur.reuse_subset(easy, 5, seed=7) != cur.reuse_subset(easy, 5, seed=8)


def test_reuse_budget_limits_the_pool_to_the_first_rows():
    easy = [i % 2 == 0 for i in range(100)]
    chosen = cur.reuse_subset(easy, 4, budget=40, seed=0)
    assert len(chosen) == 10 and max(chosen) < 40
    assert sum(easy[i] for i in chosen) == 5
    with pytest.raises(ValueError, match="budget 101 is larger"):
        cur.reuse_subset(easy, 4, budget=101)


def test_expand_epochs_replays_the_subset_in_order():
    assert cur.expand_epochs([3, 5], 3) == [(0, 3), (0, 5), (1, 3), (1, 5), (2, 3), (2, 5)]


@pytest.mark.parametrize("rows, batch, epochs, expected", [
    (53904, 512, 1, (105, 105, 53760, 144)),   # spec A-D3: main runs
    (51200 // 4, 512, 4, (25, 100, 51200, 0)),  # reuse tau = 4: 100 steps, D_total = 51,200
    (512, 512, 100, (1, 100, 51200, 0)),        # tau = 100: the same 512 prompts every step
    (100, 512, 1, (0, 0, 0, 100)),
])
def test_training_schedule(rows, batch, epochs, expected):
    plan = cur.training_schedule(rows, batch, epochs)
    assert (plan.steps_per_epoch, plan.total_steps, plan.prompts_seen, plan.never_seen) == expected


def test_mean_by_key():
    assert cur.mean_by_key([("a", 1.0), ("b", 0.0), ("a", 0.0), ("a", 1.0)]) == {
        "a": (2 / 3, 3), "b": (0.0, 1)}


# --- reading records -----------------------------------------------------------------------

def test_resolve_problem_from_a_verl_row():
    row = pq.read_table(SUBSET_512).slice(100, 1).to_pylist()[0]
    problem = cur.resolve_problem(row, "f:101", cur.FieldSpec())
    assert problem.answer == "1024"
    assert problem.prompt_id == "math__merged_deduped_dapo_or1_dataset#10888"
    assert problem.pass_rate == 0.3125 and problem.pass_rate_key == "qwen2.5_7b_pass_rate"
    assert problem.text.startswith(cur.PAPER_PREFIX)
    assert "reward_model" not in problem.passthrough


def test_resolve_problem_field_detection_and_solution_boxed():
    spec = cur.FieldSpec(default_data_source="math__raw")
    problem = cur.resolve_problem(
        {"problem": "What is 2+3?", "solution": "We add: $\\boxed{5}$.", "level": 1}, "f:1", spec)
    assert (problem.text, problem.answer, problem.data_source) == ("What is 2+3?", "5", "math__raw")
    assert problem.passthrough == {"solution": "We add: $\\boxed{5}$.", "level": 1}
    assert problem.prompt_id == cur.hashed_prompt_id("What is 2+3?")
    assert problem.prompt_id == cur.hashed_prompt_id(cur.apply_paper_template("what is 2 + 3?"))
    chat = cur.resolve_problem({"question": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "1+1?"}],
                                "ground_truth": 2}, "f:2", spec)
    assert chat.text == "1+1?" and chat.answer == "2" and isinstance(chat.prompt, list)


@pytest.mark.parametrize("record, spec, message", [
    ({"answer": "1"}, cur.FieldSpec(),
     "missing prompt field (looked for prompt, problem, question); name it with --prompt-field"),
    ({"prompt": "x?"}, cur.FieldSpec(),
     "missing answer field (looked for answer, ground_truth, reward_model.ground_truth, "
     "solution); name it with --answer-field"),
    ({"q": "x?", "answer": "1"}, cur.FieldSpec(prompt_field="q2"),
     "missing prompt field (looked for q2)"),
    ({"prompt": "  ", "answer": "1"}, cur.FieldSpec(), "field 'prompt' is empty"),
    ({"prompt": "x?", "answer": ["1"]}, cur.FieldSpec(),
     "field 'answer' must be a string or a number"),
    ({"prompt": "x?", "answer": "1", "pass_rate": 1.5}, cur.FieldSpec(),
     "pass rate field 'pass_rate' must be in [0, 1], got 1.5"),
    ({"prompt": [{"role": "system", "content": "hi"}], "answer": "1"}, cur.FieldSpec(),
     "field 'prompt' has no non-empty user message"),
])
def test_resolve_problem_errors(record, spec, message):
    with pytest.raises(ValueError) as info:
        cur.resolve_problem(record, "f:1", spec)
    assert str(info.value) == message


def test_nan_pass_rate_is_missing():
    problem = cur.resolve_problem({"prompt": "x?", "answer": "1",
                                   "extra_info": {"qwen2.5_7b_pass_rate": float("nan")}},
                                  "f:1", cur.FieldSpec())
    assert problem.pass_rate is None
