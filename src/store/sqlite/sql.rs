//! SQL search: a caller's query over views of one scope, on a connection that cannot change or
//! read anything else.
//!
//! Each query gets a fresh read-only connection (`SQLITE_OPEN_READ_ONLY`, `query_only`). The
//! views of the scope (`media`, `segments`, `transcripts`, `runs`, `results`, and one per run with
//! a column per schema field) are made as TEMP views with the scope written into them; then an
//! authorizer is installed that allows SELECT, reading those views (and, through them, their
//! tables), `json_each`/`json_tree`, and functions other than the few that touch files or
//! extensions; everything else (any write, ATTACH, PRAGMA, CREATE, transactions, reading another
//! table) is refused while the statement is prepared. A progress handler ends it at the time
//! limit, SQLite's limits bound string sizes and the statement length, and rows and bytes are
//! counted as they are read.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

use super::{scope_key, SqliteStore};
use crate::error::{Error, Result};
use crate::store::{SqlScope, SqlStore};
use crate::types::filter::{schema_fields, FieldType};
use crate::types::sql::{
    SqlCatalog, SqlColumn, SqlLimits, SqlResult, SqlTable, MAX_SQL_QUERY_CHARS, MAX_SQL_RESULT_BYTES,
    MAX_SQL_VALUE_BYTES, SQL_TIME_LIMIT_MS,
};

/// Functions a query may not call, though SQLite has them (files, extensions, tokenizers).
const DENIED_FUNCTIONS: &[&str] = &["load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"];
/// Table-valued functions a query may read.
const TABLE_FUNCTIONS: &[&str] = &["json_each", "json_tree"];

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.map(|s| lit(&s)).collect();
    if items.is_empty() {
        "(NULL)".into()
    } else {
        format!("({})", items.join(", "))
    }
}

fn column(name: &str, t: &str, field: Option<&str>) -> SqlColumn {
    SqlColumn { name: name.into(), column_type: t.into(), field_path: field.map(Into::into) }
}

/// A table and the SELECT that makes its view.
struct View {
    table: SqlTable,
    select: String,
}

/// The views of a scope.
fn views(scope: &SqlScope<'_>) -> Vec<View> {
    let scopes = list(scope.scopes.iter().map(|s| scope_key(s).to_string()));
    let runs = list(scope.runs.iter().map(|r| r.run_id.to_string()));
    let media_in = format!("SELECT video_id FROM main.media WHERE coalesce(index_id, '') IN {scopes}");
    let index_ids: Vec<Option<String>> = scope.scopes.iter().map(|s| s.index_id().map(|i| i.to_string())).collect();
    let table = |name: &str, description: &str, columns: Vec<SqlColumn>| SqlTable {
        name: name.into(),
        description: description.into(),
        index_ids: index_ids.clone(),
        run_id: None,
        prompt_id: None,
        columns,
    };
    let mut out = vec![
        View {
            table: table(
                "media",
                "Media items: one row per video, audio file or image.",
                vec![
                    column("video_id", "text", None),
                    column("index_id", "text", None),
                    column("title", "text", None),
                    column("media_type", "text", None),
                    column("status", "text", None),
                    column("duration", "real", None),
                    column("created_at", "text", None),
                ],
            ),
            select: format!(
                "SELECT video_id, index_id, title, media_type, status, duration_us / 1e6 AS duration, created_at
                 FROM main.media WHERE video_id IN ({media_in})"
            ),
        },
        View {
            table: table(
                "segments",
                "Segments in seconds: the ingest segmentation (run_id null) and runs' own.",
                vec![
                    column("segment_id", "text", None),
                    column("video_id", "text", None),
                    column("run_id", "text", None),
                    column("kind", "text", None),
                    column("start_time", "real", None),
                    column("end_time", "real", None),
                    column("segmentation_type", "text", None),
                    column("thumbnail_path", "text", None),
                ],
            ),
            select: format!(
                "SELECT segment_id, video_id, nullif(run_id, '') AS run_id, kind, start_us / 1e6 AS start_time,
                 end_us / 1e6 AS end_time, segmentation_type, thumbnail_path
                 FROM main.segments WHERE video_id IN ({media_in})"
            ),
        },
        View {
            table: table(
                "transcripts",
                "What was said: timed phrases.",
                vec![
                    column("video_id", "text", None),
                    column("start_time", "real", None),
                    column("end_time", "real", None),
                    column("text", "text", None),
                ],
            ),
            select: format!(
                "SELECT video_id, start_us / 1e6 AS start_time, end_us / 1e6 AS end_time, text
                 FROM main.phrases WHERE video_id IN ({media_in})"
            ),
        },
        View {
            table: table(
                "runs",
                "Prompt runs over media in scope.",
                vec![
                    column("run_id", "text", None),
                    column("prompt_id", "text", None),
                    column("prompt_name", "text", None),
                    column("status", "text", None),
                    column("model", "text", None),
                    column("created_at", "text", None),
                ],
            ),
            select: format!(
                "SELECT run_id, prompt_id, json_extract(doc, '$.prompt_name') AS prompt_name, status,
                 json_extract(doc, '$.model') AS model, created_at FROM main.prompt_runs WHERE run_id IN {runs}"
            ),
        },
        View {
            table: table(
                "results",
                "Every run's segment results; metadata is the extracted JSON.",
                vec![
                    column("run_id", "text", None),
                    column("segment_id", "text", None),
                    column("video_id", "text", None),
                    column("start_time", "real", None),
                    column("end_time", "real", None),
                    column("succeeded", "boolean", None),
                    column("metadata", "json", None),
                    column("metadata_text", "text", None),
                ],
            ),
            select: format!(
                "SELECT run_id, segment_id, video_id, json_extract(doc, '$.start_time') AS start_time,
                 json_extract(doc, '$.end_time') AS end_time, succeeded, json_extract(doc, '$.metadata') AS metadata,
                 json_extract(doc, '$.metadata_text') AS metadata_text
                 FROM main.run_results WHERE run_id IN {runs} AND video_id IN ({media_in})"
            ),
        },
    ];
    for run in scope.runs {
        let mut columns = vec![
            column("segment_id", "text", None),
            column("video_id", "text", None),
            column("start_time", "real", None),
            column("end_time", "real", None),
        ];
        let mut select = vec![
            "segment_id".to_string(),
            "video_id".into(),
            "json_extract(doc, '$.start_time') AS start_time".into(),
            "json_extract(doc, '$.end_time') AS end_time".into(),
        ];
        let mut seen: HashSet<String> = columns.iter().map(|c| c.name.clone()).collect();
        for (path, t) in schema_fields(&run.json_schema) {
            // Fields inside arrays are read through their array's column (`json_each`).
            if path.contains("[]") || path.contains('"') || !seen.insert(path.clone()) {
                continue;
            }
            let json_path =
                format!("$.metadata.{}", path.split('.').map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join("."));
            let kind = match t {
                FieldType::String => "text",
                FieldType::Integer => "integer",
                FieldType::Number => "real",
                FieldType::Boolean => "boolean",
                FieldType::Array => "json",
            };
            select.push(format!("json_extract(doc, {}) AS {}", lit(&json_path), ident(&path)));
            columns.push(column(&path, kind, Some(&path)));
        }
        out.push(View {
            table: SqlTable {
                name: run.run_id.to_string(),
                description: format!(
                    "The results of run {} (prompt {:?}), one row per segment.",
                    run.run_id, run.prompt_name
                ),
                index_ids: index_ids.clone(),
                run_id: Some(run.run_id.to_string()),
                prompt_id: Some(run.prompt_id.to_string()),
                columns,
            },
            select: format!(
                "SELECT {} FROM main.run_results WHERE run_id = {} AND succeeded = 1 AND video_id IN ({media_in})",
                select.join(", "),
                lit(run.run_id.as_str())
            ),
        });
    }
    out
}

fn default_query(scope: &SqlScope<'_>) -> String {
    match scope.runs.first() {
        Some(run) => {
            let first = schema_fields(&run.json_schema)
                .into_iter()
                .find(|(p, _)| !p.contains("[]") && !p.contains('"'))
                .map(|(p, _)| format!(", {}", ident(&p)))
                .unwrap_or_default();
            format!("SELECT segment_id, video_id, start_time, end_time{first} FROM {} ORDER BY video_id, start_time LIMIT 20", run.run_id)
        }
        None => {
            "SELECT segment_id, video_id, start_time, end_time FROM segments ORDER BY video_id, start_time LIMIT 20"
                .into()
        }
    }
}

/// What the authorizer saw that it refused, and whether the time ran out.
#[derive(Default)]
struct Guard {
    /// The first refusal, or the first of SQLite's own bookkeeping (writes to `sqlite_master`
    /// that a CREATE makes) when nothing the caller wrote was refused.
    refused: Mutex<Option<(bool, String)>>,
    timed_out: AtomicBool,
}

impl Guard {
    fn refuse(&self, what: String) -> Authorization {
        let bookkeeping = ["INSERT", "UPDATE", "DELETE"].iter().any(|w| what.starts_with(w))
            && (what.contains("\"sqlite_master\"") || what.contains("\"sqlite_temp_master\""));
        let what = if bookkeeping { "changing the schema".to_string() } else { what };
        let mut r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if r.as_ref().is_none_or(|(weak, _)| *weak && !bookkeeping) {
            *r = Some((bookkeeping, what));
        }
        Authorization::Deny
    }

    /// The error for a failure of preparing or stepping the statement.
    fn error(&self, e: rusqlite::Error, tables: &[String]) -> Error {
        if let Some((_, what)) = self.refused.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Error::QueryRefused(format!(
                "{what} is not allowed: a query is one SELECT that reads {}",
                tables.join(", ")
            ));
        }
        if self.timed_out.load(Ordering::Relaxed) {
            return Error::QueryRefused(format!("the query ran past the time limit of {SQL_TIME_LIMIT_MS} ms"));
        }
        match e {
            rusqlite::Error::MultipleStatement => Error::QueryRefused("give one statement only".into()),
            e if e.sqlite_error_code() == Some(rusqlite::ErrorCode::TooBig) => {
                Error::QueryRefused(format!("the query makes a value larger than {MAX_SQL_VALUE_BYTES} bytes"))
            }
            e => Error::QueryRefused(format!("the query failed: {e}")),
        }
    }
}

/// A connection that can read the views of `scope` and nothing else, with the names of its
/// tables.
fn guarded(path: &std::path::Path, scope: &SqlScope<'_>) -> Result<(Connection, Arc<Guard>, Vec<String>)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let store_err = |e: rusqlite::Error| Error::Store(format!("catalog {}: {e}", path.display()));
    let mut conn = Connection::open_with_flags(path, flags).map_err(store_err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(store_err)?;
    conn.execute_batch("PRAGMA cache_size = -8192; PRAGMA temp_store = FILE;").map_err(store_err)?;
    let views = views(scope);
    let mut names = Vec::new();
    for v in &views {
        conn.execute_batch(&format!("CREATE TEMP VIEW {} AS {}", ident(&v.table.name), v.select)).map_err(store_err)?;
        names.push(v.table.name.clone());
    }
    // Not even the temp schema may change from here on.
    conn.execute_batch("PRAGMA query_only = ON").map_err(store_err)?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_SQL_VALUE_BYTES as i32).map_err(store_err)?;
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, (MAX_SQL_QUERY_CHARS * 4) as i32).map_err(store_err)?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(store_err)?;
    let guard = Arc::new(Guard::default());
    let allowed: HashSet<String> = names.iter().cloned().collect();
    let g = guard.clone();
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        let via_view = ctx.accessor.is_some_and(|a| allowed.contains(a));
        match ctx.action {
            AuthAction::Select | AuthAction::Recursive => Authorization::Allow,
            AuthAction::Read { table_name, .. } => {
                let ours = ctx.database_name == Some("temp") && allowed.contains(table_name);
                // Tables of no schema are the query's own common table expressions.
                let cte = ctx.database_name.is_none();
                if ours || via_view || cte || TABLE_FUNCTIONS.contains(&table_name) {
                    Authorization::Allow
                } else {
                    g.refuse(format!("reading table {table_name:?}"))
                }
            }
            AuthAction::Function { function_name } => {
                if DENIED_FUNCTIONS.contains(&function_name.to_ascii_lowercase().as_str()) {
                    g.refuse(format!("the function {function_name}()"))
                } else {
                    Authorization::Allow
                }
            }
            AuthAction::Pragma { pragma_name, .. } => g.refuse(format!("PRAGMA {pragma_name}")),
            AuthAction::Attach { .. } => g.refuse("ATTACH".into()),
            AuthAction::Detach { .. } => g.refuse("DETACH".into()),
            AuthAction::Insert { table_name } => g.refuse(format!("INSERT into {table_name:?}")),
            AuthAction::Update { table_name, .. } => g.refuse(format!("UPDATE of {table_name:?}")),
            AuthAction::Delete { table_name } => g.refuse(format!("DELETE from {table_name:?}")),
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => g.refuse("a transaction".into()),
            other => g.refuse(format!("{other:?}")),
        }
    }))
    .map_err(store_err)?;
    Ok((conn, guard, names))
}

fn json_value(v: ValueRef<'_>) -> (Value, usize) {
    match v {
        ValueRef::Null => (Value::Null, 4),
        ValueRef::Integer(i) => (Value::from(i), 8),
        ValueRef::Real(f) => (serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number), 8),
        ValueRef::Text(t) => (Value::String(String::from_utf8_lossy(t).into_owned()), t.len()),
        ValueRef::Blob(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            (Value::String(hex), b.len() * 2)
        }
    }
}

/// Check a query's text before it reaches SQLite.
fn check_text(query: &str) -> Result<&str> {
    let q = query.trim();
    if q.is_empty() {
        return Err(Error::invalid("query", "must not be empty"));
    }
    if q.chars().count() > MAX_SQL_QUERY_CHARS {
        return Err(Error::QueryRefused(format!("the query is longer than {MAX_SQL_QUERY_CHARS} characters")));
    }
    Ok(q)
}

impl SqlStore for SqliteStore {
    fn sql_catalog(&self, scope: &SqlScope<'_>) -> Result<SqlCatalog> {
        Ok(SqlCatalog {
            dialect: "sqlite".into(),
            tables: views(scope).into_iter().map(|v| v.table).collect(),
            default_query: default_query(scope),
            limits: SqlLimits::default(),
        })
    }

    fn sql_check(&self, scope: &SqlScope<'_>, query: &str) -> Result<()> {
        let q = check_text(query)?;
        let (conn, guard, names) = guarded(&self.db.path, scope)?;
        let stmt = conn.prepare(q).map_err(|e| guard.error(e, &names))?;
        if !stmt.readonly() {
            return Err(Error::QueryRefused("the statement would write".into()));
        }
        Ok(())
    }

    fn sql_execute(&self, scope: &SqlScope<'_>, query: &str, limit: usize) -> Result<SqlResult> {
        let q = check_text(query)?;
        let start = Instant::now();
        let (mut conn, guard, names) = guarded(&self.db.path, scope)?;
        let deadline = start + Duration::from_millis(SQL_TIME_LIMIT_MS);
        let g = guard.clone();
        conn.progress_handler(
            1000,
            Some(move || {
                let over = Instant::now() > deadline;
                if over {
                    g.timed_out.store(true, Ordering::Relaxed);
                }
                over
            }),
        )
        .map_err(|e| Error::Store(e.to_string()))?;
        let mut stmt = conn.prepare(q).map_err(|e| guard.error(e, &names))?;
        if !stmt.readonly() {
            return Err(Error::QueryRefused("the statement would write".into()));
        }
        let columns: Vec<String> = stmt.column_names().map(String::from).collect();
        let mut rows = stmt.raw_query();
        let mut out: Vec<Vec<Value>> = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        loop {
            let row = match rows.next() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(guard.error(e, &names)),
            };
            if out.len() == limit {
                truncated = true;
                break;
            }
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                let (v, n) = json_value(row.get_ref(i).map_err(|e| guard.error(e, &names))?);
                bytes += n;
                values.push(v);
            }
            if bytes > MAX_SQL_RESULT_BYTES {
                return Err(Error::QueryRefused(format!(
                    "the result is larger than {MAX_SQL_RESULT_BYTES} bytes; select fewer columns or rows"
                )));
            }
            out.push(values);
        }
        Ok(SqlResult {
            columns,
            row_count: out.len(),
            rows: out,
            truncated,
            elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }
}
