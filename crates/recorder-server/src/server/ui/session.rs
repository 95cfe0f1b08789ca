//! Browser sessions of token viewers. A browser cannot send `Authorization: Bearer` on a page
//! load or an `EventSource`, and a token must never travel in a URL; so the login form posts the
//! token once (as JSON) and gets a random session ID in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` behind an HTTPS front). The server keeps the token, not the browser: each request
//! with the cookie is checked against the token file as it is now, so a token taken out of the
//! file ends its sessions too. Sessions end after [`SESSION_TTL`] or at logout.
//!
//! Tailnet viewers need no login: whois names them on every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use ring::rand::SecureRandom as _;
use serde::Deserialize;
use serde_json::json;

use crate::server::audit::{self, View};
use crate::server::auth::{Peer, Viewer};
use crate::server::routes::error_response;
use crate::server::App;

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "kube_recorder_session";
/// How long a session lasts from login.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at once; a login beyond them (after dropping expired ones) is refused.
pub(crate) const MAX_SESSIONS: usize = 10_000;
/// Largest login body.
const MAX_LOGIN_BYTES: usize = 4096;
/// How long a login body may take to arrive (it is a few dozen bytes).
const LOGIN_BODY_WAIT: Duration = Duration::from_secs(10);
/// Failed logins from one address within [`LOGIN_WINDOW`] after which its logins are refused
/// (429) until the window has passed: guessing tokens through the form stays slow.
pub(crate) const MAX_FAILED_LOGINS: u32 = 10;
/// The window of [`MAX_FAILED_LOGINS`].
pub(crate) const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered at once.
const MAX_FAILING_ADDRESSES: usize = 10_000;

/// Failed logins by address: when the address's window began, and its failures since.
#[derive(Debug, Default)]
pub(crate) struct LoginFailures {
    map: Mutex<HashMap<std::net::IpAddr, (Instant, u32)>>,
}

impl LoginFailures {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<std::net::IpAddr, (Instant, u32)>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether `ip` has used up its failures for now.
    fn blocked(&self, ip: std::net::IpAddr) -> bool {
        self.lock().get(&ip).is_some_and(|(since, failures)| {
            since.elapsed() < LOGIN_WINDOW && *failures >= MAX_FAILED_LOGINS
        })
    }

    /// Counts a failed login from `ip`.
    fn failed(&self, ip: std::net::IpAddr) {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_FAILING_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, (since, _)| now.duration_since(*since) < LOGIN_WINDOW);
            if map.len() >= MAX_FAILING_ADDRESSES {
                return;
            }
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= LOGIN_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// One browser session.
#[derive(Debug)]
struct Session {
    token: String,
    expires: Instant,
}

/// The live sessions, by the SHA-256 of their cookie value (so the map holds nothing a browser
/// could send back as is).
#[derive(Debug)]
pub(crate) struct Sessions {
    ttl: Duration,
    max: usize,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn key_of(cookie: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, cookie.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

impl Sessions {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new session for `token`: the cookie value, or `None` when too many sessions are open.
    fn create(&self, token: &str) -> Result<String, &'static str> {
        let mut id = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| "no random bytes for a session ID")?;
        let cookie = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id);
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= self.max {
            map.retain(|_, session| session.expires > now);
        }
        if map.len() >= self.max {
            return Err("too many open sessions; try again later");
        }
        map.insert(
            key_of(&cookie),
            Session {
                token: token.to_owned(),
                expires: now + self.ttl,
            },
        );
        Ok(cookie)
    }

    /// The token of the session the request's cookie names, if it is open and not expired.
    pub(crate) fn token_for(&self, headers: &HeaderMap) -> Option<String> {
        let cookie = cookie_value(headers, COOKIE_NAME)?;
        let key = key_of(cookie);
        let mut map = self.lock();
        match map.get(&key) {
            Some(session) if session.expires > Instant::now() => Some(session.token.clone()),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session the request's cookie names.
    fn remove(&self, headers: &HeaderMap) -> bool {
        cookie_value(headers, COOKIE_NAME)
            .is_some_and(|cookie| self.lock().remove(&key_of(cookie)).is_some())
    }
}

/// Whether the browser reached us over HTTPS (through a TLS front that says so): the cookie is
/// then `Secure`. kube-recorder itself serves plain HTTP (on the tailnet, WireGuard encrypts).
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .ok()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// `POST /ui/login`: `{"token": "..."}`. JSON only: a cross-site form cannot send it, so no
/// other site can log a browser in (or out) behind its user's back.
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !is_json(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "login takes a JSON body {\"token\": \"...\"} (Content-Type: application/json)"
                .to_owned(),
        );
    }
    // A body that never ends would keep the request, and its connection's slot, for ever.
    let body = match tokio::time::timeout(LOGIN_BODY_WAIT, to_bytes(body, MAX_LOGIN_BYTES)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the login body is limited to {MAX_LOGIN_BYTES} bytes"),
            )
        }
        Err(_) => {
            return error_response(
                StatusCode::REQUEST_TIMEOUT,
                format!("the login body did not arrive within {LOGIN_BODY_WAIT:?}"),
            )
        }
    };
    let Ok(Login { token }) = serde_json::from_slice::<Login>(&body) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "login takes a JSON body {\"token\": \"...\"}".to_owned(),
        );
    };
    if app.ui.login_failures.blocked(peer.0.ip()) {
        tracing::warn!(peer = %peer.0, "UI login refused: too many failed logins");
        return error_response(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "more than {MAX_FAILED_LOGINS} failed logins from this address; try again in {} s",
                LOGIN_WINDOW.as_secs()
            ),
        );
    }
    let viewer = match app.access.token_viewer(peer.0, token.trim()) {
        Ok(viewer) => viewer,
        Err((status, message)) => {
            app.ui.login_failures.failed(peer.0.ip());
            tracing::warn!(peer = %peer.0, reason = %message, "UI login refused");
            return error_response(status, message);
        }
    };
    let cookie = match app.ui.sessions.create(token.trim()) {
        Ok(cookie) => cookie,
        Err(message) => return error_response(StatusCode::SERVICE_UNAVAILABLE, message.to_owned()),
    };
    let view = View {
        action: "login",
        recording: None,
        query: None,
        status: StatusCode::NO_CONTENT,
        results: None,
    };
    if let Err(message) = audit::record(&app, &viewer, view).await {
        app.ui.sessions.remove(&cookie_header(&cookie));
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, message);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(value) = set_cookie(&cookie, SESSION_TTL.as_secs(), over_https(&headers)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A `Cookie` header naming `cookie`, to undo a session made a moment ago.
fn cookie_header(cookie: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("{COOKIE_NAME}={cookie}")) {
        headers.insert(header::COOKIE, value);
    }
    headers
}

/// `POST /ui/logout`: ends the session and clears the cookie. JSON only, like the login.
pub(crate) async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !is_json(&headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "logout takes Content-Type: application/json".to_owned(),
        );
    }
    let ended = app.ui.sessions.remove(&headers);
    tracing::info!(ended, "UI logout");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(value) = set_cookie("", 0, over_https(&headers)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /api/whoami`: who the recorder takes the caller for.
pub(crate) async fn whoami(Extension(viewer): Extension<Viewer>) -> Response {
    Json(json!({ "name": viewer.name, "via": viewer.via.as_str() })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
        );
        headers
    }

    #[test]
    fn a_session_names_its_token_until_it_expires_or_ends() {
        let sessions = Sessions::new(Duration::from_secs(60), 10);
        let cookie = sessions.create("token-0123456789abcdef");
        assert!(cookie.is_ok(), "{cookie:?}");
        let cookie = cookie.unwrap_or_default();
        let headers = with_cookie(&format!("other=1; {COOKIE_NAME}={cookie}"));
        assert_eq!(
            sessions.token_for(&headers).as_deref(),
            Some("token-0123456789abcdef")
        );
        assert_eq!(
            sessions.token_for(&with_cookie(&format!("{COOKIE_NAME}=x{cookie}"))),
            None
        );
        assert!(sessions.remove(&headers));
        assert_eq!(sessions.token_for(&headers), None);

        let expired = Sessions::new(Duration::ZERO, 10);
        let cookie = expired.create("t").unwrap_or_default();
        assert_eq!(
            expired.token_for(&with_cookie(&format!("{COOKIE_NAME}={cookie}"))),
            None
        );
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::new(Duration::from_secs(60), 2);
        assert!(sessions.create("a").is_ok());
        assert!(sessions.create("b").is_ok());
        assert!(sessions.create("c").is_err());
    }
}
