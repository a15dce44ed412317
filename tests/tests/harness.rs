//! Checks of the harness itself (no daemon needed): which binary it runs, that every e2e test is
//! a target cargo builds the binary for, Annex-B splitting, OpenH264 decoding of the replay
//! file, multipart and metrics parsing.

use nanokvm_e2e::h264::{self, Decoder};
use nanokvm_e2e::{daemon_bin, parse_listen_line, take_parts, workspace_dir, Metrics};

#[test]
fn the_daemon_under_test_is_the_binary_cargo_built_for_this_run() {
    let expected = match std::env::var_os("NANOKVMD_BIN") {
        // A binary named on purpose (the measurement programs, the riscv64 smoke test) wins.
        Some(bin) => std::path::PathBuf::from(bin),
        None => std::path::PathBuf::from(env!("CARGO_BIN_EXE_nanokvmd")),
    };
    assert_eq!(daemon_bin(), expected);
}

/// A file in `tests/tests/` that is not a `[[test]]` target of `nanokvmd` would be compiled by
/// no package and run by nobody (`nanokvm-e2e` has `autotests = false`).
#[test]
fn every_e2e_test_file_is_a_test_target_of_nanokvmd() {
    let manifest_path = workspace_dir().join("actors/Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .unwrap_or_else(|e| panic!("{}: {e}", manifest_path.display()));
    let declared: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path = \"../tests/tests/"))
        .filter_map(|l| l.strip_suffix(".rs\""))
        .collect();
    let dir = workspace_dir().join("tests/tests");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    files.sort();
    let missing: Vec<&String> = files
        .iter()
        .filter(|f| !declared.contains(&f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "tests/tests/{{{}}}.rs: add a [[test]] target for each to actors/Cargo.toml",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let gone: Vec<&&str> = declared
        .iter()
        .filter(|d| !files.iter().any(|f| f == *d))
        .collect();
    assert!(
        gone.is_empty(),
        "actors/Cargo.toml names missing e2e test files: {gone:?}"
    );
}

#[test]
fn replay_file_splits_into_decodable_access_units() {
    let path = h264::replay_file();
    let data = std::fs::read(&path).expect("read replay file");
    let (aus, rest) = h264::split_access_units(&data);
    // The last access unit is never "complete" (nothing follows it).
    assert_eq!(aus.len(), 59, "access units in the 60-frame replay file");
    h264::check_keyframe_au(aus[0]).expect("the replay file starts with SPS, PPS, IDR");
    h264::check_keyframe_au(aus[30]).expect("frame 30 is an IDR with SPS and PPS");
    let mut dec = Decoder::new();
    for (i, au) in aus
        .iter()
        .chain(std::iter::once(&&data[rest..]))
        .enumerate()
    {
        let size = dec
            .decode_picture(au)
            .unwrap_or_else(|e| panic!("frame {i}: {e}"));
        assert_eq!(size, (1280, 720), "frame {i}");
    }
    let sizes: Vec<usize> = aus.iter().map(|a| a.len()).collect();
    eprintln!(
        "replay file: {} bytes, access units {}..{} bytes",
        data.len(),
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0)
    );
}

#[test]
fn listen_line_parses() {
    assert_eq!(
        parse_listen_line("nanokvmd listening on http://127.0.0.1:4321/\n"),
        Some("127.0.0.1:4321".parse().unwrap())
    );
    assert_eq!(parse_listen_line("listening on 127.0.0.1:1"), None);
}

#[test]
fn multipart_parts_are_taken_incrementally() {
    let mut buf = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: 3\r\n\r\nabc\r\n--frame\r\nContent-Type: image/jpeg\r\nContent-Len".to_vec();
    let parts = take_parts(&mut buf, "frame").unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].body, b"abc");
    buf.extend_from_slice(b"gth: 2\r\n\r\nde\r\n");
    let parts = take_parts(&mut buf, "frame").unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].body, b"de");
    assert!(buf.is_empty());
    let mut bad = b"--other\r\n\r\n".to_vec();
    assert!(take_parts(&mut bad, "frame").is_err());
}

#[test]
fn metrics_text_parses() {
    let m = Metrics::parse(
        "# HELP nanokvmd_idr_total IDRs\n# TYPE nanokvmd_idr_total counter\n\
         nanokvmd_idr_total{reason=\"new_viewer\"} 3\nnanokvmd_idr_total{reason=\"gop\"} 1\n\
         nanokvmd_frames_dropped_total 0\n",
    );
    assert_eq!(
        m.get("nanokvmd_idr_total{reason=\"new_viewer\"}"),
        Some(3.0)
    );
    assert_eq!(m.sum("nanokvmd_idr_total"), 4.0);
    assert!(m.has("nanokvmd_frames_dropped_total"));
    assert!(!m.has("nanokvmd_idr"));
}
