//! Routes for the simulated target only (tests and demos look at and poke the "computer"):
//! - `GET /api/sim/state`: `{"console": n, "text": "...", "pointer": {"x", "y", "buttons",
//!   "wheel"}, "leds": {"num_lock", "caps_lock", "scroll_lock"}, "keys_held": [...],
//!   "hid_connected": bool, "power": "on"|"off"|"booting"|"shutting_down"}` — the active
//!   console and its visible text, what the target's keyboard and mouse drivers see, and its
//!   power supply.
//! - `POST /api/sim/hid {"connected": bool}`: plug or unplug the target's USB cable.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::{read_json, respond, App, Body, TEXT};
use crate::media::MediaCmd;
use crate::sim::target::SimTargetMsg;

pub async fn state(app: &App) -> Response<Body> {
    let unavailable = |what: &str| {
        respond(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            format!("{what} is not running\n"),
        )
    };
    let (tx, rx) = async_channel::bounded(1);
    if app
        .links
        .media
        .send(MediaCmd::SimScreenState { reply: tx })
        .await
        .is_err()
    {
        return unavailable("the media thread");
    }
    let Ok((console, text)) = rx.recv().await else {
        return unavailable("the simulated screen");
    };
    let Some(target) = &app.sim_target else {
        return unavailable("the simulated target");
    };
    let (tx, rx) = async_channel::bounded(1);
    if target.send(SimTargetMsg::State(tx)).await.is_err() {
        return unavailable("the simulated target");
    }
    let Ok(input) = rx.recv().await else {
        return unavailable("the simulated target");
    };
    let body = serde_json::json!({
        "console": console,
        "text": text,
        "pointer": input.pointer,
        "leds": input.leds,
        "keys_held": input.keys_held,
        "hid_connected": input.hid_connected,
        "power": app.sim_state.as_ref().map(|feed| feed.power()),
    });
    respond(StatusCode::OK, "application/json", body.to_string())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectRequest {
    connected: bool,
}

pub async fn connect_hid(req: Request<Incoming>, app: &App) -> Response<Body> {
    let connected =
        match read_json::<ConnectRequest>(req, 1024, "{\"connected\": true|false}").await {
            Ok(r) => r.connected,
            Err(response) => return response,
        };
    match &app.sim_target {
        Some(target) if target.send(SimTargetMsg::Connect(connected)).await.is_ok() => {
            respond(StatusCode::NO_CONTENT, TEXT, bytes::Bytes::new())
        }
        _ => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "the simulated target is not running\n",
        ),
    }
}
