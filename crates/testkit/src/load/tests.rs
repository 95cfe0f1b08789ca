//! The generator against a tiny local hyper server: counts only, no timing.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::*;

/// A tiny server: 500 for `/fail`, 200 with a short body for anything else.
async fn serve(tls: Option<TlsAcceptor>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let status = if request.uri().path() == "/fail" {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    };
                    let mut response = hyper::Response::new(Full::new(Bytes::from_static(b"ok\n")));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                });
                let http = hyper::server::conn::http1::Builder::new();
                let _ = match tls {
                    None => http.serve_connection(TokioIo::new(tcp), service).await,
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                        Err(_) => return,
                    },
                };
            });
        }
    });
    Ok(addr)
}

fn options(url: String, trust: ServerTrust) -> anyhow::Result<LoadOptions> {
    Ok(LoadOptions {
        url: url.parse()?,
        connections: 3,
        warmup: Duration::from_millis(50),
        duration: Duration::from_millis(300),
        headers: HeaderMap::new(),
        trust,
    })
}

fn no_roots() -> ServerTrust {
    ServerTrust::Roots(Arc::new(RootCertStore::empty()))
}

#[tokio::test]
async fn counts_successes_over_keep_alive_connections() -> anyhow::Result<()> {
    let addr = serve(None).await?;
    let report = run(options(format!("http://{addr}/ok"), no_roots())?).await?;
    assert!(report.requests > 0, "{report:?}");
    assert_eq!((report.non_2xx, report.errors), (0, 0), "{report:?}");
    assert_eq!(report.successes(), report.requests);
    assert!(report.sent >= report.requests, "{report:?}");
    assert!(report.p50_ms <= report.p99_ms, "{report:?}");
    Ok(())
}

#[tokio::test]
async fn counts_server_errors_as_non_2xx() -> anyhow::Result<()> {
    let addr = serve(None).await?;
    let report = run(options(format!("http://{addr}/fail"), no_roots())?).await?;
    assert!(report.requests > 0, "{report:?}");
    assert_eq!(report.non_2xx, report.requests, "{report:?}");
    assert_eq!(report.successes(), 0);
    Ok(())
}

#[tokio::test]
async fn counts_refused_connections_as_errors() -> anyhow::Result<()> {
    // Bound and dropped: nothing listens there any more.
    let addr = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let report = run(options(format!("http://{addr}/"), no_roots())?).await?;
    assert_eq!(report.requests, 0, "{report:?}");
    assert!(report.errors > 0, "{report:?}");
    assert!(report.first_error.is_some(), "{report:?}");
    Ok(())
}

#[tokio::test]
async fn accepts_a_self_signed_server_only_when_told_to() -> anyhow::Result<()> {
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(issued.key_pair.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![issued.cert.der().clone()], key.into())?;
    let addr = serve(Some(TlsAcceptor::from(Arc::new(config)))).await?;
    let url = format!("https://{addr}/ok");

    let report = run(options(url.clone(), ServerTrust::AnyCertificate)?).await?;
    assert!(report.requests > 0, "{report:?}");
    assert_eq!((report.non_2xx, report.errors), (0, 0), "{report:?}");

    let report = run(options(url, no_roots())?).await?;
    assert_eq!(report.requests, 0, "{report:?}");
    assert!(report.errors > 0, "{report:?}");
    Ok(())
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let sorted: Vec<_> = (1..=100).map(Duration::from_millis).collect();
    assert_eq!(percentile_ms(&sorted, 0.50), 50.0);
    assert_eq!(percentile_ms(&sorted, 0.99), 99.0);
    assert_eq!(percentile_ms(&sorted[..1], 0.99), 1.0);
    assert_eq!(percentile_ms(&[], 0.5), 0.0);
}
