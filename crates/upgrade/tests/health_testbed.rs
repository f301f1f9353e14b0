//! HTTP health gates against a real test-bed host (systemd-nspawn, the real
//! `python3-swh.storage` test package from the local apt repository): the
//! probe sends the host's own name as `Host` (the host's server, like SWH's
//! nginx front, closes the connection on other names), and a service that
//! listens on 127.0.0.1 only is probed on the host itself over ssh.
//!
//! Needs root (network namespaces, systemd-nspawn): skipped otherwise,
//! a failure under CI (`swh_deploy_testbed::skip`).

use std::time::Duration;
use swh_deploy_fleet::{CancelToken, HostKeyPolicy, SshOptions, SshTransport};
use swh_deploy_testbed::{aptrepo, skip, Options, Testbed};
use swh_deploy_upgrade::health::{
    http_probe, probe_once, GateContext, HttpOutcome, ProbeResult, SshResolver,
};
use swh_deploy_upgrade::plan::PlannedProbe;

const V10: &str = "1.0-1~swh1";

fn http(port: u16, expect: &str) -> PlannedProbe {
    PlannedProbe::Http {
        port,
        path: "/".into(),
        expect: Some(expect.into()),
        timeout_ms: 2000,
    }
}

#[test]
fn http_gates_send_the_host_name_and_probe_local_only_services_on_the_host() {
    if !skip::need_root("network namespaces, systemd-nspawn") {
        return;
    }
    let tb = Testbed::up(&Options {
        hosts: 1,
        systemd: true,
        apt_repo: true,
        apt_versions: vec![V10.into()],
        host_prefix: "hprobe".into(),
        ..Options::default()
    })
    .expect("test bed up");
    let host = tb.hosts()[0].clone();
    let addr = host.addr.to_string();
    let sh = |cmd: &str| -> String {
        let out = tb.ssh_command(&host.name, cmd).output().expect("ssh");
        assert!(
            out.status.success(),
            "{}: `{cmd}`: {}",
            host.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    sh(&format!(
        "apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
         python3-swh.storage={V10} >/dev/null 2>&1 && systemctl is-active gunicorn-swh-storage"
    ));

    let transport = SshTransport::new(SshOptions {
        config_file: Some(tb.ssh_config_path()),
        user: Some("root".into()),
        connect_timeout: Some(Duration::from_secs(5)),
        host_keys: HostKeyPolicy::Strict,
        ..SshOptions::default()
    })
    .unwrap();
    let resolver = SshResolver::new(
        "ssh",
        vec![
            "-F".into(),
            tb.ssh_config_path().to_string_lossy().into_owned(),
        ],
    );
    let cancel = CancelToken::new();
    let ctx = GateContext {
        transport: &transport,
        fanout: 4,
        resolver: &resolver,
        cancel: &cancel,
    };
    let hosts = vec![host.name.clone()];
    let banner = aptrepo::STORAGE_BANNER;
    assert_eq!(banner, "Software Heritage storage server");
    let t = Duration::from_secs(2);
    let port = aptrepo::STORAGE_PORT;

    // The unit may still be starting: wait (bounded) for its first answer.
    let mut result = ProbeResult::Unhealthy("not probed".into());
    for _ in 0..50 {
        result = probe_once(&http(port, banner), &hosts, &ctx).remove(0);
        if result == ProbeResult::Healthy {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        result,
        ProbeResult::Healthy,
        "storage gate on {}",
        host.name
    );

    // The server answers nothing to another name, or to its address (what
    // a probe without the host's name sends): the Host header matters.
    for other in ["localhost", addr.as_str(), "otherhost"] {
        let got = http_probe(&addr, other, port, "/", Some(banner), t);
        assert!(
            matches!(&got, HttpOutcome::Unhealthy(m) if m.contains("closed without an answer")),
            "Host: {other}: {got:?}"
        );
    }
    // Its own name with a domain (an FQDN starting with it) is served.
    let fqdn = format!("{}.internal.staging.swh.network", host.name);
    assert_eq!(
        http_probe(&addr, &fqdn, port, "/", Some(banner), t),
        HttpOutcome::Healthy
    );
    // The old banner of the examples is not what the server answers.
    assert!(matches!(
        probe_once(&http(port, "SWH Storage API server"), &hosts, &ctx).remove(0),
        ProbeResult::Unhealthy(m) if m.contains("lacks")
    ));

    // A service listening on 127.0.0.1 only (like swh-web on 5004): refused
    // from the admin host, healthy when probed on the host over ssh.
    let local_port = 5004;
    sh(&format!(
        "systemd-run --unit=swh-probe-local-web --property=Type=exec \
         busybox httpd -f -p 127.0.0.1:{local_port} -h /usr/share/swh/storage/www"
    ));
    assert!(matches!(
        http_probe(&addr, &host.name, local_port, "/", None, t),
        HttpOutcome::Refused(_)
    ));
    let mut result = ProbeResult::Unhealthy("not probed".into());
    for _ in 0..50 {
        result = probe_once(&http(local_port, banner), &hosts, &ctx).remove(0);
        if result == ProbeResult::Healthy {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        result,
        ProbeResult::Healthy,
        "local-only service on the host"
    );
    // ... and still judged: a missing text fails on the host too.
    let got = probe_once(&http(local_port, "Search API"), &hosts, &ctx).remove(0);
    assert!(
        matches!(&got, ProbeResult::Unhealthy(m) if m.contains("on the host") && m.contains("lacks")),
        "{got:?}"
    );
    // Stopped: refused here and there, the message says both.
    sh("systemctl stop swh-probe-local-web");
    let got = probe_once(&http(local_port, banner), &hosts, &ctx).remove(0);
    assert!(
        matches!(&got, ProbeResult::Unhealthy(m) if m.contains("refused") && m.contains("on the host: `curl")),
        "{got:?}"
    );
}
