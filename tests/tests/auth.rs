//! Access control end to end: every route refuses the unauthenticated, sessions and tokens
//! work and end (logout, expiry, password change, token revocation) and take their
//! WebSockets with them, cross-origin requests are refused, logins are throttled, the first
//! admin is created with the printed setup code, and tools (curl, ffmpeg) use tokens.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nanokvm_e2e::proto::ClientMsg;
use nanokvm_e2e::ws::{Event, Msg, WsClient};
use nanokvm_e2e::{
    block_on, e2e_tls, http, run_cli, run_daemon, Auth, Daemon, TempDir, E2E_PASSWORD, E2E_USER,
};

const SECS: fn(u64) -> Duration = Duration::from_secs;
const SESSION_REVOKED: u16 = 4401;

fn req(
    d: &Daemon,
    auth: &Auth,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Response {
    http::request_as(
        d.addr(),
        auth,
        method,
        path,
        headers,
        body.as_bytes(),
        http::TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn get(d: &Daemon, auth: &Auth, path: &str) -> http::Response {
    req(d, auth, "GET", path, &[], "")
}

/// A POST the way the console's own page sends it (same Origin).
fn post_from_page(d: &Daemon, cookie: &str, path: &str, json: &str) -> http::Response {
    let origin = d.origin();
    req(
        d,
        &Auth::Cookie(cookie.into()),
        "POST",
        path,
        &[("Content-Type", "application/json"), ("Origin", &origin)],
        json,
    )
}

fn login(d: &Daemon) -> String {
    http::login(d.addr(), E2E_USER, E2E_PASSWORD)
        .unwrap_or_else(|r| panic!("login refused: {}", r.summary()))
}

/// The routes as the daemon lists them: (method, path, access).
fn routes() -> Vec<(String, String, String)> {
    let out = run_daemon(&["routes"], SECS(10));
    assert_eq!(out.code(), Some(0), "{out:?}");
    out.stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 3, "route line {l:?}");
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// Paths to try for a route: the path itself, and for a prefix a page and a module under it.
fn sample_paths(path: &str) -> Vec<String> {
    match path.strip_suffix('*') {
        Some(prefix) => vec![
            prefix.to_string(),
            format!("{prefix}index.html"),
            format!("{prefix}app.js"),
            format!("{prefix}no-such-file.js"),
        ],
        None => vec![path.to_string()],
    }
}

fn expect_refused(r: &http::Response, method: &str, path: &str, what: &str) {
    // Pages send a person to the login page; APIs (and every other method) answer 401.
    let page =
        method == "GET" && !path.starts_with("/api/") && (path == "/" || path.ends_with(".html"));
    if page {
        assert_eq!(r.status, 303, "{what} {method} {path}: {}", r.summary());
        let to = r.header("location").unwrap_or_default();
        assert!(
            to.ends_with("/login.html"),
            "{method} {path} redirects to {to:?}"
        );
    } else {
        assert_eq!(r.status, 401, "{what} {method} {path}: {}", r.summary());
    }
}

#[test]
fn every_route_refuses_an_unauthenticated_request() {
    let routes = routes();
    for must in [
        "/api/ws",
        "/api/stream/h264",
        "/api/stream/mjpeg",
        "/metrics",
        "/*",
    ] {
        assert!(
            routes.iter().any(|(_, p, a)| p == must && a != "public"),
            "{must} is not a protected route: {routes:?}"
        );
    }
    let d = Daemon::start(&[]);
    let forged = format!("nanokvm_session={}", "ab".repeat(32));
    let mut checked = 0;
    // A route for any method is tried with each of the usual ones.
    let methods = |m: &str| -> Vec<String> {
        match m {
            "ANY" => ["GET", "POST", "PUT", "DELETE"].map(String::from).to_vec(),
            m => vec![m.to_string()],
        }
    };
    let routes: Vec<(String, String, String)> = routes
        .iter()
        .flat_map(|(m, p, a)| methods(m).into_iter().map(|m| (m, p.clone(), a.clone())))
        .collect();
    for (method, path, access) in &routes {
        for path in sample_paths(path) {
            let ask = |auth: &Auth, extra: &[(&str, &str)]| {
                let mut headers = vec![("Content-Type", "application/json")];
                headers.extend_from_slice(extra);
                req(
                    &d,
                    auth,
                    method,
                    &path,
                    &headers,
                    if method == "POST" { "{}" } else { "" },
                )
            };
            if access == "public" {
                let r = ask(&Auth::None, &[]);
                assert!(
                    r.status != 401 && r.status != 303,
                    "public {method} {path}: {}",
                    r.summary()
                );
                continue;
            }
            expect_refused(&ask(&Auth::None, &[]), method, &path, "without credentials");
            expect_refused(
                &ask(&Auth::Cookie(forged.clone()), &[]),
                method,
                &path,
                "forged session",
            );
            expect_refused(
                &ask(&Auth::Bearer("cd".repeat(32)), &[]),
                method,
                &path,
                "forged token",
            );
            expect_refused(
                &ask(&Auth::Bearer("not-a-token".into()), &[]),
                method,
                &path,
                "junk token",
            );
            // A WebSocket upgrade is refused before any handshake too.
            if path == "/api/ws" {
                let r = ask(
                    &Auth::None,
                    &[
                        ("Upgrade", "websocket"),
                        ("Connection", "Upgrade"),
                        ("Sec-WebSocket-Version", "13"),
                        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                    ],
                );
                assert_eq!(r.status, 401, "{}", r.summary());
            }
            checked += 1;
        }
    }
    eprintln!(
        "{checked} protected route samples refused, {} routes listed",
        routes.len()
    );
    // And with the token they are served (the console page, for one).
    assert_eq!(get(&d, &Auth::Default, "/").status, 200);
    assert_eq!(get(&d, &Auth::Default, "/metrics").status, 200);
    d.credentials();
}

#[test]
fn login_sets_a_strict_cookie_and_logout_ends_the_session() {
    let d = Daemon::start(&[]);
    let r = req(
        &d,
        &Auth::None,
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        &format!("{{\"username\":\"{E2E_USER}\",\"password\":\"{E2E_PASSWORD}\"}}"),
    );
    assert_eq!(r.status, 200, "{}", r.summary());
    let set = r.header("set-cookie").unwrap_or_default().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "Set-Cookie {set:?} lacks {attr}");
    }
    assert_eq!(
        set.contains("Secure"),
        e2e_tls(),
        "Secure exactly under TLS: {set:?}"
    );
    let id = set
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("nanokvm_session=");
    assert_eq!(id.len(), 64, "a 256-bit id in hex: {id:?}");

    let cookie = login(&d);
    let me = get(&d, &Auth::Cookie(cookie.clone()), "/api/auth/me");
    assert_eq!(me.status, 200, "{}", me.summary());
    assert!(me.text().contains(E2E_USER), "{}", me.text());
    assert_eq!(get(&d, &Auth::Cookie(cookie.clone()), "/").status, 200);

    let out = post_from_page(&d, &cookie, "/api/auth/logout", "{}");
    assert_eq!(out.status, 204, "{}", out.summary());
    expect_refused(
        &get(&d, &Auth::Cookie(cookie.clone()), "/api/auth/me"),
        "GET",
        "/api/auth/me",
        "after logout",
    );
    expect_refused(
        &get(&d, &Auth::Cookie(cookie), "/"),
        "GET",
        "/",
        "after logout",
    );

    let wrong = http::login(d.addr(), E2E_USER, "not the password").unwrap_err();
    assert_eq!(wrong.status, 401, "{}", wrong.summary());
    let nobody = http::login(d.addr(), "nobody", E2E_PASSWORD).unwrap_err();
    assert_eq!(nobody.status, 401, "{}", nobody.summary());
}

#[test]
fn every_page_carries_the_security_headers() {
    let d = Daemon::start(&[]);
    for (auth, path) in [
        (Auth::None, "/login.html"),
        (Auth::Default, "/"),
        (Auth::None, "/api/ws"),
    ] {
        let r = get(&d, &auth, path);
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("frame-ancestors 'none'"),
            "{path}: CSP {csp:?}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: CSP {csp:?}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
    }
    // The login page loads no inline script.
    let page = get(&d, &Auth::None, "/login.html").text();
    assert!(
        page.contains("<script type=\"module\" src=\"login.js\"></script>"),
        "{page}"
    );
}

#[test]
fn cross_origin_websockets_and_posts_are_refused() {
    let d = Daemon::start(&[]);
    let cookie = login(&d);
    block_on(async {
        let e = WsClient::connect_as(
            d.addr(),
            &Auth::Cookie(cookie.clone()),
            Some("http://evil.example"),
        )
        .await
        .err()
        .expect("a cross-origin WebSocket was accepted");
        assert!(e.contains("403"), "{e}");
        let own = d.origin();
        WsClient::connect_as(d.addr(), &Auth::Cookie(cookie.clone()), Some(&own))
            .await
            .expect("same-origin WebSocket");
        let e = WsClient::connect_as(d.addr(), &Auth::None, Some(&own))
            .await
            .err()
            .expect("anonymous WebSocket accepted");
        assert!(e.contains("401"), "{e}");
    });
    let console = r#"{"console":1}"#;
    let json = ("Content-Type", "application/json");
    let by_cookie = Auth::Cookie(cookie.clone());
    for (headers, want) in [
        (vec![json, ("Origin", "http://evil.example")], 403),
        (vec![json, ("Sec-Fetch-Site", "cross-site")], 403),
        (vec![json, ("Referer", "http://evil.example/page")], 403),
        // A cookie alone, with nothing saying where the request comes from, is not enough.
        (vec![json], 403),
        (vec![json, ("Sec-Fetch-Site", "same-origin")], 204),
    ] {
        let r = req(
            &d,
            &by_cookie,
            "POST",
            "/api/sim/console",
            &headers,
            console,
        );
        assert_eq!(r.status, want, "{headers:?}: {}", r.summary());
    }
    let own = d.origin();
    assert_eq!(
        post_from_page(&d, &cookie, "/api/sim/console", console).status,
        204,
        "{own}"
    );
    // A tool with a token sends no Origin and needs none.
    let r = req(
        &d,
        &Auth::Default,
        "POST",
        "/api/sim/console",
        &[json],
        console,
    );
    assert_eq!(r.status, 204, "{}", r.summary());
    // Logging in from another site's page is refused too.
    let r = req(
        &d,
        &Auth::None,
        "POST",
        "/api/auth/login",
        &[json, ("Origin", "http://evil.example")],
        &format!("{{\"username\":\"{E2E_USER}\",\"password\":\"{E2E_PASSWORD}\"}}"),
    );
    assert_eq!(r.status, 403, "{}", r.summary());
}

async fn open_console(d: &Daemon, auth: Auth) -> WsClient {
    let own = d.origin();
    let mut c = WsClient::connect_as(d.addr(), &auth, Some(&own))
        .await
        .unwrap_or_else(|e| panic!("WebSocket: {e}"));
    c.send(&ClientMsg::Hello {
        version: nanokvm_e2e::proto::PROTOCOL_VERSION,
        visible: true,
    })
    .await;
    c.recv_until(SECS(5), "the server Hello", |m| {
        matches!(m, Msg::Hello { .. })
    })
    .await;
    c
}

/// Waits for the close frame; returns its code and how long it took.
async fn closed_with(c: &mut WsClient, within: Duration) -> (u16, Duration) {
    let t0 = Instant::now();
    let (code, reason, _) = c.expect_close(within).await;
    eprintln!("closed with {code} {reason:?} after {:?}", t0.elapsed());
    (code, t0.elapsed())
}

#[test]
fn a_password_change_closes_the_users_other_websockets_within_a_second() {
    let d = Daemon::start(&[]);
    let (mine, other) = (login(&d), login(&d));
    block_on(async {
        let mut my_ws = open_console(&d, Auth::Cookie(mine.clone())).await;
        let mut other_ws = open_console(&d, Auth::Cookie(other.clone())).await;
        let mut token_ws = open_console(&d, Auth::Default).await;
        my_ws.recv_video(SECS(3)).await;

        let t0 = Instant::now();
        let r = post_from_page(
            &d,
            &mine,
            "/api/auth/password",
            r#"{"current":"e2e password 1","new":"a new password 2"}"#,
        );
        assert_eq!(r.status, 204, "{}", r.summary());
        let (code, _) = closed_with(&mut other_ws, SECS(3)).await;
        let took = t0.elapsed();
        assert_eq!(code, SESSION_REVOKED);
        assert!(
            took <= Duration::from_millis(1500),
            "closed {took:?} after the change (answer included)"
        );
        // The session that changed it, and the token, go on.
        my_ws.recv_video(SECS(3)).await;
        token_ws.recv_video(SECS(3)).await;
    });
    assert_eq!(get(&d, &Auth::Cookie(other), "/api/auth/me").status, 401);
    assert_eq!(
        get(&d, &Auth::Cookie(mine.clone()), "/api/auth/me").status,
        200
    );
    assert_eq!(
        http::login(d.addr(), E2E_USER, E2E_PASSWORD)
            .unwrap_err()
            .status,
        401
    );
    http::login(d.addr(), E2E_USER, "a new password 2").expect("login with the new password");
    // A wrong current password changes nothing and does not end the session.
    let r = post_from_page(
        &d,
        &mine,
        "/api/auth/password",
        r#"{"current":"wrong one!","new":"whatever 123"}"#,
    );
    assert_eq!(r.status, 403, "{}", r.summary());
}

#[test]
fn logout_and_token_revocation_close_their_websockets() {
    let d = Daemon::start(&[]);
    let cookie = login(&d);
    let dir = d.data_dir().display().to_string();
    let token = run_cli(&["token", "new", "revokable", "--data-dir", &dir], "")
        .trim()
        .to_string();
    // The daemon picks the new token up from the file within a second.
    let t0 = Instant::now();
    while get(&d, &Auth::Bearer(token.clone()), "/api/auth/me").status != 200 {
        assert!(t0.elapsed() < SECS(3), "the new token is not accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stream = http::BodyStream::open_as(
        d.addr(),
        &Auth::Bearer(token.clone()),
        "GET",
        "/api/stream/h264",
        &[],
        b"",
        Instant::now() + http::TIMEOUT,
    )
    .expect("GET /api/stream/h264 with the token");
    assert_eq!(stream.status, 200);
    block_on(async {
        let mut by_cookie = open_console(&d, Auth::Cookie(cookie.clone())).await;
        let mut by_token = open_console(&d, Auth::Bearer(token.clone())).await;
        assert_eq!(
            post_from_page(&d, &cookie, "/api/auth/logout", "{}").status,
            204
        );
        let (code, took) = closed_with(&mut by_cookie, SECS(3)).await;
        assert_eq!(code, SESSION_REVOKED);
        assert!(
            took <= SECS(1),
            "logout closed the WebSocket after {took:?}"
        );

        run_cli(&["token", "revoke", "revokable", "--data-dir", &dir], "");
        let (code, took) = closed_with(&mut by_token, SECS(3)).await;
        assert_eq!(code, SESSION_REVOKED);
        // The CLI edits the file; the daemon checks it every 0.5 s.
        assert!(
            took <= Duration::from_millis(1500),
            "revocation closed the WebSocket after {took:?}"
        );
    });
    // The raw H.264 stream opened with the token ends too.
    let t0 = Instant::now();
    loop {
        let (_, ended) = stream
            .read_for(Duration::from_millis(200))
            .expect("read the stream");
        if ended {
            break;
        }
        assert!(
            t0.elapsed() < SECS(3),
            "the stream goes on after its token was revoked"
        );
    }
    assert_eq!(get(&d, &Auth::Bearer(token), "/metrics").status, 401);
}

#[test]
fn idle_and_absolute_session_limits_end_sessions_and_their_websockets() {
    let dir = TempDir::new("limits");
    let config = dir.write(
        "nanokvmd.toml",
        "[auth]\nsession_idle_secs = 2\nsession_max_secs = 4\n",
    );
    let d = Daemon::start(&["--config", &config.display().to_string()]);
    // Idle: nothing is sent for longer than the idle timeout.
    let idle = login(&d);
    block_on(async {
        let mut c = open_console(&d, Auth::Cookie(idle.clone())).await;
        // Reading video is not activity; only what the client sends is.
        let (code, took) = closed_with(&mut c, SECS(5)).await;
        assert_eq!(code, SESSION_REVOKED);
        assert!(took <= SECS(3), "idle session closed after {took:?}");
    });
    assert_eq!(get(&d, &Auth::Cookie(idle), "/api/auth/me").status, 401);

    // Absolute: an active console is still closed when the session's lifetime is over.
    let busy = login(&d);
    let t0 = Instant::now();
    block_on(async {
        let mut c = open_console(&d, Auth::Cookie(busy.clone())).await;
        loop {
            c.send(&ClientMsg::Ping { client_time_us: 1 }).await;
            match c.next_event(Duration::from_millis(300)).await {
                Some(Event::Closed(Some((code, _)))) => {
                    assert_eq!(code, SESSION_REVOKED);
                    break;
                }
                Some(Event::Ended(e)) => panic!("ended without a close: {e}"),
                _ => {}
            }
            assert!(
                t0.elapsed() < SECS(8),
                "an active session outlived its absolute limit"
            );
        }
    });
    let lived = t0.elapsed();
    eprintln!("the active session lasted {lived:?}");
    assert!(
        lived >= SECS(3),
        "the active session ended early, after {lived:?}: activity did not keep it alive"
    );
}

#[test]
fn throttling_engages_after_repeated_failures_and_logs_no_password() {
    let d = Daemon::start(&[]);
    let wrong = "wrong-pass-XYZZY";
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = http::login(d.addr(), E2E_USER, wrong).unwrap_err();
        statuses.push(r.status);
        if r.status == 429 {
            let wait: u64 = r
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .expect("Retry-After");
            assert!((1..=30).contains(&wait), "Retry-After {wait}");
        }
    }
    eprintln!("statuses of 6 wrong logins: {statuses:?}");
    assert_eq!(
        &statuses[..3],
        &[401, 401, 401],
        "the first failures are answered"
    );
    assert!(statuses[3..].contains(&429), "no throttling: {statuses:?}");
    // While throttled even the right password waits.
    let r = http::login(d.addr(), E2E_USER, E2E_PASSWORD).unwrap_err();
    assert_eq!(r.status, 429, "{}", r.summary());
    let log = d.output();
    assert!(
        log.contains("login refused"),
        "failures are not logged:\n{log}"
    );
    assert!(!log.contains(wrong), "the log holds the password:\n{log}");
}

#[test]
fn setup_with_the_printed_code_creates_the_first_admin() {
    let d = Daemon::start_unprovisioned(&[]);
    // The link follows the listening line.
    let t0 = Instant::now();
    let out = loop {
        let out = d.output();
        if out.contains("setup.html#code=") || t0.elapsed() > SECS(5) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let line = out
        .lines()
        .find(|l| l.contains("setup.html#code="))
        .unwrap_or_else(|| panic!("no setup link printed:\n{out}"));
    let code = line
        .split("#code=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let file = std::fs::read_to_string(d.data_dir().join("setup-code")).expect("setup-code file");
    assert_eq!(file.trim(), code);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.data_dir().join("setup-code"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // Pages lead to the setup page; the API says setup is needed.
    let r = get(&d, &Auth::None, "/");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/setup.html"));
    assert!(get(&d, &Auth::None, "/api/auth/status")
        .text()
        .contains("\"setup_required\":true"));

    let json = ("Content-Type", "application/json");
    let setup = |code: &str, user: &str, pw: &str| {
        req(
            &d,
            &Auth::None,
            "POST",
            "/api/auth/setup",
            &[json],
            &format!("{{\"code\":\"{code}\",\"username\":\"{user}\",\"password\":\"{pw}\"}}"),
        )
    };
    assert_eq!(
        setup(&"0".repeat(32), "admin", "first password").status,
        401,
        "a wrong code"
    );
    assert_eq!(
        setup(&code, "admin", "short").status,
        400,
        "a short password"
    );
    let r = setup(&code, "admin", "first password");
    assert_eq!(r.status, 200, "{}", r.summary());
    let cookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(get(&d, &Auth::Cookie(cookie), "/api/auth/me").status, 200);
    assert_eq!(
        setup(&code, "second", "second password").status,
        409,
        "setup twice"
    );
    assert!(
        !d.data_dir().join("setup-code").exists(),
        "the used code is still on disk"
    );
    let accounts = d.data_dir().join("accounts.json");
    assert_eq!(
        std::fs::metadata(&accounts).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&accounts).unwrap();
    assert!(text.contains("$argon2id$v=19$m=4096,t=9,p=1$"), "{text}");
    assert!(!text.contains("first password"));
    http::login(d.addr(), "admin", "first password").expect("login as the new admin");
}

#[test]
fn the_accounts_file_is_never_partial_even_when_a_writer_is_killed() {
    let data = TempDir::new("crash");
    let dir = data.path().display().to_string();
    run_cli(
        &[
            "user",
            "add",
            "admin",
            "--password-stdin",
            "--data-dir",
            &dir,
        ],
        "first password\n",
    );
    let accounts = data.path().join("accounts.json");
    let mut killed_before_write = 0;
    for i in 0..40u64 {
        let mut child = Command::new(nanokvm_e2e::daemon_bin())
            .args([
                "user",
                "passwd",
                "admin",
                "--password-stdin",
                "--data-dir",
                &dir,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        use std::io::Write;
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("password number {i}\n").as_bytes());
        // Kill it at a different point of its work each time (hashing, writing, renaming).
        std::thread::sleep(Duration::from_micros(i * 2500));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !status.success() {
            killed_before_write += 1;
        }
        let bytes = std::fs::read(&accounts).expect("the accounts file exists");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "round {i}: partial accounts file ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(v["users"][0]["name"], "admin", "round {i}");
    }
    eprintln!("{killed_before_write} of 40 writers were killed before they finished");
    assert!(
        killed_before_write > 0,
        "no writer was interrupted: the test tested nothing"
    );
}

#[test]
fn tokens_work_with_curl() {
    let d = Daemon::start(&[]);
    let token = d.credentials().token.unwrap();
    let url = format!("{}/metrics", d.origin());
    let mut base = vec![
        "-sS".to_string(),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_code}".into(),
    ];
    if e2e_tls() {
        base.extend([
            "--cacert".into(),
            d.data_dir().join("tls-cert.pem").display().to_string(),
        ]);
    }
    let curl = |extra: &[String]| {
        let out = Command::new("curl")
            .args(&base)
            .args(extra)
            .arg(&url)
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        curl(&["-H".into(), format!("Authorization: Bearer {token}")]),
        "200"
    );
    assert_eq!(curl(&[]), "401");
    assert_eq!(
        curl(&[
            "-H".into(),
            format!("Authorization: Bearer {}", "0".repeat(64))
        ]),
        "401"
    );
}

#[test]
fn tokens_work_with_ffmpeg_on_the_raw_h264_stream() {
    let d = Daemon::start(&[]);
    let token = d.credentials().token.unwrap();
    let url = format!("{}/api/stream/h264", d.origin());
    let ffmpeg = |headers: Option<String>| {
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "10000000",
        ]);
        if let Some(h) = headers {
            cmd.args(["-headers", &h]);
        }
        // No probing: the stream starts with SPS, PPS and an IDR, and a still screen sends
        // little, so the default probe (5 MB) would wait for minutes.
        cmd.args([
            "-probesize",
            "32",
            "-analyzeduration",
            "0",
            "-f",
            "h264",
            "-i",
            &url,
        ])
        .args(["-frames:v", "5", "-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run ffmpeg (install it: apt-get install ffmpeg): {e}"))
    };
    let out = ffmpeg(Some(format!("Authorization: Bearer {token}\r\n")));
    assert!(
        out.status.success(),
        "ffmpeg with the token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ffmpeg(None);
    assert!(
        !out.status.success(),
        "ffmpeg without a token got the stream"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "ffmpeg without a token: {err}");
}

#[test]
fn plain_http_beyond_loopback_needs_insecure_http() {
    let data = TempDir::new("insecure");
    let dir = data.path().display().to_string();
    let out = run_daemon(
        &[
            "--listen",
            "0.0.0.0:0",
            "--backend",
            "sim",
            "--data-dir",
            &dir,
            "--tls",
            "off",
        ],
        SECS(10),
    );
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("--insecure-http"), "{}", out.stderr);
    let mut d = Daemon::start_raw(&[
        "--listen",
        "0.0.0.0:0",
        "--backend",
        "sim",
        "--data-dir",
        &dir,
        "--insecure-http",
    ]);
    d.assert_running();
}

#[test]
fn a_login_costs_the_daemon_only_a_few_megabytes_at_its_peak() {
    // The replay source: no encoder buffers, so the peak is the daemon's own.
    let file = nanokvm_e2e::h264::replay_file();
    let d = Daemon::start(&["--source", &format!("replay:{}", file.display())]);
    std::thread::sleep(Duration::from_millis(500));
    // Reset the peak to the current resident size (Linux: clear_refs 5).
    std::fs::write(format!("/proc/{}/clear_refs", d.pid()), "5").expect("reset VmHWM");
    let before = d.proc_status_kib("VmHWM").expect("VmHWM");
    let rss = d.rss_kib();
    for _ in 0..3 {
        login(&d);
    }
    let after = d.proc_status_kib("VmHWM").expect("VmHWM");
    let settled = d.rss_kib();
    eprintln!(
        "idle VmRSS {rss} KiB, peak before logins {before} KiB, after 3 logins {after} KiB (+{} KiB), \
         VmRSS after them {settled} KiB",
        after.saturating_sub(before)
    );
    // The hash's memory goes back when it is done.
    assert!(
        settled <= rss + 2048,
        "VmRSS stayed {} KiB above idle after the logins",
        settled - rss
    );
    // argon2id with m = 4 MiB, one hash at a time, plus the auth thread's stack.
    assert!(
        after.saturating_sub(before) <= 6 * 1024,
        "logins raised the peak by {} KiB",
        after - before
    );
}

#[test]
fn https_with_the_generated_certificate_and_a_redirect_from_http() {
    // A free port for the redirect listener (bound and released; the daemon binds it next).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let redirect = format!("127.0.0.1:{port}");
    let d = Daemon::start(&["--tls", "on", "--http-redirect", &redirect]);
    assert!(d.origin().starts_with("https://"), "{}", d.origin());
    // The harness trusts exactly the certificate the daemon generated and kept.
    let r = get(&d, &Auth::Default, "/metrics");
    assert_eq!(r.status, 200, "{}", r.summary());
    let pem = std::fs::read_to_string(d.data_dir().join("tls-cert.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let cookie = login(&d);
    assert!(!cookie.is_empty());

    // Plain HTTP on the redirect port only redirects, to the same path over HTTPS.
    let mut s = std::net::TcpStream::connect(&redirect).expect("connect to the redirect port");
    use std::io::{Read, Write};
    write!(
        s,
        "GET /api/stream/h264?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.set_read_timeout(Some(SECS(5))).unwrap();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    let want = format!(
        "location: https://127.0.0.1:{}/api/stream/h264?x=1",
        d.addr().port()
    );
    assert!(answer.to_ascii_lowercase().contains(&want), "{answer}");
}
