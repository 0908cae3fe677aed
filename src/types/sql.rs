//! SQL search records: the catalog of queryable tables and a query's result.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Rows a query returns when `result_limit` is not given.
pub const DEFAULT_SQL_ROWS: usize = 100;
/// Most rows a query may return (`result_limit`).
pub const MAX_SQL_ROWS: usize = 1000;
/// How long a query may run.
pub const SQL_TIME_LIMIT_MS: u64 = 2000;
/// Most bytes of values a result may hold.
pub const MAX_SQL_RESULT_BYTES: usize = 4 << 20;
/// Longest string or blob a query may make.
pub const MAX_SQL_VALUE_BYTES: usize = 1 << 20;
/// Longest query text.
pub const MAX_SQL_QUERY_CHARS: usize = 20_000;

/// A column of a queryable table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlColumn {
    /// As written in a query (quote names with dots: `"scene.location"`).
    pub name: String,
    /// `text`, `integer`, `real`, `boolean` (0 or 1), or `json` (objects and arrays as JSON text).
    #[serde(rename = "type")]
    pub column_type: String,
    /// The schema field the column holds, for a run's table.
    pub field_path: Option<String>,
}

/// A table (a view over the scope) a query may read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlTable {
    pub name: String,
    pub description: String,
    /// The indexes whose data it shows (`null` in the list: the playground).
    pub index_ids: Vec<Option<String>>,
    /// For a run's table: the run, and its prompt.
    pub run_id: Option<String>,
    pub prompt_id: Option<String>,
    pub columns: Vec<SqlColumn>,
}

/// The limits every query runs under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlLimits {
    pub default_result_limit: usize,
    pub max_result_limit: usize,
    pub time_limit_ms: u64,
    pub max_result_bytes: usize,
    pub max_value_bytes: usize,
    pub max_query_chars: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            default_result_limit: DEFAULT_SQL_ROWS,
            max_result_limit: MAX_SQL_ROWS,
            time_limit_ms: SQL_TIME_LIMIT_MS,
            max_result_bytes: MAX_SQL_RESULT_BYTES,
            max_value_bytes: MAX_SQL_VALUE_BYTES,
            max_query_chars: MAX_SQL_QUERY_CHARS,
        }
    }
}

/// What a SQL search may read, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlCatalog {
    /// `sqlite`: the dialect queries are written in.
    pub dialect: String,
    pub tables: Vec<SqlTable>,
    pub default_query: String,
    pub limits: SqlLimits,
}

/// The rows of a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlResult {
    pub columns: Vec<String>,
    /// Values as JSON: numbers, strings, null; blobs as hex strings.
    pub rows: Vec<Vec<Value>>,
    pub row_count: usize,
    /// Whether more rows were left out by `result_limit`.
    pub truncated: bool,
    pub elapsed_ms: f64,
}

/// A draft query written from an instruction (`generate`), checked by preparing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlDraft {
    pub query: String,
    pub explanation: String,
}
