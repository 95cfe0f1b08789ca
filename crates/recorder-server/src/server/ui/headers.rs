//! Security headers on every answer of the read surface. The UI shows strings an attacker can
//! choose (commands, pod and container names, terminal output): the pages put them in the DOM
//! as text only, and these headers are the second line: no script but our own files, no inline
//! script, no `eval`, no framing, no content sniffing, no referrer leaving the recorder.

use axum::response::Response;
use http::{header, HeaderName, HeaderValue};

/// The policy of every page and answer. `'wasm-unsafe-eval'` lets the vendored asciinema-player
/// compile its terminal emulator (WebAssembly shipped inside its script); it does not allow
/// JavaScript `eval` or `new Function`. Styles are only our files: the player sets element
/// styles through the CSSOM, which `style-src` does not govern.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; \
     script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; \
     img-src 'self' data:; \
     font-src 'self' data:; \
     connect-src 'self'; \
     base-uri 'none'; \
     form-action 'self'; \
     frame-ancestors 'none'";

/// Adds the security headers (keeping any a handler set itself, such as a cache policy).
pub(crate) async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        // Recordings and events are private: no shared cache keeps them, and a browser keeps
        // them only while the page is open. Assets say otherwise (revalidated by ETag).
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    for (name, value) in set {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
    response
}
