//! The bucket as a [`RecordingStorage`] backend: finished recordings read from S3 when the
//! recording directory no longer holds them (`serve --s3-keep-local-days`).

use futures_util::future::BoxFuture;
use futures_util::TryStreamExt as _;
use tokio_util::io::StreamReader;

use super::S3Archive;
use crate::error::StoreError;
use crate::store::{RecordingReader, RecordingStorage};

impl RecordingStorage for S3Archive {
    fn location(&self) -> String {
        match self.prefix() {
            "" => format!("s3://{}", self.bucket()),
            prefix => format!("s3://{}/{prefix}", self.bucket()),
        }
    }

    fn open<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<RecordingReader>, StoreError>> {
        Box::pin(async move {
            let key = format!("recordings/{name}");
            let backend_error = |source: super::S3Error| StoreError::Backend {
                location: self.location(),
                name: name.to_owned(),
                source: Box::new(source),
            };
            let Some((_, stream)) = self.get_stream(&key).await.map_err(backend_error)? else {
                return Ok(None);
            };
            // A failure mid-stream reaches the reader as an I/O error naming the object.
            let stream = stream.map_err(std::io::Error::other);
            Ok(Some(Box::pin(StreamReader::new(stream)) as RecordingReader))
        })
    }
}
