//! Client-certificate identities (`--identity client-cert,tailscale --client-ca --policy`): the
//! real kubectl with certificates from a test CA. Upstream sees the certificate's CN and O values
//! as impersonation, plus what the policy file grants; an expired or foreign certificate gets
//! nothing; the policy file's recording grant is enforced; a changed policy file applies to the
//! next request, and a broken one keeps the last good one, in the log and a metric.
//!
//! The certificates are made with the `openssl` command (3.x), which can also make an expired
//! one (`-days -1`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use base64::Engine as _;
use e2e::cast::header_of;
use e2e::kubectl::Kubectl;
use e2e::stack::{fixture_caller, metric_value, RecordingGrant, Stack, StackOptions, PROXY_TOKEN};
use serde_json::{json, Value};

/// The policy file at start: carol (by name) and team-b (by group) get groups.
const POLICY: &str = r#"# kube-auth-proxy policy (e2e)
rules:
  - users: [carol]
    grant:
      impersonate: {groups: [eng-admins, team-a]}
  - groups: [team-b]
    grant:
      impersonate: {groups: [viewers]}
"#;

fn openssl(args: &[&str], dir: &Path) -> anyhow::Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (3.x is needed to make the test certificates)")?;
    anyhow::ensure!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A throwaway PKI in a directory: CAs and client certificates signed by them.
struct Pki {
    dir: PathBuf,
}

static SERIAL: AtomicU64 = AtomicU64::new(1);

impl Pki {
    /// A self-signed CA `NAME.crt` / `NAME.key`.
    fn ca(&self, name: &str) -> anyhow::Result<PathBuf> {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
                "-subj",
                &format!("/CN={name}"),
                "-days",
                "2",
            ],
            &self.dir,
        )?;
        Ok(self.dir.join(format!("{name}.crt")))
    }

    /// A client certificate `NAME.crt` / `NAME.key` for `subject` (`/CN=u/O=g`), signed by `ca`,
    /// valid for `days` from now (-1: expired yesterday).
    fn client(&self, name: &str, subject: &str, ca: &str, days: i32) -> anyhow::Result<()> {
        let ext = self.dir.join("client.ext");
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        )?;
        openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                subject,
            ],
            &self.dir,
        )?;
        let serial = format!(
            "{}",
            SERIAL.fetch_add(1, Ordering::Relaxed) + u64::from(std::process::id()) * 1000
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-set_serial",
                &serial,
                "-days",
                &days.to_string(),
                "-extfile",
                "client.ext",
                "-out",
                &format!("{name}.crt"),
            ],
            &self.dir,
        )
    }

    /// kubectl for the proxy with the client certificate `NAME` (and no token).
    fn kubectl(&self, stack: &Stack, name: &str) -> anyhow::Result<Kubectl> {
        let b64 = |file: String| -> anyhow::Result<String> {
            Ok(base64::engine::general_purpose::STANDARD
                .encode(std::fs::read(self.dir.join(&file)).context(file)?))
        };
        let config = format!(
            r#"apiVersion: v1
kind: Config
current-context: target
clusters:
- name: target
  cluster:
    server: {server}
    insecure-skip-tls-verify: true
users:
- name: user
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: target
  context:
    cluster: target
    user: user
    namespace: default
"#,
            server = stack.proxy_url,
            cert = b64(format!("{name}.crt"))?,
            key = b64(format!("{name}.key"))?,
        );
        let path = self.dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, config)?;
        Ok(stack.kubectl.direct(&path))
    }
}

/// A PKI with the trusted CA `ca` and the foreign CA `foreign`, client certificates `carol`
/// (O=team-c, O=devs), `dave` (O=team-b), `erin` (no rule), `expired` (carol, expired) and
/// `stranger` (carol, by the foreign CA); and a stack that trusts `ca`, with `POLICY`.
fn setup(
    temp: &tempfile::TempDir,
    recording: Option<RecordingGrant>,
) -> anyhow::Result<(Pki, PathBuf, Stack)> {
    let pki = Pki {
        dir: temp.path().to_path_buf(),
    };
    let ca = pki.ca("ca")?;
    pki.ca("foreign")?;
    pki.client("carol", "/CN=carol/O=team-c/O=devs", "ca", 2)?;
    pki.client("dave", "/CN=dave/O=team-b", "ca", 2)?;
    pki.client("erin", "/CN=erin/O=nobody", "ca", 2)?;
    pki.client("expired", "/CN=carol/O=team-c", "ca", -1)?;
    pki.client("stranger", "/CN=carol/O=team-c", "foreign", 2)?;
    let policy = temp.path().join("policy.yaml");
    std::fs::write(&policy, POLICY)?;

    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.recording = recording;
    options.proxy_args = vec![
        "--identity".into(),
        "client-cert,tailscale".into(),
        "--client-ca".into(),
        ca.display().to_string(),
        "--policy".into(),
        policy.display().to_string(),
    ];
    let stack = Stack::start(options)?;
    Ok((pki, policy, stack))
}

fn whoami(kubectl: &Kubectl, extra: &[&str]) -> anyhow::Result<(String, Vec<String>)> {
    let mut args = extra.to_vec();
    args.extend(["auth", "whoami", "-o", "json"]);
    let review = kubectl.run(&args)?.expect_success("auth whoami")?.json()?;
    let info = &review["status"]["userInfo"];
    let user = info["username"].as_str().unwrap_or_default().to_string();
    Ok((user, granted(&info["groups"])))
}

/// The groups, without the `system:authenticated` the apiserver adds itself.
fn granted(groups: &Value) -> Vec<String> {
    groups
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|g| *g != "system:authenticated")
        .map(String::from)
        .collect()
}

/// Replaces the policy file as an editor or a config map update does (write, then rename).
fn replace_policy(policy: &Path, text: &str) -> anyhow::Result<()> {
    let staged = policy.with_extension("new");
    std::fs::write(&staged, text)?;
    std::fs::rename(&staged, policy)?;
    Ok(())
}

#[test]
fn a_certificate_caller_is_its_cn_and_o_groups_plus_its_grant_and_nothing_else(
) -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let (pki, _policy, stack) = setup(&temp, None)?;
    let carol = pki.kubectl(&stack, "carol")?;

    let (user, groups) = whoami(&carol, &[]).map_err(|e| e.context(stack.logs()))?;
    assert_eq!(user, "carol");
    assert_eq!(groups, ["team-c", "devs", "eng-admins", "team-a"]);
    // A rule matched by group.
    let (user, groups) = whoami(&pki.kubectl(&stack, "dave")?, &[])?;
    assert_eq!(
        (user.as_str(), groups),
        ("dave", vec!["team-b".to_string(), "viewers".into()])
    );
    // Without a certificate the next source decides: tailscaled knows the address as alice.
    let (user, _) = whoami(&stack.kubectl, &[])?;
    assert_eq!(user, "alice@example.com");

    // The caller's own impersonation never reaches upstream.
    let (user, groups) = whoami(
        &carol,
        &[
            "--as=someone-else",
            "--as-group=system:masters",
            "--as-uid=42",
        ],
    )?;
    assert_eq!(user, "carol");
    assert_eq!(groups, ["team-c", "devs", "eng-admins", "team-a"]);
    let requests = stack.upstream_requests()?;
    let carols: Vec<&Value> = requests
        .iter()
        .filter(|r| r["impersonateUser"] == "carol")
        .collect();
    assert!(carols.len() >= 2, "{requests:?}");
    for request in &requests {
        let text = request.to_string();
        assert!(
            !text.contains("someone-else"),
            "caller impersonation leaked: {text}"
        );
        assert_eq!(
            request["authorization"],
            format!("Bearer {PROXY_TOKEN}"),
            "upstream must authenticate the proxy, never the caller's certificate: {text}"
        );
        assert!(!text.contains("BEGIN CERTIFICATE"), "{text}");
    }
    for request in carols {
        let groups: Vec<&str> = request["impersonateGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            groups,
            ["team-c", "devs", "eng-admins", "team-a"],
            "{request}"
        );
    }

    // An identity no rule matches is refused, naming the policy file.
    let refused = pki.kubectl(&stack, "erin")?.run(&["get", "pods"])?;
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("Forbidden") && refused.stderr.contains("policy.yaml"),
        "{}",
        refused.stderr
    );

    // Certificates that fail verification get a TLS alert: no response at all, nothing upstream.
    let before = stack.upstream_requests()?.len();
    let handshakes_before =
        metric_value(&stack.metrics()?, "k8s_auth_proxy_tls_handshake_failures");
    for name in ["expired", "stranger"] {
        let output = pki
            .kubectl(&stack, name)?
            .run(&["auth", "whoami", "-o", "json"])?;
        assert!(!output.success, "{name}: {}", output.stdout);
        assert!(
            !output.stdout.contains("carol"),
            "{name}: {}",
            output.stdout
        );
        // kubectl: "remote error: tls: expired certificate" / "unknown certificate authority".
        assert!(
            output.stderr.contains("remote error: tls:"),
            "{name}: {}",
            output.stderr
        );
    }
    assert_eq!(stack.upstream_requests()?.len(), before);
    assert!(
        metric_value(&stack.metrics()?, "k8s_auth_proxy_tls_handshake_failures")
            >= handshakes_before + 2
    );
    Ok(())
}

#[test]
fn a_changed_policy_file_applies_and_a_broken_one_keeps_the_last_good() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let (pki, policy, stack) = setup(&temp, None)?;
    let carol = pki.kubectl(&stack, "carol")?;
    assert_eq!(
        whoami(&carol, &[])?.1,
        ["team-c", "devs", "eng-admins", "team-a"]
    );

    replace_policy(
        &policy,
        r#"{"rules": [{"users": ["carol"], "grant": {"impersonate": {"groups": ["ops"]}}}]}"#,
    )?;
    stack.wait_until("the new grant", || {
        Ok(whoami(&carol, &[])?.1 == ["team-c", "devs", "ops"])
    })?;
    // dave's rule is gone with the old file.
    let refused = pki.kubectl(&stack, "dave")?.run(&["get", "pods"])?;
    assert!(refused.stderr.contains("Forbidden"), "{}", refused.stderr);

    replace_policy(
        &policy,
        "rules:\n  - users: [carol]\n    grant: {enforceRecorders: true}\n",
    )?;
    stack.wait_until("the broken file counted", || {
        Ok(metric_value(&stack.metrics()?, "k8s_auth_proxy_policy_reload_failures") == 1)
    })?;
    let log = stack.proxy.log_text();
    assert!(
        log.contains("policy file not reloaded") && log.contains("enforceRecorders"),
        "{log}"
    );
    assert_eq!(whoami(&carol, &[])?.1, ["team-c", "devs", "ops"]);
    Ok(())
}

#[test]
fn recording_is_enforced_for_a_certificate_caller_whose_rule_says_so() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let (pki, policy, stack) = setup(&temp, Some(RecordingGrant::ENFORCED))?;
    let carol = pki.kubectl(&stack, "carol")?;
    let recorder = stack
        .recorder_addr
        .clone()
        .context("the stack started no recorder")?;
    // The recorder's address is known once the stack runs: grant it by changing the file.
    let grant = |addr: &str, events: bool| {
        serde_json::to_string(&json!({"rules": [{"users": ["carol"], "grant": {
            "impersonate": {"groups": ["recorded", addr]},
            "recorderAddrs": [addr],
            "enforceRecorder": true,
            "enableEvents": events,
        }}]}))
    };
    replace_policy(&policy, &grant(&recorder, true)?)?;
    stack.wait_until("the recording grant", || {
        Ok(whoami(&carol, &[])?.1.contains(&recorder))
    })?;

    let output = carol.run(&["exec", "demo", "--", "echo", "hi"])?;
    assert!(output.success, "{}\n{}", output.stderr, stack.logs());
    assert_eq!(output.stdout, "hi\n");
    let recordings = stack.finished_recordings(1)?;
    assert_eq!(recordings[0]["outcome"], "complete", "{}", recordings[0]);
    let cast = stack.recording_cast(recordings[0]["id"].as_str().unwrap_or_default())?;
    let header = header_of(&cast)?;
    assert_eq!(header["srcNodeUser"], "carol", "{header}");
    // enableEvents: API requests are recorded as events naming the certificate user.
    let events = stack.events("type=kubernetes-api-request")?;
    let whoami_event = events
        .iter()
        .find(|e| e["source"]["nodeUser"] == "carol")
        .with_context(|| format!("no API event of carol: {events:?}"))?;
    // A certificate caller has no tailnet node: the event names the address it came from.
    assert_eq!(
        whoami_event["source"]["node"], "127.0.0.1",
        "{whoami_event}"
    );

    // Enforced: with no recorder reachable the session is refused, never run unrecorded.
    let dead = e2e::stack::dead_address()?;
    replace_policy(&policy, &grant(&dead, false)?)?;
    stack.wait_until("the dead recorder grant", || {
        Ok(whoami(&carol, &[])?.1.contains(&dead))
    })?;
    let output = carol.run(&["exec", "demo", "--", "echo", "hi"])?;
    assert!(!output.success, "{}", output.stdout);
    assert!(!output.stdout.contains("hi"), "{}", output.stdout);
    assert_eq!(stack.finished_recordings(1)?.len(), 1);
    Ok(())
}
