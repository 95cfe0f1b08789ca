//! Where the bucket is and how to sign for it.

use std::path::PathBuf;

use object_store::aws::{AmazonS3, AmazonS3Builder};

use super::credentials::StaticCredentials;
use super::S3Error;

/// An S3-compatible bucket: `serve --storage s3 --s3-bucket B [--s3-prefix P] [--s3-region R]
/// [--s3-endpoint URL] [--s3-path-style] [--s3-credentials-file F]`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct S3Options {
    /// The bucket's name.
    pub bucket: String,
    /// Keys start with this (`team/recorder` puts recordings under `team/recorder/...`); empty
    /// for the bucket's root. Leading and trailing `/` are ignored.
    pub prefix: String,
    /// The region; `AWS_REGION` / `AWS_DEFAULT_REGION` when absent, else `us-east-1`.
    pub region: Option<String>,
    /// Another S3-compatible service (MinIO, Ceph, R2, ...): `https://host:port`. `http://` is
    /// accepted (for a service on the same host) and logged as a warning.
    pub endpoint: Option<String>,
    /// Address the bucket in the path (`https://host/bucket/key`) rather than in the host name
    /// (`https://bucket.host/key`), as most self-hosted services need.
    pub path_style: bool,
    /// An AWS shared-credentials file (`[default]` or `$AWS_PROFILE`'s section with
    /// `aws_access_key_id`, `aws_secret_access_key`, optionally `aws_session_token`). Without
    /// it, credentials come from the environment as the AWS SDKs find them.
    pub credentials_file: Option<PathBuf>,
}

impl S3Options {
    /// Options for `bucket`, everything else as by default.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            ..Self::default()
        }
    }

    /// The prefix without leading or trailing `/`.
    pub fn normalized_prefix(&self) -> &str {
        self.prefix.trim_matches('/')
    }

    /// The client: the environment's `AWS_*` settings first (credentials, web identity, region,
    /// ...), then these options over them.
    pub(crate) fn client(&self) -> Result<AmazonS3, S3Error> {
        if self.bucket.is_empty() {
            return Err(S3Error::Config("no bucket given (--s3-bucket)".into()));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_virtual_hosted_style_request(!self.path_style);
        let region = self
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_owned());
        builder = builder.with_region(region);
        if let Some(endpoint) = &self.endpoint {
            let url = url::Url::parse(endpoint).map_err(|error| {
                S3Error::Config(format!("--s3-endpoint {endpoint:?} is not a URL: {error}"))
            })?;
            match url.scheme() {
                "https" => {}
                "http" => {
                    tracing::warn!(
                        endpoint,
                        "S3 endpoint over plain HTTP: recordings and credentials travel unencrypted"
                    );
                    builder = builder.with_allow_http(true);
                }
                other => {
                    return Err(S3Error::Config(format!(
                        "--s3-endpoint {endpoint:?}: scheme {other:?} is neither https nor http"
                    )))
                }
            }
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(path) = &self.credentials_file {
            let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
            let credentials = StaticCredentials::from_file(path, &profile)
                .map_err(|error| S3Error::Config(error.to_string()))?;
            builder = builder
                .with_access_key_id(credentials.access_key_id)
                .with_secret_access_key(credentials.secret_access_key);
            if let Some(token) = credentials.session_token {
                builder = builder.with_token(token);
            }
        }
        builder
            .build()
            .map_err(|error| S3Error::Config(error.to_string()))
    }
}
