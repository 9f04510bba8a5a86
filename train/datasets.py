"""Every fact about a dataset, defined once: its name, folder, tokenizer, variant, merges, split and source.

A prepared dataset is identified by a :class:`DatasetSpec`::

    DatasetSpec("shakespeare", "char", variant="tiny")            -> data/shakespeare_tiny_char
    DatasetSpec("shakespeare", "bpe", "full", bpe_merges=4000)     -> data/shakespeare_bpe4000
    DatasetSpec("openwebtext", "gpt2")                             -> data/openwebtext

``scratchformers prepare`` writes its spec into ``meta.json`` (``meta["dataset"]``) and uses its folder as the
default ``--out``; ``scratchformers train`` derives the spec it wants from its configuration
(:func:`requested_spec`), reads the same default folder and refuses data whose recorded spec differs
(:func:`check_spec`). Both sides call the same functions, so a tiny corpus can never stand in for the full one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from scratchformers.train.data import VARIANTS

if TYPE_CHECKING:
    from scratchformers.train.config import TrainConfig

DATA_ROOT = "data"
SHAKESPEARE = "shakespeare"
OPENWEBTEXT = "openwebtext"
KNOWN_DATASETS = (SHAKESPEARE, OPENWEBTEXT)
TOKENIZERS = ("gpt2", "char", "bpe")
DEFAULT_BPE_MERGES = 4000
# The held-out part of each dataset (nanoGPT's choices): the last 10 % of Shakespeare's characters, one contiguous
# piece; 0.05 % of OpenWebText's documents (about 4,000 of 8 M), shuffled with a fixed seed.
SHAKESPEARE_VAL_FRACTION = 0.1
OPENWEBTEXT_VAL_FRACTION = 0.0005
OPENWEBTEXT_SPLIT_SEED = 2357


@dataclass(frozen=True)
class DatasetSpec:
    """What a prepared dataset holds; ``meta.json`` records it as ``meta["dataset"]`` (:meth:`to_dict`).

    Attributes:
        name: the recipe that made it: ``"shakespeare"`` (the embedded corpus) or ``"openwebtext"`` (the hub
            dataset or local documents given with ``--data-files``).
        tokenizer: ``"gpt2"``, ``"char"`` or ``"bpe"`` (the classic word BPE, trained on the corpus).
        variant: Shakespeare only: ``"full"`` or ``"tiny"``.
        bpe_merges: ``tokenizer="bpe"`` only: the number of merges asked for.
    """

    name: str
    tokenizer: str
    variant: str | None = None
    bpe_merges: int | None = None

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {self.tokenizer!r}; choose 'gpt2', 'char' or 'bpe'")
        if self.name == SHAKESPEARE and self.variant not in VARIANTS:
            raise ValueError(f"unknown Shakespeare variant {self.variant!r}; choose 'full' or 'tiny'")
        if self.name == OPENWEBTEXT and (self.tokenizer != "gpt2" or self.variant is not None):
            raise ValueError("OpenWebText is prepared with the gpt2 tokenizer and has no variant")
        if (self.tokenizer == "bpe") != (self.bpe_merges is not None):
            raise ValueError("bpe_merges is given with the bpe tokenizer, and only with it")
        if self.bpe_merges is not None and self.bpe_merges < 1:
            raise ValueError(f"bpe_merges must be at least 1, got {self.bpe_merges}")

    def directory(self) -> str:
        """The default folder: ``data/shakespeare_[tiny_]<tokenizer>[<merges>]``, ``data/openwebtext``, ..."""
        if self.name != SHAKESPEARE:
            return f"{DATA_ROOT}/{self.name}"
        variant = "" if self.variant == "full" else f"{self.variant}_"
        merges = "" if self.bpe_merges is None else str(self.bpe_merges)
        return f"{DATA_ROOT}/{SHAKESPEARE}_{variant}{self.tokenizer}{merges}"

    def to_dict(self) -> dict[str, Any]:
        """The record stored in ``meta.json``."""
        return asdict(self)

    def describe(self) -> str:
        """``shakespeare (tiny, bpe tokenizer, 2000 merges)``, for messages."""
        details = [self.variant] if self.variant else []
        details.append(f"{self.tokenizer} tokenizer")
        if self.bpe_merges is not None:
            details.append(f"{self.bpe_merges} merges")
        return f"{self.name} ({', '.join(details)})"

    def prepare_command(self, out: str | None = None) -> str:
        """The command line that prepares this dataset (into ``out``, when that is not the default folder)."""
        words = ["scratchformers", "prepare", self.name]
        if self.name == SHAKESPEARE:
            words += ["--tokenizer", self.tokenizer]
            if self.variant != "full":
                words += ["--variant", str(self.variant)]
            if self.bpe_merges is not None and self.bpe_merges != DEFAULT_BPE_MERGES:
                words += ["--bpe-merges", str(self.bpe_merges)]
        elif self.name == OPENWEBTEXT:
            words += ["[--data-files FILE ...]"]
        if out is not None and out != self.directory():
            words += ["--out", str(out)]
        return " ".join(words)


def shakespeare_spec(tokenizer: str, variant: str = "full", bpe_merges: int = DEFAULT_BPE_MERGES) -> DatasetSpec:
    """The spec of the embedded Shakespeare prepared with ``tokenizer`` (``bpe_merges`` counts only for bpe)."""
    return DatasetSpec(SHAKESPEARE, tokenizer, variant, bpe_merges if tokenizer == "bpe" else None)


OPENWEBTEXT_SPEC = DatasetSpec(OPENWEBTEXT, "gpt2")


def requested_spec(config: TrainConfig) -> DatasetSpec | None:
    """The dataset a training configuration asks for; ``None`` for a dataset of another name (a folder prepared
    by hand, ``data/<dataset>``), which is taken as it is."""
    if config.dataset == SHAKESPEARE:
        return shakespeare_spec(config.tokenizer, config.shakespeare_variant, config.bpe_merges)
    if config.dataset == OPENWEBTEXT:
        return OPENWEBTEXT_SPEC
    return None


def default_data_dir(config: TrainConfig) -> str:
    """The folder a configuration reads when it names none: the requested spec's, or ``data/<dataset>``."""
    spec = requested_spec(config)
    return spec.directory() if spec is not None else f"{DATA_ROOT}/{config.dataset}"


def recorded_spec(meta: dict[str, Any]) -> DatasetSpec | None:
    """The spec ``meta.json`` records; ``None`` for data prepared before specs were recorded."""
    record = meta.get("dataset")
    if not isinstance(record, dict):
        return None
    try:
        return DatasetSpec(**record)
    except (TypeError, ValueError):
        return None


def describe_data(meta: dict[str, Any]) -> str:
    """What a dataset's ``meta.json`` holds, for messages: ``shakespeare (tiny, char tokenizer), 65 tokens in its
    vocabulary``."""
    spec = recorded_spec(meta)
    what = spec.describe() if spec is not None else f"{meta.get('tokenizer', {}).get('kind', 'unknown')} tokens"
    return f"{what}, {meta.get('vocab_size', '?')} tokens in its vocabulary"


# The TrainConfig field behind each DatasetSpec field (the `scratchformers train` flag is --<field with dashes>).
CONFIG_FIELDS = {"name": "dataset", "tokenizer": "tokenizer", "variant": "shakespeare_variant",
                 "bpe_merges": "bpe_merges"}


def check_spec(meta: dict[str, Any], wanted: DatasetSpec, data_dir: str) -> None:
    """Refuse data that is not the dataset asked for, with a message saying what to do.

    Raises:
        ValueError: ``meta.json`` records another spec, or none (prepared by an older version).
    """
    found = recorded_spec(meta)
    replace = f"run `{wanted.prepare_command(data_dir)}` to replace it"
    if found is None:
        raise ValueError(f"{data_dir} does not record which dataset it holds (prepared by an older scratchformers) "
                         f"but {wanted.describe()} was asked for: {replace}")
    if found != wanted:
        flags = " ".join(f"--{CONFIG_FIELDS[key].replace('_', '-')} {value}"
                         for key, value in found.to_dict().items() if value is not None and value != getattr(wanted, key))
        raise ValueError(f"{data_dir} holds {found.describe()} but {wanted.describe()} was asked for: "
                         f"to train on it pass {flags}, or {replace}")
