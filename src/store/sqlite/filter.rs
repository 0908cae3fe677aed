//! Filters over run results in SQL. Each successful result's leaves are kept in `result_fields`
//! (written in the transaction that stores the result), and a [`Filter`] has one rendering to a
//! WHERE clause over them, with every value bound as a parameter.
//!
//! The meaning of each operator is [`Filter::matches`]; a property test holds this rendering to it.

use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde_json::Value;

use super::{scope_key, Sql};
use crate::error::Result;
use crate::store::ResultFilter;
use crate::types::filter::{flatten, Cond, LeafValue, Op, Scalar};

/// Migration 6: the leaves of every successful result, by canonical path. Text is kept folded
/// (ASCII lower case), the way conditions compare it; numbers, booleans (0 or 1) and array lengths
/// in `num`.
pub(super) const MIGRATION: &str = r#"
CREATE TABLE result_fields (
    result_id       INTEGER NOT NULL REFERENCES run_results(result_id) ON DELETE CASCADE,
    path            TEXT NOT NULL,
    instance        TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('text', 'number', 'bool', 'null', 'array')),
    text            TEXT,
    num             REAL
);
CREATE INDEX result_fields_text ON result_fields (path, kind, text);
CREATE INDEX result_fields_num ON result_fields (path, kind, num);
CREATE INDEX result_fields_result ON result_fields (result_id);
CREATE INDEX run_results_segment ON run_results (segment_id);
"#;

/// Replace the leaves of one result (none when it failed).
pub(super) fn write_fields(tx: &Connection, result_id: i64, metadata: Option<&Value>) -> Result<()> {
    tx.execute("DELETE FROM result_fields WHERE result_id = ?1", [result_id]).db()?;
    let Some(metadata) = metadata else { return Ok(()) };
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO result_fields (result_id, path, instance, kind, text, num) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .db()?;
    for leaf in flatten(metadata) {
        let (kind, text, num) = match &leaf.value {
            LeafValue::Text(s) => ("text", Some(crate::types::filter::fold(s)), None),
            LeafValue::Number(n) => ("number", None, Some(*n)),
            LeafValue::Bool(b) => ("bool", None, Some(f64::from(u8::from(*b)))),
            LeafValue::Null => ("null", None, None),
            LeafValue::Array(n) => ("array", None, Some(*n as f64)),
        };
        insert.execute(rusqlite::params![result_id, leaf.path, leaf.instance, kind, text, num]).db()?;
    }
    Ok(())
}

/// Fill `result_fields` for results stored before it existed (run with migration 6).
pub(super) fn index_existing(tx: &Connection) -> Result<()> {
    let rows: Vec<(i64, String)> = {
        let mut stmt = tx.prepare("SELECT result_id, doc FROM run_results WHERE succeeded = 1").db()?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db()?;
        rows.collect::<rusqlite::Result<_>>().db()?
    };
    for (id, doc) in rows {
        let doc: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
        write_fields(tx, id, doc.get("metadata"))?;
    }
    Ok(())
}

/// SQL text with its parameters, in order (`?` placeholders).
#[derive(Debug, Default)]
pub(super) struct Query {
    pub text: String,
    pub params: Vec<SqlValue>,
}

impl Query {
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub fn bind(&mut self, value: impl Into<SqlValue>) -> &mut Self {
        self.text.push('?');
        self.params.push(value.into());
        self
    }

    /// `(?, ?, ...)` of `values` (`(NULL)` when there are none, which matches nothing).
    pub fn list<V: Into<SqlValue>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        self.text.push('(');
        let mut first = true;
        for v in values {
            if !first {
                self.text.push_str(", ");
            }
            first = false;
            self.bind(v);
        }
        if first {
            self.text.push_str("NULL");
        }
        self.text.push(')');
        self
    }
}

/// Append the WHERE conditions (joined by AND, starting with AND) that restrict `run_results r`
/// to `f`.
pub(super) fn render(f: &ResultFilter<'_>, q: &mut Query) {
    q.push(" AND r.succeeded = 1 AND r.run_id IN ").list(f.run_ids.iter().cloned());
    q.push(" AND r.video_id IN (SELECT video_id FROM media WHERE coalesce(index_id, '') IN ")
        .list(f.scopes.iter().map(|s| scope_key(s).to_string()))
        .push(")");
    for c in &f.filter.conditions {
        q.push(" AND ");
        condition(c, q);
    }
}

/// One condition: some leaf at its path satisfies it (or, for `is_empty` on a path through no
/// array, there is no leaf at all).
fn condition(c: &Cond, q: &mut Query) {
    let path = c.leaf_path();
    if c.absent_matches() {
        q.push("(");
    }
    q.push("r.result_id IN (SELECT result_id FROM result_fields WHERE path = ").bind(path.clone()).push(" AND ");
    let text = |q: &mut Query, sql: &str, v: &str| {
        q.push("kind = 'text' AND ").push(sql).push(" ").bind(v.to_string());
    };
    let num = |q: &mut Query, kind: &str, sql: &str, v: f64| {
        q.push("kind = '").push(kind).push("' AND num ").push(sql).push(" ").bind(v);
    };
    match &c.op {
        Op::TextEquals(v) | Op::ItemEquals(Scalar::Text(v)) => text(q, "text =", v),
        Op::Contains(v) | Op::ItemContains(v) => {
            q.push("kind = 'text' AND instr(text, ").bind(v.clone()).push(") > 0");
        }
        Op::StartsWith(v) => {
            q.push("kind = 'text' AND substr(text, 1, length(").bind(v.clone()).push(")) = ").bind(v.clone());
        }
        Op::EndsWith(v) => {
            q.push("kind = 'text' AND length(text) >= length(")
                .bind(v.clone())
                .push(") AND substr(text, -length(")
                .bind(v.clone())
                .push(")) = ")
                .bind(v.clone());
        }
        Op::TextEmpty => {
            q.push("(kind = 'null' OR (kind = 'text' AND text = ''))");
        }
        Op::TextNotEmpty => {
            q.push("kind = 'text' AND text <> ''");
        }
        Op::NumberEquals(v) | Op::ItemEquals(Scalar::Number(v)) => num(q, "number", "=", *v),
        Op::Greater(v) => num(q, "number", ">", *v),
        Op::GreaterEqual(v) => num(q, "number", ">=", *v),
        Op::Less(v) => num(q, "number", "<", *v),
        Op::LessEqual(v) => num(q, "number", "<=", *v),
        Op::BoolEquals(b) | Op::ItemEquals(Scalar::Bool(b)) => num(q, "bool", "=", f64::from(u8::from(*b))),
        Op::LengthEquals(n) => num(q, "array", "=", *n as f64),
        Op::LengthGreater(n) => num(q, "array", ">", *n as f64),
        Op::LengthLess(n) => num(q, "array", "<", *n as f64),
        Op::ArrayEmpty => {
            q.push("(kind = 'null' OR (kind = 'array' AND num = 0))");
        }
        Op::ArrayNotEmpty => {
            q.push("kind = 'array' AND num > 0");
        }
    }
    q.push(")");
    if c.absent_matches() {
        q.push(" OR r.result_id NOT IN (SELECT result_id FROM result_fields WHERE path = ").bind(path).push("))");
    }
}
