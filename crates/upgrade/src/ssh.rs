//! How the executor reaches the hosts of a site: the system `ssh` with the
//! site's `[ssh]` settings (ssh_config, user, connect timeout, extra
//! options), strict host-key checking, and keepalives so that a host lost
//! mid-command is reported unreachable within seconds.

use crate::health::SshResolver;
use std::ffi::OsString;
use std::time::Duration;
use swh_deploy_fleet::{ConnectionReuse, HostKeyPolicy, SshOptions, SshTransport, TransportError};
use swh_deploy_site::Site;

/// Keepalive used by upgrades: `ServerAliveInterval=5`,
/// `ServerAliveCountMax=3` (a vanished host is declared unreachable after
/// about 15 s, even in the middle of a long `dist-upgrade`).
pub const KEEPALIVE: (u32, u32) = (5, 3);

/// Checks what ssh needs from the site before anything runs: the
/// ssh_config file, when one is given, must exist.
pub fn check(site: &Site) -> Result<(), String> {
    if let Some(c) = &site.ssh.config {
        if !c.is_file() {
            return Err(format!(
                "{}: [ssh] config {} does not exist (is the test bed up?)",
                site.path.display(),
                c.display()
            ));
        }
    }
    Ok(())
}

/// The arguments shared by ssh and `ssh -G` for `site`.
pub fn ssh_args(site: &Site) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(c) = &site.ssh.config {
        args.push("-F".to_owned());
        args.push(c.display().to_string());
    }
    for o in &site.ssh.options {
        args.push(format!("-o{o}"));
    }
    if let Some(u) = &site.ssh.user {
        args.push(format!("-oUser={u}"));
    }
    args
}

/// The fleet transport for the hosts of `site`, with strict host-key
/// checking (see [`transport_with`]).
pub fn transport(site: &Site) -> Result<SshTransport, TransportError> {
    transport_with(site, HostKeyPolicy::Strict)
}

/// The fleet transport for the hosts of `site`. `host_keys` is
/// [`HostKeyPolicy::AcceptNew`] only when the operator asked for it on the
/// command line (`--accept-new-host-keys`): the site file cannot weaken
/// host-key checking (its options are checked when it is loaded, and come
/// after swh-deploy's own on the ssh command line).
pub fn transport_with(
    site: &Site,
    host_keys: HostKeyPolicy,
) -> Result<SshTransport, TransportError> {
    transport_for(site, host_keys.into())
}

/// How a run's ssh connections are made: the host-key policy and the
/// operator's connection-reuse flags (`upgrade --no-reuse`,
/// `--control-persist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect {
    /// Strict unless the operator asked otherwise.
    pub host_keys: HostKeyPolicy,
    /// A fresh connection per command (no ControlMaster), whatever the
    /// site's `[ssh] reuse` says.
    pub no_reuse: bool,
    /// How long an idle master of the run stays up (`ControlPersist`;
    /// default 60 s). The masters are closed at the end of the run anyway.
    pub persist: Option<Duration>,
}

impl From<HostKeyPolicy> for Connect {
    fn from(host_keys: HostKeyPolicy) -> Self {
        Connect {
            host_keys,
            no_reuse: false,
            persist: None,
        }
    }
}

/// The fleet transport for the hosts of `site`, connections made as
/// `connect` says (see [`transport_with`] for the host keys).
pub fn transport_for(site: &Site, connect: Connect) -> Result<SshTransport, TransportError> {
    let Connect {
        host_keys,
        no_reuse,
        persist,
    } = connect;
    let mut extra: Vec<OsString> = Vec::new();
    for o in &site.ssh.options {
        extra.push(format!("-o{o}").into());
    }
    SshTransport::new(SshOptions {
        config_file: site.ssh.config.clone(),
        user: site.ssh.user.clone(),
        extra_args: extra,
        connect_timeout: Some(site.ssh.connect_timeout.max(Duration::from_secs(1))),
        host_keys,
        keepalive: Some(KEEPALIVE),
        // One master connection per host for the whole run (in a private
        // directory, closed when the transport is dropped): the steps of a
        // batch and the health probes do not pay a handshake each. The
        // site's `[ssh] reuse = false` or `--no-reuse` opens a fresh one
        // per command.
        reuse: (site.ssh.reuse && !no_reuse).then(|| ConnectionReuse {
            dir: None,
            persist: persist.unwrap_or(Duration::from_secs(60)),
        }),
        mux: site.ssh.mux,
        ..SshOptions::default()
    })
}

/// The address resolver for HTTP probes of `site` (`ssh -G`).
pub fn resolver(site: &Site) -> SshResolver {
    SshResolver::new("ssh", ssh_args(site))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(ssh: &str) -> Site {
        Site::parse(
            &format!("[site]\nname = \"t\"\n[ssh]\n{ssh}\n"),
            std::path::Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn the_sites_mux_setting_reaches_the_transport() {
        let on = transport_for(&site(""), HostKeyPolicy::Strict.into()).unwrap();
        assert!(on.options().mux);
        assert!(on.options().reuse.is_some());
        let off = transport_for(&site("mux = false"), HostKeyPolicy::Strict.into()).unwrap();
        assert!(!off.options().mux);
        assert!(
            off.options().reuse.is_some(),
            "mux = false keeps the masters"
        );
    }
}
