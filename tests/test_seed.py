"""The seed's "Usage" section, snippet by snippet, as the seed writes it: hold this file beside the seed.

The seed ("Transformers From Scratch") shows three blocks of code: training a new model, text generation and
custom tokenization. Below, each block is the seed's text, character for character (less the trailing spaces of
two lines), run with ``exec``: every name and keyword is the seed's. What the test adds is visible and listed:

- the names the seed leaves undefined (``corpus``, ``text``, ``sorted_tokens``, ``token2id``, ``train_loader``,
  ``pl``, and ``GPT2``, ``generate``, ``build_vocab`` ... themselves) are defined the way a reader would, from the
  library (:func:`reader_names` and the tests' glue);
- where a snippet cannot run as written on a CPU-only CI machine, a dict of replacements (old text → new text, each
  with its reason) is applied to the snippet's text first; every replacement must match exactly once, so the
  reader sees precisely what changed. The model config runs unchanged: ``GPT2(**config)`` is GPT-2 small.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

pl = pytest.importorskip("lightning.pytorch", reason="the optional `lightning` extra is not installed")

from scratchformers import generate, gpt2_encoding, shakespeare  # noqa: E402
from scratchformers.reference import bpe  # noqa: E402
from scratchformers.reference.model import GPT  # noqa: E402
from scratchformers.train.batches import TokenWindowDataset  # noqa: E402
from scratchformers.train.lightning import GPT2  # noqa: E402
from scratchformers.train.prepare_shakespeare import prepare_shakespeare  # noqa: E402

# ------------------------------------------------------------------------------------------------ the seed's text

# "Training a New Model", first half: the model.
MODEL_CONFIG = '''\
# Configure model architecture
config = dict(
    max_len=1024,
    emb_dim=768,
    num_layers=12,
    num_heads=12,
    model_dim=768,
    vocab_size=50257,
    weight_decay=0.1,
    dropout=0.0
)

# Initialize model
model = GPT2(**config)
'''

# "Training a New Model", second half: Lightning.
TRAINING = '''\
# Setup training
trainer = pl.Trainer(
    max_steps=600000,
    accumulate_grad_batches=10,
    accelerator="gpu",
    devices=-1,
    strategy="dp"
)

# Train model
trainer.fit(model, train_loader)
'''

# "Text Generation" (the seed ends two lines with a space: "model, " and "prompt=..., ").
GENERATION = '''\
# Load trained model
model = GPT2.load_from_checkpoint("gpt2-openwebtext.ckpt")

# Generate text
generation = generate(
    model,
    prompt="Your prompt here",
    max_new_tokens=50,
    temperature=0.8
)
'''

# "Custom Tokenization", in its two parts: sorted_tokens and token2id come from the vocabulary the loop learns.
BPE_TRAINING = '''\
# Build vocabulary from corpus
vocab = build_vocab(corpus)

# Train BPE for specified number of merges
num_merges = 4000
for i in range(num_merges):
    pairs = get_stats(vocab)
    best = max(pairs, key=pairs.get)
    vocab = merge_vocab(best, vocab)
'''
TOKENIZATION = '''\
# Tokenize text
tokens = tokenize(text, sorted_tokens, token2id, return_strings=True)
'''

# ------------------------------------------------------------------------------------- what changes on a CPU box

ON_CUDA = torch.cuda.is_available()
MAX_LEN = 32
MODEL_ON_A_CPU = {  # training the 124M model even a few steps takes far longer than CI's budget on 2 CPU cores
    "max_len=1024": f"max_len={MAX_LEN}",
    "emb_dim=768": "emb_dim=48",
    "model_dim=768": "model_dim=48",
    "num_layers=12": "num_layers=2",
    "num_heads=12": "num_heads=2",
}
TRAINING_ON_A_CPU = {
    "max_steps=600000": "max_steps=3",  # 3 optimizer steps of 10 accumulated batches each, not 600,000
    'accelerator="gpu"': 'accelerator="gpu"' if ON_CUDA else 'accelerator="cpu"',  # the GPU where there is one
    "devices=-1": "devices=1",  # -1 is refused on a CPU; on GPUs "all of them" would start processes inside pytest
    'strategy="dp"': 'strategy="auto"',  # Lightning 2 removed DataParallel ("dp"): the name is refused
}
BPE_ON_A_CPU = {"num_merges = 4000": "num_merges = 200"}  # 4000 reference merges over Shakespeare take minutes
# The seed's "Results" section shows the prompt "Hello my name is " continued by 30 tokens: the same snippet.
GENERATION_OF_THE_RESULTS = {'prompt="Your prompt here"': 'prompt="Hello my name is "',
                             "max_new_tokens=50": "max_new_tokens=30"}

CORPUS_CHARS = 20_000  # the BPE corpus: Shakespeare's first 20,000 characters keep 200 reference merges to ~1 s
TRAIN_BATCH_SIZE = 4


def run(snippet: str, names: dict[str, Any], replacements: dict[str, str] | None = None) -> dict[str, Any]:
    """Apply ``replacements`` to the snippet's text (each must match exactly once), exec it in ``names``."""
    for old, new in (replacements or {}).items():
        assert snippet.count(old) == 1, f"{old!r} is not in the snippet exactly once"
        snippet = snippet.replace(old, new)
    exec(compile(snippet, "<the seed's snippet>", "exec"), names)
    return names


def reader_names() -> dict[str, Any]:
    """The imports a reader writes above the seed's snippets."""
    return dict(
        pl=pl,
        GPT2=GPT2,
        generate=generate,
        build_vocab=bpe.build_vocab,
        get_stats=bpe.get_stats,
        merge_vocab=bpe.merge_vocab,
        tokenize=bpe.tokenize,
    )


# ------------------------------------------------------------------------------------------------------ the tests


def test_the_seeds_config_builds_gpt2_small_unchanged() -> None:
    names = run(MODEL_CONFIG, reader_names())
    model = names["model"]
    assert isinstance(model, GPT2) and isinstance(model, GPT)
    assert model.num_parameters() == 124_439_808  # GPT-2 small, the token table shared with the output layer
    assert model.transformer.h[0].mlp.c_fc.weight.shape == (3072, 768)  # the MLP is 4 x 768 wide
    assert (model.config.model_dim, model.config.mlp_dim, model.config.weight_decay) == (768, 3072, 0.1)


def test_the_replaced_trainer_arguments_are_refused_here() -> None:
    """Why the training snippet's Lightning arguments are replaced: these are the installed Lightning's answers."""
    with pytest.raises(ValueError, match="invalid strategy name"):
        pl.Trainer(strategy="dp", accelerator="cpu", devices=1, logger=False)
    with pytest.raises(TypeError, match="devices"):
        pl.Trainer(accelerator="cpu", devices=-1, logger=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The training snippet run in a fresh folder; its namespace, with the data folder and initial weights."""
    folder = tmp_path_factory.mktemp("seed")
    prepare_shakespeare(folder / "data", tokenizer="gpt2", variant="tiny")
    train_loader = DataLoader(TokenWindowDataset(folder / "data", "train", MAX_LEN),
                              batch_size=TRAIN_BATCH_SIZE, shuffle=True, generator=torch.Generator().manual_seed(0))
    names = {**reader_names(), "train_loader": train_loader}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # Lightning writes lightning_logs/ into the working directory
        torch.manual_seed(0)
        run(MODEL_CONFIG, names, MODEL_ON_A_CPU)
        names["initial"] = {key: value.clone() for key, value in names["model"].state_dict().items()}
        run(TRAINING, names, TRAINING_ON_A_CPU)
        names["trainer"].save_checkpoint("gpt2-openwebtext.ckpt")  # the seed's file name for the trained model
    names["folder"] = folder
    return names


def test_the_lightning_training_snippet_trains(trained: dict[str, Any]) -> None:
    trainer, model = trained["trainer"], trained["model"]
    assert trainer.global_step == 3  # optimizer steps
    assert trainer.fit_loop.epoch_loop.batch_progress.total.completed == 3 * 10  # accumulate_grad_batches=10
    assert trainer.accumulate_grad_batches == 10
    assert math.isfinite(trainer.callback_metrics["train_loss"].item())
    initial = trained["initial"]
    moved = [key for key, value in model.state_dict().items() if not torch.equal(value.cpu(), initial[key].cpu())]
    assert "transformer.wte.weight" in moved and "transformer.h.1.mlp.c_fc.weight" in moved
    assert model.transformer.h[0].mlp.c_fc.weight.shape == (4 * 48, 48)  # model_dim=48: d_model, the MLP 4 x wider


@pytest.mark.parametrize(
    "replacements, prompt, max_new_tokens",
    [({}, "Your prompt here", 50), (GENERATION_OF_THE_RESULTS, "Hello my name is ", 30)],
    ids=["usage", "results"],
)
def test_load_from_checkpoint_and_generate(trained: dict[str, Any], replacements: dict[str, str], prompt: str,
                                           max_new_tokens: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(trained["folder"])
    torch.manual_seed(1)
    names = run(GENERATION, reader_names(), replacements)
    model, generation = names["model"], names["generation"]

    assert isinstance(model, GPT2) and isinstance(model, GPT)
    for key, value in trained["model"].state_dict().items():
        assert torch.equal(model.state_dict()[key].cpu(), value.cpu()), key
    # The same draws on token ids (loading initialises a model before the weights arrive, so the replay loads too):
    # the continuation is exactly max_new_tokens tokens of GPT-2's encoding.
    prompt_ids = gpt2_encoding().encode(prompt)
    torch.manual_seed(1)
    ids = generate(GPT2.load_from_checkpoint("gpt2-openwebtext.ckpt"), prompt_ids, max_new_tokens, temperature=0.8)
    assert len(ids) == len(prompt_ids) + max_new_tokens
    assert generation == prompt + gpt2_encoding().decode(ids[len(prompt_ids):])


def test_the_bpe_loop_and_tokenize() -> None:
    corpus = shakespeare("tiny")[:CORPUS_CHARS]
    text = "To be, or not to be, that is the question:"
    names = run(BPE_TRAINING, {**reader_names(), "corpus": corpus}, BPE_ON_A_CPU)
    vocab = names["vocab"]
    assert sum(vocab.values()) == len(corpus.split())  # still every word of the corpus, now in merged symbols
    assert names["best"] not in bpe.get_stats(vocab)  # the last merge was applied everywhere

    # A reader's tokens: the symbols the merges left, plus the single characters and </w> so nothing is unknown.
    symbols = {symbol for word in vocab for symbol in word.split()} | {*bpe.alphabet_of(corpus), bpe.END_OF_WORD}
    sorted_tokens = bpe.sort_tokens(sorted(symbols))
    token2id = {bpe.PAD: bpe.PAD_ID, bpe.UNK: bpe.UNK_ID} | {token: i for i, token in enumerate(sorted_tokens, 2)}
    names = run(TOKENIZATION, {**names, "text": text, "sorted_tokens": sorted_tokens, "token2id": token2id})

    tokens = names["tokens"]
    strings = tokens["tokens"]
    assert "".join(strings).replace(bpe.END_OF_WORD, " ").split() == text.split()
    assert tokens["input_ids"] == [token2id[token] for token in strings]
    assert tokens["attention_mask"] == [1] * len(strings)
    assert bpe.UNK not in strings
    assert len(strings) < sum(len(word) + 1 for word in text.split())  # merged tokens, not one per character
