//! Output negotiation: a plain object, or a server-side `Table` when `Accept` asks for one.
//!
//! `kubectl get` sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,
//! application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json`. The first acceptable
//! entry wins. Everything else is answered as JSON: kubectl asks for protobuf only alongside
//! JSON (`auth whoami` sends `application/vnd.kubernetes.protobuf, */*`), and JSON it decodes by
//! the response's `Content-Type`.

use http::HeaderMap;

/// Which `meta.k8s.io` version a table is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableVersion {
    V1,
    V1Beta1,
}

impl TableVersion {
    pub(crate) fn api_version(self) -> &'static str {
        match self {
            TableVersion::V1 => "meta.k8s.io/v1",
            TableVersion::V1Beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// What to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Object,
    Table(TableVersion),
}

/// Reads the `Accept` header(s).
pub(crate) fn negotiate(headers: &HeaderMap) -> Output {
    for value in headers.get_all(http::header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or_default();
            let (mut as_kind, mut group, mut version) = (None, None, None);
            for param in parts {
                if let Some((k, v)) = param.split_once('=') {
                    match k.trim() {
                        "as" => as_kind = Some(v.trim()),
                        "g" => group = Some(v.trim()),
                        "v" => version = Some(v.trim()),
                        _ => {}
                    }
                }
            }
            let json_like = media_type == "application/json"
                || media_type == "*/*"
                || media_type == "application/*";
            match (json_like, as_kind, group, version) {
                (true, Some("Table"), Some("meta.k8s.io"), Some("v1")) => {
                    return Output::Table(TableVersion::V1)
                }
                (true, Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) => {
                    return Output::Table(TableVersion::V1Beta1)
                }
                // Another transformation (e.g. PartialObjectMetadata) is not served; skip it.
                (_, Some(_), _, _) => continue,
                (true, None, _, _) => return Output::Object,
                _ => continue,
            }
        }
    }
    Output::Object
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn kubectl_get_asks_for_v1_table() {
        let h = accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json");
        assert_eq!(negotiate(&h), Output::Table(TableVersion::V1));
        assert_eq!(negotiate(&accept("application/json")), Output::Object);
        assert_eq!(negotiate(&HeaderMap::new()), Output::Object);
        assert_eq!(
            negotiate(&accept("application/vnd.kubernetes.protobuf, */*")),
            Output::Object
        );
        assert_eq!(
            negotiate(&accept(
                "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"
            )),
            Output::Object
        );
    }
}
