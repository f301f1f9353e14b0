//! Format-preserving edits of the values file and Chart.yaml, over the real
//! swh-charts file and hand-written ones.

use std::path::Path;
use swh_deploy_charts::values::{bump_app_version, bump_values, edit_values, read_apps, Bump};
use swh_deploy_charts::Error;

const REAL: &str = include_str!("data/values-swh-application-versions.yaml");
const REAL_CHART: &str = include_str!("data/Chart.yaml");

fn bump(app: &str, v: &str) -> Bump {
    Bump {
        app: app.into(),
        version: v.into(),
        add_image: None,
    }
}

/// Lines that differ between two texts of the same line count.
fn diff_lines(a: &str, b: &str) -> Vec<(usize, String, String)> {
    let la: Vec<&str> = a.split_inclusive('\n').collect();
    let lb: Vec<&str> = b.split_inclusive('\n').collect();
    assert_eq!(la.len(), lb.len(), "line count changed");
    la.iter()
        .zip(lb.iter())
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| (i + 1, x.to_string(), y.to_string()))
        .collect()
}

#[test]
fn every_key_of_the_real_file_is_a_one_line_diff() {
    let f = Path::new("values-swh-application-versions.yaml");
    let apps = read_apps(REAL).unwrap();
    let keys: Vec<&String> = apps.keys().filter(|k| apps[*k].version.is_some()).collect();
    assert!(keys.len() >= 30, "expected the real file's ~33 apps");
    for key in keys {
        // Name the app as a swh-apps directory would (dashes).
        let app = key.replace('_', "-");
        let (out, changes) = bump_values(f, REAL, &[bump(&app, "20991231.12")]).unwrap();
        assert_eq!(changes.len(), 1, "{key}");
        assert_eq!(changes[0].from.as_deref(), apps[key].version.as_deref());
        let d = diff_lines(REAL, &out);
        assert_eq!(d.len(), 1, "{key}: {d:?}");
        assert_eq!(d[0].2, format!("{key}_image_version: '20991231.12'\n"));
        let after = read_apps(&out).unwrap();
        assert_eq!(after[key].version.as_deref(), Some("20991231.12"));
        for (k, v) in &apps {
            if k != key {
                assert_eq!(&after[k], v, "{k} changed while bumping {key}");
            }
        }
    }
}

#[test]
fn several_apps_at_once_and_image_names() {
    let f = Path::new("v.yaml");
    let (out, changes) = bump_values(
        f,
        REAL,
        &[
            bump("swh-loader-git", "20250201.3"),
            bump("lister", "20250201.1"),
        ],
    )
    .unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].key, "swh_lister");
    let d = diff_lines(REAL, &out);
    assert_eq!(d.len(), 2);
    assert!(d[0].2.starts_with("swh_lister_image_version: '20250201.1'"));
    assert!(d[1]
        .2
        .starts_with("swh_loader_git_image_version: '20250201.3'"));
}

const HAND: &str = "# Image versions, edited by hand and by swh-deploy\n\
\n\
# the loaders\n\
swh_loader_git_image: registry.example/loader_git   # no quotes\n\
swh_loader_git_image_version: \"20250117.9\"   # double quoted, kept comment\n\
\n\
swh_lister_image: 'registry.example/lister'\n\
swh_lister_image_version: 20250113.1\n\
swh_web_image: \"registry.example/web\"\n\
swh_web_image_version:    '20250123.1'\n\
other_setting: {a: 1, b: [x, y]}  # flow mapping, untouched\n\
# trailing comment\n";

#[test]
fn hand_written_file_keeps_comments_quoting_and_spacing() {
    let f = Path::new("hand.yaml");
    let (out, _) = bump_values(f, HAND, &[bump("swh-loader-git", "20250117.10")]).unwrap();
    let d = diff_lines(HAND, &out);
    assert_eq!(
        d,
        vec![(
            5,
            "swh_loader_git_image_version: \"20250117.9\"   # double quoted, kept comment\n".into(),
            "swh_loader_git_image_version: '20250117.10'   # double quoted, kept comment\n".into()
        )]
    );
    // Unquoted before: quoted after, so that .10 is never the float .1.
    let (out, _) = bump_values(f, HAND, &[bump("swh-lister", "20250113.10")]).unwrap();
    let d = diff_lines(HAND, &out);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].2, "swh_lister_image_version: '20250113.10'\n");
    assert_eq!(
        read_apps(&out).unwrap()["swh_lister"].version.as_deref(),
        Some("20250113.10")
    );
    // Extra spaces after the colon are kept.
    let (out, _) = bump_values(f, HAND, &[bump("swh_web", "20250124.1")]).unwrap();
    let d = diff_lines(HAND, &out);
    assert_eq!(d[0].2, "swh_web_image_version:    '20250124.1'\n");
}

#[test]
fn crlf_and_missing_final_newline_are_kept() {
    let f = Path::new("crlf.yaml");
    let text = "a_image: r/a\r\na_image_version: '20250101.1'\r\nb_image_version: '20250101.2'";
    let (out, _) = bump_values(f, text, &[bump("a", "20250102.1")]).unwrap();
    assert_eq!(
        out,
        "a_image: r/a\r\na_image_version: '20250102.1'\r\nb_image_version: '20250101.2'"
    );
    let (out, _) = bump_values(f, text, &[bump("b", "20250102.9")]).unwrap();
    assert_eq!(
        out,
        "a_image: r/a\r\na_image_version: '20250101.1'\r\nb_image_version: '20250102.9'"
    );
}

#[test]
fn same_version_is_a_no_op() {
    let f = Path::new("v.yaml");
    let (out, changes) = bump_values(f, REAL, &[bump("swh-storage", "20250113.1")]).unwrap();
    assert!(changes.is_empty());
    assert_eq!(out, REAL);
}

fn refused(text: &str, b: Bump) -> String {
    match bump_values(Path::new("f.yaml"), text, &[b]) {
        Ok((out, _)) => panic!("accepted, gave:\n{out}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn refusals_name_the_problem_and_position() {
    let e = refused(REAL, bump("swh-nonexistent", "20250101.1"));
    assert!(e.contains("swh-nonexistent") && e.contains("--add"), "{e}");

    let dup = "a_image_version: '1'\nb: 2\na_image_version: '3'\n";
    let e = refused(dup, bump("a", "20250101.1"));
    assert!(
        e.starts_with("f.yaml:3:1: duplicate key `a_image_version`"),
        "{e}"
    );
    assert!(e.contains("1:1"), "{e}");

    let anchor = "a_image_version: &v '20250101.1'\nb_image_version: *v\n";
    let e = refused(anchor, bump("a", "20250102.1"));
    assert!(e.starts_with("f.yaml:1:") && e.contains("anchor"), "{e}");
    let e = refused(anchor, bump("b", "20250102.1"));
    assert!(e.starts_with("f.yaml:2:18:") && e.contains("alias"), "{e}");

    let bad = "a_image_version: '20250101.1\nb: 1\n";
    let e = refused(bad, bump("a", "20250102.1"));
    assert!(
        e.starts_with("f.yaml:") && e.contains("not valid YAML"),
        "{e}"
    );

    let multi = "a_image_version:\n  '20250101.1'\n";
    let e = refused(multi, bump("a", "20250102.1"));
    assert!(e.contains("not on the line of its key"), "{e}");

    let tagged = "a_image_version: !!str 20250101.1\n";
    let e = refused(tagged, bump("a", "20250102.1"));
    assert!(e.contains("tag"), "{e}");

    let list = "- a\n- b\n";
    let e = refused(list, bump("a", "20250102.1"));
    assert!(e.contains("not a mapping"), "{e}");

    let e = refused(REAL, bump("swh-lister", "2025'01"));
    assert!(e.contains("invalid image version"), "{e}");
}

fn add(app: &str, v: &str, image: &str) -> Bump {
    Bump {
        app: app.into(),
        version: v.into(),
        add_image: Some(image.into()),
    }
}

#[test]
fn add_inserts_at_the_sorted_position_of_the_real_file() {
    let f = Path::new("v.yaml");
    let image = "container-registry.softwareheritage.org/swh/infra/swh-apps/coarnotify";
    let e = edit_values(f, REAL, &[add("swh-coarnotify", "20250301.1", image)]).unwrap();
    assert_eq!(e.changes[0].from, None);
    // Between swh_alter and swh_counters, the rest byte-identical.
    let anchor = "swh_counters_image: ";
    let at = REAL.find(anchor).unwrap();
    let expected = format!(
        "{}swh_coarnotify_image: {image}\nswh_coarnotify_image_version: '20250301.1'\n{}",
        &REAL[..at],
        &REAL[at..]
    );
    assert_eq!(e.text, expected);
    let line = REAL[..at].lines().count() + 1;
    assert_eq!(
        e.notes,
        vec![
            format!("added `swh_coarnotify_image` at line {line}, its sorted position (the file's keys are in alphabetical order)"),
            format!("added `swh_coarnotify_image_version` at line {}, its sorted position (the file's keys are in alphabetical order)", line + 1),
        ]
    );
    // Before every key, and after every key (the end of the file).
    let e = edit_values(f, REAL, &[add("aaa", "20250301.1", "r/aaa")]).unwrap();
    assert_eq!(
        e.text,
        format!("aaa_image: r/aaa\naaa_image_version: '20250301.1'\n{REAL}")
    );
    let e = edit_values(f, REAL, &[add("zzz", "20250301.1", "r/zzz")]).unwrap();
    assert_eq!(
        e.text,
        format!("{REAL}zzz_image: r/zzz\nzzz_image_version: '20250301.1'\n")
    );
    // Two apps at once, one of them between swh_graph and swh_graphql
    // (byte order: `_` sorts before letters), plus a bump.
    let e = edit_values(
        f,
        REAL,
        &[
            add("swh-graph-x", "20250301.2", "r/gx"),
            bump("swh-web", "20250301.3"),
            add("swh-zz", "20250301.4", "r/zz"),
        ],
    )
    .unwrap();
    let keys: Vec<String> = real_keys(&e.text);
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    let gx = keys.iter().position(|k| k == "swh_graph_x_image").unwrap();
    assert_eq!(keys[gx - 1], "swh_graph_image_version");
    assert_eq!(keys[gx + 2], "swh_graphql_image");
    assert_eq!(
        read_apps(&e.text).unwrap()["swh_web"].version.as_deref(),
        Some("20250301.3")
    );
    // Removing the added lines and the one bumped line gives the original.
    let back: String = e
        .text
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("swh_graph_x_") && !l.starts_with("swh_zz_"))
        .map(|l| {
            if l.starts_with("swh_web_image_version:") {
                "swh_web_image_version: '20250123.1'\n"
            } else {
                l
            }
        })
        .collect();
    assert_eq!(back, REAL);
}

fn real_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_string()))
        .collect()
}

#[test]
fn add_appends_to_an_unsorted_file_and_says_why() {
    let f = Path::new("hand.yaml");
    let e = edit_values(f, HAND, &[add("swh-aaa", "20250301.1", "r/aaa")]).unwrap();
    assert_eq!(
        e.text,
        format!("{HAND}swh_aaa_image: r/aaa\nswh_aaa_image_version: '20250301.1'\n")
    );
    assert_eq!(e.notes.len(), 1);
    assert_eq!(
        e.notes[0],
        "appended `swh_aaa_image`, `swh_aaa_image_version` at the end of the file: its keys are not in alphabetical order (`swh_lister_image` at line 7 comes after `swh_loader_git_image_version` at line 5)"
    );
}

#[test]
fn real_hand_additions_are_replayed_byte_for_byte() {
    // Commits of SoftwareHeritage/swh-charts that added one app by hand to
    // the sorted file (values-swh-application-versions.yaml before/after).
    for (commit, app, version, image) in [
        (
            "12d8a4bc",
            "swh-utils",
            "20231211.1",
            "container-registry.softwareheritage.org/swh/infra/swh-apps/utils",
        ),
        (
            "92ce7e3b",
            "swh-counters",
            "20231205.1",
            "container-registry.softwareheritage.org/swh/infra/swh-apps/counters",
        ),
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/replay");
        let before = std::fs::read_to_string(dir.join(format!("{commit}.before.yaml"))).unwrap();
        let after = std::fs::read_to_string(dir.join(format!("{commit}.after.yaml"))).unwrap();
        let e = edit_values(Path::new(commit), &before, &[add(app, version, image)]).unwrap();
        assert_eq!(e.text, after, "{commit}");
        assert!(e.notes[0].contains("sorted position"), "{commit}");
    }
}

const BOM: &str = "\u{feff}";

#[test]
fn a_byte_order_mark_at_the_start_is_kept_and_the_first_key_edited() {
    let f = Path::new("bom.yaml");
    let text = format!("{BOM}{REAL}");
    // The first key, just after the mark.
    let (out, changes) = bump_values(f, &text, &[bump("cassandra-checks", "20250301.1")]).unwrap();
    assert_eq!(changes[0].from.as_deref(), Some("20250113.1"));
    assert_eq!(
        out,
        format!(
            "{BOM}{}",
            REAL.replacen(
                "cassandra_checks_image_version: '20250113.1'",
                "cassandra_checks_image_version: '20250301.1'",
                1
            )
        )
    );
    assert_eq!(
        read_apps(&text).unwrap()["cassandra_checks"].image,
        read_apps(REAL).unwrap()["cassandra_checks"].image
    );
    // A first key that is itself edited.
    let (out, _) = bump_values(
        f,
        &format!("{BOM}a_image_version: '1'\n"),
        &[bump("a", "2")],
    )
    .unwrap();
    assert_eq!(out, format!("{BOM}a_image_version: '2'\n"));
    // Added at the sorted position before the first key: after the mark.
    let e = edit_values(f, &text, &[add("aaa", "20250301.1", "r/aaa")]).unwrap();
    assert_eq!(
        e.text,
        format!("{BOM}aaa_image: r/aaa\naaa_image_version: '20250301.1'\n{REAL}")
    );
    // Chart.yaml with a mark.
    let (out, n) =
        bump_app_version(Path::new("Chart.yaml"), &format!("{BOM}{REAL_CHART}")).unwrap();
    assert_eq!(n, 424);
    assert_eq!(
        out,
        format!(
            "{BOM}{}",
            REAL_CHART.replace("appVersion: 423", "appVersion: 424")
        )
    );
}

#[test]
fn a_byte_order_mark_elsewhere_is_refused_by_name_and_position() {
    let text = format!("a_image_version: '1'\n{BOM}b_image_version: '2'\n");
    let e = refused(&text, bump("b", "3"));
    assert!(
        e.starts_with("f.yaml:2:1: a UTF-8 byte-order mark (U+FEFF)"),
        "{e}"
    );
}

#[test]
fn app_version_bumps_by_one_keeping_format() {
    let f = Path::new("Chart.yaml");
    let (out, n) = bump_app_version(f, REAL_CHART).unwrap();
    assert_eq!(n, 424);
    let d = diff_lines(REAL_CHART, &out);
    assert_eq!(
        d,
        vec![(2, "appVersion: 423\n".into(), "appVersion: 424\n".into())]
    );
    let (out, n) = bump_app_version(f, "# c\nappVersion: \"9\" # q\nname: swh\n").unwrap();
    assert_eq!(
        (out.as_str(), n),
        ("# c\nappVersion: \"10\" # q\nname: swh\n", 10)
    );
    let e = bump_app_version(f, "appVersion: 1.2.3\n").unwrap_err();
    assert!(matches!(e, Error::Yaml { .. }) && e.to_string().contains("not an integer"));
}

#[test]
fn non_ascii_keys_and_comments() {
    let f = Path::new("u.yaml");
    let text = "# café, naïve: ünïcode comment\nbébé_image_version: '20250101.1' # déjà\nb_image_version: '1'\n";
    let (out, _) = bump_values(f, text, &[bump("bébé", "20250102.3")]).unwrap();
    assert_eq!(
        out,
        "# café, naïve: ünïcode comment\nbébé_image_version: '20250102.3' # déjà\nb_image_version: '1'\n"
    );
}

#[test]
fn add_keeps_crlf_and_a_missing_final_newline() {
    let f = Path::new("crlf.yaml");
    let text = "a_image: r/a\r\na_image_version: '1'\r\nc_image: r/c\r\nc_image_version: '3'";
    let e = edit_values(f, text, &[add("b", "2", "r/b")]).unwrap();
    assert_eq!(
        e.text,
        "a_image: r/a\r\na_image_version: '1'\r\nb_image: r/b\r\nb_image_version: '2'\r\nc_image: r/c\r\nc_image_version: '3'"
    );
    let e = edit_values(f, text, &[add("d", "4", "r/d")]).unwrap();
    assert_eq!(
        e.text,
        format!("{text}\r\nd_image: r/d\r\nd_image_version: '4'\r\n")
    );
    // A header comment stays first; a new first key goes after it.
    let text = "# versions\na_image_version: '1'\n";
    let e = edit_values(f, text, &[add("0", "2", "r/0")]).unwrap();
    assert_eq!(
        e.text,
        "# versions\n0_image: r/0\n0_image_version: '2'\na_image_version: '1'\n"
    );
}
