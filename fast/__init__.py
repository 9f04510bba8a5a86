"""The fast path: drop-in replacements for the reference components.

Same signatures and ``state_dict`` keys as :mod:`scratchformers.reference`, so a checkpoint moves freely between
the two paths. GPU components run on the Triton kernels in :mod:`scratchformers.kernels`.
"""
