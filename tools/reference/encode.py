"""Tokenise, run and normalise: the encode_text / encode_image path of jina-clip-v1."""

from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from text_tower import PAD_TOKEN_ID, JinaBertTextTower
from vision_tower import image_embedding, image_hidden_states

# jina-clip-v1's encode_text truncates to 512 tokens, [CLS] and [SEP] included.
MAX_TEXT_TOKENS = 512
NORMALIZE_EPS = 1e-12


def load_tokenizer(path: Path) -> Tokenizer:
    """Load tokenizer.json with right truncation at MAX_TEXT_TOKENS and no padding."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(MAX_TEXT_TOKENS)
    tokenizer.no_padding()
    return tokenizer


def tokenize(tokenizer: Tokenizer, text: str) -> list:
    """Return the ids the text tower receives for one text, [CLS] and [SEP] included."""
    return tokenizer.encode(text).ids


def l2_normalize(embeddings: torch.Tensor) -> torch.Tensor:
    """Divide each row by max(L2 norm, 1e-12), as encode_text and encode_image do."""
    return F.normalize(embeddings, p=2, dim=-1, eps=NORMALIZE_EPS)


def pad_batch(ids_list: list) -> torch.Tensor:
    """Right-pad token id lists with id 0 to the longest one, as int64 [B, T]."""
    longest = max(len(ids) for ids in ids_list)
    batch = torch.full((len(ids_list), longest), PAD_TOKEN_ID, dtype=torch.int64)
    for row, ids in enumerate(ids_list):
        batch[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return batch


@torch.inference_mode()
def text_hidden_states(tower: JinaBertTextTower, ids: list) -> list:
    """Run one unpadded text and return its hidden states, each [T, H]."""
    states = tower.forward_hidden_states(torch.tensor([ids], dtype=torch.int64))
    return [state[0] for state in states]


@torch.inference_mode()
def text_embeddings(tower: JinaBertTextTower, ids_list: list) -> torch.Tensor:
    """Embed texts one at a time, without padding, and return unnormalised embeddings [B, H]."""
    return torch.cat([tower(torch.tensor([ids], dtype=torch.int64)) for ids in ids_list])


@torch.inference_mode()
def text_embeddings_batched(tower: JinaBertTextTower, ids_list: list) -> torch.Tensor:
    """Embed texts in one right-padded batch and return unnormalised embeddings [B, H]."""
    return tower(pad_batch(ids_list))


@torch.inference_mode()
def image_outputs(model, pixels: torch.Tensor):
    """Run images [B, 3, S, S] and return (hidden states [B, N, W] per layer, embeddings [B, W])."""
    states = image_hidden_states(model, pixels)
    return states, image_embedding(model, states[-1])
