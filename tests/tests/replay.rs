//! `--source replay:FILE`: a pre-encoded Annex-B file streamed at the configured fps.

use std::time::Duration;

use nanokvm_e2e::ws::WsClient;
use nanokvm_e2e::{block_on, h264, http, Daemon};

#[test]
fn replay_source_streams_the_file_and_has_no_mjpeg() {
    let file = h264::replay_file();
    let source = format!("replay:{}", file.display());
    let d = Daemon::start(&["--source", &source, "--fps", "30"]);
    block_on(async {
        let (mut c, _, hello_at) = WsClient::connect_hello(d.addr(), true).await;
        let first = c.recv_video(Duration::from_secs(3)).await;
        eprintln!(
            "replay: first {} after {:?}",
            first.describe(),
            first.at.saturating_duration_since(hello_at)
        );
        assert!(
            first.header.keyframe,
            "first replay frame is not a keyframe: {}",
            first.describe()
        );
        h264::check_keyframe_au(&first.data).unwrap_or_else(|e| panic!("{e}"));
        let mut frames = vec![first];
        frames.extend(c.collect_video(Duration::from_millis(700)).await);
        assert!(
            frames.len() >= 10,
            "only {} replay frames in 0.7 s",
            frames.len()
        );
        let mut dec = h264::Decoder::new();
        for f in &frames {
            assert_eq!(
                (f.header.width, f.header.height),
                (1280, 720),
                "{}",
                f.describe()
            );
            let size = dec
                .decode_picture(&f.data)
                .unwrap_or_else(|e| panic!("{}: {e}", f.describe()));
            assert_eq!(size, (1280, 720), "{}", f.describe());
        }
    });
    let r = http::get(d.addr(), "/api/stream/mjpeg");
    assert_eq!(r.status, 503, "MJPEG with a replay source: {}", r.summary());
}
