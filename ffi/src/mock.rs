//! The C mock of the vendor library (`ffi/mock/`), for host tests: one build per library
//! generation ([`Generation`], `-DMOCK_GEN=…`), compiled with the system C compiler
//! (`cc -shared -fPIC`) into a directory of its own when a test first asks for it, installed
//! into a directory laid out like the device's `dl_lib/`, and steered through its `mock_*`
//! functions.
//!
//! Each test installs its own copy into its own directory: a library is loaded once per file,
//! so separate copies keep the state of tests running in parallel apart.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Which release's `libkvm.so` the mock stands for (`MOCK_GEN` in `mock_kvm.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generation {
    /// v1.3.0: no `kvmv_hdmi_control`; IDRs without their SPS/PPS, which come from
    /// `kvmv_get_sps_frame` / `kvmv_get_pps_frame`.
    V1_3,
    /// 2.1.6 .. 2.2.1: as v1.3 plus `kvmv_hdmi_control`.
    V2_2,
    /// 2.2.3 .. 2.5.0, the released set: `set_frame_detact`, `set_venc_auto_recyc`; IDRs carry
    /// SPS + PPS.
    V2_5,
    /// The untagged library after 2.5.0: `kvmv_hdmi_signal_active`, and capture disabled until
    /// `kvmv_hdmi_control(1)`.
    Newest,
}

impl Generation {
    pub const ALL: [Generation; 4] = [
        Generation::V1_3,
        Generation::V2_2,
        Generation::V2_5,
        Generation::Newest,
    ];

    /// The value of `MOCK_GEN`.
    pub fn define(self) -> u32 {
        match self {
            Generation::V1_3 => 13,
            Generation::V2_2 => 22,
            Generation::V2_5 => 25,
            Generation::Newest => 26,
        }
    }
}

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
    /// H.264 encoder channels created.
    pub encoders: i64,
    /// Reads that failed waiting for the encoder's output.
    pub venc_timeouts: i64,
    /// Reads before `kvmv_init` or after `kvmv_deinit`.
    pub reads_before_init: i64,
}

/// One call the mock recorded (a run of reads of one type is one call with `repeat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    /// The integer argument, if the call has one.
    pub arg: Option<i32>,
    /// The mock's clock (monotonic, or the one a test set) in µs.
    pub at_us: i64,
    pub repeat: i64,
    /// The calling thread's name.
    pub thread: String,
}

impl Call {
    /// `name` or `name(arg)`, for comparing orders.
    pub fn label(&self) -> String {
        match self.arg {
            Some(a) => format!("{}({a})", self.name),
            None => self.name.clone(),
        }
    }
}

fn parse_calls(text: &str) -> Vec<Call> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.splitn(5, ' ');
            let name = f.next()?.to_string();
            let arg: i32 = f.next()?.parse().ok()?;
            Some(Call {
                name,
                arg: (arg >= 0).then_some(arg),
                at_us: f.next()?.parse().ok()?,
                repeat: f.next()?.parse().ok()?,
                thread: f.next().unwrap_or_default().to_string(),
            })
        })
        .collect()
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

fn build_into(dir: &Path, generation: Generation) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let define = format!("-DMOCK_GEN={}", generation.define());
    compile(&dir.join("libkvm.so"), "mock_kvm.c", &[&define, "-ldl"])?;
    compile(&dir.join("libvenc.so"), "mock_venc.c", &[])?;
    compile(
        &dir.join("libvenc-without-request.so"),
        "mock_venc.c",
        &["-DMOCK_VENC_WITHOUT_REQUEST_IDR"],
    )
}

/// Compiles the mock of `generation` (and the two `libvenc.so` variants) once per process,
/// into a directory of its own; returns that directory.
pub fn build(generation: Generation) -> Result<&'static Path, String> {
    static BUILT: [OnceLock<Result<PathBuf, String>>; 4] = [
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
        OnceLock::new(),
    ];
    let slot = Generation::ALL
        .iter()
        .position(|g| *g == generation)
        .unwrap_or_default();
    let built = BUILT[slot].get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "nanokvm-mock-build-{}/gen{}",
            std::process::id(),
            generation.define()
        ));
        build_into(&dir, generation).map(|()| dir)
    });
    match built {
        Ok(dir) => Ok(dir),
        Err(e) => Err(e.clone()),
    }
}

/// Installs the mock of the released library (2.2.3 .. 2.5.0, what devices run) into `dir`.
pub fn install(dir: &Path, venc: Venc) {
    install_generation(dir, Generation::V2_5, venc)
}

/// Installs the mock of `generation` into `dir` (created if needed): `libkvm.so`, and
/// `libvenc.so` as `venc` says. Panics with the compiler's message if it cannot be built
/// (tests only).
pub fn install_generation(dir: &Path, generation: Generation, venc: Venc) {
    let built = build(generation).unwrap_or_else(|e| panic!("building the mock: {e}"));
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
        // SAFETY: as above.
        let venc = unsafe { libloading::Library::new(dir.join("libvenc.so")) }.ok();
        Self { kvm, venc }
    }

    fn kvm_fn<T: Copy>(&self, name: &[u8]) -> T {
        // SAFETY: each caller names a mock function with the signature it asks for.
        unsafe { *self.kvm.get::<T>(name).expect("mock symbol") }
    }

    fn get_i32(&self, name: &[u8]) -> i32 {
        let f: unsafe extern "C" fn() -> i32 = self.kvm_fn(name);
        // SAFETY: a getter without arguments.
        unsafe { f() }
    }

    pub fn counts(&self) -> Counts {
        let f: unsafe extern "C" fn(*mut Counts) = self.kvm_fn(b"mock_counts\0");
        let mut c = Counts::default();
        // SAFETY: writes one struct of this layout.
        unsafe { f(&mut c) };
        c
    }

    /// The `MOCK_GEN` it was built with.
    pub fn generation(&self) -> i32 {
        self.get_i32(b"mock_generation\0")
    }

    /// The next reads return these codes (0, 3 and 4 produce that kind of frame).
    pub fn script(&self, codes: &[i32]) {
        let f: unsafe extern "C" fn(*const i32, i32) = self.kvm_fn(b"mock_script\0");
        // SAFETY: pointer and length of a live slice; the mock copies it.
        unsafe { f(codes.as_ptr(), codes.len() as i32) };
    }

    /// One more scripted read: `code`, with a buffer of the ring or a null pointer, and
    /// `size` reported whatever the buffer holds (it holds 64 bytes).
    pub fn script_frame(&self, code: i32, with_buffer: bool, size: u32) {
        let f: unsafe extern "C" fn(i32, i32, u32) = self.kvm_fn(b"mock_script_frame\0");
        // SAFETY: integers.
        unsafe { f(code, with_buffer as i32, size) };
    }

    pub fn set_signal(&self, present: bool) {
        let f: unsafe extern "C" fn(i32) = self.kvm_fn(b"mock_set_signal\0");
        // SAFETY: one integer.
        unsafe { f(present as i32) };
    }

    /// The board variant, as the first character of `/etc/kvm/hw` (`b'p'`: PCIe).
    pub fn set_board(&self, variant: u8) {
        let f: unsafe extern "C" fn(std::os::raw::c_char) = self.kvm_fn(b"mock_set_board\0");
        // SAFETY: one character.
        unsafe { f(variant as std::os::raw::c_char) };
    }

    /// The input changes to `width` x `height`; the next `probing` reads answer -4.
    pub fn set_input(&self, width: u16, height: u16, probing: i32) {
        let f: unsafe extern "C" fn(u16, u16, i32) = self.kvm_fn(b"mock_set_input\0");
        // SAFETY: integers.
        unsafe { f(width, height, probing) };
    }

    /// The next `n` encodes do not deliver their output in time (read answers -1).
    pub fn venc_timeouts(&self, n: i32) {
        let f: unsafe extern "C" fn(i32) = self.kvm_fn(b"mock_venc_timeouts\0");
        // SAFETY: one integer.
        unsafe { f(n) };
    }

    /// The mock's clock from now on (µs); `None`: the monotonic clock again.
    pub fn set_clock_us(&self, us: Option<i64>) {
        let f: unsafe extern "C" fn(i64) = self.kvm_fn(b"mock_set_clock_us\0");
        // SAFETY: one integer.
        unsafe { f(us.unwrap_or(-1)) };
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
        self.get_i32(b"mock_gop\0")
    }

    pub fn frame_detect(&self) -> i32 {
        self.get_i32(b"mock_frame_detect\0")
    }

    /// The encoder's bitrate (kbit/s) as the library clamped it.
    pub fn bitrate(&self) -> i32 {
        self.get_i32(b"mock_bitrate\0")
    }

    /// The JPEG quality of the last MJPEG read, as clamped.
    pub fn jpeg_quality(&self) -> i32 {
        self.get_i32(b"mock_jpeg_quality\0")
    }

    /// The video processor's channel width for the last read (64-pixel aligned).
    pub fn vpss_width(&self) -> i32 {
        self.get_i32(b"mock_vpss_width\0")
    }

    /// The size of the last picture read.
    pub fn output_size(&self) -> (u16, u16) {
        let f: unsafe extern "C" fn() -> u32 = self.kvm_fn(b"mock_output_size\0");
        // SAFETY: a getter without arguments.
        let packed = unsafe { f() };
        ((packed >> 16) as u16, packed as u16)
    }

    /// The newest library's capture flag; `None` for generations without one.
    pub fn capture_enabled(&self) -> Option<bool> {
        match self.get_i32(b"mock_capture_enabled\0") {
            -1 => None,
            v => Some(v != 0),
        }
    }

    /// The PCIe board's HDMI receiver enable line.
    pub fn receiver_on(&self) -> bool {
        self.get_i32(b"mock_receiver_on\0") != 0
    }

    /// H.264 reads per second over the last ones.
    pub fn pull_fps(&self) -> f64 {
        self.get_i32(b"mock_pull_fps_milli\0") as f64 / 1000.0
    }

    /// The bitrate the stream really carries (kbit/s): the encoder spends a 60th of its
    /// bitrate per frame whatever rate frames are pulled at.
    pub fn effective_kbps(&self) -> i32 {
        self.get_i32(b"mock_effective_kbps\0")
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        let f: unsafe extern "C" fn(*mut std::os::raw::c_char, i32) -> i32 =
            self.kvm_fn(b"mock_calls\0");
        // SAFETY: a null buffer of size 0 only asks for the length.
        let need = unsafe { f(std::ptr::null_mut(), 0) };
        let mut buf = vec![0u8; need.max(0) as usize + 1];
        // SAFETY: the buffer holds `buf.len()` bytes; the mock writes at most that many.
        unsafe { f(buf.as_mut_ptr().cast(), buf.len() as i32) };
        let text = String::from_utf8_lossy(&buf[..need.max(0) as usize]);
        parse_calls(&text)
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

/// The calls the mock wrote next to itself at `kvmv_deinit`, in order.
pub fn calls_file(dir: &Path) -> Option<Vec<Call>> {
    let text = std::fs::read_to_string(dir.join("mock_calls.txt")).ok()?;
    Some(parse_calls(&text))
}
