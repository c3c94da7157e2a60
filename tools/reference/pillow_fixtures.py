#!/usr/bin/env python3
"""Generate the Pillow + torchvision reference fixtures for jclip's image preprocessing.

Usage (from the repository root, with the packages of requirements-pillow.txt):

    python tools/reference/pillow_fixtures.py tests/fixtures/pillow

Writes, under the output folder:
  inputs/NAME.EXT           the image file fed to both pipelines
  expected/NAME.rgb.npy     Image.open(file).convert("RGB") as (H, W, 3) uint8 (decode cases)
  expected/NAME.crop.npy    Resize(size, BICUBIC) + CenterCrop(size) as (size, size, 3) uint8
  expected/values.f32.npy   the normalised tensor of the "values" case, (3, 16, 16) float32
  manifest.json             one entry per case; see FORMAT_VERSION below

Every image is generated from a fixed seed, so the output is the same on every run with the
same library versions (the manifest records them). The Rust tests read only these files.
"""

import hashlib
import io
import warnings
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image, ImageOps
from torchvision import transforms
from torchvision.transforms import InterpolationMode

FORMAT_VERSION = 1
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Crop size of the format cases: small, so the fixtures stay small.
FORMAT_CROP = 32


# ---------------------------------------------------------------------------------------------
# Synthetic content


def pattern(width, height, seed, noise=24):
    """An RGB uint8 image with gradients, edges, rings and a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    cx, cy = width * 0.37, height * 0.61
    r = np.hypot(x - cx, y - cy)
    red = 255 * x / max(width - 1, 1)
    green = 127.5 + 127.5 * np.sin(r / 3.0)
    blue = np.where(((x // 7) + (y // 5)) % 2 == 0, 230.0, 25.0)
    image = np.stack([red, green, blue], axis=-1)
    image += rng.normal(0, noise, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def smooth_pattern(width, height):
    """A large RGB image that compresses well: gradients and hard edges, no noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = np.where((np.floor(x / 37) + np.floor(y / 23)) % 2 == 0, 240.0, 10.0)
    image = np.stack([red, green, blue], axis=-1)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Writers for variants that Pillow cannot save (16-bit PNG and TIFF layouts, GIF frame offsets)


def png_chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bytes(rows, width, color_type, depth, palette=None, trns=None, exif=None):
    """A non-interlaced PNG; rows is a (height, samples per row) integer array."""
    raw = bytearray()
    for row in rows:
        if depth == 16:
            data = np.asarray(row, dtype=">u2").tobytes()
        elif depth == 8:
            data = np.asarray(row, dtype=np.uint8).tobytes()
        else:
            per_byte = 8 // depth
            data = bytearray((len(row) + per_byte - 1) // per_byte)
            for i, value in enumerate(row):
                data[i // per_byte] |= int(value) << (8 - depth * (i % per_byte + 1))
            data = bytes(data)
        raw += b"\0" + data
    height = len(rows)
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    if palette is not None:
        out += png_chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).ravel()))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    if exif is not None:
        out += png_chunk(b"eXIf", exif)
    out += png_chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    out += png_chunk(b"IEND", b"")
    return out


def tiff_bytes(width, height, strip, bits, samples, photometric, extra=None, big_endian=False):
    """A single-strip uncompressed TIFF."""
    e = ">" if big_endian else "<"
    short, long = 3, 4
    tags = [
        (256, long, [width]),
        (257, long, [height]),
        (258, short, [bits] * samples),
        (259, short, [1]),
        (262, short, [photometric]),
        (273, long, [0]),
        (277, short, [samples]),
        (278, long, [height]),
        (279, long, [len(strip)]),
        (284, short, [1]),
    ]
    if extra is not None:
        tags.append((338, short, extra))
    tags.sort()

    # Values longer than 4 bytes go to a blob area after the IFD, then the strip follows.
    blob_base = 8 + 2 + len(tags) * 12 + 4
    blobs = bytearray()
    ifd = bytearray(struct.pack(e + "H", len(tags)))
    strip_offset_field = None
    for tag, kind, values in tags:
        raw = b"".join(struct.pack(e + ("H" if kind == short else "I"), v) for v in values)
        if tag == 273:
            strip_offset_field = len(ifd) + 8
        if len(raw) <= 4:
            ifd += struct.pack(e + "HHI", tag, kind, len(values)) + raw.ljust(4, b"\0")
        else:
            ifd += struct.pack(e + "HHII", tag, kind, len(values), blob_base + len(blobs))
            blobs += raw
    ifd += struct.pack(e + "I", 0)

    ifd[strip_offset_field : strip_offset_field + 4] = struct.pack(e + "I", blob_base + len(blobs))
    head = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(e + "I", 8)
    return bytes(head + ifd + blobs + strip)


def gif_lzw(indices, min_code_size):
    """An LZW stream of literal codes only, with clear codes often enough that the code width
    never grows: valid GIF data that any decoder must read the same way."""
    clear = 1 << min_code_size
    width = min_code_size + 1
    run_limit = max(1, (1 << width) - 2 - (clear + 2))
    codes = [clear]
    run = 0
    for value in indices:
        if run == run_limit:
            codes.append(clear)
            run = 0
        codes.append(int(value))
        run += 1
    codes.append(clear + 1)

    # Pack the codes least significant bit first, then split into sub-blocks of 255 bytes.
    out = bytearray()
    acc = nbits = 0
    for code in codes:
        acc |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 255)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 255)

    blocks = bytearray([min_code_size])
    for i in range(0, len(out), 255):
        chunk = out[i : i + 255]
        blocks += bytes([len(chunk)]) + chunk
    return bytes(blocks + b"\0")


def palette_field(palette):
    bits = max(1, (len(palette) - 1).bit_length())
    padded = list(palette) + [(0, 0, 0)] * ((1 << bits) - len(palette))
    return bits, bytes(c for rgb in padded for c in rgb)


def gif_bytes(screen, frame, global_palette=None, local_palette=None, transparent=None,
              interlace=False, background=0):
    """A one-frame GIF89a; frame = (left, top, width, height, indices)."""
    left, top, width, height, indices = frame
    out = bytearray(b"GIF89a")
    flags = 0
    if global_palette is not None:
        bits, table = palette_field(global_palette)
        flags = 0x80 | (bits - 1)
    out += struct.pack("<HHBBB", screen[0], screen[1], flags, background, 0)
    if global_palette is not None:
        out += table
    if transparent is not None:
        out += b"\x21\xf9\x04" + bytes([1, 0, 0, transparent, 0])
    frame_flags = 0x40 if interlace else 0
    local_table = b""
    if local_palette is not None:
        bits, local_table = palette_field(local_palette)
        frame_flags |= 0x80 | (bits - 1)
    out += b"," + struct.pack("<HHHHB", left, top, width, height, frame_flags) + local_table
    rows = [list(indices[r * width : (r + 1) * width]) for r in range(height)]
    if interlace:
        order = [*range(0, height, 8), *range(4, height, 8), *range(2, height, 4),
                 *range(1, height, 2)]
        rows = [rows[r] for r in order]
    flat = [int(v) for row in rows for v in row]
    out += gif_lzw(flat, max(2, max(flat + [1]).bit_length()))
    return bytes(out + b";")


def bmp_bytes(width, height, bpp, data, compression=0, masks=None, palette=None):
    """A BMP with a BITMAPINFOHEADER; data is the pixel array as stored (bottom-up rows)."""
    table = b"" if palette is None else b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    extra = b"" if masks is None else b"".join(struct.pack("<I", m) for m in masks)
    colours = 0 if palette is None else len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, compression, len(data), 2835,
                       2835, colours, 0)
    offset = 14 + len(info) + len(extra) + len(table)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + extra + table + data


def exif_orientation_block(orientation):
    """A little-endian TIFF structure with only the Orientation tag (no Exif identifier)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes().removeprefix(b"Exif\0\0")


# ---------------------------------------------------------------------------------------------
# The reference pipeline


def reference(data, size, mean=CLIP_MEAN, std=CLIP_STD):
    """Returns (decoded RGB array, crop array, normalised tensor) as the reference computes."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    crop = transforms.Compose(
        [transforms.Resize(size, interpolation=InterpolationMode.BICUBIC),
         transforms.CenterCrop(size)]
    )(image)
    tensor = transforms.Normalize(mean, std)(transforms.ToTensor()(crop))
    return np.asarray(image), np.asarray(crop), tensor.numpy()


def fnv1a64(data):
    """64-bit FNV-1a hash, the checksum the Rust tests recompute over float32 bytes."""
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


class Fixtures:
    def __init__(self, root):
        self.root = Path(root)
        (self.root / "inputs").mkdir(parents=True, exist_ok=True)
        (self.root / "expected").mkdir(parents=True, exist_ok=True)
        self.cases = []

    def add(self, name, ext, data, size, kind, store_decoded=True, checksum=False, note=None):
        """Writes one case: the input file, the reference arrays and a manifest entry."""
        path = f"inputs/{name}.{ext}"
        (self.root / path).write_bytes(data)
        decoded, crop, tensor = reference(data, size)
        entry = {"name": name, "kind": kind, "input": path, "size": size,
                 "width": int(decoded.shape[1]), "height": int(decoded.shape[0])}
        if store_decoded:
            entry["decoded"] = f"expected/{name}.rgb.npy"
            np.save(self.root / entry["decoded"], decoded)
        entry["crop"] = f"expected/{name}.crop.npy"
        np.save(self.root / entry["crop"], crop)
        if checksum:
            entry["tensor_fnv1a64"] = fnv1a64(tensor.astype("<f4").tobytes())
        if note:
            entry["note"] = note
        self.cases.append(entry)

    def add_error(self, name, ext, data, error, note):
        """Writes an input that the reference rejects, with the error the engine must give."""
        path = f"inputs/{name}.{ext}"
        (self.root / path).write_bytes(data)
        self.cases.append({"name": name, "kind": "error", "input": path, "error": error,
                           "note": note})

    def write_manifest(self):
        manifest = {
            "format_version": FORMAT_VERSION,
            "generator": "tools/reference/pillow_fixtures.py",
            "versions": {"Pillow": PIL.__version__, "torch": torch.__version__,
                         "torchvision": torchvision.__version__, "numpy": np.__version__},
            "mean": CLIP_MEAN,
            "std": CLIP_STD,
            "cases": self.cases,
        }
        text = json.dumps(manifest, indent=1) + "\n"
        (self.root / "manifest.json").write_text(text)


def encode(array, fmt, mode=None, **options):
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Cases


def resize_cases(f):
    """The size sweep: RGB PNG inputs (lossless, so only the resize and crop are tested)."""
    cases = [
        # (width, height, crop size)
        (1, 1, 224), (3, 500, 224), (225, 301, 224), (224, 224, 224), (223, 225, 224),
        (1000, 750, 224),
        (1, 300, 64), (300, 1, 64), (2000, 9, 64), (9, 2000, 64), (331, 257, 64), (64, 64, 64),
        (65, 63, 64), (17, 13, 64), (127, 129, 64), (64, 65, 64),
        (101, 103, 37), (1000, 37, 37), (38, 39, 37), (1, 1, 7), (50, 50, 7), (2, 3, 5),
    ]
    for width, height, size in cases:
        if width * height > 100_000:
            array = smooth_pattern(width, height)
        else:
            array = pattern(width, height, seed=width * 7919 + height)
        name = f"resize_{width}x{height}_to_{size}"
        store = width * height <= 4096
        f.add(name, "png", encode(array, "PNG", optimize=True), size, "resize",
              store_decoded=store, checksum=size == 224)


def png_cases(f):
    rng = np.random.default_rng(11)
    w, h = 29, 23
    rgb = pattern(w, h, seed=1)
    f.add("png_rgb8", "png", encode(rgb, "PNG"), FORMAT_CROP, "decode", checksum=True)
    alpha = rng.integers(0, 256, (h, w, 1), dtype=np.uint8)
    alpha[0, :3] = 0
    f.add("png_rgba8", "png", encode(np.concatenate([rgb, alpha], -1), "PNG"), FORMAT_CROP,
          "decode", note="alpha is dropped, not composited")

    grey = rgb[..., 1]
    f.add("png_grey8", "png", encode(grey, "PNG"), FORMAT_CROP, "decode")
    f.add("png_la8", "png", encode(np.stack([grey, alpha[..., 0]], -1), "PNG", mode="LA"),
          FORMAT_CROP, "decode")
    f.add("png_rgb8_interlaced", "png", png_adam7(rgb), FORMAT_CROP, "decode")
    frames = [Image.fromarray(pattern(w, h, seed=s)) for s in (24, 25)]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:], duration=50)
    f.add("png_animated", "png", out.getvalue(), FORMAT_CROP, "decode",
          note="APNG: the first frame")

    for depth in (1, 2, 4):
        values = rng.integers(0, 1 << depth, (h, w))
        f.add(f"png_grey{depth}", "png", png_bytes(values, w, 0, depth), FORMAT_CROP, "decode")

    grey16 = rng.integers(0, 65536, (h, w))
    grey16[:, :4] = rng.integers(0, 256, (h, 4))
    f.add("png_grey16", "png", png_bytes(grey16, w, 0, 16), FORMAT_CROP, "decode",
          note="Pillow mode I;16: values clamp to 255")
    f.add("png_grey16_trns", "png", png_bytes(grey16, w, 0, 16, trns=struct.pack(">H", 100)),
          FORMAT_CROP, "decode")

    rgb16 = rng.integers(0, 65536, (h, w * 3))
    f.add("png_rgb16", "png", png_bytes(rgb16, w, 2, 16), FORMAT_CROP, "decode",
          note="16-bit samples keep the high byte")
    rgba16 = rng.integers(0, 65536, (h, w * 4))
    f.add("png_rgba16", "png", png_bytes(rgba16, w, 6, 16), FORMAT_CROP, "decode")
    la16 = rng.integers(0, 65536, (h, w * 2))
    f.add("png_la16", "png", png_bytes(la16, w, 4, 16), FORMAT_CROP, "decode",
          note="Pillow opens 16-bit grey+alpha as RGBA: high byte")

    f.add("png_grey8_trns", "png", png_bytes(grey, w, 0, 8, trns=struct.pack(">H", grey[0, 0])),
          FORMAT_CROP, "decode")
    f.add("png_rgb8_trns", "png",
          png_bytes(rgb.reshape(h, -1), w, 2, 8, trns=struct.pack(">HHH", *rgb[0, 0])),
          FORMAT_CROP, "decode")

    palette = rng.integers(0, 256, (16, 3))
    for depth in (1, 2, 4, 8):
        entries = min(1 << depth, 16)
        indices = rng.integers(0, entries, (h, w))
        trns = bytes(rng.integers(0, 256, entries, dtype=np.uint8))
        f.add(f"png_palette{depth}", "png",
              png_bytes(indices, w, 3, depth, palette=palette[:entries], trns=trns),
              FORMAT_CROP, "decode", note="tRNS is ignored by convert('RGB')")
    indices = rng.integers(0, 12, (h, w))
    f.add("png_palette_short", "png", png_bytes(indices, w, 3, 8, palette=palette[:6]),
          FORMAT_CROP, "decode", note="indices past the palette are black")

    for orientation in range(1, 9):
        name = f"png_exif_orientation{orientation}"
        data = png_bytes(rgb.reshape(h, -1), w, 2, 8, exif=exif_orientation_block(orientation))
        f.add(name, "png", data, FORMAT_CROP, "orientation")
        oriented = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        f.cases[-1]["oriented"] = f"expected/{name}.oriented.npy"
        np.save(f.root / f.cases[-1]["oriented"], np.asarray(oriented))


def orientation_cases(f):
    """Orientation 6 (rotate 90 degrees clockwise) in the EXIF block of JPEG and WebP and in the
    TIFF Orientation tag; the oriented reference is ImageOps.exif_transpose."""
    w, h = 19, 13
    rgb = pattern(w, h, seed=21)
    exif = exif_orientation_block(6)
    for name, ext, data in [
        ("jpeg_exif_orientation6", "jpg", encode(rgb, "JPEG", quality=95, exif=exif)),
        ("webp_exif_orientation6", "webp", encode(rgb, "WEBP", lossless=True, exif=exif)),
        ("tiff_orientation6", "tif", encode(rgb, "TIFF", tiffinfo={274: 6})),
    ]:
        f.add(name, ext, data, FORMAT_CROP, "orientation")
        oriented = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        f.cases[-1]["oriented"] = f"expected/{name}.oriented.npy"
        np.save(f.root / f.cases[-1]["oriented"], np.asarray(oriented))


def png_adam7(rgb):
    """An Adam7-interlaced 8-bit RGB PNG (Pillow's encoder writes no interlaced PNG)."""
    h, w, _ = rgb.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)]
    raw = bytearray()
    for x0, y0, dx, dy in passes:
        sub = rgb[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\0" + row.tobytes()
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1))
    out += png_chunk(b"IDAT", zlib.compress(bytes(raw), 9))
    out += png_chunk(b"IEND", b"")
    return out


def jpeg_cases(f):
    w, h = 61, 47
    rgb = pattern(w, h, seed=3, noise=12)
    for name, options in [
        ("jpeg_444", {"quality": 92, "subsampling": 0}),
        ("jpeg_422", {"quality": 90, "subsampling": 1}),
        ("jpeg_420", {"quality": 85, "subsampling": 2}),
        ("jpeg_420_progressive", {"quality": 85, "subsampling": 2, "progressive": True}),
        ("jpeg_444_progressive", {"quality": 95, "subsampling": 0, "progressive": True}),
        ("jpeg_420_restart", {"quality": 80, "subsampling": 2, "restart_marker_blocks": 2}),
        ("jpeg_420_progressive_restart",
         {"quality": 90, "subsampling": 2, "progressive": True, "restart_marker_rows": 1}),
        ("jpeg_420_optimized", {"quality": 75, "subsampling": 2, "optimize": True}),
        ("jpeg_444_quality100", {"quality": 100, "subsampling": 0}),
        # Quantisation values above 255 are stored with 16-bit precision.
        ("jpeg_420_qtable16", {"qtables": [[300 + i for i in range(64)]] * 2, "subsampling": 2}),
    ]:
        f.add(name, "jpg", encode(rgb, "JPEG", **options), FORMAT_CROP, "decode")
    f.add("jpeg_grey", "jpg", encode(rgb[..., 0], "JPEG", quality=90), FORMAT_CROP, "decode")
    f.add("jpeg_grey_progressive", "jpg", encode(rgb[..., 0], "JPEG", progressive=True),
          FORMAT_CROP, "decode")
    f.add("jpeg_cmyk", "jpg", encode(rgb, "JPEG", mode="CMYK", quality=90), FORMAT_CROP,
          "decode", note="Adobe CMYK, inverted; Pillow's CMYK formula")
    # Chroma planes of 2 or fewer columns are upsampled by replication, not the fancy filter.
    for width, height, sub in [(3, 5, 2), (4, 9, 1), (1, 1, 2), (17, 1, 2), (1, 17, 2),
                               (5, 3, 1)]:
        tiny = pattern(width, height, seed=width * 31 + height)
        f.add(f"jpeg_{width}x{height}_sub{sub}", "jpg",
              encode(tiny, "JPEG", quality=90, subsampling=sub), FORMAT_CROP, "decode")
    big = smooth_pattern(640, 480)
    f.add("jpeg_420_640x480", "jpg", encode(big, "JPEG", quality=85), 224, "decode",
          store_decoded=False)


def webp_cases(f):
    w, h = 37, 31
    rgb = pattern(w, h, seed=5)
    rgba = np.concatenate([rgb, pattern(w, h, seed=6)[..., :1]], -1)
    rgba[0, :5, 3] = 0
    f.add("webp_lossless_rgb", "webp", encode(rgb, "WEBP", lossless=True), FORMAT_CROP, "decode")
    f.add("webp_lossless_rgba", "webp", encode(rgba, "WEBP", lossless=True, exact=True),
          FORMAT_CROP, "decode")
    # image-webp reproduces libwebp's lossy decoding (and its fancy chroma upsampling) exactly.
    f.add("webp_lossy_rgb", "webp", encode(rgb, "WEBP", quality=80), FORMAT_CROP, "decode")
    f.add("webp_lossy_rgba", "webp", encode(rgba, "WEBP", quality=80), FORMAT_CROP, "decode")

    # Animations: Pillow opens the first frame.
    frames = [Image.fromarray(pattern(w, h, seed=s)) for s in (22, 23)]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], lossless=True,
                   duration=50)
    f.add("webp_animated", "webp", out.getvalue(), FORMAT_CROP, "decode")


def gif_cases(f):
    rng = np.random.default_rng(7)
    palette = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(16)]
    w, h = 27, 19
    indices = list(rng.integers(0, 16, w * h))
    f.add("gif_global", "gif", gif_bytes((w, h), (0, 0, w, h, indices), palette), FORMAT_CROP,
          "decode")
    f.add("gif_transparent", "gif",
          gif_bytes((w, h), (0, 0, w, h, indices), palette, transparent=3), FORMAT_CROP,
          "decode", note="the transparent index shows its palette colour")
    f.add("gif_interlaced", "gif",
          gif_bytes((w, h), (0, 0, w, h, indices), palette, interlace=True), FORMAT_CROP, "decode")

    local = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(16)]
    f.add("gif_local_palette", "gif",
          gif_bytes((w, h), (0, 0, w, h, indices), palette, local_palette=local), FORMAT_CROP,
          "decode")

    small = list(rng.integers(0, 16, 11 * 7))
    f.add("gif_offset_frame", "gif", gif_bytes((w, h), (5, 4, 11, 7, small), palette),
          FORMAT_CROP, "decode", note="canvas outside the frame is index 0")
    f.add("gif_offset_frame_transparent", "gif",
          gif_bytes((w, h), (5, 4, 11, 7, small), palette, transparent=9, background=2),
          FORMAT_CROP, "decode", note="canvas outside the frame is the transparent index")
    f.add("gif_frame_outside_screen", "gif", gif_bytes((20, 10), (12, 6, 11, 7, small), palette),
          FORMAT_CROP, "decode", note="the canvas grows to hold the frame")

    grey = [(i, i, i) for i in range(16)]
    f.add("gif_identity_palette", "gif", gif_bytes((w, h), (0, 0, w, h, indices), grey),
          FORMAT_CROP, "decode")
    f.add("gif_short_palette", "gif", gif_bytes((w, h), (0, 0, w, h, indices), palette[:5]),
          FORMAT_CROP, "decode", note="indices past the palette are black")
    f.add("gif_no_palette", "gif", gif_bytes((w, h), (0, 0, w, h, indices)), FORMAT_CROP,
          "decode", note="no palette: grey level = index")

    # A Pillow-written animated GIF: only the first frame counts.
    frames = [Image.fromarray(pattern(w, h, seed=s)).convert("P") for s in (8, 9)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=50)
    f.add("gif_animated", "gif", out.getvalue(), FORMAT_CROP, "decode")


def bmp_cases(f):
    w, h = 23, 17
    rgb = pattern(w, h, seed=9)
    f.add("bmp_rgb24", "bmp", encode(rgb, "BMP"), FORMAT_CROP, "decode")
    alpha = pattern(w, h, seed=10)[..., :1]
    f.add("bmp_rgba32", "bmp", encode(np.concatenate([rgb, alpha], -1), "BMP"), FORMAT_CROP,
          "decode")
    f.add("bmp_palette8", "bmp", encode(rgb, "BMP", mode="P"), FORMAT_CROP, "decode")
    f.add("bmp_grey8", "bmp", encode(rgb[..., 0], "BMP"), FORMAT_CROP, "decode")
    f.add("bmp_1bit", "bmp", encode(rgb[..., 0], "BMP", mode="1"), FORMAT_CROP, "decode")

    # 16-bit pixels (Pillow cannot write them): 5-5-5 without masks, 5-6-5 with bit fields.
    rng = np.random.default_rng(17)
    pixels = rng.integers(0, 1 << 16, (h, w)).astype("<u2")
    padded = np.zeros((h, (w * 2 + 3) // 4 * 2), dtype="<u2")
    padded[:, :w] = pixels
    f.add("bmp_rgb555", "bmp", bmp_bytes(w, h, 16, padded[::-1].tobytes()), FORMAT_CROP,
          "decode", note="5-bit channels scale as v * 255 / 31")
    f.add("bmp_rgb565", "bmp",
          bmp_bytes(w, h, 16, padded[::-1].tobytes(), compression=3,
                    masks=[0xF800, 0x07E0, 0x001F]), FORMAT_CROP, "decode")

    # RLE8: runs of 1 to 5 pixels, an end-of-line code per row, an end-of-bitmap code.
    palette = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(6)]
    rle = bytearray()
    for row in range(h):
        runs = rng.integers(1, 6, 12)
        x = 0
        for run in runs:
            run = int(min(run, w - x))
            if run <= 0:
                break
            rle += bytes([run, int(rng.integers(0, 6))])
            x += run
        if x < w:
            rle += bytes([w - x, 0])
        rle += b"\0\0"
    rle += b"\0\1"
    f.add("bmp_rle8", "bmp", bmp_bytes(w, h, 8, bytes(rle), compression=1, palette=palette),
          FORMAT_CROP, "decode")


def tiff_cases(f):
    w, h = 21, 15
    rng = np.random.default_rng(13)
    rgb = pattern(w, h, seed=12)
    f.add("tiff_rgb8", "tif", encode(rgb, "TIFF"), FORMAT_CROP, "decode")
    f.add("tiff_rgb8_lzw", "tif", encode(rgb, "TIFF", compression="tiff_lzw"), FORMAT_CROP,
          "decode")
    f.add("tiff_rgb8_deflate", "tif", encode(rgb, "TIFF", compression="tiff_adobe_deflate"),
          FORMAT_CROP, "decode")
    f.add("tiff_grey8", "tif", encode(rgb[..., 1], "TIFF"), FORMAT_CROP, "decode")
    f.add("tiff_cmyk8", "tif", encode(rgb, "TIFF", mode="CMYK"), FORMAT_CROP, "decode")
    f.add("tiff_1bit", "tif", encode(rgb[..., 0], "TIFF", mode="1"), FORMAT_CROP, "decode")
    f.add("tiff_rgba8", "tif", encode(np.concatenate([rgb, rgb[..., :1]], -1), "TIFF"),
          FORMAT_CROP, "decode")

    grey16 = rng.integers(0, 65536, (h, w)).astype(np.uint16)
    grey16[:, :5] = rng.integers(0, 256, (h, 5))
    for big_endian in (False, True):
        order = ">u2" if big_endian else "<u2"
        suffix = "_be" if big_endian else ""
        f.add(f"tiff_grey16{suffix}", "tif",
              tiff_bytes(w, h, grey16.astype(order).tobytes(), 16, 1, 1, big_endian=big_endian),
              FORMAT_CROP, "decode", note="Pillow mode I;16: values clamp to 255")

    rgb16 = rng.integers(0, 65536, (h, w, 3)).astype("<u2")
    f.add("tiff_rgb16", "tif", tiff_bytes(w, h, rgb16.tobytes(), 16, 3, 2), FORMAT_CROP, "decode")
    rgba16 = rng.integers(0, 65536, (h, w, 4)).astype("<u2")
    f.add("tiff_rgba16", "tif", tiff_bytes(w, h, rgba16.tobytes(), 16, 4, 2, extra=[2]),
          FORMAT_CROP, "decode")
    rgba16[0, :4, 3] = [0, 65535, 300, 32768]
    f.add("tiff_rgba16_associated", "tif", tiff_bytes(w, h, rgba16.tobytes(), 16, 4, 2, extra=[1]),
          FORMAT_CROP, "decode", note="high bytes, then premultiplied alpha is divided out")

    rgba8 = rng.integers(0, 256, (h, w, 4)).astype(np.uint8)
    rgba8[0, :4, 3] = [0, 255, 1, 128]
    f.add("tiff_rgba8_associated", "tif", tiff_bytes(w, h, rgba8.tobytes(), 8, 4, 2, extra=[1]),
          FORMAT_CROP, "decode", note="premultiplied alpha is divided out")
    f.add("tiff_grey8_white_is_zero", "tif", tiff_bytes(w, h, rgb[..., 2].tobytes(), 8, 1, 0),
          FORMAT_CROP, "decode")
    la8 = rng.integers(0, 256, (h, w, 2)).astype(np.uint8)
    f.add("tiff_la8", "tif", tiff_bytes(w, h, la8.tobytes(), 8, 2, 1, extra=[2]), FORMAT_CROP,
          "decode")


def limit_cases(f):
    """Files whose header declares more pixels than Pillow's decompression-bomb limit."""
    huge_png = b"\x89PNG\r\n\x1a\n" + png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", 70000, 70000, 8, 2, 0, 0, 0)) + png_chunk(
        b"IDAT", zlib.compress(b"\0" * 16)) + png_chunk(b"IEND", b"")
    f.add_error("huge_declared_png", "png", huge_png, "TooManyPixels",
                "70000x70000 declared in IHDR")
    jpeg = bytearray(encode(pattern(16, 16, seed=1), "JPEG"))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    f.add_error("huge_declared_jpeg", "jpg", bytes(jpeg), "TooManyPixels",
                "65000x65000 declared in SOF0")
    gif = gif_bytes((65535, 65535), (0, 0, 2, 1, [0, 1]), [(0, 0, 0), (255, 255, 255)])
    f.add_error("huge_declared_gif", "gif", gif, "TooManyPixels", "65535x65535 logical screen")


def values_case(f):
    """All 256 levels in every channel, normalised with the CLIP constants at size 16 (the
    resize and crop are identities), stored whole to test float32 bit equality."""
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = np.stack([levels, levels[::-1], levels.T], -1)
    data = encode(rgb, "PNG")
    f.add("values", "png", data, 16, "values", checksum=True)
    _, _, tensor = reference(data, 16)
    f.cases[-1]["tensor"] = "expected/values.f32.npy"
    np.save(f.root / "expected/values.f32.npy", tensor.astype("<f4"))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/pillow"
    torch.set_num_threads(1)
    # Pillow warns about palette transparency given as bytes; the fixtures use it on purpose.
    warnings.filterwarnings("ignore", message="Palette images with Transparency")
    f = Fixtures(root)
    resize_cases(f)
    png_cases(f)
    orientation_cases(f)
    jpeg_cases(f)
    webp_cases(f)
    gif_cases(f)
    bmp_cases(f)
    tiff_cases(f)
    limit_cases(f)
    values_case(f)
    f.write_manifest()
    total = sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())
    digest = hashlib.sha256((Path(root) / "manifest.json").read_bytes()).hexdigest()[:16]
    print(f"{len(f.cases)} cases, {total} bytes under {root}, manifest sha256 {digest}")


if __name__ == "__main__":
    main()
