"""GPT-2 encoding written as a learner might: find the best pair with min() over ranks, rebuild the list."""
import regex

from scratchformers.reference.gpt2_encoding import GPT2_SPLIT_PATTERN

INF = float("inf")


def encode(text, ranks):
    ids = []
    for chunk in regex.findall(GPT2_SPLIT_PATTERN, text):
        parts = [bytes([b]) for b in chunk.encode("utf-8")]
        while len(parts) >= 2:
            scores = [ranks.get(a + b, INF) for a, b in zip(parts, parts[1:])]
            best = min(range(len(scores)), key=scores.__getitem__)
            if scores[best] == INF:
                break
            parts = parts[:best] + [parts[best] + parts[best + 1]] + parts[best + 2:]
        ids.extend(ranks[p] for p in parts)
    return ids
