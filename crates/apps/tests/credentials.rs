//! Registry credentials come from the docker config (or containers'
//! auth.json) and credential helpers, in that order of files, never from
//! arguments. Runs in its own process (it sets environment variables).

use base64::Engine;
use std::os::unix::fs::PermissionsExt;
use swh_deploy_apps::registry::credentials;

#[test]
fn credentials_from_config_files_and_helpers() {
    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with:colons");
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths": {{"https://registry.example:5000": {{"auth": "{auth}"}}}},
                 "credHelpers": {{"helped.example": "swhtest"}}}}"#
        ),
    )
    .unwrap();
    // A credential helper on PATH answering the docker protocol.
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-swhtest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread host\n[ \"$1\" = get ] || exit 3\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"bob\",\"Secret\":\"tok-%s\"}' \"$host\" \"$host\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", path);
    std::env::remove_var("REGISTRY_AUTH_FILE");
    std::env::remove_var("XDG_RUNTIME_DIR");
    std::env::set_var("DOCKER_CONFIG", &docker);

    assert_eq!(
        credentials("registry.example:5000").unwrap(),
        Some(("alice".into(), "s3cret:with:colons".into()))
    );
    assert_eq!(
        credentials("helped.example").unwrap(),
        Some(("bob".into(), "tok-helped.example".into()))
    );
    assert_eq!(credentials("unknown.example").unwrap(), None);

    // containers' auth.json ($REGISTRY_AUTH_FILE) is read first.
    let authfile = tmp.path().join("auth.json");
    let auth2 = base64::engine::general_purpose::STANDARD.encode("carol:pw");
    std::fs::write(
        &authfile,
        format!(r#"{{"auths": {{"registry.example:5000": {{"auth": "{auth2}"}}}}}}"#),
    )
    .unwrap();
    std::env::set_var("REGISTRY_AUTH_FILE", &authfile);
    assert_eq!(
        credentials("registry.example:5000").unwrap(),
        Some(("carol".into(), "pw".into()))
    );

    // A broken config file is an error naming the file, not a silent skip,
    // and the error does not echo secrets.
    std::fs::write(&authfile, "{not json").unwrap();
    let e = credentials("registry.example:5000")
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth.json"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
}
