//! The image side: the EVA-02 tower and its rotary embedding.

pub mod rope;
pub mod tower;

pub use tower::VisionTower;
