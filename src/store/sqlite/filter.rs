//! Filters over run results in SQL. Each successful result's leaves are kept in `result_fields`
//! (written in the transaction that stores the result), and a [`Filter`] has one rendering to a
//! WHERE clause over them, with every value bound as a parameter.
//!
//! The meaning of each operator is [`Filter::matches`]; a property test holds this rendering to it.

use std::collections::HashSet;

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
-- Covering: a condition is answered from the index alone, in result_id order.
CREATE INDEX result_fields_text ON result_fields (path, kind, text, result_id);
CREATE INDEX result_fields_num ON result_fields (path, kind, num, result_id);
-- A result's leaves by path: the per-row check when results are scanned in order.
CREATE INDEX result_fields_result ON result_fields (result_id, path, kind, text, num);
CREATE INDEX run_results_segment ON run_results (segment_id);
-- Bumped by every change of run_results, so that what is cached from them knows it is stale.
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters VALUES ('run_results', 0);
CREATE TRIGGER run_results_count_ai AFTER INSERT ON run_results BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'run_results';
END;
CREATE TRIGGER run_results_count_au AFTER UPDATE ON run_results BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'run_results';
END;
CREATE TRIGGER run_results_count_ad AFTER DELETE ON run_results BEGIN
    UPDATE counters SET value = value + 1 WHERE name = 'run_results';
END;
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

/// Conditions with fewer matching leaves than this drive a filter page (their results are
/// listed, the others checked per result); when every condition matches more, results are read
/// in order and checked until the page is full.
pub(super) const DRIVE_BELOW: usize = 4096;

/// How a page of filter results is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// From the sorted list of the results condition `i` matches; the other conditions are
    /// checked per result.
    Driven(usize),
    /// Every result in order, each condition checked per result (dense matches: the page fills
    /// after a few rows).
    Scan,
}

/// Pick the plan for a filter page: the condition with the fewest matching leaves drives when it
/// has fewer than `drive_below` (counted up to that bound, from the covering indexes).
pub(super) fn plan(c: &Connection, f: &ResultFilter<'_>, drive_below: usize) -> Result<Plan> {
    let mut best: Option<(usize, usize)> = None;
    for (i, cond) in f.filter.conditions.iter().enumerate() {
        if cond.absent_matches() {
            continue;
        }
        let mut q = Query::default();
        q.push("SELECT count(*) FROM (");
        leaves_matching(cond, &mut q);
        q.push(" LIMIT ").bind(drive_below as i64).push(")");
        let n: i64 = c
            .prepare_cached(&q.text)
            .db()?
            .query_row(rusqlite::params_from_iter(q.params.iter()), |r| r.get(0))
            .db()?;
        if (n as usize) < drive_below && best.is_none_or(|(_, m)| (n as usize) < m) {
            best = Some((i, n as usize));
        }
    }
    Ok(best.map_or(Plan::Scan, |(i, _)| Plan::Driven(i)))
}

/// Append the WHERE conditions (joined by AND, starting with AND) that restrict `run_results r`
/// to `f`, read by `plan`. The run and media columns are written `+r.…` so that SQLite does not
/// walk their index: the driving list, or the rowid order, gives the page order.
pub(super) fn render(f: &ResultFilter<'_>, plan: Plan, q: &mut Query) {
    q.push(" AND r.succeeded = 1 AND +r.run_id IN ").list(f.run_ids.iter().cloned());
    q.push(" AND +r.video_id IN (SELECT video_id FROM media WHERE coalesce(index_id, '') IN ")
        .list(f.scopes.iter().map(|s| scope_key(s).to_string()))
        .push(")");
    for (i, c) in f.filter.conditions.iter().enumerate() {
        q.push(" AND ");
        if plan == Plan::Driven(i) {
            q.push("r.result_id IN (");
            leaves_matching(c, q);
            q.push(")");
        } else {
            checked(c, q);
        }
    }
}

/// One condition checked for the result `r`: some leaf at its path satisfies it (or, for
/// `is_empty` on a path through no array, there is no leaf at the path at all).
fn checked(c: &Cond, q: &mut Query) {
    let lookup =
        "SELECT 1 FROM result_fields f INDEXED BY result_fields_result WHERE f.result_id = r.result_id AND path = ";
    if c.absent_matches() {
        q.push("(NOT EXISTS (").push(lookup).bind(c.leaf_path()).push(") OR ");
    }
    q.push("EXISTS (").push(lookup).bind(c.leaf_path()).push(" AND ");
    predicate(c, q);
    q.push(")");
    if c.absent_matches() {
        q.push(")");
    }
}

/// `SELECT result_id FROM result_fields WHERE ...`: the results with a leaf that satisfies `c`
/// (from a covering index).
pub(super) fn leaves_matching(c: &Cond, q: &mut Query) {
    q.push("SELECT result_id FROM result_fields WHERE path = ").bind(c.leaf_path()).push(" AND ");
    predicate(c, q);
}

/// The condition on one leaf row (`kind`, `text`, `num`).
fn predicate(c: &Cond, q: &mut Query) {
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
}

/// A set of result ids (dense rowids) as a bitmap.
#[derive(Default)]
struct Ids(Vec<u64>);

impl Ids {
    fn insert(&mut self, id: i64) {
        let (w, b) = ((id as u64 / 64) as usize, id as u64 % 64);
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << b;
    }

    fn contains(&self, id: i64) -> bool {
        let (w, b) = ((id as u64 / 64) as usize, id as u64 % 64);
        self.0.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    fn intersect(mut self, other: &Ids) -> Ids {
        self.0.truncate(other.0.len());
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= b;
        }
        self
    }
}

/// The result ids a query returns.
fn ids(c: &Connection, q: &Query) -> Result<Ids> {
    let mut stmt = c.prepare_cached(&q.text).db()?;
    let mut rows = stmt.query(rusqlite::params_from_iter(q.params.iter())).db()?;
    let mut out = Ids::default();
    while let Some(r) = rows.next().db()? {
        out.insert(r.get::<_, i64>(0).db()?);
    }
    Ok(out)
}

/// Every vector of a (scope, space) that has a result in the filter's runs and scopes, as
/// `(vector key, result id)`: what a filtered vector search intersects with the passing results.
pub(super) fn result_vectors(
    c: &Connection,
    scope: &str,
    space: &str,
    f: &ResultFilter<'_>,
) -> Result<Vec<(u64, i64)>> {
    let mut q = Query::default();
    q.push("SELECT v.vector_id, r.result_id FROM run_results r JOIN vectors v ON v.segment_id = r.segment_id AND v.space = ")
        .bind(space.to_string())
        .push(" WHERE +v.scope = ")
        .bind(scope.to_string());
    q.push(" AND r.succeeded = 1 AND r.run_id IN ").list(f.run_ids.iter().cloned());
    q.push(" AND r.video_id IN (SELECT video_id FROM media WHERE coalesce(index_id, '') IN ")
        .list(f.scopes.iter().map(|s| scope_key(s).to_string()))
        .push(")");
    let mut stmt = c.prepare(&q.text).db()?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(q.params.iter()), |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
        .db()?;
    rows.collect::<rusqlite::Result<_>>().db()
}

/// The keys of `vectors` whose result passes every condition: each condition's results come from
/// its covering index, the sets are intersected in memory, then mapped to keys.
pub(super) fn passing_keys(c: &Connection, vectors: &[(u64, i64)], f: &ResultFilter<'_>) -> Result<HashSet<u64>> {
    let mut pass: Option<Ids> = None;
    for cond in &f.filter.conditions {
        let mut q = Query::default();
        leaves_matching(cond, &mut q);
        let mut found = ids(c, &q)?;
        if cond.absent_matches() {
            let mut with = Query::default();
            with.push("SELECT result_id FROM result_fields WHERE path = ").bind(cond.leaf_path());
            let with = ids(c, &with)?;
            for (_, r) in vectors {
                if !with.contains(*r) {
                    found.insert(*r);
                }
            }
        }
        pass = Some(match pass {
            None => found,
            Some(p) => p.intersect(&found),
        });
    }
    let pass = pass.unwrap_or_default();
    Ok(vectors.iter().filter(|(_, r)| pass.contains(*r)).map(|(k, _)| *k).collect())
}

/// The value of the change counter of `run_results`.
pub(super) fn results_generation(c: &Connection) -> Result<i64> {
    c.query_row("SELECT value FROM counters WHERE name = 'run_results'", [], |r| r.get(0)).db()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::types::filter::{Condition, Filter};
    use crate::types::Scope;

    /// Every plan returns what the reference evaluation accepts, for every condition pair.
    #[test]
    fn every_plan_returns_what_the_filter_means() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::Db::open(&dir.path().join("c.sqlite")).unwrap();
        let docs = [
            json!({"a": "Station", "n": 3, "tags": ["x", "y"], "p": [{"e": "happy"}, {"e": ""}]}),
            json!({"a": "", "n": 0, "tags": [], "p": []}),
            json!({"n": 7, "tags": ["y"], "p": [{"e": "sad"}]}),
            json!({"a": null, "n": 3.5, "p": [{"e": "HAPPY"}]}),
            json!({"a": "studio", "tags": ["x"], "p": [{}]}),
        ];
        db.write(|tx| {
            tx.execute_batch(
                "INSERT INTO media (video_id, title, source_path, content_hash, size_bytes, status, created_at, updated_at)
                 VALUES ('v', 't', 's', 'h', 1, 'completed', '', '');
                 INSERT INTO prompt_runs (run_id, prompt_id, status, doc, created_at) VALUES ('run', 'p', 'completed', '{}', '')",
            )
            .db()?;
            for (i, d) in docs.iter().enumerate() {
                tx.execute(
                    "INSERT INTO run_results (run_id, video_id, segment_id, start_us, succeeded, doc) VALUES ('run', 'v', ?1, 0, 1, '{}')",
                    [format!("s{i}")],
                )
                .db()?;
                write_fields(tx, tx.last_insert_rowid(), Some(d))?;
            }
            Ok(())
        })
        .unwrap();
        let conditions = [
            Condition::new("a", "contains", Some(json!("st")), "string"),
            Condition::new("a", "is_empty", None, "string"),
            Condition::new("a", "is_not_empty", None, "string"),
            Condition::new("n", "greater_equal", Some(json!(3)), "number"),
            Condition::new("tags", "item_equals", Some(json!("y")), "array"),
            Condition::new("tags", "is_empty", None, "array"),
            Condition::new("p[].e", "equals", Some(json!("happy")), "string"),
            Condition::new("p[].e", "is_empty", None, "string"),
        ];
        let scopes = [Scope::Playground];
        let runs = ["run".to_string()];
        for a in &conditions {
            for b in &conditions {
                let filter = Filter::check(&[a.clone(), b.clone()]).unwrap();
                let want: Vec<i64> =
                    (0..docs.len()).filter(|i| filter.matches(&docs[*i]).is_some()).map(|i| i as i64 + 1).collect();
                let f = ResultFilter { scopes: &scopes, run_ids: &runs, filter: &filter };
                for plan in [Plan::Scan, Plan::Driven(0), Plan::Driven(1)] {
                    if matches!(plan, Plan::Driven(i) if filter.conditions[i].absent_matches()) {
                        continue;
                    }
                    let mut q = Query::default();
                    q.push("SELECT r.result_id FROM run_results r WHERE 1");
                    render(&f, plan, &mut q);
                    q.push(" ORDER BY r.result_id");
                    let got: Vec<i64> = db
                        .read(|c| {
                            let mut stmt = c.prepare(&q.text).db()?;
                            let rows =
                                stmt.query_map(rusqlite::params_from_iter(q.params.iter()), |r| r.get(0)).db()?;
                            rows.collect::<rusqlite::Result<_>>().db()
                        })
                        .unwrap();
                    assert_eq!(got, want, "{a:?} AND {b:?} by {plan:?}");
                }
                let pairs: Vec<(u64, i64)> = (1..=docs.len() as i64).map(|r| (r as u64 * 10, r)).collect();
                let mut keys: Vec<u64> = db.read(|c| passing_keys(c, &pairs, &f)).unwrap().into_iter().collect();
                keys.sort_unstable();
                assert_eq!(keys, want.iter().map(|r| *r as u64 * 10).collect::<Vec<_>>(), "{a:?} AND {b:?} as keys");
            }
        }
    }
}
