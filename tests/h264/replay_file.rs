//! Synthetic H.264 recordings for the replay source and the mock vendor library: a busy
//! moving picture encoded by OpenH264, so every frame is large, like a busy desktop from the
//! hardware encoder.

use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, RateControlMode,
    UsageType,
};
use openh264::formats::YUVBuffer;
use openh264::OpenH264API;
use std::path::{Path, PathBuf};

use super::check_keyframe_au;

/// Encodes `frames` frames of a moving synthetic pattern into an Annex-B file: a scrolling
/// gradient, a moving box and a band of fresh noise (so every frame is large, like a busy
/// desktop on the hardware encoder). IDR (with SPS and PPS) every 30 frames.
pub fn make_replay_file(path: &Path, frames: usize, width: usize, height: usize) {
    make_replay_file_at(path, frames, (width, height), 16_000_000, height / 3);
}

/// [`make_replay_file`] with the encoder's rate control aimed at `bps` bits per second and
/// a band of `noise_rows` rows of fresh noise (which no rate control can squeeze: it sets
/// how far above `bps` the stream ends up).
pub fn make_replay_file_at(
    path: &Path,
    frames: usize,
    (width, height): (usize, usize),
    bps: u32,
    noise_rows: usize,
) {
    let config = EncoderConfig::new()
        .usage_type(UsageType::CameraVideoRealTime)
        .profile(Profile::Baseline)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(bps))
        .max_frame_rate(FrameRate::from_hz(30.0))
        .skip_frames(false)
        .scene_change_detect(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(30))
        .num_threads(1);
    let mut enc =
        Encoder::with_api_config(OpenH264API::from_source(), config).expect("OpenH264 encoder");
    let mut out = Vec::new();
    let mut rng: u32 = 0x2545_f491;
    let (cw, ch) = (width / 2, height / 2);
    let mut yuv = vec![0u8; width * height * 3 / 2];
    for f in 0..frames {
        let (y, uv) = yuv.split_at_mut(width * height);
        for (r, row) in y.chunks_exact_mut(width).enumerate() {
            for (c, px) in row.iter_mut().enumerate() {
                *px = ((c + r / 2 + f * 8) & 0xff) as u8;
            }
        }
        // A box moving across.
        let bx = (f * 17) % (width - 160);
        let by = (f * 7) % (height - 160);
        for r in by..by + 160 {
            y[r * width + bx..r * width + bx + 160].fill(235);
        }
        // A band of fresh noise.
        let band = height / 3;
        for px in &mut y[band * width..(band + noise_rows.min(height - band)) * width] {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            *px = (rng >> 24) as u8;
        }
        let (u, v) = uv.split_at_mut(cw * ch);
        for r in 0..ch {
            for c in 0..cw {
                u[r * cw + c] = ((c + f * 3) & 0xff) as u8;
                v[r * cw + c] = ((r + f * 5) & 0xff) as u8;
            }
        }
        let buf = YUVBuffer::from_vec(yuv.clone(), width, height);
        if f % 30 == 0 {
            enc.force_intra_frame();
        }
        let bs = enc.encode(&buf).expect("encode");
        let au = bs.to_vec();
        if f % 30 == 0 {
            check_keyframe_au(&au).unwrap_or_else(|e| panic!("replay frame {f}: {e}"));
        }
        out.extend_from_slice(&au);
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &out).expect("write replay file");
    std::fs::rename(&tmp, path).expect("rename replay file");
}

/// A 1280x720, 60-frame replay file, made once and shared by every test process (kept in
/// the temp dir).
pub fn replay_file() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let p = std::env::temp_dir().join("nanokvm-e2e-replay-v1-1280x720-60.h264");
        if !p.exists() {
            let t0 = std::time::Instant::now();
            make_replay_file(&p, 60, 1280, 720);
            eprintln!(
                "made {} ({} bytes) in {:?}",
                p.display(),
                std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0),
                t0.elapsed()
            );
        }
        p
    })
    .clone()
}
