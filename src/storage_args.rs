//! The flags that choose where the warehouse and its catalog live, shared
//! by every command that opens them.

use std::path::Path;

use anyhow::{Context, bail};
use std::sync::Arc;

use lakehose_catalog::glue_catalog::{GlueCatalog, GlueOptions};
use lakehose_catalog::s3::{Addressing, S3Options};
use lakehose_catalog::{Catalog, CatalogError, CatalogRef, EmbeddedCatalog, Storage};

/// Where tables and lakehose's own state are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StorageKind {
    /// The data folder: bucket `B` is `<data-dir>/B/`.
    #[default]
    Local,
    /// Real S3 buckets (or an S3-compatible server): bucket `B` is the
    /// bucket `B`.
    S3,
}

/// How S3 requests name the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AddressingArg {
    /// Path style with a custom endpoint, virtual-hosted style on AWS.
    #[default]
    Auto,
    /// `https://endpoint/bucket/key`.
    Path,
    /// `https://bucket.endpoint/key`.
    Virtual,
}

/// Which catalog holds databases, tables and partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CatalogKind {
    /// lakehose's own catalog, kept in its storage under `_lakehose/`.
    #[default]
    Embedded,
    /// The AWS Glue Data Catalog (or a Glue-compatible server).
    Glue,
}

/// Flags choosing the storage and the catalog.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StorageArgs {
    /// Where tables and lakehose's own state live: `local` (the data
    /// folder) or `s3`: real buckets (bucket B of an s3:// location is
    /// the bucket B), at the endpoint, region and credentials of the
    /// standard AWS environment and config files (AWS_ENDPOINT_URL,
    /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/config, instance
    /// and container credentials). The write-ahead log stays on local
    /// disk either way.
    #[arg(long, env = "LAKEHOSE_STORAGE", value_enum, default_value_t = StorageKind::Local)]
    pub storage: StorageKind,

    /// With --storage s3: the bucket that holds lakehose's own state
    /// (catalog, stream configs, query history, job bookmarks) under
    /// `_lakehose/`. Every node of one deployment names the same one.
    #[arg(long, env = "LAKEHOSE_SYSTEM_BUCKET")]
    pub system_bucket: Option<String>,

    /// With --storage s3: how requests name the bucket. `auto` uses path
    /// style (`endpoint/bucket/key`) when AWS_ENDPOINT_URL names an
    /// S3-compatible server, virtual-hosted style on AWS.
    #[arg(long, env = "LAKEHOSE_S3_ADDRESSING", value_enum, default_value_t = AddressingArg::Auto)]
    pub s3_addressing: AddressingArg,

    /// Where databases, tables and partitions are registered: `embedded`
    /// (lakehose's own catalog, in its storage) or `glue`: the AWS Glue
    /// Data Catalog at the endpoint, region and credentials of the AWS
    /// environment (AWS_ENDPOINT_URL_GLUE or AWS_ENDPOINT_URL for a
    /// Glue-compatible server). The crawler, ingest, DDL, ETL and imports
    /// register there, and lakehose's own Glue API serves it.
    #[arg(long, env = "LAKEHOSE_CATALOG", value_enum, default_value_t = CatalogKind::Embedded)]
    pub catalog: CatalogKind,

    /// With --catalog glue: the Glue catalog id (the AWS account that owns
    /// the catalog) [default: the caller's account].
    #[arg(long, env = "LAKEHOSE_GLUE_CATALOG_ID")]
    pub glue_catalog_id: Option<String>,
}

impl StorageArgs {
    /// Opens the storage these flags name; `data_dir` is the local folder
    /// of `--storage local`.
    pub async fn open(&self, data_dir: &Path) -> anyhow::Result<Storage> {
        match self.storage {
            StorageKind::Local => {
                if self.system_bucket.is_some() {
                    bail!("--system-bucket applies to --storage s3 only");
                }
                Storage::local(data_dir).with_context(|| {
                    format!("could not open the data folder {}", data_dir.display())
                })
            }
            StorageKind::S3 => {
                let Some(bucket) = &self.system_bucket else {
                    bail!(
                        "--storage s3 needs --system-bucket (or LAKEHOSE_SYSTEM_BUCKET): the bucket that holds lakehose's own state"
                    );
                };
                let mut options = S3Options::new(bucket.clone());
                options.addressing = match self.s3_addressing {
                    AddressingArg::Auto => Addressing::Auto,
                    AddressingArg::Path => Addressing::Path,
                    AddressingArg::Virtual => Addressing::VirtualHosted,
                };
                let storage = lakehose_catalog::s3::storage(&options)
                    .await
                    .context("could not set up S3 storage")?;
                probe(&storage, bucket).await?;
                Ok(storage)
            }
        }
    }

    /// The catalog these flags name, over `storage`. A Glue catalog is
    /// asked for one database first, so a wrong endpoint or refused
    /// credentials are named at start.
    pub async fn catalog(&self, storage: &Storage) -> anyhow::Result<CatalogRef> {
        if self.catalog != CatalogKind::Glue {
            if self.glue_catalog_id.is_some() {
                bail!("--glue-catalog-id applies to --catalog glue only");
            }
            return Ok(Arc::new(EmbeddedCatalog::new(storage.clone())));
        }
        let options = GlueOptions {
            catalog_id: self.glue_catalog_id.clone(),
            ..Default::default()
        };
        let glue = GlueCatalog::connect(options)
            .await
            .context("could not set up the Glue catalog")?;
        match tokio::time::timeout(PROBE_TIMEOUT, glue.get_database("default")).await {
            Ok(Ok(_)) | Ok(Err(CatalogError::NotFound(_))) => Ok(Arc::new(glue)),
            Ok(Err(e)) => bail!("could not reach the Glue catalog: {e}"),
            Err(_) => bail!(
                "the Glue catalog did not answer within {}s (check AWS_ENDPOINT_URL and the network)",
                PROBE_TIMEOUT.as_secs()
            ),
        }
    }

    /// A query engine with the catalog these flags name over their storage.
    pub async fn engine(&self, data_dir: &Path) -> anyhow::Result<lakehose_query::QueryEngine> {
        let storage = self.open(data_dir).await?;
        let catalog = self.catalog(&storage).await?;
        Ok(lakehose_query::QueryEngine::new(
            catalog,
            storage,
            lakehose_query::EngineConfig::default(),
        )?)
    }
}

/// How long the first request to the system bucket may take, retries
/// included, before the command gives up with the reason.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Lists the system bucket's `_lakehose/` once, so a missing bucket, a
/// wrong endpoint or refused credentials are named at start rather than at
/// the first flush.
async fn probe(storage: &Storage, bucket: &str) -> anyhow::Result<()> {
    let prefix = object_store::path::Path::from("_lakehose");
    let listed = tokio::time::timeout(
        PROBE_TIMEOUT,
        storage.store().list_with_delimiter(Some(&prefix)),
    )
    .await;
    match listed {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("could not read the system bucket {bucket:?}: {e}"),
        Err(_) => bail!(
            "the system bucket {bucket:?} did not answer within {}s (check AWS_ENDPOINT_URL and the network)",
            PROBE_TIMEOUT.as_secs()
        ),
    }
}
