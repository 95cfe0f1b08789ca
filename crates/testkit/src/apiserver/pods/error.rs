//! Why a store operation failed; each maps to the `Status` the apiserver would answer.

use std::fmt;

use crate::apiserver::status::Status;

/// A refused store operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// An object of that kind and name already exists (`409 AlreadyExists`).
    AlreadyExists {
        /// `pods` or `namespaces`.
        resource: &'static str,
        /// Object name.
        name: String,
    },
    /// No such object (`404 NotFound`).
    NotFound {
        /// `pods` or `namespaces`.
        resource: &'static str,
        /// Object name.
        name: String,
    },
    /// The object fails validation (`422 Invalid`).
    Invalid {
        /// `Pod` or `Namespace`.
        kind: &'static str,
        /// Object name (may be empty).
        name: String,
        /// The offending field path.
        field: String,
        /// The cause's reason, e.g. `FieldValueRequired`.
        cause: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The request cannot be understood (`400 BadRequest`).
    BadRequest(String),
    /// A `resourceVersion` precondition failed (`409 Conflict`).
    Conflict {
        /// Object name.
        name: String,
    },
    /// A watch asked for history the store no longer has (`410 Expired`).
    Expired(String),
}

impl StoreError {
    pub(crate) fn invalid(
        kind: &'static str,
        name: &str,
        field: &str,
        cause: &'static str,
        message: impl Into<String>,
    ) -> Self {
        StoreError::Invalid {
            kind,
            name: name.to_owned(),
            field: field.to_owned(),
            cause,
            message: message.into(),
        }
    }

    /// The `Status` the apiserver answers for this failure.
    pub(crate) fn to_status(&self) -> Status {
        match self {
            StoreError::AlreadyExists { resource, name } => Status::already_exists(resource, name),
            StoreError::NotFound { resource, name } => Status::not_found(resource, name),
            StoreError::Invalid { kind, name, field, cause, message } => {
                Status::invalid(kind, name, field, cause, message)
            }
            StoreError::BadRequest(message) => Status::bad_request(message.clone()),
            StoreError::Conflict { name } => Status::conflict(
                "pods",
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            StoreError::Expired(message) => Status::expired(message.clone()),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_status().message)
    }
}

impl std::error::Error for StoreError {}
