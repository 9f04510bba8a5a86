"""Word BPE written as a learner might: a Counter, and a merge that splits into symbols and scans them."""
from collections import Counter


def get_stats(vocab):
    pairs = Counter()
    for word, freq in vocab.items():
        symbols = word.split(" ")
        for i in range(len(symbols) - 1):
            pairs[symbols[i], symbols[i + 1]] += freq
    return pairs


def merge_vocab(pair, vocab):
    out = {}
    for word, freq in vocab.items():
        symbols, merged, i = word.split(" "), [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
                merged.append(pair[0] + pair[1])
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        out[" ".join(merged)] = freq
    return out
