//! SQL search (`POST /search/sql/{index_id}`, `/catalog`, `/generate`): requests, scope
//! resolution, and drafting a query with the local language model under a grammar that only
//! produces one SELECT over the catalog's tables.

use serde::{Deserialize, Serialize};

use super::query::Searcher;
use crate::error::{Error, Result};
use crate::ml::llm::{Finish, Message};
use crate::store::RunOutline;
use crate::store::SqlScope;
use crate::types::sql::{SqlCatalog, SqlDraft, SqlResult, DEFAULT_SQL_ROWS, MAX_SQL_ROWS};
use crate::types::Scope;

/// `POST /search/sql/{index_id}`: `SqlQuery::new("SELECT ...").result_limit(50)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlQuery {
    pub query: String,
    /// Runs whose tables the query may read (default: every run over media in scope).
    #[serde(default)]
    pub run_ids: Vec<String>,
    /// Query these indexes instead of the one named by the call.
    #[serde(default)]
    pub index_ids: Vec<String>,
    /// Rows to return, 1 to 1000. Default 100.
    pub result_limit: Option<usize>,
}

impl SqlQuery {
    pub fn new(query: impl Into<String>) -> Self {
        SqlQuery { query: query.into(), ..Default::default() }
    }

    pub fn run_ids(mut self, run_ids: Vec<String>) -> Self {
        self.run_ids = run_ids;
        self
    }

    pub fn index_ids(mut self, index_ids: Vec<String>) -> Self {
        self.index_ids = index_ids;
        self
    }

    pub fn result_limit(mut self, n: usize) -> Self {
        self.result_limit = Some(n);
        self
    }
}

/// `POST /search/sql/{index_id}/generate`: a draft query from an instruction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlGenerate {
    pub instruction: String,
    /// A query to start from.
    pub existing_query: Option<String>,
    #[serde(default)]
    pub run_ids: Vec<String>,
    #[serde(default)]
    pub index_ids: Vec<String>,
}

impl SqlGenerate {
    pub fn new(instruction: impl Into<String>) -> Self {
        SqlGenerate { instruction: instruction.into(), ..Default::default() }
    }

    pub fn existing_query(mut self, query: impl Into<String>) -> Self {
        self.existing_query = Some(query.into());
        self
    }

    pub fn run_ids(mut self, run_ids: Vec<String>) -> Self {
        self.run_ids = run_ids;
        self
    }
}

/// The scopes and runs of a SQL request.
pub(crate) struct Resolved {
    scopes: Vec<Scope>,
    runs: Vec<RunOutline>,
}

impl Resolved {
    fn scope(&self) -> SqlScope<'_> {
        SqlScope { scopes: &self.scopes, runs: &self.runs }
    }
}

/// A Lark string literal.
fn lark_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A grammar of the queries a draft may be: `SELECT cols FROM table [WHERE conditions]
/// [ORDER BY col [ASC|DESC]] [LIMIT n]` over one of the catalog's tables, then a line
/// `-- explanation`.
fn grammar(catalog: &SqlCatalog) -> String {
    let mut g = String::new();
    let starts: Vec<String> = (0..catalog.tables.len()).map(|i| format!("q{i}")).collect();
    g.push_str(&format!("start: ({}) \"\\n-- \" EXPLANATION\n", starts.join(" | ")));
    for (i, t) in catalog.tables.iter().enumerate() {
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                lark_str(&if c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
                    c.name.clone()
                } else {
                    format!("\"{}\"", c.name)
                })
            })
            .collect();
        // Repetitions are bounded (3 conditions, 6 columns), so every draft ends well inside the
        // token budget: a small model asked to count or group would otherwise add conditions
        // until it is cut off.
        g.push_str(&format!(
            "q{i}: \"SELECT \" s{i} \" FROM \" {} (\" WHERE \" w{i} (\" AND \" w{i} (\" AND \" w{i})?)?)? (\" GROUP BY \" c{i})? (\" ORDER BY \" o{i} (\" ASC\" | \" DESC\")?)? (\" LIMIT \" LIMIT)?\n",
            lark_str(&t.name)
        ));
        g.push_str(&format!(
            "s{i}: \"*\" | \"count(*)\" | c{i} \", count(*)\" | c{i} (\", \" c{i} (\", \" c{i} (\", \" c{i} (\", \" c{i} (\", \" c{i})?)?)?)?)?\n"
        ));
        g.push_str(&format!("o{i}: c{i} | \"count(*)\"\n"));
        g.push_str(&format!("c{i}: {}\n", cols.join(" | ")));
        g.push_str(&format!(
            "w{i}: c{i} (\" = \" | \" <> \" | \" > \" | \" >= \" | \" < \" | \" <= \") (STRING | NUMBER) | c{i} \" LIKE \" STRING | c{i} (\" IS NULL\" | \" IS NOT NULL\")\n"
        ));
    }
    g.push_str("STRING: /'[^'\\n]{0,40}'/\nNUMBER: /-?[0-9]{1,6}(\\.[0-9]{1,3})?/\nLIMIT: /[1-9][0-9]{0,2}/\n");
    g.push_str("EXPLANATION: /[A-Za-z0-9 ,.'()_-]{1,160}/\n");
    g
}

impl Searcher<'_> {
    fn resolve(&self, scope: &Scope, run_ids: &[String], index_ids: &[String]) -> Result<Resolved> {
        let scopes = self.scopes(scope, index_ids)?;
        let runs = self.runs(&scopes, run_ids)?;
        Ok(Resolved { scopes, runs })
    }

    pub fn sql_catalog(&self, scope: &Scope, run_ids: &[String], index_ids: &[String]) -> Result<SqlCatalog> {
        let r = self.resolve(scope, run_ids, index_ids)?;
        self.stores.sql.sql_catalog(&r.scope())
    }

    pub fn sql_execute(&self, scope: &Scope, req: &SqlQuery) -> Result<SqlResult> {
        let limit = req.result_limit.unwrap_or(DEFAULT_SQL_ROWS);
        if !(1..=MAX_SQL_ROWS).contains(&limit) {
            return Err(Error::invalid("result_limit", format!("must be 1 to {MAX_SQL_ROWS}, got {limit}")));
        }
        let r = self.resolve(scope, &req.run_ids, &req.index_ids)?;
        self.stores.sql.sql_execute(&r.scope(), &req.query, limit)
    }

    /// A draft query written by the language model under [`grammar`], checked by preparing it.
    pub fn sql_generate(&self, scope: &Scope, req: &SqlGenerate) -> Result<SqlDraft> {
        let instruction = super::query_text("instruction", &req.instruction)?;
        let r = self.resolve(scope, &req.run_ids, &req.index_ids)?;
        let catalog = self.stores.sql.sql_catalog(&r.scope())?;
        let mut tables = String::new();
        for t in &catalog.tables {
            let cols: Vec<String> = t.columns.iter().map(|c| format!("{} {}", c.name, c.column_type)).collect();
            tables.push_str(&format!("{}({}) -- {}\n", t.name, cols.join(", "), t.description));
        }
        let mut ask = format!("Request: {instruction}");
        if let Some(q) = &req.existing_query {
            ask.push_str(&format!("\nStart from this query: {q}"));
        }
        let messages = [
            Message::system(format!(
                "You write one SQLite SELECT statement over these tables to answer a request. Column names \
                 with dots are quoted with double quotes.\n{tables}After the query, write a line starting \
                 with -- that says in one sentence what it returns."
            )),
            Message::user(ask),
        ];
        let (_, lm) = self.models.language(None)?;
        let generated = {
            let mut m = lm.lock().unwrap_or_else(|p| p.into_inner());
            m.generate_with_grammar(&messages, &grammar(&catalog), 256, &|| false)?
        };
        let model = || crate::ml::llm::DEFAULT_LANGUAGE_MODEL.to_string();
        if generated.finish == Finish::Length {
            return Err(Error::Model { model: model(), message: "the draft query was cut off at 256 tokens".into() });
        }
        let (query, explanation) = generated.text.split_once("\n-- ").ok_or_else(|| Error::Model {
            model: model(),
            message: format!("no explanation in {:?}", generated.text),
        })?;
        self.stores.sql.sql_check(&r.scope(), query).map_err(|e| Error::Model {
            model: model(),
            message: format!("the draft {query:?} does not pass its check: {e}"),
        })?;
        Ok(SqlDraft { query: query.to_string(), explanation: explanation.trim().to_string() })
    }
}
