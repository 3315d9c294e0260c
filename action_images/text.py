"""Pluggable text encoders: instructions → token embeddings for the transformer's cross-attention.

Conventions (every encoder):
- ``forward(prompts)`` takes a list of ``B`` strings and returns ``(embeddings, mask)``:
  embeddings float32 ``(B, L, dim)``, mask bool ``(B, L)`` with True at real tokens. ``L`` is the
  encoder's fixed ``max_length``; longer prompts are truncated.
- Embeddings are exactly zero wherever the mask is False, as Wan zeroes its text embeddings past each
  prompt's length. The empty prompt ``""`` (the unconditional branch of classifier-free guidance)
  is therefore all zeros with an all-False mask in ``VocabularyTextEncoder``.

Two encoders:
- ``VocabularyTextEncoder``: the default; a small trainable embedding over the words of a dataset's
  instructions. Works offline on a CPU.
- ``UMT5TextEncoder``: the Wan text encoder (UMT5) loaded from a local folder, frozen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

import torch
from torch import Tensor, nn


class TextEncoder(nn.Module):
    """The interface. ``dim`` is the width of the embeddings (the transformer's ``text_dim``)."""

    dim: int

    def forward(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits (any script); everything else separates


def split_words(text: str) -> list[str]:
    """The vocabulary encoder's tokenizer: lowercase, split on anything but letters and digits."""
    return _WORD.findall(text.lower())


class VocabularyTextEncoder(TextEncoder):
    """Word embeddings learned with the model, over a fixed vocabulary.

    Token ids: 0 = ``<pad>``, 1 = ``<unk>`` (any word outside the vocabulary), then the vocabulary in
    sorted order. A prompt becomes ``LayerNorm(word embedding + learned position embedding)`` per
    word, at most ``max_length`` words, zero past its end.

    ``context_layers`` > 0 adds that many pre-norm transformer-encoder layers over the prompt's words,
    so each word's embedding knows its neighbours, as UMT5's do: without them "red" is the same token in
    "the red cube on the blue pad" and "the blue cube on the red pad", and Wan's cross-attention (which
    never updates the text) has to bind colours to objects from word positions alone.

    To save and rebuild: ``VocabularyTextEncoder(**encoder.config)`` then ``load_state_dict``.
    """

    def __init__(self, vocabulary: Iterable[str], dim: int = 64, max_length: int = 16, context_layers: int = 0, context_heads: int = 4):
        super().__init__()
        self.vocabulary = sorted(set(vocabulary))
        self.dim = dim
        self.max_length = max_length
        self.context_layers = context_layers
        self.context_heads = context_heads
        self._ids = {word: index for index, word in enumerate(self.vocabulary, start=2)}
        self.word_embedding = nn.Embedding(2 + len(self.vocabulary), dim, padding_idx=0)
        self.position_embedding = nn.Parameter(torch.randn(max_length, dim) * 0.02)
        self.norm = nn.LayerNorm(dim)
        self.context = None
        if context_layers:
            layer = nn.TransformerEncoderLayer(dim, context_heads, dim_feedforward=4 * dim, dropout=0.0, batch_first=True, norm_first=True)
            self.context = nn.TransformerEncoder(layer, context_layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)

    @classmethod
    def from_instructions(cls, instructions: Iterable[str], **options) -> VocabularyTextEncoder:
        """The vocabulary is every word of the given instructions (e.g. all task instructions of a
        dataset); `options` are the other `__init__` arguments."""
        vocabulary = {word for instruction in instructions for word in split_words(instruction)}
        return cls(vocabulary, **options)

    @property
    def config(self) -> dict:
        """Everything ``__init__`` needs to rebuild this encoder (the weights are in ``state_dict``)."""
        config = {"vocabulary": list(self.vocabulary), "dim": self.dim, "max_length": self.max_length}
        if self.context_layers:  # older checkpoints have no such keys
            config.update(context_layers=self.context_layers, context_heads=self.context_heads)
        return config

    def tokenize(self, prompts: list[str]) -> Tensor:
        """Token ids ``(B, max_length)``, long, padded with 0 and truncated to ``max_length``."""
        ids = torch.zeros(len(prompts), self.max_length, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            words = split_words(prompt)[: self.max_length]
            ids[row, : len(words)] = torch.tensor([self._ids.get(word, 1) for word in words], dtype=torch.long)
        return ids

    def forward(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        ids = self.tokenize(prompts).to(self.word_embedding.weight.device)
        mask = ids != 0
        embeddings = self.norm(self.word_embedding(ids) + self.position_embedding)
        if self.context is not None:
            # An empty prompt (guidance's unconditional branch) would attend to nothing: let it attend to its
            # first slot, whose output is zeroed below like every padding slot.
            attends = mask.clone()
            attends[:, 0] = True
            embeddings = self.context(embeddings, src_key_padding_mask=~attends)
        # LayerNorm's bias would make padding non-zero; the transformer must see exact zeros there.
        return embeddings.float().masked_fill(~mask.unsqueeze(-1), 0.0), mask


class UMT5TextEncoder(TextEncoder):
    """The Wan text encoder: a UMT5 encoder and its tokenizer from a local folder, frozen, eval mode.

    Prompts are cleaned, tokenized (with the end-of-sequence token, padded to ``max_length``, truncated)
    and encoded with the attention mask; embeddings past each prompt's length are set to zero — the
    steps ``WanPipeline._get_t5_prompt_embeds`` takes, so embeddings match what Wan was trained with.
    Wan uses ``max_length = 512``.
    """

    def __init__(self, tokenizer, text_encoder: nn.Module, max_length: int = 512):
        super().__init__()
        # Wan takes each prompt's first seq_len positions as its tokens, which assumes right padding.
        tokenizer.padding_side = "right"
        self.tokenizer = tokenizer
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.dim = text_encoder.config.d_model
        self.max_length = max_length

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        text_encoder_subfolder: str | None = "text_encoder",
        tokenizer_subfolder: str | None = "tokenizer",
        max_length: int = 512,
        dtype: torch.dtype = torch.float32,
    ) -> UMT5TextEncoder:
        """Load from a local folder laid out like a Wan checkpoint (``text_encoder/``, ``tokenizer/``);
        a subfolder of None means the files sit in ``path`` itself."""
        from transformers import AutoTokenizer, UMT5EncoderModel

        tokenizer = AutoTokenizer.from_pretrained(str(path), subfolder=tokenizer_subfolder or "")
        text_encoder = UMT5EncoderModel.from_pretrained(
            str(path), subfolder=text_encoder_subfolder or "", dtype=dtype
        )
        return cls(tokenizer, text_encoder, max_length=max_length)

    def train(self, mode: bool = True) -> UMT5TextEncoder:
        # A parent module's .train() must not switch on the frozen encoder's dropout.
        super().train(mode)
        self.text_encoder.eval()
        return self

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        # Wan's own prompt cleaning (HTML unescaping, whitespace collapsing, ftfy when installed).
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        tokens = self.tokenizer(
            [prompt_clean(prompt) for prompt in prompts],
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        device = next(self.text_encoder.parameters()).device
        ids, attention_mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
        hidden = self.text_encoder(ids, attention_mask).last_hidden_state.float()
        lengths = attention_mask.gt(0).sum(dim=1)
        mask = torch.arange(self.max_length, device=device) < lengths[:, None]
        return hidden.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def make_text_encoder(name: str, **kwargs) -> TextEncoder:
    """Build a text encoder by name: ``"vocabulary"`` → ``VocabularyTextEncoder(**kwargs)``
    (``VocabularyTextEncoder.from_instructions(**kwargs)`` when given ``instructions``),
    ``"umt5"`` → ``UMT5TextEncoder.from_pretrained(**kwargs)``."""
    if name == "vocabulary":
        if "instructions" in kwargs:
            return VocabularyTextEncoder.from_instructions(**kwargs)
        return VocabularyTextEncoder(**kwargs)
    if name == "umt5":
        return UMT5TextEncoder.from_pretrained(**kwargs)
    raise ValueError(f"unknown text encoder {name!r}; known text encoders: umt5, vocabulary")
