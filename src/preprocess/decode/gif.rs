//! GIF: the first frame, placed on its canvas the way Pillow 13's `GifImagePlugin` does.
//!
//! Rules, checked against Pillow with the GIF fixtures:
//! - the canvas is the logical screen, enlarged to hold the first frame when it sticks out;
//! - canvas pixels outside the frame take the frame's transparent index if it has one, else
//!   index 0;
//! - every index, the transparent one included, shows its palette colour (local palette
//!   first, then the global one); indices past the palette are black;
//! - a palette whose entry `i` is `(i, i, i)` for every entry, or no palette at all, makes a
//!   greyscale image whose value is the index itself.

use std::borrow::Cow;
use std::io::Cursor;
use std::num::NonZeroU64;

use ::gif::{ColorOutput, DecodeOptions, MemoryLimit};

use super::{Decoded, Source};
use crate::preprocess::{ImageError, RgbImage};

const FORMAT: &str = "GIF";

/// Size of the GIF header and logical screen descriptor, after which a global colour table
/// follows when flag bit 7 of byte 10 is set.
const SCREEN_DESCRIPTOR_END: usize = 13;

pub(super) fn decode(source: &Source) -> Result<Decoded, ImageError> {
    let mut options = DecodeOptions::new();
    options.set_color_output(ColorOutput::Indexed);
    let limit = NonZeroU64::new(source.max_buffer_bytes() as u64).unwrap_or(NonZeroU64::MIN);
    options.set_memory_limit(MemoryLimit::Bytes(limit));
    let bytes = with_global_palette(source.bytes);
    let mut decoder = options.read_info(Cursor::new(bytes.as_ref())).map_err(|e| source.decode_error(FORMAT, e))?;
    let (screen_width, screen_height) = (u32::from(decoder.width()), u32::from(decoder.height()));
    let global_palette = decoder.global_palette().map(<[u8]>::to_vec);

    let frame_info = decoder
        .next_frame_info()
        .map_err(|e| source.decode_error(FORMAT, e))?
        .ok_or_else(|| source.decode_error(FORMAT, "the file has no image frame"))?;
    let (left, top) = (u32::from(frame_info.left), u32::from(frame_info.top));
    let (frame_width, frame_height) = (u32::from(frame_info.width), u32::from(frame_info.height));
    let width = screen_width.max(left + frame_width);
    let height = screen_height.max(top + frame_height);
    source.check_dimensions(FORMAT, width.into(), height.into())?;
    let transparent = frame_info.transparent;

    let local_palette = frame_info.palette.clone();
    let mut indices = vec![0_u8; decoder.buffer_size()];
    decoder.read_into_buffer(&mut indices).map_err(|e| source.decode_error(FORMAT, e))?;
    if indices.len() != frame_width as usize * frame_height as usize {
        return Err(source.decode_error(FORMAT, "the frame has fewer pixels than its size"));
    }
    let palette = local_palette.as_deref().or(global_palette.as_deref());

    let mut canvas = vec![transparent.unwrap_or(0); width as usize * height as usize];
    for (y, row) in indices.chunks_exact(frame_width.max(1) as usize).enumerate() {
        let start = (top as usize + y) * width as usize + left as usize;
        canvas[start..start + row.len()].copy_from_slice(row);
    }

    let colours = colour_table(palette);
    let mut data = Vec::with_capacity(canvas.len() * 3);
    for &index in &canvas {
        data.extend_from_slice(&colours[usize::from(index)]);
    }
    Ok(Decoded { image: RgbImage { width, height, data }, orientation: None })
}

/// Gives a GIF without a global colour table an identity grey one (entry `i` = `(i, i, i)`).
///
/// The `gif` crate rejects frames that have no colour table at all, while Pillow shows them as
/// greyscale with the index as the grey level. With an identity table both read the same.
/// Frames with a local table are unaffected.
fn with_global_palette(bytes: &[u8]) -> Cow<'_, [u8]> {
    const HAS_GLOBAL_TABLE: u8 = 0x80;
    const TABLE_OF_256: u8 = 7;
    match bytes.get(10) {
        Some(&flags) if flags & HAS_GLOBAL_TABLE == 0 => {
            let mut patched = Vec::with_capacity(bytes.len() + 768);
            patched.extend_from_slice(&bytes[..SCREEN_DESCRIPTOR_END.min(bytes.len())]);
            patched[10] = flags | HAS_GLOBAL_TABLE | TABLE_OF_256;
            patched.extend((0..=255_u8).flat_map(|i| [i; 3]));
            patched.extend_from_slice(bytes.get(SCREEN_DESCRIPTOR_END..).unwrap_or(&[]));
            Cow::Owned(patched)
        }
        _ => Cow::Borrowed(bytes),
    }
}

/// Builds the colour of each of the 256 indices as Pillow shows it.
fn colour_table(palette: Option<&[u8]>) -> Vec<[u8; 3]> {
    let greyscale = |i: usize| [i as u8; 3];
    let Some(palette) = palette else {
        return (0..256).map(greyscale).collect();
    };
    let is_identity = palette.chunks_exact(3).enumerate().all(|(i, rgb)| rgb.iter().all(|&c| usize::from(c) == i));
    if is_identity {
        return (0..256).map(greyscale).collect();
    }
    (0..256)
        .map(|i| match palette.get(i * 3..i * 3 + 3) {
            Some(rgb) => [rgb[0], rgb[1], rgb[2]],
            None => [0, 0, 0],
        })
        .collect()
}
