//! What the vendor library can be asked for, and what a setting becomes when it is asked.
//!
//! Facts, from the public source of the library (`support/sg2002/additional/` in sipeed/NanoKVM):
//! - `kvmv_read_img` clamps the H.264 bitrate to 500..=10000 kbit/s (`maxmin_data(10000, 500,
//!   _qlty)`, `kvm/src/kvm_vision.cpp`) and `set_h264_gop` the GOP to 1..=100 (same file).
//! - The encoder's CBR rate control is created for 60 frames a second in and out
//!   (`init_venc_h264`: `intput_fps = 60`, `output_fps = 60`; `mmf_add_venc_channel`:
//!   `u32SrcFrameRate`/`fr32DstFrameRate`, `kvm_mmf/src/kvm_mmf.cpp`), whatever rate frames are
//!   pulled at. It spends bitrate / 60 per frame, so pulling at `fps` yields bitrate x fps / 60:
//!   we ask for bitrate x 60 / fps to get the bitrate the settings say.
//! - The GOP is `u32Gop` of that channel: the number of frames pushed into the encoder from one
//!   IDR to the next. Every read pushes exactly one frame (`raw_to_h264`), and source and
//!   destination rate are equal (no frame is dropped by rate conversion), so our GOP — frames at
//!   our fps — is the library's GOP as it is, only clamped.
//! - The video processor's output width is aligned up to 64 pixels (`mmf_add_vi_channel`:
//!   `width_out = ALIGN(width, DEFAULT_ALIGN)`; `mmf_vi_aligned_width` returns 64 in every
//!   shipped `libkvm_mmf.so`), the picture is scaled to that width and the camera then copies
//!   only the asked width of each row (`maix_camera_mmf.hpp`, `align_need`): a width that is not
//!   a multiple of 64 comes out stretched, its right edge cut off. So we only ask for multiples
//!   of 64, and keep the aspect ratio by rounding the width down and the height with it.

use nanokvm_protocol::{Resolution, StreamSettings};

/// `kvmv_read_img`'s H.264 bitrate range, kbit/s.
pub const LIBRARY_BITRATE_KBPS: std::ops::RangeInclusive<u32> = 500..=10_000;
/// `set_h264_gop`'s range.
pub const LIBRARY_GOP: std::ops::RangeInclusive<u16> = 1..=100;
/// The frame rate the library's rate control is configured for.
pub const LIBRARY_RC_FPS: u32 = 60;
/// The video processor produces widths in these steps.
pub const WIDTH_ALIGN: u16 = 64;

/// What the library is asked for, and what the stream then really gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderParams {
    /// `kvmv_read_img`'s `qlty`: the bitrate for 60 fps that gives ours at our fps.
    pub library_kbps: u16,
    /// `set_h264_gop`'s argument.
    pub library_gop: u16,
    /// The bitrate the stream gets at the configured fps (what the console shows).
    pub effective_kbps: u32,
    /// The GOP the stream gets, in frames at the configured fps.
    pub effective_gop: u16,
}

impl EncoderParams {
    pub fn for_settings(settings: &StreamSettings) -> Self {
        let fps = u32::from(settings.fps.max(1));
        let wanted = settings.h264_bitrate_kbps.saturating_mul(LIBRARY_RC_FPS) / fps;
        let library_kbps = wanted.clamp(*LIBRARY_BITRATE_KBPS.start(), *LIBRARY_BITRATE_KBPS.end());
        let library_gop = settings.gop.clamp(*LIBRARY_GOP.start(), *LIBRARY_GOP.end());
        Self {
            // In range by the clamp above (at most 10000).
            library_kbps: library_kbps as u16,
            library_gop,
            effective_kbps: (library_kbps * fps + LIBRARY_RC_FPS / 2) / LIBRARY_RC_FPS,
            effective_gop: library_gop,
        }
    }
}

/// The output size to ask for, for an input of `src`: the configured resolution's height (never
/// more than the input's), the aspect ratio kept, the width a multiple of [`WIDTH_ALIGN`]
/// (rounded down, the height following it). `None` when asking for 0 x 0 (follow the input)
/// gives exactly that: the stream is native and the input's width is already aligned.
pub fn output_size(resolution: Resolution, src: (u16, u16)) -> Option<(u16, u16)> {
    let (src_w, src_h) = (u32::from(src.0), u32::from(src.1));
    if src_w == 0 || src_h == 0 {
        return None;
    }
    let target_h = match resolution {
        Resolution::P720 => 720,
        Resolution::P1080 => 1080,
        Resolution::Native => src_h,
    }
    .min(src_h);
    let align = u32::from(WIDTH_ALIGN);
    let exact_w = src_w * target_h / src_h;
    let w = (exact_w / align * align).max(align);
    if resolution == Resolution::Native && w == src_w {
        return None;
    }
    // The height that keeps the aspect ratio at the rounded width, even for 4:2:0.
    let h = if w == exact_w && exact_w * src_h == src_w * target_h {
        target_h
    } else {
        w * src_h / src_w
    };
    Some((w as u16, (h as u16) & !1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(fps: u8, kbps: u32, gop: u16) -> StreamSettings {
        StreamSettings {
            fps,
            h264_bitrate_kbps: kbps,
            gop,
            ..StreamSettings::default()
        }
    }

    #[test]
    fn the_bitrate_is_scaled_for_the_libraries_60_fps_and_clamped() {
        let p = EncoderParams::for_settings(&settings(30, 2000, 60));
        assert_eq!((p.library_kbps, p.effective_kbps), (4000, 2000));
        let p = EncoderParams::for_settings(&settings(60, 2000, 60));
        assert_eq!((p.library_kbps, p.effective_kbps), (2000, 2000));
        let p = EncoderParams::for_settings(&settings(15, 1000, 60));
        assert_eq!((p.library_kbps, p.effective_kbps), (4000, 1000));
        // 8 Mbit/s at 30 fps would need 16000 for 60 fps: the library stops at 10000.
        let p = EncoderParams::for_settings(&settings(30, 8000, 60));
        assert_eq!((p.library_kbps, p.effective_kbps), (10_000, 5000));
        // 200 kbit/s at 60 fps is below the library's floor.
        let p = EncoderParams::for_settings(&settings(60, 200, 60));
        assert_eq!((p.library_kbps, p.effective_kbps), (500, 500));
        let p = EncoderParams::for_settings(&settings(5, 200, 60));
        assert_eq!((p.library_kbps, p.effective_kbps), (2400, 200));
    }

    #[test]
    fn the_gop_is_counted_in_pushed_frames_and_clamped_to_100() {
        for (fps, gop, library) in [(30, 60, 60), (60, 60, 60), (10, 30, 30), (30, 300, 100)] {
            let p = EncoderParams::for_settings(&settings(fps, 2000, gop));
            assert_eq!(
                (p.library_gop, p.effective_gop),
                (library, library),
                "{fps} {gop}"
            );
        }
        assert_eq!(
            EncoderParams::for_settings(&settings(30, 2000, 0)).library_gop,
            1
        );
    }

    #[test]
    fn widths_are_multiples_of_64_with_the_aspect_kept() {
        let cases = [
            // (input, resolution, asked for)
            ((1920, 1080), Resolution::P720, Some((1280, 720))),
            ((1920, 1080), Resolution::P1080, Some((1920, 1080))),
            ((1920, 1080), Resolution::Native, None),
            ((1280, 1024), Resolution::P720, Some((896, 716))),
            ((1280, 1024), Resolution::P1080, Some((1280, 1024))),
            ((1280, 1024), Resolution::Native, None),
            ((1024, 768), Resolution::P720, Some((960, 720))),
            ((1024, 768), Resolution::Native, None),
            ((1440, 900), Resolution::P720, Some((1152, 720))),
            ((1440, 900), Resolution::P1080, Some((1408, 880))),
            ((1440, 900), Resolution::Native, Some((1408, 880))),
            ((1600, 900), Resolution::P720, Some((1280, 720))),
            ((1280, 800), Resolution::P720, Some((1152, 720))),
            ((1440, 1080), Resolution::P720, Some((960, 720))),
            ((800, 600), Resolution::P720, Some((768, 576))),
            ((640, 480), Resolution::P720, Some((640, 480))),
        ];
        for (src, res, want) in cases {
            let got = output_size(res, src);
            assert_eq!(got, want, "{src:?} at {}", res.name());
            if let Some((w, h)) = got {
                assert_eq!(w % WIDTH_ALIGN, 0, "{src:?} {w}");
                assert_eq!(h % 2, 0);
                assert!(w <= src.0 && h <= src.1, "never scaled up");
                let aspect = |w: u16, h: u16| f64::from(w) / f64::from(h);
                let off = aspect(w, h) / aspect(src.0, src.1) - 1.0;
                assert!(off.abs() < 0.005, "{src:?} -> {w}x{h}: aspect off by {off}");
            }
        }
        assert_eq!(output_size(Resolution::P720, (0, 0)), None);
    }
}
