"""Type stubs of kiln's Rust extension module (import the classes from ``kiln``)."""

import os
import pathlib
from typing import Literal, Sequence, overload

import numpy as np
import numpy.typing as npt

__version__: str

Backend = Literal["auto", "wgpu", "ndarray", "flex"]
Precision = Literal["auto", "f32", "int8", "bf16"]

class TextEncoder:
    """A pretrained sentence encoder (a Hugging Face / sentence-transformers directory such as
    all-MiniLM-L6-v2), equal to sentence-transformers' ``SentenceTransformer.encode``.

    Args:
        path: the model directory (``config.json``, ``model.safetensors``, ``tokenizer.json``,
            and when present ``modules.json``, ``1_Pooling/config.json``,
            ``sentence_bert_config.json``).
        backend: ``"auto"`` (wgpu on a real GPU, else flex), ``"wgpu"``, ``"ndarray"`` or
            ``"flex"`` (kiln's fastest CPU backend).
        precision: arithmetic of the Linear layers: ``"f32"`` (sentence-transformers'
            numbers), ``"int8"``, ``"bf16"`` (CPUs with AVX-512 BF16), or ``"auto"`` (int8 for
            the output of ``kiln quantize``, else f32).

    Raises:
        FileNotFoundError: ``path`` or a file the model needs does not exist.
        NotADirectoryError: ``path`` is not a directory.
        ValueError: an unknown ``backend`` or ``precision``.
        RuntimeError: the model cannot be loaded (the message says why).

    The model is loaded once and shared: calls from several Python threads run at the same
    time (kiln releases the GIL while it computes).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        backend: Backend = "auto",
        precision: Precision = "f32",
    ) -> None: ...
    def embed(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        normalize: bool | None = None,
    ) -> npt.NDArray[np.float32]:
        """Sentence embeddings of ``texts``: float32 ``[len(texts), dim]``, rows in input order.

        Args:
            texts: a list of str.
            batch_size: texts per forward pass (texts are sorted by length first, so little
                padding is computed; the embeddings do not depend on it beyond float rounding).
            normalize: scale each embedding to unit length; ``None`` follows the model
                (``modules.json`` with a ``Normalize`` module).

        Raises:
            TypeError: ``texts`` is not a list of str.
            ValueError: ``batch_size`` is below 1.
        """
    @overload
    def similarity(self, a: str, b: str) -> float: ...
    @overload
    def similarity(self, a: Sequence[str], b: Sequence[str]) -> npt.NDArray[np.float32]: ...
    def similarity(
        self, a: str | Sequence[str], b: str | Sequence[str]
    ) -> float | npt.NDArray[np.float32]:
        """Cosine similarity of embeddings: a float for two str; for two lists, float32
        ``[len(a), len(b)]`` with ``[i, j]`` the similarity of ``a[i]`` and ``b[j]``."""
    def tokenize(self, texts: Sequence[str]) -> list[dict[str, list[int] | list[str]]]:
        """Tokenizes ``texts`` as the model sees them (lowercased when the model says so,
        truncated to ``max_seq_length``, with ``[CLS]`` and ``[SEP]``): per text,
        ``{"ids": list[int], "type_ids": list[int], "tokens": list[str]}``."""
    @property
    def dim(self) -> int:
        """Length of an embedding."""
    @property
    def max_seq_length(self) -> int:
        """Texts are truncated to this many tokens (special tokens included)."""
    @property
    def normalize(self) -> bool:
        """Whether embeddings are scaled to unit length by default (the model's
        ``modules.json``)."""
    @property
    def backend(self) -> Literal["wgpu", "ndarray", "flex"]:
        """The backend the model runs on."""
    @property
    def precision(self) -> Literal["f32", "int8", "bf16"]:
        """The arithmetic of the Linear layers."""
    @property
    def path(self) -> pathlib.Path:
        """The model directory."""

class TransformerEncoder:
    """PyTorch's ``torch.nn.TransformerEncoder`` (its semantics, defaults and ``state_dict``
    names), loaded from a directory exported from PyTorch (``config.json`` +
    ``model.safetensors``, see ``scripts/export_torch.py``). Build one with
    :meth:`TransformerEncoder.from_dir`.

    The model is loaded once and shared: calls from several Python threads run at the same
    time (kiln releases the GIL while it computes).
    """

    @staticmethod
    def from_dir(
        path: str | os.PathLike[str],
        backend: Backend = "auto",
        precision: Precision = "auto",
    ) -> TransformerEncoder:
        """Loads an encoder exported from PyTorch: ``config.json`` (``nn.TransformerEncoder``'s
        fields) and ``model.safetensors`` (its ``state_dict`` names).

        Args:
            path: the directory.
            backend: ``"auto"`` (wgpu on a real GPU, else flex), ``"wgpu"``, ``"ndarray"`` or
                ``"flex"``.
            precision: ``"auto"`` (int8 for the output of ``kiln quantize``, else f32),
                ``"f32"``, ``"int8"`` or ``"bf16"``.

        Raises:
            FileNotFoundError: ``path``, its ``config.json`` or ``model.safetensors`` is
                missing.
            ValueError: an unknown ``backend`` or ``precision``.
            RuntimeError: the files do not hold a valid model (the message names the key or
                field).
        """
    @overload
    def forward(
        self,
        src: npt.ArrayLike,
        src_mask: npt.ArrayLike | None = None,
        src_key_padding_mask: npt.ArrayLike | None = None,
        is_causal: bool = False,
        need_weights: Literal[False] = False,
    ) -> npt.NDArray[np.float32]: ...
    @overload
    def forward(
        self,
        src: npt.ArrayLike,
        src_mask: npt.ArrayLike | None = None,
        src_key_padding_mask: npt.ArrayLike | None = None,
        is_causal: bool = False,
        *,
        need_weights: Literal[True],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    def forward(
        self,
        src: npt.ArrayLike,
        src_mask: npt.ArrayLike | None = None,
        src_key_padding_mask: npt.ArrayLike | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> npt.NDArray[np.float32] | tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """PyTorch's ``forward(src, mask, src_key_padding_mask, is_causal)``, the same pass as
        ``kiln forward``.

        Args:
            src: float array ``[S, B, E]``, or ``[B, S, E]`` for a ``batch_first`` model
                (float16/float64 are converted to float32).
            src_mask: ``[S, S]`` or ``[B*nhead, S, S]``; bool (``True`` = may not attend) or
                float (added to the attention scores).
            src_key_padding_mask: ``[B, S]``; bool (``True`` = padding) or float (added).
            is_causal: apply the causal mask (together with any ``src_mask``).
            need_weights: also return every layer's per-head attention weights.

        Returns:
            float32, the shape of ``src``; with ``need_weights``, a tuple ``(output, weights)``
            with ``weights`` float32 ``[L, B, H, S, S]``.

        Raises:
            ValueError: an input of the wrong shape (the message names it and both shapes), or
                ``src`` holding NaN/inf.
            TypeError: an input that is not a float (or, for masks, bool) array.
        """
    @property
    def d_model(self) -> int:
        """``d_model``, the width of ``src``'s last dimension."""
    @property
    def nhead(self) -> int:
        """Attention heads per layer."""
    @property
    def num_layers(self) -> int:
        """Number of layers."""
    @property
    def batch_first(self) -> bool:
        """Whether ``src`` is ``[B, S, E]`` (else ``[S, B, E]``)."""
    @property
    def backend(self) -> Literal["wgpu", "ndarray", "flex"]:
        """The backend the model runs on."""
    @property
    def precision(self) -> Literal["f32", "int8", "bf16"]:
        """The arithmetic of the Linear layers."""
    @property
    def path(self) -> pathlib.Path:
        """The model directory."""
