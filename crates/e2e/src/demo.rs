//! The demo: the stack with a friendly caller, and a scripted kubectl scenario against it.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use serde_json::{json, Value};

use crate::stack::{default_apiserver_config, RecordingGrant, Stack, StackOptions, PROXY_TOKEN};

/// The demo caller as tailscaled would describe it.
pub fn demo_caller() -> Value {
    json!({
        "Node": {
            "ID": 1001, "StableID": "nDEMO1CNTRL", "Name": "demo-laptop.tail1a2b3.ts.net.",
            "User": 501, "Addresses": ["100.100.100.100/32"]
        },
        "UserProfile": {"ID": 501, "LoginName": "demo@example.com", "DisplayName": "Demo User"},
        "CapMap": {
            "tailscale.com/cap/kubernetes": [
                {"impersonate": {"groups": ["system:masters", "demo-admins"]}}
            ]
        }
    })
}

/// Starts the demo stack with its files in `dir`.
pub fn start(dir: &Path) -> anyhow::Result<Stack> {
    let options = StackOptions {
        dir: Some(dir.to_path_buf()),
        apiserver_config: default_apiserver_config(25),
        // Every exec/attach is recorded by the stack's kube-recorder, failing closed, and every
        // API request is recorded there as an event (with its response).
        recording: Some(RecordingGrant {
            events: true,
            ..RecordingGrant::ENFORCED
        }),
        proxy_args: vec!["--api-response-events".into()],
        ..StackOptions::for_caller(demo_caller())
    };
    Stack::start(options)
}

/// Runs the scripted scenario, printing each step; fails on the first step that goes wrong.
pub fn script(stack: &Stack) -> anyhow::Result<()> {
    let k = &stack.kubectl;
    step(
        "kubectl version (the dispatcher picks the client from the server's /version)",
        || {
            let out = k
                .run(&["version", "-o", "json"])?
                .expect_success("version")?;
            let server = out.json()?["serverVersion"]["gitVersion"].clone();
            ensure!(server == "v1.32.4", "unexpected server version {server}");
            Ok(format!("server {server}"))
        },
    )?;
    step(
        "kubectl auth whoami (the proxy impersonates the tailnet caller)",
        || {
            let out = k
                .run(&["auth", "whoami", "-o", "json"])?
                .expect_success("whoami")?;
            let info = out.json()?["status"]["userInfo"].clone();
            ensure!(
                info["username"] == "demo@example.com",
                "upstream saw {info}"
            );
            Ok(format!(
                "upstream sees {} in {}",
                info["username"], info["groups"]
            ))
        },
    )?;
    step("kubectl --as=mallory --as-group=system:masters auth whoami (caller impersonation is dropped)", || {
        let out = k
            .run(&["--as=mallory", "--as-group=system:masters", "auth", "whoami", "-o", "json"])?
            .expect_success("whoami --as")?;
        let user = out.json()?["status"]["userInfo"]["username"].clone();
        ensure!(user == "demo@example.com", "upstream saw {user}");
        Ok(format!("still {user}"))
    })?;
    step("kubectl get pods", || {
        let out = k.run(&["get", "pods"])?.expect_success("get pods")?;
        ensure!(
            out.stdout.contains("demo"),
            "no demo pod in:\n{}",
            out.stdout
        );
        Ok(out.stdout.trim_end().to_string())
    })?;
    step("kubectl get pods -n bulk -o name (a longer list)", || {
        let out = k
            .run(&["get", "pods", "-n", "bulk", "-o", "name"])?
            .expect_success("list")?;
        let count = out.stdout.lines().count();
        ensure!(count == 25, "expected 25 pods, got {count}");
        Ok(format!("{count} pods"))
    })?;
    step(
        "kubectl get pods -w (a pod created meanwhile arrives on the open watch)",
        || {
            let mut watch = k.spawn_lines(&["get", "pods", "-w"])?;
            watch.wait_for("demo", Duration::from_secs(60))?;
            stack.add_pod("default", "created-during-watch")?;
            let line = watch.wait_for("created-during-watch", Duration::from_secs(60))?;
            Ok(line)
        },
    )?;
    step(
        "kubectl exec demo -- sh -c 'echo hello from the pod; exit 3' (recorded, exit code kept; \
         the demo pod is no container: sh runs on this machine as the current user)",
        || {
            let out = k.run(&[
                "exec",
                "demo",
                "--",
                "sh",
                "-c",
                "echo hello from the pod; exit 3",
            ])?;
            ensure!(
                out.code == Some(3),
                "kubectl exited {:?}: {}",
                out.code,
                out.stderr
            );
            ensure!(
                out.stdout == "hello from the pod\n",
                "stdout {:?}",
                out.stdout
            );
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let recording = loop {
                let recordings = stack.recordings()?;
                if let Some(done) = recordings.iter().find(|r| r["outcome"] != "recording") {
                    break done.clone();
                }
                ensure!(
                    std::time::Instant::now() < deadline,
                    "no finished recording: {recordings:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            ensure!(recording["outcome"] == "complete", "recording {recording}");
            ensure!(recording["exitCode"] == 3, "recording {recording}");
            let id = recording["id"].as_str().unwrap_or_default().to_string();
            let cast = stack.recording_cast(&id)?;
            ensure!(cast.contains("hello from the pod"), "cast:\n{cast}");
            Ok(format!("recording {id}: {} bytes, exit code 3", cast.len()))
        },
    )?;
    step(
        "API request events (the grant has enableEvents): what the caller did, in order",
        || {
            let events =
                stack.events("type=kubernetes-api-request&user=demo@example.com&limit=1000")?;
            let resource: Vec<String> = events
                .iter()
                .filter(|e| e["kubernetes"]["IsResourceRequest"] == true)
                .map(|e| {
                    let k = &e["kubernetes"];
                    let name = k["Name"].as_str().unwrap_or_default();
                    let sub = k["Subresource"].as_str().unwrap_or_default();
                    format!(
                        "{} {}{}{} in {:?}",
                        k["Verb"].as_str().unwrap_or_default(),
                        k["Resource"].as_str().unwrap_or_default(),
                        if name.is_empty() {
                            String::new()
                        } else {
                            format!("/{name}")
                        },
                        if sub.is_empty() {
                            String::new()
                        } else {
                            format!("/{sub}")
                        },
                        k["Namespace"].as_str().unwrap_or_default(),
                    )
                })
                .collect();
            ensure!(
                resource.iter().any(|r| r.starts_with("watch pods")),
                "no watch event among {resource:?}"
            );
            ensure!(
                resource.iter().any(|r| r.contains("pods/demo/exec")),
                "no exec event among {resource:?}"
            );
            Ok(format!(
                "{} events, {} for resources:\n{}",
                events.len(),
                resource.len(),
                resource.join("\n")
            ))
        },
    )?;
    step("upstream saw only the proxy's credentials", || {
        let requests = stack.upstream_requests()?;
        for request in &requests {
            let text = request.to_string();
            ensure!(
                text.contains(&format!("Bearer {PROXY_TOKEN}")),
                "request without proxy token: {text}"
            );
            ensure!(
                !text.contains("mallory"),
                "caller impersonation leaked: {text}"
            );
        }
        Ok(format!("{} requests checked", requests.len()))
    })?;
    step("proxy metrics", || {
        let metrics = stack.metrics()?;
        let line = metrics
            .lines()
            .find(|l| l.starts_with("k8s_auth_proxy_requests_proxied "))
            .context("no requests_proxied metric")?;
        Ok(line.to_string())
    })?;
    println!("\ndemo script: all steps passed");
    // Only filters that the steps above proved to match (the watch request event, the recording).
    println!(
        "\nWhat the recorder kept stays in {recordings} until the next demo:\n  \
         {bin}/kube-recorder ls --dir {recordings}\n  \
         {bin}/kube-recorder events --dir {recordings} --user demo@example.com --verb watch\n\n\
         Mind: the demo pod is no container. The stand-in apiserver ran the `kubectl exec` command \
         above as a real process on this machine, as the current user.",
        recordings = stack.dir.join("recordings").display(),
        bin = crate::binaries::bin_dir().display(),
    );
    Ok(())
}

fn step(title: &str, run: impl FnOnce() -> anyhow::Result<String>) -> anyhow::Result<()> {
    println!("\n==> {title}");
    match run() {
        Ok(result) => {
            for line in result.lines() {
                println!("    {line}");
            }
            Ok(())
        }
        Err(error) => bail!("step failed: {title}: {error:#}"),
    }
}
