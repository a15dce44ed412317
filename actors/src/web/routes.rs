//! The route table and the one place where access is decided. Every request is matched
//! against [`ROUTES`]; the row says who may use it, and [`dispatch`] refuses everyone else
//! before any handler runs. A route cannot be added without saying who may use it, and the
//! e2e suite (`tests/tests/auth.rs`) walks this table (`nanokvmd routes`) and checks that each
//! non-public row refuses an unauthenticated request.
//!
//! To add a route: one row here (method, path, [`Access`], handler). The handler gets the
//! request and a [`Ctx`] with the caller already authenticated.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, COOKIE, HOST, LOCATION, ORIGIN, REFERER};
use hyper::{Method, Request, Response, StatusCode};

use super::ctx::{Ctx, SESSION_COOKIE};
use super::{assets, atx, auth_api, hid, respond, streams, ws, App, Body, TEXT};

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the login and setup pages, what they load, and the login/setup API.
    Public,
    /// A login session (cookie) or an API token (`Authorization: Bearer`). Others get 401
    /// (APIs) or a redirect to the login page (pages).
    Authenticated,
    /// Like `Authenticated`, and only exists with the simulated target.
    SimOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET, and HEAD with it.
    Get,
    Post,
    /// Every method: for a handler that answers each method itself (405 for the ones it
    /// does not take).
    Any,
}

impl Verb {
    fn matches(self, m: &Method) -> bool {
        match self {
            Verb::Get => m == Method::GET || m == Method::HEAD,
            Verb::Post => m == Method::POST,
            Verb::Any => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Any => "ANY",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathMatch {
    Exact(&'static str),
    /// Every path that starts with this.
    Prefix(&'static str),
}

pub type Reply = Pin<Box<dyn Future<Output = Response<Body>>>>;
pub type Handler = fn(Request<Incoming>, Ctx) -> Reply;

pub struct Route {
    pub verb: Verb,
    pub path: PathMatch,
    pub access: Access,
    pub handler: Handler,
}

use Access::{Authenticated, Public, SimOnly};
use PathMatch::{Exact, Prefix};
use Verb::{Any, Get, Post};

const fn route(verb: Verb, path: PathMatch, access: Access, handler: Handler) -> Route {
    Route {
        verb,
        path,
        access,
        handler,
    }
}

/// Every route the daemon serves, first match wins.
pub static ROUTES: &[Route] = &[
    route(Get, Exact("/api/ws"), Authenticated, |req, ctx| {
        Box::pin(async move { ws::upgrade(req, ctx) })
    }),
    route(Get, Exact("/api/stream/h264"), Authenticated, |_, ctx| {
        Box::pin(async move { streams::h264(&ctx.app, ctx.guard()) })
    }),
    route(Get, Exact("/api/stream/mjpeg"), Authenticated, |_, ctx| {
        Box::pin(async move { streams::mjpeg(&ctx.app, ctx.guard()) })
    }),
    route(Get, Exact("/metrics"), Authenticated, |_, ctx| {
        Box::pin(async move {
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                ctx.app.links.metrics.render(),
            )
        })
    }),
    route(Post, Exact("/api/sim/console"), SimOnly, |req, ctx| {
        Box::pin(async move { super::switch_console(req, &ctx.app).await })
    }),
    route(Post, Exact("/api/sim/hid"), SimOnly, sim_hid),
    route(Get, Exact("/api/sim/state"), SimOnly, sim_state),
    route(Post, Exact("/api/hid/paste"), Authenticated, |req, ctx| {
        Box::pin(async move { hid::paste(req, &ctx.app).await })
    }),
    // GET /api/atx and POST /api/atx/{power,power-long,reset}; the handler answers 405 and
    // 404 for the rest.
    route(Any, Exact("/api/atx"), Authenticated, atx),
    route(Any, Prefix("/api/atx/"), Authenticated, atx),
    route(Post, Exact("/api/auth/login"), Public, |req, ctx| {
        Box::pin(auth_api::login(req, ctx))
    }),
    route(Post, Exact("/api/auth/setup"), Public, |req, ctx| {
        Box::pin(auth_api::setup(req, ctx))
    }),
    route(Get, Exact("/api/auth/status"), Public, |_, ctx| {
        Box::pin(async move { auth_api::status(&ctx) })
    }),
    route(Get, Exact("/api/auth/me"), Authenticated, |_, ctx| {
        Box::pin(async move { auth_api::me(&ctx) })
    }),
    route(Post, Exact("/api/auth/logout"), Authenticated, |_, ctx| {
        Box::pin(async move { auth_api::logout(&ctx) })
    }),
    route(
        Post,
        Exact("/api/auth/password"),
        Authenticated,
        |req, ctx| Box::pin(auth_api::change_password(req, ctx)),
    ),
    // What the login and setup pages need, and nothing of the console.
    route(Get, Exact("/login.html"), Public, asset),
    route(Get, Exact("/login.js"), Public, asset),
    route(Get, Exact("/setup.html"), Public, asset),
    route(Get, Exact("/setup.js"), Public, asset),
    route(Get, Exact("/auth-form.js"), Public, asset),
    route(Get, Exact("/style.css"), Public, asset),
    route(Get, Exact("/favicon.svg"), Public, asset),
    // The console: index.html and its modules.
    route(Get, Prefix("/"), Authenticated, asset),
];

fn atx(req: Request<Incoming>, ctx: Ctx) -> Reply {
    Box::pin(async move { atx::handle(req, &ctx.app).await })
}

#[cfg(feature = "sim")]
fn sim_state(_: Request<Incoming>, ctx: Ctx) -> Reply {
    Box::pin(async move { super::sim::state(&ctx.app).await })
}

#[cfg(feature = "sim")]
fn sim_hid(req: Request<Incoming>, ctx: Ctx) -> Reply {
    Box::pin(async move { super::sim::connect_hid(req, &ctx.app).await })
}

// Without the simulated target these rows are never reached (`SimOnly` answers 404 first).
#[cfg(not(feature = "sim"))]
fn sim_state(_: Request<Incoming>, _: Ctx) -> Reply {
    Box::pin(async { super::not_found() })
}

#[cfg(not(feature = "sim"))]
fn sim_hid(_: Request<Incoming>, _: Ctx) -> Reply {
    Box::pin(async { super::not_found() })
}

fn asset(req: Request<Incoming>, _: Ctx) -> Reply {
    let found = assets::lookup(req.uri().path());
    Box::pin(async move {
        match found {
            Some((content_type, body)) if !req.uri().path().starts_with("/api/") => {
                respond(StatusCode::OK, content_type, Bytes::from_static(body))
            }
            _ => super::not_found(),
        }
    })
}

impl PathMatch {
    fn matches(self, path: &str) -> bool {
        match self {
            Exact(p) => path == p,
            Prefix(p) => path.starts_with(p),
        }
    }
}

pub fn find(method: &Method, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.verb.matches(method) && r.path.matches(path))
}

/// The value of `Authorization: Bearer X`.
fn bearer(req: &Request<Incoming>) -> Option<&str> {
    let v = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session id from the `Cookie` header(s).
fn session_cookie(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE).then_some(value)
        })
}

/// Whether a browser says the request comes from a page of this origin: `Origin`, else
/// `Sec-Fetch-Site`, else `Referer`. `None` when it says nothing (a tool such as curl).
fn same_origin_request(req: &Request<Incoming>) -> Option<bool> {
    let h = req.headers();
    let host = h.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(origin) = h.get(ORIGIN) {
        return Some(ws::same_origin(origin.to_str().unwrap_or(""), host));
    }
    if let Some(site) = h.get("sec-fetch-site") {
        return Some(matches!(site.as_bytes(), b"same-origin" | b"none"));
    }
    if let Some(referer) = h.get(REFERER) {
        let referer = referer.to_str().unwrap_or("");
        // scheme://host[:port] up to the path.
        let origin_end = referer
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| referer[start..].find('/').map(|j| start + j))
            .unwrap_or(referer.len());
        return Some(ws::same_origin(&referer[..origin_end], host));
    }
    None
}

/// Pages send people to the login page; everything else gets 401.
fn unauthenticated(req: &Request<Incoming>, app: &App) -> Response<Body> {
    let path = req.uri().path();
    // A person opening a page is sent to log in; everything else (APIs, other methods) is
    // told plainly.
    let page = matches!(*req.method(), Method::GET | Method::HEAD)
        && !path.starts_with("/api/")
        && (path == "/" || path.ends_with(".html"));
    if page {
        let to = if app.auth.setup_pending() {
            "/setup.html"
        } else {
            "/login.html"
        };
        let mut res = respond(StatusCode::SEE_OTHER, TEXT, format!("log in at {to}\n"));
        res.headers_mut()
            .insert(LOCATION, HeaderValue::from_static(to));
        return res;
    }
    let mut res = respond(
        StatusCode::UNAUTHORIZED,
        TEXT,
        "authentication required: log in, or send Authorization: Bearer <token>\n",
    );
    res.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("Bearer realm=\"nanokvmd\""),
    );
    res
}

/// Matches the route, decides access, and runs the handler only when access is granted.
pub async fn dispatch(req: Request<Incoming>, app: Rc<App>, peer: SocketAddr) -> Response<Body> {
    let Some(route) = find(req.method(), req.uri().path()) else {
        return super::not_found();
    };
    if route.access == SimOnly && !app.sim {
        return super::not_found();
    }
    let caller = app.auth.authenticate(bearer(&req), session_cookie(&req));
    if route.access != Public && caller.is_none() {
        return unauthenticated(&req, &app);
    }
    // Cross-site request forgery: a state change with the browser's cookie must come from a
    // page of this origin. Tools with a bearer token send no Origin and need no check.
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let by_cookie = caller.as_ref().is_some_and(|c| c.is_session());
        let allowed = match same_origin_request(&req) {
            Some(same) => same,
            None => !by_cookie,
        };
        if !allowed {
            log::info!(
                "refused a cross-origin {} {} from {peer}",
                req.method(),
                req.uri().path()
            );
            return respond(
                StatusCode::FORBIDDEN,
                TEXT,
                "cross-origin request refused\n",
            );
        }
    }
    (route.handler)(req, Ctx { app, caller, peer }).await
}

/// The table as text, one route per line: `METHOD PATH ACCESS` (a prefix ends in `*`).
pub fn describe() -> String {
    let mut out = String::new();
    for r in ROUTES {
        let path = match r.path {
            Exact(p) => p.to_string(),
            Prefix(p) => format!("{p}*"),
        };
        let access = match r.access {
            Public => "public",
            Authenticated => "authenticated",
            SimOnly => "sim-only",
        };
        out.push_str(&format!("{} {path} {access}\n", r.verb.name()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_login_and_setup_pages_are_public() {
        let public: Vec<String> = ROUTES
            .iter()
            .filter(|r| r.access == Public)
            .map(|r| format!("{:?}", r.path))
            .collect();
        for p in &public {
            assert!(
                [
                    "login",
                    "setup",
                    "status",
                    "auth-form",
                    "style.css",
                    "favicon"
                ]
                .iter()
                .any(|ok| p.contains(ok)),
                "{p} is public"
            );
        }
        assert_eq!(
            find(&Method::GET, "/").map(|r| r.access),
            Some(Authenticated)
        );
        assert_eq!(
            find(&Method::GET, "/app.js").map(|r| r.access),
            Some(Authenticated)
        );
        assert_eq!(
            find(&Method::HEAD, "/login.html").map(|r| r.access),
            Some(Public)
        );
        assert!(find(&Method::DELETE, "/api/ws").is_none());
    }

    #[test]
    fn verbs_match_their_methods() {
        assert!(Get.matches(&Method::HEAD));
        assert!(!Get.matches(&Method::POST));
        assert!(Verb::Any.matches(&Method::DELETE));
        assert_eq!(Verb::Any.name(), "ANY");
    }

    #[test]
    fn every_exact_route_is_reachable() {
        // A row after a prefix that covers it would never match.
        for (i, r) in ROUTES.iter().enumerate() {
            if let Exact(p) = r.path {
                let first = ROUTES
                    .iter()
                    .position(|o| o.verb == r.verb && o.path.matches(p));
                assert_eq!(first, Some(i), "{p} is shadowed");
            }
        }
    }

    #[test]
    fn public_assets_exist() {
        for r in ROUTES.iter().filter(|r| r.access == Public) {
            if let (Get, Exact(p)) = (r.verb, r.path) {
                if !p.starts_with("/api/") {
                    assert!(assets::lookup(p).is_some(), "{p} is not in webroot/");
                }
            }
        }
    }
}
