//! The changelog parser against the real `dpkg-parsechangelog`: on valid
//! variants both read the same top entry (source, version, distribution,
//! urgency, maintainer, date); on malformed ones dpkg complains (error or
//! warning) and the parser refuses with a line and column.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use swh_deploy_debian::testing::CHANGELOG;
use swh_deploy_debian::Changelog;

/// `dpkg-parsechangelog -l FILE`: (fields of the top entry, clean run).
fn dpkg(file: &Path) -> (BTreeMap<String, String>, bool) {
    let out = Command::new("dpkg-parsechangelog")
        .arg("-l")
        .arg(file)
        .output()
        .expect("dpkg-parsechangelog (dpkg-dev) runs");
    let mut fields = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((k, v)) = line.split_once(": ") {
            if !line.starts_with(' ') {
                fields.insert(k.to_string(), v.to_string());
            }
        }
    }
    (fields, out.status.success() && out.stderr.is_empty())
}

fn top_of(header: &str, body: &str, trailer: &str) -> String {
    format!("{header}\n{body}\n{trailer}\n\n{CHANGELOG}")
}

const H: &str = "swh-loader-git (1.1.0-1~swh2) unstable-swh; urgency=medium";
const B: &str = "\n  * Add missing dependency on python3-swh.core\n";
const T: &str = " -- Jane Doe <jane@example.org>  Thu, 26 Nov 2026 15:04:05 +0100";

#[test]
fn same_top_entry_as_dpkg() {
    let valid = [
        CHANGELOG.to_string(),
        top_of(H, B, T),
        top_of(
            "swh-loader-git (2:1.1.0-1~swh2~bpo12+1) bookworm-swh; urgency=low, binary-only=yes",
            B,
            T,
        ),
        top_of(
            "swh-loader-git (1.1.0-1~swh2) unstable-swh experimental; urgency=high",
            B,
            T,
        ),
        top_of(H, "\n \t* blank-and-tab-indented item\n", T),
        top_of(
            H,
            B,
            " -- Stéphane Müller <sm@example.org>  Mon, 2 Nov 2026 09:05:27 -0500",
        ),
        top_of(
            "swh-loader-git (1.1.0-1~swh2) UNRELEASED; urgency=medium",
            B,
            T,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("changelog");
    for text in &valid {
        std::fs::write(&file, text).unwrap();
        let (d, clean) = dpkg(&file);
        assert!(clean, "dpkg-parsechangelog complains about:\n{text}");
        let ours = Changelog::parse(&file, text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
            .top;
        let mine: BTreeMap<String, String> = [
            ("Source", ours.source.clone()),
            ("Version", ours.version.to_string()),
            ("Distribution", ours.distributions.join(" ")),
            (
                "Urgency",
                ours.urgency.split(',').next().unwrap().to_string(),
            ),
            ("Maintainer", ours.maintainer.to_string()),
            ("Date", ours.date.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in &mine {
            assert_eq!(d.get(k), Some(v), "{k} of:\n{text}");
        }
    }
}

#[test]
fn malformed_entries_dpkg_complains_and_we_refuse() {
    let bad = [
        top_of(
            "swh-loader-git (v1.1.0-1~swh2) unstable-swh; urgency=medium",
            B,
            T,
        ),
        top_of(
            H,
            B,
            " -- Jane Doe <jane@example.org> Thu, 26 Nov 2026 15:04:05 +0100",
        ),
        top_of(
            H,
            B,
            " -- Jane Doe <jane@example.org>  Thu, 26 Nov 2026 15:04 +0100",
        ),
        top_of(H, B, " -- Jane Doe  Thu, 26 Nov 2026 15:04:05 +0100"),
        top_of(H, "\n* not indented\n", T),
        format!("{H}\n{B}"),
        format!("\n\n{}", top_of(H, B, T)),
        top_of(H, "", T),
        top_of(H, "\n\t* tab-indented item\n", T),
        top_of(H, "\n * one-space item\n", T),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("changelog");
    for text in &bad {
        std::fs::write(&file, text).unwrap();
        let (_, clean) = dpkg(&file);
        assert!(!clean, "dpkg-parsechangelog accepts:\n{text}");
        let e = Changelog::parse(&file, text).unwrap_err();
        assert!(e.line >= 1 && e.column >= 1, "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("{}:{}:{}: ", file.display(), e.line, e.column)),
            "{e}"
        );
    }
}
