//! Policies of the real tailscaled whois answers in the repository's `testdata/whois/`.

mod support;

use std::net::SocketAddr;

use capmodel::{CallerPolicy, RecordingPolicy, KUBERNETES_CAP, LEGACY_KUBERNETES_CAP};
use support::whois_fixture;

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter()
        .map(|a| a.parse().expect("test address"))
        .collect()
}

#[test]
fn user_node_alice() {
    let who = whois_fixture("user-node.json");
    assert!(!who.node.is_tagged());
    assert_eq!(who.node.id, 5_284_732_190_412_345);
    assert_eq!(who.node.stable_id, "nQ9xk3CNTRL");
    assert_eq!(who.node.addresses.len(), 2);

    let policy = CallerPolicy::from_whois(&who).expect("alice's policy");
    assert_eq!(policy.impersonation.user, "alice@example.com");
    assert_eq!(
        policy.impersonation.groups,
        ["system:masters", "eng-admins", "viewers"]
    );
    assert_eq!(
        policy.recording,
        RecordingPolicy {
            recorders: addrs(&["100.88.1.2:80", "[fd7a:115c:a1e0::aa01:102]:80"]),
            fail_open: false,
            events: true,
            input: false,
            port_forward_data: false,
        }
    );
    assert!(policy.recording.is_recorded());
    assert!(!policy.recording.refuses_unrecorded());
}

#[test]
fn user_node_alice_description() {
    let desc = whois_fixture("user-node.json").describe();
    assert_eq!(desc.node, "alice-laptop.tail1a2b3.ts.net");
    assert_eq!(desc.node_id, "nQ9xk3CNTRL");
    assert_eq!(desc.user.as_deref(), Some("alice@example.com"));
    assert_eq!(desc.user_id, Some(48_102_938_475_610));
    assert!(desc.tags.is_empty());
}

#[test]
fn tagged_node_with_null_cap_map() {
    let who = whois_fixture("tagged-node.json");
    assert!(who.cap_map.is_empty());
    assert!(who.node.is_tagged());

    let policy = CallerPolicy::from_whois(&who).expect("tagged node's policy");
    assert_eq!(policy.impersonation.user, "ci-runner-7.tail1a2b3.ts.net");
    assert_eq!(policy.impersonation.groups, ["tag:ci", "tag:deployer"]);
    assert_eq!(policy.recording, RecordingPolicy::unrecorded());
    assert!(!policy.recording.refuses_unrecorded());
}

#[test]
fn tagged_node_description() {
    let desc = whois_fixture("tagged-node.json").describe();
    assert_eq!(desc.node, "ci-runner-7.tail1a2b3.ts.net");
    assert_eq!(desc.node_id, "nR7ci2CNTRL");
    assert_eq!(desc.user, None);
    assert_eq!(desc.user_id, None);
    assert_eq!(desc.tags, ["tag:ci", "tag:deployer"]);
}

#[test]
fn legacy_capability_impersonates_but_never_records() {
    let who = whois_fixture("legacy-cap.json");
    assert!(who.cap_map.contains_key(LEGACY_KUBERNETES_CAP));
    assert!(!who.cap_map.contains_key(KUBERNETES_CAP));

    let policy = CallerPolicy::from_whois(&who).expect("bob's policy");
    assert_eq!(policy.impersonation.user, "bob@example.com");
    assert_eq!(policy.impersonation.groups, ["legacy-ops"]);
    assert_eq!(policy.recording, RecordingPolicy::unrecorded());
}

#[test]
fn every_fixture_parses() {
    let dir = support::fixture_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let name = entry.expect("directory entry").file_name();
        let name = name.to_str().expect("UTF-8 fixture name");
        if name.ends_with(".json") {
            CallerPolicy::from_whois(&whois_fixture(name))
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            count += 1;
        }
    }
    assert!(
        count >= 3,
        "expected at least 3 fixtures in {}",
        dir.display()
    );
}
