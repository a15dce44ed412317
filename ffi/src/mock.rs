//! The C mock of the vendor library (`ffi/mock/`), for host tests: built with the system C
//! compiler (`cc -shared -fPIC`) when a test asks for it, installed into a directory laid out
//! like the device's `dl_lib/`, and steered through its `mock_*` functions.
//!
//! Each test installs its own copy into its own directory: a library is loaded once per file,
//! so separate copies keep the state of tests running in parallel apart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What stands next to the mock `libkvm.so`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Venc {
    /// `libvenc.so` with `CVI_VENC_RequestIDR`.
    WithRequestIdr,
    /// `libvenc.so` without the symbol (an older image).
    WithoutRequestIdr,
    /// No `libvenc.so` at all.
    Absent,
}

/// The mock's counters (`struct mock_counts` in `mock_kvm.c`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub reads: i64,
    pub buffers: i64,
    pub frees: i64,
    pub bad_frees: i64,
    pub held: i64,
    pub gop_sets: i64,
    pub idrs: i64,
    pub inits: i64,
    pub deinits: i64,
    pub freed_at_deinit: i64,
}

fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("mock")
        .join(name)
}

/// `NANOKVM_MOCK_CC` names another compiler (one program, e.g. a wrapper around
/// `zig cc -target riscv64-linux-musl`): `cargo xtask dist` builds the riscv64 mock with it,
/// with the same sources and defines as here.
fn compiler() -> std::ffi::OsString {
    std::env::var_os("NANOKVM_MOCK_CC").unwrap_or_else(|| "cc".into())
}

fn compile(out: &Path, src: &str, extra: &[&str]) -> Result<(), String> {
    let output = Command::new(compiler())
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-o"])
        .arg(out)
        .arg(source(src))
        .args(extra)
        .output()
        .map_err(|e| format!("running {:?}: {e}", compiler()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cc {src}: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Compiles the three libraries once per process, into a directory of their own.
fn built() -> &'static Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nanokvm-mock-build-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        compile(&dir.join("libkvm.so"), "mock_kvm.c", &["-ldl"])?;
        compile(&dir.join("libvenc.so"), "mock_venc.c", &[])?;
        compile(
            &dir.join("libvenc-without-request.so"),
            "mock_venc.c",
            &["-DMOCK_VENC_WITHOUT_REQUEST_IDR"],
        )?;
        Ok(dir)
    })
}

/// Installs the mock into `dir` (created if needed): `libkvm.so`, and `libvenc.so` as `venc`
/// says. Panics with the compiler's message if it cannot be built (tests only).
pub fn install(dir: &Path, venc: Venc) {
    let built = match built() {
        Ok(b) => b,
        Err(e) => panic!("building the vendor library mock: {e}"),
    };
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let copy = |from: &str, to: &str| {
        // A copy, not a link: a new file is a new library instance.
        std::fs::copy(built.join(from), dir.join(to))
            .unwrap_or_else(|e| panic!("installing {to} in {}: {e}", dir.display()));
    };
    copy("libkvm.so", "libkvm.so");
    match venc {
        Venc::WithRequestIdr => copy("libvenc.so", "libvenc.so"),
        Venc::WithoutRequestIdr => copy("libvenc-without-request.so", "libvenc.so"),
        Venc::Absent => {}
    }
}

/// The test's handle on a mock installed in a directory: the same library instance the
/// wrapper opened from there.
pub struct Control {
    kvm: libloading::Library,
    venc: Option<libloading::Library>,
}

impl Control {
    /// Opens the mock in `dir` (which [`install`] filled).
    pub fn open(dir: &Path) -> Self {
        // SAFETY: the mock's initialisers do nothing.
        let kvm = unsafe { libloading::Library::new(dir.join("libkvm.so")) }
            .unwrap_or_else(|e| panic!("opening the mock: {e}"));
        let venc = unsafe { libloading::Library::new(dir.join("libvenc.so")) }.ok();
        Self { kvm, venc }
    }

    fn kvm_fn<T: Copy>(&self, name: &[u8]) -> T {
        // SAFETY: each caller names a mock function with the signature it asks for.
        unsafe { *self.kvm.get::<T>(name).expect("mock symbol") }
    }

    pub fn counts(&self) -> Counts {
        let f: unsafe extern "C" fn(*mut Counts) = self.kvm_fn(b"mock_counts\0");
        let mut c = Counts::default();
        // SAFETY: writes one struct of this layout.
        unsafe { f(&mut c) };
        c
    }

    /// The next reads return these codes (0, 3 and 4 produce that kind of frame).
    pub fn script(&self, codes: &[i32]) {
        let f: unsafe extern "C" fn(*const i32, i32) = self.kvm_fn(b"mock_script\0");
        // SAFETY: pointer and length of a live slice; the mock copies it.
        unsafe { f(codes.as_ptr(), codes.len() as i32) };
    }

    pub fn set_signal(&self, present: bool) {
        let f: unsafe extern "C" fn(i32) = self.kvm_fn(b"mock_set_signal\0");
        // SAFETY: one integer.
        unsafe { f(present as i32) };
    }

    /// The input changes to `width` x `height`; the next `probing` reads answer -4.
    pub fn set_input(&self, width: u16, height: u16, probing: i32) {
        let f: unsafe extern "C" fn(u16, u16, i32) = self.kvm_fn(b"mock_set_input\0");
        // SAFETY: integers.
        unsafe { f(width, height, probing) };
    }

    /// Serves this Annex-B recording; returns its number of access units.
    pub fn set_stream(&self, path: &Path) -> i32 {
        let f: unsafe extern "C" fn(*const std::os::raw::c_char) -> i32 =
            self.kvm_fn(b"mock_set_stream\0");
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a NUL-terminated path the mock only reads.
        unsafe { f(c.as_ptr()) }
    }

    pub fn gop(&self) -> i32 {
        let f: unsafe extern "C" fn() -> i32 = self.kvm_fn(b"mock_gop\0");
        // SAFETY: no arguments.
        unsafe { f() }
    }

    pub fn frame_detect(&self) -> i32 {
        let f: unsafe extern "C" fn() -> i32 = self.kvm_fn(b"mock_frame_detect\0");
        // SAFETY: no arguments.
        unsafe { f() }
    }

    /// `CVI_VENC_RequestIDR` calls seen by the mock libvenc (0 without one).
    pub fn venc_requests(&self) -> i64 {
        let Some(venc) = &self.venc else { return 0 };
        // SAFETY: the mock's counter getter.
        unsafe {
            venc.get::<unsafe extern "C" fn() -> i64>(b"mock_venc_requests\0")
                .map_or(0, |f| f())
        }
    }
}

/// The counters the mock wrote next to itself at `kvmv_deinit` (for tests that run the
/// daemon), as name → value.
pub fn stats_file(dir: &Path) -> Option<Vec<(String, i64)>> {
    let text = std::fs::read_to_string(dir.join("mock_stats.txt")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect(),
    )
}
