//! `lakehose worker`: runs the stages of distributed queries.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};

/// `lakehose worker`.
#[derive(Debug, clap::Args)]
pub struct Config {
    /// Where coordinators (`lakehose serve --workers`) reach this worker.
    /// Loopback by default; another address needs --token.
    #[arg(long, env = "LAKEHOSE_WORKER_LISTEN", default_value = "127.0.0.1:4590")]
    listen: SocketAddr,

    /// The token coordinators must send (16 to 256 visible characters);
    /// give the same one to `serve --worker-token`.
    #[arg(long, env = "LAKEHOSE_WORKER_TOKEN", hide_env_values = true)]
    token: String,

    /// The data folder (with --storage local, the same folder the
    /// coordinator serves).
    #[arg(long, env = "LAKEHOSE_DATA_DIR", default_value = "./lakehose-data")]
    data_dir: PathBuf,

    #[command(flatten)]
    storage: crate::storage_args::StorageArgs,

    /// Worker threads [default: one per core].
    #[arg(long, env = "LAKEHOSE_WORKER_THREADS")]
    threads: Option<usize>,
}

/// The workers named by `serve --workers`, with their token.
pub(crate) fn workers(
    addresses: &[String],
    token: Option<&str>,
) -> anyhow::Result<Option<lakehose_query::distributed::Workers>> {
    if addresses.is_empty() {
        if token.is_some() {
            bail!("--worker-token needs --workers");
        }
        return Ok(None);
    }
    let Some(token) = token else {
        bail!("--workers needs --worker-token (the token the workers were started with)");
    };
    let urls = addresses
        .iter()
        .map(|a| {
            let text = if a.contains("://") {
                a.clone()
            } else {
                format!("http://{a}")
            };
            url::Url::parse(&text).with_context(|| format!("worker address {a:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(
        lakehose_query::distributed::Workers::new(urls, token).map_err(anyhow::Error::msg)?,
    ))
}

/// Runs the worker until SIGINT or SIGTERM.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = crate::server::runtime(config.threads)?;
    runtime.block_on(async move {
        let engine = config.storage.engine(&config.data_dir).await?;
        let worker = lakehose_query::distributed::worker(&engine, &config.token)
            .map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("could not listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        println!("lakehose worker listening on {addr}");
        tonic::transport::Server::builder()
            .add_service(worker.into_worker_server())
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                crate::server::shutdown_signal(),
            )
            .await
            .context("the worker failed")
    })
}
