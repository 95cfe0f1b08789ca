//! Kubelet endpoints behind `nodes/proxy` that run commands in containers.
//!
//! `POST /api/v1/nodes/{node}/proxy/run/{ns}/{pod}/{container}?cmd=...` has the kubelet run a
//! command and return its output; `exec`, `attach`, `portForward` and `cri` (the CRI streaming
//! server) open sessions the same way `pods/exec` does, but through the node proxy, where the
//! proxy's session recording never sees them (kubelet `pkg/kubelet/server/server.go`). A caller
//! whose grant requires recording must not reach them.

use requestinfo::RequestInfo;

/// The kubelet's command and streaming endpoints (first path segment after `proxy/`).
const COMMAND_ENDPOINTS: [&str; 5] = ["run", "exec", "attach", "portforward", "cri"];

/// The kubelet endpoint `info` reaches through the node proxy when it runs commands or opens
/// sessions, or `None`. The first non-empty segment after the node's name is compared without
/// regard to letter case, and one that is still percent-encoded after the apiserver's decoding
/// (which a server further along could decode again) counts too: when unsure, it is a command.
pub(crate) fn node_command_endpoint(info: &RequestInfo) -> Option<String> {
    if !info.is_resource_request || info.resource != "nodes" {
        return None;
    }
    // `/api/v1/nodes/{node}/proxy/...`: parts are nodes, {node}, proxy, then the kubelet path.
    // `/api/v1/proxy/nodes/{node}/...` (the old path-prefix verb): nodes, {node}, kubelet path.
    let rest = if info.subresource == "proxy" {
        info.parts.get(3..)?
    } else if info.verb == "proxy" {
        info.parts.get(2..)?
    } else {
        return None;
    };
    let first = rest.iter().find(|segment| !segment.is_empty())?;
    let lower = first.to_ascii_lowercase();
    (COMMAND_ENDPOINTS.contains(&lower.as_str()) || lower.contains('%')).then_some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(method: &str, path: &str) -> Option<String> {
        node_command_endpoint(&requestinfo::parse(method, path, ""))
    }

    #[test]
    fn command_endpoints_are_found_in_every_spelling() {
        for (path, want) in [
            ("/api/v1/nodes/n1/proxy/run/default/demo/app", "run"),
            ("/api/v1/nodes/n1:10250/proxy/exec/default/demo/app", "exec"),
            ("/api/v1/nodes/n1/proxy/attach/default/demo/app", "attach"),
            (
                "/api/v1/nodes/n1/proxy/portForward/default/demo",
                "portforward",
            ),
            ("/api/v1/nodes/n1/proxy/cri/exec/abc", "cri"),
            ("/api/v1/nodes/n1/proxy//RUN/default/demo/app", "run"),
            ("/api/v1/nodes/n1/proxy/%2572un/default/demo/app", "%72un"),
            ("/api/v1/nodes/n1/proxy/r%75n/default/demo/app", "run"),
            ("/api/v1/proxy/nodes/n1/run/default/demo/app", "run"),
        ] {
            assert_eq!(endpoint("POST", path).as_deref(), Some(want), "{path}");
        }
    }

    #[test]
    fn other_node_proxy_paths_and_resources_pass() {
        for path in [
            "/api/v1/nodes/n1/proxy/stats/summary",
            "/api/v1/nodes/n1/proxy/pods",
            "/api/v1/nodes/n1/proxy/",
            "/api/v1/nodes/n1",
            "/api/v1/nodes/n1/status",
            "/api/v1/namespaces/default/pods/run/exec",
            "/api/v1/namespaces/default/services/web/proxy/run",
        ] {
            assert_eq!(endpoint("GET", path), None, "{path}");
        }
    }
}
