//! Webhooks: events of the engine's log, posted to a URL, signed, retried, and kept until
//! delivered.
//!
//! A dispatcher thread per engine (one with workers) tails the event log from a cursor kept in
//! `delivery.sqlite`. Each event a webhook subscribes to becomes a delivery row in the same
//! transaction that moves the cursor, so every event is delivered at least once, across
//! restarts, and the `X-Delivery-ID` lets a receiver drop repeats. The body is the canonical JSON
//! of the payload (sorted keys, Python's `json.dumps(payload, sort_keys=True)`), signed with
//! HMAC-SHA256 in `X-Webhook-Signature: sha256=<hex>`. 2xx is delivered, other 4xx a permanent
//! failure, 408, 429, 5xx and network errors are retried with exponential backoff and jitter up
//! to [`MAX_ATTEMPTS`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use super::db::{Db, Sql};
use crate::error::{Error, Result};
use crate::store::sqlite::{now_ms, now_rfc3339, rfc3339_ms};
use crate::store::Stores;
use crate::types::{Event, EventType};

/// The API's event names a webhook can subscribe to.
pub const EVENT_NAMES: [&str; 17] = [
    "media.created",
    "media.processing.started",
    "media.processing.completed",
    "media.processing.failed",
    "prompt_run.started",
    "prompt_run.completed",
    "prompt_run.failed",
    "prompt_run.cancelled",
    "prompt_run.partial_completed",
    "prompt_run.progress",
    "export.ready",
    "export.failed",
    "import_job.started",
    "import_job.completed",
    "import_job.failed",
    "import_job.partial_completed",
    "import_job.progress",
];

/// Attempts of one delivery before it is `failed` for good (about 20 minutes of backoff).
pub const MAX_ATTEMPTS: u32 = 8;
/// First retry delay; each later one doubles, up to [`MAX_BACKOFF`], with +-20% jitter.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a receiver's reply is kept.
const KEPT_BODY: usize = 2048;

/// A webhook (its secret is returned only on creation and rotation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Webhook {
    pub webhook_id: String,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    /// Only events of these indexes; `None`: all.
    pub index_ids: Option<Vec<String>>,
    /// `active` or `paused`.
    pub status: String,
    pub failure_count: u64,
    pub last_failure_at: Option<String>,
    pub last_success_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Echoed into every payload.
    pub metadata: Option<Value>,
}

/// A webhook to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NewWebhook {
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub index_ids: Option<Vec<String>>,
    pub metadata: Option<Value>,
}

impl NewWebhook {
    pub fn new(name: impl Into<String>, url: impl Into<String>, events: &[&str]) -> Self {
        NewWebhook {
            name: name.into(),
            url: url.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            ..Default::default()
        }
    }

    pub fn index_ids(mut self, ids: Vec<String>) -> Self {
        self.index_ids = Some(ids);
        self
    }

    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }
}

/// Fields to change (`None`: keep). `index_ids: Some(None)` means all indexes again.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct WebhookUpdate {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "some")]
    pub index_ids: Option<Option<Vec<String>>>,
    pub status: Option<String>,
    pub metadata: Option<Value>,
}

impl WebhookUpdate {
    pub fn new() -> Self {
        WebhookUpdate::default()
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    pub fn events(mut self, events: &[&str]) -> Self {
        self.events = Some(events.iter().map(|e| e.to_string()).collect());
        self
    }

    /// `None`: events of every index.
    pub fn index_ids(mut self, ids: Option<Vec<String>>) -> Self {
        self.index_ids = Some(ids);
        self
    }

    /// `active` or `paused`.
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }
}

fn some<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<Vec<String>>>, D::Error> {
    Option::<Vec<String>>::deserialize(d).map(Some)
}

/// One event sent (or to send) to one webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Delivery {
    pub delivery_id: String,
    pub webhook_id: String,
    pub event_type: String,
    /// `pending`, `retrying`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_attempt_at: Option<String>,
    pub next_retry_at: Option<String>,
    pub response_status_code: Option<u16>,
    pub response_body: Option<String>,
    pub error_message: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub payload: Value,
}

/// The outcome of [`Webhooks::test`](crate::engine::Webhooks::test).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookTest {
    pub success: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
}

/// The API name of an engine event, if webhooks can receive it.
pub(crate) fn api_name(e: EventType) -> Option<&'static str> {
    Some(match e {
        EventType::MediaCreated => "media.created",
        EventType::MediaProcessingStarted => "media.processing.started",
        EventType::MediaProcessingCompleted => "media.processing.completed",
        EventType::MediaProcessingFailed => "media.processing.failed",
        EventType::PromptRunProcessing => "prompt_run.started",
        EventType::PromptRunCompleted => "prompt_run.completed",
        EventType::PromptRunFailed => "prompt_run.failed",
        EventType::PromptRunCancelled => "prompt_run.cancelled",
        EventType::ImportJobStarted => "import_job.started",
        EventType::ImportJobProgress => "import_job.progress",
        EventType::ImportJobCompleted => "import_job.completed",
        EventType::ImportJobPartialCompleted => "import_job.partial_completed",
        EventType::ImportJobFailed => "import_job.failed",
        EventType::ExportReady => "export.ready",
        EventType::ExportFailed => "export.failed",
        _ => return None,
    })
}

fn check_url(url: &str) -> Result<()> {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        r
    } else if let Some(r) = url.strip_prefix("http://") {
        let host = r.split(['/', '?']).next().unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(Error::invalid("url", format!("{url:?}: use https (plain http is allowed for loopback only)")));
        }
        r
    } else {
        return Err(Error::invalid("url", format!("{url:?} is not an https URL")));
    };
    if rest.is_empty() || rest.starts_with('/') || url.len() > 2048 {
        return Err(Error::invalid("url", format!("{url:?} has no host")));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid("name", "must be 1 to 100 characters"));
    }
    Ok(name.to_string())
}

fn check_events(events: &[String]) -> Result<()> {
    if events.is_empty() {
        return Err(Error::invalid("events", "name at least one event (GET /webhooks/events lists them)"));
    }
    for e in events {
        if !EVENT_NAMES.contains(&e.as_str()) {
            return Err(Error::invalid(
                "events",
                format!("{e:?} is not an event name; known: {}", EVENT_NAMES.join(", ")),
            ));
        }
    }
    Ok(())
}

fn check_indexes(stores: &Stores, ids: &[String]) -> Result<Vec<String>> {
    ids.iter().map(|i| Ok(stores.catalog.index(i)?.index_id.to_string())).collect()
}

fn new_secret() -> Result<String> {
    Ok(format!("whsec_{}", super::random_hex(32)?))
}

const COLUMNS: &str = "webhook_id, name, url, events, index_ids, status, failure_count, last_failure_at,
    last_success_at, created_at, updated_at, metadata";

fn from_row(r: &Row) -> rusqlite::Result<Webhook> {
    let events: String = r.get(3)?;
    let index_ids: Option<String> = r.get(4)?;
    let metadata: Option<String> = r.get(11)?;
    Ok(Webhook {
        webhook_id: r.get(0)?,
        name: r.get(1)?,
        url: r.get(2)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        index_ids: index_ids.and_then(|s| serde_json::from_str(&s).ok()),
        status: r.get(5)?,
        failure_count: r.get::<_, i64>(6)? as u64,
        last_failure_at: r.get(7)?,
        last_success_at: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        metadata: metadata.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

/// Create a webhook; returns it with its signing secret (shown this once).
pub(crate) fn create(db: &Db, stores: &Stores, new: &NewWebhook) -> Result<(Webhook, String)> {
    let name = check_name(&new.name)?;
    check_url(&new.url)?;
    check_events(&new.events)?;
    let index_ids = new.index_ids.as_deref().map(|ids| check_indexes(stores, ids)).transpose()?;
    if new.metadata.as_ref().is_some_and(|m| !m.is_object()) {
        return Err(Error::invalid("metadata", "must be a JSON object"));
    }
    let webhook_id = crate::ids::new("wh");
    let secret = new_secret()?;
    let now = now_rfc3339();
    // Events from now on: the log's current end.
    let from = stores.events.last_event_id()?;
    db.write(|tx| {
        let seq = Db::next_seq(tx, "webhooks").sql()?;
        tx.execute(
            "INSERT INTO webhooks (webhook_id, seq, name, url, events, index_ids, status, secret, metadata, from_event,
                 created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?8, ?9, ?10, ?10)",
            params![
                webhook_id,
                seq,
                name,
                new.url.trim(),
                serde_json::to_string(&new.events).unwrap_or_default(),
                index_ids.map(|i| serde_json::to_string(&i).unwrap_or_default()),
                secret,
                new.metadata.as_ref().map(Value::to_string),
                from as i64,
                now
            ],
        )
        .sql()?;
        // The dispatcher's cursor starts where the first webhook starts.
        tx.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('event_cursor', ?1)", [from.to_string()]).sql()?;
        Ok(())
    })?;
    Ok((get(db, &webhook_id)?, secret))
}

pub(crate) fn get(db: &Db, webhook_id: &str) -> Result<Webhook> {
    db.with(|c| {
        c.query_row(&format!("SELECT {COLUMNS} FROM webhooks WHERE webhook_id = ?1"), [webhook_id], from_row).optional()
    })?
    .ok_or_else(|| Error::not_found("webhook", webhook_id))
}

pub(crate) fn list(db: &Db) -> Result<Vec<Webhook>> {
    db.with(|c| {
        let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM webhooks ORDER BY seq"))?;
        let rows = stmt.query_map([], from_row)?;
        rows.collect()
    })
}

pub(crate) fn update(db: &Db, stores: &Stores, webhook_id: &str, u: &WebhookUpdate) -> Result<Webhook> {
    let mut w = get(db, webhook_id)?;
    if let Some(name) = &u.name {
        w.name = check_name(name)?;
    }
    if let Some(url) = &u.url {
        check_url(url)?;
        w.url = url.trim().to_string();
    }
    if let Some(events) = &u.events {
        check_events(events)?;
        w.events = events.clone();
    }
    if let Some(ids) = &u.index_ids {
        w.index_ids = ids.as_deref().map(|ids| check_indexes(stores, ids)).transpose()?;
    }
    if let Some(status) = &u.status {
        if status != "active" && status != "paused" {
            return Err(Error::invalid("status", format!("{status:?}: use active or paused")));
        }
        w.status = status.clone();
    }
    if let Some(m) = &u.metadata {
        if !m.is_object() && !m.is_null() {
            return Err(Error::invalid("metadata", "must be a JSON object"));
        }
        w.metadata = (!m.is_null()).then(|| m.clone());
    }
    db.with(|c| {
        c.execute(
            "UPDATE webhooks SET name = ?2, url = ?3, events = ?4, index_ids = ?5, status = ?6, metadata = ?7, updated_at = ?8
             WHERE webhook_id = ?1",
            params![
                webhook_id,
                w.name,
                w.url,
                serde_json::to_string(&w.events).unwrap_or_default(),
                w.index_ids.as_ref().map(|i| serde_json::to_string(i).unwrap_or_default()),
                w.status,
                w.metadata.as_ref().map(Value::to_string),
                now_rfc3339()
            ],
        )
    })?;
    get(db, webhook_id)
}

/// Delete a webhook and its deliveries (pending ones are not sent).
pub(crate) fn delete(db: &Db, webhook_id: &str) -> Result<()> {
    let n = db.write(|tx| {
        tx.execute("DELETE FROM deliveries WHERE webhook_id = ?1", [webhook_id]).sql()?;
        tx.execute("DELETE FROM webhooks WHERE webhook_id = ?1", [webhook_id]).sql()
    })?;
    if n == 0 {
        return Err(Error::not_found("webhook", webhook_id));
    }
    Ok(())
}

pub(crate) fn rotate_secret(db: &Db, webhook_id: &str) -> Result<String> {
    get(db, webhook_id)?;
    let secret = new_secret()?;
    db.with(|c| {
        c.execute(
            "UPDATE webhooks SET secret = ?2, updated_at = ?3 WHERE webhook_id = ?1",
            params![webhook_id, secret, now_rfc3339()],
        )
    })?;
    Ok(secret)
}

fn secret(db: &Db, webhook_id: &str) -> Result<String> {
    db.with(|c| {
        c.query_row("SELECT secret FROM webhooks WHERE webhook_id = ?1", [webhook_id], |r| r.get(0)).optional()
    })?
    .ok_or_else(|| Error::not_found("webhook", webhook_id))
}

/// Send a `webhook.test` event now, signed like any delivery; nothing is recorded.
pub(crate) fn test(db: &Db, webhook_id: &str) -> Result<WebhookTest> {
    let w = get(db, webhook_id)?;
    let delivery_id = crate::ids::new("dlv");
    let payload = json!({
        "delivery_id": delivery_id,
        "event_type": "webhook.test",
        "event_id": format!("test_{}", super::random_hex(8)?),
        "webhook_id": w.webhook_id,
        "created_at": now_rfc3339(),
        "data": { "message": "a test delivery from videovector" },
        "metadata": w.metadata,
    });
    let secret = secret(db, webhook_id)?;
    let outcome = super::block_on(post(
        w.url.clone(),
        secret,
        w.webhook_id.clone(),
        delivery_id,
        "webhook.test".into(),
        payload,
    ))?;
    Ok(WebhookTest {
        success: outcome.status.is_some_and(|s| (200..300).contains(&s)),
        status_code: outcome.status,
        error: outcome.error.or_else(|| {
            outcome.status.filter(|s| !(200..300).contains(s)).map(|s| format!("the receiver answered {s}"))
        }),
    })
}

const DELIVERY_COLUMNS: &str =
    "delivery_id, webhook_id, event_type, status, attempts, last_attempt_at, next_attempt_ms,
    response_status_code, response_body, error_message, created_at, completed_at, payload";

fn delivery_row(r: &Row) -> rusqlite::Result<Delivery> {
    let status: String = r.get(3)?;
    let next: Option<i64> = r.get(6)?;
    let payload: String = r.get(12)?;
    Ok(Delivery {
        delivery_id: r.get(0)?,
        webhook_id: r.get(1)?,
        event_type: r.get(2)?,
        next_retry_at: next.filter(|_| status == "retrying").map(rfc3339_ms),
        status,
        attempts: r.get(4)?,
        last_attempt_at: r.get(5)?,
        response_status_code: r.get(7)?,
        response_body: r.get(8)?,
        error_message: r.get(9)?,
        created_at: r.get(10)?,
        completed_at: r.get(11)?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
    })
}

/// A webhook's deliveries, newest first.
pub(crate) fn deliveries(db: &Db, webhook_id: &str, status: Option<&str>, limit: usize) -> Result<Vec<Delivery>> {
    get(db, webhook_id)?;
    db.with(|c| {
        let mut stmt = c.prepare(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE webhook_id = ?1 AND (?2 IS NULL OR status = ?2)
             ORDER BY seq DESC LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![webhook_id, status, limit as i64], delivery_row)?;
        rows.collect()
    })
}

pub(crate) fn delivery(db: &Db, delivery_id: &str) -> Result<Delivery> {
    db.with(|c| {
        c.query_row(
            &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id = ?1"),
            [delivery_id],
            delivery_row,
        )
        .optional()
    })?
    .ok_or_else(|| Error::not_found("webhook delivery", delivery_id))
}

/// Send a delivery again now (a failed one, or one waiting for its next attempt).
pub(crate) fn retry_delivery(db: &Db, delivery_id: &str) -> Result<Delivery> {
    let d = delivery(db, delivery_id)?;
    if d.status == "delivered" {
        return Err(Error::Conflict(format!("delivery {delivery_id} was already delivered")));
    }
    let owner = format!("retry-{}", super::random_hex(4)?);
    let claimed = db.with(|c| {
        c.execute(
            "UPDATE deliveries SET lease_owner = ?2, lease_until_ms = ?3
             WHERE delivery_id = ?1 AND status != 'delivered' AND (lease_until_ms IS NULL OR lease_until_ms < ?4)",
            params![delivery_id, owner, now_ms() + lease_ms(), now_ms()],
        )
    })?;
    if claimed == 0 {
        return Err(Error::Conflict(format!("delivery {delivery_id} is being sent; read it again in a moment")));
    }
    let due = load_due(db, &[delivery_id.to_string()])?;
    super::block_on(send_all(db, due))??;
    delivery(db, delivery_id)
}

fn lease_ms() -> i64 {
    (TIMEOUT.as_millis() as i64) * 3
}

/// Canonical JSON: keys sorted, `", "` and `": "` separators, non-ASCII escaped (`\uXXXX`),
/// as Python's `json.dumps(payload, sort_keys=True)` writes it.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(k, out);
                out.push_str(": ");
                write_canonical(&map[*k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        Value::Number(n) if n.is_f64() => out.push_str(&python_float(n.as_f64().unwrap_or(0.0))),
        other => out.push_str(&other.to_string()),
    }
}

/// A float as Python's `repr` writes it: the shortest digits that read back the same, in
/// positional notation for decimal exponents from -4 to 15 (with `.0` when whole), otherwise as
/// `d.ddde-05` / `de+20`.
fn python_float(x: f64) -> String {
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `sha256=<hex>` of HMAC-SHA256 over `body` with `secret`.
pub fn signature(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body.as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn client() -> Result<&'static reqwest::Client> {
    static CLIENT: OnceLock<std::result::Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("videovector/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Internal(format!("cannot make an HTTP client: {e}")))
}

struct Outcome {
    status: Option<u16>,
    body: Option<String>,
    error: Option<String>,
}

async fn post(
    url: String,
    secret: String,
    webhook_id: String,
    delivery_id: String,
    event: String,
    payload: Value,
) -> Outcome {
    let body = canonical_json(&payload);
    let client = match client() {
        Ok(c) => c,
        Err(e) => return Outcome { status: None, body: None, error: Some(e.to_string()) },
    };
    let sent = client
        .post(&url)
        .header("Content-Type", "application/json")
        .header("X-Webhook-Signature", signature(&secret, &body))
        .header("X-Webhook-ID", webhook_id)
        .header("X-Delivery-ID", delivery_id)
        .header("X-Event-Type", event)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let body = (!text.is_empty()).then(|| text.chars().take(KEPT_BODY).collect());
            Outcome { status: Some(status), body, error: None }
        }
        Err(e) => Outcome { status: None, body: None, error: Some(describe(&e)) },
    }
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        format!("no reply within {} s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what
    } else {
        format!("{what}: {detail}")
    }
}

/// The delay before attempt `attempts + 1`, with +-20% jitter.
fn backoff(attempts: u32) -> Duration {
    let base = FIRST_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF);
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let unit = f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX); // 0..1
    base.mul_f64(0.8 + 0.4 * unit)
}

struct Due {
    delivery_id: String,
    webhook_id: String,
    url: String,
    secret: String,
    event_type: String,
    payload: Value,
    attempts: u32,
}

fn load_due(db: &Db, ids: &[String]) -> Result<Vec<Due>> {
    let mut out = Vec::new();
    for id in ids {
        let d = db.with(|c| {
            c.query_row(
                "SELECT d.delivery_id, d.webhook_id, w.url, w.secret, d.event_type, d.payload, d.attempts
                 FROM deliveries d JOIN webhooks w ON w.webhook_id = d.webhook_id WHERE d.delivery_id = ?1",
                [id],
                |r| {
                    let payload: String = r.get(5)?;
                    Ok(Due {
                        delivery_id: r.get(0)?,
                        webhook_id: r.get(1)?,
                        url: r.get(2)?,
                        secret: r.get(3)?,
                        event_type: r.get(4)?,
                        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
                        attempts: r.get(6)?,
                    })
                },
            )
            .optional()
        })?;
        out.extend(d);
    }
    Ok(out)
}

/// Send these deliveries concurrently and record each outcome.
async fn send_all(db: &Db, due: Vec<Due>) -> Result<()> {
    let sends = due.into_iter().map(|d| async move {
        let o = post(
            d.url.clone(),
            d.secret.clone(),
            d.webhook_id.clone(),
            d.delivery_id.clone(),
            d.event_type.clone(),
            d.payload.clone(),
        )
        .await;
        (d, o)
    });
    for (d, o) in futures_util::future::join_all(sends).await {
        record(db, &d, &o)?;
    }
    Ok(())
}

fn record(db: &Db, d: &Due, o: &Outcome) -> Result<()> {
    let attempts = d.attempts + 1;
    let now = now_rfc3339();
    let ok = o.status.is_some_and(|s| (200..300).contains(&s));
    let retryable = match o.status {
        None => true,
        Some(s) => s == 408 || s == 429 || s >= 500,
    };
    let (status, next) = if ok {
        ("delivered", None)
    } else if retryable && attempts < MAX_ATTEMPTS {
        ("retrying", Some(now_ms() + backoff(attempts).as_millis() as i64))
    } else {
        ("failed", None)
    };
    let error = o.error.clone().or_else(|| {
        o.status.filter(|_| !ok).map(|s| {
            if retryable {
                format!("the receiver answered {s}")
            } else {
                format!("the receiver answered {s} (a 4xx is not retried)")
            }
        })
    });
    db.write(|tx| {
        tx.execute(
            "UPDATE deliveries SET status = ?2, attempts = ?3, last_attempt_at = ?4, next_attempt_ms = ?5,
                 response_status_code = ?6, response_body = ?7, error_message = ?8,
                 completed_at = CASE WHEN ?2 IN ('delivered', 'failed') THEN ?4 ELSE NULL END,
                 lease_owner = NULL, lease_until_ms = NULL
             WHERE delivery_id = ?1",
            params![d.delivery_id, status, attempts, now, next, o.status, o.body, error],
        )
        .sql()?;
        if ok {
            tx.execute("UPDATE webhooks SET last_success_at = ?2 WHERE webhook_id = ?1", params![d.webhook_id, now])
                .sql()?;
        } else {
            tx.execute(
                "UPDATE webhooks SET failure_count = failure_count + 1, last_failure_at = ?2 WHERE webhook_id = ?1",
                params![d.webhook_id, now],
            )
            .sql()?;
        }
        Ok(())
    })
}

/// The payload of one event for one webhook.
fn payload(e: &Event, name: &str, w: &Webhook) -> Value {
    json!({
        "event_id": format!("evt_{}", e.event_id),
        "event_type": name,
        "created_at": e.created_at,
        "webhook_id": w.webhook_id,
        "data": {
            "video_id": e.video_id,
            "index_id": e.index_id,
            "run_id": e.run_id,
            "segment_id": e.segment_id,
            "details": e.payload,
        },
        "metadata": w.metadata,
    })
}

/// Turn new events into deliveries, moving the cursor in the same transaction. Returns whether
/// there were events.
fn fan_out(db: &Db, stores: &Stores) -> Result<bool> {
    let cursor: Option<u64> = db.with(|c| {
        c.query_row("SELECT value FROM meta WHERE key = 'event_cursor'", [], |r| r.get::<_, String>(0))
            .optional()
            .map(|v| v.and_then(|s| s.parse().ok()))
    })?;
    let Some(cursor) = cursor else { return Ok(false) };
    let events = stores.events.events_since(cursor, 500)?;
    let Some(last) = events.last().map(|e| e.event_id) else { return Ok(false) };
    let hooks: Vec<(Webhook, u64)> = db.with(|c| {
        let mut stmt = c.prepare(&format!("SELECT {COLUMNS}, from_event FROM webhooks WHERE status = 'active'"))?;
        let rows = stmt.query_map([], |r| Ok((from_row(r)?, r.get::<_, i64>(12)? as u64)))?;
        rows.collect()
    })?;
    let now = now_rfc3339();
    db.write(|tx| {
        let mut seq = Db::next_seq(tx, "deliveries").sql()?;
        for e in &events {
            let Some(mut name) = api_name(e.event_type) else { continue };
            if e.event_type == EventType::PromptRunCompleted && e.payload["status"] == "completed_with_failures" {
                name = "prompt_run.partial_completed";
            }
            for (w, from) in &hooks {
                let wanted = e.event_id > *from
                    && w.events.iter().any(|x| x == name)
                    && w.index_ids.as_ref().is_none_or(|ids| e.index_id.as_ref().is_some_and(|i| ids.iter().any(|x| x == i.as_str())));
                if !wanted {
                    continue;
                }
                let id = crate::ids::new("dlv");
                let mut body = payload(e, name, w);
                body["delivery_id"] = json!(id);
                tx.execute(
                    "INSERT OR IGNORE INTO deliveries (delivery_id, seq, webhook_id, event_type, event_key, payload, status,
                         next_attempt_ms, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7)",
                    params![id, seq, w.webhook_id, name, e.event_id.to_string(), body.to_string(), now],
                )
                .sql()?;
                seq += 1;
            }
        }
        tx.execute("UPDATE meta SET value = ?1 WHERE key = 'event_cursor'", [last.to_string()]).sql()?;
        Ok(())
    })?;
    Ok(true)
}

/// Claim due deliveries for `owner` (a lease, so two engines on one folder never send one
/// delivery at once) and send them. Returns how many were sent.
fn send_due(db: &Db, owner: &str) -> Result<usize> {
    let now = now_ms();
    // Most ticks have nothing due: a read says so without taking the write lock.
    let any: Option<i64> = db.with(|c| {
        c.query_row(
            "SELECT 1 FROM deliveries WHERE status IN ('pending', 'retrying') AND next_attempt_ms <= ?1 LIMIT 1",
            [now],
            |r| r.get(0),
        )
        .optional()
    })?;
    if any.is_none() {
        return Ok(0);
    }
    let ids: Vec<String> = db.write(|tx| {
        let ids: Vec<String> = {
            let mut stmt = tx
                .prepare(
                    "SELECT d.delivery_id FROM deliveries d JOIN webhooks w ON w.webhook_id = d.webhook_id
                     WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_ms <= ?1 AND w.status = 'active'
                       AND (d.lease_until_ms IS NULL OR d.lease_until_ms < ?1)
                     ORDER BY d.seq LIMIT 64",
                )
                .sql()?;
            let rows = stmt.query_map([now], |r| r.get(0)).sql()?;
            rows.collect::<rusqlite::Result<_>>().sql()?
        };
        for id in &ids {
            tx.execute(
                "UPDATE deliveries SET lease_owner = ?2, lease_until_ms = ?3 WHERE delivery_id = ?1",
                params![id, owner, now + lease_ms()],
            )
            .sql()?;
        }
        Ok(ids)
    })?;
    if ids.is_empty() {
        return Ok(0);
    }
    let due = load_due(db, &ids)?;
    let n = due.len();
    super::block_on(send_all(db, due))??;
    Ok(n)
}

/// The dispatcher of one engine: a thread that settles imports, fans events out to webhooks,
/// sends due deliveries and calls `tick` (the engine's automations), until dropped.
pub(crate) struct Dispatcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the dispatcher looks at the log when idle.
const TICK: Duration = Duration::from_millis(100);

impl Dispatcher {
    pub fn start(db: Arc<Db>, stores: Stores, mut tick: Box<dyn FnMut() + Send>) -> Result<Dispatcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let owner = format!("dispatch-{}-{}", std::process::id(), super::random_hex(4)?);
        let thread = std::thread::Builder::new()
            .name("videovector-webhooks".into())
            .spawn(move || {
                let mut last_settle = std::time::Instant::now() - Duration::from_secs(10);
                while !flag.load(Ordering::Relaxed) {
                    // Failures here (a locked file, a store error) are retried on the next tick.
                    if last_settle.elapsed() >= Duration::from_millis(500) {
                        let _ = super::imports::settle(&db, &stores);
                        tick();
                        last_settle = std::time::Instant::now();
                    }
                    let fanned = fan_out(&db, &stores).unwrap_or(false);
                    let sent = send_due(&db, &owner).unwrap_or(0);
                    if !fanned && sent == 0 {
                        std::thread::sleep(TICK);
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the webhook dispatcher: {e}")))?;
        Ok(Dispatcher { stop, thread: Some(thread) })
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // The last engine handle can be the driver's own (an automation tick): then the
            // thread ends by itself once this returns.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_matches_python_sort_keys() {
        // json.dumps({"b": [1, 2.5, None, True], "a": {"z": "é\n", "y": "😀"}}, sort_keys=True)
        let v = json!({"b": [1, 2.5, null, true], "a": {"z": "é\n", "y": "😀"}});
        assert_eq!(canonical_json(&v), r#"{"a": {"y": "\ud83d\ude00", "z": "\u00e9\n"}, "b": [1, 2.5, null, true]}"#);
    }

    #[test]
    fn floats_are_written_as_python_repr() {
        // [repr(x) for x in (1e-07, 2.5e-05, 0.0001, 1e+20, 1e15, 1e16, 0.1, -3.0, 123.456, 1.5e300)]
        let cases = [
            (1e-7, "1e-07"),
            (2.5e-5, "2.5e-05"),
            (0.0001, "0.0001"),
            (1e20, "1e+20"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (0.1, "0.1"),
            (-3.0, "-3.0"),
            (123.456, "123.456"),
            (1.5e300, "1.5e+300"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float(x), want, "{x}");
        }
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // hmac.new(b"key", b"The quick brown fox jumps over the lazy dog", hashlib.sha256).hexdigest()
        assert_eq!(
            signature("key", "The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        for attempts in 1..12 {
            let d = backoff(attempts).as_secs_f64();
            let base = (2f64 * 2f64.powi(attempts as i32 - 1)).min(600.0);
            assert!(d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9, "attempt {attempts}: {d} s vs {base} s");
        }
    }

    #[test]
    fn urls_must_be_https_except_loopback() {
        assert!(check_url("https://example.com/hook").is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://localhost/hook").is_ok());
        assert!(check_url("http://example.com/hook").is_err());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("https://").is_err());
    }
}
