//! JSON shapes as Go's `encoding/json` writes them, where serde's defaults differ: `[]byte` as
//! standard base64, nil maps and slices as `null` (and read back as empty), and Kubernetes'
//! `RequestInfo` with its Go field names and a nil `Parts` as `null`.

use std::collections::BTreeMap;

use requestinfo::RequestInfo;
use serde::ser::SerializeStruct as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `Option<Bytes>` as Go's `[]byte`: standard base64 with padding, `None` as `null`.
pub(super) mod base64_bytes {
    use base64::display::Base64Display;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(in crate::api_event) fn serialize<S: Serializer>(
        body: &Option<Bytes>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match body {
            // Encoded straight into the output: bodies can be large and are written once.
            Some(body) => serializer.collect_str(&Base64Display::new(body, &STANDARD)),
            None => serializer.serialize_none(),
        }
    }

    pub(in crate::api_event) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Bytes>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(text) => STANDARD
                .decode(text)
                .map(|body| Some(Bytes::from(body)))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A collection Go would leave nil when empty.
pub(super) trait GoNilable: Default {
    fn is_empty(&self) -> bool;
}

impl<T> GoNilable for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl<K: Ord, V> GoNilable for BTreeMap<K, V> {
    fn is_empty(&self) -> bool {
        BTreeMap::is_empty(self)
    }
}

/// A map or slice that is `null` when empty, as Go writes a nil one; `null` reads as empty.
pub(super) mod null_when_empty {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::GoNilable;

    pub(in crate::api_event) fn serialize<T, S>(value: &T, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: GoNilable + Serialize,
        S: Serializer,
    {
        if value.is_empty() {
            serializer.serialize_none()
        } else {
            value.serialize(serializer)
        }
    }

    pub(in crate::api_event) fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: GoNilable + Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
    }
}

/// A [`RequestInfo`] as Go writes Kubernetes' `request.RequestInfo` (Tailscale's
/// `KubernetesRequestInfo`, which has no JSON tags): Go field names in Go's order, and `Parts`
/// `null` when empty, since the apiserver leaves it nil for non-resource requests.
pub(super) struct GoRequestInfo<'a>(pub(super) &'a RequestInfo);

impl Serialize for GoRequestInfo<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let info = self.0;
        let parts = (!info.parts.is_empty()).then_some(&info.parts);
        let mut out = serializer.serialize_struct("KubernetesRequestInfo", 13)?;
        out.serialize_field("IsResourceRequest", &info.is_resource_request)?;
        out.serialize_field("Path", &info.path)?;
        out.serialize_field("Verb", &info.verb)?;
        out.serialize_field("APIPrefix", &info.api_prefix)?;
        out.serialize_field("APIGroup", &info.api_group)?;
        out.serialize_field("APIVersion", &info.api_version)?;
        out.serialize_field("Namespace", &info.namespace)?;
        out.serialize_field("Resource", &info.resource)?;
        out.serialize_field("Subresource", &info.subresource)?;
        out.serialize_field("Name", &info.name)?;
        out.serialize_field("Parts", &parts)?;
        out.serialize_field("FieldSelector", &info.field_selector)?;
        out.serialize_field("LabelSelector", &info.label_selector)?;
        out.end()
    }
}

/// `RequestInfo` as read: every field optional (events written by older Tailscale versions lack
/// the selectors), `Parts` may be `null`.
#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RequestInfoIn {
    is_resource_request: bool,
    path: String,
    verb: String,
    #[serde(rename = "APIPrefix")]
    api_prefix: String,
    #[serde(rename = "APIGroup")]
    api_group: String,
    #[serde(rename = "APIVersion")]
    api_version: String,
    namespace: String,
    resource: String,
    subresource: String,
    name: String,
    #[serde(deserialize_with = "null_when_empty::deserialize")]
    parts: Vec<String>,
    field_selector: String,
    label_selector: String,
}

/// Reads a `kubernetes` object written by [`GoRequestInfo`] or by Go.
pub(super) fn request_info<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<RequestInfo, D::Error> {
    let info = RequestInfoIn::deserialize(deserializer)?;
    Ok(RequestInfo {
        is_resource_request: info.is_resource_request,
        path: info.path,
        verb: info.verb,
        api_prefix: info.api_prefix,
        api_group: info.api_group,
        api_version: info.api_version,
        namespace: info.namespace,
        resource: info.resource,
        subresource: info.subresource,
        name: info.name,
        parts: info.parts,
        field_selector: info.field_selector,
        label_selector: info.label_selector,
    })
}
