//! The Debian version order against the real `dpkg --compare-versions`.

#[test]
fn debian_version_order_matches_dpkg() {
    // Differential test against the real `dpkg --compare-versions`.
    let versions = [
        "0.9",
        "1.0~rc1",
        "1.0",
        "1.0-1",
        "1.0-1~swh1",
        "1.0-1~swh1~bpo12+1",
        "1.0-1+b1",
        "1.0a",
        "1.0.1",
        "1.01",
        "1.1-1~swh1",
        "1.10-1~swh1",
        "1.2-1~swh2",
        "1:0.1",
        "2:0~0",
        "0.29.0-1~swh1",
        "0.29.0-1~swh10",
        "0.29.0-1~swh2",
        "1.0+dfsg-1",
        "1.0~~a",
        "1.0~",
    ];
    let parsed: Vec<swh_deploy_debian::DebianVersion> =
        versions.iter().map(|v| v.parse().unwrap()).collect();
    for (a, va) in versions.iter().zip(&parsed) {
        for (b, vb) in versions.iter().zip(&parsed) {
            let dpkg_lt = std::process::Command::new("dpkg")
                .args(["--compare-versions", a, "lt", b])
                .status()
                .unwrap()
                .success();
            assert_eq!(va < vb, dpkg_lt, "{a} < {b}: dpkg says {dpkg_lt}");
        }
    }
}
