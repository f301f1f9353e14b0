//! Health gates: after a restart, a batch does not count as done until each
//! of its hosts passes the health check of every service it runs.
//!
//! A gate retries its probe every `interval` until the host passes or the
//! `deadline` (counted from the start of the gate) has passed. Probes:
//! - **remote** (`systemctl is-active UNITS`, or a site `command` check):
//!   run on the host through the fleet transport, healthy when it exits 0;
//! - **http**: `GET http://ADDRESS:PORT/PATH` sent *from the admin host*
//!   (plain HTTP/1.0 over a `TcpStream`, no proxy), healthy on a 2xx answer
//!   whose body contains the expected text (the SWH RPC servers answer `GET
//!   /` with `SWH <Name> API server`). The host's address is resolved the
//!   way ssh resolves it (`ssh -G`, so ssh_config `HostName` aliases work);
//!   when the admin host cannot open a connection to that address at all
//!   (no route), the same request is made on the host itself with `curl`.

use crate::command::{quote, RemoteCommand};
use crate::plan::PlannedProbe;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use swh_deploy_fleet::{CancelToken, NoObserver, RunOptions, Status, Transport};

/// The result of one probe on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The host is healthy.
    Healthy,
    /// The host answered but is not healthy (what was seen).
    Unhealthy(String),
    /// The host could not be reached.
    Unreachable(String),
}

/// The outcome of a whole gate on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateResult {
    /// The host.
    pub host: String,
    /// The last probe result.
    pub result: ProbeResult,
    /// How many attempts were made.
    pub attempts: u32,
    /// Time from the start of the gate to the end of the last attempt.
    pub duration: Duration,
}

/// Resolves host names to the address the admin host connects to for HTTP
/// probes.
pub trait AddressResolver: Send + Sync {
    /// The address (name or IP) of `host`.
    fn address(&self, host: &str) -> String;
}

/// Resolves nothing: the host name is the address.
#[derive(Debug, Default, Clone, Copy)]
pub struct SameName;

impl AddressResolver for SameName {
    fn address(&self, host: &str) -> String {
        host.to_owned()
    }
}

/// Resolves host names as ssh does (`ssh [-F CONFIG] [-o OPT]... -G HOST`,
/// the `hostname` line), so ssh_config aliases give the real address.
/// Results are cached.
#[derive(Debug)]
pub struct SshResolver {
    program: PathBuf,
    args: Vec<String>,
    cache: std::sync::Mutex<BTreeMap<String, String>>,
}

impl SshResolver {
    /// A resolver running `program` (usually `ssh`) with `args` before `-G`
    /// (e.g. `["-F", "/path/ssh_config", "-oUser=root"]`).
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> SshResolver {
        SshResolver {
            program: program.into(),
            args,
            cache: std::sync::Mutex::new(BTreeMap::new()),
        }
    }
}

impl AddressResolver for SshResolver {
    fn address(&self, host: &str) -> String {
        if let Some(a) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(host)
        {
            return a.clone();
        }
        let resolved = Command::new(&self.program)
            .args(&self.args)
            .arg("-G")
            .arg("--")
            .arg(host)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                    l.strip_prefix("hostname ")
                        .map(|h| h.trim().to_owned())
                        .filter(|h| !h.is_empty())
                })
            })
            .unwrap_or_else(|| host.to_owned());
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.to_owned(), resolved.clone());
        resolved
    }
}

/// Everything a gate needs besides the probe.
pub struct GateContext<'a> {
    /// How remote probes reach the hosts.
    pub transport: &'a dyn Transport,
    /// Fan-out of remote probes.
    pub fanout: usize,
    /// Address resolution for HTTP probes.
    pub resolver: &'a dyn AddressResolver,
    /// Stops the gate (Ctrl-C): hosts still pending are reported unhealthy
    /// with "interrupted".
    pub cancel: &'a CancelToken,
}

/// Default timeout of one remote probe attempt when the plan gives none.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a gate on `hosts`: the probe is retried every `interval` until each
/// host passes or `deadline` has passed; one result per host, in order.
pub fn run_gate(
    probe: &PlannedProbe,
    hosts: &[String],
    deadline: Duration,
    interval: Duration,
    ctx: &GateContext<'_>,
) -> Vec<GateResult> {
    let start = Instant::now();
    let mut last: BTreeMap<String, (ProbeResult, u32, Duration)> = BTreeMap::new();
    let mut pending: Vec<String> = hosts.to_vec();
    loop {
        let results = probe_once(probe, &pending, ctx);
        let now = start.elapsed();
        let mut still = Vec::new();
        for (host, r) in pending.iter().zip(results) {
            let attempts = last.get(host).map_or(0, |(_, a, _)| *a) + 1;
            if r != ProbeResult::Healthy {
                still.push(host.clone());
            }
            last.insert(host.clone(), (r, attempts, now));
        }
        pending = still;
        if pending.is_empty() || ctx.cancel.is_cancelled() {
            break;
        }
        if start.elapsed() + interval > deadline {
            break;
        }
        sleep_cancellable(interval, ctx.cancel);
        if ctx.cancel.is_cancelled() {
            break;
        }
    }
    hosts
        .iter()
        .map(|h| {
            let (result, attempts, duration) = last.get(h).cloned().unwrap_or((
                ProbeResult::Unhealthy("not probed".into()),
                0,
                start.elapsed(),
            ));
            GateResult {
                host: h.clone(),
                result,
                attempts,
                duration,
            }
        })
        .collect()
}

/// Sleeps `d`, waking early when `cancel` fires.
pub fn sleep_cancellable(d: Duration, cancel: &CancelToken) {
    let end = Instant::now() + d;
    while !cancel.is_cancelled() {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// One attempt of `probe` on every host of `hosts`.
pub fn probe_once(
    probe: &PlannedProbe,
    hosts: &[String],
    ctx: &GateContext<'_>,
) -> Vec<ProbeResult> {
    match probe {
        PlannedProbe::Remote {
            command,
            timeout_ms,
            ..
        } => {
            let timeout = timeout_ms.map_or(DEFAULT_PROBE_TIMEOUT, Duration::from_millis);
            remote_probe(command, hosts, timeout, ctx)
        }
        PlannedProbe::Http {
            port,
            path,
            expect,
            timeout_ms,
        } => {
            let timeout = Duration::from_millis(*timeout_ms);
            let addrs: Vec<String> = hosts.iter().map(|h| ctx.resolver.address(h)).collect();
            let results: Vec<ProbeResult> = std::thread::scope(|s| {
                let handles: Vec<_> = addrs
                    .iter()
                    .map(|a| {
                        s.spawn(move || http_probe(a, *port, path, expect.as_deref(), timeout))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            HttpOutcome::Unreachable("probe thread panicked".into())
                        })
                    })
                    .map(|o| match o {
                        HttpOutcome::Healthy => ProbeResult::Healthy,
                        HttpOutcome::Unhealthy(m) => ProbeResult::Unhealthy(m),
                        // The service's port refusing or not answering is
                        // an unhealthy service, not an unreachable host:
                        // only ssh decides that a host is unreachable.
                        HttpOutcome::Unreachable(m) => ProbeResult::Unhealthy(m),
                        HttpOutcome::NoRoute(m) => ProbeResult::Unreachable(m),
                    })
                    .collect()
            });
            // No route from the admin host: ask the host itself.
            let no_route: Vec<usize> = results
                .iter()
                .enumerate()
                .filter(
                    |(_, r)| matches!(r, ProbeResult::Unreachable(m) if m.starts_with(NO_ROUTE)),
                )
                .map(|(i, _)| i)
                .collect();
            if no_route.is_empty() {
                return results;
            }
            let mut results = results;
            let on_host: Vec<String> = no_route.iter().map(|&i| hosts[i].clone()).collect();
            let command = RemoteCommand::Shell {
                script: curl_script(*port, path, expect.as_deref(), timeout),
            };
            let remote = remote_probe(&command, &on_host, timeout + Duration::from_secs(10), ctx);
            for (i, r) in no_route.into_iter().zip(remote) {
                results[i] = r;
            }
            results
        }
    }
}

const NO_ROUTE: &str = "no route from the admin host";

/// The shell command fetching the page on the host itself.
fn curl_script(port: u16, path: &str, expect: Option<&str>, timeout: Duration) -> String {
    let url = format!("http://127.0.0.1:{port}{path}");
    let fetch = format!(
        "curl -fsS --max-time {} {}",
        timeout.as_secs().max(1),
        quote(&url)
    );
    match expect {
        Some(e) => format!("{fetch} | grep -qF -- {}", quote(e)),
        None => format!("{fetch} >/dev/null"),
    }
}

fn remote_probe(
    command: &RemoteCommand,
    hosts: &[String],
    timeout: Duration,
    ctx: &GateContext<'_>,
) -> Vec<ProbeResult> {
    let options = RunOptions {
        fanout: ctx.fanout,
        command_timeout: Some(timeout),
        merge_stderr: true,
        hosts_label: None,
    };
    let report = match swh_deploy_fleet::run(
        ctx.transport,
        hosts,
        &command.to_shell(),
        &options,
        &mut NoObserver,
        ctx.cancel,
    ) {
        Ok(r) => r,
        Err(e) => {
            return hosts
                .iter()
                .map(|_| ProbeResult::Unreachable(e.to_string()))
                .collect()
        }
    };
    report
        .results
        .into_iter()
        .map(|r| {
            let out = String::from_utf8_lossy(&r.stdout).trim().to_owned();
            match r.status {
                Status::Exited(0) => ProbeResult::Healthy,
                Status::Exited(c) => {
                    ProbeResult::Unhealthy(format!("`{}` exited {c}: {out}", command.to_shell()))
                }
                Status::Unreachable | Status::LaunchFailed(_) => {
                    let err = String::from_utf8_lossy(&r.stderr).trim().to_owned();
                    ProbeResult::Unreachable(if err.is_empty() { out } else { err })
                }
                Status::TimedOut => ProbeResult::Unhealthy(format!(
                    "`{}` timed out after {:?}",
                    command.to_shell(),
                    timeout
                )),
                Status::Cancelled { .. } => ProbeResult::Unhealthy("interrupted".into()),
            }
        })
        .collect()
}

/// The result of one HTTP probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpOutcome {
    /// 2xx with the expected text.
    Healthy,
    /// An answer, but not a healthy one.
    Unhealthy(String),
    /// Connection refused, timed out or reset.
    Unreachable(String),
    /// The address cannot be reached from here at all (no route, unknown
    /// name).
    NoRoute(String),
}

/// `GET http://addr:port/path` with a timeout; healthy on 2xx with
/// `expect` in the body.
pub fn http_probe(
    addr: &str,
    port: u16,
    path: &str,
    expect: Option<&str>,
    timeout: Duration,
) -> HttpOutcome {
    let target = format!("{addr}:{port}");
    let sockaddrs: Vec<SocketAddr> = match (addr, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => return HttpOutcome::NoRoute(format!("{NO_ROUTE}: cannot resolve {addr}: {e}")),
    };
    let Some(sa) = sockaddrs.first() else {
        return HttpOutcome::NoRoute(format!("{NO_ROUTE}: {addr} has no address"));
    };
    let mut stream = match TcpStream::connect_timeout(sa, timeout) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("GET http://{target}{path}: {e}");
            return match e.raw_os_error() {
                Some(libc_codes::ENETUNREACH) | Some(libc_codes::EHOSTUNREACH) => {
                    HttpOutcome::NoRoute(format!("{NO_ROUTE}: {msg}"))
                }
                _ => HttpOutcome::Unreachable(msg),
            };
        }
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {target}\r\nUser-Agent: swh-deploy\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = stream.write_all(request.as_bytes()) {
        return HttpOutcome::Unreachable(format!("GET http://{target}{path}: {e}"));
    }
    let deadline = Instant::now() + timeout;
    let mut body = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if Instant::now() > deadline {
            return HttpOutcome::Unhealthy(format!("GET http://{target}{path}: timed out reading"));
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                body.extend_from_slice(&buf[..n]);
                if body.len() > 4 << 20 {
                    break;
                }
            }
            Err(e) => {
                return HttpOutcome::Unhealthy(format!("GET http://{target}{path}: {e}"));
            }
        }
    }
    let text = String::from_utf8_lossy(&body);
    let status_line = text.lines().next().unwrap_or("");
    let code: Option<u16> = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok());
    let Some(code) = code else {
        return HttpOutcome::Unhealthy(format!(
            "GET http://{target}{path}: not an HTTP answer: {:?}",
            truncate(status_line, 80)
        ));
    };
    if !(200..300).contains(&code) {
        return HttpOutcome::Unhealthy(format!(
            "GET http://{target}{path}: {}",
            truncate(status_line, 80)
        ));
    }
    let payload = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    match expect {
        Some(e) if !payload.contains(e) => HttpOutcome::Unhealthy(format!(
            "GET http://{target}{path}: {code} but the body lacks {e:?}"
        )),
        _ => HttpOutcome::Healthy,
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The errno values told apart above (Linux).
mod libc_codes {
    pub const ENETUNREACH: i32 = 101;
    pub const EHOSTUNREACH: i32 = 113;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(answer: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer.as_bytes());
            }
        });
        port
    }

    #[test]
    fn http_probe_checks_status_and_text() {
        let t = Duration::from_secs(2);
        let p = serve_once("HTTP/1.0 200 OK\r\n\r\n<h1>SWH Storage API server</h1>");
        assert_eq!(
            http_probe("127.0.0.1", p, "/", Some("SWH Storage API server"), t),
            HttpOutcome::Healthy
        );
        let p = serve_once("HTTP/1.0 200 OK\r\n\r\n<h1>It works</h1>");
        assert!(matches!(
            http_probe("127.0.0.1", p, "/", Some("SWH Storage API server"), t),
            HttpOutcome::Unhealthy(m) if m.contains("lacks")
        ));
        let p = serve_once("HTTP/1.0 503 Service Unavailable\r\n\r\nSWH Storage API server");
        assert!(matches!(
            http_probe("127.0.0.1", p, "/", Some("SWH Storage API server"), t),
            HttpOutcome::Unhealthy(m) if m.contains("503")
        ));
        // Nobody listens: refused at once.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        assert!(matches!(
            http_probe("127.0.0.1", port, "/", None, t),
            HttpOutcome::Unreachable(_)
        ));
    }

    #[test]
    fn a_refused_service_port_is_unhealthy_not_an_unreachable_host() {
        // Nobody listens on the port: the service is down, but the host (which
        // ssh decides about) is not unreachable, so it keeps its later steps
        // (versions-after) and is reported unhealthy.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let probe = PlannedProbe::Http {
            port,
            path: "/".into(),
            expect: Some("SWH Storage API server".into()),
            timeout_ms: 500,
        };
        let transport = swh_deploy_fleet::ExecTransport::new();
        let cancel = CancelToken::new();
        let ctx = GateContext {
            transport: &transport,
            fanout: 4,
            resolver: &SameName,
            cancel: &cancel,
        };
        let results = probe_once(&probe, &["127.0.0.1".to_string()], &ctx);
        assert!(
            matches!(&results[..], [ProbeResult::Unhealthy(m)] if m.contains("refused")),
            "{results:?}"
        );
    }

    #[test]
    fn curl_script_quotes() {
        assert_eq!(
            curl_script(
                5002,
                "/",
                Some("SWH Storage API server"),
                Duration::from_secs(2)
            ),
            "curl -fsS --max-time 2 http://127.0.0.1:5002/ | grep -qF -- 'SWH Storage API server'"
        );
    }
}
