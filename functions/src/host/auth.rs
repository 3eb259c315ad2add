//! Admin-key checks for the HTTP functions, in Sluice itself so they hold under
//! `sluice dev` and behind any host configuration. Keys (several, for rotation) are
//! compared in constant time, by their SHA-256 digests so lengths leak nothing either.

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, HeaderName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::host::error::AppError;
use crate::settings::Secret;

#[derive(Clone, Default)]
pub struct Keys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} configured)", self.digests.len())
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Keys {
    pub fn new(keys: &[Secret]) -> Self {
        Self {
            digests: keys
                .iter()
                .map(|k| k.expose().trim())
                .filter(|k| !k.is_empty())
                .filter(|k| {
                    // When App Service cannot resolve a Key Vault reference it passes the
                    // reference itself as the value: a string anyone can read from the
                    // template. Such a key is refused (fail closed), not accepted.
                    let unresolved = k.starts_with("@Microsoft.KeyVault(");
                    if unresolved {
                        tracing::error!(
                            "a configured key is an unresolved Key Vault reference and is ignored; \
                             check that the app's identity has Key Vault Secrets User and the secret exists"
                        );
                    }
                    !unresolved
                })
                .map(digest)
                .collect(),
        }
    }

    /// The configured keys' digests, sorted: what a signing key is derived from (so every
    /// instance with the same keys derives the same one).
    pub fn fingerprints_for_signing(&self) -> Vec<[u8; 32]> {
        let mut digests = self.digests.clone();
        digests.sort_unstable();
        digests
    }

    /// Checks the request's key (`x-functions-key`, or `Authorization: Bearer`) and
    /// returns who acted: the `x-sluice-actor` header if sent, and the key's fingerprint.
    pub fn check(&self, headers: &HeaderMap) -> Result<String, AppError> {
        let offered = self.verify(headers)?;
        let fingerprint = format!("key:{}", hex::encode(&offered[..4]));
        Ok(
            match headers.get("x-sluice-actor").and_then(|v| v.to_str().ok()) {
                Some(actor) if !actor.trim().is_empty() => {
                    format!("{} ({fingerprint})", actor.trim())
                }
                _ => fingerprint,
            },
        )
    }

    /// Checks the request's key, as [`Keys::check`] does, and returns its digest.
    pub fn verify(&self, headers: &HeaderMap) -> Result<[u8; 32], AppError> {
        // Header names built once: looking one up by `&str` parses it on every request.
        static FUNCTIONS_KEY: HeaderName = HeaderName::from_static("x-functions-key");
        let presented = match (headers.get(&FUNCTIONS_KEY), headers.get(AUTHORIZATION)) {
            (Some(k), _) => k
                .to_str()
                .map_err(|_| AppError::unauthorized("the x-functions-key header is not text"))?
                .trim(),
            (None, Some(auth)) => {
                let auth = auth
                    .to_str()
                    .map_err(|_| AppError::unauthorized("the Authorization header is not text"))?;
                match auth.split_once(' ') {
                    Some((scheme, token))
                        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
                    {
                        token.trim()
                    }
                    _ => {
                        return Err(AppError::unauthorized(
                            "malformed Authorization header: expected `Bearer <key>`",
                        ));
                    }
                }
            }
            (None, None) => {
                return Err(AppError::unauthorized(
                    "missing key: send it as x-functions-key or Authorization: Bearer <key>",
                ));
            }
        };
        let offered = digest(presented);
        // Every configured key is compared, whether or not an earlier one matched.
        let matched = self
            .digests
            .iter()
            .fold(subtle::Choice::from(0), |acc, d| acc | d.ct_eq(&offered));
        if !bool::from(matched) {
            return Err(AppError::unauthorized("invalid key"));
        }
        Ok(offered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn an_unresolved_key_vault_reference_is_never_a_key() {
        let reference = "@Microsoft.KeyVault(VaultName=kv;SecretName=sluice-admin-keys)";
        let keys = Keys::new(&[reference.parse().unwrap()]);
        assert!(
            keys.check(&headers(&[("x-functions-key", reference)]))
                .is_err()
        );
        assert_eq!(format!("{keys:?}"), "Keys(0 configured)");
    }

    #[test]
    fn any_configured_key_works_in_either_header() {
        let keys = Keys::new(&["old".parse().unwrap(), "new".parse().unwrap()]);
        assert!(keys.check(&headers(&[("x-functions-key", "old")])).is_ok());
        let actor = keys
            .check(&headers(&[
                ("authorization", "Bearer new"),
                ("x-sluice-actor", "ann"),
            ]))
            .unwrap();
        assert!(actor.starts_with("ann (key:"), "{actor}");
        for (h, status) in [
            (headers(&[]), 401),
            (headers(&[("authorization", "Basic abc")]), 401),
            (headers(&[("x-functions-key", "wrong")]), 401),
        ] {
            assert_eq!(keys.check(&h).unwrap_err().status().as_u16(), status);
        }
        assert!(
            Keys::default()
                .check(&headers(&[("x-functions-key", "")]))
                .is_err()
        );
    }
}
