//! Who is calling and what may they do: API keys (`sk_live_` + 48 hex, stored as SHA-256,
//! compared in constant time), the four scopes per route, a JWT (HS256 with a local secret)
//! for the `/api-keys` family, and per-category rate limits with real counters.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::{KeyRow, ServerState};
use super::Shared;
use crate::store::sqlite::{now_ms, rfc3339_ms};
use crate::{Error, Result};

/// The scopes a key can hold; `admin` allows everything.
pub const SCOPES: [&str; 4] = ["search", "read", "write", "admin"];
const KEY_PREFIX: &str = "sk_live_";
/// How much of a key is shown (`key_prefix`) and used to find its row.
const SHOWN: usize = KEY_PREFIX.len() + 8;

/// The caller of a request, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None` for a JWT bearer or an anonymous loopback caller.
    pub key_id: Option<String>,
    pub scopes: Vec<String>,
}

impl Caller {
    fn allows(&self, need: Need) -> bool {
        let has = |s: &str| self.scopes.iter().any(|x| x == s || x == "admin");
        match need {
            Need::Public | Need::Any => true,
            Need::Scope(s) => has(s),
            Need::OneOf(a, b) => has(a) || has(b),
            Need::Admin => has("admin"),
        }
    }
}

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Need {
    Public,
    Any,
    Scope(&'static str),
    OneOf(&'static str, &'static str),
    Admin,
}

/// The parity matrix, by method and route template (relative to `/api/v2`).
fn need(method: &Method, route: &str) -> Need {
    let search_route = route.ends_with("/search")
        || route.ends_with("-search")
        || route.starts_with("/search/")
        || route == "/workflow/search"
        || route == "/workflow/search/page";
    match (method, route) {
        (_, "/usage/metric-types" | "/webhooks/events" | "/media/{token}") => Need::Public,
        (_, r) if r.starts_with("/auth/") || r.starts_with("/rate-limit") => Need::Any,
        (_, r) if r.starts_with("/api-keys") => Need::Admin,
        _ if search_route => Need::Scope("search"),
        (&Method::GET, "/indexes" | "/indexes/{index_id}") => Need::OneOf("search", "read"),
        (&Method::DELETE, _) => Need::Admin,
        (&Method::GET, _) => Need::Scope("read"),
        (
            &Method::POST,
            "/videos/batch"
            | "/videos/batch/status"
            | "/videos/batch/segments"
            | "/videos/signed-url"
            | "/prompt-runs/estimate"
            | "/connectors/{connector_id}/browse"
            | "/exports/{export_id}/download-url",
        ) => Need::Scope("read"),
        _ => Need::Scope("write"),
    }
}

/// A new key: the secret (shown once), its displayable prefix and its hash.
pub fn new_key() -> Result<(String, String, Vec<u8>)> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    let secret = format!("{KEY_PREFIX}{}", hex(&bytes));
    let (prefix, hash) = split(&secret);
    Ok((secret, prefix, hash))
}

/// Whether `key` has the shape of a key (`sk_live_` + 48 lowercase hex).
pub fn well_formed(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + 48
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The prefix and SHA-256 of a key.
pub fn split(key: &str) -> (String, Vec<u8>) {
    let prefix = key.get(..SHOWN.min(key.len())).unwrap_or(key).to_string();
    (prefix, Sha256::digest(key.as_bytes()).to_vec())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored key that `key` is, if it is active.
fn find_key(state: &ServerState, key: &str) -> Result<Option<KeyRow>> {
    let (prefix, hash) = split(key);
    let now = now_ms();
    Ok(state
        .keys_with_prefix(&prefix)?
        .into_iter()
        .find(|row| bool::from(row.key_hash.ct_eq(&hash)) && row.is_active(now)))
}

/// Store the bootstrap admin key: the one given (if not stored yet), or a new one when there is
/// no key at all. Returns the secret when a new one was made, to be shown once.
pub fn bootstrap(state: &ServerState, given: Option<&str>) -> Result<Option<String>> {
    let make = |secret: &str, prefix: String, hash: Vec<u8>| {
        let _ = secret;
        state.insert_key(&KeyRow {
            key_id: crate::ids::new("key"),
            name: "admin (bootstrap)".into(),
            key_prefix: prefix,
            key_hash: hash,
            scopes: vec!["admin".into()],
            created_at: rfc3339_ms(now_ms()),
            last_used_at: None,
            revoked_at: None,
            expires_ms: None,
        })
    };
    if let Some(key) = given {
        if !well_formed(key) {
            return Err(Error::invalid(
                "VIDEOVECTOR_ADMIN_KEY",
                "must be sk_live_ followed by 48 lowercase hex digits",
            ));
        }
        let (prefix, hash) = split(key);
        match state.keys_with_prefix(&prefix)?.iter().find(|r| r.key_hash == hash) {
            None => make(key, prefix, hash)?,
            Some(row) if !row.is_active(now_ms()) => {
                return Err(Error::Conflict(format!(
                    "VIDEOVECTOR_ADMIN_KEY is key {} which was revoked or has expired; give another key",
                    row.key_id
                )))
            }
            Some(_) => {}
        }
        return Ok(None);
    }
    if state.key_count()? > 0 {
        return Ok(None);
    }
    let (secret, prefix, hash) = new_key()?;
    make(&secret, prefix, hash)?;
    Ok(Some(secret))
}

/// Check an HS256 JWT against `secret`: signature (constant time) and `exp`/`nbf` if present.
fn verify_jwt(token: &str, secret: &[u8]) -> std::result::Result<(), &'static str> {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("not a JWT");
    };
    let header: serde_json::Value =
        serde_json::from_slice(&b64.decode(h).map_err(|_| "bad header")?).map_err(|_| "bad header")?;
    if header["alg"] != "HS256" {
        return Err("only HS256 tokens are accepted");
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "bad secret")?;
    mac.update(format!("{h}.{p}").as_bytes());
    mac.verify_slice(&b64.decode(s).map_err(|_| "bad signature")?).map_err(|_| "bad signature")?;
    let claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(p).map_err(|_| "bad payload")?).map_err(|_| "bad payload")?;
    let now = now_ms() / 1000;
    match claims["exp"].as_i64() {
        None => return Err("token has no exp"),
        Some(exp) if exp <= now => return Err("token expired"),
        Some(_) => {}
    }
    if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now) {
        return Err("token not valid yet");
    }
    Ok(())
}

fn credential(headers: &HeaderMap) -> Option<(bool, String)> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some((false, k.trim().to_string()));
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer "))?;
    Some((true, token.trim().to_string()))
}

/// The rate-limit category of a route: searches, writes or reads.
fn category(method: &Method, route: &str) -> &'static str {
    match need(method, route) {
        Need::Scope("search") => "search",
        _ if method == Method::GET => "read",
        _ => "write",
    }
}

/// Authenticate, check the route's scope and count the request against its rate limit.
pub async fn authorize(State(app): State<Shared>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().trim_start_matches("/api/v2").to_string())
        .unwrap_or_default();
    let need = need(req.method(), &route);
    let caller = match credential(req.headers()) {
        _ if need == Need::Public => Caller { key_id: None, scopes: vec![] },
        None if app.options.allow_anonymous => Caller { key_id: None, scopes: vec!["admin".into()] },
        None => return Err(ApiError::unauthenticated("send an API key in X-API-Key (or Authorization: Bearer)")),
        Some((bearer, token)) => {
            let state = app.state.clone();
            let lookup = token.clone();
            let row = tokio::task::spawn_blocking(move || find_key(&state, &lookup))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
            match row {
                Some(row) => {
                    let state = app.state.clone();
                    let id = row.key_id.clone();
                    tokio::task::spawn_blocking(move || state.touch_key(&id));
                    Caller { key_id: Some(row.key_id), scopes: row.scopes }
                }
                None if bearer && route.starts_with("/api-keys") && app.options.jwt_secret.is_some() => {
                    let secret = app.options.jwt_secret.as_deref().unwrap_or_default().as_bytes();
                    verify_jwt(&token, secret)
                        .map_err(|why| ApiError::unauthenticated(format!("bearer token: {why}")))?;
                    Caller { key_id: None, scopes: vec!["admin".into()] }
                }
                None => return Err(ApiError::unauthenticated("unknown, revoked or expired API key")),
            }
        }
    };
    if !caller.allows(need) {
        let wanted = match need {
            Need::Scope(s) => s.to_string(),
            Need::OneOf(a, b) => format!("{a} or {b}"),
            _ => "admin".into(),
        };
        return Err(ApiError::forbidden(format!(
            "{} {} needs the {wanted} scope; this key has {:?}",
            req.method(),
            route,
            caller.scopes
        )));
    }
    if need != Need::Public {
        app.limits.take(category(req.method(), &route))?;
    }
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

/// Requests per minute and per hour, per category.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_minute: u32,
    pub per_hour: u32,
}

/// Fixed-window counters for each category (`search`, `read`, `write`).
pub struct RateLimiter {
    limits: HashMap<&'static str, Limits>,
    windows: Mutex<HashMap<&'static str, Window>>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    minute_start: i64,
    minute_used: u32,
    hour_start: i64,
    hour_used: u32,
}

/// What `GET /rate-limit/status` reports for one category.
pub struct CategoryStatus {
    pub limits: Limits,
    pub minute_used: u32,
    pub hour_used: u32,
    pub reset_at: i64,
}

impl RateLimiter {
    pub fn new(limits: HashMap<&'static str, Limits>) -> Self {
        RateLimiter { limits, windows: Mutex::new(HashMap::new()) }
    }

    fn roll(w: &mut Window, now_s: i64) {
        if now_s - w.minute_start >= 60 {
            *w = Window { minute_start: now_s - now_s % 60, minute_used: 0, ..*w };
        }
        if now_s - w.hour_start >= 3600 {
            *w = Window { hour_start: now_s - now_s % 3600, hour_used: 0, ..*w };
        }
    }

    /// Count one request, or refuse it with 429 and the seconds until its window resets.
    pub fn take(&self, category: &'static str) -> Result<(), ApiError> {
        let Some(limits) = self.limits.get(category).copied() else { return Ok(()) };
        let now_s = now_ms() / 1000;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.entry(category).or_default();
        Self::roll(w, now_s);
        let retry = if w.minute_used >= limits.per_minute {
            Some(w.minute_start + 60 - now_s)
        } else if w.hour_used >= limits.per_hour {
            Some(w.hour_start + 3600 - now_s)
        } else {
            None
        };
        if let Some(seconds) = retry {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                format!("{category} requests are limited to {}/minute and {}/hour", limits.per_minute, limits.per_hour),
            );
            e.retry_after = Some(seconds.max(1) as u64);
            return Err(e);
        }
        w.minute_used += 1;
        w.hour_used += 1;
        Ok(())
    }

    /// The counters of every category, with their windows rolled to now.
    pub fn status(&self) -> Vec<(&'static str, CategoryStatus)> {
        let now_s = now_ms() / 1000;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = self
            .limits
            .iter()
            .map(|(&name, &limits)| {
                let w = windows.entry(name).or_default();
                Self::roll(w, now_s);
                let status = CategoryStatus {
                    limits,
                    minute_used: w.minute_used,
                    hour_used: w.hour_used,
                    reset_at: w.minute_start + 60,
                };
                (name, status)
            })
            .collect();
        out.sort_by_key(|(name, _)| *name);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_matrix_scopes() {
        assert_eq!(need(&Method::POST, "/indexes/{index_id}/search"), Need::Scope("search"));
        assert_eq!(need(&Method::POST, "/search/filter/playground"), Need::Scope("search"));
        assert_eq!(need(&Method::POST, "/indexes"), Need::Scope("write"));
        assert_eq!(need(&Method::GET, "/indexes/{index_id}"), Need::OneOf("search", "read"));
        assert_eq!(need(&Method::GET, "/videos/{video_id}/segments"), Need::Scope("read"));
        assert_eq!(need(&Method::POST, "/videos/batch"), Need::Scope("read"));
        assert_eq!(need(&Method::DELETE, "/videos/{video_id}"), Need::Admin);
        assert_eq!(need(&Method::POST, "/api-keys"), Need::Admin);
        assert_eq!(need(&Method::GET, "/usage/metric-types"), Need::Public);
        let search_only = Caller { key_id: None, scopes: vec!["search".into()] };
        assert!(search_only.allows(Need::Scope("search")) && !search_only.allows(Need::Scope("write")));
        assert!(Caller { key_id: None, scopes: vec!["admin".into()] }.allows(Need::Admin));
    }

    #[test]
    fn keys_have_the_documented_shape_and_verify_by_hash() {
        let (secret, prefix, hash) = new_key().unwrap();
        assert!(well_formed(&secret), "{secret}");
        assert!(secret.starts_with(&prefix) && prefix.len() == SHOWN);
        assert_eq!(split(&secret).1, hash);
        assert!(!well_formed("sk_live_XYZ") && !well_formed(&secret.to_uppercase()));
    }

    #[test]
    fn jwt_signature_and_expiry_are_checked() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let sign = |claims: &str, secret: &[u8]| {
            let (h, p) = (b64.encode(r#"{"alg":"HS256","typ":"JWT"}"#), b64.encode(claims));
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
            mac.update(format!("{h}.{p}").as_bytes());
            format!("{h}.{p}.{}", b64.encode(mac.finalize().into_bytes()))
        };
        let future = now_ms() / 1000 + 600;
        assert_eq!(verify_jwt(&sign(&format!(r#"{{"exp":{future}}}"#), b"s3cret"), b"s3cret"), Ok(()));
        assert_eq!(verify_jwt(&sign(&format!(r#"{{"exp":{future}}}"#), b"other"), b"s3cret"), Err("bad signature"));
        assert_eq!(verify_jwt(&sign(r#"{"exp":1}"#, b"s3cret"), b"s3cret"), Err("token expired"));
        assert_eq!(verify_jwt(&sign(r#"{"sub":"me"}"#, b"s3cret"), b"s3cret"), Err("token has no exp"));
    }
}
