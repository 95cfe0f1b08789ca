//! Capability rules: legacy fallback, tag groups, malformed and unknown content.

mod support;

use capmodel::{
    impersonation_rules, kubernetes_rules, CallerPolicy, PolicyError, RuleErrorKind, WhoIs,
    KUBERNETES_CAP, LEGACY_KUBERNETES_CAP,
};
use serde_json::{json, Value};
use support::whois_fixture;

/// A fixture's identity with another CapMap.
fn with_caps(fixture: &str, cap_map: Value) -> WhoIs {
    let mut who = whois_fixture(fixture);
    who.cap_map = serde_json::from_value(cap_map).expect("test CapMap");
    who
}

fn policy_error(who: &WhoIs) -> PolicyError {
    match CallerPolicy::from_whois(who) {
        Ok(policy) => panic!("expected an error, got {policy:?}"),
        Err(err) => err,
    }
}

#[test]
fn legacy_is_ignored_when_the_current_name_has_rules() {
    let who = with_caps(
        "legacy-cap.json",
        json!({
            KUBERNETES_CAP: [{"impersonate": {"groups": ["current"]}}],
            LEGACY_KUBERNETES_CAP: [{"impersonate": {"groups": ["legacy-ops"]}}],
        }),
    );
    let policy = CallerPolicy::from_whois(&who).expect("policy");
    assert_eq!(policy.impersonation.groups, ["current"]);
}

#[test]
fn legacy_is_used_when_current_rules_grant_nothing_but_exist() {
    // A rule without `impersonate` is still a rule: no fallback, and a user node gets no group.
    let who = with_caps(
        "legacy-cap.json",
        json!({
            KUBERNETES_CAP: [{"enableEvents": true}],
            LEGACY_KUBERNETES_CAP: [{"impersonate": {"groups": ["legacy-ops"]}}],
        }),
    );
    let policy = CallerPolicy::from_whois(&who).expect("policy");
    assert!(policy.impersonation.groups.is_empty());
    assert!(policy.recording.events);
}

#[test]
fn legacy_rules_never_record() {
    let who = with_caps(
        "legacy-cap.json",
        json!({ LEGACY_KUBERNETES_CAP: [{"recorderAddrs": ["10.0.0.1:80"], "enforceRecorder": true}] }),
    );
    let policy = CallerPolicy::from_whois(&who).expect("policy");
    assert!(!policy.recording.is_recorded());
    assert!(policy.recording.fail_open);
}

#[test]
fn tagged_node_with_rule_groups_does_not_get_its_tags() {
    let who = with_caps(
        "tagged-node.json",
        json!({ KUBERNETES_CAP: [{"impersonate": {"groups": ["deployers"]}}, {"impersonate": {"groups": []}}] }),
    );
    let policy = CallerPolicy::from_whois(&who).expect("policy");
    assert_eq!(policy.impersonation.user, "ci-runner-7.tail1a2b3.ts.net");
    assert_eq!(policy.impersonation.groups, ["deployers"]);
}

#[test]
fn tagged_node_with_groupless_rules_gets_its_tags() {
    let who = with_caps(
        "tagged-node.json",
        json!({ KUBERNETES_CAP: [{"recorderAddrs": ["10.0.0.1:80"]}] }),
    );
    let policy = CallerPolicy::from_whois(&who).expect("policy");
    assert_eq!(policy.impersonation.groups, ["tag:ci", "tag:deployer"]);
    assert!(policy.recording.is_recorded() && policy.recording.fail_open);
}

#[test]
fn recorder_tags_alone_give_no_addresses() {
    let who = with_caps(
        "user-node.json",
        json!({ KUBERNETES_CAP: [{"recorder": ["tag:k8s-recorder"], "enforceRecorder": true}] }),
    );
    let policy = CallerPolicy::from_whois(&who).expect("policy");
    assert!(!policy.recording.is_recorded());
    assert!(policy.recording.refuses_unrecorded());
}

#[test]
fn recorder_addrs_not_an_array() {
    let who = with_caps(
        "user-node.json",
        json!({ KUBERNETES_CAP: [{}, {"recorderAddrs": "100.88.1.2:80"}] }),
    );
    let err = policy_error(&who);
    let PolicyError::MalformedRule {
        capability,
        index,
        reason,
    } = &err
    else {
        panic!("unexpected error {err}");
    };
    assert_eq!(capability, KUBERNETES_CAP);
    assert_eq!(*index, 1);
    assert_eq!(reason.path(), "recorderAddrs");
    assert_eq!(
        err.to_string(),
        "capability \"tailscale.com/cap/kubernetes\" rule 1 is malformed: invalid type: string \
         \"100.88.1.2:80\", expected an array at recorderAddrs"
    );
}

#[test]
fn bad_recorder_address() {
    let who = with_caps(
        "user-node.json",
        json!({ KUBERNETES_CAP: [{}, {}, {"recorderAddrs": ["fd7a::1:80"]}] }),
    );
    let err = policy_error(&who);
    assert!(
        matches!(&err, PolicyError::MalformedRule { index: 2, reason, .. }
            if matches!(reason.kind(), RuleErrorKind::InvalidAddress { value } if value == "fd7a::1:80")
                && reason.path() == "recorderAddrs[0]"),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(
            "capability \"tailscale.com/cap/kubernetes\" rule 2 is malformed: invalid socket address syntax"
        ),
        "{message}"
    );
    assert!(message.ends_with("at recorderAddrs[0]"), "{message}");
}

#[test]
fn impersonate_not_an_object() {
    let who = with_caps(
        "user-node.json",
        json!({ KUBERNETES_CAP: [{"impersonate": ["system:masters"]}] }),
    );
    let err = policy_error(&who);
    assert_eq!(
        err.to_string(),
        "capability \"tailscale.com/cap/kubernetes\" rule 0 is malformed: invalid type: array, \
         expected an object at impersonate"
    );
}

#[test]
fn malformed_rule_fails_both_impersonation_and_recording() {
    let who = with_caps(
        "user-node.json",
        json!({ KUBERNETES_CAP: [{"enforceRecorder": "yes"}] }),
    );
    assert!(kubernetes_rules(&who.cap_map).is_err());
    assert!(impersonation_rules(&who.cap_map).is_err());
    assert!(matches!(
        policy_error(&who),
        PolicyError::MalformedRule { index: 0, .. }
    ));
}

#[test]
fn malformed_legacy_capability_is_an_error_when_read() {
    let who = with_caps(
        "legacy-cap.json",
        json!({ LEGACY_KUBERNETES_CAP: [{"impersonate": {"groups": "legacy-ops"}}] }),
    );
    let err = policy_error(&who);
    assert!(
        err.to_string()
            .starts_with("capability \"https://tailscale.com/cap/kubernetes\" rule 0 is malformed"),
        "{err}"
    );
}

#[test]
fn rule_that_is_not_an_object() {
    let who = with_caps(
        "user-node.json",
        json!({ KUBERNETES_CAP: ["system:masters"] }),
    );
    assert_eq!(
        policy_error(&who).to_string(),
        "capability \"tailscale.com/cap/kubernetes\" rule 0 is malformed: invalid type: string \
         \"system:masters\", expected an object"
    );
}

#[test]
fn unknown_fields_and_capabilities_are_ignored() {
    let who = with_caps(
        "user-node.json",
        json!({
            KUBERNETES_CAP: [{
                "impersonate": {"groups": ["eng"], "users": ["root"], "extra": {"a": 1}},
                "enableSessionRecordings": true,
                "futureField": [1, 2, {"x": null}],
                "recorderAddrs": ["100.88.1.2:80"],
            }],
            "example.com/cap/other": ["anything", 3, null],
        }),
    );
    let policy = CallerPolicy::from_whois(&who).expect("policy");
    assert_eq!(policy.impersonation.groups, ["eng"]);
    assert_eq!(policy.recording.recorders.len(), 1);
}

#[test]
fn keys_match_case_insensitively_like_go() {
    // Go's encoding/json (which Tailscale uses) would enforce recording here; so must we.
    let who = with_caps(
        "user-node.json",
        json!({ KUBERNETES_CAP: [{"EnforceRecorder": true, "Impersonate": {"Groups": ["eng"]}}] }),
    );
    let policy = CallerPolicy::from_whois(&who).expect("policy");
    assert!(!policy.recording.fail_open);
    assert_eq!(policy.impersonation.groups, ["eng"]);
}

#[test]
fn null_rule_and_null_fields_are_empty() {
    let who = with_caps(
        "user-node.json",
        json!({ KUBERNETES_CAP: [null, {"impersonate": null, "recorderAddrs": null, "enforceRecorder": null}] }),
    );
    let policy = CallerPolicy::from_whois(&who).expect("policy");
    assert!(policy.impersonation.groups.is_empty());
    assert!(policy.recording.fail_open && !policy.recording.is_recorded());
}

#[test]
fn group_that_is_not_a_header_value_is_refused() {
    let who = with_caps(
        "user-node.json",
        json!({ KUBERNETES_CAP: [{"impersonate": {"groups": ["ok", "evil\r\nImpersonate-Group: system:masters"]}}] }),
    );
    let err = policy_error(&who);
    assert!(matches!(err, PolicyError::InvalidGroup { .. }), "{err}");
    assert!(err.to_string().contains("control character"), "{err}");
}

#[test]
fn tagged_node_without_name_is_refused() {
    let mut who = whois_fixture("tagged-node.json");
    who.node.name = ".".into();
    let err = policy_error(&who);
    assert!(matches!(err, PolicyError::InvalidUser { .. }), "{err}");
}
