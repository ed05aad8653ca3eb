//! Serving the HTTP router over TCP with limits a hostile or broken client
//! cannot get around: a cap on connections served at once (more wait in
//! the listen backlog), a deadline for the request head (which also closes
//! a keep-alive connection idle that long), a deadline for the whole
//! request body (a client sending one byte a second is cut off), and a cap
//! on the size of the request head.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Limits of the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Connections served at once; further clients wait in the listen
    /// backlog until one closes.
    pub max_connections: usize,
    /// Time a client has to send a request's head (line and headers), and
    /// the longest a keep-alive connection may sit idle between requests.
    pub header_timeout: Duration,
    /// Time a client has to send a request's whole body, from the end of
    /// its head.
    pub body_timeout: Duration,
    /// Bytes a request's head (line and headers) may take; larger heads are
    /// answered `431 Request Header Fields Too Large`.
    pub max_header_bytes: usize,
    /// Bytes of request bodies being received and handled at once: each
    /// request holds its announced length (the body limit when it is sent
    /// in chunks) until it is answered; past it requests get 503 before
    /// their body is read.
    pub max_inflight_body_bytes: usize,
    /// The body limit, held by a request that announces no length.
    pub max_body_bytes: usize,
}

/// The default of [`HttpLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// The default of [`HttpLimits::header_timeout`], seconds.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 30;
/// The default of [`HttpLimits::body_timeout`], seconds.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 60;
/// The default of [`HttpLimits::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The default of [`HttpLimits::max_inflight_body_bytes`].
pub const DEFAULT_MAX_INFLIGHT_BODY_BYTES: usize = 512 << 20;
/// Default largest request body accepted, as sent (a full NDJSON request;
/// Firehose batches are at most 4 MiB of data, ~5.4 MiB base64).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Header fields a request may have.
const MAX_HEADERS: usize = 128;
/// hyper's smallest read buffer.
const MIN_READ_BUFFER: usize = 8192;

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECS),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_inflight_body_bytes: DEFAULT_MAX_INFLIGHT_BODY_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes; then stops
/// accepting, lets requests in progress finish and closes idle
/// connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let body_timeout = limits.body_timeout;
    let bodies = Arc::new(BodyBudget::new(
        limits.max_inflight_body_bytes,
        limits.max_body_bytes,
    ));
    let app = app
        .layer(axum::middleware::from_fn(move |request, next| {
            body_deadline(body_timeout, request, next)
        }))
        .layer(axum::middleware::from_fn(move |request, next| {
            Arc::clone(&bodies).admit(request, next)
        }));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closed) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(MAX_HEADERS)
        .max_header_size(limits.max_header_bytes)
        // An unfinished head cannot grow past twice the limit either.
        .max_buf_size(
            limits
                .max_header_bytes
                .saturating_mul(2)
                .max(MIN_READ_BUFFER),
        )
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Wait for a free slot before accepting: over the limit, clients
        // wait in the backlog instead of costing memory here.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: back off
                    // instead of spinning, and keep serving.
                    tracing::warn!(error = %err, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let _ = socket.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let builder = Arc::clone(&builder);
        let mut closed = closed.clone();
        let tls = tls.clone();
        let handshake_timeout = limits.header_timeout;
        connections.spawn(async move {
            let _permit = permit;
            let result = match tls {
                None => serve_io(&builder, socket, service, &mut closed).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => serve_io(&builder, stream, service, &mut closed).await,
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection (plain or TLS) until it ends or the server
/// closes (gracefully: the request in progress is answered).
async fn serve_io<I>(
    builder: &hyper::server::conn::http1::Builder,
    io: I,
    service: TowerToHyperService<Router>,
    closed: &mut watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        _ = closed.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

/// The bytes of request bodies in flight (see
/// [`HttpLimits::max_inflight_body_bytes`]), counted in KiB.
struct BodyBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
    unannounced_kib: u32,
}

impl BodyBudget {
    fn new(max_inflight: usize, max_body: usize) -> Self {
        let total_kib = u32::try_from(max_inflight.div_ceil(1024))
            .unwrap_or(u32::MAX >> 4)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        let unannounced_kib = u32::try_from(max_body.div_ceil(1024)).unwrap_or(u32::MAX);
        Self {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            unannounced_kib,
        }
    }

    /// Holds the request's share of the budget until it is answered, or
    /// answers 503 when the budget is spent.
    async fn admit(self: Arc<Self>, request: Request, next: Next) -> Response {
        let announced = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        // HTTP/1.1: without a length or a chunked transfer there is no body.
        let chunked = request
            .headers()
            .contains_key(axum::http::header::TRANSFER_ENCODING);
        let kib = match announced {
            Some(0) => return next.run(request).await,
            Some(n) => u32::try_from(n.div_ceil(1024)).unwrap_or(u32::MAX),
            None if !chunked => return next.run(request).await,
            None => self.unannounced_kib,
        }
        .clamp(1, self.total_kib);
        let Ok(_permit) = Arc::clone(&self.kib).try_acquire_many_owned(kib) else {
            tracing::debug!(
                kib,
                "request refused: request bodies in flight are at their limit"
            );
            let body = serde_json::json!({
                "__type": "ServiceUnavailableException",
                "message": "too many request bodies are being received at once (--http-max-inflight-body-mb); slow down and retry",
            });
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                [(
                    axum::http::header::CONTENT_TYPE,
                    "application/x-amz-json-1.1",
                )],
                body.to_string(),
            )
                .into_response();
        };
        next.run(request).await
    }
}

/// Puts a deadline on reading the request's body.
async fn body_deadline(limit: Duration, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(limit)),
        limit,
    });
    next.run(Request::from_parts(parts, body)).await
}

/// A request body that fails once its deadline passes.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

/// Why a request body failed: it did not arrive in time.
#[derive(Debug, Clone, Copy)]
struct BodyTimedOut(Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body was not received within {} s (--http-body-timeout-secs)",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimedOut {}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            tracing::info!(
                limit_secs = this.limit.as_secs(),
                "a request body arrived too slowly; the request is refused"
            );
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(this.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
