//! The connection guard: every byte between a Postgres client and the
//! protocol handler passes through it, so the limits hold whatever the
//! client sends.
//!
//! - **Message size**: a frontend message announcing more than
//!   [`PgLimits::max_message_bytes`] ends the connection with `FATAL 54000`
//!   before any of it is buffered (the protocol library itself would take
//!   up to 1 GiB).
//! - **Startup**: a client that has not finished its startup and
//!   authentication (the server's first ReadyForQuery) within
//!   [`PgLimits::startup_timeout`] is disconnected with `FATAL 08006`.
//! - **Idle**: a connection with no traffic either way for
//!   [`PgLimits::idle_timeout`] is closed with `FATAL 57P05` (a running
//!   statement that sends nothing for that long counts as idle too, so keep
//!   the idle timeout above the query timeout).
//! - **Disconnects**: when the client goes away, the handler (and the
//!   statement it runs) is dropped at once.
//!
//! An `SSLRequest` first on a connection is answered `S` and the
//! connection continues over TLS when the server has a certificate
//! ([`crate::PgConfig::tls`]); otherwise, and for `GSSENCRequest`, the
//! answer is `N`. A `CancelRequest` is carried out here (the protocol
//! library does not act on one that reaches it through the guard).

use std::time::Duration;

use pgwire::api::ConnectionManager;
use pgwire::error::ErrorInfo;
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::startup::SecretKey;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

use crate::PgLimits;

/// Bytes read from either side at a time.
const CHUNK: usize = 16 * 1024;
/// The longest untyped message (startup, SSLRequest, CancelRequest).
const MAX_STARTUP_BYTES: usize = 10_000;
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// The client's side of a connection: plain TCP or TLS over it.
pub(crate) trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientIo for T {}
type Client = Box<dyn ClientIo>;

/// Why the guard ended a connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The client closed its end (or the socket failed).
    ClientGone,
    /// The handler closed its end.
    ServerDone,
    /// The connection carried a cancel request, which was carried out.
    Cancel,
    /// A limit was hit; the client was told which.
    Limit(&'static str),
}

/// Follows the message boundaries of one direction of the protocol.
#[derive(Debug, Default)]
struct Frames {
    header: [u8; 5],
    have: usize,
    remaining: usize,
}

impl Frames {
    /// Feeds `data`; `on_message(type, length)` is called at each message
    /// header and may refuse the message.
    fn feed<E>(
        &mut self,
        mut data: &[u8],
        mut on_message: impl FnMut(u8, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                let length = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as usize;
                self.have = 0;
                self.remaining = length.saturating_sub(4);
                on_message(self.header[0], length)?;
            }
        }
        Ok(())
    }
}

/// Sends `FATAL <code> <message>` to the client.
async fn fatal(client: &mut Client, code: &str, message: String) {
    tracing::info!(code, %message, "postgres connection closed by a limit");
    let info = ErrorInfo::new("FATAL".to_string(), code.to_string(), message);
    let mut buf = bytes::BytesMut::new();
    if PgWireBackendMessage::ErrorResponse(info.into())
        .encode(&mut buf)
        .is_ok()
    {
        let _ = client.write_all(&buf).await;
    }
    let _ = client.shutdown().await;
}

/// Reads the untyped startup-phase messages: answers SSL/GSS requests,
/// forwards the startup (or cancel) message.
async fn startup(
    client: &mut Client,
    server: &mut UnixStream,
    connections: &ConnectionManager,
) -> Result<(), Ended> {
    loop {
        let mut len = [0u8; 4];
        client
            .read_exact(&mut len)
            .await
            .map_err(|_| Ended::ClientGone)?;
        let length = u32::from_be_bytes(len) as usize;
        if !(8..=MAX_STARTUP_BYTES).contains(&length) {
            fatal(
                client,
                "08P01",
                format!(
                    "invalid startup packet length {length} (at most {MAX_STARTUP_BYTES} bytes)"
                ),
            )
            .await;
            return Err(Ended::Limit("startup packet length"));
        }
        let mut body = vec![0u8; length - 4];
        client
            .read_exact(&mut body)
            .await
            .map_err(|_| Ended::ClientGone)?;
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if code == CANCEL_REQUEST {
            // Answered here: a cancel request's connection carries nothing
            // else, and it is closed without a reply.
            if body.len() >= 8 {
                let pid = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                let key = SecretKey::Bytes(bytes::Bytes::copy_from_slice(&body[8..]));
                let found = connections.cancel(pid, &key).await;
                tracing::debug!(found, "postgres cancel request");
            }
            let _ = client.shutdown().await;
            return Err(Ended::Cancel);
        }
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            client
                .write_all(b"N")
                .await
                .map_err(|_| Ended::ClientGone)?;
            continue;
        }
        server
            .write_all(&len)
            .await
            .and(server.write_all(&body).await)
            .map_err(|_| Ended::ServerDone)?;
        return Ok(());
    }
}

/// When the connection opens with an `SSLRequest` and the server has a
/// certificate: answers `S` and runs the TLS handshake. Otherwise the
/// connection is left as it is (a later `SSLRequest` is answered `N`).
async fn negotiate_tls(
    client: TcpStream,
    tls: Option<&pgwire::tokio::TlsAcceptor>,
) -> Result<Client, Ended> {
    let Some(acceptor) = tls else {
        return Ok(Box::new(client));
    };
    let mut first = [0u8; 8];
    loop {
        let n = client
            .peek(&mut first)
            .await
            .map_err(|_| Ended::ClientGone)?;
        if n == 0 {
            return Err(Ended::ClientGone);
        }
        if n == 8 || first[..n] != [0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f][..n] {
            break;
        }
        // Part of what may be an SSLRequest: wait for the rest.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let request = u32::from_be_bytes([first[4], first[5], first[6], first[7]]);
    if first[..4] != [0, 0, 0, 8] || request != SSL_REQUEST {
        return Ok(Box::new(client));
    }
    let mut client = client;
    client
        .read_exact(&mut first)
        .await
        .map_err(|_| Ended::ClientGone)?;
    client
        .write_all(b"S")
        .await
        .map_err(|_| Ended::ClientGone)?;
    match acceptor.accept(client).await {
        Ok(stream) => Ok(Box::new(stream)),
        Err(e) => {
            tracing::debug!(error = %e, "postgres TLS handshake failed");
            Err(Ended::ClientGone)
        }
    }
}

/// Tells a client that did not finish its startup in time, and ends.
async fn startup_timed_out(client: &mut Client, limits: &PgLimits) -> Ended {
    fatal(
        client,
        "08006",
        format!(
            "the startup did not finish within {} s (--pg-startup-timeout-secs)",
            limits.startup_timeout.as_secs()
        ),
    )
    .await;
    Ended::Limit("startup timeout")
}

/// Carries bytes both ways between `client` and the handler's `server`
/// end until either side closes or a limit is hit.
pub(crate) async fn pump(
    client: TcpStream,
    mut server: UnixStream,
    limits: &PgLimits,
    connections: &ConnectionManager,
    tls: Option<&pgwire::tokio::TlsAcceptor>,
) -> Ended {
    let startup_deadline = Instant::now() + limits.startup_timeout;
    let mut client =
        match tokio::time::timeout_at(startup_deadline, negotiate_tls(client, tls)).await {
            Ok(Ok(c)) => c,
            Ok(Err(ended)) => return ended,
            Err(_) => return Ended::Limit("startup timeout"),
        };
    let first = tokio::time::timeout_at(
        startup_deadline,
        startup(&mut client, &mut server, connections),
    )
    .await;
    match first {
        Ok(Ok(())) => {}
        Ok(Err(ended)) => return ended,
        Err(_) => return startup_timed_out(&mut client, limits).await,
    }
    let mut from_client = Frames::default();
    let mut from_server = Frames::default();
    let mut ready = false;
    let mut client_buf = vec![0u8; CHUNK];
    let mut server_buf = vec![0u8; CHUNK];
    // No idle timeout: a deadline a century away.
    let idle = limits
        .idle_timeout
        .unwrap_or(Duration::from_secs(100 * 365 * 86_400));
    let mut last_traffic = Instant::now();
    loop {
        let deadline = if ready {
            last_traffic + idle
        } else {
            startup_deadline
        };
        tokio::select! {
            read = client.read(&mut client_buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return Ended::ClientGone,
                    Ok(n) => n,
                };
                last_traffic = Instant::now();
                let max = limits.max_message_bytes;
                let checked = from_client.feed(&client_buf[..n], |_, length| {
                    if length > max { Err(length) } else { Ok(()) }
                });
                if let Err(length) = checked {
                    fatal(
                        &mut client,
                        "54000",
                        format!(
                            "a message of {length} bytes is larger than the {max} bytes a message may take (--pg-max-message-bytes)"
                        ),
                    )
                    .await;
                    return Ended::Limit("message size");
                }
                if server.write_all(&client_buf[..n]).await.is_err() {
                    return Ended::ServerDone;
                }
            }
            read = server.read(&mut server_buf) => {
                let n = match read {
                    Ok(0) | Err(_) => {
                        let _ = client.shutdown().await;
                        return Ended::ServerDone;
                    }
                    Ok(n) => n,
                };
                last_traffic = Instant::now();
                let _ = from_server.feed::<()>(&server_buf[..n], |kind, _| {
                    if kind == b'Z' {
                        ready = true;
                    }
                    Ok(())
                });
                if client.write_all(&server_buf[..n]).await.is_err() {
                    return Ended::ClientGone;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                if ready {
                    fatal(
                        &mut client,
                        "57P05",
                        format!(
                            "terminating connection due to idle timeout ({} s, --pg-idle-timeout-secs)",
                            idle.as_secs()
                        ),
                    )
                    .await;
                    return Ended::Limit("idle timeout");
                }
                return startup_timed_out(&mut client, limits).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_followed_across_reads() {
        let mut frames = Frames::default();
        let mut seen = Vec::new();
        let mut message = vec![b'Q', 0, 0, 0, 9];
        message.extend_from_slice(b"abcd\0");
        message.extend_from_slice(&[b'S', 0, 0, 0, 4]);
        for chunk in message.chunks(3) {
            frames
                .feed::<()>(chunk, |kind, length| {
                    seen.push((kind, length));
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(seen, vec![(b'Q', 9), (b'S', 4)]);
        let err = Frames::default().feed(&[b'Q', 0x40, 0, 0, 0], |_, length| {
            if length > 1024 { Err(length) } else { Ok(()) }
        });
        assert_eq!(err, Err(0x4000_0000));
    }
}
