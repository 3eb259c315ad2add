//! Serving HTTP on one single-threaded runtime per core ("shards"). One task accepts
//! connections and hands each to the shard with the fewest open connections; a
//! connection then lives on its shard's thread until it closes.
//!
//! Why not tokio's multi-threaded runtime, as `axum::serve` is usually run: on a loaded
//! two-core machine its idle workers are woken to steal work, and a request's wake-ups
//! cross threads. Scoring pays for that twice, because a request queues itself and
//! yields so the batch can fill (see `sluice_shared::scoring::batch`). Measured with
//! `tests/bench/score.sh`, shards serve about 10% more 1-row scoring requests at 16
//! clients, and a quarter more at one client.
//!
//! What it costs: a connection cannot move to an idle core. Handlers therefore keep
//! heavy work off the runtime (`spawn_blocking`), as they must anyway.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::ServiceExt;
use axum::extract::Request;
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tower::Service;

/// How many shards to run by default: one per core but one, at least one. The core
/// left over is the Functions host's: it forwards every request to the handler, so
/// under load it needs about as much CPU per request as the handler's HTTP path.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// What a shard serves: an axum app (a `Router`, or one wrapped as `startup::app` does).
pub trait App:
    Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + 'static
{
}

impl<S> App for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static
{
}

/// Serves `app` on `listener` with `count` shards until `shutdown` completes, then
/// lets every shard finish its in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: impl App,
    count: usize,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    // Cancelled on return, and also if this future is dropped (a test's runtime ending),
    // so the shard threads never outlive the server.
    let stop = CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    let mut shards = Vec::new();
    for i in 0..count.max(1) {
        shards.push(Shard::start(i, app.clone(), local, stop.clone())?);
    }
    tokio::select! {
        () = accept(&listener, &shards) => {}
        () = shutdown => {}
    }
    stop.cancel();
    let mut result = Ok(());
    for shard in shards {
        drop(shard.connections);
        let served = shard
            .finished
            .await
            .unwrap_or_else(|_| Err(io::Error::other("a shard thread panicked")));
        result = result.and(served);
    }
    result
}

async fn accept(listener: &TcpListener, shards: &[Shard]) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let shard = shards
                    .iter()
                    .min_by_key(|s| s.open.load(Ordering::Relaxed))
                    .expect("at least one shard");
                match stream.into_std() {
                    Ok(stream) => {
                        shard.open.fetch_add(1, Ordering::Relaxed);
                        if shard.connections.send((stream, peer)).is_err() {
                            shard.open.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "handing a connection to a shard failed"),
                }
            }
            // Out of file descriptors and the like: wait, as `axum::serve` does.
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

type Handoff = (std::net::TcpStream, SocketAddr);

struct Shard {
    connections: mpsc::UnboundedSender<Handoff>,
    /// Connections open on this shard (the acceptor balances on it).
    open: Arc<AtomicUsize>,
    finished: oneshot::Receiver<io::Result<()>>,
}

impl Shard {
    fn start(
        index: usize,
        app: impl App,
        local: SocketAddr,
        stop: CancellationToken,
    ) -> io::Result<Self> {
        let (connections, incoming) = mpsc::unbounded_channel();
        let (done, finished) = oneshot::channel();
        let open = Arc::new(AtomicUsize::new(0));
        let listener = Incoming {
            incoming,
            local,
            open: open.clone(),
        };
        std::thread::Builder::new()
            .name(format!("sluice-http-{index}"))
            .spawn(move || {
                let served = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            axum::serve(listener, app.into_make_service())
                                .with_graceful_shutdown(stop.cancelled_owned())
                                .await
                        })
                    });
                let _ = done.send(served);
            })?;
        Ok(Self {
            connections,
            open,
            finished,
        })
    }
}

/// A shard's side of the hand-off, as `axum::serve` sees it.
struct Incoming {
    incoming: mpsc::UnboundedReceiver<Handoff>,
    local: SocketAddr,
    open: Arc<AtomicUsize>,
}

impl axum::serve::Listener for Incoming {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            // No more connections come once the server stops; the shard is then
            // finishing its in-flight requests and must not end on its own.
            let Some((stream, peer)) = self.incoming.recv().await else {
                return std::future::pending().await;
            };
            match TcpStream::from_std(stream) {
                Ok(stream) => {
                    let open = self.open.clone();
                    return (Counted { stream, open }, peer);
                }
                Err(e) => {
                    self.open.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "taking over a connection failed");
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// A connection that counts itself out of its shard's open connections when it closes.
struct Counted {
    stream: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Counted {
    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(&mut self.stream)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;

    /// Each connection is served on one shard, the shards share the connections out,
    /// and stopping the server lets it return.
    #[tokio::test]
    async fn connections_are_shared_out_and_served_on_their_shard() {
        let router = Router::new().route(
            "/",
            axum::routing::get(|| async { std::thread::current().name().unwrap_or("").to_owned() }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, 2, async {
            let _ = stopped.await;
        }));
        // One client per connection; each asks twice over its own connection.
        let mut threads = Vec::new();
        let clients: Vec<_> = (0..4).map(|_| reqwest::Client::new()).collect();
        for client in &clients {
            let first = client.get(&url).send().await.unwrap().text().await.unwrap();
            let again = client.get(&url).send().await.unwrap().text().await.unwrap();
            assert_eq!(first, again, "a connection stays on its shard");
            threads.push(first);
        }
        threads.sort();
        assert_eq!(
            threads,
            [
                "sluice-http-0",
                "sluice-http-0",
                "sluice-http-1",
                "sluice-http-1"
            ]
        );
        drop(clients);
        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}
