//! Ordinary API traffic through the proxy: lists, watches and big lists stream through.

use std::time::Duration;

use e2e::stack::{default_apiserver_config, fixture_caller, metric_value, Stack, StackOptions};

const WATCH_DEADLINE: Duration = Duration::from_secs(60);

#[test]
fn get_pods_lists_the_stand_ins_pods() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    let output = stack
        .kubectl
        .run(&["get", "pods"])?
        .expect_success("get pods")?;
    assert!(output.stdout.contains("demo"), "{}", output.stdout);
    assert!(output.stdout.contains("Running"), "{}", output.stdout);
    let metrics = stack.metrics()?;
    let proxied = metric_value(&metrics, "k8s_auth_proxy_requests_proxied");
    let lookups = metric_value(&metrics, "k8s_auth_proxy_identity_lookups");
    assert!(proxied >= 3, "requests_proxied not counted:\n{metrics}");
    // kubectl's requests follow each other within --identity-ttl on one connection: the identity
    // source's answer is reused, not asked for once per request.
    assert!(
        lookups >= 1 && lookups < proxied,
        "{lookups} lookups for {proxied} requests:\n{metrics}"
    );
    Ok(())
}

#[test]
fn watch_delivers_an_event_while_open() -> anyhow::Result<()> {
    let stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    let mut watch = stack.kubectl.spawn_lines(&["get", "pods", "-w"])?;
    watch.wait_for("demo", WATCH_DEADLINE)?;
    stack.add_pod("default", "late-arrival")?;
    let line = watch.wait_for("late-arrival", WATCH_DEADLINE)?;
    assert!(line.contains("Running"), "{line}");
    Ok(())
}

#[test]
fn a_list_of_five_thousand_pods_arrives_whole() -> anyhow::Result<()> {
    let mut options = StackOptions::for_caller(fixture_caller("user-node")?);
    options.apiserver_config = default_apiserver_config(5000);
    let stack = Stack::start(options)?;
    let output = stack
        .kubectl
        .run(&["get", "pods", "-n", "bulk", "-o", "name"])?
        .expect_success("list 5000 pods")?;
    let names: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(names.len(), 5000, "got {} lines", names.len());
    assert!(names.iter().all(|n| n.starts_with("pod/pod-")));
    // And as one unpaginated JSON document of every pod.
    let output = stack
        .kubectl
        .run(&["get", "pods", "-n", "bulk", "-o", "json", "--chunk-size=0"])?
        .expect_success("list 5000 pods as JSON")?;
    let list = output.json()?;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(5000));
    Ok(())
}

/// Each client connection forwards on an upstream connection of its own, kept alive across its
/// requests: the requests of one client connection reach the API server on one connection, and
/// another client connection's never share it.
#[test]
fn each_client_connection_keeps_an_upstream_connection_of_its_own() -> anyhow::Result<()> {
    use e2e::raw::{request_bytes, RawClient};
    let stack = Stack::start(StackOptions::for_caller(fixture_caller("user-node")?))?;
    let mut peers = Vec::new();
    for client_name in ["first", "second"] {
        let mut client = RawClient::connect(&stack.proxy_url)?;
        for round in 0..3 {
            let path =
                format!("/api/v1/namespaces/default/pods/demo?client={client_name}&round={round}");
            client.send(&request_bytes("GET", &path, &[("Host", "proxy")], b""))?;
            let (head, body) = client.read_response()?;
            assert_eq!(head.status, 200, "{}", String::from_utf8_lossy(&body));
        }
        let seen: Vec<String> = stack
            .upstream_requests()?
            .iter()
            .filter(|request| {
                request["path"]
                    .as_str()
                    .is_some_and(|path| path.contains(&format!("client={client_name}&")))
            })
            .filter_map(|request| request["peer"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(seen.len(), 3, "{client_name}: {seen:?}");
        assert!(
            seen.iter().all(|peer| peer == &seen[0]),
            "{client_name}'s requests came on several upstream connections: {seen:?}"
        );
        peers.push(seen[0].clone());
    }
    assert_ne!(
        peers[0], peers[1],
        "two client connections shared one upstream connection"
    );
    Ok(())
}
