//! The software JPEG encoder of the simulated target, for the MJPEG stream.

use bytes::{BufMut, BytesMut};
use jpeg_encoder::{ColorType, Encoder};

use super::MediaError;
use crate::media::scale::RgbFrame;

/// Appends one baseline JPEG of `picture` to `out`.
pub fn encode_jpeg(picture: &RgbFrame, quality: u8, out: &mut BytesMut) -> Result<(), MediaError> {
    Encoder::new(out.writer(), quality)
        .encode(&picture.data, picture.width, picture.height, ColorType::Rgb)
        .map_err(|e| MediaError::Encoder(format!("JPEG: {e}")))
}
