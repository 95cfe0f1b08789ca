//! Caller identity and the Kubernetes capability grant model of an authenticating proxy for the
//! Kubernetes API: who a caller is (tailscaled's LocalAPI `whois` answer) and what its grants
//! say about impersonation and session recording.
//!
//! Implements, to match Tailscale's Kubernetes operator API server proxy:
//! - the `whois` answer, Go `apitype.WhoIsResponse` with `tailcfg.Node`,
//!   `tailcfg.UserProfile` and `tailcfg.PeerCapMap` (`docs/protocols.md` section 4);
//! - the capability rule, Go `kubetypes.KubernetesCapRule`, decoded with Go `encoding/json`
//!   semantics as `tailcfg.UnmarshalCapJSON` does (case-insensitive keys, `null` as zero);
//! - impersonation (`addImpersonationHeaders`) and recording (`determineRecorderConfig`) as
//!   `cmd/k8s-operator` derives them, including the legacy capability name and the
//!   tags-as-groups fallback for tagged nodes.
//!
//! Callers identified otherwise (a TLS client certificate) get the same [`CallerPolicy`] from
//! the proxy's policy file ([`PolicyFile`]), whose grants are capability rules.
//!
//! It is stricter than the reference where that can only prevent harm: a malformed rule is an
//! error (the proxy answers 403 with the reason) and names that HTTP cannot carry unchanged, an
//! empty user above all, are refused ([`NameProblem`]).
//!
//! Pure: serde only, no I/O, no clock, no globals.
//!
//! ```
//! use capmodel::{CallerPolicy, WhoIs};
//!
//! let who = WhoIs::from_json(br#"{
//!     "Node": {"ID": 1, "StableID": "nX", "Name": "laptop.tailnet.ts.net.", "User": 2},
//!     "UserProfile": {"ID": 2, "LoginName": "alice@example.com"},
//!     "CapMap": {"tailscale.com/cap/kubernetes": [
//!         {"impersonate": {"groups": ["eng"]}, "recorderAddrs": ["100.64.0.9:80"], "enforceRecorder": true}
//!     ]}
//! }"#)?;
//! let policy = CallerPolicy::from_whois(&who)?;
//! assert_eq!(policy.impersonation.user, "alice@example.com");
//! assert_eq!(policy.impersonation.groups, ["eng"]);
//! assert!(policy.recording.is_recorded() && !policy.recording.fail_open);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod caller;
mod capability;
mod error;
mod header_safe;
mod impersonation;
mod policy;
mod policy_file;
mod recording;
mod rule;
mod rule_decode;
mod whois;

pub use caller::CallerDescription;
pub use capability::{
    impersonation_rules, kubernetes_rules, rules_of, KUBERNETES_CAP, LEGACY_KUBERNETES_CAP,
};
pub use error::PolicyError;
pub use header_safe::{group_name_problem, user_name_problem, NameProblem};
pub use impersonation::Impersonation;
pub use policy::CallerPolicy;
pub use policy_file::{PolicyFile, PolicyFileError, PolicyRefusal, PolicyRule, Principal};
pub use recording::RecordingPolicy;
pub use rule::{ImpersonateRule, KubernetesCapRule};
pub use rule_decode::{RuleError, RuleErrorKind};
pub use whois::{CapMap, Node, UserProfile, WhoIs, WhoIsError};

/// The README's example, compiled and run as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
