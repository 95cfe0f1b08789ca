//! The policy file in force (`--policy`): read at start (a bad file is a start-up error), then
//! re-read when it changes. A changed file that cannot be used is reported (log and
//! `k8s_auth_proxy_policy_reload_failures`) once per change, and the last good one stays in
//! force.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use capmodel::PolicyFile;

use super::reloadable::ReloadableFile;

/// The policy file and the rules in force.
pub(crate) type PolicyStore = ReloadableFile<PolicyFile>;

/// Reads the policy file at `path` now (`--policy`).
pub(crate) fn load_policy(path: PathBuf) -> anyhow::Result<PolicyStore> {
    ReloadableFile::load("--policy", path, |path| read(path).map(Arc::new))
}

fn read(path: &Path) -> anyhow::Result<PolicyFile> {
    parse(&std::fs::read(path)?)
}

/// A policy file's text, YAML or JSON (YAML reads JSON too).
pub(crate) fn parse(text: &[u8]) -> anyhow::Result<PolicyFile> {
    let value: serde_json::Value =
        serde_yaml::from_slice(text).map_err(|e| anyhow::anyhow!("not YAML or JSON: {e}"))?;
    PolicyFile::from_value(&value).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const YAML: &str = r#"
rules:
  - users: [carol]
    groups: [team-a]
    grant:
      impersonate: {groups: [eng-admins]}
      recorderAddrs: ["10.0.0.5:80"]
      enforceRecorder: true
      enableEvents: true
"#;

    #[test]
    fn yaml_and_json_read_alike() {
        let yaml = parse(YAML.as_bytes()).unwrap();
        let json = parse(
            br#"{"rules": [{"users": ["carol"], "groups": ["team-a"], "grant": {
                "impersonate": {"groups": ["eng-admins"]}, "recorderAddrs": ["10.0.0.5:80"],
                "enforceRecorder": true, "enableEvents": true}}]}"#,
        )
        .unwrap();
        assert_eq!(yaml, json);
        let grant = &yaml.rules()[0].grant;
        assert!(grant.enforce_recorder && grant.enable_events);
        assert!(parse(b"rules: [")
            .unwrap_err()
            .to_string()
            .contains("not YAML"));
        assert!(parse(b"").is_err());
        let error = parse(b"rules:\n  - users: [u]\n    grant: {enforceRecorder: maybe}\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("rules[0].grant.enforceRecorder"), "{error}");
    }

    #[test]
    fn a_broken_file_keeps_the_last_good_one_and_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        let replace = |text: &str| {
            std::fs::write(dir.path().join("new"), text).unwrap();
            std::fs::rename(dir.path().join("new"), &path).unwrap();
        };
        std::fs::write(&path, YAML).unwrap();
        let store = load_policy(path.clone()).unwrap();
        assert_eq!(store.current().rules()[0].users, ["carol"]);
        assert!(!store.reload_if_changed().unwrap());

        replace("rules: [{users: [dave]}]\n");
        assert!(store.reload_if_changed().unwrap());
        assert_eq!(store.current().rules()[0].users, ["dave"]);

        replace("rules: [{}]\n");
        let error = store.reload_if_changed().unwrap_err().to_string();
        assert!(error.contains("matches nobody"), "{error}");
        assert!(!store.reload_if_changed().unwrap());
        assert_eq!(store.current().rules()[0].users, ["dave"]);

        std::fs::remove_file(&path).unwrap();
        assert!(store.reload_if_changed().is_err());
        assert!(!store.reload_if_changed().unwrap());
        assert_eq!(store.current().rules()[0].users, ["dave"]);

        replace(YAML);
        assert!(store.reload_if_changed().unwrap());
        assert_eq!(store.current().rules()[0].users, ["carol"]);

        std::fs::write(dir.path().join("bad.yaml"), "rules: 3").unwrap();
        let error = load_policy(dir.path().join("bad.yaml"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("--policy "), "{error}");
    }
}
