//! OIDC identities (`--identity oidc,tailscale --oidc-issuer-url --oidc-client-id --policy`): the
//! real kubectl with `token: <JWT>` in its kubeconfig. The JWTs are signed (RS256) by a test
//! issuer whose discovery document and JWK set a small HTTP server in the test serves on loopback
//! (plain http is accepted for a loopback issuer only), so the proxy fetches the keys as it would
//! from a real issuer. Upstream sees the token's mapped user and groups plus the policy file's
//! grant, never the token; expired, wrong-audience, wrong-issuer, `alg: none`, tampered and
//! unknown-key tokens get 401 with a reason kubectl prints, even though tailscaled knows the
//! caller's address.
//!
//! The RSA key is made with the `openssl` command, which also signs the tokens.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use e2e::kubectl::Kubectl;
use e2e::stack::{fixture_caller, kubeconfig, Stack, StackOptions, PROXY_TOKEN};
use serde_json::{json, Value};

const CLIENT_ID: &str = "kube-auth-proxy";
const KID: &str = "test-key-1";

/// carol (by name) gets eng-admins; the issuer's group "devs" (prefixed) gets viewers.
const POLICY: &str = r#"rules:
  - users: [carol@example.com]
    grant:
      impersonate: {groups: [eng-admins]}
  - groups: ["oidc:devs"]
    grant:
      impersonate: {groups: [viewers]}
"#;

fn openssl(args: &[&str], dir: &Path) -> anyhow::Result<Vec<u8>> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (needed to make and use the test issuer's key)")?;
    anyhow::ensure!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output.stdout)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The test issuer: an RSA key and a discovery server on loopback.
struct Issuer {
    dir: PathBuf,
    url: String,
}

impl Issuer {
    /// Makes the key and serves `/.well-known/openid-configuration` and `/keys` (its JWK set) in
    /// a background thread for the rest of the test process.
    fn start(dir: &Path) -> anyhow::Result<Issuer> {
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "issuer.key",
            ],
            dir,
        )?;
        let modulus = String::from_utf8(openssl(
            &["rsa", "-in", "issuer.key", "-noout", "-modulus"],
            dir,
        )?)?;
        let hex = modulus
            .trim()
            .strip_prefix("Modulus=")
            .context("openssl printed no modulus")?;
        let n = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()?;
        let jwks = json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID,
            "n": b64(&n), "e": "AQAB"}]})
        .to_string();

        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/keys"),
            "id_token_signing_alg_values_supported": ["RS256"]})
        .to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(&stream);
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // The rest of the head.
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let (status, body) = if line.starts_with("GET /.well-known/openid-configuration ") {
                    ("200 OK", discovery.as_str())
                } else if line.starts_with("GET /keys ") {
                    ("200 OK", jwks.as_str())
                } else {
                    ("404 Not Found", "{}")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Ok(Issuer {
            dir: dir.to_path_buf(),
            url,
        })
    }

    /// The claims of a good token for carol.
    fn claims(&self) -> Value {
        json!({"iss": self.url, "aud": CLIENT_ID, "sub": "0001",
            "email": "carol@example.com", "email_verified": true,
            "groups": ["team-a", "devs"], "iat": now(), "exp": now() + 600})
    }

    /// `header.claims`, signed with the issuer's key (RS256).
    fn sign(&self, header: &Value, claims: &Value) -> anyhow::Result<String> {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        std::fs::write(self.dir.join("input"), &input)?;
        let signature = openssl(
            &["dgst", "-sha256", "-sign", "issuer.key", "-binary", "input"],
            &self.dir,
        )?;
        Ok(format!("{input}.{}", b64(&signature)))
    }

    fn token(&self, claims: &Value) -> anyhow::Result<String> {
        self.sign(&json!({"alg": "RS256", "kid": KID, "typ": "JWT"}), claims)
    }
}

/// kubectl for the proxy with `token` in its kubeconfig.
fn kubectl_with(stack: &Stack, dir: &Path, name: &str, token: &str) -> anyhow::Result<Kubectl> {
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, kubeconfig(&stack.proxy_url, Some(token), true))?;
    Ok(stack.kubectl.direct(&path))
}

fn whoami(kubectl: &Kubectl) -> anyhow::Result<(String, Vec<String>)> {
    let review = kubectl
        .run(&["auth", "whoami", "-o", "json"])?
        .expect_success("auth whoami")?
        .json()?;
    let info = &review["status"]["userInfo"];
    let groups = info["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|g| *g != "system:authenticated")
        .map(String::from)
        .collect();
    Ok((
        info["username"].as_str().unwrap_or_default().to_string(),
        groups,
    ))
}

#[test]
fn an_oidc_caller_is_its_mapped_claims_plus_its_grant_and_bad_tokens_get_401() -> anyhow::Result<()>
{
    let temp = tempfile::tempdir()?;
    let issuer = Issuer::start(temp.path())?;
    let policy = temp.path().join("policy.yaml");
    std::fs::write(&policy, POLICY)?;
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.proxy_args = [
        "--identity",
        "oidc,tailscale",
        "--oidc-issuer-url",
        &issuer.url,
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-username-claim",
        "email",
        "--oidc-groups-claim",
        "groups",
        "--oidc-groups-prefix",
        "oidc:",
        "--policy",
        &policy.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let stack = Stack::start(options)?;

    // A good token: the email (no prefix for the email claim), the prefixed groups, and what the
    // policy's rules (by user and by group) add.
    let good = issuer.token(&issuer.claims())?;
    let carol = kubectl_with(&stack, temp.path(), "carol", &good)?;
    let (user, groups) = whoami(&carol).map_err(|e| e.context(stack.logs()))?;
    assert_eq!(user, "carol@example.com");
    assert_eq!(
        groups,
        ["oidc:team-a", "oidc:devs", "eng-admins", "viewers"]
    );
    let output = carol.run(&["get", "pods"])?;
    assert!(output.success, "{}", output.stderr);

    // The token never reaches upstream: the proxy authenticates as itself and impersonates.
    let requests = stack.upstream_requests()?;
    let carols: Vec<&Value> = requests
        .iter()
        .filter(|r| r["impersonateUser"] == "carol@example.com")
        .collect();
    assert!(carols.len() >= 2, "{requests:?}");
    for request in &requests {
        let text = request.to_string();
        assert!(!text.contains(&good), "the caller's token leaked: {text}");
        assert_eq!(
            request["authorization"],
            format!("Bearer {PROXY_TOKEN}"),
            "{text}"
        );
    }

    // Bad tokens: 401 with the reason, though tailscaled knows the address (127.0.0.1).
    let before = stack.upstream_requests()?.len();
    let with = |changes: Value| {
        let mut claims = issuer.claims();
        for (key, value) in changes.as_object().into_iter().flatten() {
            claims[key] = value.clone();
        }
        claims
    };
    let parts: Vec<String> = good.split('.').map(String::from).collect();
    let forged = b64(with(json!({"email": "admin@example.com"}))
        .to_string()
        .as_bytes());
    let none_header = b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes());
    let cases = [
        (
            "expired",
            issuer.token(&with(json!({"exp": now() - 3600, "iat": now() - 7200})))?,
            "the token expired",
        ),
        (
            "wrong-audience",
            issuer.token(&with(json!({"aud": "some-other-client"})))?,
            "audience (aud) does not include the client id",
        ),
        (
            "wrong-issuer",
            issuer.token(&with(json!({"iss": "https://evil.example"})))?,
            "issuer \"https://evil.example\" is not",
        ),
        (
            "alg-none",
            format!("{none_header}.{}.", parts[1]),
            "algorithm \"none\" is not accepted",
        ),
        (
            "tampered",
            format!("{}.{forged}.{}", parts[0], parts[2]),
            "signature does not verify",
        ),
        (
            "unknown-key",
            issuer.sign(
                &json!({"alg": "RS256", "kid": "someone-elses-key"}),
                &issuer.claims(),
            )?,
            "no signing key with kid \"someone-elses-key\"",
        ),
        ("not-a-jwt", "unused".to_owned(), "not a valid JWT"),
    ];
    for (name, token, reason) in &cases {
        let output = kubectl_with(&stack, temp.path(), name, token)?
            .run(&["auth", "whoami", "-o", "json"])?;
        assert!(!output.success, "{name}: {}", output.stdout);
        assert!(
            output
                .stderr
                .contains("You must be logged in to the server")
                && output.stderr.contains(reason),
            "{name}: {}\n{}",
            output.stderr,
            stack.logs()
        );
    }
    assert_eq!(stack.upstream_requests()?.len(), before);

    // Without a bearer token (here basic credentials, which kubectl sends as they are, so that
    // it does not prompt) the next source decides: tailscaled knows the address as alice.
    let path = temp.path().join("no-token.kubeconfig");
    let config = kubeconfig(&stack.proxy_url, None, true).replace(
        "  user: {}",
        "  user:\n    username: basic-user\n    password: not-a-token",
    );
    anyhow::ensure!(config.contains("basic-user"), "{config}");
    std::fs::write(&path, config)?;
    let (user, _) = whoami(&stack.kubectl.direct(&path)).map_err(|e| e.context(stack.logs()))?;
    assert_eq!(user, "alice@example.com");
    Ok(())
}
