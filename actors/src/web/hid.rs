//! `POST /api/hid/paste`: types text on the target, for scripts and tools.
//!
//! Request: `{"text": "...", "layout": "us" | "de" | "fr" | "uk"}` (layout optional, `us`).
//! The answer comes when the text has been typed: `200 {"typed": N, "unknown": "..."}`
//! (`unknown`: the characters the layout cannot type, each once), `409` while another paste
//! runs, `413` for text over 64 KiB, `503` when the keyboard is not connected.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use nanokvm_protocol::KeyboardLayout;

use super::{read_json, respond, App, Body, TEXT};
use crate::hid::{HidMsg, PasteOutcome};

/// The most text one paste may carry (the WebSocket's message limit, for the same reason:
/// at 100 characters a second this is already ten minutes of typing).
pub const MAX_PASTE_BYTES: usize = 64 * 1024;
/// JSON escapes may take six bytes per character of text.
const MAX_BODY: usize = 6 * MAX_PASTE_BYTES + 1024;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PasteRequest {
    text: String,
    #[serde(default)]
    layout: LayoutName,
}

#[derive(serde::Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum LayoutName {
    #[default]
    Us,
    De,
    Fr,
    Uk,
}

impl From<LayoutName> for KeyboardLayout {
    fn from(l: LayoutName) -> Self {
        match l {
            LayoutName::Us => KeyboardLayout::Us,
            LayoutName::De => KeyboardLayout::De,
            LayoutName::Fr => KeyboardLayout::Fr,
            LayoutName::Uk => KeyboardLayout::Uk,
        }
    }
}

pub async fn paste(req: Request<Incoming>, app: &App) -> Response<Body> {
    let expected = r#"{"text": "...", "layout": "us" | "de" | "fr" | "uk"}"#;
    let request = match read_json::<PasteRequest>(req, MAX_BODY, expected).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    if request.text.len() > MAX_PASTE_BYTES {
        return respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            TEXT,
            format!(
                "{} bytes of text; at most {MAX_PASTE_BYTES} can be pasted at once\n",
                request.text.len()
            ),
        );
    }
    let (reply, answer) = async_channel::bounded(1);
    let msg = HidMsg::Paste {
        text: request.text,
        layout: request.layout.into(),
        reply,
    };
    let stopped = || {
        respond(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "the hid actor stopped\n",
        )
    };
    if app.links.hid.send(msg).await.is_err() {
        return stopped();
    }
    match answer.recv().await {
        Ok(PasteOutcome::Done { typed, unknown }) => respond(
            StatusCode::OK,
            "application/json",
            serde_json::json!({ "typed": typed, "unknown": unknown }).to_string(),
        ),
        Ok(PasteOutcome::Busy) => respond(
            StatusCode::CONFLICT,
            TEXT,
            "another paste is still being typed\n",
        ),
        Ok(PasteOutcome::Unavailable) => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "the keyboard is not connected to the target\n",
        ),
        Err(_) => stopped(),
    }
}
