//! Just enough of the Kubernetes protobuf encoding to read what kubectl's typed clients send.
//!
//! kubectl sends protobuf for built-in types it handles through the typed clientset; of what the
//! stand-in serves, that is `kubectl create namespace`. A body is the magic `k8s\0` then a
//! `runtime.Unknown` { typeMeta = 1 { apiVersion = 1, kind = 2 }, raw = 2 }, and `raw` is the
//! object's own message (`k8s.io/api/core/v1/generated.proto`, `apimachinery/.../generated.proto`).
//! Only namespaces are decoded (name, generateName, labels); anything else is `415`.

use serde_json::{json, Map, Value};

use super::status::Status;

const MAGIC: &[u8] = b"k8s\0";

/// A length-delimited or varint field of a protobuf message.
enum Field<'a> {
    Bytes(u64, &'a [u8]),
    Other,
}

fn varint(input: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of a message, or `None` if it is malformed.
fn fields(mut input: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let key = varint(&mut input)?;
        let (number, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                varint(&mut input)?;
                out.push(Field::Other);
            }
            1 | 5 => {
                let n = if wire_type == 1 { 8 } else { 4 };
                input = input.get(n..)?;
                out.push(Field::Other);
            }
            2 => {
                let len = usize::try_from(varint(&mut input)?).ok()?;
                let (value, rest) = (input.get(..len)?, input.get(len..)?);
                input = rest;
                out.push(Field::Bytes(number, value));
            }
            _ => return None,
        }
    }
    Some(out)
}

fn bytes_field<'a>(fields: &[Field<'a>], number: u64) -> Option<&'a [u8]> {
    fields.iter().find_map(|f| match f {
        Field::Bytes(n, v) if *n == number => Some(*v),
        _ => None,
    })
}

fn string_field(fields: &[Field<'_>], number: u64) -> Option<String> {
    bytes_field(fields, number).and_then(|b| String::from_utf8(b.to_vec()).ok())
}

/// `ObjectMeta` { name = 1, generateName = 2, labels = 11 (map entries { key = 1, value = 2 }) }.
fn object_meta(raw: &[u8]) -> Option<Value> {
    let meta = fields(raw)?;
    let mut out = Map::new();
    for (number, key) in [(1, "name"), (2, "generateName")] {
        if let Some(v) = string_field(&meta, number) {
            out.insert(key.to_owned(), json!(v));
        }
    }
    let mut labels = Map::new();
    for field in &meta {
        if let Field::Bytes(11, entry) = field {
            let entry = fields(entry)?;
            labels.insert(
                string_field(&entry, 1)?,
                json!(string_field(&entry, 2).unwrap_or_default()),
            );
        }
    }
    if !labels.is_empty() {
        out.insert("labels".to_owned(), Value::Object(labels));
    }
    Some(Value::Object(out))
}

/// Decodes a protobuf body into the JSON form of the object (namespaces only).
pub(crate) fn decode(body: &[u8]) -> Result<Value, Status> {
    let malformed = || Status::bad_request("the protobuf body could not be decoded");
    let unknown = fields(body.strip_prefix(MAGIC).ok_or_else(malformed)?).ok_or_else(malformed)?;
    let type_meta = fields(bytes_field(&unknown, 1).unwrap_or_default()).ok_or_else(malformed)?;
    let kind = string_field(&type_meta, 2).unwrap_or_default();
    let api_version = string_field(&type_meta, 1).unwrap_or_default();
    if (api_version.as_str(), kind.as_str()) != ("v1", "Namespace") {
        return Err(Status::unsupported_media_type(&format!(
            "application/vnd.kubernetes.protobuf ({api_version} {kind})"
        )));
    }
    // Namespace { metadata = 1, spec = 2, status = 3 }
    let namespace = fields(bytes_field(&unknown, 2).unwrap_or_default()).ok_or_else(malformed)?;
    let metadata =
        object_meta(bytes_field(&namespace, 1).unwrap_or_default()).ok_or_else(malformed)?;
    Ok(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": metadata }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, u8::try_from(bytes.len()).expect("short")];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn decodes_kubectl_create_namespace() {
        let type_meta = [field(1, b"v1"), field(2, b"Namespace")].concat();
        let label = [field(1, b"team"), field(2, b"a")].concat();
        let meta = [field(1, b"extra"), field(11, &label)].concat();
        let namespace = [field(1, &meta), field(2, &[]), field(3, &[])].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &namespace)].concat();
        assert_eq!(
            decode(&body).expect("decoded"),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "extra", "labels": {"team": "a"}}})
        );
        assert!(decode(b"k8s\0\x0a\xff").is_err());
        assert!(decode(b"{}").is_err());
    }
}
