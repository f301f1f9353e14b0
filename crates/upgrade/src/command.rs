//! Typed remote commands: every command swh-deploy sends to a host during an
//! upgrade, built from validated values ([`UnitName`], [`PackageName`]) and
//! shell-quoted, never pasted together.

use serde::Serialize;
use std::collections::BTreeMap;
use swh_deploy_debian::DebianVersion;
use swh_deploy_site::{PackageName, UnitName};

/// The `apt-get` options of the runbook's non-interactive upgrade: keep
/// locally modified configuration files, take the default for the rest.
pub const APT_CONF_OPTIONS: [&str; 4] = [
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
];

/// The `dpkg-query` format of [`RemoteCommand::InstalledVersions`]: one
/// `PACKAGE VERSION` line per package (`VERSION` empty when not installed).
pub const DPKG_QUERY_FORMAT: &str = "${Package} ${Version}\\n";

/// A command run on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum RemoteCommand {
    /// `apt-get update`.
    AptUpdate,
    /// `env DEBIAN_FRONTEND=noninteractive apt-get -o
    /// Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y
    /// dist-upgrade` (the runbook's nominal upgrade).
    DistUpgrade,
    /// The same, as `--only-upgrade install PKG...`: upgrade only these
    /// packages, and only where they are installed.
    OnlyUpgrade {
        /// The packages.
        packages: Vec<PackageName>,
    },
    /// The same non-interactive `apt-get` as [`RemoteCommand::DistUpgrade`],
    /// as `--allow-downgrades install PKG=VERSION...`: put these exact
    /// versions back (`swh-deploy rollback`).
    InstallVersions {
        /// The packages and the versions to install.
        packages: Vec<(PackageName, DebianVersion)>,
    },
    /// `apt-cache madison PKG...`: the versions the host's apt sources
    /// offer, one `PKG | VERSION | SOURCE` line each.
    AptCacheMadison {
        /// The packages.
        packages: Vec<PackageName>,
    },
    /// `systemctl restart UNIT...`.
    Restart {
        /// The units.
        units: Vec<UnitName>,
    },
    /// `systemctl is-active UNIT...`: exit 0 when every unit is active.
    IsActive {
        /// The units.
        units: Vec<UnitName>,
    },
    /// `puppet agent -t` (exit 0: no change, 2: changes applied; 4 and 6:
    /// failures).
    PuppetAgentTest,
    /// `systemctl stop cron.service`.
    StopCron,
    /// `systemctl start cron.service`.
    StartCron,
    /// `puppet agent --disable "swh-deploy <run id>: <reason>"`.
    PuppetDisable {
        /// The full message given to puppet.
        message: String,
    },
    /// `puppet agent --enable`.
    PuppetEnable,
    /// `dpkg-query -W -f='${Package} ${Version}\n' PKG...`.
    InstalledVersions {
        /// The packages.
        packages: Vec<PackageName>,
    },
    /// `curl -sS -i --max-time SECS -H 'Host: HOST:PORT'
    /// http://127.0.0.1:PORT/PATH`: an HTTP health probe made on the host
    /// itself, for a service the admin host cannot connect to (it listens
    /// on 127.0.0.1 only, like swh-web and swh-deposit). `-i`: the status
    /// line and headers come back with the body, so the admin host judges
    /// the answer exactly as for a probe it makes itself.
    HttpGetLocal {
        /// The service's port.
        port: u16,
        /// The URL path (starts with `/`).
        path: String,
        /// The `Host` header's name: the host's own name, as SWH's
        /// monitoring sends it.
        host: String,
        /// `--max-time`, in seconds (at least 1).
        timeout_secs: u64,
    },
    /// A shell command written by the operator (`--migration`) or the site's
    /// author (a `command` health check), sent as is.
    Shell {
        /// The shell command.
        script: String,
    },
}

impl RemoteCommand {
    /// The command as an argument vector.
    pub fn argv(&self) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let apt_upgrade = || {
            let mut v = s(&["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            v.extend(s(&APT_CONF_OPTIONS));
            v.push("-y".into());
            v
        };
        match self {
            RemoteCommand::AptUpdate => s(&["apt-get", "update"]),
            RemoteCommand::DistUpgrade => {
                let mut v = apt_upgrade();
                v.push("dist-upgrade".into());
                v
            }
            RemoteCommand::OnlyUpgrade { packages } => {
                let mut v = apt_upgrade();
                v.extend(s(&["--only-upgrade", "install"]));
                v.extend(packages.iter().map(|p| p.to_string()));
                v
            }
            RemoteCommand::InstallVersions { packages } => {
                let mut v = apt_upgrade();
                v.extend(s(&["--allow-downgrades", "install"]));
                v.extend(packages.iter().map(|(p, ver)| format!("{p}={ver}")));
                v
            }
            RemoteCommand::AptCacheMadison { packages } => {
                let mut v = s(&["apt-cache", "madison"]);
                v.extend(packages.iter().map(|p| p.to_string()));
                v
            }
            RemoteCommand::Restart { units } => {
                let mut v = s(&["systemctl", "restart"]);
                v.extend(units.iter().map(|u| u.to_string()));
                v
            }
            RemoteCommand::IsActive { units } => {
                let mut v = s(&["systemctl", "is-active"]);
                v.extend(units.iter().map(|u| u.to_string()));
                v
            }
            RemoteCommand::PuppetAgentTest => s(&["puppet", "agent", "-t"]),
            RemoteCommand::StopCron => s(&["systemctl", "stop", "cron.service"]),
            RemoteCommand::StartCron => s(&["systemctl", "start", "cron.service"]),
            RemoteCommand::PuppetDisable { message } => {
                let mut v = s(&["puppet", "agent", "--disable"]);
                v.push(message.clone());
                v
            }
            RemoteCommand::PuppetEnable => s(&["puppet", "agent", "--enable"]),
            RemoteCommand::InstalledVersions { packages } => {
                let mut v = s(&["dpkg-query", "-W"]);
                v.push(format!("-f={DPKG_QUERY_FORMAT}"));
                v.extend(packages.iter().map(|p| p.to_string()));
                v
            }
            RemoteCommand::HttpGetLocal {
                port,
                path,
                host,
                timeout_secs,
            } => vec![
                "curl".into(),
                "-sS".into(),
                "-i".into(),
                "--max-time".into(),
                (*timeout_secs).max(1).to_string(),
                "-H".into(),
                format!("Host: {host}:{port}"),
                format!("http://127.0.0.1:{port}{path}"),
            ],
            RemoteCommand::Shell { script } => s(&["sh", "-c", script]),
        }
    }

    /// The command line sent over ssh (interpreted by the remote shell):
    /// the quoted arguments, or the script itself for [`RemoteCommand::Shell`].
    pub fn to_shell(&self) -> String {
        match self {
            RemoteCommand::Shell { script } => script.clone(),
            RemoteCommand::InstalledVersions { packages } => {
                // Quote the format as the runbook writes it: -f='...'.
                let mut line = format!("dpkg-query -W -f='{DPKG_QUERY_FORMAT}'");
                for p in packages {
                    line.push(' ');
                    line.push_str(p.as_str());
                }
                line
            }
            other => quote_words(&other.argv()),
        }
    }

    /// The exit codes that mean success.
    pub fn success_codes(&self) -> &'static [i32] {
        match self {
            RemoteCommand::PuppetAgentTest => &[0, 2],
            // dpkg-query exits 1 when one of the packages is not installed;
            // the others are still listed.
            RemoteCommand::InstalledVersions { .. } => &[0, 1],
            _ => &[0],
        }
    }

    /// True when `rc` is a success for this command.
    pub fn succeeded(&self, rc: i32) -> bool {
        self.success_codes().contains(&rc)
    }
}

/// Quotes each word for a POSIX shell and joins them with spaces.
pub fn quote_words(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// Quotes one word for a POSIX shell, as Python's `shlex.quote`: words made
/// only of `A-Za-z0-9_@%+=:,./-` stay as they are, anything else is put in
/// single quotes (a `'` inside becomes `'"'"'`). NUL bytes, which no valid
/// value holds, are dropped.
pub fn quote(word: &str) -> String {
    let word: String = word.chars().filter(|c| *c != '\0').collect();
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word;
    }
    format!("'{}'", word.replace('\'', "'\"'\"'"))
}

/// The compensations the upgrade records, by the action name stored in the
/// journal, and the command that performs each.
pub const COMPENSATIONS: [(&str, RemoteCommand); 2] = [
    ("start-cron", RemoteCommand::StartCron),
    ("enable-puppet", RemoteCommand::PuppetEnable),
];

/// The command performing compensation `action` (`start-cron`,
/// `enable-puppet`), for `swh-deploy recover`.
pub fn compensation_command(action: &str) -> Option<RemoteCommand> {
    COMPENSATIONS
        .iter()
        .find(|(name, _)| *name == action)
        .map(|(_, c)| c.clone())
}

/// Parses the output of [`RemoteCommand::AptCacheMadison`]: the (package,
/// version) pairs the host's apt sources offer. Lines that are not
/// `PKG | VERSION | SOURCE` with valid values are skipped.
pub fn parse_madison(stdout: &str) -> Vec<(PackageName, DebianVersion)> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        if fields.len() < 3 {
            continue;
        }
        let (Ok(p), Ok(v)) = (
            fields[0].parse::<PackageName>(),
            fields[1].parse::<DebianVersion>(),
        ) else {
            continue;
        };
        if !out.contains(&(p.clone(), v.clone())) {
            out.push((p, v));
        }
    }
    out
}

/// Parses the output of [`RemoteCommand::InstalledVersions`]: package ->
/// installed version (`None` when known to dpkg but not installed). Lines
/// that are not `PACKAGE VERSION` with valid values are skipped.
pub fn parse_installed_versions(stdout: &str) -> BTreeMap<PackageName, Option<DebianVersion>> {
    let mut out = BTreeMap::new();
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() || words.len() > 2 {
            continue;
        }
        let Ok(package) = words[0].parse::<PackageName>() else {
            continue;
        };
        // A version that does not parse is treated as absent.
        let version = words.get(1).and_then(|v| v.parse::<DebianVersion>().ok());
        out.insert(package, version);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(names: &[&str]) -> Vec<UnitName> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn packages(names: &[&str]) -> Vec<PackageName> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn command_lines_are_the_runbooks() {
        let cases = [
            (RemoteCommand::AptUpdate, "apt-get update"),
            (
                RemoteCommand::DistUpgrade,
                "env DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y dist-upgrade",
            ),
            (
                RemoteCommand::OnlyUpgrade {
                    packages: packages(&["python3-swh.storage", "python3-swh.loader.git"]),
                },
                "env DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y --only-upgrade install python3-swh.storage python3-swh.loader.git",
            ),
            (
                RemoteCommand::Restart {
                    units: units(&["gunicorn-swh-storage", "swh-worker@loader_git"]),
                },
                "systemctl restart gunicorn-swh-storage swh-worker@loader_git",
            ),
            (
                RemoteCommand::IsActive {
                    units: units(&["swh-worker@lister"]),
                },
                "systemctl is-active swh-worker@lister",
            ),
            (RemoteCommand::PuppetAgentTest, "puppet agent -t"),
            (RemoteCommand::StopCron, "systemctl stop cron.service"),
            (RemoteCommand::StartCron, "systemctl start cron.service"),
            (
                RemoteCommand::PuppetDisable {
                    message: "swh-deploy 42: long-standing upgrade of storage".into(),
                },
                "puppet agent --disable 'swh-deploy 42: long-standing upgrade of storage'",
            ),
            (RemoteCommand::PuppetEnable, "puppet agent --enable"),
            (
                RemoteCommand::HttpGetLocal {
                    port: 5004,
                    path: "/".into(),
                    host: "moma.internal.softwareheritage.org".into(),
                    timeout_secs: 0,
                },
                "curl -sS -i --max-time 1 -H 'Host: moma.internal.softwareheritage.org:5004' http://127.0.0.1:5004/",
            ),
            (
                RemoteCommand::InstalledVersions {
                    packages: packages(&["python3-swh.storage"]),
                },
                "dpkg-query -W -f='${Package} ${Version}\\n' python3-swh.storage",
            ),
        ];
        for (command, line) in cases {
            assert_eq!(command.to_shell(), line);
        }
    }

    #[test]
    fn quoting_survives_a_real_shell() {
        // The quoted line, run by sh, must give back exactly the argv.
        let hostile = RemoteCommand::PuppetDisable {
            message: "swh-deploy 7: it's $(reboot) `id` \"x\"; rm -rf / \\ ${HOME}".into(),
        };
        for command in [
            hostile,
            RemoteCommand::InstalledVersions {
                packages: packages(&["python3-swh.storage", "g++"]),
            },
            RemoteCommand::DistUpgrade,
            RemoteCommand::HttpGetLocal {
                port: 5006,
                path: "/a b/$(id)".into(),
                host: "h'; reboot".into(),
                timeout_secs: 3,
            },
        ] {
            let line = format!("printf '%s\\n' {}", command.to_shell());
            let out = std::process::Command::new("sh")
                .args(["-c", &line])
                .output()
                .unwrap();
            assert!(out.status.success());
            let got: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect();
            assert_eq!(got, command.argv(), "{line}");
        }
    }

    #[test]
    fn quote_round_trips_odd_words() {
        let words: Vec<String> = ["", "a'b", "~root", "*", "$HOME", "a b", "-n", "é", "x\ny"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(quote(""), "''");
        assert_eq!(
            quote("Dpkg::Options::=--force-confdef"),
            "Dpkg::Options::=--force-confdef"
        );
        assert_eq!(quote("a'b"), "'a'\"'\"'b'");
        let line = format!(
            "for w in {}; do printf '<%s>' \"$w\"; done",
            quote_words(&words)
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &line])
            .output()
            .unwrap();
        let expected: String = words.iter().map(|w| format!("<{w}>")).collect();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    }

    #[test]
    fn puppet_detailed_exit_codes() {
        let p = RemoteCommand::PuppetAgentTest;
        assert!(p.succeeded(0));
        assert!(p.succeeded(2));
        assert!(!p.succeeded(4));
        assert!(!p.succeeded(6));
        assert!(!p.succeeded(1));
        assert!(RemoteCommand::AptUpdate.succeeded(0));
        assert!(!RemoteCommand::AptUpdate.succeeded(100));
        let q = RemoteCommand::InstalledVersions { packages: vec![] };
        assert!(q.succeeded(1));
    }

    #[test]
    fn compensations_map_to_commands() {
        assert_eq!(
            compensation_command("start-cron"),
            Some(RemoteCommand::StartCron)
        );
        assert_eq!(
            compensation_command("enable-puppet"),
            Some(RemoteCommand::PuppetEnable)
        );
        assert_eq!(compensation_command("reboot"), None);
    }

    #[test]
    fn installed_versions_are_parsed() {
        let out = "python3-swh.storage 1.1-1~swh1\npython3-swh.loader.git \nnot a valid line\n";
        let v = parse_installed_versions(out);
        let storage: PackageName = "python3-swh.storage".parse().unwrap();
        let git: PackageName = "python3-swh.loader.git".parse().unwrap();
        assert_eq!(v[&storage].as_ref().unwrap().as_str(), "1.1-1~swh1");
        assert_eq!(v[&git], None);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn rollback_installs_exact_versions_and_reads_madison() {
        let c = RemoteCommand::InstallVersions {
            packages: vec![(
                "python3-swh.storage".parse().unwrap(),
                "1.0-1~swh1".parse().unwrap(),
            )],
        };
        assert_eq!(
            c.to_shell(),
            "env DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y --allow-downgrades install 'python3-swh.storage=1.0-1~swh1'"
        );
        let m = RemoteCommand::AptCacheMadison {
            packages: packages(&["python3-swh.storage"]),
        };
        assert_eq!(m.to_shell(), "apt-cache madison python3-swh.storage");
        let out = "python3-swh.storage | 1.1-1~swh1 | http://10.213.0.1/debian ./ Packages\n\
                   python3-swh.storage | 1.0-1~swh1 | http://10.213.0.1/debian ./ Packages\n\
                   N: junk\n";
        let v: Vec<String> = parse_madison(out)
            .iter()
            .map(|(p, v)| format!("{p}={v}"))
            .collect();
        assert_eq!(
            v,
            [
                "python3-swh.storage=1.1-1~swh1",
                "python3-swh.storage=1.0-1~swh1"
            ]
        );
    }

    #[test]
    fn json_names_the_command() {
        let j = serde_json::to_value(RemoteCommand::Restart {
            units: units(&["gunicorn-swh-storage"]),
        })
        .unwrap();
        assert_eq!(
            j,
            serde_json::json!({"command": "restart", "units": ["gunicorn-swh-storage"]})
        );
    }
}
