"""Classic word BPE: count the pairs, merge the best one (Sennrich, Haddow and Birch, 2016).

A vocabulary maps each word, spelled as space-separated symbols ending in "</w>", to how often it occurs:

    {"l o w </w>": 5, "l o w e r </w>": 2, "n e w e s t </w>": 6, "w i d e s t </w>": 3}

Training repeats two steps: count every adjacent pair of symbols, then merge the most frequent pair into one symbol
everywhere. Write both steps:

* ``get_stats(vocab)``: {(a, b): count} over every adjacent pair of every word, each occurrence adding the word's
  count (overlapping pairs count: "a a a </w>" holds ("a", "a") twice).
      get_stats({"l o w </w>": 5}) == {("l", "o"): 5, ("o", "w"): 5, ("w", "</w>"): 5}
* ``merge_vocab(pair, vocab)``: a new vocabulary in which every occurrence of the two adjacent symbols is one symbol,
  scanning left to right, and each word keeps its count. Only whole symbols merge: with pair ("e", "s"),
  "n e w e st </w>" stays as it is ("st" is one symbol, not "s" + "t").
      merge_vocab(("e", "s"), {"n e w e s t </w>": 6}) == {"n e w es t </w>": 6}

About 6 lines each. The library's version is reference/bpe.py; try it yourself first. Check it with

    scratchformers check bpe bpe.py
"""


def get_stats(vocab: dict[str, int]) -> dict[tuple[str, str], int]:
    """Count every adjacent symbol pair, each occurrence weighted by its word's count."""
    raise NotImplementedError


def merge_vocab(pair: tuple[str, str], vocab: dict[str, int]) -> dict[str, int]:
    """Merge every occurrence of the two adjacent whole symbols ``pair`` into one symbol."""
    raise NotImplementedError
