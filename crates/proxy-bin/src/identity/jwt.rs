//! JSON Web Tokens as OIDC issuers sign them: compact JWS, verified with ring only.
//!
//! Two algorithms are accepted: RS256 (RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 8192-bit keys)
//! and ES256 (ECDSA P-256 with SHA-256, the fixed 64-byte signature JWS uses). Every other `alg`
//! is refused, `none` and the HMAC algorithms (HS*) in particular: a public key is never used as
//! an HMAC secret. The key is the JWK whose `kid` the header names; a header without `kid` uses
//! the only key of the set that fits the algorithm.
//!
//! The claims checked are `iss` (equal to the issuer URL, byte for byte), `aud` (a string or an
//! array that contains the client id), `exp` (required, in the future), and `nbf` and `iat` when
//! present (not in the future); clock skew of [`LEEWAY_SECS`] is allowed either way.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

/// The clock skew allowed between the issuer and the proxy when checking `exp`, `nbf` and `iat`.
pub(crate) const LEEWAY_SECS: i64 = 60;

/// Why a token is refused; the text is what the caller is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JwtError {
    /// Not a compact JWS with readable parts.
    Malformed(String),
    /// An algorithm other than RS256 and ES256.
    Algorithm(String),
    /// No key of the set fits the header's `kid` (or, without `kid`, no single key fits).
    UnknownKey(Option<String>),
    /// The signature does not verify with the key.
    Signature,
    /// A claim check failed.
    Claim(String),
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::Malformed(why) => write!(f, "the token is not a valid JWT: {why}"),
            JwtError::Algorithm(alg) => write!(
                f,
                "the token's algorithm {alg:?} is not accepted (only RS256 and ES256)"
            ),
            JwtError::UnknownKey(Some(kid)) => {
                write!(f, "the issuer has no signing key with kid {kid:?}")
            }
            JwtError::UnknownKey(None) => write!(
                f,
                "the token names no key (kid) and the issuer has no single key for its algorithm"
            ),
            JwtError::Signature => write!(f, "the token's signature does not verify"),
            JwtError::Claim(why) => f.write_str(why),
        }
    }
}

/// The accepted signature algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Rs256,
    Es256,
}

impl Algorithm {
    fn from_name(name: &str) -> Result<Algorithm, JwtError> {
        match name {
            "RS256" => Ok(Algorithm::Rs256),
            "ES256" => Ok(Algorithm::Es256),
            other => Err(JwtError::Algorithm(other.to_owned())),
        }
    }
}

/// A public key of a JWK set.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `04 || x || y`.
    P256(Vec<u8>),
}

/// One usable key of a JWK set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

impl Jwk {
    fn fits(&self, alg: Algorithm) -> bool {
        matches!(
            (&self.key, alg),
            (PublicKey::Rsa { .. }, Algorithm::Rs256) | (PublicKey::P256(_), Algorithm::Es256)
        )
    }
}

/// The issuer's signing keys: the RSA and P-256 keys of a JWK set (RFC 7517). Keys of other
/// types, curves or uses (`"use": "enc"`), or whose `alg` is neither RS256 nor ES256, are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JwkSet {
    keys: Vec<Jwk>,
}

impl JwkSet {
    /// Reads a JWK set document; one without any usable key is an error.
    pub(crate) fn parse(json: &[u8]) -> Result<JwkSet, String> {
        let value: Value =
            serde_json::from_slice(json).map_err(|e| format!("not a JWK set (JSON): {e}"))?;
        let keys = value
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("not a JWK set: no \"keys\" array")?;
        let mut set = JwkSet::default();
        for (index, key) in keys.iter().enumerate() {
            if let Some(jwk) = read_jwk(key).map_err(|why| format!("keys[{index}]: {why}"))? {
                set.keys.push(jwk);
            }
        }
        if set.keys.is_empty() {
            return Err("the JWK set has no RSA or P-256 signing key".to_owned());
        }
        Ok(set)
    }

    /// How many usable keys the set has.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    fn select(&self, alg: Algorithm, kid: Option<&str>) -> Result<&Jwk, JwtError> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid) && key.fits(alg))
                .ok_or_else(|| JwtError::UnknownKey(Some(kid.to_owned()))),
            None => {
                let mut fitting = self.keys.iter().filter(|key| key.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(only), None) => Ok(only),
                    _ => Err(JwtError::UnknownKey(None)),
                }
            }
        }
    }
}

/// A usable key, `None` for a key of another kind, or an error for a broken one.
fn read_jwk(key: &Value) -> Result<Option<Jwk>, String> {
    let field = |name: &str| key.get(name).and_then(Value::as_str);
    if field("use").is_some_and(|usage| usage != "sig") {
        return Ok(None);
    }
    if field("alg").is_some_and(|alg| alg != "RS256" && alg != "ES256") {
        return Ok(None);
    }
    let bytes = |name: &str| -> Result<Vec<u8>, String> {
        let text = field(name).ok_or_else(|| format!("no {name:?}"))?;
        URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|e| format!("{name:?} is not base64url: {e}"))
    };
    let kid = field("kid").map(str::to_owned);
    match (field("kty"), field("crv")) {
        (Some("RSA"), _) => {
            if field("alg").is_some_and(|alg| alg != "RS256") {
                return Ok(None);
            }
            let strip = |mut v: Vec<u8>| {
                let zeros = v.iter().take_while(|b| **b == 0).count();
                v.drain(..zeros);
                v
            };
            Ok(Some(Jwk {
                kid,
                key: PublicKey::Rsa {
                    n: strip(bytes("n")?),
                    e: strip(bytes("e")?),
                },
            }))
        }
        (Some("EC"), Some("P-256")) => {
            if field("alg").is_some_and(|alg| alg != "ES256") {
                return Ok(None);
            }
            let (x, y) = (bytes("x")?, bytes("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("a P-256 key's x and y must be 32 bytes each".to_owned());
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            Ok(Some(Jwk {
                kid,
                key: PublicKey::P256(point),
            }))
        }
        _ => Ok(None),
    }
}

/// What a token must say to be accepted.
#[derive(Debug, Clone)]
pub(crate) struct Expected<'a> {
    /// `iss`, exactly.
    pub(crate) issuer: &'a str,
    /// Contained in `aud`.
    pub(crate) audience: &'a str,
    /// The time now, in seconds since the epoch.
    pub(crate) now: i64,
}

/// Verifies `token` with `keys` and checks its claims; the claims of a token that passes.
pub(crate) fn verify(
    token: &str,
    keys: &JwkSet,
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, JwtError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed(
            "expected three dot-separated parts".to_owned(),
        ));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|e| JwtError::Malformed(format!("its {what} is not base64url: {e}")))
    };
    let header: Map<String, Value> = serde_json::from_slice(&decode(header_b64, "header")?)
        .map_err(|e| JwtError::Malformed(format!("its header is not a JSON object: {e}")))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| JwtError::Malformed("its header has no \"alg\"".to_owned()))?;
    let alg = Algorithm::from_name(alg)?;
    if header.contains_key("crit") {
        return Err(JwtError::Malformed(
            "its header has critical extensions (\"crit\"), which are not supported".to_owned(),
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => {
            return Err(JwtError::Malformed(
                "its \"kid\" is not a string".to_owned(),
            ))
        }
    };
    let key = keys.select(alg, kid)?;
    let signature = decode(signature_b64, "signature")?;
    let message = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
    let verified = match (&key.key, alg) {
        (PublicKey::Rsa { n, e }, Algorithm::Rs256) => RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, &signature)
            .is_ok(),
        (PublicKey::P256(point), Algorithm::Es256) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, &signature)
                .is_ok()
        }
        _ => false,
    };
    if !verified {
        return Err(JwtError::Signature);
    }
    let claims: Map<String, Value> = serde_json::from_slice(&decode(payload_b64, "payload")?)
        .map_err(|e| JwtError::Malformed(format!("its payload is not a JSON object: {e}")))?;
    check_claims(&claims, expected)?;
    Ok(claims)
}

fn check_claims(claims: &Map<String, Value>, expected: &Expected<'_>) -> Result<(), JwtError> {
    let claim = |why: String| Err(JwtError::Claim(why));
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == expected.issuer => {}
        Some(iss) => {
            return claim(format!(
                "the token's issuer {iss:?} is not {:?}",
                expected.issuer
            ))
        }
        None => return claim("the token has no issuer (iss)".to_owned()),
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expected.audience,
        Some(Value::Array(auds)) => auds
            .iter()
            .any(|aud| aud.as_str() == Some(expected.audience)),
        _ => false,
    };
    if !audience_ok {
        return claim(format!(
            "the token's audience (aud) does not include the client id {:?}",
            expected.audience
        ));
    }
    let time = |name: &str| -> Result<Option<i64>, JwtError> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)) {
                Some(t) => Ok(Some(t)),
                None => Err(JwtError::Claim(format!("the token's {name} is not a time"))),
            },
            Some(_) => Err(JwtError::Claim(format!(
                "the token's {name} is not a number"
            ))),
        }
    };
    let now = expected.now;
    match time("exp")? {
        None => return claim("the token has no expiry (exp)".to_owned()),
        Some(exp) if exp.saturating_add(LEEWAY_SECS) <= now => {
            return claim(format!(
                "the token expired {}s ago",
                now.saturating_sub(exp)
            ))
        }
        Some(_) => {}
    }
    if let Some(nbf) = time("nbf")? {
        if nbf > now.saturating_add(LEEWAY_SECS) {
            return claim(format!(
                "the token is not valid before {nbf} (nbf), {}s from now",
                nbf - now
            ));
        }
    }
    if let Some(iat) = time("iat")? {
        if iat > now.saturating_add(LEEWAY_SECS) {
            return claim(format!(
                "the token was issued in the future (iat {}s from now)",
                iat - now
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair as _, RsaKeyPair};
    use serde_json::json;

    pub(crate) const ISSUER: &str = "https://issuer.example";
    pub(crate) const CLIENT: &str = "kube";

    /// The RSA 2048 test key (PKCS#8 DER), committed as test data.
    const RSA_PKCS8: &[u8] = include_bytes!("../../tests/testdata/oidc/rsa2048.pk8");

    pub(crate) fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A signing key and its JWK.
    pub(crate) enum Signer {
        Es(EcdsaKeyPair, String),
        Rs(RsaKeyPair, String),
    }

    impl Signer {
        pub(crate) fn es256(kid: &str) -> Signer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8.as_ref(),
                &rng,
            )
            .unwrap();
            Signer::Es(pair, kid.to_owned())
        }

        pub(crate) fn rs256(kid: &str) -> Signer {
            Signer::Rs(RsaKeyPair::from_pkcs8(RSA_PKCS8).unwrap(), kid.to_owned())
        }

        pub(crate) fn jwk(&self) -> Value {
            match self {
                Signer::Es(pair, kid) => {
                    let point = pair.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                        "x": b64(&point[1..33]), "y": b64(&point[33..65])})
                }
                Signer::Rs(pair, kid) => {
                    let components: RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
                    json!({"kty": "RSA", "kid": kid, "alg": "RS256",
                        "n": b64(&components.n), "e": b64(&components.e)})
                }
            }
        }

        /// A token with `claims`, signed; the header's `alg` and `kid` as the key's.
        pub(crate) fn sign(&self, claims: &Value) -> String {
            let (alg, kid) = match self {
                Signer::Es(_, kid) => ("ES256", kid),
                Signer::Rs(_, kid) => ("RS256", kid),
            };
            self.sign_with_header(&json!({"alg": alg, "kid": kid, "typ": "JWT"}), claims)
        }

        pub(crate) fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            );
            let rng = SystemRandom::new();
            let signature = match self {
                Signer::Es(pair, _) => pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
                Signer::Rs(pair, _) => {
                    let mut out = vec![0; pair.public().modulus_len()];
                    pair.sign(
                        &signature::RSA_PKCS1_SHA256,
                        &rng,
                        input.as_bytes(),
                        &mut out,
                    )
                    .unwrap();
                    out
                }
            };
            format!("{input}.{}", b64(&signature))
        }
    }

    pub(crate) fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    pub(crate) fn claims() -> Value {
        json!({"iss": ISSUER, "aud": CLIENT, "sub": "u-1", "email": "carol@example.com",
            "exp": now() + 600, "iat": now() - 10, "groups": ["team-a", "devs"]})
    }

    fn set(signers: &[&Signer]) -> JwkSet {
        let keys: Vec<Value> = signers.iter().map(|s| s.jwk()).collect();
        JwkSet::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn expected() -> Expected<'static> {
        Expected {
            issuer: ISSUER,
            audience: CLIENT,
            now: now(),
        }
    }

    fn with(changes: Value) -> Value {
        let mut claims = claims();
        for (key, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims
    }

    #[test]
    fn valid_es256_and_rs256_tokens_verify() {
        let (es, rs) = (Signer::es256("ec-1"), Signer::rs256("rsa-1"));
        let keys = set(&[&es, &rs]);
        assert_eq!(keys.len(), 2);
        for signer in [&es, &rs] {
            let claims = verify(&signer.sign(&claims()), &keys, &expected()).unwrap();
            assert_eq!(claims["sub"], "u-1");
        }
        // aud as an array; nbf in the past; exp within the leeway.
        let token = es.sign(&with(
            json!({"aud": ["other", CLIENT], "nbf": now() - 5, "exp": now() - 30}),
        ));
        assert!(verify(&token, &keys, &expected()).is_ok());
        // Without kid: the only key for the algorithm.
        let token = es.sign_with_header(&json!({"alg": "ES256"}), &claims());
        assert!(verify(&token, &keys, &expected()).is_ok());
    }

    #[test]
    fn bad_claims_are_refused_with_the_reason() {
        let es = Signer::es256("ec-1");
        let keys = set(&[&es]);
        for (changes, reason) in [
            (json!({"exp": now() - 120}), "expired"),
            (json!({"exp": null}), "no expiry"),
            (json!({"exp": "tomorrow"}), "not a number"),
            (json!({"aud": "someone-else"}), "audience"),
            (json!({"aud": ["a", "b"]}), "audience"),
            (json!({"aud": null}), "audience"),
            (json!({"iss": "https://evil.example"}), "issuer"),
            (json!({"iss": format!("{ISSUER}/")}), "issuer"),
            (json!({"iss": null}), "no issuer"),
            (json!({"nbf": now() + 600}), "not valid before"),
            (json!({"iat": now() + 600}), "issued in the future"),
        ] {
            let error = verify(&es.sign(&with(changes.clone())), &keys, &expected())
                .unwrap_err()
                .to_string();
            assert!(error.contains(reason), "{changes}: {error}");
        }
    }

    #[test]
    fn none_hmac_and_other_algorithms_are_refused() {
        let es = Signer::es256("ec-1");
        let keys = set(&[&es]);
        let payload = b64(claims().to_string().as_bytes());
        for alg in ["none", "HS256", "RS512", "PS256", "ES384"] {
            let header = b64(json!({"alg": alg, "kid": "ec-1"}).to_string().as_bytes());
            for signature in ["", "c2lnbmF0dXJl"] {
                let token = format!("{header}.{payload}.{signature}");
                let error = verify(&token, &keys, &expected()).unwrap_err();
                assert_eq!(error, JwtError::Algorithm(alg.to_owned()));
            }
        }
        // HS256 "signed" with the public key's bytes as the secret: still refused.
        let secret = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, es.jwk().to_string().as_bytes());
        let input = format!(
            "{}.{payload}",
            b64(json!({"alg": "HS256"}).to_string().as_bytes())
        );
        let tag = ring::hmac::sign(&secret, input.as_bytes());
        let token = format!("{input}.{}", b64(tag.as_ref()));
        assert!(matches!(
            verify(&token, &keys, &expected()),
            Err(JwtError::Algorithm(_))
        ));
        // The algorithm must fit the key: an RS256 header for an EC kid names no key.
        let token = es.sign_with_header(&json!({"alg": "RS256", "kid": "ec-1"}), &claims());
        assert!(matches!(
            verify(&token, &keys, &expected()),
            Err(JwtError::UnknownKey(_))
        ));
    }

    #[test]
    fn tampered_and_unknown_key_tokens_are_refused() {
        let (es, rs) = (Signer::es256("ec-1"), Signer::rs256("rsa-1"));
        let keys = set(&[&es, &rs]);
        for signer in [&es, &rs] {
            let token = signer.sign(&claims());
            let parts: Vec<&str> = token.split('.').collect();
            let forged = b64(with(json!({"sub": "admin"})).to_string().as_bytes());
            let tampered = format!("{}.{forged}.{}", parts[0], parts[2]);
            assert_eq!(
                verify(&tampered, &keys, &expected()).unwrap_err(),
                JwtError::Signature
            );
        }
        // Signed by a key the set does not have, under a known and an unknown kid.
        let stranger = Signer::es256("ec-1");
        assert_eq!(
            verify(&stranger.sign(&claims()), &keys, &expected()).unwrap_err(),
            JwtError::Signature
        );
        let stranger = Signer::es256("ec-2");
        assert_eq!(
            verify(&stranger.sign(&claims()), &keys, &expected()).unwrap_err(),
            JwtError::UnknownKey(Some("ec-2".to_owned()))
        );
        // Two EC keys and no kid: ambiguous.
        let two = set(&[&es, &Signer::es256("ec-3")]);
        let token = es.sign_with_header(&json!({"alg": "ES256"}), &claims());
        assert_eq!(
            verify(&token, &two, &expected()).unwrap_err(),
            JwtError::UnknownKey(None)
        );
        for garbage in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.AA"] {
            assert!(verify(garbage, &keys, &expected()).is_err(), "{garbage}");
        }
    }

    #[test]
    fn jwk_sets_keep_only_usable_signing_keys() {
        let es = Signer::es256("ec-1");
        let document = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "alg": "RS512", "n": "AQAB", "e": "AQAB"},
            es.jwk(),
        ]});
        let keys = JwkSet::parse(document.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(verify(&es.sign(&claims()), &keys, &expected()).is_ok());
        assert!(JwkSet::parse(br#"{"keys": [{"kty": "oct"}]}"#).is_err());
        assert!(JwkSet::parse(b"[]").is_err());
        let error =
            JwkSet::parse(br#"{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA"}]}"#).unwrap_err();
        assert!(error.contains("keys[0]"), "{error}");
    }
}
