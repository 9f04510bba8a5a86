"""Fast byte-level BPE: an incremental trainer with the reference's exact merges, and tiktoken as the encoder.

Training. The reference recounts every pair of every distinct chunk for each merge, O(merges × corpus). Here the
pair counts are computed once and then *updated*: merging ``(a, b)`` only changes the chunks that contain it, so

- ``where[pair]`` indexes the distinct chunks in which ``pair`` occurs (entries may go stale; a stale chunk is
  recognised because merging leaves it unchanged);
- for each such chunk we subtract the counts of its old pairs and add those of its new pairs (times the chunk's
  frequency), so a merge costs time proportional to the chunks it touches, not to the corpus;
- a heap of ``(-count, pair)`` yields the next merge. Counts change all the time, and a binary heap cannot update
  keys, so we push a fresh entry whenever a count changes and discard, when popped, any entry whose count is no
  longer the pair's current count ("lazy deletion"). The first valid entry is the pair with the highest count
  and, among those, the smallest ``(a, b)``: the reference's tie-breaking, hence the identical merge list.

Encoding. tiktoken runs the same rank-based algorithm as the reference encoder, in Rust.
:meth:`ByteLevelBPE.to_tiktoken` exports the vocabulary as a ``tiktoken.Encoding`` (with tiktoken's spelling of
the GPT-2 split regex, which splits text exactly like the original one). ``encode`` and ``encode_ordinary`` keep
the reference's checks and special-token handling and hand each stretch of ordinary text to that encoding.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict

import tiktoken
from tqdm import tqdm

from scratchformers.reference.gpt2_encoding import TIKTOKEN_GPT2_PATTERN
from scratchformers.reference import bytebpe as reference
from scratchformers.reference.bytebpe import merge

Pair = tuple[int, int]


def _pop_best(heap: list[tuple[int, Pair]], pair_counts: dict[Pair, int]) -> Pair | None:
    """Pop the live pair with the highest count (smallest pair on ties); ``None`` when no pair is left."""
    while heap:
        neg_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair) == -neg_count:
            return pair
    return None


class ByteLevelBPE(reference.ByteLevelBPE):
    """:class:`scratchformers.reference.bytebpe.ByteLevelBPE` with a fast ``train`` and tiktoken for encoding."""

    def _set_merges(self, merges: dict[Pair, int], byte_ids: list[int]) -> None:
        super()._set_merges(merges, byte_ids)
        self._encoding: tiktoken.Encoding | None = None  # the vocabulary changed: rebuild the tiktoken encoder

    def register_special_tokens(self, special_tokens: dict[str, int]) -> None:
        super().register_special_tokens(special_tokens)
        self._encoding = None

    def train(self, text: str, vocab_size: int, verbose: bool = False) -> None:
        """Same merges as the reference ``train`` (same arguments, checks and early-stop warning), much faster."""
        text = self._check_train_args(text, vocab_size)
        chunk_counts = Counter(chunk.encode("utf-8") for chunk in self.compiled_pattern.findall(text))
        words = [list(chunk) for chunk in chunk_counts]  # each distinct chunk as a list of ids
        counts = list(chunk_counts.values())

        pair_counts: dict[Pair, int] = defaultdict(int)
        where: dict[Pair, set[int]] = defaultdict(set)
        for w, word in enumerate(words):
            for pair in zip(word, word[1:]):
                pair_counts[pair] += counts[w]
                where[pair].add(w)
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)

        merges = {}
        for i in tqdm(range(vocab_size - 256), desc="byte-level BPE (fast)", unit="merge", disable=not verbose):
            pair = _pop_best(heap, pair_counts)
            if pair is None:
                self._warn_early_stop(i, vocab_size)
                break
            idx = 256 + i
            merges[pair] = idx
            delta: dict[Pair, int] = defaultdict(int)
            for w in where.pop(pair):
                old = words[w]
                new = merge(old, pair, idx)
                if len(new) == len(old):  # stale index entry: the pair left this chunk in an earlier merge
                    continue
                for p in zip(old, old[1:]):
                    delta[p] -= counts[w]
                for p in zip(new, new[1:]):
                    delta[p] += counts[w]
                    where[p].add(w)
                words[w] = new
            for p, change in delta.items():
                if change == 0:
                    continue
                pair_counts[p] += change
                if pair_counts[p] > 0:
                    heapq.heappush(heap, (-pair_counts[p], p))
                else:
                    del pair_counts[p]
        self._set_merges(merges, byte_ids=list(range(256)))

    def to_tiktoken(self, name: str = "scratchformers-bytebpe") -> tiktoken.Encoding:
        """Export the vocabulary and special tokens as a ``tiktoken.Encoding`` (same ids as :meth:`encode`)."""
        return tiktoken.Encoding(
            name=name,
            pat_str=TIKTOKEN_GPT2_PATTERN,
            mergeable_ranks=dict(self.ranks),
            special_tokens=dict(self.special_tokens),
        )

    def _tiktoken(self) -> tiktoken.Encoding:
        if self._encoding is None:
            self._encoding = self.to_tiktoken()
        return self._encoding

    def _encode_ordinary(self, text: str) -> list[int]:
        return self._tiktoken().encode_ordinary(text)
