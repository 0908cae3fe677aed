//! SQL search: the catalog, queries over a scope's views, the guard (every refusal a 400 that
//! says what), and a fuzz of the guard: tens of thousands of generated statements, none of which
//! writes, reads outside the scope or runs past the time limit.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{json, Value};
use videovector::internals::{seed_playground, seed_run_results, text_model_ref, unit_vectors};
use videovector::{Engine, ErrorKind, Space, SqlQuery, SQL_TIME_LIMIT_MS};

use crate::filter::{docs, engine, schema, seeded};

fn rows(engine: &Engine, run: &str, query: &str) -> Vec<Vec<Value>> {
    let req = SqlQuery::new(query).run_ids(vec![run.to_string()]).result_limit(1000);
    engine.search().sql().execute(None, &req).unwrap_or_else(|e| panic!("{query}: {e}")).rows
}

#[test]
fn the_catalog_has_a_table_per_run_with_a_column_per_field() {
    let (_dir, engine) = engine();
    let (_, run) = seeded(&engine, &unit_vectors(12, 384, 1), &docs());
    let catalog = engine.search().sql().catalog(None, &[], &[]).unwrap();
    let names: Vec<&str> = catalog.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["media", "segments", "transcripts", "runs", "results", run.as_str()]);
    let table = catalog.tables.last().unwrap();
    assert_eq!(table.run_id.as_deref(), Some(run.as_str()));
    assert_eq!(table.index_ids, vec![None], "the playground");
    let columns: Vec<(&str, &str)> = table.columns.iter().map(|c| (c.name.as_str(), c.column_type.as_str())).collect();
    assert_eq!(
        columns,
        vec![
            ("segment_id", "text"),
            ("video_id", "text"),
            ("start_time", "real"),
            ("end_time", "real"),
            ("headline", "text"),
            ("score", "real"),
            ("count", "integer"),
            ("live", "boolean"),
            ("tags", "json"),
            ("scene.location", "text"),
            ("scene.people", "json"),
        ]
    );
    assert_eq!(catalog.limits.max_result_limit, 1000);
    // The default query runs as it is.
    let first = engine.search().sql().execute(None, &SqlQuery::new(&catalog.default_query)).unwrap();
    assert_eq!(first.row_count, 12);
    assert_eq!(first.columns, vec!["segment_id", "video_id", "start_time", "end_time", "headline"]);
}

#[test]
fn queries_read_fields_arrays_and_joins() {
    let (_dir, engine) = engine();
    let (_, run) = seeded(&engine, &unit_vectors(12, 384, 2), &docs());
    assert_eq!(
        rows(&engine, &run, &format!(r#"SELECT "scene.location", count(*) FROM {run} GROUP BY 1 ORDER BY 1"#)),
        vec![
            vec![json!(""), json!(2)],
            vec![json!("stadium"), json!(2)],
            vec![json!("station"), json!(4)],
            vec![json!("street"), json!(2)],
            vec![json!("studio"), json!(2)],
        ]
    );
    let happy = format!(
        r#"SELECT count(*) FROM {run} r, json_each(r."scene.people") p WHERE lower(p.value ->> '$.emotion') = 'happy'"#
    );
    assert_eq!(rows(&engine, &run, &happy), vec![vec![json!(4)]]);
    let joined = format!(
        "SELECT count(*) FROM {run} r JOIN segments s USING (segment_id) JOIN media m ON m.video_id = s.video_id
         WHERE r.live = 1 AND s.end_time > s.start_time"
    );
    assert_eq!(rows(&engine, &run, &joined), vec![vec![json!(6)]]);
    let capped = engine.search().sql().execute(None, &SqlQuery::new("SELECT * FROM segments").result_limit(5)).unwrap();
    assert_eq!((capped.row_count, capped.truncated), (5, true));
    let bad = engine.search().sql().execute(None, &SqlQuery::new("SELECT 1").result_limit(1001)).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::BadRequest);
}

/// Each refusal is a 400 that says what was refused, and the store is unchanged after all of them.
#[test]
fn the_guard_refuses_what_is_not_one_select_of_the_scope() {
    let (dir, engine) = engine();
    let (_, run) = seeded(&engine, &unit_vectors(12, 384, 3), &docs());
    let before = rows(&engine, &run, "SELECT count(*), sum(length(metadata)) FROM results");
    let outside = dir.path().join("copy.db");
    let cases: Vec<(String, &str)> = vec![
        ("INSERT INTO media (video_id) VALUES ('x')".to_string(), "INSERT"),
        (format!("UPDATE {run} SET headline = 'x'"), "cannot modify"),
        ("UPDATE main.media SET title = 'x'".into(), "UPDATE of \"media\""),
        ("DELETE FROM main.segments".into(), "DELETE from \"segments\""),
        ("DROP TABLE media".into(), "changing the schema is not allowed"),
        ("DROP TABLE main.media".into(), "changing the schema"),
        ("CREATE TABLE t (a)".into(), "changing the schema"),
        ("CREATE TEMP TABLE t (a)".into(), "changing the schema"),
        ("CREATE TEMP VIEW v AS SELECT * FROM main.prompts".into(), "changing the schema"),
        (format!("ATTACH '{}' AS x", outside.display()), "ATTACH"),
        ("PRAGMA writable_schema = 1".into(), "PRAGMA writable_schema"),
        ("PRAGMA table_info(media)".into(), "PRAGMA table_info"),
        ("SELECT * FROM pragma_table_info('media')".into(), "pragma_table_info"),
        ("SELECT * FROM main.prompts".into(), "reading table \"prompts\""),
        ("SELECT doc FROM run_results".into(), "reading table \"run_results\""),
        ("SELECT * FROM main.media".into(), "reading table \"media\""),
        ("SELECT sql FROM sqlite_master".into(), "reading table \"sqlite_master\""),
        ("WITH p AS (SELECT * FROM prompts) SELECT * FROM p".into(), "reading table \"prompts\""),
        ("SELECT load_extension('x')".into(), "load_extension"),
        ("BEGIN".into(), "transaction"),
        (format!("VACUUM INTO '{}'", outside.display()), "would write"),
        ("SELECT 1; SELECT 2".into(), "one statement"),
        ("SELECT * FROM nowhere".into(), "no such table"),
        ("SELEC 1".into(), "syntax error"),
        ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c".into(), "time limit"),
        ("SELECT zeroblob(2000000)".into(), "larger than 1048576 bytes"),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) SELECT randomblob(500000) FROM c"
                .into(),
            "result is larger than",
        ),
    ];
    for (query, says) in &cases {
        let start = Instant::now();
        let err = engine.search().sql().execute(None, &SqlQuery::new(query)).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(SQL_TIME_LIMIT_MS + 1500), "{query} ran past the limit");
        assert_eq!((err.kind(), err.code()), (ErrorKind::BadRequest, "query_refused"), "{query}: {err}");
        assert!(err.to_string().contains(says), "{query}: {err} does not say {says:?}");
    }
    assert!(!outside.exists(), "nothing was written outside the data folder");
    assert_eq!(rows(&engine, &run, "SELECT count(*), sum(length(metadata)) FROM results"), before);
    engine.check().unwrap();
}

#[test]
fn a_scope_sees_its_own_runs_and_media_only() {
    let (_dir, engine) = engine();
    let (_, run) = seeded(&engine, &unit_vectors(6, 384, 4), &docs());
    let other = engine.indexes().create("other", None).unwrap();
    let sql = engine.search().sql();
    let count = |q: &str, runs: Vec<String>| {
        sql.execute(Some("other"), &SqlQuery::new(q).run_ids(runs)).map(|r| r.rows[0][0].clone())
    };
    assert_eq!(count("SELECT count(*) FROM media", vec![]).unwrap(), json!(0));
    assert_eq!(count("SELECT count(*) FROM results", vec![run.clone()]).unwrap(), json!(0));
    assert_eq!(count(&format!("SELECT count(*) FROM {run}"), vec![run.clone()]).unwrap(), json!(0));
    let err = count(&format!("SELECT count(*) FROM {run}"), vec![]).unwrap_err();
    assert!(err.to_string().contains("no such table"), "{err}");
    let catalog = sql.catalog(Some(other.index_id.as_str()), &[], &[]).unwrap();
    assert_eq!(catalog.tables.len(), 5, "no run covers the index");
    assert_eq!(catalog.tables[0].index_ids, vec![Some(other.index_id.to_string())]);
}

/// Pieces the fuzz builds statements from: the scope's tables, tables outside it, writes,
/// schema changes, PRAGMAs, ATTACH, functions and recursive CTEs of bounded size.
fn statement(visible: String, hidden: String) -> impl Strategy<Value = String> {
    let tables = prop::sample::select(vec![
        "media".to_string(),
        "segments".into(),
        "transcripts".into(),
        "runs".into(),
        "results".into(),
        visible,
        hidden,
        "main.run_results".into(),
        "run_results".into(),
        "prompt_runs".into(),
        "prompts".into(),
        "main.prompts".into(),
        "temp.media".into(),
        "main.media".into(),
        "main.segments".into(),
        "sqlite_master".into(),
        "sqlite_temp_master".into(),
        "llm_calls".into(),
        "result_fields".into(),
        "pragma_table_info('media')".into(),
        "json_each('[1,2,3]')".into(),
        "(SELECT * FROM media)".into(),
    ]);
    let exprs = prop::sample::select(vec![
        "*",
        "count(*)",
        "1",
        "rowid",
        "metadata",
        "headline",
        "doc",
        "sql",
        "randomblob(64)",
        "zeroblob(2000000)",
        "load_extension('libx')",
        "printf('%.*c', 100000, 'x')",
        "sqlite_version()",
        "json_extract(metadata, '$.headline')",
        "(SELECT doc FROM prompts)",
        "(SELECT group_concat(doc) FROM run_results)",
    ]);
    let wraps = prop::sample::select(vec![
        "{s}",
        "{s} LIMIT 3",
        "{s} ORDER BY 1 DESC",
        "{s} UNION ALL {s}",
        "WITH w AS ({s}) SELECT * FROM w",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT count(*) FROM c, ({s} LIMIT 1)",
        "SELECT * FROM ({s}) WHERE 1",
        "{s}; DELETE FROM media",
        "{s}; SELECT 2",
        "EXPLAIN {s}",
        "/* {s} */ SELECT 1",
    ]);
    let writes = prop::sample::select(vec![
        "INSERT INTO {t} DEFAULT VALUES",
        "INSERT INTO {t} SELECT * FROM {t}",
        "UPDATE {t} SET rowid = rowid + 1",
        "DELETE FROM {t}",
        "DROP TABLE {t}",
        "DROP VIEW {t}",
        "CREATE TABLE x AS SELECT * FROM {t}",
        "CREATE TEMP TABLE x AS SELECT * FROM {t}",
        "CREATE TEMP VIEW x AS SELECT * FROM {t}",
        "CREATE INDEX x ON {t} (rowid)",
        "CREATE TRIGGER x AFTER INSERT ON {t} BEGIN SELECT 1; END",
        "ALTER TABLE {t} ADD COLUMN x",
        "ALTER TABLE {t} RENAME TO y",
        "REINDEX",
        "ANALYZE",
        "VACUUM",
        "ATTACH ':memory:' AS x",
        "DETACH temp",
        "PRAGMA writable_schema = 1",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA query_only = 0",
        "PRAGMA user_version = 99",
        "BEGIN IMMEDIATE",
        "COMMIT",
        "SAVEPOINT a",
        "WITH w AS (SELECT 1) INSERT INTO {t} SELECT * FROM w",
        "REPLACE INTO {t} SELECT * FROM {t}",
    ]);
    prop_oneof![
        3 => (exprs, tables.clone(), wraps).prop_map(|(e, t, w)| w.replace("{s}", &format!("SELECT {e} FROM {t}"))),
        2 => (writes, tables).prop_map(|(w, t)| w.replace("{t}", &t)),
    ]
}

/// Every generated statement either reads the scope's views or is refused with a 400, within the
/// time limit; afterwards the database is byte-for-byte what it was, and no value from outside
/// the scope (the hidden run's results, the prompts table) ever came back.
#[test]
fn fuzzed_statements_never_write_or_read_outside_the_scope() {
    let (dir, engine) = engine();
    let model = text_model_ref(&engine).unwrap().expect("run `bash scripts/fetch_models.sh`");
    let segments = seed_playground(&engine, &unit_vectors(24, model.dims, 5), 12, &model, Space::Transcript).unwrap();
    let visible_docs: Vec<Value> = (0..24).map(|i| docs()[i % 6].clone()).collect();
    let hidden_docs: Vec<Value> = (0..24).map(|_| json!({"headline": "SECRET-HIDDEN-RUN"})).collect();
    let visible = seed_run_results(&engine, schema(), &segments, &visible_docs).unwrap().to_string();
    let hidden = seed_run_results(&engine, schema(), &segments, &hidden_docs).unwrap().to_string();
    engine
        .prompts()
        .create(&videovector::NewPrompt::new("SECRET-PROMPT", "SECRET-PROMPT-TEXT", schema()), None)
        .unwrap();
    let catalog = dir.path().join("data/catalog.sqlite");
    let digest = || {
        // Every table's rows, through an ordinary connection (WAL included).
        let c = rusqlite::Connection::open_with_flags(&catalog, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let tables: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut all = String::new();
        for t in &tables {
            let mut stmt = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for i in 0..n {
                    all.push_str(&format!("{:?}|", row.get_ref(i).unwrap()));
                }
                all.push('\n');
            }
        }
        let schema: String = c.query_row("SELECT group_concat(sql) FROM sqlite_master", [], |r| r.get(0)).unwrap();
        let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        (all, schema, version)
    };
    let before = digest();
    let sql = engine.search().sql();
    let (answered, refused) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let mut runner =
        proptest::test_runner::TestRunner::new(ProptestConfig { cases: 20_000, ..ProptestConfig::default() });
    runner
        .run(&statement(visible.clone(), hidden.clone()), |query| {
            let start = Instant::now();
            let out = sql.execute(None, &SqlQuery::new(&query).run_ids(vec![visible.clone()]).result_limit(50));
            prop_assert!(start.elapsed() < Duration::from_millis(SQL_TIME_LIMIT_MS + 1000), "{} ran too long", query);
            match out {
                Ok(r) => {
                    answered.set(answered.get() + 1);
                    let text = serde_json::to_string(&r.rows).unwrap();
                    prop_assert!(!text.contains("SECRET"), "{} read outside the scope: {}", query, text);
                }
                Err(e) => {
                    refused.set(refused.get() + 1);
                    prop_assert_eq!(e.kind(), ErrorKind::BadRequest, "{}: {}", query, e);
                }
            }
            Ok(())
        })
        .unwrap();
    let (answered, refused) = (answered.get(), refused.get());
    assert!(answered > 1000 && refused > 1000, "both kinds were exercised: {answered} answered, {refused} refused");
    assert!(before == digest(), "the database changed");
}

/// A draft from the local model is one SELECT over the catalog's tables that prepares and runs.
#[test]
fn generate_drafts_a_select_that_runs() {
    let (_dir, engine) = engine();
    let (_, run) = seeded(&engine, &unit_vectors(12, 384, 6), &docs());
    let sql = engine.search().sql();
    let req = videovector::SqlGenerate::new("Show the headline of every live segment of the latest run")
        .run_ids(vec![run.clone()]);
    let draft = sql.generate(None, &req).unwrap();
    eprintln!("{draft:?}");
    assert!(draft.query.starts_with("SELECT "), "{draft:?}");
    assert!(!draft.explanation.is_empty());
    let rows = sql.execute(None, &SqlQuery::new(&draft.query).run_ids(vec![run])).unwrap();
    assert!(!rows.columns.is_empty());
    let empty = sql.generate(None, &videovector::SqlGenerate::new("  ")).unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::BadRequest);
}
