//! lakehose's storage on S3 (or any S3-compatible server).
//!
//! Everything above [`crate::Storage`] addresses objects as `bucket/key`
//! (and lakehose's own state as `_lakehose/...`). [`BucketStores`] keeps
//! that shape over real buckets: the first path segment picks the bucket
//! (one `object_store` S3 client per bucket, made on first use), and
//! `_lakehose/...` lives under the same key prefix in the system bucket.
//!
//! Region, endpoint and credentials come from the standard AWS environment
//! and config files (`AWS_REGION`, `AWS_ENDPOINT_URL[_S3]`, `AWS_PROFILE`,
//! `~/.aws/config`, `~/.aws/credentials`, web identity, ECS and instance
//! credentials), resolved by `aws-config` exactly as the AWS SDKs do.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RenameOptions, RetryConfig,
};

use crate::storage::SYSTEM_PREFIX;

/// How requests name the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addressing {
    /// Path style (`https://endpoint/bucket/key`) when an endpoint is
    /// configured (S3-compatible servers), virtual-hosted style
    /// (`https://bucket.s3.region.amazonaws.com/key`) on AWS.
    #[default]
    Auto,
    /// Always path style.
    Path,
    /// Always virtual-hosted style.
    VirtualHosted,
}

/// Where and how lakehose reaches S3.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// The bucket holding lakehose's own state under `_lakehose/`.
    pub system_bucket: String,
    /// The endpoint; `None` reads `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`
    /// and the profile, and falls back to AWS's own.
    pub endpoint: Option<String>,
    /// The region; `None` reads the AWS environment and config (and falls
    /// back to `us-east-1`).
    pub region: Option<String>,
    /// Bucket addressing.
    pub addressing: Addressing,
    /// Retries of throttled (429, 503 SlowDown), failed (5xx) and
    /// interrupted requests, with exponential backoff.
    pub max_retries: usize,
    /// How long one request may keep retrying.
    pub retry_timeout: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
}

impl S3Options {
    /// Options for the system bucket `system_bucket`, everything else from
    /// the AWS environment.
    pub fn new(system_bucket: impl Into<String>) -> Self {
        Self {
            system_bucket: system_bucket.into(),
            endpoint: None,
            region: None,
            addressing: Addressing::Auto,
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Errors setting up S3 storage.
#[derive(Debug, thiserror::Error)]
pub enum S3SetupError {
    /// The system bucket name is not a valid bucket name.
    #[error("invalid system bucket: {0}")]
    SystemBucket(String),
    /// The endpoint is not an http(s) URL.
    #[error("invalid S3 endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The client could not be built.
    #[error("could not set up the S3 client: {0}")]
    Client(#[from] object_store::Error),
}

/// Real S3 buckets (or an S3-compatible server) as lakehose's storage:
/// bucket `B` is the bucket `B`, and lakehose's own state lives under
/// `_lakehose/` in `options.system_bucket`. Region, endpoint and
/// credentials come from the AWS environment and config files.
pub async fn storage(options: &S3Options) -> Result<crate::Storage, S3SetupError> {
    let stores = BucketStores::connect(options).await?;
    Ok(crate::Storage::from_store(Arc::new(stores)))
}

/// The resolved AWS settings S3 clients are built from.
#[derive(Debug, Clone)]
struct Resolved {
    region: String,
    endpoint: Option<String>,
    virtual_hosted: bool,
    credentials: Arc<SdkCredentials>,
    retry: RetryConfig,
    client: ClientOptions,
    /// One HTTP client (and connection pool) for every bucket.
    http: SharedHttp,
}

/// The HTTP methods S3 requests are counted by ([`requests_sent`]); the
/// last counts any other.
pub const REQUEST_METHODS: [&str; 6] = ["GET", "HEAD", "PUT", "POST", "DELETE", "OTHER"];

static SENT: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];

/// S3 requests this process has sent, retries included, by HTTP method (in
/// [`REQUEST_METHODS`] order): what the storage costs, per flush or query.
pub fn requests_sent() -> [u64; 6] {
    std::array::from_fn(|i| SENT[i].load(Ordering::Relaxed))
}

/// The shared HTTP client, counting what it sends.
#[derive(Debug)]
struct Counted(object_store::client::HttpClient);

#[async_trait::async_trait]
impl object_store::client::HttpService for Counted {
    async fn call(
        &self,
        req: object_store::client::HttpRequest,
    ) -> Result<object_store::client::HttpResponse, object_store::client::HttpError> {
        let method = req.method().as_str();
        let i = REQUEST_METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(REQUEST_METHODS.len() - 1);
        SENT[i].fetch_add(1, Ordering::Relaxed);
        self.0.execute(req).await
    }
}

/// Hands every bucket's S3 client the same HTTP client.
#[derive(Debug, Default, Clone)]
struct SharedHttp(Arc<Mutex<Option<object_store::client::HttpClient>>>);

impl object_store::client::HttpConnector for SharedHttp {
    fn connect(
        &self,
        options: &ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        let mut shared = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = shared.as_ref() {
            return Ok(client.clone());
        }
        let client = object_store::client::HttpClient::new(Counted(
            object_store::client::ReqwestConnector::default().connect(options)?,
        ));
        *shared = Some(client.clone());
        Ok(client)
    }
}

impl Resolved {
    fn builder(&self, bucket: &str) -> AmazonS3Builder {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&self.region)
            .with_credentials(self.credentials.clone())
            .with_virtual_hosted_style_request(self.virtual_hosted)
            .with_retry(self.retry.clone())
            .with_client_options(self.client.clone())
            .with_http_connector(self.http.clone());
        if let Some(endpoint) = &self.endpoint {
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        b
    }
}

/// The most buckets one process keeps clients for (each is small; the
/// bound keeps a stream of distinct bucket names from growing the map
/// without end).
const MAX_BUCKETS: usize = 4096;

/// One object store over many S3 buckets, addressed as `bucket/key`, with
/// lakehose's state (`_lakehose/...`) in the system bucket. Cloning shares
/// the clients.
#[derive(Clone)]
pub struct BucketStores(Arc<Inner>);

struct Inner {
    resolved: Resolved,
    system_bucket: String,
    system: Arc<dyn ObjectStore>,
    buckets: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl fmt::Debug for BucketStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BucketStores")
            .field("system_bucket", &self.0.system_bucket)
            .field("region", &self.0.resolved.region)
            .field("endpoint", &self.0.resolved.endpoint)
            .finish()
    }
}

impl fmt::Display for BucketStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.0;
        match &inner.resolved.endpoint {
            Some(e) => write!(f, "S3({e}, system bucket {})", inner.system_bucket),
            None => write!(
                f,
                "S3({}, system bucket {})",
                inner.resolved.region, inner.system_bucket
            ),
        }
    }
}

impl BucketStores {
    /// Resolves region, endpoint and credentials from the AWS environment
    /// and config files, and makes the system bucket's client. Nothing is
    /// requested from S3 yet.
    pub async fn connect(options: &S3Options) -> Result<Self, S3SetupError> {
        crate::storage::validate_bucket(&options.system_bucket)
            .map_err(S3SetupError::SystemBucket)?;
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let endpoint = match &options.endpoint {
            Some(e) => Some(e.clone()),
            None => std::env::var("AWS_ENDPOINT_URL_S3")
                .ok()
                .filter(|e| !e.is_empty())
                .or_else(|| sdk.endpoint_url().map(str::to_string)),
        };
        if let Some(e) = &endpoint {
            crate::endpoint::check(e).map_err(|reason| S3SetupError::Endpoint {
                endpoint: crate::endpoint::redact(e),
                reason,
            })?;
        }
        let region = options
            .region
            .clone()
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .unwrap_or_else(|| "us-east-1".to_string());
        let virtual_hosted = match options.addressing {
            Addressing::Auto => endpoint.is_none(),
            Addressing::Path => false,
            Addressing::VirtualHosted => true,
        };
        let credentials = Arc::new(SdkCredentials {
            provider: sdk.credentials_provider(),
            cached: Mutex::new(None),
        });
        let resolved = Resolved {
            region,
            endpoint: endpoint.map(|e| e.trim_end_matches('/').to_string()),
            virtual_hosted,
            credentials,
            retry: RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(15),
                    base: 2.0,
                },
                max_retries: options.max_retries,
                retry_timeout: options.retry_timeout,
            },
            client: ClientOptions::new()
                .with_timeout(options.request_timeout)
                .with_connect_timeout(Duration::from_secs(10)),
            http: SharedHttp::default(),
        };
        Self::with(resolved, &options.system_bucket)
    }

    /// The stores of `resolved` settings, with `system_bucket`'s client.
    fn with(resolved: Resolved, system_bucket: &str) -> Result<Self, S3SetupError> {
        let system: Arc<dyn ObjectStore> = Arc::new(resolved.builder(system_bucket).build()?);
        Ok(Self(Arc::new(Inner {
            resolved,
            system_bucket: system_bucket.to_string(),
            system,
            buckets: Mutex::new(HashMap::new()),
        })))
    }

    /// The system bucket's name.
    pub fn system_bucket(&self) -> &str {
        &self.0.system_bucket
    }
}

impl Inner {
    /// The store of `bucket` (made on first use).
    fn bucket(&self, bucket: &str) -> object_store::Result<Arc<dyn ObjectStore>> {
        if bucket == self.system_bucket {
            return Ok(Arc::clone(&self.system));
        }
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = map.get(bucket) {
            return Ok(Arc::clone(store));
        }
        crate::storage::validate_bucket(bucket).map_err(|reason| {
            object_store::Error::NotSupported {
                source: reason.into(),
            }
        })?;
        if map.len() >= MAX_BUCKETS {
            map.clear();
        }
        let store: Arc<dyn ObjectStore> = Arc::new(self.resolved.builder(bucket).build()?);
        map.insert(bucket.to_string(), Arc::clone(&store));
        Ok(store)
    }

    /// Where `path` lives: the bucket's store, the key in it, and the
    /// prefix that turns the bucket's keys back into lakehose paths.
    fn route(&self, path: &ObjectPath) -> object_store::Result<Route> {
        let mut parts = path.parts();
        let Some(first) = parts.next() else {
            return Err(object_store::Error::NotSupported {
                source: "listing or addressing every bucket at once is not supported on S3; name a bucket".into(),
            });
        };
        let first = first.as_ref().to_string();
        if first == SYSTEM_PREFIX {
            return Ok(Route {
                store: Arc::clone(&self.system),
                key: path.clone(),
                bucket: None,
            });
        }
        let key: ObjectPath = parts.collect();
        if first == self.system_bucket && key.prefix_matches(&ObjectPath::from(SYSTEM_PREFIX)) {
            return Err(object_store::Error::PermissionDenied {
                path: path.to_string(),
                source: format!(
                    "{path} is lakehose's own state in the system bucket, which may not be reached as data"
                )
                .into(),
            });
        }
        Ok(Route {
            store: self.bucket(&first)?,
            key,
            bucket: Some(first),
        })
    }

    fn route_prefix(&self, prefix: Option<&ObjectPath>) -> object_store::Result<Route> {
        self.route(prefix.unwrap_or(&ObjectPath::default()))
    }
}

/// One request's target (see [`BucketStores::route`]).
struct Route {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    /// The bucket's name for data buckets; `None` for the system state,
    /// whose keys already are lakehose paths.
    bucket: Option<String>,
}

impl Route {
    fn outer(&self, key: &ObjectPath) -> ObjectPath {
        match &self.bucket {
            None => key.clone(),
            Some(b) => ObjectPath::from(b.as_str())
                .parts()
                .chain(key.parts())
                .collect(),
        }
    }

    fn meta(&self, mut meta: ObjectMeta) -> ObjectMeta {
        meta.location = self.outer(&meta.location);
        meta
    }

    /// A listing of this route's store as lakehose paths, without the
    /// system bucket's `_lakehose/` when it is listed as data.
    fn listing(
        self,
        listed: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let system = ObjectPath::from(SYSTEM_PREFIX);
        let hide_system = self.bucket.is_some();
        listed
            .filter_map(move |m| {
                let out = match m {
                    Ok(m) if hide_system && m.location.prefix_matches(&system) => None,
                    Ok(m) => Some(Ok(self.meta(m))),
                    Err(e) => Some(Err(e)),
                };
                futures::future::ready(out)
            })
            .boxed()
    }
}

fn error_stream<T: Send + 'static>(
    e: object_store::Error,
) -> BoxStream<'static, object_store::Result<T>> {
    futures::stream::once(async move { Err(e) }).boxed()
}

#[async_trait::async_trait]
impl ObjectStore for BucketStores {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let r = self.0.route(location)?;
        r.store.put_opts(&r.key, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let r = self.0.route(location)?;
        r.store.put_multipart_opts(&r.key, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let r = self.0.route(location)?;
        let mut got = r.store.get_opts(&r.key, options).await?;
        got.meta = r.meta(got.meta);
        Ok(got)
    }

    async fn get_ranges(
        &self,
        location: &ObjectPath,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        let r = self.0.route(location)?;
        r.store.get_ranges(&r.key, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        // One delete at a time through the right bucket; deletes are rare
        // (compaction, vacuum, overwrites) and bounded by their callers.
        let this = self.clone();
        locations
            .then(move |l| {
                let this = this.clone();
                async move {
                    let l = l?;
                    let r = this.0.route(&l)?;
                    r.store.delete(&r.key).await?;
                    Ok(l)
                }
            })
            .boxed()
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.0.route_prefix(prefix) {
            Ok(r) => {
                let listed = r.store.list(Some(&r.key));
                r.listing(listed)
            }
            Err(e) => error_stream(e),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjectPath>,
        offset: &ObjectPath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let routed = self.0.route_prefix(prefix).and_then(|r| {
            let off = self.0.route(offset)?;
            Ok((r, off.key))
        });
        match routed {
            Ok((r, offset)) => {
                let listed = r.store.list_with_offset(Some(&r.key), &offset);
                r.listing(listed)
            }
            Err(e) => error_stream(e),
        }
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        let r = self.0.route_prefix(prefix)?;
        let listed = r.store.list_with_delimiter(Some(&r.key)).await?;
        let system = ObjectPath::from(SYSTEM_PREFIX);
        let hide = |p: &ObjectPath| r.bucket.is_some() && p.prefix_matches(&system);
        Ok(ListResult {
            common_prefixes: listed
                .common_prefixes
                .iter()
                .filter(|p| !hide(p))
                .map(|p| r.outer(p))
                .collect(),
            objects: listed
                .objects
                .into_iter()
                .filter(|m| !hide(&m.location))
                .map(|m| r.meta(m))
                .collect(),
        })
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let (src, dst) = (self.0.route(from)?, self.0.route(to)?);
        if src.bucket == dst.bucket {
            return src.store.copy_opts(&src.key, &dst.key, options).await;
        }
        // Across buckets: read, then write (conditionally when asked).
        let bytes = src.store.get(&src.key).await?.bytes().await?;
        let mode = match options.mode {
            object_store::CopyMode::Overwrite => object_store::PutMode::Overwrite,
            object_store::CopyMode::Create => object_store::PutMode::Create,
        };
        dst.store
            .put_opts(
                &dst.key,
                PutPayload::from(bytes),
                PutOptions {
                    mode,
                    ..Default::default()
                },
            )
            .await
            .map(|_| ())
    }

    async fn rename_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let copy = CopyOptions {
            mode: match options.target_mode {
                object_store::RenameTargetMode::Overwrite => object_store::CopyMode::Overwrite,
                object_store::RenameTargetMode::Create => object_store::CopyMode::Create,
            },
            ..Default::default()
        };
        self.copy_opts(from, to, copy).await?;
        let src = self.0.route(from)?;
        src.store.delete(&src.key).await
    }
}

/// Credentials from `aws-config`'s default chain, cached until shortly
/// before they expire.
struct SdkCredentials {
    provider: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

impl fmt::Debug for SdkCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys themselves.
        f.debug_struct("SdkCredentials").finish_non_exhaustive()
    }
}

/// How long before their expiry cached credentials are renewed.
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

#[async_trait::async_trait]
impl object_store::CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        {
            let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((cred, expiry)) = cached.as_ref() {
                let fresh = expiry.is_none_or(|e| {
                    e.duration_since(SystemTime::now())
                        .is_ok_and(|left| left > RENEW_BEFORE)
                });
                if fresh {
                    return Ok(Arc::clone(cred));
                }
            }
        }
        use aws_credential_types::provider::ProvideCredentials;
        let Some(provider) = &self.provider else {
            return Err(object_store::Error::Generic {
                store: "S3",
                source: "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where instance or container credentials are available".into(),
            });
        };
        let creds =
            provider
                .provide_credentials()
                .await
                .map_err(|e| object_store::Error::Generic {
                    store: "S3",
                    source: format!("could not load AWS credentials: {e}").into(),
                })?;
        let cred = Arc::new(AwsCredential {
            key_id: creds.access_key_id().to_string(),
            secret_key: creds.secret_access_key().to_string(),
            token: creds.session_token().map(str::to_string),
        });
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Arc::clone(&cred), creds.expiry()));
        Ok(cred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores over an endpoint nothing listens on: routing makes no
    /// request.
    fn stores() -> BucketStores {
        let resolved = Resolved {
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            virtual_hosted: false,
            credentials: Arc::new(SdkCredentials {
                provider: None,
                cached: Mutex::new(None),
            }),
            retry: RetryConfig::default(),
            client: ClientOptions::new(),
            http: SharedHttp::default(),
        };
        BucketStores::with(resolved, "sys-bucket").unwrap()
    }

    #[test]
    fn paths_route_to_their_bucket_and_back() {
        let s = stores();
        let r =
            s.0.route(&ObjectPath::from("_lakehose/catalog/x.json"))
                .unwrap();
        assert_eq!(
            (r.bucket.as_deref(), r.key.as_ref()),
            (None, "_lakehose/catalog/x.json")
        );
        assert_eq!(r.outer(&r.key).as_ref(), "_lakehose/catalog/x.json");
        let r =
            s.0.route(&ObjectPath::from("logs-bucket/raw/a.parquet"))
                .unwrap();
        assert_eq!(r.bucket.as_deref(), Some("logs-bucket"));
        assert_eq!(r.key.as_ref(), "raw/a.parquet");
        assert_eq!(r.outer(&r.key).as_ref(), "logs-bucket/raw/a.parquet");
        // The system bucket may hold tables, but not as a way into the
        // state.
        assert!(
            s.0.route(&ObjectPath::from("sys-bucket/tables/t.parquet"))
                .is_ok()
        );
        assert!(matches!(
            s.0.route(&ObjectPath::from("sys-bucket/_lakehose/catalog")),
            Err(object_store::Error::PermissionDenied { .. })
        ));
        // No bucket, or a name S3 refuses.
        assert!(s.0.route(&ObjectPath::default()).is_err());
        assert!(s.0.route(&ObjectPath::from("Bad_Bucket/k")).is_err());
        assert!(s.0.route(&ObjectPath::from("ab/k")).is_err());
    }

    #[test]
    fn bucket_clients_are_bounded() {
        let s = stores();
        for i in 0..(MAX_BUCKETS + 10) {
            s.0.route(&ObjectPath::from(format!("bucket-{i}/k")))
                .unwrap();
        }
        assert!(s.0.buckets.lock().unwrap().len() <= MAX_BUCKETS);
    }
}
