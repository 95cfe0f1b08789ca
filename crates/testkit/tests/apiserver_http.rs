//! The apiserver stand-in's HTTP behaviour, exercised with reqwest against an in-process server.
#![allow(clippy::unwrap_used)]

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use testkit::apiserver::{
    ApiServer, ApiServerConfig, GeneratedPodsConfig, PodConfig, ServeOptions,
};

const TABLE_ACCEPT: &str =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
/// Bounds every wait on the network, so a bug fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

async fn start(config: ApiServerConfig) -> ApiServer {
    ApiServer::start(config, ServeOptions::default())
        .await
        .unwrap()
}

fn request(server: &ApiServer, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
    let mut req = Client::new().request(method, format!("{}{path}", server.url()));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req
}

async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let resp = tokio::time::timeout(PATIENCE, req.send())
        .await
        .unwrap()
        .unwrap();
    let status = resp.status();
    let body = resp.bytes().await.unwrap();
    let value =
        serde_json::from_slice(&body).unwrap_or_else(|_| json!(String::from_utf8_lossy(&body)));
    (status, value)
}

fn with_json(req: RequestBuilder, body: &Value) -> RequestBuilder {
    req.header("content-type", "application/json")
        .body(body.to_string())
}

/// The first `n` cells of a table row.
fn cells(row: &Value, n: usize) -> Vec<Value> {
    row["cells"].as_array().unwrap()[..n].to_vec()
}

async fn get(server: &ApiServer, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    send(request(server, Method::GET, path, token)).await
}

async fn whoami(req: RequestBuilder) -> (StatusCode, Value) {
    // kubectl sends a protobuf body; the stand-in ignores the body.
    send(
        req.header("content-type", "application/vnd.kubernetes.protobuf")
            .body(vec![0x6b, 0x38, 0x73, 0x00]),
    )
    .await
}

/// Newline-delimited JSON read from a streaming body.
struct Lines {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buf: Vec<u8>,
}

impl Lines {
    async fn open(req: RequestBuilder) -> Lines {
        let resp = tokio::time::timeout(PATIENCE, req.send())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        Lines {
            stream: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
        }
    }

    /// The next event, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            match tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .unwrap()
            {
                Some(chunk) => self.buf.extend_from_slice(&chunk.unwrap()),
                None => return None,
            }
        }
    }
}

#[tokio::test]
async fn discovery_has_the_apiserver_shapes() {
    let server = start(ApiServerConfig::default()).await;
    let (status, version) = get(&server, "/version", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (version["major"].as_str(), version["minor"].as_str()),
        (Some("1"), Some("32"))
    );
    assert_eq!(version["gitVersion"], "v1.32.4");

    let (_, api) = get(&server, "/api", None).await;
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
    assert_eq!(
        api["serverAddressByClientCIDRs"][0]["serverAddress"],
        server.addr().to_string()
    );

    let (_, apis) = get(&server, "/apis", None).await;
    assert_eq!(apis["kind"], "APIGroupList");
    assert_eq!(
        apis["groups"][0]["preferredVersion"]["groupVersion"],
        "authentication.k8s.io/v1"
    );

    let (_, core) = get(&server, "/api/v1", None).await;
    assert_eq!(core["groupVersion"], "v1");
    let resources = core["resources"].as_array().unwrap();
    let pods = resources.iter().find(|r| r["name"] == "pods").unwrap();
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["shortNames"], json!(["po"]));
    for verb in [
        "get", "list", "watch", "create", "delete", "update", "patch",
    ] {
        assert!(
            pods["verbs"].as_array().unwrap().contains(&json!(verb)),
            "pods verb {verb}"
        );
    }
    for sub in ["pods/exec", "pods/attach", "pods/log", "namespaces"] {
        assert!(
            resources.iter().any(|r| r["name"] == sub),
            "{sub} advertised"
        );
    }

    let (_, authn) = get(&server, "/apis/authentication.k8s.io/v1", None).await;
    assert_eq!(authn["resources"][0]["name"], "selfsubjectreviews");
    assert_eq!(authn["resources"][0]["verbs"], json!(["create"]));

    let (status, missing) = get(&server, "/apis/apps/v1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["kind"], "Status");
    assert_eq!(missing["reason"], "NotFound");
}

#[tokio::test]
async fn version_follows_the_config() {
    let server = start(ApiServerConfig {
        version: "v1.27.16".into(),
        ..Default::default()
    })
    .await;
    let (_, version) = get(&server, "/version", None).await;
    assert_eq!(version["minor"], "27");
}

#[tokio::test]
async fn tokens_anonymous_and_unknown_tokens() {
    let server = start(ApiServerConfig::default()).await;
    let review = "/apis/authentication.k8s.io/v1/selfsubjectreviews";

    let (status, alice) = whoami(request(&server, Method::POST, review, Some("alice-token"))).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(alice["kind"], "SelfSubjectReview");
    assert_eq!(
        alice["status"]["userInfo"],
        json!({"username": "alice", "groups": ["devs", "system:authenticated"]})
    );

    let (_, anonymous) = whoami(request(&server, Method::POST, review, None)).await;
    assert_eq!(
        anonymous["status"]["userInfo"],
        json!({"username": "system:anonymous", "groups": ["system:unauthenticated"]})
    );

    let (status, denied) = get(
        &server,
        "/api/v1/namespaces/default/pods",
        Some("no-such-token"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        denied,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
}

#[tokio::test]
async fn anonymous_auth_can_be_turned_off() {
    let server = start(ApiServerConfig {
        anonymous_auth: false,
        ..Default::default()
    })
    .await;
    let (status, _) = get(&server, "/api/v1/namespaces/default/pods", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = get(
        &server,
        "/api/v1/namespaces/default/pods",
        Some("alice-token"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn impersonation_by_an_allowed_identity() {
    let server = start(ApiServerConfig::default()).await;
    let req = request(
        &server,
        Method::POST,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some("proxy-token"),
    )
    .header("Impersonate-User", "bob@example.com")
    .header("Impersonate-Group", "tailnet-devs")
    .header("Impersonate-Group", "ops")
    .header("Impersonate-Extra-Scopes", "read");
    let (status, review) = whoami(req).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        review["status"]["userInfo"],
        json!({"username": "bob@example.com", "groups": ["tailnet-devs", "ops", "system:authenticated"], "extra": {"scopes": ["read"]}})
    );

    let logged = server.requests().pop().unwrap();
    assert_eq!(logged.authorization.as_deref(), Some("Bearer proxy-token"));
    assert_eq!(logged.impersonate_user.as_deref(), Some("bob@example.com"));
    assert_eq!(logged.impersonate_groups, ["tailnet-devs", "ops"]);
    assert_eq!(
        logged.authenticated_user.unwrap().username,
        "system:serviceaccount:tailscale:kube-auth-proxy"
    );
    assert_eq!(logged.effective_user.unwrap().username, "bob@example.com");
}

#[tokio::test]
async fn impersonation_by_others_is_forbidden_in_the_apiservers_words() {
    let server = start(ApiServerConfig::default()).await;
    let req = request(
        &server,
        Method::GET,
        "/api/v1/namespaces/default/pods",
        Some("alice-token"),
    )
    .header("Impersonate-User", "bob");
    let (status, body) = send(req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["reason"], "Forbidden");
    assert_eq!(
        body["message"],
        "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    assert_eq!(body["details"], json!({"name": "bob", "kind": "users"}));

    // Anonymous callers cannot impersonate either.
    let (status, body) =
        send(request(&server, Method::GET, "/api", None).header("Impersonate-User", "bob")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("User \"system:anonymous\" cannot impersonate"));

    // Groups without a user: the apiserver's impersonation filter answers an internal error.
    let req = request(&server, Method::GET, "/api", Some("proxy-token"))
        .header("Impersonate-Group", "devs");
    let (status, body) = send(req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .ends_with("without impersonating a user"));
}

fn bulk_config(count: usize) -> ApiServerConfig {
    let mut config = ApiServerConfig::default();
    config.generated_pods.push(GeneratedPodsConfig {
        namespace: "bulk".into(),
        prefix: "pod-".into(),
        count,
        labels: [("tier".to_owned(), "bulk".to_owned())].into(),
    });
    config
}

#[tokio::test]
async fn lists_5000_pods_whole_and_in_chunks() {
    let server = start(bulk_config(5000)).await;
    let (status, list) = get(&server, "/api/v1/namespaces/bulk/pods", Some("alice-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"].as_array().unwrap().len(), 5000);
    assert!(
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 5000
    );

    // kubectl's chunking: limit=500 and continue until the token is gone.
    let mut names = std::collections::BTreeSet::new();
    let mut path = "/api/v1/pods?limit=500&labelSelector=tier%3Dbulk".to_owned();
    loop {
        let (_, page) = get(&server, &path, None).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 500);
        names.extend(
            items
                .iter()
                .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(token) => {
                path = format!("/api/v1/pods?limit=500&labelSelector=tier%3Dbulk&continue={token}")
            }
            None => break,
        }
    }
    assert_eq!(names.len(), 5000);
}

#[tokio::test]
async fn selectors_filter_lists() {
    let server = start(bulk_config(20)).await;
    let (_, list) = get(&server, "/api/v1/pods?labelSelector=app%3Ddemo", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = get(
        &server,
        "/api/v1/pods?fieldSelector=metadata.name%3Dpod-7",
        None,
    )
    .await;
    assert_eq!(list["items"][0]["metadata"]["namespace"], "bulk");
    let (status, body) = get(&server, "/api/v1/pods?fieldSelector=spec.bogus%3D1", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "field label not supported: spec.bogus");
}

#[tokio::test]
async fn tables_for_kubectl_get() {
    let server = start(ApiServerConfig::default()).await;
    let (status, table) = send(
        request(
            &server,
            Method::GET,
            "/api/v1/namespaces/default/pods?limit=500",
            None,
        )
        .header("accept", TABLE_ACCEPT),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns[..5], ["Name", "Ready", "Status", "Restarts", "Age"]);
    let row = &table["rows"][0];
    assert_eq!(
        cells(row, 4),
        [json!("demo"), json!("1/1"), json!("Running"), json!("0")]
    );
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["labels"]["app"], "demo");

    let (_, table) = send(
        request(
            &server,
            Method::GET,
            "/api/v1/namespaces/default/pods/demo?includeObject=None",
            None,
        )
        .header("accept", TABLE_ACCEPT),
    )
    .await;
    assert_eq!(table["rows"].as_array().unwrap().len(), 1);
    assert!(table["rows"][0].get("object").is_none());

    let (_, table) = send(
        request(&server, Method::GET, "/api/v1/namespaces", None).header("accept", TABLE_ACCEPT),
    )
    .await;
    assert_eq!(
        cells(&table["rows"][0], 2),
        [json!("default"), json!("Active")]
    );
}

#[tokio::test]
async fn watch_reports_a_pod_added_after_it_started() {
    let server = start(ApiServerConfig::default()).await;
    let mut watch = Lines::open(request(
        &server,
        Method::GET,
        "/api/v1/namespaces/default/pods?watch=true",
        None,
    ))
    .await;
    // Without a resourceVersion the watch starts with the existing pods: once this arrives, the
    // watch is established.
    let first = watch.next().await.unwrap();
    assert_eq!(
        (
            first["type"].as_str(),
            first["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("demo"))
    );

    server.add_pod(&PodConfig::new("default", "late")).unwrap();
    let added = watch.next().await.unwrap();
    assert_eq!(added["type"], "ADDED");
    assert_eq!(added["object"]["metadata"]["name"], "late");
    assert_eq!(added["object"]["status"]["phase"], "Running");

    // Other namespaces are not reported; deletions are.
    server
        .add_pod(&PodConfig::new("elsewhere", "other"))
        .unwrap();
    server.delete_pod("default", "late").unwrap();
    let deleted = watch.next().await.unwrap();
    assert_eq!(
        (
            deleted["type"].as_str(),
            deleted["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("late"))
    );
}

#[tokio::test]
async fn table_watch_from_a_list_resource_version() {
    let server = start(ApiServerConfig::default()).await;
    let (_, list) = send(
        request(
            &server,
            Method::GET,
            "/api/v1/namespaces/default/pods",
            None,
        )
        .header("accept", TABLE_ACCEPT),
    )
    .await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    // Changes after the list's resourceVersion are delivered however late the watch starts.
    let hook = Client::new().post(format!("{}/testkit/pods", server.url()));
    let (status, _) =
        send(hook.body(r#"{"metadata":{"name":"via-hook"},"spec":{"containers":[{"name":"c"}]}}"#))
            .await;
    assert_eq!(status, StatusCode::CREATED);

    let path = format!("/api/v1/namespaces/default/pods?resourceVersion={rv}&watch=true");
    let mut watch =
        Lines::open(request(&server, Method::GET, &path, None).header("accept", TABLE_ACCEPT))
            .await;
    let added = watch.next().await.unwrap();
    assert_eq!(added["type"], "ADDED");
    assert_eq!(added["object"]["kind"], "Table");
    assert!(
        added["object"]["columnDefinitions"].is_array(),
        "first event carries the columns"
    );
    assert_eq!(added["object"]["rows"][0]["cells"][0], "via-hook");

    server.delete_pod("default", "via-hook").unwrap();
    let deleted = watch.next().await.unwrap();
    assert_eq!(deleted["type"], "DELETED");
    assert!(
        deleted["object"]["columnDefinitions"].is_null(),
        "later events omit the columns"
    );
}

#[tokio::test]
async fn watch_ends_after_timeout_seconds() {
    let server = start(ApiServerConfig::default()).await;
    let mut watch = Lines::open(request(
        &server,
        Method::GET,
        "/api/v1/pods?watch=1&timeoutSeconds=1",
        None,
    ))
    .await;
    assert_eq!(watch.next().await.unwrap()["type"], "ADDED");
    assert!(watch.next().await.is_none(), "the stream ends");
}

#[tokio::test]
async fn watch_from_a_forgotten_resource_version_is_expired() {
    let server = start(bulk_config(1100)).await;
    let mut watch = Lines::open(request(
        &server,
        Method::GET,
        "/api/v1/pods?watch=1&resourceVersion=3",
        None,
    ))
    .await;
    let error = watch.next().await.unwrap();
    assert_eq!(error["type"], "ERROR");
    assert_eq!(error["object"]["code"], 410);
    assert_eq!(error["object"]["reason"], "Expired");
    assert!(watch.next().await.is_none());
}

#[tokio::test]
async fn create_get_patch_delete() {
    let server = start(ApiServerConfig::default()).await;
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}});
    let create = || {
        with_json(
            request(
                &server,
                Method::POST,
                "/api/v1/namespaces/default/pods?fieldManager=kubectl-create",
                Some("alice-token"),
            ),
            &pod,
        )
    };
    let (status, created) = send(create()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(created["metadata"]["uid"].is_string());
    let (status, conflict) = send(create()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        (conflict["reason"].as_str(), conflict["message"].as_str()),
        (Some("AlreadyExists"), Some("pods \"web\" already exists"))
    );

    let (status, _) = send(with_json(
        request(&server, Method::POST, "/api/v1/namespaces/nope/pods", None),
        &pod,
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let patch = request(
        &server,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/web",
        None,
    )
    .header("content-type", "application/merge-patch+json")
    .body(r#"{"metadata":{"labels":{"tier":"front"}}}"#);
    let (status, patched) = send(patch).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"app": "web", "tier": "front"})
    );

    let (status, deleted) = send(request(
        &server,
        Method::DELETE,
        "/api/v1/namespaces/default/pods/web",
        None,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["metadata"]["name"], "web");
    let (status, gone) = get(&server, "/api/v1/namespaces/default/pods/web", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gone["message"], "pods \"web\" not found");
    assert_eq!(gone["details"], json!({"name": "web", "kind": "pods"}));

    let (status, invalid) = send(with_json(
        request(
            &server,
            Method::POST,
            "/api/v1/namespaces/default/pods",
            None,
        ),
        &json!({"spec": {}}),
    ))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid["reason"], "Invalid");
}

#[tokio::test]
async fn request_log_hooks() {
    let server = start(ApiServerConfig::default()).await;
    get(
        &server,
        "/api/v1/namespaces/default/pods?limit=500",
        Some("alice-token"),
    )
    .await;
    let (status, log) = send(Client::new().get(format!("{}/testkit/requests", server.url()))).await;
    assert_eq!(status, StatusCode::OK);
    let entries = log.as_array().unwrap();
    assert_eq!(entries.len(), 1, "hooks are not logged");
    assert_eq!(entries[0]["method"], "GET");
    assert_eq!(
        entries[0]["path"],
        "/api/v1/namespaces/default/pods?limit=500"
    );
    assert_eq!(entries[0]["authorization"], "Bearer alice-token");
    assert_eq!(entries[0]["effectiveUser"]["username"], "alice");
    assert_eq!(entries[0]["status"], 200);

    let (status, _) =
        send(Client::new().delete(format!("{}/testkit/requests", server.url()))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn client_certificates_over_tls() {
    let mut config = ApiServerConfig::default();
    config
        .client_certs
        .push(testkit::apiserver::ClientCertConfig {
            name: "ops".into(),
            user: "carol".into(),
            groups: vec!["ops".into(), "oncall".into()],
            impersonate: false,
        });
    let server = ApiServer::start(config, ServeOptions::tls()).await.unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let ca = reqwest::Certificate::from_pem(server.ca_pem().unwrap().as_bytes()).unwrap();
    let cert = server.client_cert("ops").unwrap();
    let identity =
        reqwest::Identity::from_pem(format!("{}{}", cert.cert_pem, cert.key_pem).as_bytes())
            .unwrap();
    let with_cert = Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca.clone())
        .identity(identity)
        .build()
        .unwrap();
    let review = format!(
        "{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
        server.url()
    );
    let (status, body) = whoami(with_cert.post(&review)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body["status"]["userInfo"],
        json!({"username": "carol", "groups": ["ops", "oncall", "system:authenticated"]})
    );
    assert!(server.requests()[0].client_certificate);

    // Certificates are optional: tokens still work.
    let without = Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let (_, body) = whoami(without.post(&review).bearer_auth("alice-token")).await;
    assert_eq!(body["status"]["userInfo"]["username"], "alice");
}
