//! Preprocessing against the Pillow + torchvision reference: the golden crops of the five
//! photos and the generated fixture sweep of `tools/reference/pillow_fixtures.py`.
//!
//! Regenerate the sweep with
//! `python tools/reference/pillow_fixtures.py tests/fixtures/pillow` (Pillow 13, torchvision).

mod common;

use common::{difference, read_rgb_npy};
use jclip::preprocess::{DecodeOptions, PreprocessConfig, decode_file, resize_and_crop};

/// Largest sample difference allowed between this engine's crop of `rocket.jpg` and Pillow's.
/// The JPEG decoders differ (zune-jpeg against libjpeg-turbo); see `tests/fixtures/pillow/README.md`.
const ROCKET_MAX_DIFFERENCE: u8 = 4;

/// Largest share of differing samples allowed for `rocket.jpg`.
const ROCKET_MAX_DIFFERING_SHARE: f64 = 0.05;

fn golden_crop(name: &str) -> (jclip::preprocess::RgbImage, jclip::preprocess::RgbImage) {
    let image = decode_file(
        &common::fixture(&format!("images/{name}")),
        &DecodeOptions::default(),
    )
    .unwrap();
    let crop = resize_and_crop(&image, &PreprocessConfig::default()).unwrap();
    let expected = read_rgb_npy(&format!("pillow/golden/{name}.u8.npy"));
    (crop, expected)
}

#[test]
fn golden_png_crops_exact() {
    for name in ["astronaut.png", "camera.png", "chelsea.png", "coffee.png"] {
        let (crop, expected) = golden_crop(name);
        let diff = difference(&crop, &expected);
        assert_eq!(diff.differing, 0, "{name}: {diff:?}");
    }
}

#[test]
fn golden_jpeg_crop_within_bound() {
    let (crop, expected) = golden_crop("rocket.jpg");
    let diff = difference(&crop, &expected);
    eprintln!(
        "rocket.jpg: max difference {}, {} of {} samples differ ({:.3}%)",
        diff.max,
        diff.differing,
        diff.total,
        100.0 * diff.share()
    );
    assert!(diff.max <= ROCKET_MAX_DIFFERENCE, "{diff:?}");
    assert!(diff.share() <= ROCKET_MAX_DIFFERING_SHARE, "{diff:?}");
}
