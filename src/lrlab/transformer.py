"""A small decoder-only transformer over bytes: the model of the ``lm`` task.

Written after nanoGPT's ``model.py`` (repository karpathy/nanoGPT: ``CausalSelfAttention``,
``MLP``, ``Block``, ``GPT.__init__`` and ``GPT._init_weights``), at a size a CPU trains in a
minute:

- token and **learned** positional embeddings, added (GPT-2's choice; rotary positions would
  leave no parameter to the position table but cost more kernels per step);
- ``layers`` **pre-norm** blocks ``x + attn(ln1(x))``, ``x + mlp(ln2(x))``, the attention
  causal through ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` (no
  mask buffer), the MLP ``Linear(d, 4d) -> GELU -> Linear(4d, d)``;
- a final ``LayerNorm`` and a bias-free head ``Linear(d, vocab)`` whose weight *is* the token
  embedding's (tied: one tensor, nanoGPT's ``wte.weight = lm_head.weight``). The head is the
  model's last registered module, so LipschitzLR (`lrlab.lipschitz.head.find_head`) watches
  it, its input the final LayerNorm's output, one row per position;
- no dropout (a minute of training does not overfit 400 KB of text) and biases in the other
  Linear and LayerNorm layers (GPT-2's, nanoGPT's ``bias=True``).

Initialisation is nanoGPT's: every Linear and Embedding weight ``N(0, 0.02)``, biases zero,
LayerNorms ``(1, 0)``, and the residual projections (the attention's and the MLP's output
``proj``) ``N(0, 0.02 / sqrt(2 * layers))`` (GPT-2's scaling of the residual path). The tied
weight is drawn once, as the head's.

Inputs are byte indices ``(B, T)`` (any integer dtype ``nn.Embedding`` takes), ``T <=
context``; the output is logits ``(B, T, vocab)``, position ``t`` predicting byte ``t + 1``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lrlab.validate import check_int, fail

# nanoGPT's (and GPT-2's) standard deviation of every initial weight.
INIT_STD = 0.02


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: one ``Linear(d, 3d)`` for queries, keys and values,
    ``scaled_dot_product_attention(is_causal=True)`` per head, an output ``Linear(d, d)``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.heads = heads

    def forward(self, x: Tensor) -> Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        shape = (batch, length, self.heads, width // self.heads)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))  # (B, heads, T, d / heads)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, length, width))  # type: ignore[no-any-return]


class Block(nn.Module):
    """A pre-norm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.proj = nn.Linear(4 * width, width)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.proj(nn.functional.gelu(self.fc(self.ln2(x))))  # type: ignore[no-any-return]


class ByteTransformer(nn.Module):
    """A decoder-only transformer (see the module docstring): ``context`` positions,
    ``layers`` blocks of ``width`` channels in ``heads`` heads, ``vocab`` tokens (256: bytes).

    >>> model = ByteTransformer(context=16, width=32, layers=2, heads=4)
    >>> model(torch.zeros(3, 16, dtype=torch.long)).shape
    torch.Size([3, 16, 256])
    >>> model.head.weight is model.token.weight
    True
    """

    def __init__(
        self,
        *,
        context: int = 64,
        width: int = 128,
        layers: int = 4,
        heads: int = 4,
        vocab: int = 256,
    ) -> None:
        super().__init__()
        owner = "ByteTransformer"
        for name, value in (("context", context), ("width", width), ("layers", layers)):
            check_int(owner, name, value, minimum=1)
        check_int(owner, "heads", heads, minimum=1)
        check_int(owner, "vocab", vocab, minimum=2)
        if width % heads:
            raise fail(owner, "heads", heads, f"a divisor of width={width}")
        self.context = context
        self.token = nn.Embedding(vocab, width)
        self.position = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.token.weight = self.head.weight  # tied: one tensor
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, 0.0, INIT_STD)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        residual_std = INIT_STD / math.sqrt(2 * layers)
        for block in self.modules():
            if isinstance(block, Block):
                nn.init.normal_(block.attn.proj.weight, 0.0, residual_std)
                nn.init.normal_(block.proj.weight, 0.0, residual_std)

    def forward(self, tokens: Tensor) -> Tensor:
        length = tokens.shape[1]
        if length > self.context:
            raise ValueError(
                f"ByteTransformer: inputs must be at most context={self.context} long, got {length}"
            )
        positions = torch.arange(length, device=tokens.device)
        x = self.token(tokens) + self.position(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))  # type: ignore[no-any-return]
