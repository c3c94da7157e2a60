"""JinaBERT v2 text tower of jina-clip-v1, written from its description in plain PyTorch.

The module uses the flash-attn style checkpoint names (`emb_ln`, `encoder.layers.N.mixer.Wqkv`,
`norm1`, `mlp.gated_layers`, `mlp.wo`, `norm2`). `checkpoint.py` converts classic names.
Shapes: B batch, T tokens, H hidden, A heads, D head dim (H = A * D), I GEGLU inner size.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

PAD_TOKEN_ID = 0
# Additive score of padded keys, as in flash-attn's non-flash SelfAttention.
PADDING_SCORE = -10000.0
DEFAULT_TYPE_VOCAB_SIZE = 2


@dataclass(frozen=True)
class TextConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    layer_norm_eps: float
    type_vocab_size: int = DEFAULT_TYPE_VOCAB_SIZE

    @classmethod
    def from_clip_config(cls, clip_config: dict) -> "TextConfig":
        """Read the tower's hyper-parameters from `text_config.hf_model_config_kwargs`."""
        kwargs = clip_config["text_config"]["hf_model_config_kwargs"]
        return cls(
            vocab_size=kwargs["vocab_size"],
            hidden_size=kwargs["hidden_size"],
            num_layers=kwargs["num_hidden_layers"],
            num_heads=kwargs["num_attention_heads"],
            intermediate_size=kwargs["intermediate_size"],
            layer_norm_eps=kwargs["layer_norm_eps"],
            type_vocab_size=kwargs.get("type_vocab_size", DEFAULT_TYPE_VOCAB_SIZE),
        )


def alibi_slopes(num_heads: int) -> list:
    """Return the ALiBi slope of every head, head 0 first.

    For a power of two n the slopes are 2^(-8(h+1)/n). Otherwise the first 2^floor(log2 n)
    slopes come from that power of two, followed by every other slope of twice that power
    (the rule of Press et al., "Train Short, Test Long", as used by MosaicML and flash-attn).
    """
    def power_of_two_slopes(n: int) -> list:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_two_slopes(num_heads)
    closest = 2 ** math.floor(math.log2(num_heads))
    extra = alibi_slopes(2 * closest)[0::2][: num_heads - closest]
    return power_of_two_slopes(closest) + extra


def alibi_bias(num_heads: int, num_tokens: int) -> torch.Tensor:
    """Return the symmetric ALiBi penalty -slope_h * |i - j| as float32 [A, T, T]."""
    slopes = torch.tensor(alibi_slopes(num_heads), dtype=torch.float32)
    positions = torch.arange(num_tokens)
    distance = (positions[None, :] - positions[:, None]).abs().to(torch.float32)
    return -slopes[:, None, None] * distance[None, :, :]


class SelfAttention(nn.Module):
    """Bidirectional multi-head attention with a fused q/k/v projection and ALiBi."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        # Wqkv output rows are laid out "(three heads dim)": q rows, then k rows, then v rows.
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=True)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=True)

    def forward(self, hidden: torch.Tensor, score_bias: torch.Tensor) -> torch.Tensor:
        # hidden is [B, T, H] and score_bias [B, A, T, T] (ALiBi plus padding mask).
        batch, tokens, width = hidden.shape
        qkv = self.Wqkv(hidden).view(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, A, T, D]

        scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        probs = torch.softmax(scores + score_bias, dim=-1)
        context = (probs @ v).transpose(1, 2).reshape(batch, tokens, width)
        return self.out_proj(context)


class GegluMlp(nn.Module):
    """GEGLU feed-forward: GELU(first half of gated_layers) * second half, then wo."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size, bias=True)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        projected = self.gated_layers(hidden)  # [B, T, 2I]
        gated = projected[..., : self.intermediate_size]
        linear = projected[..., self.intermediate_size :]
        return self.wo(F.gelu(gated, approximate="none") * linear)


class Layer(nn.Module):
    """Post-LN encoder layer: norm1(x + attn(x)), then norm2(x + mlp(x))."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.mixer = SelfAttention(config)
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = GegluMlp(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, score_bias: torch.Tensor) -> torch.Tensor:
        hidden = self.norm1(hidden + self.mixer(hidden, score_bias))
        return self.norm2(hidden + self.mlp(hidden))


class Embeddings(nn.Module):
    def __init__(self, config: TextConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)


class Encoder(nn.Module):
    def __init__(self, config: TextConfig):
        super().__init__()
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_layers))


class JinaBertTextTower(nn.Module):
    """Text tower with the parameter names of `text_model.transformer.*` in the checkpoint."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.emb_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = Encoder(config)

    def forward_hidden_states(self, input_ids: torch.Tensor) -> list:
        """Return [after emb_ln, after layer 0, ..., after layer L-1], each [B, T, H].

        The key mask is `input_ids != 0`, so a [PAD] id inside a text is masked like padding.
        Every row is computed, including rows of padded positions.
        """
        batch, tokens = input_ids.shape
        keep = input_ids != PAD_TOKEN_ID  # [B, T]

        # Token type ids are never passed to the tower, so every token uses row 0.
        hidden = self.embeddings.word_embeddings(input_ids) + self.embeddings.token_type_embeddings.weight[0]
        hidden = self.emb_ln(hidden)

        padding = torch.zeros(batch, tokens, dtype=torch.float32)
        padding = padding.masked_fill(~keep, PADDING_SCORE)
        score_bias = alibi_bias(self.config.num_heads, tokens)[None] + padding[:, None, None, :]

        states = [hidden]
        for layer in self.encoder.layers:
            hidden = layer(hidden, score_bias)
            states.append(hidden)
        return states

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Return the mean-pooled, unnormalised embedding [B, H] over tokens with id != 0."""
        final = self.forward_hidden_states(input_ids)[-1]
        return mean_pool(final, input_ids != PAD_TOKEN_ID)


def mean_pool(hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Average hidden [B, T, H] over the positions where keep [B, T] is true."""
    weights = keep.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)
