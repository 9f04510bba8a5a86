"""Fast training for the classic word BPE: the same merge list as :mod:`scratchformers.reference.bpe`, 4000 merges
on the full Shakespeare corpus in about a second of pure Python.

The reference recounts every pair of every word after each merge. Here each merge only touches the words that
contain the merged pair, and the counts are updated in place:

- **Pair counts** ``pair_counts[pair]``, weighted by the word counts, kept exact after every merge.
- **An index** ``where[pair]``: the ids of the words that contain ``pair``. It may hold ids of words that lost the
  pair since (and, rarely, an id twice); those are filtered out when the pair is merged, which is cheaper than
  removing them eagerly.
- **A max-heap** of ``(-count, (a, b), pair)`` with *lazy* updates: a pair is pushed when its count grows; when a
  popped entry's count is stale (the pair's count has shrunk), it is pushed back with its current count. Every
  live pair thus always has an entry whose count is at least its current one, so the first popped entry whose
  count is current is the true maximum, and the ``(a, b)`` strings in the entry give the reference's tie-break
  (highest count, then the lexicographically smallest pair) for free.

Why it is fast in Python: every symbol is coded as **one character** (``chr(0x100 + symbol id)``), so a word is a
short ``str``, a pair is a two-character ``str`` (a cheap dict key), and merging a pair in a word is
``word.replace(pair, new_char)``, which C does left to right exactly like :func:`reference.bpe.merge_vocab`. Each
coded word is wrapped in two sentinel characters that are never counted, so every pair occurrence has a left and
a right neighbour. Most touched words contain the merged pair once; for them only the two neighbouring pairs
change, ``(x, a) -> (x, ab)`` and ``(b, y) -> (ab, y)``, and the words are grouped by neighbour so that the counts
and the index are updated once per neighbour with C-level ``sum`` and list concatenation. Words with several
occurrences (rare) are recounted in full.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from itertools import compress, repeat
from operator import add, contains

from tqdm import tqdm

from scratchformers.reference import bpe as reference
from scratchformers.reference.bpe import END_OF_WORD, Corpus, Pair

_FIRST_CODE = 0x100  # symbol i is coded chr(0x100 + i); the sentinels below are never symbols
_BEGIN, _END = "\x02", "\x03"


def learn_bpe(corpus: Corpus, num_merges: int, verbose: bool = False) -> list[Pair]:
    """Learn up to ``num_merges`` merges from ``corpus``: the same list as :func:`reference.bpe.learn_bpe`.

    Stops early, with a warning, when every word has become a single symbol.
    """
    reference.check_num_merges(num_merges)
    word_counts = Counter(reference.split_words(corpus))
    alphabet = sorted(set("".join(word_counts)))
    name = {chr(_FIRST_CODE + i): s for i, s in enumerate([*alphabet, END_OF_WORD])}  # code -> symbol string
    code = {s: c for c, s in name.items()}
    spell = str.maketrans({ch: code[ch] for ch in alphabet})
    words = [_BEGIN + word.translate(spell) + code[END_OF_WORD] + _END for word in word_counts]
    freqs = list(word_counts.values())
    freq_of = freqs.__getitem__

    # One list entry per pair occurrence, so summing the word counts over it gives the weighted pair count.
    where: defaultdict[str, list[int]] = defaultdict(list)
    for wid, word in enumerate(words):
        for pair in map(add, word[1:-2], word[2:-1]):  # the pairs between the sentinels
            where[pair].append(wid)
    pair_counts = {pair: sum(map(freq_of, wids)) for pair, wids in where.items()}
    heap = [(-count, (name[pair[0]], name[pair[1]]), pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    def change(pair: str, delta: int) -> None:
        """Add ``delta`` to a pair's count, keeping the heap invariant (push on growth) and dropping dead pairs."""
        count = pair_counts.get(pair, 0) + delta
        if count:
            pair_counts[pair] = count
            if delta > 0:
                heapq.heappush(heap, (-count, (name[pair[0]], name[pair[1]]), pair))
        else:
            del pair_counts[pair]
            where.pop(pair, None)

    def recount(wid: int, word: str, merged_word: str, pair: str, new: str) -> None:
        """Update the counts and the index for a word in which ``pair`` occurred several times."""
        delta: Counter[str] = Counter()
        for old in map(add, word[1:-2], word[2:-1]):
            delta[old] -= freqs[wid]
        for fresh in map(add, merged_word[1:-2], merged_word[2:-1]):
            delta[fresh] += freqs[wid]
            if new in fresh:
                where[fresh].append(wid)
        del delta[pair]  # its count is already gone
        for other, d in delta.items():
            if d:
                change(other, d)

    merges: list[Pair] = []
    progress = tqdm(total=num_merges, desc="word BPE (fast)", unit="merge", disable=not verbose)
    while len(merges) < num_merges:
        pair = _pop_best(heap, pair_counts)
        if pair is None:
            reference.warn_early_stop(len(merges), num_merges)
            break
        a, b = pair
        merged = name[a] + name[b]
        merges.append((name[a], name[b]))
        progress.update()
        new = code.get(merged)
        if new is None:  # a merge may, rarely, spell a symbol that already exists: it is then the same symbol
            new = code[merged] = chr(_FIRST_CODE + len(name))
            name[new] = merged

        del pair_counts[pair]
        left: defaultdict[str, list[int]] = defaultdict(list)  # left neighbour x -> words where (x, a) became (x, new)
        right: defaultdict[str, list[int]] = defaultdict(list)  # right neighbour y -> words where (b, y) became (new, y)
        candidates = where.pop(pair)
        # Skip, in C, the words that no longer contain the pair (the index is lazy). `compress` pulls lazily, so a
        # word listed twice is seen without the pair the second time.
        for wid in compress(candidates, map(contains, map(words.__getitem__, candidates), repeat(pair))):
            word = words[wid]
            merged_word = word.replace(pair, new)
            words[wid] = merged_word
            if len(merged_word) == len(word) - 1:  # one occurrence: only its two neighbouring pairs change
                i = word.find(pair)
                left[word[i - 1]].append(wid)
                right[word[i + 2]].append(wid)
            else:  # several occurrences: recount the whole word
                recount(wid, word, merged_word, pair, new)
        left.pop(_BEGIN, None)
        right.pop(_END, None)
        for x, wids in left.items():
            total = sum(map(freq_of, wids))
            change(x + a, -total)
            change(x + new, total)
            where[x + new] += wids
        for y, wids in right.items():
            total = sum(map(freq_of, wids))
            if b + y != pair:  # "a a a" merging (a, a): the right neighbour pair is the merged pair itself
                change(b + y, -total)
            change(new + y, total)
            where[new + y] += wids
    progress.close()
    return merges


def _pop_best(heap: list[tuple[int, Pair, str]], pair_counts: dict[str, int]) -> str | None:
    """Pop the entry of the most frequent pair (smallest pair on ties); stale entries are dropped or re-pushed."""
    while heap:
        neg_count, key, pair = heapq.heappop(heap)
        count = pair_counts.get(pair, 0)
        if count == -neg_count:
            return pair
        if count:  # the count shrank since this entry was pushed: queue it again at its current count
            heapq.heappush(heap, (-count, key, pair))
    return None


class WordBPE(reference.WordBPE):
    """:class:`scratchformers.reference.bpe.WordBPE` with the fast trainer; encoding, decoding and files are the same."""

    def train(self, text: Corpus, num_merges: int, verbose: bool = False) -> None:
        """Learn ``num_merges`` merges from ``text`` (replacing any previous ones); ``verbose`` shows a progress bar.

        Stops early, with a warning, when no word has two symbols left.
        """
        merges = learn_bpe(text, num_merges, verbose=verbose)
        self._set_merges(reference.alphabet_of(text), merges)
