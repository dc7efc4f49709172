//! Single-use URL tokens: each CRI streaming call parks its validated request under a random
//! token that one connection may consume within the TTL (the kubelet's request cache: a minute,
//! at most 1000 in flight). A consumed, expired or unknown token is a 404.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::RequestError;
use crate::request::Pending;
use crate::sync::lock;

/// 16 random bytes: guessing one is hopeless within its minute.
const TOKEN_BYTES: usize = 16;

pub struct TokenCache {
    entries: Mutex<HashMap<String, (Pending, Instant)>>,
    ttl: Duration,
    max_in_flight: usize,
}

impl TokenCache {
    pub fn new(ttl: Duration, max_in_flight: usize) -> Self {
        TokenCache { entries: Mutex::new(HashMap::new()), ttl, max_in_flight }
    }

    pub fn insert(&self, request: Pending) -> Result<String, RequestError> {
        self.insert_at(request, Instant::now())
    }

    pub fn consume(&self, token: &str) -> Option<Pending> {
        self.consume_at(token, Instant::now())
    }

    pub fn insert_at(&self, request: Pending, now: Instant) -> Result<String, RequestError> {
        let token = new_token()?;
        let mut entries = lock(&self.entries);
        if entries.len() >= self.max_in_flight {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.max_in_flight {
                return Err(RequestError::TooManyInFlight(self.max_in_flight));
            }
        }
        entries.insert(token.clone(), (request, now + self.ttl));
        Ok(token)
    }

    pub fn consume_at(&self, token: &str, now: Instant) -> Option<Pending> {
        let (request, expires) = lock(&self.entries).remove(token)?;
        (expires > now).then_some(request)
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn new_token() -> Result<String, RequestError> {
    let mut raw = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut raw).map_err(|e| RequestError::Invalid(format!("no randomness for a token: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::PortForwardRequest;

    fn req() -> Pending {
        Pending::PortForward(PortForwardRequest { pod_sandbox_id: "p".into(), netns: None, ports: vec![80] })
    }

    #[test]
    fn single_use() {
        let cache = TokenCache::new(Duration::from_secs(60), 10);
        let t = cache.insert(req()).unwrap();
        assert_eq!(t.len(), 22);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(cache.consume(&t), Some(req()));
        assert_eq!(cache.consume(&t), None);
        assert_eq!(cache.consume("made-up"), None);
        let t2 = cache.insert(req()).unwrap();
        assert_ne!(t, t2);
    }

    #[test]
    fn expiry() {
        let cache = TokenCache::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let t = cache.insert_at(req(), now).unwrap();
        assert_eq!(cache.consume_at(&t, now + Duration::from_secs(61)), None);
        // Expired tokens are gone, not merely refused.
        assert!(cache.is_empty());
        let t = cache.insert_at(req(), now).unwrap();
        assert!(cache.consume_at(&t, now + Duration::from_secs(59)).is_some());
    }

    #[test]
    fn in_flight_bound_evicts_expired_first() {
        let cache = TokenCache::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        cache.insert_at(req(), now).unwrap();
        cache.insert_at(req(), now).unwrap();
        assert_eq!(cache.insert_at(req(), now), Err(RequestError::TooManyInFlight(2)));
        assert!(cache.insert_at(req(), now + Duration::from_secs(61)).is_ok());
        assert_eq!(cache.len(), 1);
    }
}
