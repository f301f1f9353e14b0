//! One test per syntax and output rule of ClusterShell's node sets. The
//! expected texts are what ClusterShell 1.10.1's `nodeset` prints for the
//! same input (the differential tests check thousands more).

mod common;

use swh_deploy_nodeset::{
    all_nodes, group_names, node_set_groups, regroup, ClusterShellGroups, NodeSet,
};

fn check(expr: &str, fold: &str, expand: &str) {
    let ns = NodeSet::parse(expr).unwrap();
    assert_eq!(ns.to_string(), fold, "fold of {expr:?}");
    let names: Vec<String> = ns.iter().collect();
    assert_eq!(names.join(" "), expand, "expansion of {expr:?}");
    assert_eq!(ns.len(), names.len(), "count of {expr:?}");
}

#[test]
fn ranges_lists_and_steps() {
    check("node[1-5]", "node[1-5]", "node1 node2 node3 node4 node5");
    check("node[1,6-7]", "node[1,6-7]", "node1 node6 node7");
    check(
        "node[0-10/2]",
        "node[0,2,4,6,8,10]",
        "node0 node2 node4 node6 node8 node10",
    );
    check("n[ 1 - 3 ]", "n[1-3]", "n1 n2 n3");
    check(" n1 , n2 ", "n[1-2]", "n1 n2");
}

#[test]
fn padding_is_kept_and_mixed_padding_sorts_by_length() {
    check("node[001-003]", "node[001-003]", "node001 node002 node003");
    check(
        "node[9-11,08-10]",
        "node[9,08-11]",
        "node9 node08 node09 node10 node11",
    );
    check("node[1,01,001]", "node[1,01,001]", "node1 node01 node001");
}

#[test]
fn digits_around_brackets_are_folded_in() {
    let ns = NodeSet::parse("node-00[00-99]").unwrap();
    assert_eq!(ns.to_string(), "node-[0000-0099]");
    assert_eq!(ns.len(), 100);
    check("n[1-2]0", "n[10,20]", "n10 n20");
    check("n1[0-2]", "n[10-12]", "n10 n11 n12");
}

#[test]
fn several_dimensions() {
    let ns = NodeSet::parse("da[2-5]c[1-2]p[0-1]").unwrap();
    assert_eq!(ns.to_string(), "da[2-5]c[1-2]p[0-1]");
    assert_eq!(ns.len(), 16);
    assert_eq!(
        ns.iter().take(3).collect::<Vec<_>>(),
        ["da2c1p0", "da2c1p1", "da2c2p0"]
    );
    check(
        "x[1-2]y[1-2],x3y1",
        "x[1-2]y[1-2],x3y1",
        "x1y1 x1y2 x2y1 x2y2 x3y1",
    );
    check("x1y1,x2y2", "x1y1,x2y2", "x1y1 x2y2");
}

#[test]
fn names_without_digits_or_with_several_numbers() {
    check("saam", "saam", "saam");
    check("a1b2c3", "a1b2c3", "a1b2c3");
    check(
        "b,a,a10,a9,a-1,A1",
        "A1,a,a[9-10],a-1,b",
        "A1 a a9 a10 a-1 b",
    );
}

#[test]
fn operators_are_evaluated_left_to_right() {
    check("a,b!a", "b", "b");
    check("n[1-5]&n[3-9]", "n[3-5]", "n3 n4 n5");
    check("n[1-5]^n[3-9]", "n[1-2,6-9]", "n1 n2 n6 n7 n8 n9");
    check("n[1-3],n[2-5]!n3&n[1-4]", "n[1-2,4]", "n1 n2 n4");
}

#[test]
fn fold_axis_expands_other_axes() {
    let mut ns = NodeSet::parse("x[1-2]y[1-3]").unwrap();
    ns.set_fold_axis(Some(vec![0]));
    assert_eq!(ns.to_string(), "x[1-2]y1,x[1-2]y2,x[1-2]y3");
    ns.set_fold_axis(Some(vec![-1]));
    assert_eq!(ns.to_string(), "x1y[1-3],x2y[1-3]");
}

#[test]
fn groups_from_yaml_and_upcall_sources() {
    let dir = tempfile::tempdir().unwrap();
    let conf = common::write_group_config(dir.path());
    let g = ClusterShellGroups::load(&[conf]).unwrap();
    let p = |e: &str| NodeSet::parse_with(e, &g).unwrap().to_string();
    assert_eq!(p("@compute"), "node[1-16]");
    assert_eq!(p("@site:login"), "login[1-2]");
    assert_eq!(p("@mixed"), "node[1-8]");
    assert_eq!(p("@cross"), "db[01-04],saam");
    assert_eq!(p("@spaced"), "node[1-3]");
    assert_eq!(p("@empty"), "");
    assert_eq!(p("@rack[1-2]"), "node[1-16]");
    assert_eq!(p("@other:*"), "db[01-04],web[1-3]");
    assert_eq!(p("@*"), "gpu[1-4],login[1-2],node[1-16],saam");
    assert_eq!(p("@@other"), "db,dc[1-2],web");
    assert_eq!(p("@up:gb"), "gpu[1-4],node[3-6,9-12]");
    assert_eq!(p("@up:*"), "node[1-8]");
    assert_eq!(p("node1*"), "node[1,10-16]");
    assert_eq!(p("gpu?!gpu2"), "gpu[1,3-4]");
    let err = NodeSet::parse_with("@nosuch:x", &g).unwrap_err();
    assert_eq!(err.to_string(), "Unknown group source: \"nosuch\"");

    let ns = NodeSet::parse("node[1-16],gpu[1-4]").unwrap();
    assert_eq!(regroup(&ns, &g, None, false).unwrap(), "@compute,gpu[1-4]");
    let ns = NodeSet::parse("node[1-4]").unwrap();
    assert_eq!(regroup(&ns, &g, Some("up"), false).unwrap(), "@up:ga");
    let groups = node_set_groups(&NodeSet::parse("node[9-10]").unwrap(), &g, None, false).unwrap();
    let keys: Vec<&String> = groups.keys().collect();
    assert_eq!(keys, ["@all", "@compute", "@gpu", "@rack2"]);
    assert_eq!(groups["@gpu"].1.to_string(), "node[9-10]");
    assert_eq!(
        group_names(&g, Some("other")).unwrap(),
        ["db", "dc1", "dc2", "web"]
    );
    assert_eq!(all_nodes(&g, Some("up")).unwrap().to_string(), "node[1-8]");
}

#[test]
fn failing_upcall_is_a_parse_error_naming_the_command() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("groups.conf"),
        "[Main]\ndefault: broken\n[broken]\nmap: exit 3\n",
    )
    .unwrap();
    let g = ClusterShellGroups::load_dir(dir.path()).unwrap();
    let err = NodeSet::parse_with("@g", &g).unwrap_err();
    assert_eq!(err.to_string(), "Parse error: exit 3: \"@g\"");
}
