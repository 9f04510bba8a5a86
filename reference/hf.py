"""Hugging Face GPT-2 checkpoints in and out: OpenAI's weights in our model, our weights in ``transformers``.

Our parameter names are GPT-2's, so the mapping is nearly the identity. Two differences:

- HF's GPT-2 stores its projections as ``Conv1D`` layers whose weight is (in, out), i.e. y = x W + b; our
  ``nn.Linear`` stores (out, in) and computes y = x Wᵀ + b. The four projections ``attn.c_attn``, ``attn.c_proj``,
  ``mlp.c_fc`` and ``mlp.c_proj`` are transposed on the way in and on the way out.
- HF checkpoints may hold the causal-mask buffers ``attn.bias`` and ``attn.masked_bias`` (not weights, skipped),
  may prefix names with ``transformer.`` (``GPT2LMHeadModel``) or not (``GPT2Model``, OpenAI's upload), and
  leave out ``lm_head.weight``, which is tied to ``wte.weight``.

The real GPT-2 (124M), for users who have the files or a network connection::

    from scratchformers.reference.hf import from_pretrained
    model = from_pretrained("gpt2")             # downloads config.json + model.safetensors from the Hub, or
    model = from_pretrained("/path/to/gpt2")   # a local folder, e.g. `huggingface-cli download gpt2`

The same works for ``gpt2-medium``, ``gpt2-large`` and ``gpt2-xl``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from scratchformers.reference.config import GPTConfig
from scratchformers.reference.model import GPT

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
SKIPPED_BUFFERS = (".attn.bias", ".attn.masked_bias")
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")  # two names for GPT-2's tanh approximation, the one we implement
OVERRIDABLE = ("attention", "layernorm", "gelu", "dropout", "weight_decay")  # implementation choices, not architecture


def config_from_hf(hf_config: dict[str, Any], **overrides: Any) -> GPTConfig:
    """Our :class:`GPTConfig` from the fields of an HF GPT-2 ``config.json``; unsupported variants are an error."""
    if hf_config.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"expected a GPT-2 checkpoint (model_type 'gpt2'), got model_type {hf_config['model_type']!r}")
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in TANH_GELUS:
        raise ValueError(
            f"activation_function {activation!r} is not supported: this model implements GPT-2's tanh GELU "
            f"({' / '.join(TANH_GELUS)})"
        )
    unsupported = {
        "scale_attn_weights": (hf_config.get("scale_attn_weights", True), True),
        "scale_attn_by_inverse_layer_idx": (hf_config.get("scale_attn_by_inverse_layer_idx", False), False),
        "add_cross_attention": (hf_config.get("add_cross_attention", False), False),
        "tie_word_embeddings": (hf_config.get("tie_word_embeddings", True), True),
    }
    for name, (value, supported) in unsupported.items():
        if value != supported:
            raise ValueError(f"{name}={value!r} is not supported (this GPT-2 needs {name}={supported!r})")
    bad = sorted(set(overrides) - set(OVERRIDABLE))
    if bad:
        raise ValueError(f"cannot override {bad}: the checkpoint fixes the architecture; allowed: {list(OVERRIDABLE)}")
    fields = dict(
        max_len=hf_config.get("n_positions", 1024),
        model_dim=hf_config.get("n_embd", 768),
        num_layers=hf_config.get("n_layer", 12),
        num_heads=hf_config.get("n_head", 12),
        mlp_dim=hf_config.get("n_inner"),  # None: 4 · n_embd, as in HF
        vocab_size=hf_config.get("vocab_size", 50257),
        dropout=hf_config.get("resid_pdrop", 0.1),
        layer_norm_eps=hf_config.get("layer_norm_epsilon", 1e-5),
    )
    return GPTConfig(**{**fields, **overrides})


def config_to_hf(config: GPTConfig) -> dict[str, Any]:
    """The ``config.json`` of ``transformers.GPT2LMHeadModel`` for our config (biases, learned positions only)."""
    if not config.bias:
        raise ValueError("HF GPT-2 always has biases; a model built with bias=False cannot be exported")
    if config.positional != "learned":
        raise ValueError("HF GPT-2 uses learned positions; a model with sinusoidal positions cannot be exported")
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.max_len,
        "n_ctx": config.max_len,
        "n_embd": config.model_dim,
        "n_layer": config.num_layers,
        "n_head": config.num_heads,
        "n_inner": config.mlp_dim,
        "activation_function": "gelu_new",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
    }


def state_dict_from_hf(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF GPT-2 tensors renamed and transposed into our ``state_dict`` layout (lm_head tied to wte)."""
    ours = {}
    for name, tensor in hf_state.items():
        name = name.removeprefix("transformer.")
        if name.endswith(SKIPPED_BUFFERS) or name == "lm_head.weight":
            continue
        if name.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()  # Conv1D (in, out) → Linear (out, in)
        ours[f"transformer.{name}"] = tensor
    if "transformer.wte.weight" in ours:
        ours["lm_head.weight"] = ours["transformer.wte.weight"]
    return ours


def state_dict_to_hf(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights as HF ``GPT2LMHeadModel`` tensors: Conv1D layout, contiguous, without the tied lm_head."""
    hf_state = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        if name.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()  # Linear (out, in) → Conv1D (in, out)
        hf_state[name] = tensor.detach().cpu().contiguous().clone()
    return hf_state


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of ``model.safetensors`` (single or sharded) or else ``pytorch_model.bin``."""
    from safetensors.torch import load_file

    if (folder / "model.safetensors").is_file():
        return load_file(folder / "model.safetensors")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {name: t for shard in shards for name, t in load_file(folder / shard).items()}
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"no weights in {folder}: expected model.safetensors, model.safetensors.index.json or pytorch_model.bin"
    )


def load_hf_gpt2(path: str | Path, **overrides: Any) -> GPT:
    """Our :class:`GPT` with the weights of the HF GPT-2 checkpoint in folder ``path``.

    ``overrides`` choose implementations (``attention="torch_sdpa"``, ``layernorm="torch"``, ``dropout=0.0``, ...);
    the architecture comes from ``config.json``. The model is returned in eval mode, in float32.
    """
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a Hugging Face model folder: config.json is missing")
    config = config_from_hf(json.loads((folder / "config.json").read_text()), **overrides)
    ours = state_dict_from_hf(_read_weights(folder))
    model = GPT(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(ours)), sorted(set(ours) - expected)
    if missing or unexpected:
        raise ValueError(
            f"the checkpoint in {folder} does not match its config.json: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    model.load_state_dict(ours)
    return model.eval()


def save_hf_gpt2(model: GPT, path: str | Path) -> None:
    """Write ``config.json`` and ``model.safetensors`` into folder ``path``, loadable by
    ``transformers.GPT2LMHeadModel.from_pretrained(path)``."""
    from safetensors.torch import save_file

    hf_config = config_to_hf(model.config)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n")
    save_file(state_dict_to_hf(model), folder / "model.safetensors", metadata={"format": "pt"})


def from_pretrained(name_or_path: str | Path, **overrides: Any) -> GPT:
    """A GPT-2 from a local HF folder, or from the Hub by name (``"gpt2"``, ``"gpt2-xl"``, ...) via
    ``huggingface_hub.snapshot_download``; without the files or a network connection this is a clear error."""
    if Path(name_or_path).is_dir():
        return load_hf_gpt2(name_or_path, **overrides)
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            repo_id=str(name_or_path),
            allow_patterns=["config.json", "model.safetensors", "model.safetensors.index.json", "model-*.safetensors"],
        )
    except Exception as error:  # no huggingface_hub, no network, unknown repository, ...: one clear message
        raise FileNotFoundError(
            f"could not get {name_or_path!r}: it is not a local folder and downloading it from the Hugging Face Hub "
            f"failed ({type(error).__name__}: {error}). Download the files on a machine with network access, e.g. "
            f"`huggingface-cli download {name_or_path} config.json model.safetensors --local-dir DIR`, then "
            f"call from_pretrained(DIR)."
        ) from error
    return load_hf_gpt2(folder, **overrides)
