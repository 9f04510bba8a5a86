"""The Lightning module: fit a tiny GPT2 a few steps with accumulation, reload the checkpoint, generate."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader

pl = pytest.importorskip("lightning.pytorch", reason="the optional `lightning` extra is not installed")

from scratchformers.reference.generate import generate  # noqa: E402
from scratchformers.reference.model import GPT  # noqa: E402
from scratchformers.train.batches import TokenWindowDataset  # noqa: E402
from scratchformers.train.lightning import GPT2  # noqa: E402
from scratchformers.train.optim import MuonAdamW, lr_factor  # noqa: E402
from scratchformers.train.prepare_shakespeare import prepare_shakespeare  # noqa: E402
from scratchformers.train.tokenizers import load_tokenizer  # noqa: E402

MODEL = dict(max_len=16, emb_dim=32, num_layers=1, num_heads=2, attention="torch_sdpa", layernorm="torch")


def test_fit_reload_and_generate(tmp_path):
    meta = prepare_shakespeare(tmp_path / "data", tokenizer="char", variant="tiny")
    loader = DataLoader(TokenWindowDataset(tmp_path / "data", "train", 16), batch_size=4, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    val_loader = DataLoader(TokenWindowDataset(tmp_path / "data", "val", 16), batch_size=4)
    torch.manual_seed(0)
    model = GPT2(vocab_size=meta["vocab_size"], learning_rate=1e-2, warmup_steps=2, **MODEL)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = pl.Trainer(max_steps=6, accumulate_grad_batches=2, gradient_clip_val=1.0, accelerator="cpu",
                         logger=False, enable_checkpointing=True, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=2,
                         val_check_interval=4)
    trainer.fit(model, loader, val_loader)
    assert trainer.global_step == 6  # optimizer steps: 12 batches with accumulation 2
    assert 0 < trainer.callback_metrics["val_loss"].item() < 10
    assert not torch.equal(initial["transformer.wte.weight"], model.state_dict()["transformer.wte.weight"])
    # the schedule is our lr_factor, stepped once per optimizer step (after 6 steps: step 6's value)
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(1e-2 * lr_factor(6, 2, 6, 0.1))
    groups = trainer.optimizers[0].param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]

    path = trainer.checkpoint_callback.best_model_path
    reloaded = GPT2.load_from_checkpoint(path)
    assert reloaded.config == model.config
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in reloaded.state_dict().items())
    text = reloaded.generate("ROMEO:", 12, tokenizer=load_tokenizer(meta), seed=0)
    assert text.startswith("ROMEO:") and len(text) == len("ROMEO:") + 12
    assert generate(reloaded, "ROMEO:", 12, tokenizer=load_tokenizer(meta), seed=0) == text


def test_fit_with_muon_and_wsd_saves_and_resumes_its_state(tmp_path):
    """optimizer="muon": the combined optimizer, each group on its own peak times the schedule; its momentum goes
    into Lightning's checkpoint and comes back on resume."""
    data = torch.randint(0, 50, (24, 17))  # 6 batches: the checkpoint at step 6 ends an epoch
    loader = DataLoader(torch.utils.data.TensorDataset(data[:, :-1], data[:, 1:]), batch_size=4)
    settings = dict(vocab_size=50, learning_rate=1e-2, warmup_steps=2, max_steps=8, optimizer="muon",
                    muon_learning_rate=0.05, schedule="wsd", cooldown_frac=0.5, **MODEL)
    quiet = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                 enable_model_summary=False, gradient_clip_val=1.0, limit_val_batches=0)
    torch.manual_seed(0)
    trainer = pl.Trainer(max_steps=6, **quiet)
    trainer.fit(GPT2(**settings), loader)
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, MuonAdamW)
    factor = lr_factor(6, 2, 8, 0.1, "wsd", 0.5)  # in the cool-down: (8 - 6) / 4
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-2 * factor, 1e-2 * factor, 0.05 * factor])
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    saved = torch.load(tmp_path / "m.ckpt", weights_only=True)["optimizer_states"][0]
    assert sum("momentum_buffer" in state for state in saved["state"].values()) == 4  # c_attn, c_proj, c_fc, c_proj

    resumed = pl.Trainer(max_steps=8, **quiet)
    resumed.fit(GPT2(**settings), loader, ckpt_path=tmp_path / "m.ckpt")
    assert resumed.global_step == 8
    optimizer = resumed.optimizers[0]
    assert optimizer.muon.state is optimizer.state and optimizer.muon.param_groups[0] is optimizer.param_groups[2]
    assert optimizer.param_groups[2]["lr"] == pytest.approx(0.05 * lr_factor(8, 2, 8, 0.1, "wsd", 0.5))


def test_the_lightning_module_is_a_gpt_with_its_state_dict_keys(tmp_path):
    torch.manual_seed(0)
    model = GPT2(vocab_size=50, **MODEL)
    assert isinstance(model, GPT) and isinstance(model, pl.LightningModule)
    plain = GPT(model.config)
    plain.load_state_dict(model.state_dict())  # strict: the very same keys
    idx = torch.randint(0, 50, (2, 8))
    torch.testing.assert_close(plain(idx)[0], model(idx)[0])


def test_missing_lightning_is_a_clear_error():
    code = ("import sys; sys.modules['lightning'] = None; sys.modules['lightning.pytorch'] = None\n"
            "from scratchformers.train.lightning import GPT2")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "pip install 'scratchformers[lightning]'" in result.stderr


def test_load_from_checkpoint_refuses_another_architecture(tmp_path):
    """``num_heads=4`` on a 2-head checkpoint changes no shape but reads the weights as other heads: refused,
    naming both values; an implementation (``attention``) may change."""
    from scratchformers.train.checkpoint import CheckpointError

    model = GPT2(vocab_size=50, max_steps=10, **MODEL)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "pytorch-lightning_version": pl.__version__}, tmp_path / "m.ckpt")
    with pytest.raises(CheckpointError, match=r"num_heads=4 \(the checkpoint's is 2\)"):
        GPT2.load_from_checkpoint(tmp_path / "m.ckpt", num_heads=4)
    assert GPT2.load_from_checkpoint(tmp_path / "m.ckpt", attention="reference").config.attention == "reference"


def test_load_from_checkpoint_of_another_file_names_its_loader(char_data, tmp_path):
    from scratchformers.train.checkpoint import CheckpointError
    from scratchformers.train.config import get_train_config
    from scratchformers.train.trainer import Trainer

    config = get_train_config(data_dir=char_data, shakespeare_variant="tiny", out_dir=str(tmp_path / "run"),
                              num_layers=1, num_heads=2, emb_dim=32, max_len=16, batch_size=4, max_steps=1,
                              eval_interval=1, eval_batches=1, num_samples=0, plot=False, num_threads=1)
    Trainer(config, progress=False).fit()
    with pytest.raises(CheckpointError, match=r"was written by `scratchformers train`, not by Lightning; load it "
                                              r"with scratchformers\.train\.checkpoint\.load_checkpoint"):
        GPT2.load_from_checkpoint(tmp_path / "run" / "last.pt")
    (tmp_path / "garbage.ckpt").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match="is not a Lightning checkpoint"):
        GPT2.load_from_checkpoint(tmp_path / "garbage.ckpt")


def test_fit_with_a_vocabulary_smaller_than_the_data_is_one_clear_error():
    data = torch.randint(0, 60, (8, 17))
    loader = DataLoader(torch.utils.data.TensorDataset(data[:, :-1], data[:, 1:]), batch_size=4)
    model = GPT2(vocab_size=40, max_steps=2, **MODEL)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    top = int(data.max())
    with pytest.raises(ValueError, match=rf"the data holds token id {top}, but this GPT2 has vocab_size=40: build it "
                                         rf"with vocab_size of at least {top + 1}"):
        trainer.fit(model, loader)
