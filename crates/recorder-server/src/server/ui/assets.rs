//! The UI's files, embedded in the binary: our hand-written pages, scripts and styles
//! (`assets/ui/`) and the vendored asciinema-player (`assets/vendor/`, see its README). Nothing
//! is built or fetched at run time.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::server::routes::error_response;

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "list.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../../assets/ui/list.html"),
    },
    Asset {
        name: "recording.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../../assets/ui/recording.html"),
    },
    Asset {
        name: "ui.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../assets/ui/ui.css"),
    },
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/ui/common.js"),
    },
    Asset {
        name: "list.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/ui/list.js"),
    },
    Asset {
        name: "recording.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/ui/recording.js"),
    },
    Asset {
        name: "asciinema-player.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/asciinema-player.min.js"),
    },
    Asset {
        name: "asciinema-player.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/asciinema-player.css"),
    },
    Asset {
        name: "asciinema-player.LICENSE",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../../assets/vendor/asciinema-player.LICENSE"),
    },
];

/// Each asset's entity tag: a hash of its bytes, so a new binary with a changed file is fetched
/// again while an unchanged one is answered 304.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let hash = blake3::hash(asset.body).to_hex();
            format!("\"{}\"", &hash.as_str()[..32])
        })
        .collect()
});

/// Serves the asset `name`, or 304 when the browser's copy is current.
fn serve(name: &str, request_headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|asset| asset.name == name) else {
        return error_response(StatusCode::NOT_FOUND, format!("no UI asset {name:?}"));
    };
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    // Kept, but checked with the server before each use: a new kube-recorder never runs with
    // an old script.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /ui/assets/{file}`
pub(crate) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    if file.ends_with(".html") {
        // Pages have URLs of their own.
        return error_response(StatusCode::NOT_FOUND, format!("no UI asset {file:?}"));
    }
    serve(&file, &headers)
}

/// `GET /ui/`: the list page.
pub(crate) async fn list_page(headers: HeaderMap) -> Response {
    serve("list.html", &headers)
}

/// `GET /ui/recordings/{id}`: the recording page (the same page for every ID; its script reads
/// the ID from the URL and asks the read API, which checks the viewer).
pub(crate) async fn recording_page(headers: HeaderMap) -> Response {
    serve("recording.html", &headers)
}
