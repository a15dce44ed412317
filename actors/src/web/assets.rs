//! The web console's files, embedded in the binary at build time.

/// Every file in `webroot/`, by name.
macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../../webroot/", $name)))),*]
    };
}

const ASSETS: &[(&str, &[u8])] = assets![
    "account.js",
    "app.js",
    "atx.js",
    "auth-form.js",
    "clock.js",
    "favicon.svg",
    "h264-player.js",
    "h264.js",
    "index.html",
    "input.js",
    "keyboard.js",
    "keymap.js",
    "login.html",
    "login.js",
    "paste.js",
    "pointer.js",
    "protocol.js",
    "settings.js",
    "setup.html",
    "setup.js",
    "stamp.js",
    "stats-overlay.js",
    "stats.js",
    "style.css",
    "video-worker.js",
];

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// The embedded file for a request path (`/` is the console page).
pub fn lookup(path: &str) -> Option<(&'static str, &'static [u8])> {
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        p => p,
    };
    ASSETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, body)| (content_type(n), *body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to webroot/ but not to ASSETS would be missing from the console.
    #[test]
    fn every_webroot_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../webroot");
        for entry in std::fs::read_dir(dir).expect("webroot exists") {
            let name = entry
                .expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8 name");
            assert!(
                lookup(&name).is_some(),
                "webroot/{name} is not in web/assets.rs"
            );
        }
        assert!(lookup("/").is_some());
        assert!(lookup("/../Cargo.toml").is_none());
    }
}
