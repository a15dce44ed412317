//! What every handler gets besides the request, apart from the route table so that the
//! handlers (`auth_api.rs`, `ws.rs`, ...) and the table that names them do not import each other.

use std::net::SocketAddr;
use std::rc::Rc;

use super::App;
use crate::auth::{Caller, SessionGuard};

/// The login session's cookie name.
pub const SESSION_COOKIE: &str = "nanokvm_session";

/// What a handler gets besides the request.
pub struct Ctx {
    pub app: Rc<App>,
    /// `None` only on public routes.
    pub caller: Option<Caller>,
    pub peer: SocketAddr,
}

impl Ctx {
    /// What a long-lived response (a stream, a WebSocket) holds to end when the caller's
    /// credential is revoked or expires.
    pub fn guard(&self) -> Option<SessionGuard> {
        self.caller.as_ref().map(|c| self.app.auth.guard(c))
    }
}
