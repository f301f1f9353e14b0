//! Health gates: after a restart, a batch does not count as done until each
//! of its hosts passes the health check of every service it runs.
//!
//! A gate retries its probe every `interval` until the host passes or the
//! `deadline` (counted from the start of the gate) has passed. Probes:
//! - **remote** (`systemctl is-active UNITS`, or a site `command` check):
//!   run on the host through the fleet transport, healthy when it exits 0;
//! - **http**: `GET http://ADDRESS:PORT/PATH` sent *from the admin host*
//!   (plain HTTP/1.0 over a `TcpStream`, no proxy) with the host's own name
//!   as `Host` (`Host: NAME:PORT`, as SWH's monitoring probes: the nginx in
//!   front of the RPC servers closes the connection, 444, on other names),
//!   healthy on a 2xx answer whose body contains the expected text (the SWH
//!   RPC servers answer `GET /` with their banner: storage an HTML page
//!   titled `Software Heritage storage server`, scheduler `Software Heritage
//!   scheduler RPC server`, objstorage `SWH Objstorage API server`). The
//!   host's address is resolved the way ssh resolves it (`ssh -G`, so
//!   ssh_config `HostName` aliases work). When the admin host has no route
//!   to that address, or the port refuses its connection (services that
//!   listen on 127.0.0.1 only, like swh-web and swh-deposit), the same
//!   request is made on the host itself over ssh
//!   ([`RemoteCommand::HttpGetLocal`]: `curl -i` to `127.0.0.1`, same
//!   `Host`), and its answer is judged here the same way.

use crate::command::RemoteCommand;
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
            let outcomes: Vec<HttpOutcome> = std::thread::scope(|s| {
                let handles: Vec<_> = addrs
                    .iter()
                    .zip(hosts)
                    .map(|(a, h)| {
                        s.spawn(move || http_probe(a, h, *port, path, expect.as_deref(), timeout))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            HttpOutcome::Unreachable("probe thread panicked".into())
                        })
                    })
                    .collect()
            });
            // What the admin host cannot connect to at all (no route) or
            // what refuses its connection (a service listening on
            // 127.0.0.1 only, like swh-web and swh-deposit) is asked on
            // the host itself, over ssh.
            let on_host: Vec<usize> = outcomes
                .iter()
                .enumerate()
                .filter(|(_, o)| matches!(o, HttpOutcome::NoRoute(_) | HttpOutcome::Refused(_)))
                .map(|(i, _)| i)
                .collect();
            let mut results: Vec<ProbeResult> = outcomes
                .iter()
                .map(|o| match o {
                    HttpOutcome::Healthy => ProbeResult::Healthy,
                    HttpOutcome::Unhealthy(m) => ProbeResult::Unhealthy(m.clone()),
                    // The service's port refusing or not answering is
                    // an unhealthy service, not an unreachable host:
                    // only ssh decides that a host is unreachable.
                    HttpOutcome::Unreachable(m) | HttpOutcome::Refused(m) => {
                        ProbeResult::Unhealthy(m.clone())
                    }
                    HttpOutcome::NoRoute(m) => ProbeResult::Unreachable(m.clone()),
                })
                .collect();
            if on_host.is_empty() {
                return results;
            }
            let names: Vec<String> = on_host.iter().map(|&i| hosts[i].clone()).collect();
            let local = local_probe(&names, *port, path, expect.as_deref(), timeout, ctx);
            for (i, r) in on_host.into_iter().zip(local) {
                results[i] = match (r, &outcomes[i]) {
                    // Refused from here and not healthy there either: say both.
                    (ProbeResult::Unhealthy(m), HttpOutcome::Refused(first)) => {
                        ProbeResult::Unhealthy(format!("{first}; on the host: {m}"))
                    }
                    (r, _) => r,
                };
            }
            results
        }
    }
}

/// Time allowed for ssh on top of the probe's own timeout.
const LOCAL_PROBE_SLACK: Duration = Duration::from_secs(10);

/// The HTTP probe made on each of `hosts` itself over the fleet transport
/// ([`RemoteCommand::HttpGetLocal`]: `curl -i` to 127.0.0.1 with the host's
/// name as `Host`); the answer is judged here, as for [`http_probe`].
fn local_probe(
    hosts: &[String],
    port: u16,
    path: &str,
    expect: Option<&str>,
    timeout: Duration,
    ctx: &GateContext<'_>,
) -> Vec<ProbeResult> {
    let options = RunOptions {
        fanout: 1,
        command_timeout: Some(timeout + LOCAL_PROBE_SLACK),
        merge_stderr: false,
        hosts_label: None,
    };
    // One command per host (each has its own Host header), at most
    // `fanout` at a time.
    let mut results = Vec::with_capacity(hosts.len());
    for chunk in hosts.chunks(ctx.fanout.max(1)) {
        results.extend(local_probe_chunk(chunk, port, path, expect, &options, ctx));
    }
    results
}

/// [`local_probe`] on `hosts`, all at once.
fn local_probe_chunk(
    hosts: &[String],
    port: u16,
    path: &str,
    expect: Option<&str>,
    options: &RunOptions,
    ctx: &GateContext<'_>,
) -> Vec<ProbeResult> {
    let timeout = options.command_timeout.unwrap_or_default();
    std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|h| {
                let options = &options;
                s.spawn(move || {
                    if let Err(e) = check_host_header(h) {
                        return ProbeResult::Unhealthy(e);
                    }
                    let command = RemoteCommand::HttpGetLocal {
                        port,
                        path: path.to_owned(),
                        host: h.clone(),
                        timeout_secs: timeout.saturating_sub(LOCAL_PROBE_SLACK).as_secs().max(1),
                    };
                    let line = command.to_shell();
                    let report = match swh_deploy_fleet::run(
                        ctx.transport,
                        std::slice::from_ref(h),
                        &line,
                        options,
                        &mut NoObserver,
                        ctx.cancel,
                    ) {
                        Ok(r) => r,
                        Err(e) => return ProbeResult::Unreachable(e.to_string()),
                    };
                    let Some(r) = report.results.into_iter().next() else {
                        return ProbeResult::Unreachable(format!("`{line}`: no result"));
                    };
                    let err = String::from_utf8_lossy(&r.stderr).trim().to_owned();
                    match r.status {
                        Status::Exited(0) => {
                            let target = format!("GET http://127.0.0.1:{port}{path} on the host");
                            match judge(&r.stdout, &target, expect) {
                                HttpOutcome::Healthy => ProbeResult::Healthy,
                                HttpOutcome::Unhealthy(m)
                                | HttpOutcome::Unreachable(m)
                                | HttpOutcome::Refused(m)
                                | HttpOutcome::NoRoute(m) => ProbeResult::Unhealthy(m),
                            }
                        }
                        Status::Exited(c) => {
                            ProbeResult::Unhealthy(format!("`{line}` exited {c}: {err}"))
                        }
                        Status::Unreachable | Status::LaunchFailed(_) => {
                            ProbeResult::Unreachable(err)
                        }
                        Status::TimedOut => ProbeResult::Unhealthy(format!(
                            "`{line}` timed out after {:?}",
                            options.command_timeout.unwrap_or_default()
                        )),
                        Status::Cancelled { .. } => ProbeResult::Unhealthy("interrupted".into()),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| ProbeResult::Unhealthy("probe thread panicked".into()))
            })
            .collect()
    })
}

/// A host name usable as an HTTP `Host` header: ASCII letters, digits,
/// `.`, `-`, `_` (names from node sets and ssh_config aliases, IPv4
/// addresses); nothing that could end the header line.
fn check_host_header(host: &str) -> Result<(), String> {
    if !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
    {
        Ok(())
    } else {
        Err(format!(
            "host name {host:?} cannot be sent as an HTTP Host header (letters, digits, `.`, `-`, `_`)"
        ))
    }
}

const NO_ROUTE: &str = "no route from the admin host";

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
    /// An answer, but not a healthy one (or no answer at all).
    Unhealthy(String),
    /// The connection timed out or was reset.
    Unreachable(String),
    /// The connection was refused: nothing listens there for the admin
    /// host (the service may listen on 127.0.0.1 only).
    Refused(String),
    /// The address cannot be reached from here at all (no route, unknown
    /// name).
    NoRoute(String),
}

/// `GET http://addr:port/path` with a timeout, sent with `Host: host:port`
/// (`host` is the host's own name, as SWH's monitoring sends it: the nginx
/// in front of the RPC servers answers nothing to other names); healthy on
/// 2xx with `expect` in the body.
pub fn http_probe(
    addr: &str,
    host: &str,
    port: u16,
    path: &str,
    expect: Option<&str>,
    timeout: Duration,
) -> HttpOutcome {
    let target = format!("{addr}:{port}");
    if let Err(e) = check_host_header(host) {
        return HttpOutcome::Unhealthy(e);
    }
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
                Some(libc_codes::ECONNREFUSED) => HttpOutcome::Refused(msg),
                _ => HttpOutcome::Unreachable(msg),
            };
        }
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: swh-deploy\r\nAccept: */*\r\nConnection: close\r\n\r\n"
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
    if body.is_empty() {
        return HttpOutcome::Unhealthy(format!(
            "GET http://{target}{path} (Host: {host}:{port}): connection closed without an answer \
             (an nginx front answers nothing, 444, to a Host it does not serve)"
        ));
    }
    judge(&body, &format!("GET http://{target}{path}"), expect)
}

/// Judges a raw HTTP answer (status line, headers, body) to `what`:
/// healthy on 2xx with `expect` in the body.
fn judge(answer: &[u8], what: &str, expect: Option<&str>) -> HttpOutcome {
    let text = String::from_utf8_lossy(answer);
    // curl -i shows interim answers (100 Continue) first: judge the last.
    let mut text: &str = &text;
    while text.starts_with("HTTP/1.1 100") || text.starts_with("HTTP/1.0 100") {
        match text.split_once("\r\n\r\n") {
            Some((_, rest)) => text = rest,
            None => break,
        }
    }
    let status_line = text.lines().next().unwrap_or("");
    let code: Option<u16> = status_line
        .strip_prefix("HTTP/")
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    let Some(code) = code else {
        return HttpOutcome::Unhealthy(format!(
            "{what}: not an HTTP answer: {:?}",
            truncate(status_line, 80)
        ));
    };
    if !(200..300).contains(&code) {
        return HttpOutcome::Unhealthy(format!("{what}: {}", truncate(status_line, 80)));
    }
    let payload = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    match expect {
        Some(e) if !payload.contains(e) => {
            HttpOutcome::Unhealthy(format!("{what}: {code} but the body lacks {e:?}"))
        }
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
    pub const ECONNREFUSED: i32 = 111;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Answers one connection with `answer`; returns the port and the
    /// request it read.
    fn serve_once(answer: &'static str) -> (u16, std::sync::mpsc::Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap_or(0);
                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = s.write_all(answer.as_bytes());
            }
        });
        (port, rx)
    }

    /// The page `swh.storage.api.server` answers on `GET /`.
    const STORAGE_PAGE: &str = "HTTP/1.0 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html>\n<head><title>Software Heritage storage server</title></head>\n<body>\n<p>You have reached the\n<a href=\"https://www.softwareheritage.org/\">Software Heritage</a>\nstorage server.<br />\n</body>\n</html>";

    #[test]
    fn http_probe_checks_status_and_text() {
        let t = Duration::from_secs(2);
        let storage = Some("Software Heritage storage server");
        let (p, _) = serve_once(STORAGE_PAGE);
        assert_eq!(
            http_probe("127.0.0.1", "storage1", p, "/", storage, t),
            HttpOutcome::Healthy
        );
        // The banner the examples used to expect is not on the real page.
        let (p, _) = serve_once(STORAGE_PAGE);
        assert!(matches!(
            http_probe("127.0.0.1", "storage1", p, "/", Some("SWH Storage API server"), t),
            HttpOutcome::Unhealthy(m) if m.contains("lacks")
        ));
        // objstorage answers plain text.
        let (p, _) = serve_once(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nSWH Objstorage API server",
        );
        assert_eq!(
            http_probe(
                "127.0.0.1",
                "storage1",
                p,
                "/",
                Some("SWH Objstorage API server"),
                t
            ),
            HttpOutcome::Healthy
        );
        let (p, _) =
            serve_once("HTTP/1.0 503 Service Unavailable\r\n\r\nSoftware Heritage storage server");
        assert!(matches!(
            http_probe("127.0.0.1", "storage1", p, "/", storage, t),
            HttpOutcome::Unhealthy(m) if m.contains("503")
        ));
        // Nobody listens: refused at once.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        assert!(matches!(
            http_probe("127.0.0.1", "storage1", port, "/", None, t),
            HttpOutcome::Refused(m) if m.contains("refused")
        ));
    }

    #[test]
    fn http_probe_sends_the_host_name_and_reports_a_closed_connection() {
        let t = Duration::from_secs(2);
        let (p, request) = serve_once(STORAGE_PAGE);
        http_probe(
            "127.0.0.1",
            "storage1.internal.staging.swh.network",
            p,
            "/",
            None,
            t,
        );
        let request = request.recv_timeout(t).unwrap();
        assert!(
            request.contains("\r\nHost: storage1.internal.staging.swh.network:"),
            "{request}"
        );
        // nginx's 444: the connection closes without a byte.
        let (p, _) = serve_once("");
        assert!(matches!(
            http_probe("127.0.0.1", "storage1", p, "/", None, t),
            HttpOutcome::Unhealthy(m) if m.contains("closed without an answer") && m.contains("Host: storage1:")
        ));
        // A name that could end the header line is never sent.
        let (p, _) = serve_once(STORAGE_PAGE);
        assert!(matches!(
            http_probe("127.0.0.1", "h\r\nX-Evil: 1", p, "/", None, t),
            HttpOutcome::Unhealthy(m) if m.contains("cannot be sent as an HTTP Host header")
        ));
    }

    #[test]
    fn judge_reads_curl_i_output() {
        let what = "GET /";
        assert_eq!(
            judge(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX: y\r\n\r\nSearch API",
                what,
                Some("Search API")
            ),
            HttpOutcome::Healthy
        );
        assert!(matches!(
            judge(b"HTTP/1.1 404 Not Found\r\n\r\nSearch API", what, Some("Search API")),
            HttpOutcome::Unhealthy(m) if m.contains("404")
        ));
        assert!(matches!(
            judge(b"<html>Search API</html>", what, None),
            HttpOutcome::Unhealthy(m) if m.contains("not an HTTP answer")
        ));
    }

    #[test]
    fn a_refused_service_port_is_unhealthy_not_an_unreachable_host() {
        // Nobody listens on the port: the service is down, but the host (which
        // ssh decides about) is not unreachable, so it keeps its later steps
        // (versions-after) and is reported unhealthy. The probe made on the
        // host itself (here the local transport) is refused too.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let probe = PlannedProbe::Http {
            port,
            path: "/".into(),
            expect: Some("Software Heritage storage server".into()),
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
            matches!(&results[..], [ProbeResult::Unhealthy(m)] if m.contains("refused") && m.contains("on the host: `curl")),
            "{results:?}"
        );
    }
}
