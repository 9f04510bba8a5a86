"""The checks of the byte-level BPE exercise: ``encode(text, ranks)`` with GPT-2's split pattern and merge ranks,
whose ids must equal tiktoken's ``gpt2`` encoding (built offline from the files shipped with the library)."""
from __future__ import annotations

import functools
import types

import regex
from hypothesis import strategies as st

from scratchformers.exercises.checks.core import Check, Exercise, Mistake, expect_equal, failing_case, for_all
from scratchformers.reference.gpt2_encoding import GPT2_SPLIT_PATTERN, gpt2_encoding, gpt2_mergeable_ranks

TRICKY = [
    "",
    "Hello world",
    "I'll've",
    "don't DON'T it's we're they'd I'm you'll 'twas rock'n'roll ''s",
    "  \n\n \t",
    "a   b\t\t\tc \n \n  d   ",
    "trailing spaces   ",
    "\n\n\n\nnew paragraphs\r\n\r\nwindows",
    "no\u00a0break\u3000ideographic\u2028line\u2029para",
    "1234567890 3.14159 1,000,000 -42 +7e10 0x1F ½ ² ٣٤٥ 一二三",
    "naïve café Ünïcödé Ελληνικά русский עברית العربية हिन्दी 中文 日本語 한국어",
    "emoji 😀😃 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ ✨",
    "def f(x):\n    return x ** 2  # comment\n",
    "\x00\x01\x1f\x7f control",
    "<|endoftext|> looks special but is text here",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
]


@functools.lru_cache(maxsize=1)
def ranks() -> types.MappingProxyType:
    """GPT-2's 50,256 mergeable ranks {token bytes: id}, read-only."""
    return types.MappingProxyType(gpt2_mergeable_ranks())


def expected(text: str) -> list[int]:
    return gpt2_encoding().encode_ordinary(text)


def run(learner, text: str) -> None:
    with failing_case(text=text):
        expect_equal(f"encode({text[:40]!r}{'...' if len(text) > 40 else ''})", list(learner.encode(text, ranks())),
                     expected(text))


def hello_world(learner):
    run(learner, "Hello world")


def tricky_texts(learner):
    for text in TRICKY:
        run(learner, text)


@for_all(examples=40, text=st.text(max_size=40))
def random_texts(learner, text):
    run(learner, text)


def _merge(parts: list[bytes], table, rule: str) -> list[bytes]:
    """BPE on one chunk's parts: merge the lowest-ranked adjacent pair (right), or the leftmost one that forms a
    token (wrong), until no adjacent pair forms a token."""
    while len(parts) > 1:
        found = [(table[parts[i] + parts[i + 1]], i) for i in range(len(parts) - 1) if parts[i] + parts[i + 1] in table]
        if not found:
            break
        _, i = min(found) if rule == "lowest rank" else found[0]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]
    return parts


def _encode(text, table, split=GPT2_SPLIT_PATTERN, rule="lowest rank", units="bytes"):
    """GPT-2's encoding right and wrong; the keywords after ``table`` each make one classic mistake."""
    ids = []
    for chunk in regex.findall(split, text) if split else [text]:
        if units == "characters":
            parts = [character.encode("utf-8") for character in chunk]
        else:
            parts = [bytes([b]) for b in chunk.encode("utf-8")]
        ids += [table[part] for part in _merge(parts, table, rule)]
    return ids


_TEXTS = ("Hello world! It's 2024.", "naïve café 日本語 🇫🇷", "aaaaaaaaaaaaaaaa", "  spaced   out \n\nend",
          "don't stop: 3.14 GPT-2's")

EXERCISE = Exercise(
    name="bytebpe",
    summary="encode(text, ranks): GPT-2's byte-level BPE, ids equal to tiktoken's gpt2 encoding",
    signatures=("encode(text, ranks)",),
    checks=(
        Check("'Hello world' encodes as [15496, 995]", hello_world,
              "split with regex.findall(GPT2_SPLIT_PATTERN, text) (the regex module: re cannot read \\p{L}), turn "
              "each chunk into its UTF-8 bytes, merge by rank, look the parts up"),
        Check("tricky texts: contractions, numbers, whitespace runs, accents, CJK, emoji, code, control bytes",
              tricky_texts, "split with regex.findall(GPT2_SPLIT_PATTERN, text) (the regex module: re has no "
              "\\p{L}); merges never cross a chunk; each chunk's parts start as single bytes"),
        Check("random Unicode text (hypothesis)", random_texts,
              "work on bytes (chunk.encode('utf-8')), never on characters: a character may be several tokens"),
    ),
    mistakes=(
        Mistake("no split with GPT-2's pattern: merges cross word boundaries",
                "first split the text with regex.findall(GPT2_SPLIT_PATTERN, text), then run BPE on each chunk",
                {"encode": lambda text, table: _encode(text, table, split=None)}),
        Mistake("split on whitespace only: punctuation, digits and contractions must be chunks of their own",
                "use GPT-2's pattern, which also separates letters from digits and punctuation and cuts 's, 't, ...",
                {"encode": lambda text, table: _encode(text, table, split=r" ?\S+|\s+")}),
        Mistake("the leftmost mergeable pair merged first, not the lowest-ranked one",
                "at each step merge the adjacent pair whose concatenation has the lowest rank (id), leftmost on ties",
                {"encode": lambda text, table: _encode(text, table, rule="leftmost")}),
        Mistake("BPE over characters, not UTF-8 bytes",
                "start each chunk as its UTF-8 bytes, one part per byte: [bytes([b]) for b in chunk.encode('utf-8')]",
                {"encode": lambda text, table: _encode(text, table, units="characters")}),
    ),
    probes=tuple(("encode", lambda f, text=text: list(f.encode(text, ranks()))) for text in _TEXTS),
)
