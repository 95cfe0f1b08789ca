//! The real kubectl (`/usr/bin/kubectl`, a dispatcher that runs the kubectl matching the server's
//! minor version) against the apiserver stand-in.
//!
//! Each test gets its own HOME, kubeconfig and discovery cache, so nothing leaks between tests.
//! kubectl sends no credentials to an `http://` server, so the tests that depend on who calls use
//! TLS with the stand-in's generated CA.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::apiserver::{
    ApiServer, ApiServerConfig, GeneratedPodsConfig, PodConfig, ServeOptions,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const KUBECTL: &str = "/usr/bin/kubectl";
/// Bounds every kubectl run, so a hang fails the test instead of stalling the suite.
const PATIENCE: Duration = Duration::from_secs(60);

/// A server plus a private kubectl environment for it.
struct Kubectl {
    server: ApiServer,
    dir: tempfile::TempDir,
}

impl Kubectl {
    async fn start(config: ApiServerConfig, tls: bool, token: &str) -> Kubectl {
        assert!(
            Path::new(KUBECTL).exists(),
            "{KUBECTL} is missing: these tests need the real kubectl (v1.32 dispatcher) installed"
        );
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let options = ServeOptions {
            tls,
            pki_dir: tls.then(|| pki.clone()),
            ..ServeOptions::default()
        };
        let server = ApiServer::start(config, options).await.unwrap();
        let ca_line = if tls {
            format!(
                "    certificate-authority: {}\n",
                pki.join("ca.crt").display()
            )
        } else {
            String::new()
        };
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\n{ca_line}\
             users:\n- name: caller\n  user:\n    token: {token}\n\
             contexts:\n- name: standin\n  context: {{cluster: standin, user: caller, namespace: default}}\n\
             current-context: standin\n",
            server.url()
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Kubectl { server, dir }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(self.dir.path().join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path().join("home"))
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Output {
        let output = tokio::time::timeout(PATIENCE, self.command(args).output())
            .await
            .unwrap()
            .unwrap();
        eprintln!(
            "$ kubectl {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs kubectl, expecting success, and returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

#[tokio::test]
async fn get_pods_over_plain_http() {
    let k = Kubectl::start(ApiServerConfig::default(), false, "proxy-token").await;
    let table = k.ok(&["get", "pods"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["demo", "1/1", "Running", "0"]);

    let pod: Value =
        serde_json::from_str(&k.ok(&["get", "pod", "demo", "-o", "json"]).await).unwrap();
    assert_eq!(pod["metadata"]["labels"]["app"], "demo");
    assert!(k
        .ok(&["get", "pod", "demo", "-o", "yaml"])
        .await
        .contains("\n  name: demo\n"));
    assert!(k
        .ok(&["get", "pods", "-A", "-o", "wide"])
        .await
        .contains("testkit-node"));

    // Over plain HTTP kubectl leaves its token out: the stand-in saw anonymous requests only.
    let requests = k.server.requests();
    assert!(requests
        .iter()
        .any(|r| r.path.starts_with("/api/v1/namespaces/default/pods")));
    assert!(requests.iter().all(|r| r.authorization.is_none()));
}

#[tokio::test]
async fn whoami_and_impersonation_over_tls() {
    let k = Kubectl::start(ApiServerConfig::default(), true, "proxy-token").await;
    let review: Value =
        serde_json::from_str(&k.ok(&["auth", "whoami", "-o", "json"]).await).unwrap();
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:tailscale:kube-auth-proxy"
    );
    assert!(k
        .server
        .requests()
        .iter()
        .any(|r| r.authorization.as_deref() == Some("Bearer proxy-token")));

    let review: Value = serde_json::from_str(
        &k.ok(&[
            "auth",
            "whoami",
            "-o",
            "json",
            "--as",
            "bob",
            "--as-group",
            "devs",
        ])
        .await,
    )
    .unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "bob");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["devs", "system:authenticated"])
    );

    // A 403 on discovery (cold cache) prints "Error from server (Forbidden): unknown": kubectl's
    // discovery client does not decode the Status (the same against a real apiserver). With the
    // discovery cached, the pod list's 403 Status is printed.
    k.ok(&["get", "pods"]).await;
    let denied = k
        .run(&["get", "pods", "--token", "alice-token", "--as", "bob"])
        .await;
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains(
        "Error from server (Forbidden): users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    ));

    let unknown = k.run(&["get", "pods", "--token", "nope"]).await;
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Unauthorized"));
}

#[tokio::test]
async fn watch_prints_a_pod_added_later() {
    let k = Kubectl::start(ApiServerConfig::default(), false, "proxy-token").await;
    let mut child = k
        .command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    // kubectl prints the list before it starts watching from the list's resourceVersion; a pod
    // added at any time after the list is reported.
    assert!(next_line().await.starts_with("NAME"));
    assert!(next_line().await.starts_with("demo"));
    k.server
        .add_pod(&PodConfig::new("default", "late"))
        .unwrap();
    let row: Vec<String> = next_line()
        .await
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(row[..3], ["late", "1/1", "Running"]);
    k.server.delete_pod("default", "late").unwrap();
    assert!(next_line().await.starts_with("late"));
    child.kill().await.unwrap();
}

#[tokio::test]
async fn lists_5000_pods() {
    let mut config = ApiServerConfig::default();
    config.generated_pods.push(GeneratedPodsConfig {
        namespace: "bulk".into(),
        prefix: "pod-".into(),
        count: 5000,
        labels: Default::default(),
    });
    let k = Kubectl::start(config, false, "proxy-token").await;
    let out = k.ok(&["get", "pods", "-n", "bulk", "--no-headers"]).await;
    assert_eq!(out.lines().count(), 5000);
    // kubectl pages through with limit=500 and continue tokens.
    let pages = k
        .server
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/namespaces/bulk/pods"))
        .count();
    assert_eq!(pages, 10);
}

#[tokio::test]
async fn create_apply_and_delete() {
    let k = Kubectl::start(ApiServerConfig::default(), true, "proxy-token").await;
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  containers:\n  - name: nginx\n    image: nginx:1.27\n";
    let file = k.write("pod.yaml", manifest);
    let file = file.to_str().unwrap();
    assert_eq!(
        k.ok(&["create", "-f", file]).await.trim(),
        "pod/web created"
    );
    let again = k.run(&["create", "-f", file]).await;
    assert!(String::from_utf8_lossy(&again.stderr).contains("pods \"web\" already exists"));
    assert_eq!(
        k.ok(&["delete", "pod", "web"]).await.trim(),
        "pod \"web\" deleted"
    );

    assert_eq!(k.ok(&["apply", "-f", file]).await.trim(), "pod/web created");
    let changed = k.write("pod2.yaml", &manifest.replace("nginx:1.27", "nginx:1.28"));
    assert_eq!(
        k.ok(&["apply", "-f", changed.to_str().unwrap()])
            .await
            .trim(),
        "pod/web configured"
    );
    let image = k
        .ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ])
        .await;
    assert_eq!(image, "nginx:1.28");
    assert_eq!(
        k.ok(&["delete", "-f", file]).await.trim(),
        "pod \"web\" deleted"
    );
    assert!(!k.ok(&["get", "pods"]).await.contains("web"));

    // kubectl's typed client sends namespaces as protobuf.
    assert_eq!(
        k.ok(&["create", "namespace", "extra"]).await.trim(),
        "namespace/extra created"
    );
    assert_eq!(
        k.ok(&["run", "x", "-n", "extra", "--image=busybox"])
            .await
            .trim(),
        "pod/x created"
    );
}
