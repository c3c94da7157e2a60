"""The compared cases: their inputs (texts of exact token counts, image files) and their FLOPs.

Case names follow `jclip bench --case`: `text:LEN` is one text of LEN tokens with [CLS] and
[SEP], `text:LENxBATCH` is BATCH such texts, `image` is one image and `image:BATCH` a batch.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

# The cases of the comparison table, in table order.
COMPARE_CASES = ("image", "image:8", "text:16", "text:64", "text:512", "text:64x8")
# Words that the BERT uncased vocabulary of jina-clip-v1 keeps whole, one token each (the
# same list as `jclip bench`). Every word is checked against the model's tokenizer.
ONE_TOKEN_WORDS = (
    "a", "photo", "of", "the", "cat", "sitting", "on", "red", "chair", "near", "window", "in",
    "morning", "light", "with", "small", "dog", "and", "green", "plant", "beside", "old", "wooden",
    "table",
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
_TEXT_CASE = re.compile(r"^text:(\d+)(?:x(\d+))?$")
_IMAGE_CASE = re.compile(r"^image(?::(\d+))?$")


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "text" or "image"
    batch: int
    tokens: int  # per text; 0 for images

    @classmethod
    def parse(cls, name: str) -> "Case":
        """Parse a case name: text:LEN, text:LENxBATCH, image or image:BATCH."""
        if match := _TEXT_CASE.match(name):
            tokens, batch = int(match[1]), int(match[2] or 1)
            if tokens < 3 or batch < 1:
                raise ValueError(f"invalid case {name!r}: a text needs at least 3 tokens and a batch at least 1")
            return cls(name, "text", batch, tokens)
        if match := _IMAGE_CASE.match(name):
            batch = int(match[1] or 1)
            if batch < 1:
                raise ValueError(f"invalid case {name!r}: a batch needs at least 1 image")
            return cls(name, "image", batch, 0)
        raise ValueError(f"invalid case {name!r}: expected text:LEN, text:LENxBATCH, image or image:BATCH")

    @property
    def label(self) -> str:
        """Return the table description, e.g. "8 texts × 64 tokens"."""
        if self.kind == "image":
            return "1 image" if self.batch == 1 else f"{self.batch} images"
        if self.batch == 1:
            return f"text, {self.tokens} tokens"
        return f"{self.batch} texts × {self.tokens} tokens"


def raw_tokenizer(path: Path) -> Tokenizer:
    """Load tokenizer.json without truncation or padding, to count tokens exactly."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def text_with_tokens(tokenizer: Tokenizer, tokens: int) -> str:
    """Return a text that `tokenizer` turns into exactly `tokens` ids, [CLS] and [SEP] included."""
    for word in ONE_TOKEN_WORDS:
        count = len(tokenizer.encode(word).ids)
        if count != 3:
            raise ValueError(f"the tokenizer splits {word!r} into {count} ids with [CLS] and [SEP], expected 3; "
                             "this tokenizer.json is not the BERT uncased vocabulary of jina-clip-v1")
    words = [ONE_TOKEN_WORDS[i % len(ONE_TOKEN_WORDS)] for i in range(tokens - 2)]
    text = " ".join(words)
    actual = len(tokenizer.encode(text).ids)
    if actual != tokens:
        raise ValueError(f"a benchmark text of {len(words)} words gave {actual} tokens, expected {tokens}")
    return text


def image_files(directory: Path) -> list:
    """Return the image files of `directory`, sorted by name."""
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no image files in {directory}")
    return files


def case_inputs(case: Case, tokenizer: Tokenizer, images: list) -> dict:
    """Return the request fields of a case: {"texts": [...]} or {"images": [paths]}."""
    if case.kind == "text":
        return {"texts": [text_with_tokens(tokenizer, case.tokens)] * case.batch}
    return {"images": [str(images[i % len(images)]) for i in range(case.batch)]}


def text_flops(config: dict, tokens: int) -> float:
    """Return the FLOPs of the text tower for one text: matrix products of the linear layers and
    of attention (Q·Kᵀ and P·V), two per multiply-add, as `jclip bench` counts them."""
    kwargs = config["text_config"]["hf_model_config_kwargs"]
    hidden, inner, layers = kwargs["hidden_size"], kwargs["intermediate_size"], kwargs["num_hidden_layers"]
    linear = tokens * hidden * (3 * hidden + hidden + 2 * inner + inner)  # Wqkv, out_proj, gated_layers, wo
    attention = 2 * tokens * tokens * hidden
    return 2.0 * layers * (linear + attention)


def image_flops(config: dict) -> float:
    """Return the FLOPs of the image tower for one image, counted as in `text_flops`."""
    vision = config["vision_config"]
    width, layers, patch = vision["width"], vision["layers"], vision["patch_size"]
    mlp = int(width * vision["mlp_ratio"])
    patches = (vision["image_size"] // patch) ** 2
    tokens = patches + 1
    patch_embed = patches * 3 * patch * patch * width
    linear = tokens * width * (3 * width + width + 2 * mlp + mlp)  # q/k/v, proj, w1 and w2, w3
    attention = 2 * tokens * tokens * width
    return 2.0 * (patch_embed + layers * (linear + attention))


def case_flops(case: Case, config: dict) -> float:
    if case.kind == "text":
        return case.batch * text_flops(config, case.tokens)
    return case.batch * image_flops(config)
