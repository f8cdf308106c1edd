//! Who made a request, as the domain may know it: a fingerprint of the API key it came with,
//! never the key. It travels with the request (an extension set by `auth`) into the domain's
//! records (what one key stores only that key reads back) and the live feed.

use sha2::{Digest, Sha256};

/// A fingerprint of the request's API key (`""` when the gateway has no keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller(pub String);

impl Caller {
    pub fn of_key(key: &str) -> Caller {
        Caller(hex::encode(&Sha256::digest(key.as_bytes())[..12]))
    }

    /// A short name to show for the key (`key-` and 8 hex digits), `None` without keys.
    pub fn label(&self) -> Option<String> {
        self.0.get(..8).map(|h| format!("key-{h}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_hide_the_key_and_tell_keys_apart() {
        let k = Caller::of_key("super-secret-key");
        assert_eq!(k, Caller::of_key("super-secret-key"));
        assert_ne!(k, Caller::of_key("another-secret-key"));
        assert!(!k.0.contains("secret"));
        let label = k.label().unwrap();
        assert!(label.starts_with("key-") && label.len() == 12, "{label}");
        assert_eq!(Caller::default().label(), None);
    }
}
