"""Backends: which implementation computes attention, LayerNorm and GELU, chosen by name in the config.

    GPT(get_config("gpt-mini", attention="torch_sdpa", layernorm="torch", gelu="torch"))

Each *kind* maps names to factories; a factory takes the :class:`GPTConfig` and returns the implementation:

    kind        names here              the factory returns
    attention   reference, torch_sdpa   f(q, k, v, *, causal, attention_mask, dropout_p) -> (out, weights or None)
    layernorm   reference, torch        an nn.Module over the last dimension with parameters weight and bias
    gelu        reference, torch        an nn.Module, elementwise, without parameters

The implementations of a kind hold the same parameters under the same names, so a ``state_dict`` moves between them.
Only the reference attention returns its weights (B, H, Tq, Tk); the others return None in their place.

Plugins. A backend that lives outside reference/ registers itself with :func:`register` when its module is imported,
and :data:`PLUGINS` names that module: :func:`build` imports it the first time the backend is asked for. So
``GPT(get_config("gpt-mini", attention="fast"))`` loads :mod:`scratchformers.fast.backends` (the Triton kernels)
without its caller importing anything from fast/, while reference/ itself never imports fast/ or kernels/: without
them every backend here works, and asking for ``"fast"`` is one clear error. A new backend is a module that calls
``register`` (import it before building the model, or add it to ``PLUGINS``).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import nn

from scratchformers.reference.attention import scaled_dot_product_attention, torch_sdpa_attention
from scratchformers.reference.gelu import GELU, TorchGELU
from scratchformers.reference.layernorm import LayerNorm, TorchLayerNorm

if TYPE_CHECKING:
    from scratchformers.reference.config import GPTConfig

Factory = Callable[["GPTConfig"], Any]
KINDS = ("attention", "layernorm", "gelu")  # each is a field of GPTConfig that holds a backend's name
PLUGINS: dict[tuple[str, str], str] = {  # (kind, name) -> the module that registers it
    ("attention", "fast"): "scratchformers.fast.backends",
    ("layernorm", "fast"): "scratchformers.fast.backends",
}
_FACTORIES: dict[str, dict[str, Factory]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str, factory: Factory) -> None:
    """Make ``name`` a backend of ``kind``: ``factory(config)`` builds it."""
    if kind not in _FACTORIES:
        raise ValueError(f"unknown kind of backend {kind!r}; the kinds are {', '.join(KINDS)}")
    _FACTORIES[kind][name] = factory


def names(kind: str) -> list[str]:
    """The names ``kind`` accepts: those registered so far, then the plugins'."""
    plugins = [name for plugin_kind, name in PLUGINS if plugin_kind == kind and name not in _FACTORIES[kind]]
    return [*_FACTORIES[kind], *plugins]


def check_name(kind: str, name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a backend of ``kind`` (a plugin's name counts without loading it)."""
    if name not in names(kind):
        raise ValueError(f"{kind} must be {_quoted(names(kind))}, got {name!r}")


def build(kind: str, config: GPTConfig) -> Any:
    """The ``kind`` implementation that ``config`` names (``config.attention``, ``.layernorm`` or ``.gelu``)."""
    name = getattr(config, kind)
    if name not in _FACTORIES[kind] and (kind, name) in PLUGINS:
        _load_plugin(kind, name)
    check_name(kind, name)
    return _FACTORIES[kind][name](config)


def _load_plugin(kind: str, name: str) -> None:
    module = PLUGINS[(kind, name)]
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise RuntimeError(
            f"{kind}={name!r} is provided by {module}, which cannot be imported here ({error}); use "
            f"{kind}={_quoted(list(_FACTORIES[kind]))}"
        ) from None
    if name not in _FACTORIES[kind]:
        raise RuntimeError(f"{module} was imported but registered no {kind} backend named {name!r}")


def _quoted(choices: list[str]) -> str:
    """'a', 'b' or 'c'."""
    quoted = [repr(choice) for choice in choices]
    return " or ".join(filter(None, (", ".join(quoted[:-1]), quoted[-1])))


def layernorm_factory(module: type[nn.Module]) -> Factory:
    """The factory of a LayerNorm class with the reference signature ``(dim, eps=..., bias=...)``, d_model wide."""
    return lambda config: module(config.model_dim, eps=config.layer_norm_eps, bias=config.bias)


register("attention", "reference", lambda config: scaled_dot_product_attention)
register("attention", "torch_sdpa", lambda config: torch_sdpa_attention)
register("layernorm", "reference", layernorm_factory(LayerNorm))
register("layernorm", "torch", layernorm_factory(TorchLayerNorm))
register("gelu", "reference", lambda config: GELU("tanh"))
register("gelu", "torch", lambda config: TorchGELU("tanh"))
