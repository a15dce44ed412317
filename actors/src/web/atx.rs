//! `/api/atx`: the front panel over plain HTTP, for scripts. `GET /api/atx` is the LED and
//! press state; `POST /api/atx/{power,power-long,reset}` starts a press and answers at once
//! (202) — the press runs on, `busy` in `GET /api/atx` (and in every console's `Atx`
//! message) goes back to `null` when it ends.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Request, Response, StatusCode};
use nanokvm_protocol::{AtxAction, AtxKind};
use serde::Deserialize;

use super::{respond, Body, JSON, TEXT};
use crate::atx::{kind_name, AtxReply, AtxRequest, Refusal};
use crate::web::App;

/// The actions, by the last part of their path.
const ACTIONS: [(&str, AtxKind); 3] = [
    ("power", AtxKind::Power),
    ("power-long", AtxKind::PowerLong),
    ("reset", AtxKind::Reset),
];

pub async fn handle(req: Request<Incoming>, app: &App) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/api/atx" {
        return match *req.method() {
            Method::GET | Method::HEAD => state(app),
            _ => not_allowed("GET"),
        };
    }
    let name = path.trim_start_matches("/api/atx/");
    let Some(&(_, kind)) = ACTIONS.iter().find(|(n, _)| *n == name) else {
        return respond(
            StatusCode::NOT_FOUND,
            TEXT,
            format!("unknown front-panel action {name:?}: expected power, power-long or reset\n"),
        );
    };
    if req.method() != Method::POST {
        return not_allowed("POST");
    }
    let body = match Limited::new(req.into_body(), 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad_request(format!("unreadable body: {e}")),
    };
    let action = match parse_action(kind, &body, app.links.atx.power_long_ms) {
        Ok(a) => a,
        Err(e) => return bad_request(e),
    };
    press(app, action).await
}

fn state(app: &App) -> Response<Body> {
    let s = app.links.devices.atx.clone().current();
    let json = serde_json::json!({
        "power_led": s.power_led,
        "hdd_led": s.hdd_led,
        "busy": s.busy.map(kind_name),
    });
    respond(StatusCode::OK, JSON, json.to_string())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LongPressBody {
    ms: Option<u32>,
}

/// The body is optional: empty, or a JSON object (`{"ms": N}` for power-long, `{}` otherwise).
fn parse_action(kind: AtxKind, body: &[u8], default_long_ms: u32) -> Result<AtxAction, String> {
    let object = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Map::new()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| format!("expected a JSON object or no body: {e}"))?
    };
    match kind {
        AtxKind::PowerLong => {
            let ms = serde_json::from_value::<LongPressBody>(object.into())
                .map_err(|e| format!("expected {{\"ms\": 1000..=30000}} or no body: {e}"))?
                .ms;
            Ok(AtxAction::PowerLong {
                ms: ms.unwrap_or(default_long_ms),
            })
        }
        AtxKind::Power | AtxKind::Reset => {
            if let Some(field) = object.keys().next() {
                return Err(format!(
                    "a {} press takes no parameters (got {field:?})",
                    kind_name(kind)
                ));
            }
            Ok(match kind {
                AtxKind::Power => AtxAction::Power,
                _ => AtxAction::Reset,
            })
        }
    }
}

async fn press(app: &App, action: AtxAction) -> Response<Body> {
    let (tx, rx) = async_channel::bounded(2);
    let request = AtxRequest { action, reply: tx };
    if app.links.atx.requests.send(request).await.is_err() {
        return unavailable("the front-panel actor has stopped".into());
    }
    match rx.recv().await {
        Ok(AtxReply::Started { kind, ms }) => {
            let json = serde_json::json!({ "started": kind_name(kind), "ms": ms });
            respond(StatusCode::ACCEPTED, JSON, json.to_string())
        }
        Ok(AtxReply::Refused {
            reason: reason @ Refusal::Busy(_),
            ..
        }) => respond(StatusCode::CONFLICT, TEXT, format!("{reason}\n")),
        Ok(AtxReply::Refused { reason, .. }) => bad_request(reason.to_string()),
        Ok(AtxReply::Unavailable { error, .. }) => {
            unavailable(format!("the button cannot be pressed: {error}"))
        }
        Ok(AtxReply::Finished { message, .. }) => unavailable(message),
        Err(_) => unavailable("the front-panel actor has stopped".into()),
    }
}

fn bad_request(message: String) -> Response<Body> {
    respond(StatusCode::BAD_REQUEST, TEXT, format!("{message}\n"))
}

fn unavailable(message: String) -> Response<Body> {
    respond(
        StatusCode::SERVICE_UNAVAILABLE,
        TEXT,
        format!("{message}\n"),
    )
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut res = respond(
        StatusCode::METHOD_NOT_ALLOWED,
        TEXT,
        Bytes::from(format!("use {allow}\n")),
    );
    res.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_optional_and_checked() {
        assert_eq!(
            parse_action(AtxKind::PowerLong, b"", 12_000),
            Ok(AtxAction::PowerLong { ms: 12_000 })
        );
        assert_eq!(
            parse_action(AtxKind::PowerLong, br#"{"ms": 1500}"#, 12_000),
            Ok(AtxAction::PowerLong { ms: 1500 })
        );
        assert_eq!(
            parse_action(AtxKind::PowerLong, b"{}", 9_000),
            Ok(AtxAction::PowerLong { ms: 9_000 })
        );
        assert_eq!(
            parse_action(AtxKind::Power, b" \n", 1),
            Ok(AtxAction::Power)
        );
        assert_eq!(parse_action(AtxKind::Reset, b"{}", 1), Ok(AtxAction::Reset));
        for (kind, body) in [
            (AtxKind::PowerLong, &br#"{"ms": -1}"#[..]),
            (AtxKind::PowerLong, br#"{"ms": "long"}"#),
            (AtxKind::PowerLong, br#"{"ms": 1500, "force": true}"#),
            (AtxKind::PowerLong, b"ms=1500"),
            (AtxKind::Power, br#"{"ms": 1500}"#),
            (AtxKind::Reset, b"[]"),
        ] {
            assert!(parse_action(kind, body, 1).is_err(), "{body:?}");
        }
    }
}
