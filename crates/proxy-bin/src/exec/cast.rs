//! What a recording says about its session: the asciicast header from the caller and the request.

use std::time::{SystemTime, UNIX_EPOCH};

use recorder_client::{Caller, CastHeader, KubernetesSession, Session, SessionType};
use sessiontap::SessionParams;

/// The pod an exec/attach request is for, from its path
/// `/api/v1/namespaces/{namespace}/pods/{pod}/{exec|attach}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The namespace.
    pub(crate) namespace: String,
    /// The pod.
    pub(crate) pod: String,
    /// exec or attach.
    pub(crate) session_type: SessionType,
}

impl Target {
    /// Reads the target from the request path as the API server does (`requestinfo`: the path is
    /// percent-decoded before it is split), so `d%65mo` is recorded as the pod `demo` it runs in.
    pub(crate) fn from_path(path: &str) -> Option<Target> {
        let info = requestinfo::parse("POST", path, "");
        let core_v1_pods = info.is_resource_request
            && info.api_prefix == "api"
            && info.api_version == "v1"
            && info.resource == "pods";
        if !core_v1_pods || info.namespace.is_empty() || info.name.is_empty() {
            return None;
        }
        let session_type = match info.subresource.as_str() {
            "exec" => SessionType::Exec,
            "attach" => SessionType::Attach,
            _ => return None,
        };
        Some(Target {
            namespace: info.namespace,
            pod: info.name,
            session_type,
        })
    }
}

/// The recording's header, tty flag and whether its input is recorded (the grant's `recordInput`;
/// in a tty session only what the terminal echoes). The command is the exec command joined with
/// spaces, as Tailscale's proxy records it; the timestamp is now.
pub(crate) fn session(
    who: &crate::identity::Caller,
    target: &Target,
    params: &SessionParams,
    record_input: bool,
) -> Session {
    let caller = Caller::from(&who.description);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default();
    let header = CastHeader::kubernetes(
        timestamp,
        caller,
        params.command.join(" "),
        KubernetesSession {
            pod_name: target.pod.clone(),
            namespace: target.namespace.clone(),
            container: params.container.clone().unwrap_or_default(),
            session_type: target.session_type,
        },
    );
    Session::new(header, params.tty).with_record_input(record_input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_from_path() {
        assert_eq!(
            Target::from_path("/api/v1/namespaces/prod/pods/web-1/exec"),
            Some(Target {
                namespace: "prod".into(),
                pod: "web-1".into(),
                session_type: SessionType::Exec
            })
        );
        assert_eq!(
            Target::from_path("/api/v1/namespaces/prod/pods/web-1/attach").map(|t| t.session_type),
            Some(SessionType::Attach)
        );
        assert_eq!(
            Target::from_path("/api/v1/namespaces/prod/pods/web-1/log"),
            None
        );
    }

    #[test]
    fn names_are_recorded_as_the_apiserver_decodes_them() {
        assert_eq!(
            Target::from_path("/api/v1/namespaces/d%65fault/pods/d%65mo/exec"),
            Some(Target {
                namespace: "default".into(),
                pod: "demo".into(),
                session_type: SessionType::Exec
            })
        );
        assert_eq!(
            Target::from_path("/api/v1/namespaces/a/pods/x%2Fy/exec"),
            None,
            "x/y/exec is not the exec subresource of a pod"
        );
        assert_eq!(
            Target::from_path("/api/v1/namespaces/a/pods/x%2Fexec"),
            Some(Target {
                namespace: "a".into(),
                pod: "x".into(),
                session_type: SessionType::Exec
            }),
            "the API server reads pods/x%2Fexec as the exec subresource of x"
        );
        for other in [
            "/api/v1/namespaces/a/pods/x/log",
            "/apis/apps/v1/namespaces/a/pods/x/exec",
            "/api/v2/namespaces/a/pods/x/exec",
            "/api/v1/namespaces/a/services/x/exec",
            "/api/v1/pods/x/exec",
        ] {
            assert_eq!(Target::from_path(other), None, "{other}");
        }
    }
}
