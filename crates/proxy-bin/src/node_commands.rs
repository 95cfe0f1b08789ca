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

/// Whether a request whose path arrived as `raw_path` (percent-encoded) can be for the `nodes`
/// resource at all: only if the path spells `nodes` or holds an escape the apiserver decodes
/// first. Resource names are matched exactly (letter case included), and percent-decoding is the
/// only change the apiserver makes to a path before it splits it (dot segments and backslashes
/// are refused before this: `requestinfo::path_ambiguity`). Lets every other request of a
/// fail-closed caller skip parsing its path here.
pub(crate) fn may_name_nodes(raw_path: &str) -> bool {
    raw_path.contains('%') || raw_path.contains("nodes")
}

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
    fn paths_that_may_name_nodes_include_every_command_spelling() {
        for path in [
            "/api/v1/nodes/n1/proxy/run/default/demo/app",
            "/api/v1/n%6fdes/n1/proxy/run/default/demo/app",
            "/api/v1/%6Eodes/n1/proxy/exec/default/demo/app",
            "/api/v1/proxy/nodes/n1/run/default/demo/app",
        ] {
            assert!(may_name_nodes(path), "{path}");
            assert!(endpoint("POST", path).is_some(), "{path}");
        }
        for path in [
            "/api/v1/namespaces/default/pods/demo",
            "/api/v1/Nodes/n1/proxy/run/a/b/c",
        ] {
            assert!(!may_name_nodes(path), "{path}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Whatever path the shortcut lets pass reaches no kubelet command endpoint: it is only
        /// ever a shortcut for a parse that would have found none.
        #[test]
        fn a_path_that_cannot_name_nodes_reaches_no_command(
            prefix in proptest::sample::select(vec![
                "", "/api", "/api/v1", "/apis/g/v1", "/api/v1/proxy", "/api/v1/watch",
                "/api/v1/namespaces/default", "//api/v1", "/api%2fv1",
            ]),
            segments in proptest::collection::vec(
                proptest::sample::select(vec![
                    "nodes", "n%6fdes", "n%6Fdes", "%6eodes", "%6E%6F%64%65%73", "Nodes",
                    "node", "nodes%2fn1", "n1", "n1:10250", "proxy", "pr%6fxy", "run", "RUN",
                    "exec", "attach", "portForward", "cri", "%72un", "", "pods", "%", "%zz",
                ]),
                0..7,
            ),
            trailing_slash in proptest::bool::ANY,
        ) {
            let mut path = prefix.to_owned();
            for segment in &segments {
                path.push('/');
                path.push_str(segment);
            }
            if trailing_slash {
                path.push('/');
            }
            if !may_name_nodes(&path) {
                proptest::prop_assert_eq!(endpoint("POST", &path), None, "{}", path);
                proptest::prop_assert_eq!(endpoint("GET", &path), None, "{}", path);
            }
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
