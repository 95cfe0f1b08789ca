//! Streams a JSON list (`{..."items":[` items `]}`) in chunks produced as the body is read, so a
//! list of thousands of objects starts arriving at once and is never held whole in memory.

use std::convert::Infallible;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

/// Roughly how much JSON goes into one body chunk.
const CHUNK: usize = 64 * 1024;

struct ListChunks<T, F> {
    prefix: Option<Vec<u8>>,
    items: std::vec::IntoIter<T>,
    first: bool,
    encode: F,
    suffix: Option<Vec<u8>>,
}

impl<T, F: FnMut(&T, &mut Vec<u8>)> Iterator for ListChunks<T, F> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let mut buf = self.prefix.take().unwrap_or_default();
        while buf.len() < CHUNK {
            match self.items.next() {
                Some(item) => {
                    if !self.first {
                        buf.push(b',');
                    }
                    self.first = false;
                    (self.encode)(&item, &mut buf);
                }
                None => {
                    if let Some(suffix) = self.suffix.take() {
                        buf.extend_from_slice(&suffix);
                    }
                    break;
                }
            }
        }
        (!buf.is_empty()).then(|| Bytes::from(buf))
    }
}

/// A `200 application/json` response whose body is `prefix`, the encoded items joined by commas,
/// and `suffix`.
pub(crate) fn list_response<T, F>(
    prefix: Vec<u8>,
    items: Vec<T>,
    encode: F,
    suffix: &[u8],
) -> Response
where
    T: Send + 'static,
    F: FnMut(&T, &mut Vec<u8>) + Send + 'static,
{
    let chunks = ListChunks {
        prefix: Some(prefix),
        items: items.into_iter(),
        first: true,
        encode,
        suffix: Some(suffix.to_vec()),
    };
    let body = Body::from_stream(futures_util::stream::iter(chunks.map(Ok::<_, Infallible>)));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_items() {
        let chunks = ListChunks {
            prefix: Some(b"[".to_vec()),
            items: vec![1, 2, 3].into_iter(),
            first: true,
            encode: |n: &i32, out: &mut Vec<u8>| out.extend_from_slice(n.to_string().as_bytes()),
            suffix: Some(b"]".to_vec()),
        };
        let all: Vec<u8> = chunks.flat_map(|b| b.to_vec()).collect();
        assert_eq!(all, b"[1,2,3]");
    }
}
