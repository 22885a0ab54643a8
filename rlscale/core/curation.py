"""Curating RL math data the way Tan et al. 2025 did (arXiv 2509.25300, §3.1, App. A.4), and better.

Pure building blocks for ``rlscale curate`` and :func:`rlscale.curate`; nothing here reads
files, prints or parses options.

* Text: :func:`strip_template` removes the paper's instruction prefix/suffix so a problem is
  compared by its own words; :func:`normalise_text` folds case, Unicode forms, LaTeX spacing and
  delimiters and whitespace, so trivially different copies of a problem compare equal.
* Dedup: :class:`Deduplicator` drops exact copies (same prompt string) and normalised copies (same
  :func:`normalise_text`) with a hash set, and optionally near-duplicates with MinHash over
  character n-grams plus LSH banding (:class:`MinHasher`, :class:`NearDuplicateIndex`).
* Decontamination: :class:`ContaminationIndex` flags a problem whose normalised text equals a
  benchmark problem's, or whose token n-grams overlap one benchmark problem's by at least a
  threshold (overlap = shared n-grams / n-grams of the smaller of the two).
* Difficulty (paper §2.4 of the spec): easy iff pass rate >= 0.3; a missing pass rate is hard and
  sorts as 0.0 (the paper filled NaN with 0 before sorting).
* Order: :func:`curriculum_order` (pass rate descending, stable, ties in a seeded random order).
* Splits: :func:`holdout_split` (the paper's 250 easy / 250 hard held-out set, or proportional)
  and :func:`reuse_subset` (data-reuse subsets of ``budget // tau`` unique problems keeping the
  easy share and the curriculum order; ``nested=True`` reproduces the released files exactly).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rlscale.core.errors import OptionError
from rlscale.core.grading.extraction import last_boxed  # the one boxed extractor
from rlscale.core.identity import prompt_key
from rlscale.core.records import MISSING, get_path

# --- the paper's prompt template (spec §2.4, A-D1) ------------------------------------------

#: Prepended to every math prompt in the paper's data (95 characters, trailing space included).
PAPER_PREFIX = ("You are a knowledgeable math assistant. Answer the following questions and think "
                "step by step. ")
#: Appended by the paper's ``unify_math_data`` when a prompt has no ``\\boxed{``.
PAPER_BOXED_INSTRUCTION = "Please output the final answer within \\boxed{}."
#: Instruction sentences found at the end of the paper's train and benchmark prompts; removed by
#: :func:`strip_template` so that a training problem and a benchmark problem compare by content.
KNOWN_INSTRUCTIONS = (
    PAPER_BOXED_INSTRUCTION,
    "Please solve step by step and put your final answer within \\boxed{}.",
    "Please reason step by step, and put your final answer within \\boxed{}.",
    "Let's think step by step and output the final answer within \\boxed{}.",
)

#: Pass rate at or above which a problem is "easy" (paper: 0.3, i.e. >= 5/16 for 16 samples).
EASY_THRESHOLD = 0.3

EASY, HARD = "easy", "hard"


def strip_template(text: str) -> str:
    """The problem text of a prompt: without the paper's prefix and trailing instruction.

    >>> strip_template(PAPER_PREFIX + "What is $1+1$? " + PAPER_BOXED_INSTRUCTION)
    'What is $1+1$?'
    """
    text = text.strip()
    if text.startswith(PAPER_PREFIX.strip()):
        text = text[len(PAPER_PREFIX.strip()):].lstrip()
    changed = True
    while changed:  # a prompt may carry more than one instruction sentence
        changed = False
        for instruction in KNOWN_INSTRUCTIONS:
            if text.endswith(instruction):
                text = text[: -len(instruction)].rstrip()
                changed = True
    return text


def apply_paper_template(text: str) -> str:
    """Format a problem as the paper's training prompts are formatted (``unify_math_data``).

    Adds the prefix and the ``\\boxed{}`` instruction only when missing, so it is idempotent.

    >>> apply_paper_template("What is 2+2?")[95:]
    'What is 2+2? Please output the final answer within \\\\boxed{}.'
    """
    text = text.strip()
    if "\\boxed{" not in text:
        text = f"{text} {PAPER_BOXED_INSTRUCTION}"
    if not text.startswith(PAPER_PREFIX.strip()):
        text = PAPER_PREFIX + text
    return text


def apply_template_text(text: str, template: str) -> str:
    """Put a problem into a user template: every ``{prompt}`` is replaced by the problem text.

    Plain replacement, not ``str.format``, because math prompts are full of braces.
    """
    return template.replace("{prompt}", strip_template(text))


# --- normalisation -------------------------------------------------------------------------

# LaTeX commands that only change spacing; they become one space.
_LATEX_SPACING = re.compile(
    r"\\(?:[,;:! ]|quad(?![a-z])|qquad(?![a-z])|(?:thin|med|thick|en|neg)space(?![a-z])|"
    r"[hv]space\*?\{[^{}]*\})|~")
# Sizing commands that change how delimiters look, not what they mean: dropped.
_LATEX_SIZING = re.compile(
    r"\\(?:left|right|middle|bigg?[lr]?|displaystyle|textstyle|scriptstyle)(?![a-z])")
# Math-mode delimiters: $...$, \(...\), \[...\] all mean "this is math".
_MATH_DELIMITERS = re.compile(r"\\[()\[\]]|\\?\$")
_WHITESPACE = re.compile(r"\s+")
# A space next to anything that is not a word character carries no meaning ("x + y" = "x+y").
_SPACE_AROUND_SYMBOL = re.compile(r" (?=[^\w ])|(?<=[^\w ]) ")
# After a control word a space only ends the word: "\\cdot 4" = "\\cdot4" (not before a letter).
_CONTROL_WORD_SPACE = re.compile(r"(\\[a-z]+) (?![a-z])")


def _normalise_once(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _LATEX_SPACING.sub(" ", text)
    text = _LATEX_SIZING.sub("", text)
    text = _MATH_DELIMITERS.sub("", text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = _SPACE_AROUND_SYMBOL.sub("", text)
    return _CONTROL_WORD_SPACE.sub(lambda match: match.group(1), text)


def normalise_text(text: str) -> str:
    """Fold a problem to a canonical form for duplicate and contamination checks.

    Unicode NFKC and case folding; ``\\dfrac``/``\\tfrac`` -> ``\\frac``; LaTeX spacing
    (``\\,`` ``\\;`` ``\\quad`` ``~`` ...) -> space; ``\\left``/``\\right``/``\\big``/
    ``\\displaystyle`` dropped;
    math delimiters (``$``, ``\\(``, ``\\[``) dropped; whitespace collapsed and removed next to
    symbols. The result is a fixed point (normalising twice changes nothing).

    >>> normalise_text("Find  $x$ if $\\\\dfrac{x}{2} = 3$.")
    'find x if\\\\frac{x}{2}=3.'
    >>> normalise_text("FIND x IF \\\\(\\\\frac {x}{2}\\\\,=\\\\,3\\\\).")
    'find x if\\\\frac{x}{2}=3.'
    """
    for _ in range(8):  # removing one construct can expose another; stop at the fixed point
        folded = _normalise_once(text)
        if folded == text:
            break
        text = folded
    return text


def problem_key(text: str) -> str:
    """Normalised problem text (template stripped): the key for normalised dedup."""
    return normalise_text(strip_template(text))


def hashed_prompt_id(text: str) -> str:
    """A stable id from the normalised problem text (template stripped), e.g. ``p-1a2b...``.

    Stable across runs, machines and prompt templates: the same problem gets the same id.
    """
    digest = hashlib.sha1(problem_key(text).encode("utf-8")).hexdigest()
    return f"p-{digest[:16]}"


# --- MinHash over character n-grams --------------------------------------------------------

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)


def _mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array (wrapping arithmetic): a strong bit mixer."""
    values = values + _GOLDEN
    values = (values ^ (values >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> _U64(27))) * _U64(0x94D049BB133111EB)
    return values ^ (values >> _U64(31))


def char_ngrams(text: str, n: int) -> set[str]:
    """The set of character n-grams of ``text`` (the whole text if shorter than n)."""
    if len(text) <= n:
        return {text} if text else set()
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def char_ngram_hashes(text: str, n: int) -> np.ndarray:
    """64-bit hashes of the character n-grams of ``text`` (same set semantics as char_ngrams).

    Computed from the Unicode code points with numpy, so it is stable across processes (unlike
    Python's salted ``hash``).
    """
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if points.size == 0:
        return np.zeros(0, dtype=np.uint64)
    width = min(n, points.size)
    count = points.size - width + 1
    hashes = np.full(count, _U64(width), dtype=np.uint64)
    for offset in range(width):
        hashes = _mix64(hashes ^ points[offset:offset + count])
    return hashes


class MinHasher:
    """MinHash signatures of character n-gram sets (Broder 1997).

    ``num_perm`` hash functions h_i(x) = a_i x + b_i (mod 2^64, a_i odd) applied to SplitMix64
    n-gram hashes; the signature holds, for each i, the upper 32 bits of the minimum of h_i
    over the text's n-grams. For two texts,
    P[sig_a[i] == sig_b[i]] equals the Jaccard similarity of their n-gram sets, so the fraction
    of equal positions estimates it with standard error sqrt(J(1-J)/num_perm).
    """

    def __init__(self, num_perm: int = 128, ngram: int = 5, seed: int = 1):
        if num_perm < 1 or ngram < 1:
            raise ValueError("num_perm and ngram must be >= 1")
        self.num_perm = num_perm
        self.ngram = ngram
        salts = _mix64(np.arange(2 * num_perm, dtype=np.uint64) + _U64(seed) * _U64(1 << 32))
        self._multipliers = salts[:num_perm] | _U64(1)  # odd: a bijection on 64-bit words
        self._offsets = salts[num_perm:]

    def signature(self, text: str) -> np.ndarray:
        """uint32 signature of length ``num_perm`` (all 0xFFFFFFFF for an empty text)."""
        hashes = char_ngram_hashes(text, self.ngram)
        if hashes.size == 0:
            return np.full(self.num_perm, 0xFFFFFFFF, dtype=np.uint32)
        # multiply-add hashing of already well-mixed n-gram hashes; the order is decided by
        # the high bits, which depend on all bits of the input
        mixed = hashes[:, None] * self._multipliers[None, :] + self._offsets[None, :]
        return (mixed.min(axis=0) >> _U64(32)).astype(np.uint32)


def estimate_jaccard(signature_a: np.ndarray, signature_b: np.ndarray) -> float:
    """Fraction of equal MinHash positions: an unbiased estimate of the Jaccard similarity."""
    return float(np.mean(signature_a == signature_b))


def exact_jaccard(text_a: str, text_b: str, n: int) -> float:
    """Jaccard similarity of the character n-gram sets (1.0 for two empty texts)."""
    a, b = char_ngrams(text_a, n), char_ngrams(text_b, n)
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def lsh_bands(num_perm: int, threshold: float, recall: float = 0.99) -> tuple[int, int]:
    """Choose (bands, rows) with bands * rows <= num_perm for LSH candidate search.

    Takes the most selective banding (largest ``rows``) that still makes a pair of similarity
    ``threshold`` a candidate with probability >= ``recall``: 1 - (1 - t^r)^b >= recall.
    Candidates are then checked on the full signature, so a wide net only costs time.

    >>> lsh_bands(128, 0.9)
    (12, 10)
    """
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if 1.0 - (1.0 - threshold ** rows) ** bands >= recall:
            best = (bands, rows)
    return best


class NearDuplicateIndex:
    """Streaming near-duplicate filter: keep a text unless a kept one is at least ``threshold``
    similar (estimated Jaccard of character n-gram sets)."""

    def __init__(self, threshold: float, num_perm: int = 128, ngram: int = 5, seed: int = 1):
        if not 0.0 < threshold <= 1.0:
            raise ValueError("near-duplicate threshold must be in (0, 1]")
        self.threshold = threshold
        self.hasher = MinHasher(num_perm=num_perm, ngram=ngram, seed=seed)
        self.bands, self.rows = lsh_bands(num_perm, threshold)
        self._buckets: list[dict[bytes, list[int]]] = [{} for _ in range(self.bands)]
        self._signatures: list[np.ndarray] = []
        self._keys: list[str] = []

    def check_and_add(self, key: str, text: str) -> tuple[str, float] | None:
        """Return (key of the kept near-duplicate, similarity) or None after adding ``text``."""
        signature = self.hasher.signature(text)
        band_keys = [signature[b * self.rows:(b + 1) * self.rows].tobytes()
                     for b in range(self.bands)]
        candidates: set[int] = set()
        for bucket, band_key in zip(self._buckets, band_keys, strict=True):
            candidates.update(bucket.get(band_key, ()))
        best: tuple[int, float] | None = None
        for candidate in sorted(candidates):
            similarity = estimate_jaccard(signature, self._signatures[candidate])
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (candidate, similarity)
        if best is not None:
            return self._keys[best[0]], best[1]
        position = len(self._signatures)
        self._signatures.append(signature)
        self._keys.append(key)
        for bucket, band_key in zip(self._buckets, band_keys, strict=True):
            bucket.setdefault(band_key, []).append(position)
        return None


# --- dedup ---------------------------------------------------------------------------------

DEDUP_LEVELS = ("normalised", "exact", "none")


@dataclass
class DedupCounts:
    exact: int = 0
    normalised: int = 0
    near: int = 0
    answer_conflicts: int = 0  # duplicates whose answer differs from the kept copy's


class Deduplicator:
    """Streaming dedup by hash sets: exact prompt string, normalised problem, MinHash near-dup.

    The first occurrence is kept. ``check`` returns None to keep, or (reason, kept prompt_id).
    """

    def __init__(self, level: str = "normalised", near_threshold: float | None = None,
                 num_perm: int = 128, ngram: int = 5):
        if level not in DEDUP_LEVELS:
            raise ValueError(f"dedup level must be one of {DEDUP_LEVELS}")
        self.level = level
        self.counts = DedupCounts()
        self._exact: dict[bytes, tuple[str, str]] = {}
        self._normalised: dict[bytes, tuple[str, str]] = {}
        self._near = (NearDuplicateIndex(near_threshold, num_perm=num_perm, ngram=ngram)
                      if near_threshold is not None else None)

    def check(self, prompt_id: str, prompt_text: str, answer: str,
              key: str | None = None) -> tuple[str, str] | None:
        """``key`` is :func:`problem_key` of the text when the caller has it already."""
        if key is None:
            key = problem_key(prompt_text)
        if self.level != "none":
            exact_key = hashlib.blake2b(prompt_text.encode("utf-8"), digest_size=16).digest()
            kept = self._exact.get(exact_key)
            if kept is not None:
                return self._duplicate("exact", kept, answer)
            if self.level == "normalised":
                norm_key = hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()
                kept = self._normalised.get(norm_key)
                if kept is not None:
                    return self._duplicate("normalised", kept, answer)
            if self._near is not None:
                match = self._near.check_and_add(prompt_id, key)
                if match is not None:
                    self.counts.near += 1
                    return "near-duplicate", match[0]
            self._exact[exact_key] = (prompt_id, answer)
            if self.level == "normalised":
                self._normalised[norm_key] = (prompt_id, answer)
        elif self._near is not None:
            match = self._near.check_and_add(prompt_id, key)
            if match is not None:
                self.counts.near += 1
                return "near-duplicate", match[0]
        return None

    def _duplicate(self, kind: str, kept: tuple[str, str], answer: str) -> tuple[str, str]:
        setattr(self.counts, kind, getattr(self.counts, kind) + 1)
        if normalise_text(kept[1]) != normalise_text(answer):
            self.counts.answer_conflicts += 1
        return f"{kind}-duplicate", kept[0]


# --- decontamination -----------------------------------------------------------------------

# CJK ideographs, kana and hangul are written without spaces: one token per character there,
# else a Chinese problem would be a handful of "words" and its n-grams mostly boilerplate.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+|[^\\w\\s]")


def token_ngrams(normalised: str, n: int) -> set[str]:
    """Token n-grams (words and single symbols) of normalised text; the whole text if short."""
    tokens = _TOKEN.findall(normalised)
    if not tokens:
        return set()
    if len(tokens) <= n:
        return {" ".join(tokens)}
    return {" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


class ContaminationIndex:
    """Benchmark problems to keep out of training data.

    A problem is contaminated when its normalised text equals a benchmark problem's, or when
    it shares at least ``overlap`` of the token ``ngram``-grams of one benchmark problem,
    measured against the smaller of the two n-gram sets (so a benchmark problem pasted into a
    longer training problem is caught, and vice versa). n-grams found in at least
    max(3, ``common_fraction`` x benchmark size) benchmark problems are template text and are
    left out of both sets.
    """

    def __init__(self, ngram: int = 13, overlap: float = 0.5, common_fraction: float = 0.01):
        if ngram < 1:
            raise ValueError("n-gram length must be >= 1")
        if not 0.0 < overlap <= 1.0:
            raise ValueError("overlap threshold must be in (0, 1]")
        self.ngram = ngram
        self.overlap = overlap
        self._exact: dict[str, str] = {}
        self._grams: dict[str, list[int]] = {}
        self._sizes: list[int] = []
        self._labels: list[str] = []
        self._common_fraction = common_fraction
        self._common: set[str] | None = None

    def __len__(self) -> int:
        return len(self._labels)

    def add(self, prompt_text: str, label: str) -> None:
        """Add a benchmark problem; ``label`` (e.g. ``file:line``) is reported on a match."""
        key = problem_key(prompt_text)
        self._exact.setdefault(key, label)
        grams = token_ngrams(key, self.ngram)
        position = len(self._labels)
        self._labels.append(label)
        self._sizes.append(len(grams))
        for gram in grams:
            self._grams.setdefault(gram, []).append(position)
        self._common = None

    def _freeze(self) -> set[str]:
        """n-grams shared by many benchmark problems are boilerplate, not content (e.g.
        "the answer is in the form m/n, give m + n"): they are ignored for overlap."""
        if self._common is None:
            limit = max(3, math.ceil(self._common_fraction * len(self._labels)))
            self._common = {gram for gram, owners in self._grams.items() if len(owners) >= limit}
            self._sizes = [0] * len(self._labels)
            for gram, owners in self._grams.items():
                if gram not in self._common:
                    for position in owners:
                        self._sizes[position] += 1
        return self._common

    def match(self, prompt_text: str, key: str | None = None) -> tuple[str, float] | None:
        """(label of the benchmark problem, overlap) if contaminated, else None."""
        if key is None:
            key = problem_key(prompt_text)
        if key in self._exact:
            return self._exact[key], 1.0
        common = self._freeze()
        grams = token_ngrams(key, self.ngram) - common
        if not grams:
            return None
        shared: dict[int, int] = {}
        for gram in grams:
            for position in self._grams.get(gram, ()):
                shared[position] = shared.get(position, 0) + 1
        best: tuple[str, float] | None = None
        for position, count in sorted(shared.items()):
            fraction = count / min(len(grams), self._sizes[position])
            if fraction >= self.overlap and (best is None or fraction > best[1]):
                best = (self._labels[position], fraction)
        return best


# --- difficulty, order and splits ----------------------------------------------------------

def difficulty(pass_rate: float | None, threshold: float = EASY_THRESHOLD) -> str:
    """``easy`` if pass_rate >= threshold, else ``hard`` (a missing pass rate is hard).

    >>> difficulty(0.3125), difficulty(0.25), difficulty(None)
    ('easy', 'hard', 'hard')
    """
    return EASY if pass_rate is not None and pass_rate >= threshold else HARD


def sort_value(pass_rate: float | None) -> float:
    """Pass rate used for ordering and filtering: missing counts as 0.0 (the paper's fillna)."""
    return 0.0 if pass_rate is None else pass_rate


def curriculum_order(pass_rates: Sequence[float | None], rng: np.random.Generator) -> list[int]:
    """Indices in curriculum order: pass rate descending (easy -> hard), missing as 0.0.

    The paper sorted with pandas' unstable quicksort, so its tie order is arbitrary. Here ties
    are put in a seeded random order first and then a stable sort is applied: reproducible for
    a seed, and no bias from input order.
    """
    shuffled = rng.permutation(len(pass_rates))
    keys = np.array([-sort_value(pass_rates[i]) for i in shuffled], dtype=np.float64)
    return [int(shuffled[i]) for i in np.argsort(keys, kind="stable")]


def _paper_sample(n_population: int, n: int, seed: int) -> np.ndarray:
    """Positions chosen by pandas' ``DataFrame.sample(n, random_state=seed)``.

    pandas draws ``RandomState(seed).choice(N, n, replace=False)``, which is the first n entries
    of ``RandomState(seed).permutation(N)``. Using the same draw lets ``seed=42`` reproduce the
    paper's files, and makes samples for different n nested (prefixes of one permutation).
    """
    return np.random.RandomState(seed).permutation(n_population)[:n]


STRATIFY_MODES = ("easy-hard", "proportional")


@dataclass
class Split:
    test: list[int]
    train: list[int]
    n_easy_test: int = 0
    n_hard_test: int = 0
    notes: list[str] = field(default_factory=list)


def holdout_split(easy: Sequence[bool], n_holdout: int, stratify: str, seed: int) -> Split:
    """Split positions 0..len(easy)-1 into a held-out set and the rest, both in input order.

    ``easy-hard`` (the paper's ``stratified_test_split``): n//2 easy and the rest hard, a
    shortfall in one class filled from the other. ``proportional``: the easy count is
    floor(n * easy share), so the held-out set keeps the input's difficulty mix. Easy problems
    are drawn as pandas ``sample(random_state=seed)`` would, hard ones with ``seed + 1`` (the
    paper used 42 and 43).
    """
    if stratify not in STRATIFY_MODES:
        raise ValueError(f"stratify must be one of {STRATIFY_MODES}")
    total = len(easy)
    if n_holdout > total:
        raise ValueError(f"cannot hold out {n_holdout} problems: only {total} remain")
    easy_positions = [i for i, is_easy in enumerate(easy) if is_easy]
    hard_positions = [i for i, is_easy in enumerate(easy) if not is_easy]
    notes = []
    if stratify == "easy-hard":
        want_easy = n_holdout // 2
    else:
        want_easy = n_holdout * len(easy_positions) // total if total else 0
    want_hard = n_holdout - want_easy
    if want_easy > len(easy_positions):
        notes.append(f"only {len(easy_positions)} easy problems; "
                     f"{want_easy - len(easy_positions)} more hard ones held out")
        want_easy, want_hard = len(easy_positions), n_holdout - len(easy_positions)
    elif want_hard > len(hard_positions):
        notes.append(f"only {len(hard_positions)} hard problems; "
                     f"{want_hard - len(hard_positions)} more easy ones held out")
        want_hard, want_easy = len(hard_positions), n_holdout - len(hard_positions)
    chosen = {easy_positions[i] for i in _paper_sample(len(easy_positions), want_easy, seed)}
    chosen |= {hard_positions[i] for i in _paper_sample(len(hard_positions), want_hard, seed + 1)}
    test = sorted(chosen)
    train = [i for i in range(total) if i not in chosen]
    return Split(test=test, train=train, n_easy_test=want_easy, n_hard_test=want_hard,
                 notes=notes)


def reuse_counts(n_pool_easy: int, budget: int, tau: int) -> tuple[int, int]:
    """(easy, hard) counts of a data-reuse subset: budget // tau problems, easy share kept.

    easy = floor(target * n_pool_easy / budget) as in the paper's ``int(target * p_easy)``
    (computed exactly in integers, so no float rounding can lose a row).

    >>> reuse_counts(11554, 51200, 4)   # the released math__sampled_1_4_12800: 2888 easy
    (2888, 9912)
    """
    if tau < 1:
        raise ValueError("tau must be >= 1")
    target = budget // tau
    n_easy = target * n_pool_easy // budget if budget else 0
    return n_easy, target - n_easy


def reuse_subset(easy: Sequence[bool], tau: int, budget: int | None = None, *,
                 nested: bool = False, seed: int = 42) -> list[int]:
    """Positions (ascending, so the curriculum order is kept) of a data-reuse subset.

    The pool is the first ``budget`` positions (all when None). ``budget // tau`` unique
    problems are drawn, easy and hard separately, keeping the pool's easy share (paper
    App. A.4, spec §2.5). Trained for ``tau`` epochs without shuffling, the subset gives the
    same total of ``budget`` prompts as one pass over the pool.

    ``nested=True`` reproduces the released files: easy by pandas ``sample(random_state=seed)``,
    hard with ``seed + 1``, so a smaller subset is a subset of every larger one (a prefix of one
    permutation). ``nested=False`` (default, what the paper's text describes) draws each tau
    independently from a generator seeded by (seed, tau).
    """
    pool = len(easy) if budget is None else budget
    if pool > len(easy):
        raise ValueError(f"budget {pool} is larger than the {len(easy)} problems available")
    easy_positions = [i for i in range(pool) if easy[i]]
    hard_positions = [i for i in range(pool) if not easy[i]]
    n_easy, n_hard = reuse_counts(len(easy_positions), pool, tau)
    if nested:
        picked_easy = _paper_sample(len(easy_positions), n_easy, seed)
        picked_hard = _paper_sample(len(hard_positions), n_hard, seed + 1)
    else:
        rng = np.random.default_rng([seed, tau])
        picked_easy = rng.choice(len(easy_positions), size=n_easy, replace=False)
        picked_hard = rng.choice(len(hard_positions), size=n_hard, replace=False)
    chosen = [easy_positions[i] for i in picked_easy] + [hard_positions[i] for i in picked_hard]
    return sorted(chosen)


def expand_epochs(positions: Sequence[int], tau: int) -> list[tuple[int, int]]:
    """(epoch, position) pairs: the subset replayed ``tau`` times in the same order.

    This is what the paper's trainer consumed (``total_epochs = tau``, ``shuffle=False``).
    """
    return [(epoch, position) for epoch in range(tau) for position in positions]


def mean_by_key(pairs: Iterable[tuple[str, float]]) -> dict[str, tuple[float, int]]:
    """Mean value and count per key, e.g. the pass rate of each prompt from scored rollouts."""
    sums: dict[str, list[float]] = {}
    for key, value in pairs:
        entry = sums.setdefault(key, [0.0, 0])
        entry[0] += value
        entry[1] += 1
    return {key: (total / count, int(count)) for key, (total, count) in sums.items()}


# --- records: reading problems from heterogeneous inputs -----------------------------------

PROMPT_FIELDS = ("prompt", "problem", "question")
ANSWER_FIELDS = ("answer", "ground_truth", "reward_model.ground_truth", "solution")
#: Looked up (top level, then ``extra_info``) when no pass-rate field is named: rlscale's own
#: field first (so curated output can be curated again), then the paper's.
DEFAULT_PASS_RATE_FIELDS = ("pass_rate", "qwen2.5_7b_pass_rate")
def _drop_path(record: dict, path: str) -> None:
    if path in record:
        del record[path]
        return
    head, _, tail = path.partition(".")
    inner = record.get(head)
    if isinstance(inner, dict) and tail in inner:
        inner = dict(inner)
        del inner[tail]
        record[head] = inner


def _field_names(option: str | None, defaults: Sequence[str]) -> list[str]:
    """Names to try in order: the option's comma-separated list, else the defaults."""
    if option:
        return [name.strip() for name in option.split(",") if name.strip()]
    return list(defaults)


@dataclass
class FieldSpec:
    """Which input fields hold what: comma-separated names tried in order (None: the usual
    names). Dotted names reach into nested objects (``reward_model.ground_truth``)."""

    prompt_field: str | None = None
    answer_field: str | None = None
    pass_rate_field: str | None = None
    default_data_source: str = "math"
    answer_required: bool = True


@dataclass
class Problem:
    """One problem on its way through curation; ``passthrough`` holds the fields we do not own."""

    prompt: str | list
    text: str  # content of the (last) user message
    answer: str
    data_source: str
    prompt_id: str  # as written out (a string); renamed with ~N when repeated
    where: str
    passthrough: dict
    id_key: str  # the input's prompt id as rlscale.core.identity.prompt_key: for pass rates
    extra_info: dict | None = None
    ability: str = "math"
    style: str = "rule"
    pass_rate: float | None = None
    pass_rate_key: str | None = None  # the extra_info key it came from, if any
    pass_rate_n: int | None = None
    difficulty: str = HARD
    rank: int = 0
    _key: str | None = None

    @property
    def key(self) -> str:
        """Normalised problem text (computed once)."""
        if self._key is None:
            self._key = problem_key(self.text)
        return self._key


def _prompt_text(value: object, name: str) -> tuple[str | list, str]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"field '{name}' is empty")
        return value, value
    if isinstance(value, list) and value:
        messages = []
        for message in value:
            if not (isinstance(message, dict) and isinstance(message.get("content"), str)
                    and isinstance(message.get("role"), str)):
                raise ValueError(f"field '{name}' must be a string or a list of "
                                 "{role, content} messages")
            messages.append(dict(message))
        users = [m["content"] for m in messages if m["role"] == "user"]
        if not users or not users[-1].strip():
            raise ValueError(f"field '{name}' has no non-empty user message")
        if len(messages) == 1:
            return messages[0]["content"], messages[0]["content"]
        return messages, users[-1]
    raise ValueError(f"field '{name}' must be a string or a list of {{role, content}} messages")


def _answer_text(value: object, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"field '{name}' must be a string or a number")
    text = value if isinstance(value, str) else str(value)  # kept verbatim: the grader decides
    if not text.strip():
        raise ValueError(f"field '{name}' is empty")
    return text


def _pass_rate_value(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"pass rate field '{name}' must be a number in [0, 1] or null")
    if value != value:  # NaN: missing, as in the paper's parquet files
        return None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"pass rate field '{name}' must be in [0, 1], got {value}")
    return float(value)


def _find_pass_rate(record: dict, extra: dict | None,
                    names: Sequence[str]) -> tuple[float | None, str | None, str | None]:
    """(value, extra_info key or None, top-level key or None) of the first field present."""
    for name in names:
        if name in record:
            return _pass_rate_value(record[name], name), None, name
        if extra is not None and name in extra:
            return _pass_rate_value(extra[name], name), name, None
        if "." in name:
            value = get_path(record, name)
            if value is not MISSING:
                head, _, tail = name.partition(".")
                in_extra = head == "extra_info" and "." not in tail
                return _pass_rate_value(value, name), tail if in_extra else None, None
    return None, None, None


def resolve_problem(record: dict, where: str, spec: FieldSpec) -> Problem:
    """Read one input record (JSONL object or VeRL parquet row) into a :class:`Problem`.

    Raises ValueError with a user-facing message when a required field is missing or bad.
    """
    rest = dict(record)
    prompt_names = _field_names(spec.prompt_field, PROMPT_FIELDS)
    for name in prompt_names:
        value = get_path(rest, name)
        if value is not MISSING:
            prompt, text = _prompt_text(value, name)
            _drop_path(rest, name)
            break
    else:
        hint = "" if spec.prompt_field else "; name it with --prompt-field"
        raise ValueError(f"missing prompt field (looked for {', '.join(prompt_names)}){hint}")

    answer = ""
    answer_names = _field_names(spec.answer_field, ANSWER_FIELDS)
    for name in answer_names:
        value = get_path(rest, name)
        if value is MISSING or (value is None and not spec.answer_field):
            continue
        answer = _answer_text(value, name)
        boxed = last_boxed(answer) if name.rsplit(".", 1)[-1] == "solution" else None
        if boxed:
            answer = boxed  # a worked solution: its final boxed answer is the ground truth
        else:
            _drop_path(rest, name)
        break
    else:
        if spec.answer_required:
            hint = "" if spec.answer_field else "; name it with --answer-field"
            raise ValueError(f"missing answer field (looked for {', '.join(answer_names)}){hint}")

    style = "rule"
    reward_model = rest.pop("reward_model", None)
    if isinstance(reward_model, dict):
        style = str(reward_model.get("style") or "rule")
        leftover = {k: v for k, v in reward_model.items() if k not in ("ground_truth", "style")}
        if leftover:
            rest["reward_model"] = leftover
    elif reward_model is not None:
        rest["reward_model"] = reward_model

    extra = rest.get("extra_info")
    extra = dict(extra) if isinstance(extra, dict) else None
    data_source = rest.pop("data_source", None)
    if data_source is None:
        data_source = spec.default_data_source
    elif not isinstance(data_source, str) or not data_source:
        raise ValueError("field 'data_source' must be a non-empty string")
    ability = rest.pop("ability", None) or "math"
    if not isinstance(ability, str):
        raise ValueError("field 'ability' must be a string")

    prompt_id = rest.pop("prompt_id", None)
    if prompt_id is None and extra is not None:
        prompt_id = extra.get("prompt_id")
        if prompt_id is None and isinstance(extra.get("index"), int):
            prompt_id = f"{data_source}#{extra['index']}"
    if prompt_id is None:
        prompt_id = hashed_prompt_id(text)
    elif isinstance(prompt_id, bool) or not isinstance(prompt_id, (str, int)):
        raise ValueError("field 'prompt_id' must be a string or an integer")

    names = _field_names(spec.pass_rate_field, DEFAULT_PASS_RATE_FIELDS)
    pass_rate, extra_key, top_key = _find_pass_rate(rest, extra, names)
    for owned in ("pass_rate", "difficulty", "split", "pass_rate_n", top_key):
        if owned is not None:
            rest.pop(owned, None)
    return Problem(prompt=prompt, text=text, answer=answer, data_source=data_source,
                   prompt_id=str(prompt_id), where=where, passthrough=rest,
                   id_key=prompt_key(prompt_id), extra_info=extra,
                   ability=ability, style=style, pass_rate=pass_rate, pass_rate_key=extra_key)


def default_data_source(source: str) -> str:
    """``math__<file stem>`` for records read from ``source`` (the paper's naming: VeRL routes
    math__* to the math scorer); ``math`` for stdin and for records not read from a file.

    >>> default_data_source("data/raw.jsonl.gz"), default_data_source("math__a.parquet")
    ('math__raw', 'math__a')
    """
    if source in ("-", "<stdin>", "<records>"):
        return "math"
    stem = os.path.basename(source)
    for suffix in (".gz", ".jsonl", ".json", ".parquet", ".pq", ".csv", ".tsv", ".tab"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem if stem.startswith("math__") else f"math__{stem}"


# --- the curation pipeline -----------------------------------------------------------------

ORDERS = ("curriculum", "random", "keep")
TEMPLATES = ("none", "paper", "bare")


@dataclass
class CurateOptions:
    dedup: str = "normalised"
    near_dup: float | None = None
    near_dup_ngram: int = 5
    num_perm: int = 128
    min_pass_rate: float | None = None
    max_pass_rate: float | None = None
    easy_threshold: float = EASY_THRESHOLD
    order: str = "curriculum"
    holdout: int = 0
    stratify: str = "easy-hard"
    reuse: int | None = None
    budget: int | None = None
    nested: bool = False
    expand: bool = False
    template: str = "none"  # one of TEMPLATES, or "file" with template_text
    template_text: str | None = None  # for a template read from a file
    seed: int = 42
    exclude_ngram: int = 13
    exclude_overlap: float = 0.5

    def check(self) -> None:
        """Refuse a bad value with an :class:`OptionError` naming its parameter."""
        for name, allowed in (("order", ORDERS), ("stratify", STRATIFY_MODES),
                              ("dedup", DEDUP_LEVELS)):
            value = getattr(self, name)
            if value not in allowed:
                raise OptionError(name, f"must be one of {', '.join(allowed)}, got {value!r}")
        for name, low_open in (("near_dup", True), ("exclude_overlap", True),
                               ("easy_threshold", False), ("min_pass_rate", False),
                               ("max_pass_rate", False)):
            value = getattr(self, name)
            if value is not None and not (0.0 < value <= 1.0 if low_open
                                          else 0.0 <= value <= 1.0):
                raise OptionError(name, f"must be in {'(0' if low_open else '[0'}, 1]; "
                                  f"got {value}")
        for name in ("near_dup_ngram", "num_perm", "exclude_ngram"):
            if getattr(self, name) < 1:
                raise OptionError(name, f"must be >= 1; got {getattr(self, name)}")
        if self.min_pass_rate is not None and self.max_pass_rate is not None \
                and self.min_pass_rate > self.max_pass_rate:
            raise OptionError("min_pass_rate", "is larger than max_pass_rate")
        if self.holdout < 0:
            raise OptionError("holdout", f"must be >= 0; got {self.holdout}")
        if self.reuse is None and (self.budget is not None or self.expand or self.nested):
            raise OptionError("reuse", "is needed by budget, expand and nested")
        for name in ("reuse", "budget"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise OptionError(name, f"must be >= 1; got {getattr(self, name)}")
        if self.template not in TEMPLATES and (self.template != "file"
                                               or self.template_text is None):
            raise OptionError("template", f"must be one of {', '.join(TEMPLATES)} or 'file' "
                              f"with template_text, got {self.template!r}")

    @property
    def streams(self) -> bool:
        """Whether records can be written as they are read (no step needs all input)."""
        return self.order == "keep" and not self.holdout and self.reuse is None


@dataclass
class CurateStats:
    read: int = 0
    kept: int = 0
    contaminated: int = 0
    below_min: int = 0
    above_max: int = 0
    missing_pass_rate: int = 0
    renamed_ids: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class CurateResult:
    train: list[tuple[Problem, int | None]]  # (problem, epoch) in output order
    test: list[Problem]


class Curator:
    """Runs the per-record screens (streaming) and the whole-set steps (order, splits).

    Per record, in this order: exact / normalised / near-duplicate removal, decontamination,
    pass-rate lookup and filters. Then, on the survivors: order, held-out split, reuse subset.
    """

    def __init__(self, options: CurateOptions, contamination: ContaminationIndex | None = None,
                 scored_pass_rates: dict[str, tuple[float, int]] | None = None):
        """``scored_pass_rates``: (pass rate, samples) by :func:`~rlscale.core.identity.prompt_key`
        of the prompt id; when given, it replaces the records' own pass-rate fields."""
        self.options = options
        self.contamination = contamination
        self.scored = scored_pass_rates
        self.dedup = Deduplicator(options.dedup, options.near_dup, num_perm=options.num_perm,
                                  ngram=options.near_dup_ngram)
        self.stats = CurateStats()
        self._ids: set[str] = set()

    def screen(self, problem: Problem) -> tuple[str, str] | None:
        """None to keep (difficulty filled in), else (drop reason, detail)."""
        options = self.options
        self.stats.read += 1
        verdict = self.dedup.check(problem.prompt_id, problem.text, problem.answer,
                                   problem.key)
        if verdict is not None:
            return verdict
        if self.contamination is not None:
            match = self.contamination.match(problem.text, problem.key)
            if match is not None:
                self.stats.contaminated += 1
                return "contaminated", f"{match[0]} (overlap {match[1]:.2f})"
        if self.scored is not None:
            problem.pass_rate, problem.pass_rate_n = self.scored.get(problem.id_key,
                                                                     (None, None))
            problem.pass_rate_key = None
        if problem.pass_rate is None:
            self.stats.missing_pass_rate += 1
        value = sort_value(problem.pass_rate)
        if options.min_pass_rate is not None and value < options.min_pass_rate:
            self.stats.below_min += 1
            return "pass-rate", f"{problem.pass_rate} < --min-pass-rate {options.min_pass_rate}"
        if options.max_pass_rate is not None and value > options.max_pass_rate:
            self.stats.above_max += 1
            return "pass-rate", f"{problem.pass_rate} > --max-pass-rate {options.max_pass_rate}"
        problem.difficulty = difficulty(problem.pass_rate, options.easy_threshold)
        if problem.prompt_id in self._ids:
            # distinct problems with one id (e.g. dedup off, or two files reusing an index)
            suffix = 2
            while f"{problem.prompt_id}~{suffix}" in self._ids:
                suffix += 1
            problem.prompt_id = f"{problem.prompt_id}~{suffix}"
            self.stats.renamed_ids += 1
        self._ids.add(problem.prompt_id)
        problem.rank = self.stats.kept
        self.stats.kept += 1
        return None

    def finish(self, problems: list[Problem]) -> CurateResult:
        """Order, hold out and subsample the kept problems (needs them all)."""
        options = self.options
        rng = np.random.default_rng(options.seed)
        if options.order == "curriculum":
            order = curriculum_order([p.pass_rate for p in problems], rng)
        elif options.order == "random":
            order = [int(i) for i in rng.permutation(len(problems))]
        elif options.order == "keep":
            order = list(range(len(problems)))
        else:
            raise ValueError(f"order must be one of {ORDERS}")
        ordered = [problems[i] for i in order]
        for rank, problem in enumerate(ordered):
            problem.rank = rank  # the paper's extra_info.index: rank in the ordered full set
        test: list[Problem] = []
        train = ordered
        if options.holdout:
            split = holdout_split([p.difficulty == EASY for p in ordered], options.holdout,
                                  options.stratify, options.seed)
            self.stats.notes.extend(split.notes)
            test = [ordered[i] for i in split.test]
            train = [ordered[i] for i in split.train]
        if options.reuse is None:
            return CurateResult(train=[(p, None) for p in train], test=test)
        budget = len(train) if options.budget is None else options.budget
        if budget > len(train):  # known only once the input is read
            raise OptionError("budget", f"{budget} is larger than the {len(train)} training "
                              "problems left after dedup, filters and the held-out split")
        positions = reuse_subset([p.difficulty == EASY for p in train], options.reuse, budget,
                                 nested=options.nested, seed=options.seed)
        if options.expand:
            rows = [(train[i], epoch) for epoch, i in expand_epochs(positions, options.reuse)]
        else:
            rows = [(train[i], None) for i in positions]
        return CurateResult(train=rows, test=test)


def summary(curator: Curator, n_train: int, n_easy: int, test: Sequence[Problem],
            held_out_to: str | None = None) -> str:
    """One line on what a run did: read, dropped (why), training rows (easy share), held out
    (to ``held_out_to``, when given)."""
    stats, dedup = curator.stats, curator.dedup.counts
    parts = [f"read {stats.read}",
             f"dropped {dedup.exact} exact + {dedup.normalised} normalised + {dedup.near} near "
             f"duplicate(s) ({dedup.answer_conflicts} with a different answer)"]
    if curator.contamination is not None:
        parts.append(f"{stats.contaminated} contaminated")
    if stats.below_min or stats.above_max:
        parts.append(f"{stats.below_min + stats.above_max} outside the pass-rate range")
    parts.append(f"{stats.missing_pass_rate} without a pass rate")
    if stats.renamed_ids:
        parts.append(f"{stats.renamed_ids} repeated prompt_id(s) renamed with ~N")
    share = f"{n_easy / n_train:.4f}" if n_train else "n/a"
    parts.append(f"wrote {n_train} training row(s) ({n_easy} easy, {n_train - n_easy} hard, "
                 f"easy share {share})")
    if held_out_to:
        test_easy = sum(p.difficulty == EASY for p in test)
        parts.append(f"{len(test)} held out to {held_out_to} ({test_easy} easy, "
                     f"{len(test) - test_easy} hard)")
    return "; ".join(parts)


def format_prompt(problem: Problem, options: CurateOptions) -> str | list:
    """The output prompt with the chosen template applied to the (last) user message."""
    if options.template == "none":
        return problem.prompt
    if options.template == "paper":
        text = apply_paper_template(strip_template(problem.text))
    elif options.template == "bare":
        text = strip_template(problem.text)
    else:
        text = apply_template_text(problem.text, options.template_text or "{prompt}")
    if isinstance(problem.prompt, str):
        return text
    messages = [dict(m) for m in problem.prompt]
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    messages[last_user]["content"] = text
    return messages


def output_record(problem: Problem, options: CurateOptions, split: str,
                  epoch: int | None = None) -> dict:
    """The JSONL record: rlscale's fields first, then every pass-through field."""
    record = {
        "prompt_id": problem.prompt_id,
        "prompt": format_prompt(problem, options),
        "answer": problem.answer,
        "data_source": problem.data_source,
        "pass_rate": problem.pass_rate,
        "difficulty": problem.difficulty,
        "split": split,
    }
    if problem.pass_rate_n is not None:
        record["pass_rate_n"] = problem.pass_rate_n
    if epoch is not None:
        record["epoch"] = epoch
        record["reuse_tau"] = options.reuse
    passthrough = dict(problem.passthrough)
    passthrough.pop("ability", None)
    if problem.ability != "math":
        record["ability"] = problem.ability
    if problem.style != "rule":
        record["reward_style"] = problem.style
    extra = passthrough.get("extra_info")
    if isinstance(extra, dict) and "split" in extra:
        passthrough["extra_info"] = {**extra, "split": split}  # the input's split is stale
    for key, value in passthrough.items():
        record.setdefault(key, value)
    return record


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def verl_fields(problem: Problem, options: CurateOptions, split: str,
                epoch: int | None = None) -> dict:
    """The five VeRL columns for a problem (see :mod:`rlscale.io.verl_parquet`).

    ``extra_info`` keeps the input's keys; ``index`` is the input's or, when absent, the rank
    in the ordered full set (as the paper assigned it); ``pass_rate`` is added when no
    ``extra_info`` pass-rate field already holds the pass rate used; ``prompt_id`` is stored when it cannot be derived
    from ``data_source#index``; scalar pass-through fields are kept; ``split`` comes last.
    """
    from rlscale.io.verl_parquet import verl_row

    source = dict(problem.extra_info or {})
    index = source.pop("index", None)
    if not isinstance(index, int) or isinstance(index, bool):
        index = problem.rank
    source.pop("split", None)
    source.pop("prompt_id", None)
    extra: dict = {"index": index, **source}
    if problem.pass_rate is not None and not any(
            "pass_rate" in key and value == problem.pass_rate for key, value in source.items()):
        extra["pass_rate"] = problem.pass_rate
    if problem.pass_rate_n is not None:
        extra["pass_rate_n"] = problem.pass_rate_n
    if problem.prompt_id != f"{problem.data_source}#{index}":
        extra["prompt_id"] = problem.prompt_id
    if epoch is not None:
        extra["epoch"] = epoch
        extra["reuse_tau"] = options.reuse
    for key, value in problem.passthrough.items():
        if key not in ("extra_info", "reward_model", "ability") and _is_scalar(value):
            extra.setdefault(key, value)
    extra["split"] = split
    return verl_row(format_prompt(problem, options), problem.answer, problem.data_source,
                    extra, ability=problem.ability, style=problem.style)


@dataclass(frozen=True)
class Schedule:
    steps_per_epoch: int
    epochs: int
    total_steps: int
    prompts_seen: int  # D_total = total_steps x batch_size (spec §1.5)
    never_seen: int  # rows dropped by drop_last in every epoch


def training_schedule(n_rows: int, batch_size: int, epochs: int = 1) -> Schedule:
    """What an unshuffled trainer with ``drop_last=True`` makes of a file (spec A-D3).

    >>> training_schedule(53904, 512)      # the paper's main runs: 105 steps, 144 unused
    Schedule(steps_per_epoch=105, epochs=1, total_steps=105, prompts_seen=53760, never_seen=144)
    >>> training_schedule(512, 512, 100).total_steps   # tau = 100: one step per epoch
    100
    """
    if batch_size < 1 or epochs < 1:
        raise ValueError("batch size and epochs must be >= 1")
    steps = n_rows // batch_size
    return Schedule(steps_per_epoch=steps, epochs=epochs, total_steps=steps * epochs,
                    prompts_seen=steps * epochs * batch_size,
                    never_seen=n_rows - steps * batch_size)
