"""Size limits of the Triton kernels, in a module that imports neither torch nor Triton: ``scratchformers.fast``
checks its inputs against them before it imports any kernel (and so before Triton decides between GPU and
interpreter)."""

MAX_HEAD_DIM = 128  # flash attention keeps a (BLOCK, head_dim) tile of Q, K, V and O on chip
MAX_HIDDEN = 8192  # LayerNorm keeps a whole row on chip
MAX_COLS = 32768  # so does the row softmax

# Shared memory one program (thread block) may use on sm_90 (H100/H200): 227 KiB, the opt-in maximum per block.
SM90_MAX_SHARED_BYTES = 227 * 1024
