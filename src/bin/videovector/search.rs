//! `videovector search filter|multi-run` and `videovector sql ...`: searches over what prompt
//! runs extracted.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use videovector::{Aggregation, Condition, Engine, FilterSearch, MultiRunSearch, SqlGenerate, SqlQuery};

use crate::print;

/// Parse `--condition 'FIELD OPERATOR [VALUE]:TYPE'`, e.g. `'scene.people[].emotion equals happy:string'`,
/// `'score greater_than 0.8:number'`, `'tags is_empty :array'`.
pub fn parse_condition(s: &str) -> Result<Condition, String> {
    let (left, t) =
        s.rsplit_once(':').ok_or_else(|| format!("{s:?}: end with :TYPE (string, integer, number, boolean, array)"))?;
    let mut parts = left.trim().splitn(3, char::is_whitespace);
    let field = parts.next().filter(|f| !f.is_empty()).ok_or_else(|| format!("{s:?}: no field"))?;
    let op = parts.next().ok_or_else(|| format!("{s:?}: no operator"))?;
    let raw = parts.next().map(str::trim).unwrap_or("");
    let value = match (raw, t.trim()) {
        ("", _) => None,
        (v, "string") => Some(Value::String(v.to_string())),
        // Numbers and booleans as JSON; anything else (an array item) as text.
        (v, _) => Some(serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()))),
    };
    Ok(Condition::new(field, op, value, t.trim()))
}

#[derive(Args)]
pub struct FilterArgs {
    /// `FIELD OPERATOR [VALUE]:TYPE`, repeatable (AND): 'scene.people[].emotion equals happy:string'.
    #[arg(long = "condition", required = true, value_parser = parse_condition)]
    pub conditions: Vec<Condition>,
    /// Index id or name; without it, playground media.
    #[arg(long)]
    pub index: Option<String>,
    /// Only results of these runs.
    #[arg(long = "run-id")]
    pub run_ids: Vec<String>,
    #[arg(long, default_value_t = 50)]
    pub page_size: u32,
    /// `next_cursor` of the previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Args)]
pub struct MultiRunArgs {
    pub query: String,
    #[arg(long = "run-id")]
    pub run_ids: Vec<String>,
    /// Every run over this index's media (without --run-id).
    #[arg(long)]
    pub index: Option<String>,
    /// best, all or weighted (by run recency).
    #[arg(long, default_value = "best")]
    pub aggregation: String,
    /// Hits per run (1-50).
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
}

#[derive(Subcommand)]
pub enum SqlCommand {
    /// The tables a query may read, the default query and the limits.
    Catalog {
        #[arg(long)]
        index: Option<String>,
        #[arg(long = "run-id")]
        run_ids: Vec<String>,
    },
    /// Run one read-only SELECT (SQLite dialect).
    Execute {
        query: String,
        #[arg(long)]
        index: Option<String>,
        #[arg(long = "run-id")]
        run_ids: Vec<String>,
        /// Rows to return (1-1000; default 100).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Draft a query from an instruction with the local language model.
    Generate {
        instruction: String,
        #[arg(long)]
        index: Option<String>,
        #[arg(long = "run-id")]
        run_ids: Vec<String>,
        /// A query to start from.
        #[arg(long)]
        existing: Option<String>,
    },
}

pub fn filter_cmd(engine: &Engine, args: FilterArgs, json: bool) -> Result<()> {
    let mut req = FilterSearch::new(args.conditions).page_size(args.page_size).run_ids(args.run_ids);
    req.cursor = args.cursor;
    let page = engine.search().filter(args.index.as_deref(), &req)?;
    if json {
        return print(&page);
    }
    for h in &page.results {
        let matched: Vec<String> = h
            .matched_field_instances
            .iter()
            .map(|m| format!("{}={}", m.field_instance_path, m.value_preview))
            .collect();
        println!("{}\t{}\t{:.3}-{:.3}\t{}\t{}", h.segment_id, h.video_id, h.start, h.end, h.run_id, matched.join(" "));
    }
    if let Some(c) = &page.next_cursor {
        println!("next: --cursor {c}");
    }
    Ok(())
}

pub fn multi_run_cmd(engine: &Engine, args: MultiRunArgs, json: bool) -> Result<()> {
    let aggregation = match args.aggregation.as_str() {
        "best" => Aggregation::Best,
        "all" => Aggregation::All,
        "weighted" => Aggregation::Weighted,
        other => bail!("--aggregation {other:?}: use best, all or weighted"),
    };
    let mut req = MultiRunSearch::new(args.query).run_ids(args.run_ids).aggregation(aggregation).top_k(args.top_k);
    req.index_id = args.index;
    let response = engine.search().multi_run(&req)?;
    if json {
        return print(&response);
    }
    for h in &response.results {
        let run = h.run_id.as_ref().map_or("-".to_string(), |r| r.to_string());
        println!("{:.4}\t{}\t{}\t{:.3}-{:.3}\t{run}", h.score, h.segment_id, h.video_id, h.start, h.end);
    }
    Ok(())
}

pub fn sql_cmd(engine: &Engine, cmd: SqlCommand, json: bool) -> Result<()> {
    let sql = engine.search().sql();
    match cmd {
        SqlCommand::Catalog { index, run_ids } => {
            let catalog = sql.catalog(index.as_deref(), &run_ids, &[])?;
            if json {
                return print(&catalog);
            }
            for t in &catalog.tables {
                let cols: Vec<String> = t.columns.iter().map(|c| format!("{} {}", c.name, c.column_type)).collect();
                println!("{}({})\n    {}", t.name, cols.join(", "), t.description);
            }
            println!("default query: {}", catalog.default_query);
        }
        SqlCommand::Execute { query, index, run_ids, limit } => {
            let mut req = SqlQuery::new(query).run_ids(run_ids);
            req.result_limit = limit;
            let result = sql.execute(index.as_deref(), &req)?;
            if json {
                return print(&result);
            }
            println!("{}", result.columns.join("\t"));
            for row in &result.rows {
                let cells: Vec<String> =
                    row.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect();
                println!("{}", cells.join("\t"));
            }
            let more = if result.truncated { " (more left out by the limit)" } else { "" };
            eprintln!("{} rows in {:.1} ms{more}", result.row_count, result.elapsed_ms);
        }
        SqlCommand::Generate { instruction, index, run_ids, existing } => {
            let mut req = SqlGenerate::new(instruction).run_ids(run_ids);
            req.existing_query = existing;
            let draft = sql.generate(index.as_deref(), &req)?;
            if json {
                return print(&draft);
            }
            println!("{}\n-- {}", draft.query, draft.explanation);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_from_one_argument() {
        let c = parse_condition("scene.people[].emotion equals very happy:string").unwrap();
        assert_eq!(
            (c.field.as_str(), c.operator.as_str(), c.field_type.as_str()),
            ("scene.people[].emotion", "equals", "string")
        );
        assert_eq!(c.value, Some(Value::String("very happy".into())));
        assert_eq!(parse_condition("score greater_than 0.8:number").unwrap().value, Some(serde_json::json!(0.8)));
        assert_eq!(parse_condition("tags is_empty :array").unwrap().value, None);
        assert_eq!(parse_condition("tags item_equals news:array").unwrap().value, Some(Value::String("news".into())));
        assert!(parse_condition("score greater_than 1").is_err());
        assert!(parse_condition(":string").is_err());
    }
}
