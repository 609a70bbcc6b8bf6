//! Meta access tokens at rest: sealed with XChaCha20-Poly1305 under a key
//! from the `social_token_keys` secret, the user's id as associated data
//! (a sealed token copied to another row does not open), and the key's id
//! stored beside it. The first key seals; every key opens; the daily
//! upkeep reseals what an older key sealed, so a retired key can be
//! dropped once no row names it.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE: usize = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("social_token_keys: {0}")]
    BadKeys(String),
    #[error("no key `{0}` to open this token (was it retired too early?)")]
    UnknownKey(String),
    #[error("the sealed token does not open (altered, or sealed for another user)")]
    Corrupt,
    #[error("randomness unavailable: {0}")]
    Random(String),
}

/// The keys: `id=base64(32 bytes),...`, the first sealing.
pub struct KeyRing {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("KeyRing").field("ids", &ids).finish()
    }
}

impl TryFrom<&str> for KeyRing {
    type Error = TokenError;

    fn try_from(setting: &str) -> Result<Self, TokenError> {
        let mut keys = Vec::new();
        // Errors name a key by its position only: the setting is a secret,
        // and a malformed part may be key material (`id=` forgotten).
        for (n, part) in setting
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let n = n + 1;
            let (id, key) = part
                .split_once('=')
                .ok_or_else(|| TokenError::BadKeys(format!("key #{n}: write it `id=base64`")))?;
            let id = id.trim();
            if id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(TokenError::BadKeys(format!(
                    "key #{n}: its id is 1 to 32 letters, digits, - and _"
                )));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(key.trim()))
                .map_err(|_| TokenError::BadKeys(format!("key #{n}: not base64")))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| TokenError::BadKeys(format!("key #{n}: must be 32 bytes")))?;
            if keys.iter().any(|(k, _)| k == id) {
                return Err(TokenError::BadKeys(format!(
                    "key #{n}: its id is used twice"
                )));
            }
            keys.push((id.to_owned(), key));
        }
        if keys.is_empty() {
            return Err(TokenError::BadKeys("no keys".into()));
        }
        Ok(KeyRing { keys })
    }
}

/// A sealed token and the id of the key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    /// Nonce, then ciphertext and tag.
    pub bytes: Vec<u8>,
}

impl KeyRing {
    /// The id of the key that seals.
    pub fn current(&self) -> &str {
        &self.keys[0].0
    }

    /// Every key id, the sealing one first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(id, _)| id.as_str()).collect()
    }

    pub fn seal(&self, token: &str, user: uuid::Uuid) -> Result<Sealed, TokenError> {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).map_err(|e| TokenError::Random(e.to_string()))?;
        let cipher = XChaCha20Poly1305::new(key.into());
        let mut bytes = nonce.to_vec();
        bytes.extend(
            cipher
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: token.as_bytes(),
                        aad: user.as_bytes(),
                    },
                )
                .map_err(|_| TokenError::Corrupt)?,
        );
        Ok(Sealed {
            key_id: id.clone(),
            bytes,
        })
    }

    pub fn open(&self, sealed: &Sealed, user: uuid::Uuid) -> Result<String, TokenError> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .ok_or_else(|| TokenError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() <= NONCE {
            return Err(TokenError::Corrupt);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE);
        let plain = XChaCha20Poly1305::new(key.into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: user.as_bytes(),
                },
            )
            .map_err(|_| TokenError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| TokenError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn a_sealed_token_opens_only_for_its_user_and_hides_the_text() {
        let ring = KeyRing::try_from(K1).expect("keys");
        let alice = uuid::Uuid::new_v4();
        let sealed = ring.seal("EAAB-secret-token", alice).expect("seals");
        assert_eq!(sealed.key_id, "k1");
        assert!(!String::from_utf8_lossy(&sealed.bytes).contains("secret"));
        assert_eq!(
            ring.open(&sealed, alice).expect("opens"),
            "EAAB-secret-token"
        );
        assert_eq!(
            ring.open(&sealed, uuid::Uuid::new_v4()),
            Err(TokenError::Corrupt)
        );
        let mut altered = sealed.clone();
        let last = altered.bytes.len() - 1;
        altered.bytes[last] ^= 1;
        assert_eq!(ring.open(&altered, alice), Err(TokenError::Corrupt));
        assert_ne!(
            ring.seal("EAAB-secret-token", alice).expect("seals"),
            sealed,
            "fresh nonce"
        );
    }

    #[test]
    fn keys_rotate_new_first_old_still_opening() {
        let user = uuid::Uuid::new_v4();
        let old = KeyRing::try_from(K1).expect("keys");
        let sealed_before = old.seal("t", user).expect("seals");
        let rotated = KeyRing::try_from(format!("{K2},{K1}").as_str()).expect("keys");
        assert_eq!(rotated.current(), "k2");
        assert_eq!(rotated.open(&sealed_before, user).expect("opens"), "t");
        assert_eq!(rotated.seal("t", user).expect("seals").key_id, "k2");
        let retired = KeyRing::try_from(K2).expect("keys");
        assert_eq!(
            retired.open(&sealed_before, user),
            Err(TokenError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn bad_key_settings_say_what_is_wrong() {
        for bad in [
            "",
            "k1",
            "k1=short",
            "bad id=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            &format!("{K1},{K1}"),
        ] {
            assert!(
                matches!(KeyRing::try_from(bad), Err(TokenError::BadKeys(_))),
                "{bad}"
            );
        }
        assert!(!format!("{:?}", KeyRing::try_from(K1).expect("keys")).contains("AAEC"));
        // A key written without its id: the error does not repeat it.
        let bare = K1.trim_start_matches("k1=");
        let err = KeyRing::try_from(bare).expect_err("no id").to_string();
        assert!(!err.contains("AAEC"), "{err}");
    }
}
