//! The proxy mode, from `--mode` or the environment variables Tailscale's operator uses.
//!
//! Compatibility (Tailscale `cmd/k8s-operator`): `APISERVER_PROXY=true|false|noauth` and the deprecated
//! `AUTH_PROXY=true|false`. Setting both is ambiguous and refused; an unknown value is refused by name.
//! `false` disables the API server proxy in the operator; this binary *is* that proxy, so it refuses to
//! start rather than silently doing nothing.

use impersonate::Mode;

use crate::cli::ModeArg;

/// Reads an environment variable; injected so the rules can be tested without touching the process
/// environment.
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Decides the mode: the `--mode` flag wins; else `APISERVER_PROXY` or `AUTH_PROXY`; else auth.
pub(crate) fn resolve_mode(flag: Option<ModeArg>, env: EnvLookup<'_>) -> Result<Mode, String> {
    if let Some(flag) = flag {
        return Ok(match flag {
            ModeArg::Auth => Mode::Auth,
            ModeArg::Noauth => Mode::NoAuth,
        });
    }
    let apiserver_proxy = env("APISERVER_PROXY").filter(|v| !v.is_empty());
    let auth_proxy = env("AUTH_PROXY").filter(|v| !v.is_empty());
    match (apiserver_proxy, auth_proxy) {
        (Some(a), Some(b)) => Err(format!(
            "both APISERVER_PROXY ({a:?}) and the deprecated AUTH_PROXY ({b:?}) are set; set only APISERVER_PROXY"
        )),
        (Some(value), None) => match value.as_str() {
            "true" => Ok(Mode::Auth),
            "noauth" => Ok(Mode::NoAuth),
            "false" => Err("APISERVER_PROXY=false disables the API server proxy; unset it or use --mode".into()),
            other => Err(format!(
                "APISERVER_PROXY has unknown value {other:?}; expected true, false or noauth"
            )),
        },
        (None, Some(value)) => match parse_go_bool(&value) {
            Some(true) => Ok(Mode::Auth),
            Some(false) => Err("AUTH_PROXY=false disables the API server proxy; unset it or use --mode".into()),
            None => Err(format!(
                "AUTH_PROXY has unknown value {value:?}; expected a boolean (it is deprecated: use APISERVER_PROXY=true|noauth)"
            )),
        },
        (None, None) => Ok(Mode::Auth),
    }
}

/// Go's `strconv.ParseBool`, which the operator uses for `AUTH_PROXY`.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn default_is_auth() {
        assert_eq!(resolve_mode(None, &env_of(&[])), Ok(Mode::Auth));
    }

    #[test]
    fn apiserver_proxy_values() {
        assert_eq!(
            resolve_mode(None, &env_of(&[("APISERVER_PROXY", "true")])),
            Ok(Mode::Auth)
        );
        assert_eq!(
            resolve_mode(None, &env_of(&[("APISERVER_PROXY", "noauth")])),
            Ok(Mode::NoAuth)
        );
        let err =
            resolve_mode(None, &env_of(&[("APISERVER_PROXY", "maybe")])).expect_err("refused");
        assert!(err.contains("\"maybe\""), "{err}");
        assert!(resolve_mode(None, &env_of(&[("APISERVER_PROXY", "false")])).is_err());
    }

    #[test]
    fn legacy_auth_proxy() {
        assert_eq!(
            resolve_mode(None, &env_of(&[("AUTH_PROXY", "1")])),
            Ok(Mode::Auth)
        );
        let err = resolve_mode(None, &env_of(&[("AUTH_PROXY", "yes")])).expect_err("refused");
        assert!(err.contains("\"yes\""), "{err}");
    }

    #[test]
    fn both_set_names_both() {
        let err = resolve_mode(
            None,
            &env_of(&[("APISERVER_PROXY", "true"), ("AUTH_PROXY", "true")]),
        )
        .expect_err("refused");
        assert!(
            err.contains("APISERVER_PROXY") && err.contains("AUTH_PROXY"),
            "{err}"
        );
    }

    #[test]
    fn flag_wins() {
        assert_eq!(
            resolve_mode(
                Some(ModeArg::Noauth),
                &env_of(&[("APISERVER_PROXY", "true")])
            ),
            Ok(Mode::NoAuth)
        );
    }
}
