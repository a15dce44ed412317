//! What the safe wrapper costs per frame over calling the library's symbols directly, against
//! the C mock (`cargo run --release -p nanokvm-ffi --features mock --example read_overhead
//! [RECORDING.h264]`). Both loops read, copy the frame into a reused buffer and free it; with a
//! recording the frames have real sizes, so the copy's share shows too.

// Calls the vendor library's raw symbols (directly or through `common`) to hold the wrapper
// against them; like the crate, it cannot do without `unsafe`.
#![allow(unsafe_code)]

use std::time::Instant;

use nanokvm_ffi::mock::{self, Control, Venc};
use nanokvm_ffi::{Encoding, ReadRequest, VideoLibrary};

const READS: u32 = 200_000;

fn main() {
    let dir = std::env::temp_dir().join(format!("nanokvm-ffi-overhead-{}", std::process::id()));
    mock::install(&dir, Venc::WithRequestIdr);
    let recording = std::env::args().nth(1);
    let request = ReadRequest {
        width: 1280,
        height: 720,
        encoding: Encoding::H264,
        quality: 2000,
    };
    let mut out: Vec<u8> = Vec::with_capacity(1 << 20);

    let mut lib = VideoLibrary::open(&dir).expect("mock");
    let ctl = Control::open(&dir);
    if let Some(r) = &recording {
        assert!(
            ctl.set_stream(std::path::Path::new(r)) > 0,
            "{r}: not a recording"
        );
    }
    // SAFETY: the mock's initialisers do nothing; this is the instance the wrapper opened.
    let raw = unsafe { libloading::Library::new(dir.join("libkvm.so")) }.expect("mock");
    type Read = unsafe extern "C" fn(u16, u16, u8, u16, *mut *mut u8, *mut u32) -> i32;
    type Free = unsafe extern "C" fn(*mut *mut u8) -> i32;
    // SAFETY: the mock's symbols with their C signatures; `raw` keeps them loaded.
    let (read, free): (Read, Free) = unsafe {
        (
            *raw.get::<Read>(b"kvmv_read_img\0").unwrap(),
            *raw.get::<Free>(b"free_kvmv_data\0").unwrap(),
        )
    };

    let mut bytes = 0usize;
    let t = Instant::now();
    for _ in 0..READS {
        let (mut p, mut n) = (std::ptr::null_mut(), 0u32);
        // SAFETY: both out-pointers point to live locals.
        let code = unsafe { read(1280, 720, 1, 2000, &mut p, &mut n) };
        if code >= 0 && !p.is_null() {
            out.clear();
            // SAFETY: on a frame code the library lends `n` bytes at `p` until the free below.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(p, n as usize) });
            bytes += out.len();
            // SAFETY: a buffer the library handed out, freed once.
            unsafe { free(&mut p) };
        }
    }
    let raw_ns = t.elapsed().as_nanos() as f64 / READS as f64;

    let t = Instant::now();
    for _ in 0..READS {
        let _ = lib.read(request, |f| {
            out.clear();
            f.append_to(&mut out);
        });
    }
    let wrapped_ns = t.elapsed().as_nanos() as f64 / READS as f64;
    let c = ctl.counts();
    assert_eq!(c.buffers, c.frees);
    println!(
        "{READS} reads each, mean frame {} bytes: raw symbols {raw_ns:.0} ns/read, \
         VideoLibrary::read {wrapped_ns:.0} ns/read, difference {:.0} ns",
        bytes / READS as usize,
        wrapped_ns - raw_ns
    );
    drop(lib);
    let _ = std::fs::remove_dir_all(&dir);
}
