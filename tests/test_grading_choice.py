"""The multiple-choice grader: boxed letters, answer phrases, lone letters, never a letter
inside a word."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from rlscale.core.grading.choice import extract_letter, grade

ROWS = [json.loads(line) for line in
        (Path(__file__).parent / "data" / "transfer_sample.jsonl").read_text().splitlines()]
GPQA = [row for row in ROWS if row["data_source"] == "stem__supergpqa"]


def test_extraction_cases():
    cases = {
        "so \\boxed{C}": "C", "\\boxed{(D)}": "D", "\\boxed{\\text{E}}": "E",
        "\\boxed{B: 0.58g}": "B", "The answer is (b).": "B", "Answer: **D**": "D",
        "the correct option is H": "H", "J": "J", "(A)": "A", "Thinking...\nG.": "G",
        "\\boxed{0.42g}": None, "A cat sat.": None, "I think Apple": None,
        "the answer is Apparently nothing": None, "the answer is a mystery": None,
        "<think>answer is C</think> \\boxed{F}": "F",
    }
    for text, letter in cases.items():
        assert extract_letter(text) == letter, text


def test_boxed_wins_over_a_phrase():
    assert extract_letter("the answer is (A), no wait: \\boxed{B}") == "B"


@given(st.from_regex(r"[A-J][a-z]{1,10}", fullmatch=True),
       st.sampled_from(["", "The answer is ", "answer: ", "Option "]))
def test_never_a_letter_inside_a_word(word, prefix):
    assert extract_letter(prefix + word + " is my reasoning") is None


@given(st.sampled_from("ABCDEFGHIJ"), st.sampled_from(["\\boxed{%s}", "answer is (%s)",
                                                        "%s", "The answer is %s.", "(%s)"]))
def test_extracted_letter_property(letter, template):
    assert extract_letter("Let me think step by step.\n" + template % letter) == letter


def test_grades_on_the_paper_rows():
    for row in GPQA:
        gold = row["answer"]
        assert grade(f"... so \\boxed{{{gold}}}", gold).verdict == "correct"
        other = "A" if gold != "A" else "B"
        assert grade(f"... so \\boxed{{{other}}}", gold).verdict == "wrong"
        assert grade("no idea", gold).verdict == "no_answer"
    result = grade("\\boxed{A}", "0.42g")
    assert result.verdict == "error" and "not an option letter" in result.details["reason"]


def test_the_box_is_the_one_extractor_s():
    # an unclosed last box is no box (the earlier, closed one is not taken); \fbox and the
    # brace-less form are boxes, as for the math grader
    assert extract_letter("so \\boxed{A} hmm \\boxed{B") is None
    assert extract_letter("so \\boxed{A} hmm \\boxed{B\nThe answer is (C)") == "C"
    assert extract_letter("\\fbox{C}") == "C"
    assert extract_letter("so \\boxed D") == "D"
