//! Reading recordings and events from a directory or from a running recorder, the same way.

use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use recorder_server::s3::S3Archive;
use recorder_server::{CastDownload, EventFilter, RecorderApiClient, RecordingMeta, Store};
use serde_json::value::RawValue;
use tokio::io::AsyncReadExt as _;

use super::SourceArgs;

/// A recording directory or a recorder's read API.
pub(crate) enum Archive {
    Local(Store),
    Remote(Box<RecorderApiClient>),
}

/// A cast being read.
pub(crate) enum CastReader {
    Local(recorder_server::RecordingReader),
    Remote(CastDownload),
}

/// What a recording's index entry says of its file (all `false` when it is not known: a file
/// given by path, a recording fetched from a server).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Expected {
    /// The file must be an age file.
    pub(crate) encrypted: bool,
    /// The upload ended complete, so the file must not be cut off.
    pub(crate) complete: bool,
}

impl Archive {
    pub(crate) async fn open(source: &SourceArgs) -> anyhow::Result<Self> {
        match (&source.server, &source.dir) {
            (Some(url), _) => {
                anyhow::ensure!(
                    !source.s3.any(),
                    "the --s3-* flags go with --dir (a recorder's --server reads its bucket itself)"
                );
                let mut client = RecorderApiClient::new(url)?;
                if let Some(token) = source.token()? {
                    client = client.with_token(token);
                }
                Ok(Self::Remote(Box::new(client)))
            }
            (None, Some(dir)) => {
                let mut store = Store::open(dir)
                    .await
                    .with_context(|| format!("--dir {}", dir.display()))?;
                if source.s3.s3_bucket.is_some() {
                    let archive = S3Archive::new(&source.s3.options()?)?;
                    store = store.read_through(Arc::new(archive));
                }
                Ok(Self::Local(store))
            }
            (None, None) => anyhow::bail!(
                "say where the recordings are: --server URL or --dir DIR \
                 (or KUBE_RECORDER_SERVER / KUBE_RECORDER_DIR)"
            ),
        }
    }

    pub(crate) async fn recordings(&self) -> anyhow::Result<Vec<RecordingMeta>> {
        Ok(match self {
            Self::Local(store) => store.list().await?,
            Self::Remote(client) => client.recordings().await?,
        })
    }

    /// A cast, or an encrypted recording's age file (which the caller tells by its first
    /// bytes, [`recorder_server::crypt::is_age`]), and whether it must be one: a directory's
    /// index entry says so (a recorder's read API chooses the file by the same entry).
    pub(crate) async fn cast(&self, id: &str) -> anyhow::Result<(CastReader, Expected)> {
        Ok(match self {
            Self::Local(store) => {
                let meta = store.get(id).await?;
                let expected = Expected {
                    encrypted: meta.encrypted,
                    complete: meta.outcome == recorder_server::Outcome::Complete,
                };
                // Only the file the entry names: an encrypted recording is never read from a
                // plaintext file put beside it.
                if meta.encrypted {
                    (
                        CastReader::Local(store.open_encrypted(id).await?.1),
                        expected,
                    )
                } else {
                    (CastReader::Local(store.open_cast(id).await?), expected)
                }
            }
            Self::Remote(client) => (
                CastReader::Remote(client.cast(id).await?),
                Expected::default(),
            ),
        })
    }

    /// A port-forward capture (a recording directory opens only `<id>.pfcap`; a recorder serves
    /// whatever the ID names, which the caller checks).
    pub(crate) async fn capture(&self, id: &str) -> anyhow::Result<CastReader> {
        Ok(match self {
            Self::Local(store) => CastReader::Local(match store.open_capture(id).await {
                Err(recorder_server::StoreError::NotFound(_))
                    if store.open_encrypted(id).await.is_ok() =>
                {
                    anyhow::bail!(
                        "recording {id} is encrypted at rest: decrypt it first, e.g. \
                         `age -d -i KEY {}`",
                        store
                            .dir()
                            .join("recordings")
                            .join(format!("{id}.pfcap.age"))
                            .display()
                    )
                }
                other => other?,
            }),
            Self::Remote(client) => CastReader::Remote(client.cast(id).await?),
        })
    }

    pub(crate) async fn events(&self, filter: &EventFilter) -> anyhow::Result<Vec<Box<RawValue>>> {
        Ok(match self {
            Self::Local(store) => store.events(filter).await?,
            Self::Remote(client) => client.events(filter).await?,
        })
    }
}

impl CastReader {
    /// The next piece of the cast; `None` at the end.
    pub(crate) async fn next_chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        match self {
            Self::Local(file) => {
                let mut buf = vec![0; 64 * 1024];
                let n = file.read(&mut buf).await?;
                buf.truncate(n);
                Ok((n > 0).then(|| Bytes::from(buf)))
            }
            Self::Remote(download) => Ok(download.next_chunk().await.transpose()?),
        }
    }
}
