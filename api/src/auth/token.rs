//! Signed tokens: stream tokens (one task's events, short-lived) and page sessions (the login
//! cookie). `base64url(claims JSON) . base64url(HMAC-SHA256)`, signed with the first of
//! `auth.token_secrets` and verified with any of them, so secrets rotate without a cut.

use agentflow_shared::ids::{KeyId, TaskId};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What a token admits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Grant {
    /// Reading one task's events (`?access_token=` on its events and stream routes).
    Stream {
        /// The task.
        task: TaskId,
    },
    /// What the key may do, from the page (the session cookie).
    Session,
}

/// A token's signed content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// What it admits.
    #[serde(flatten)]
    pub grant: Grant,
    /// The key that minted it: it is refused once that key is revoked.
    pub key: KeyId,
    /// Unix seconds after which it is refused.
    pub exp: i64,
}

/// Why a token was refused (the client only learns "invalid or expired").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the token's form, or not signed by any current secret.
    #[error("the token is not valid")]
    Forged,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
}

/// Signs and verifies tokens with `auth.token_secrets`.
#[derive(Clone)]
pub struct Signer {
    secrets: Vec<Vec<u8>>,
}

impl Signer {
    /// A signer with these secrets (the first signs); none: nothing verifies.
    pub fn new(secrets: &[String]) -> Self {
        Self {
            secrets: secrets.iter().map(|s| s.as_bytes().to_vec()).collect(),
        }
    }

    fn mac(secret: &[u8], payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(payload);
        mac
    }

    /// A token for `claims`; `None` without a secret.
    pub fn sign(&self, claims: &Claims) -> Option<String> {
        let secret = self.secrets.first()?;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).ok()?);
        let signature = Self::mac(secret, payload.as_bytes())
            .finalize()
            .into_bytes();
        Some(format!("{payload}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }

    /// The claims of a token signed by one of the secrets and not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Forged)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Forged)?;
        let signed = self.secrets.iter().any(|secret| {
            Self::mac(secret, payload.as_bytes())
                .verify_slice(&signature)
                .is_ok()
        });
        if !signed {
            return Err(TokenError::Forged);
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Forged)?;
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "an old secret of at least thirty-two bytes";
    const NEW: &str = "a new secret of at least thirty-two bytes!";

    fn claims(exp: i64) -> Claims {
        Claims {
            grant: Grant::Stream {
                task: TaskId::new(),
            },
            key: KeyId("k1".into()),
            exp,
        }
    }

    #[test]
    fn tokens_verify_until_they_expire_and_not_when_altered() {
        let signer = Signer::new(&[OLD.into()]);
        let now = Utc::now();
        let claims = claims(now.timestamp() + 60);
        let token = signer.sign(&claims).unwrap();
        assert_eq!(signer.verify(&token, now), Ok(claims.clone()));
        let later = now + chrono::Duration::seconds(61);
        assert_eq!(signer.verify(&token, later), Err(TokenError::Expired));
        let (payload, signature) = token.split_once('.').unwrap();
        let mut other = claims.clone();
        other.exp += 3600;
        let altered = format!(
            "{}.{signature}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap())
        );
        assert_eq!(signer.verify(&altered, now), Err(TokenError::Forged));
        assert_eq!(signer.verify(payload, now), Err(TokenError::Forged));
        let stranger = Signer::new(&[NEW.into()]);
        assert_eq!(stranger.verify(&token, now), Err(TokenError::Forged));
    }

    #[test]
    fn a_rotated_secret_keeps_old_tokens_valid_while_it_is_listed() {
        let now = Utc::now();
        let old_token = Signer::new(&[OLD.into()])
            .sign(&claims(now.timestamp() + 60))
            .unwrap();
        let rotating = Signer::new(&[NEW.into(), OLD.into()]);
        assert!(rotating.verify(&old_token, now).is_ok());
        let new_token = rotating.sign(&claims(now.timestamp() + 60)).unwrap();
        assert!(Signer::new(&[NEW.into()]).verify(&new_token, now).is_ok());
        assert!(Signer::new(&[NEW.into()]).verify(&old_token, now).is_err());
    }
}
