//! `kube-recorder serve --storage dir|s3` and the S3 flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use recorder_server::s3::{S3Archive, S3Options, Shipper, ShipperOptions, MIN_PART_SIZE};

/// Where recordings are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StorageKind {
    /// The recording directory alone.
    Dir,
    /// The recording directory as a spool, mirrored into an S3-compatible bucket as recordings
    /// arrive and end.
    S3,
}

#[derive(Debug, Args)]
pub(crate) struct StorageArgs {
    /// Where recordings are kept: `dir` (the recording directory) or `s3` (the directory as a
    /// local spool, mirrored into an S3-compatible bucket: recordings are uploaded as they grow,
    /// in multipart parts, and their manifests, index entries and the chain when they end).
    #[arg(long, value_enum, default_value_t = StorageKind::Dir, env = "KUBE_RECORDER_STORAGE")]
    storage: StorageKind,
    #[command(flatten)]
    location: S3LocationArgs,
    /// Multipart part size in MiB (at least 5).
    #[arg(long, default_value_t = 8, value_name = "MIB")]
    s3_part_size_mib: u64,
    /// Days a shipped recording's file stays in the directory too; after that only the bucket
    /// holds it and the recorder reads it from there (its index entry and seal stay local).
    /// 0: as soon as it is shipped. Default: keep every file in the directory as well.
    #[arg(long, env = "KUBE_RECORDER_S3_KEEP_LOCAL_DAYS", value_name = "DAYS")]
    s3_keep_local_days: Option<f64>,
}

/// The bucket: `--s3-bucket` and the flags that say how to reach it.
#[derive(Debug, Clone, Args)]
pub(crate) struct S3LocationArgs {
    /// The bucket (with --storage s3).
    #[arg(long, env = "KUBE_RECORDER_S3_BUCKET", value_name = "BUCKET")]
    pub(crate) s3_bucket: Option<String>,
    /// Key prefix in the bucket (`team/recorder`); default: the bucket's root.
    #[arg(long, env = "KUBE_RECORDER_S3_PREFIX", value_name = "PREFIX")]
    s3_prefix: Option<String>,
    /// The bucket's region; default AWS_REGION, AWS_DEFAULT_REGION, else us-east-1.
    #[arg(long, env = "KUBE_RECORDER_S3_REGION", value_name = "REGION")]
    s3_region: Option<String>,
    /// Another S3-compatible service (MinIO, Ceph, R2...): https://HOST[:PORT]; http:// is
    /// accepted with a warning.
    #[arg(long, env = "KUBE_RECORDER_S3_ENDPOINT", value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Address the bucket in the path (https://HOST/BUCKET/KEY), as most self-hosted services
    /// need, rather than in the host name.
    #[arg(long)]
    s3_path_style: bool,
    /// An AWS shared-credentials file ([default] or $AWS_PROFILE with aws_access_key_id and
    /// aws_secret_access_key). Default: credentials from the environment as the AWS SDKs find
    /// them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity, instance metadata).
    #[arg(long, env = "KUBE_RECORDER_S3_CREDENTIALS_FILE", value_name = "FILE")]
    s3_credentials_file: Option<PathBuf>,
}

impl S3LocationArgs {
    /// Whether any flag was given.
    pub(crate) fn any(&self) -> bool {
        self.s3_bucket.is_some()
            || self.s3_prefix.is_some()
            || self.s3_region.is_some()
            || self.s3_endpoint.is_some()
            || self.s3_path_style
            || self.s3_credentials_file.is_some()
    }

    /// The bucket's options; an error without `--s3-bucket`.
    pub(crate) fn options(&self) -> anyhow::Result<S3Options> {
        let bucket = self.s3_bucket.clone().context("--s3-bucket is missing")?;
        let mut options = S3Options::new(bucket);
        options.prefix = self.s3_prefix.clone().unwrap_or_default();
        options.region = self.s3_region.clone();
        options.endpoint = self.s3_endpoint.clone();
        options.path_style = self.s3_path_style;
        options.credentials_file = self.s3_credentials_file.clone();
        Ok(options)
    }
}

impl StorageArgs {
    /// The shipper of `--storage s3`, its bucket checked; `None` with `--storage dir`.
    pub(crate) async fn shipper(&self, dir: &Path) -> anyhow::Result<Option<Shipper>> {
        if self.storage == StorageKind::Dir {
            anyhow::ensure!(
                !self.location.any() && self.s3_keep_local_days.is_none(),
                "the --s3-* flags need --storage s3"
            );
            return Ok(None);
        }
        anyhow::ensure!(
            self.location.s3_bucket.is_some(),
            "--storage s3 needs --s3-bucket"
        );
        let part_size = self.s3_part_size_mib.saturating_mul(1024 * 1024);
        anyhow::ensure!(
            part_size >= MIN_PART_SIZE,
            "--s3-part-size-mib {}: S3 parts are at least 5 MiB",
            self.s3_part_size_mib
        );
        let options = self.location.options()?;
        let archive = S3Archive::new(&options)?;
        archive
            .check()
            .await
            .context("checking the S3 bucket at start")?;
        tokio::fs::create_dir_all(dir.join("recordings"))
            .await
            .with_context(|| format!("creating {}", dir.display()))?;
        let mut shipper_options = ShipperOptions::default();
        shipper_options.part_size = part_size;
        shipper_options.keep_local = self
            .s3_keep_local_days
            .map(|days| {
                Duration::try_from_secs_f64(days * 86_400.0)
                    .map_err(|_| anyhow::anyhow!("--s3-keep-local-days {days}: expected days >= 0"))
            })
            .transpose()?;
        let shipper = Shipper::open(dir, archive, shipper_options).await?;
        tracing::info!(
            bucket = options.bucket,
            prefix = options.normalized_prefix(),
            "recordings are mirrored to S3"
        );
        Ok(Some(shipper))
    }
}

/// How long the last shipping pass may take at shutdown; what it leaves ships at the next start.
pub(crate) const LAST_PASS_GRACE: Duration = Duration::from_secs(30);
