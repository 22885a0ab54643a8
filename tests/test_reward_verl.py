"""The VeRL reward plug-in ``rlscale.integrations.verl:compute_score``."""

from __future__ import annotations

import inspect

import pytest

from rlscale.integrations.verl import compute_score


def test_signature_matches_verl_custom_reward_function():
    parameters = list(inspect.signature(compute_score).parameters)
    # naive manager (per response), then batch manager (keywords), then VeRL's extra kwargs
    assert parameters == ["data_source", "solution_str", "ground_truth", "extra_info",
                          "data_sources", "solution_strs", "ground_truths", "extra_infos",
                          "kwargs"]


@pytest.mark.parametrize("data_source, response, gold, score, pred", [
    ("math__math", "\\boxed{2/4}", "\\frac{1}{2}", 1.0, "2/4"),
    ("math__deepscaler_preview", "\\boxed{1.5707963}", "\\frac{\\pi}{2}", 0.0, "1.5707963"),
    ("aime2024", "\\boxed{204.0}", "204", 1.0, "204.0"),
    ("openai/gsm8k", "so \\boxed{18 dollars}", "18", 1.0, "18"),
    ("math__math", "no answer here", "7", 0.0, ""),
])
def test_compute_score_reproduces_the_paper_scorer(data_source, response, gold, score, pred):
    result = compute_score(data_source, response, gold, extra_info={"index": 0})
    assert result == {"score": score, "acc": score == 1.0, "pred": pred}


def test_unknown_data_source_uses_the_math_grader():
    assert compute_score("ifeval__instructions", "\\boxed{3}", 3)["score"] == 1.0


def test_transfer_benchmarks_use_their_graders():
    # structured ground truths arrive as VeRL passes them (dict grid, JSON test program)
    grid = {"header": ["Position", "Pet"], "rows": [["1", "cat"], ["2", "dog"]]}
    answer = '<answer>{"header": ["Position", "Pet"], "rows": [["1", "cat"], ["2", "dog"]]}</answer>'
    assert compute_score("logic__zebra_puzzle_dataset", answer, grid)["score"] == 1.0
    assert compute_score("stem__supergpqa", "so \\boxed{C}", "C")["score"] == 1.0
    assert compute_score("stem__supergpqa", "so \\boxed{3}", "C")["score"] == 0.0
    tests = '{"functional": "def check(f):\\n    assert f(2) == 4\\ncheck(sq)\\n"}'
    good = "```python\ndef sq(x):\n    return x * x\n```"
    assert compute_score("codegen__humaneval", good, tests)["score"] == 1.0
    assert compute_score("codegen__humaneval", good.replace("x * x", "x + 1"), tests)["score"] == 0.0


def test_math_grader_by_environment(monkeypatch):
    monkeypatch.setenv("RLSCALE_GRADER", "math")
    # the math grader has no percent leniency
    assert compute_score("math__math", "\\boxed{0.5}", "50")["score"] == 0.0


def test_a_hung_item_scores_zero_and_the_next_call_works(monkeypatch):
    """A grade that never ends (an injected function that sleeps on purpose, not a SymPy
    expression whose speed depends on the machine) scores 0; the next calls are graded."""
    import functools

    from rlscale.core.grading import bounded
    from rlscale.integrations import verl
    from tests.test_grading_pool import grade_or_hang

    monkeypatch.setattr(bounded, "Grader", functools.partial(bounded.Grader,
                                                             grade_function=grade_or_hang))
    monkeypatch.setenv("RLSCALE_GRADER", "math")
    monkeypatch.setenv("RLSCALE_REWARD_TIMEOUT", "0.5")
    verl._close_all()  # fresh workers, started with the injected function
    try:
        assert compute_score("math__math", "<hang> \\boxed{1}", "1") == {
            "score": 0.0, "acc": False, "pred": "1"}
        assert compute_score("math__math", "\\boxed{2}", "3")["score"] == 0.0
        assert compute_score("math__math", "so \\boxed{4}", "4")["score"] == 1.0
    finally:
        verl._close_all()


def test_never_raises_and_a_batch_is_graded_in_order():
    assert compute_score("math__math", None, object()) == {"score": 0.0, "acc": False, "pred": ""}
    assert compute_score("math__math", "\\boxed{2}", "2", None, reward_router_address=None)[
        "score"] == 1.0  # extra keywords VeRL's naive manager adds are accepted
    batch = compute_score(data_sources=["math__math", "aime2024", "math__math"],
                          solution_strs=["\\boxed{1}", "\\boxed{204}", "none"],
                          ground_truths=["1", "204", "3"], extra_infos=[{}, {}, {}])
    assert [r["score"] for r in batch] == [1.0, 1.0, 0.0]
    assert compute_score(data_sources=["a"], solution_strs=["x", "y"], ground_truths=["1"]) == [
        {"score": 0.0, "acc": False, "pred": ""}] * 2


def test_grader_by_keyword_as_reward_kwargs_pass_it():
    assert compute_score("math__math", "\\boxed{0.5}", "50", grader="math")["score"] == 0.0
    assert compute_score("math__math", "\\boxed{0.5}", "50")["score"] == 1.0  # paper: percent
