//! `/api/auth/*`: login, first-admin setup, logout, password change, and who is logged in.
//! The decisions are `auth::Auth`'s; this file speaks HTTP (JSON bodies, the session cookie).

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER, SET_COOKIE};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;

use super::ctx::{Ctx, SESSION_COOKIE};
use super::{read_json, respond, Body, TEXT};
use crate::auth::{AuthError, NewSession};

const JSON: &str = "application/json";
/// Login bodies are small; anything bigger is not a login.
const MAX_BODY: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Setup {
    code: String,
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current: String,
    new: String,
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    respond(status, JSON, value.to_string())
}

fn error(e: &AuthError) -> Response<Body> {
    let status = match e {
        AuthError::Refused => StatusCode::UNAUTHORIZED,
        AuthError::TryLater(_) => StatusCode::TOO_MANY_REQUESTS,
        AuthError::SetupDone => StatusCode::CONFLICT,
        AuthError::NotAUser => StatusCode::FORBIDDEN,
        AuthError::Password(crate::auth::password::PasswordError::TooShort)
        | AuthError::Password(crate::auth::password::PasswordError::TooLong)
        | AuthError::Accounts(..) => StatusCode::BAD_REQUEST,
        AuthError::Worker(crate::auth::worker::WorkerError::Busy) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        log::error!("auth: {e}");
    }
    let mut res = json(status, serde_json::json!({ "error": e.to_string() }));
    if let AuthError::TryLater(t) = e {
        let secs = t.wait_us.div_ceil(1_000_000).to_string();
        if let Ok(v) = HeaderValue::from_str(&secs) {
            res.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    res
}

fn cookie(ctx: &Ctx, value: &str, max_age_secs: u64) -> Option<HeaderValue> {
    let secure = if ctx.app.tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .ok()
}

fn logged_in(ctx: &Ctx, s: NewSession) -> Response<Body> {
    let limits = ctx.app.auth.limits();
    let mut res = json(
        StatusCode::OK,
        serde_json::json!({
            "user": s.user,
            "idle_timeout_s": limits.idle_us / 1_000_000,
        }),
    );
    if let Some(c) = cookie(ctx, &s.id, limits.absolute_us / 1_000_000) {
        res.headers_mut().insert(SET_COOKIE, c);
    }
    res
}

pub async fn login(req: Request<Incoming>, ctx: Ctx) -> Response<Body> {
    let body: Login = match read_json(req, MAX_BODY, "{\"username\", \"password\"}").await {
        Ok(b) => b,
        Err(res) => return res,
    };
    match ctx
        .app
        .auth
        .login(ctx.peer.ip(), &body.username, body.password)
        .await
    {
        Ok(s) => logged_in(&ctx, s),
        Err(e) => error(&e),
    }
}

pub async fn setup(req: Request<Incoming>, ctx: Ctx) -> Response<Body> {
    let body: Setup = match read_json(req, MAX_BODY, "{\"code\", \"username\", \"password\"}").await
    {
        Ok(b) => b,
        Err(res) => return res,
    };
    match ctx
        .app
        .auth
        .setup(ctx.peer.ip(), &body.code, &body.username, body.password)
        .await
    {
        Ok(s) => logged_in(&ctx, s),
        Err(e) => error(&e),
    }
}

pub fn status(ctx: &Ctx) -> Response<Body> {
    json(
        StatusCode::OK,
        serde_json::json!({
            "setup_required": ctx.app.auth.setup_pending(),
            "user": ctx.caller.as_ref().map(|c| c.name.clone()),
        }),
    )
}

pub fn me(ctx: &Ctx) -> Response<Body> {
    let Some(caller) = &ctx.caller else {
        return respond(StatusCode::UNAUTHORIZED, TEXT, "not logged in\n");
    };
    json(
        StatusCode::OK,
        serde_json::json!({
            "user": caller.name,
            "kind": if caller.is_session() { "session" } else { "token" },
            "expires_in_s": ctx.app.auth.remaining_secs(caller),
        }),
    )
}

pub fn logout(ctx: &Ctx) -> Response<Body> {
    if let Some(caller) = &ctx.caller {
        ctx.app.auth.logout(caller);
        log::info!("logout: {:?}", caller.name);
    }
    let mut res = respond(StatusCode::NO_CONTENT, TEXT, bytes::Bytes::new());
    if let Some(c) = cookie(ctx, "", 0) {
        res.headers_mut().insert(SET_COOKIE, c);
    }
    res
}

pub async fn change_password(req: Request<Incoming>, ctx: Ctx) -> Response<Body> {
    let body: PasswordChange = match read_json(req, MAX_BODY, "{\"current\", \"new\"}").await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let Some(caller) = &ctx.caller else {
        return respond(StatusCode::UNAUTHORIZED, TEXT, "not logged in\n");
    };
    match ctx
        .app
        .auth
        .change_password(ctx.peer.ip(), caller, body.current, body.new)
        .await
    {
        Ok(()) => respond(StatusCode::NO_CONTENT, TEXT, bytes::Bytes::new()),
        // A wrong current password must not look like an ended session (401 sends the
        // console back to the login page).
        Err(AuthError::Refused) => json(
            StatusCode::FORBIDDEN,
            serde_json::json!({ "error": "the current password is wrong" }),
        ),
        Err(e) => error(&e),
    }
}
