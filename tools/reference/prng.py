"""Deterministic weight generator shared with the Rust tests.

Every tensor of a synthetic checkpoint is a pure function of (seed, tensor name, shape, role),
so the Rust side can regenerate the same checkpoint bit for bit instead of storing it.
All integer arithmetic is wrapping u64 and every float operation is a single float32 operation,
in the order written below (no fused multiply-add).
"""

import math

import numpy as np

GAMMA = 0x9E3779B97F4A7C15
MIX_MUL_1 = 0xBF58476D1CE4E5B9
MIX_MUL_2 = 0x94D049BB133111EB
FNV_OFFSET_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
U64_MASK = (1 << 64) - 1

# Elements generated per numpy pass, which bounds each temporary u64 array to 64 MiB.
CHUNK_ELEMENTS = 1 << 23

# Roles decide how the uniform draw x in [-1, 1) becomes a weight value.
ROLE_LINEAR = "linear"  # Linear and conv weights: x * sqrt(3 / fan_in)
ROLE_BIAS = "bias"  # every bias vector: x * 0.1
ROLE_NORM_WEIGHT = "norm_weight"  # LayerNorm gain: 1 + x * 0.1
ROLE_NORM_BIAS = "norm_bias"  # LayerNorm shift: x * 0.1
ROLE_EMBEDDING = "embedding"  # embedding tables, cls_token, pos_embed: x
ROLE_CONSTANT = "constant"  # logit_scale: a fixed value, no draw

LOGIT_SCALE_VALUE = np.float32(4.0)
BIAS_SCALE = np.float32(0.1)
NORM_SCALE = np.float32(0.1)


def mix64(z: int) -> int:
    """Apply the SplitMix64 finaliser to one u64."""
    z &= U64_MASK
    z ^= z >> 30
    z = (z * MIX_MUL_1) & U64_MASK
    z ^= z >> 27
    z = (z * MIX_MUL_2) & U64_MASK
    z ^= z >> 31
    return z


def fnv1a64(data: bytes) -> int:
    """Hash bytes with 64-bit FNV-1a."""
    h = FNV_OFFSET_BASIS
    for byte in data:
        h ^= byte
        h = (h * FNV_PRIME) & U64_MASK
    return h


def tensor_seed(seed: int, name: str) -> int:
    """Derive the stream seed of one tensor from the checkpoint seed and its flash-style name."""
    return fnv1a64(name.encode("utf-8")) ^ mix64(seed)


def _mix64_array(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> np.uint64(30))
    z = z * np.uint64(MIX_MUL_1)
    z = z ^ (z >> np.uint64(27))
    z = z * np.uint64(MIX_MUL_2)
    z = z ^ (z >> np.uint64(31))
    return z


def uniform_f32(stream_seed: int, count: int) -> np.ndarray:
    """Return `count` float32 draws in [-1, 1) from one tensor's stream.

    Element i is (u - 2**23) / 2**23 with u = mix64(stream_seed + (i + 1) * GAMMA) >> 40,
    which float32 represents exactly.
    """
    out = np.empty(count, dtype=np.float32)
    seed_u64 = np.uint64(stream_seed & U64_MASK)
    gamma = np.uint64(GAMMA)
    with np.errstate(over="ignore"):
        for start in range(0, count, CHUNK_ELEMENTS):
            stop = min(start + CHUNK_ELEMENTS, count)
            counter = np.arange(start + 1, stop + 1, dtype=np.uint64)
            bits = _mix64_array(seed_u64 + counter * gamma) >> np.uint64(40)
            centered = bits.astype(np.int64) - (1 << 23)
            out[start:stop] = centered.astype(np.float32) / np.float32(1 << 23)
    return out


def linear_scale(fan_in: int) -> np.float32:
    """Return sqrt(3 / fan_in), computed in float64 and rounded once to float32."""
    return np.float32(math.sqrt(3.0 / fan_in))


def generate_tensor(seed: int, name: str, shape: tuple, role: str) -> np.ndarray:
    """Generate one float32 tensor of a synthetic checkpoint.

    `name` must be the flash-style checkpoint name, also when the output uses classic names.
    For ROLE_LINEAR the fan-in is the product of all dimensions after the first
    (in features for Linear, in_channels * kh * kw for conv).
    """
    count = math.prod(shape)
    if role == ROLE_CONSTANT:
        return np.full(shape, LOGIT_SCALE_VALUE, dtype=np.float32)

    x = uniform_f32(tensor_seed(seed, name), count)
    if role == ROLE_LINEAR:
        fan_in = math.prod(shape[1:])
        values = x * linear_scale(fan_in)
    elif role in (ROLE_BIAS, ROLE_NORM_BIAS):
        values = x * BIAS_SCALE
    elif role == ROLE_NORM_WEIGHT:
        values = np.float32(1.0) + x * NORM_SCALE
    elif role == ROLE_EMBEDDING:
        values = x
    else:
        raise ValueError(f"unknown weight role {role!r} for tensor {name}")

    assert values.dtype == np.float32, f"{name}: float32 arithmetic promoted to {values.dtype}"
    return values.reshape(shape)
