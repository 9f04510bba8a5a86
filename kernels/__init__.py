"""Triton kernels, one family per file, each with its algorithm explained at the top of the file.

Run them on a CUDA GPU, or on CPU tensors under the Triton interpreter (``TRITON_INTERPRET=1`` set before
``import triton``), which is how the parity tests run in CI.
"""
