//! TLS for PostgreSQL connections (rustls).
//!
//! Why this shape: a connection string that asks for TLS (`sslmode=require`, or libpq's
//! `verify-ca` / `verify-full`) gets it with the server's certificate and host name
//! verified against the system's roots plus `--database-ca-file`, as libpq's
//! `verify-full` does; TLS that does not check who answers protects against nobody who
//! can intercept. Without such an `sslmode` the connection is plain, as before.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Error, Result};

/// Whether a connection string asks for TLS, and the string the `postgres` crate can
/// parse (it knows `disable`, `prefer` and `require`; libpq's `verify-ca` and
/// `verify-full` mean `require` here, which always verifies fully).
pub(super) fn requested(url: &str) -> (bool, String) {
    let mut wants_tls = false;
    let normalized = match url.split_once('?') {
        None => url.to_owned(),
        Some((base, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some(("sslmode", "require" | "verify-ca" | "verify-full")) => {
                        wants_tls = true;
                        "sslmode=require".to_owned()
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
    };
    (wants_tls, normalized)
}

/// The connector for `ca_file` (built once per file and shared: loading the system's
/// roots reads a few hundred files).
pub(super) fn connector(ca_file: Option<&Path>) -> Result<MakeRustlsConnect> {
    static BUILT: Mutex<Option<(Option<PathBuf>, MakeRustlsConnect)>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((file, connector)) = built.as_ref()
        && file.as_deref() == ca_file
    {
        return Ok(connector.clone());
    }
    let connector = MakeRustlsConnect::new(client_config(ca_file)?);
    *built = Some((ca_file.map(Path::to_path_buf), connector.clone()));
    Ok(connector)
}

fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    // The system's store; unreadable entries are skipped (a CA file may be all we need).
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(file) = ca_file {
        let certs = ca_certificates(file)?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::Tls(format!(
                "{}: no usable CA certificate in it",
                file.display()
            )));
        }
    }
    if roots.is_empty() {
        return Err(Error::Tls(
            "no CA certificates: the system has none and --database-ca-file is not set".into(),
        ));
    }
    // The crypto provider the crate is built with (ring: no cmake needed to build).
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The PEM certificates in `file` (at least one).
pub fn ca_certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|iter| iter.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Tls(format!("{}: {e}", file.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{}: no PEM certificate in it",
            file.display()
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_that_verify_become_require_and_others_stay() {
        assert_eq!(
            requested("postgres://u@h/d?sslmode=verify-full&application_name=x"),
            (
                true,
                "postgres://u@h/d?sslmode=require&application_name=x".into()
            )
        );
        assert_eq!(
            requested("postgres://u@h/d?sslmode=verify-ca"),
            (true, "postgres://u@h/d?sslmode=require".into())
        );
        assert!(requested("postgres://u@h/d?sslmode=require").0);
        assert_eq!(
            requested("postgres://u@h/d?sslmode=prefer"),
            (false, "postgres://u@h/d?sslmode=prefer".into())
        );
        assert_eq!(
            requested("postgres://u@h/d"),
            (false, "postgres://u@h/d".into())
        );
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate\n").expect("write");
        let err = ca_certificates(&file).expect_err("refused");
        assert!(err.to_string().contains("ca.pem"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = ca_certificates(&missing).expect_err("refused");
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }

    /// The test server over TLS: by its name (`localhost`, as Debian's snakeoil
    /// certificate says) with that certificate trusted, the session is encrypted; by an
    /// address the certificate does not name, the connection is refused.
    #[test]
    fn a_tls_connection_verifies_the_server_and_is_encrypted() {
        use crate::store::sql::{Conn, PgConfig};
        let required = std::env::var("TIDINGS_TEST_POSTGRES").as_deref() == Ok("require");
        let ca = std::env::var("TIDINGS_TEST_PG_CA_FILE")
            .unwrap_or_else(|_| "/etc/ssl/certs/ssl-cert-snakeoil.pem".into());
        let base = crate::store::test_engines::postgres_url();
        let plain = match Conn::connect_postgres(&PgConfig::at(base.clone())) {
            Ok(conn) => conn,
            Err(e) if required => panic!("PostgreSQL is required: {e}"),
            Err(_) => return,
        };
        let ssl_on: String = plain
            .query_row("SHOW ssl", [], |r| r.get(0))
            .expect("SHOW ssl");
        if ssl_on != "on" || !Path::new(&ca).exists() {
            assert!(
                !required,
                "the TLS test needs the test PostgreSQL to serve TLS with the certificate \
                 in {ca} (Debian's default; ssl = {ssl_on})"
            );
            return;
        }
        let by_name = base.replace("127.0.0.1", "localhost");
        let tls_url = |url: &str, mode: &str| {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}sslmode={mode}")
        };
        let trusted = PgConfig {
            ca_file: Some(PathBuf::from(&ca)),
            ..PgConfig::at(tls_url(&by_name, "verify-full"))
        };
        let conn = Conn::connect_postgres(&trusted).expect("TLS with the server's CA");
        let encrypted: bool = conn
            .query_row(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                [],
                |r| r.get(0),
            )
            .expect("pg_stat_ssl");
        assert!(encrypted, "the session is encrypted");

        // (An unknown issuer cannot be shown here: Debian puts the snakeoil certificate
        // in the system's store, which is trusted too.)
        if by_name != base {
            let wrong_name = PgConfig {
                ca_file: Some(PathBuf::from(&ca)),
                ..PgConfig::at(tls_url(&base, "require"))
            };
            let err = Conn::connect_postgres(&wrong_name)
                .err()
                .expect("a name the certificate lacks is refused");
            assert!(
                err.to_string().to_lowercase().contains("certificate"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_junk_ca_file_fails_the_connection_with_its_name() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("junk-ca.pem");
        std::fs::write(
            &file,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let config = crate::store::sql::PgConfig {
            ca_file: Some(file),
            ..crate::store::sql::PgConfig::at("postgres://postgres@localhost:1/x?sslmode=require")
        };
        let err = crate::store::sql::Conn::connect_postgres(&config)
            .err()
            .expect("refused before connecting");
        assert!(err.to_string().contains("junk-ca.pem"), "{err}");
    }
}
