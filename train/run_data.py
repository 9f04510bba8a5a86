"""The data a training run reads: the dataset it asks for, prepared on first use (the embedded Shakespeare) and
checked against what was asked."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from scratchformers.train import ddp
from scratchformers.train.datasets import SHAKESPEARE, check_spec, requested_spec
from scratchformers.train.meta import DatasetMissingError, load_meta
from scratchformers.train.prepare_shakespeare import prepare_shakespeare
from scratchformers.train.staging import META_FILE, staged

if TYPE_CHECKING:
    from scratchformers.train.config import TrainConfig


def ensure_data(config: TrainConfig, ctx: ddp.DistContext) -> dict[str, Any]:
    """The metadata of the dataset a run asks for, checked against what was asked.

    The embedded Shakespeare is prepared first (by process 0; the others wait) when its folder holds no dataset.
    Data whose ``meta.json`` records another dataset, tokenizer, variant or number of BPE merges than the
    configuration asks for is refused with a message naming both (:func:`.datasets.check_spec`); so is data that
    records none (prepared by an older version). A dataset of another name (``--dataset NAME``) is taken as it is.
    """
    data_dir = config.resolved_data_dir()
    wanted = requested_spec(config)
    with ddp.main_process_first(ctx):
        missing = not (Path(data_dir) / META_FILE).is_file() and not staged(Path(data_dir) / META_FILE).is_file()
        if ctx.is_main and missing and wanted is not None and wanted.name == SHAKESPEARE:
            print(f"preparing the embedded Shakespeare ({wanted.variant}, {wanted.tokenizer} tokens) into {data_dir}")
            prepare_shakespeare(data_dir, wanted.tokenizer, wanted.variant, bpe_merges=config.bpe_merges)
    try:
        meta = load_meta(data_dir)
    except DatasetMissingError:
        if wanted is None:
            raise
        raise DatasetMissingError(f"no prepared dataset in {data_dir} ({META_FILE} is missing): run "
                                  f"`{wanted.prepare_command(data_dir)}` first") from None
    if wanted is not None:
        check_spec(meta, wanted, data_dir)
    return meta
