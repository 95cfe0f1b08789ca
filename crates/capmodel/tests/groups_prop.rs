//! Property: impersonated groups are distinct and keep first-seen order, whatever the rules.

use std::collections::HashSet;

use capmodel::{CallerPolicy, Node, UserProfile, WhoIs, KUBERNETES_CAP};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Group names from a small alphabet, so that rules often repeat each other.
fn group() -> impl Strategy<Value = String> {
    prop_oneof!["[a-c]", "system:[a-b]{1,2}", "[A-Za-z0-9:._@-]{1,12}"]
}

fn rules() -> impl Strategy<Value = Vec<Option<Vec<String>>>> {
    prop::collection::vec(prop::option::of(prop::collection::vec(group(), 0..6)), 0..6)
}

fn who(tags: Vec<String>, rules: &[Option<Vec<String>>]) -> WhoIs {
    let rules: Vec<Value> = rules
        .iter()
        .map(|groups| match groups {
            Some(groups) => json!({ "impersonate": { "groups": groups } }),
            None => json!({ "recorder": ["tag:rec"] }),
        })
        .collect();
    WhoIs {
        node: Node {
            name: "host.tailnet.ts.net.".into(),
            tags,
            ..Node::default()
        },
        user_profile: UserProfile {
            login_name: "alice@example.com".into(),
            ..UserProfile::default()
        },
        cap_map: [(KUBERNETES_CAP.to_owned(), rules)].into_iter().collect(),
    }
}

/// The reference: first occurrence of each group across all rules, in order.
fn first_seen(rules: &[Option<Vec<String>>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for group in rules.iter().flatten().flatten() {
        if !out.contains(group) {
            out.push(group.clone());
        }
    }
    out
}

proptest! {
    #[test]
    fn groups_are_distinct_in_first_seen_order(
        tags in prop::collection::vec("tag:[a-d]", 0..3),
        rules in rules(),
    ) {
        let who = who(tags.clone(), &rules);
        let policy = CallerPolicy::from_whois(&who).expect("valid policy");
        let groups = policy.impersonation.groups;

        let distinct: HashSet<&String> = groups.iter().collect();
        prop_assert_eq!(distinct.len(), groups.len(), "duplicates in {:?}", groups);

        let expected = first_seen(&rules);
        if tags.is_empty() {
            prop_assert_eq!(&policy.impersonation.user, "alice@example.com");
            prop_assert_eq!(groups, expected);
        } else if expected.is_empty() {
            prop_assert_eq!(&policy.impersonation.user, "host.tailnet.ts.net");
            let mut tag_groups: Vec<String> = Vec::new();
            for tag in tags {
                if !tag_groups.contains(&tag) {
                    tag_groups.push(tag);
                }
            }
            prop_assert_eq!(groups, tag_groups);
        } else {
            prop_assert_eq!(groups, expected);
        }
    }
}
