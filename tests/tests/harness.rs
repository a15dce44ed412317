//! Checks of the harness itself (no daemon needed): Annex-B splitting, OpenH264 decoding of the
//! replay file, multipart and metrics parsing.

use nanokvm_e2e::h264::{self, Decoder};
use nanokvm_e2e::{parse_listen_line, take_parts, Metrics};

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
