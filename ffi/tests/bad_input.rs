//! What the library should never answer, in every generation: a frame code with no buffer,
//! with 0 bytes, with more than 8 MiB (the buffer holds 64 bytes: reading it would crash), a
//! code it does not document. Each is a typed error, the frame is skipped, any buffer is
//! given back, and the next read works.

// Calls the vendor library's raw symbols (directly or through `common`) to hold the wrapper
// against them; like the crate, it cannot do without `unsafe`.
#![allow(unsafe_code)]

mod common;

use common::{assert_all_freed, lib_dir, read, H264_720};
use nanokvm_ffi::mock::{Control, Generation, Venc};
use nanokvm_ffi::{BadFrame, ReadError, ReadOutcome, VideoLibrary, MAX_FRAME_BYTES};

#[test]
fn each_bad_answer_is_typed_skipped_and_its_buffer_freed() {
    let oversized = MAX_FRAME_BYTES as u32 + 1;
    let cases: [(i32, bool, u32, ReadError); 9] = [
        (4, false, 100, ReadError::BadFrame(BadFrame::NullBuffer)),
        (0, false, 100, ReadError::BadFrame(BadFrame::NullBuffer)),
        (4, true, 0, ReadError::BadFrame(BadFrame::Empty)),
        (3, true, 0, ReadError::BadFrame(BadFrame::Empty)),
        (4, true, oversized, ReadError::BadFrame(BadFrame::Oversized)),
        (4, true, u32::MAX, ReadError::BadFrame(BadFrame::Oversized)),
        (6, true, 64, ReadError::Unknown(6)),
        // The retired SPS-only code, with a buffer.
        (1, true, 64, ReadError::Unknown(1)),
        // An error code that came with a buffer all the same.
        (-2, true, 64, ReadError::EncoderError),
    ];
    for generation in Generation::ALL {
        let dir = lib_dir("bad", generation, Venc::Absent);
        let mut lib = VideoLibrary::open(&dir).unwrap();
        let ctl = Control::open(&dir);
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264Idr));
        for (code, with_buffer, size, expected) in cases {
            ctl.script_frame(code, with_buffer, size);
            let mut lent = false;
            let r = lib.read(H264_720, |_| lent = true);
            assert_eq!(r, Err(expected), "{generation:?}: code {code}, size {size}");
            assert!(!lent, "{generation:?}: nothing lent for {expected:?}");
            assert_all_freed(&ctl);
            let (next, bytes) = read(&mut lib, H264_720);
            assert_eq!(
                next,
                Ok(ReadOutcome::H264P),
                "{generation:?} after {expected:?}"
            );
            assert!(!bytes.is_empty());
        }
        let c = ctl.counts();
        let with_buffers = cases.iter().filter(|c| c.1).count() as i64;
        assert_eq!(
            c.buffers,
            1 + cases.len() as i64 + with_buffers,
            "{generation:?}: {c:?}"
        );
        assert_all_freed(&ctl);
    }
}

#[test]
fn bad_frame_kinds_compare_without_sizes_so_each_is_logged_once() {
    assert_eq!(MAX_FRAME_BYTES, 8 << 20);
    let a = ReadError::BadFrame(BadFrame::Oversized);
    assert_eq!(a, ReadError::BadFrame(BadFrame::Oversized));
    assert_ne!(a, ReadError::BadFrame(BadFrame::Empty));
    assert!(a.to_string().contains("8 MiB"), "{a}");
    assert!(!a.is_transient());
}
