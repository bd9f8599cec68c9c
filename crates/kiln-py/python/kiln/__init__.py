"""kiln: PyTorch-compatible Transformer encoders and sentence embeddings, computed in Rust.

- :class:`TextEncoder`: a sentence-transformers model directory (e.g. all-MiniLM-L6-v2), text
  in, float32 embeddings out, equal to sentence-transformers.
- :class:`TransformerEncoder`: ``torch.nn.TransformerEncoder`` exported from PyTorch, NumPy
  arrays in and out with PyTorch's semantics (masks, ``is_causal``, ``batch_first``).
- :mod:`kiln.embed_corpus`: embedding a corpus on a Ray cluster with Ray Data
  (``python -m kiln.embed_corpus``; needs ``ray[data]`` and ``pyarrow``).

Both classes load a model once and may be shared by threads: kiln releases the GIL while it
computes.
"""

from kiln._kiln import TextEncoder, TransformerEncoder, __version__

__all__ = ["TextEncoder", "TransformerEncoder", "__version__"]
