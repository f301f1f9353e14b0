//! TLS for the test bed's HTTPS stand-ins, with `rcgen`: a private CA made
//! at start (kept in memory, never written with its key) and a server
//! certificate it signs for `127.0.0.1` and `localhost`. Clients trust the
//! CA's PEM (e.g. the kubeconfig's `certificate-authority-data`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Days a certificate of [`server_tls`] stays valid (it is made afresh at
/// every start).
const VALID_DAYS: i64 = 7;

/// Common name of the private CA; `who` names the server (e.g.
/// `kube-standin`).
fn ca_name(who: &str) -> String {
    format!("swh-deploy test bed {who} CA")
}

/// Validity from yesterday (clock skew) to [`VALID_DAYS`] from today.
fn validity(params: &mut CertificateParams) {
    let day = |offset: i64| {
        let d = (chrono::Utc::now() + chrono::Duration::days(offset)).date_naive();
        use chrono::Datelike as _;
        // Month and day always fit in a u8.
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    params.not_before = day(-1);
    params.not_after = day(VALID_DAYS);
}

/// Makes a private CA and a server certificate for `127.0.0.1` and
/// `localhost` (ECDSA P-256) signed by it; writes the CA's certificate (no
/// key) to `dir/ca.pem` for humans; returns the rustls server
/// configuration and the CA's PEM.
pub(crate) fn server_tls(dir: &Path, who: &str) -> Result<(Arc<rustls::ServerConfig>, String)> {
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, ca_name(who));
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca);
    let ca_key = KeyPair::generate().context("generating the test bed CA's key")?;
    let ca_pem = ca
        .self_signed(&ca_key)
        .context("signing the test bed CA's certificate")?
        .pem();
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec!["localhost".to_string()])
        .context("server certificate names")?;
    server
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut server);
    let key = KeyPair::generate().context("generating the server's key")?;
    let cert = server
        .signed_by(&key, &issuer)
        .context("signing the server certificate")?;

    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    swh_deploy_util::atomic_write(&dir.join("ca.pem"), ca_pem.as_bytes())
        .with_context(|| format!("writing {}", dir.join("ca.pem").display()))?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key)
        .context("TLS server certificate")?;
    Ok((Arc::new(config), ca_pem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::ServerName;
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};

    /// A TLS handshake with a client trusting only the CA's PEM, naming
    /// the server `name`; returns what the server echoed.
    fn handshake(config: Arc<rustls::ServerConfig>, ca_pem: &str, name: &str) -> Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = std::thread::spawn(move || -> Result<()> {
            let (mut tcp, _) = listener.accept()?;
            let mut conn = rustls::ServerConnection::new(config)?;
            let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf)?;
            tls.write_all(&buf)?;
            tls.flush()?;
            Ok(())
        });
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes())?)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut conn = rustls::ClientConnection::new(
            Arc::new(client),
            ServerName::try_from(name)?.to_owned(),
        )?;
        let mut tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        tls.write_all(b"hello")?;
        let mut buf = [0u8; 5];
        let read = tls.read_exact(&mut buf);
        drop(tcp);
        let served = server
            .join()
            .map_err(|_| anyhow::anyhow!("server thread panicked"))?;
        read?;
        served?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    #[test]
    fn clients_trusting_the_ca_accept_the_server_for_loopback_names_only() {
        let dir = std::env::temp_dir().join(format!("swh-testbed-tls-{}", std::process::id()));
        let (config, ca_pem) = server_tls(&dir, "unit-test").unwrap();
        assert!(
            ca_pem.starts_with("-----BEGIN CERTIFICATE-----"),
            "{ca_pem}"
        );
        assert_eq!(std::fs::read_to_string(dir.join("ca.pem")).unwrap(), ca_pem);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "only ca.pem is written"
        );
        for name in ["127.0.0.1", "localhost"] {
            assert_eq!(handshake(config.clone(), &ca_pem, name).unwrap(), "hello");
        }
        let err = handshake(config.clone(), &ca_pem, "example.org").unwrap_err();
        assert!(format!("{err:#}").contains("certificate"), "{err:#}");
        // Another CA's PEM is not trusted.
        let (_, other_ca) = server_tls(&dir, "other").unwrap();
        assert!(handshake(config, &other_ca, "127.0.0.1").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
