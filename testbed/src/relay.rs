//! Latency mode: a small TCP relay that delays every byte, put in front of
//! the hosts' sshd.
//!
//! This kernel has no `netem` (`tc qdisc ... netem delay`), so the test bed
//! emulates a network path's latency in user space: the relay accepts a
//! connection on a host's address (port [`RELAY_PORT`]), opens its own to
//! the same address on the upstream port (sshd's 22), and copies bytes both
//! ways, each chunk written `delay` (plus a random `0..=jitter`) after it
//! was read, in order. A request and its answer thus take `2 x delay` more:
//! the round trip time grows by twice the one-way delay. The TCP handshake
//! with the relay is completed by the kernel at once; to charge the
//! connection its round trip as a real path would, the relay waits one
//! round trip (`2 x delay`) before opening the upstream connection.
//!
//! What it is not: no bandwidth limit, no loss, no reordering, no delay of
//! TCP's own acknowledgements (the relay reads as fast as the sender
//! writes, so a sender's window never fills because of the delay). It
//! models the latency of a path, which is what ssh's handshakes and
//! request/response exchanges pay, not its throughput.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The port the relay listens on, on each host's address, in latency mode
/// (the test bed's ssh_config then says `Port 2222`).
pub const RELAY_PORT: u16 = 2222;

/// A one-way delay and its jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Added to every byte in each direction (the round trip grows by
    /// twice this).
    pub delay: Duration,
    /// A random extra delay, uniform in `0..=jitter`, drawn per chunk
    /// (order is kept: a chunk never overtakes an earlier one).
    pub jitter: Duration,
}

/// What one relay process serves.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Addresses to listen on (port 0: any free port).
    pub listen: Vec<SocketAddr>,
    /// Each connection is relayed to its listening address's IP on this
    /// port.
    pub upstream_port: u16,
    /// The delay applied both ways.
    pub latency: Latency,
}

/// Binds every listening address; returns the bound addresses and the
/// listeners to hand to [`serve`].
pub async fn bind(cfg: &RelayConfig) -> io::Result<(Vec<SocketAddr>, Vec<TcpListener>)> {
    let mut addrs = Vec::with_capacity(cfg.listen.len());
    let mut listeners = Vec::with_capacity(cfg.listen.len());
    for a in &cfg.listen {
        let l = TcpListener::bind(a).await?;
        addrs.push(l.local_addr()?);
        listeners.push(l);
    }
    Ok((addrs, listeners))
}

/// Relays every connection accepted on `listeners` until the process ends.
pub async fn serve(listeners: Vec<TcpListener>, upstream_port: u16, latency: Latency) {
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(async move {
            let Ok(local) = l.local_addr() else { return };
            let upstream = SocketAddr::new(local.ip(), upstream_port);
            loop {
                match l.accept().await {
                    Ok((client, _)) => {
                        tokio::spawn(relay(client, upstream, latency));
                    }
                    // Out of file descriptors and the like: wait, go on.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Runs a relay (the `testbed relay` process): binds, says so on standard
/// output (`listening`), then serves forever.
pub fn run(cfg: &RelayConfig) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (_, listeners) = bind(cfg).await?;
        println!("listening");
        serve(listeners, cfg.upstream_port, cfg.latency).await;
        Ok(())
    })
}

async fn relay(client: TcpStream, upstream: SocketAddr, latency: Latency) {
    // The round trip of the TCP handshake a real path would have cost.
    tokio::time::sleep(latency.delay * 2).await;
    let Ok(server) = TcpStream::connect(upstream).await else {
        return; // the client sees its connection closed, as on a refusal
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let seed = u64::from(upstream.port()) ^ seed_now();
    tokio::join!(
        pipe(cr, sw, latency, seed),
        pipe(
            sr,
            cw,
            latency,
            seed.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15
        ),
    );
}

/// Copies `r` to `w`, each chunk (and the end of the stream) delivered
/// `delay + jitter` after it was read.
async fn pipe<R, W>(mut r: R, mut w: W, latency: Latency, seed: u64)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Option<Vec<u8>>)>();
    let reader = tokio::spawn(async move {
        let mut rng = XorShift(seed | 1);
        let mut last = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).await.unwrap_or(0);
            let at = (Instant::now() + latency.delay + rng.upto(latency.jitter)).max(last);
            last = at;
            let chunk = (n > 0).then(|| buf[..n].to_vec());
            if tx.send((at, chunk)).is_err() || n == 0 {
                return;
            }
        }
    });
    while let Some((at, chunk)) = rx.recv().await {
        tokio::time::sleep_until(at).await;
        match chunk {
            Some(data) => {
                if w.write_all(&data).await.is_err() {
                    break;
                }
            }
            None => {
                let _ = w.shutdown().await;
                break;
            }
        }
    }
    reader.abort();
}

fn seed_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A small xorshift generator: jitter needs spread, not quality.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A duration uniform in `0..=max`.
    fn upto(&mut self, max: Duration) -> Duration {
        let n = max.as_nanos() as u64;
        if n == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next() % (n + 1))
    }
}

/// Parses a delay as the test bed's options take it: `10ms`, `1.5ms`,
/// `0.2s`, `0` (milliseconds when no unit is given).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1e-3)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid delay {text:?}: expected e.g. 10ms, 0.5ms, 0.2s"))?;
    if !v.is_finite() || v < 0.0 || v * scale > 10.0 {
        return Err(format!("invalid delay {text:?}: between 0 and 10 s"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant as StdInstant;

    /// The median time of a one-byte request and its one-byte answer over
    /// `addr`, to an echo server (and the time of the first one, from the
    /// connect).
    async fn round_trips(addr: SocketAddr) -> (Duration, Duration) {
        let t0 = StdInstant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut b = [0u8; 1];
        s.write_all(b"x").await.unwrap();
        s.read_exact(&mut b).await.unwrap();
        let first = t0.elapsed();
        let mut v = Vec::new();
        for _ in 0..7 {
            let t = StdInstant::now();
            s.write_all(b"x").await.unwrap();
            s.read_exact(&mut b).await.unwrap();
            v.push(t.elapsed());
        }
        v.sort();
        (v[v.len() / 2], first)
    }

    #[test]
    fn the_round_trip_grows_by_twice_the_delay() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let echo_addr = echo.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let (mut c, _) = echo.accept().await.unwrap();
                    tokio::spawn(async move {
                        let _ = c.set_nodelay(true);
                        let (mut r, mut w) = c.split();
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
            });
            let delay = Duration::from_millis(25);
            let mut relayed = Vec::new();
            for latency in [
                Latency::default(),
                Latency {
                    delay,
                    jitter: Duration::ZERO,
                },
                Latency {
                    delay,
                    jitter: Duration::from_millis(10),
                },
            ] {
                let cfg = RelayConfig {
                    listen: vec!["127.0.0.1:0".parse().unwrap()],
                    upstream_port: echo_addr.port(),
                    latency,
                };
                let (addrs, listeners) = bind(&cfg).await.unwrap();
                tokio::spawn(serve(listeners, cfg.upstream_port, latency));
                relayed.push(round_trips(addrs[0]).await);
            }
            let (direct, _) = round_trips(echo_addr).await;
            let (none, _) = relayed[0];
            let (slow, first) = relayed[1];
            let (jittery, _) = relayed[2];
            // No delay: about the direct round trip (a busy machine
            // allowed for).
            assert!(none < direct + Duration::from_millis(20), "{none:?}");
            // 2 x 25 ms more, not less, and not much more.
            let grown = slow.saturating_sub(direct);
            assert!(grown >= delay * 2, "{grown:?}");
            assert!(grown < delay * 2 + Duration::from_millis(30), "{grown:?}");
            // The first exchange pays the handshake's round trip too.
            assert!(first >= delay * 4, "{first:?}");
            // Jitter adds 0..=10 ms each way.
            assert!(jittery >= delay * 2, "{jittery:?}");
            assert!(
                jittery < delay * 2 + Duration::from_millis(20 + 30),
                "{jittery:?}"
            );
        });
    }

    #[test]
    fn bytes_and_the_end_of_stream_go_through_in_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = sink.local_addr().unwrap().port();
            let latency = Latency {
                delay: Duration::from_millis(2),
                jitter: Duration::from_millis(3),
            };
            let cfg = RelayConfig {
                listen: vec!["127.0.0.1:0".parse().unwrap()],
                upstream_port: port,
                latency,
            };
            let (addrs, listeners) = bind(&cfg).await.unwrap();
            tokio::spawn(serve(listeners, port, latency));
            let sent: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
            let expected = sent.clone();
            let writer = tokio::spawn(async move {
                let mut c = TcpStream::connect(addrs[0]).await.unwrap();
                for chunk in sent.chunks(1000) {
                    c.write_all(chunk).await.unwrap();
                }
                c.shutdown().await.unwrap();
            });
            let (mut s, _) = sink.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            writer.await.unwrap();
            assert_eq!(got, expected);
        });
    }

    #[test]
    fn delays_parse_with_or_without_a_unit() {
        assert_eq!(parse_duration("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_millis(5));
        assert_eq!(parse_duration("0.5ms").unwrap(), Duration::from_micros(500));
        assert_eq!(parse_duration("0.2s").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("-1ms").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("11s").is_err());
    }
}
