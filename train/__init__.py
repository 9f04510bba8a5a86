"""Training: the embedded Shakespeare corpus, data preparation, the training loop, checkpoints and sampling."""
