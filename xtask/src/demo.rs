//! `cargo xtask demo [--script]`: the stand-in apiserver and LocalAPI with the proxy in front.

use crate::tools::{build_binaries, ensure_kubectl, workspace_root};

/// Starts the stack in `.demo/`; with `script`, runs the scripted scenario and exits with its result,
/// else prints how to use it and stays in the foreground until interrupted.
pub(crate) fn demo(script: bool) -> anyhow::Result<()> {
    ensure_kubectl()?;
    build_binaries()?;
    let dir = workspace_root().join(".demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let mut stack = e2e::demo::start(&dir)?;
    if script {
        return e2e::demo::script(&stack).map_err(|e| e.context(stack.logs()));
    }
    let kubeconfig = stack.kubectl.kubeconfig.display().to_string();
    println!(
        r#"
kube-auth-proxy demo is running.

  proxy (TLS, self-signed):  {proxy}
  metrics / readiness:       {metrics}/metrics  {metrics}/readyz
  upstream (stand-in):       {apiserver}
  caller (stand-in tailnet): demo@example.com, groups system:masters, demo-admins
  files and logs:            {dir}

Try:
  export KUBECONFIG={kubeconfig}
  kubectl get pods
  kubectl auth whoami
  kubectl --as=mallory auth whoami      # still demo@example.com: caller impersonation is dropped
  kubectl get pods -w
  kubectl exec -it demo -- sh           # recorded: the grant enforces recording
  curl -s {metrics}/metrics | grep k8s_auth_proxy

Mind: the pod "demo" is not a container. The stand-in apiserver runs the commands of
`kubectl exec` and `kubectl attach` as real processes on this machine, as the user running
this demo (you), with your environment and file access, starting in a scratch directory.

Recordings and API events (kube-recorder at {recorder}; the grant has enableEvents, and the
proxy sends response events), once you have run the commands above:
  {bin}/kube-recorder ls --dir {dir}/recordings
  {bin}/kube-recorder play ID --dir {dir}/recordings
  {bin}/kube-recorder events --dir {dir}/recordings --user demo@example.com
  {bin}/kube-recorder events --dir {dir}/recordings --verb watch      # kubectl get pods -w
  {bin}/kube-recorder events --dir {dir}/recordings --type response -o json
or over its read API, which needs a viewer token (each read is itself recorded):
  KUBE_RECORDER_TOKEN={token} {bin}/kube-recorder ls --server http://{recorder}
  curl -s -H 'Authorization: Bearer {token}' http://{recorder}/api/recordings

Press Ctrl-C to stop."#,
        proxy = stack.proxy_url,
        metrics = stack.metrics_url,
        apiserver = stack.apiserver_url,
        dir = dir.display(),
        recorder = stack.recorder_addr.as_deref().unwrap_or("-"),
        token = e2e::stack::RECORDER_VIEWER_TOKEN,
        bin = e2e::binaries::bin_dir().display(),
    );
    let status = stack.proxy.wait()?;
    anyhow::bail!(
        "the proxy exited ({status}); its log:\n{}",
        stack.proxy.log_text()
    )
}
