//! Search over what runs extracted, at scale: 100,000 playground segments with transcript vectors
//! and one run's results (nested objects and arrays), made by `internals::seed_run_results`.
//! Filter search, text search restricted by a filter (broad and selective), the SQL catalog and
//! typical SELECTs.
//!
//! `cargo bench --bench filter` (`VV_BENCH_SEGMENTS` for another size, `VV_BENCH_DIR` to keep
//! the data folder, `VV_BENCH_EXPORT` to write the data for `scripts/compare_filter.sh`). Besides criterion's
//! report, prints p50 and p99 of each case.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use videovector::internals::{seed_playground, seed_run_results, text_model_ref, unit_vectors};
use videovector::{Condition, Engine, EngineOptions, FilterSearch, ModelChoice, Space, SqlQuery, TextSearch};

/// A named search to time.
type Case<'a> = Box<dyn Fn() + 'a>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Deterministic results over a schema with nested objects and arrays.
fn docs(n: usize) -> Vec<Value> {
    let mut s = 42u64;
    let mut next = move |m: u64| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) % m
    };
    let places = ["station", "studio", "street", "stadium", "market", "harbour", "park", "school"];
    let moods = ["happy", "calm", "sad", "angry", "surprised"];
    let tags = ["news", "sport", "weather", "finance", "transport", "culture"];
    (0..n)
        .map(|i| {
            let people: Vec<Value> = (0..next(4))
                .map(|_| json!({"name": format!("p{}", next(500)), "emotion": moods[next(5) as usize], "age": 10 + next(70)}))
                .collect();
            let t: Vec<Value> = (0..next(3)).map(|_| json!(tags[next(6) as usize])).collect();
            json!({
                "headline": format!("{} report {}", places[next(8) as usize], i),
                "score": next(1000) as f64 / 1000.0,
                "count": next(20),
                "live": next(2) == 0,
                "tags": t,
                "scene": {"location": places[next(8) as usize], "people": people}
            })
        })
        .collect()
}

fn schema() -> Value {
    json!({"type": "object", "properties": {
        "headline": {"type": "string"}, "score": {"type": "number"}, "count": {"type": "integer"},
        "live": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}},
        "scene": {"type": "object", "properties": {"location": {"type": "string"},
            "people": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "emotion": {"type": "string"}, "age": {"type": "integer"}}}}}}}})
}

fn cond(field: &str, op: &str, value: Option<Value>, t: &str) -> Condition {
    Condition::new(field, op, value, t)
}

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("VV_BENCH_SEGMENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    // `VV_BENCH_DIR`: keep the data folder there (for query plans); a folder a run of the bench
    // of the same size filled is used again as it is.
    let data = std::env::var_os("VV_BENCH_DIR").map_or_else(|| dir.path().join("data"), std::path::PathBuf::from);
    let reuse = data.join("catalog.sqlite").exists();
    let options = EngineOptions::new().visual_model(ModelChoice::Off).asr_model(ModelChoice::Off).workers(0);
    let engine = Engine::open_with(&data, options).unwrap();
    let model = text_model_ref(&engine).unwrap().expect("run `bash scripts/fetch_models.sh`");
    let query = "a reporter outside the station";
    let vectors = unit_vectors(n, model.dims, 7);
    let docs = docs(n);
    let mut seeded = None;
    let run = if reuse {
        engine.prompt_runs().list(1).unwrap().remove(0).run_id.to_string()
    } else {
        let t = Instant::now();
        let segments = seed_playground(&engine, &vectors, 1000, &model, Space::Transcript).unwrap();
        let seeded_segments = t.elapsed();
        let t = Instant::now();
        let run = seed_run_results(&engine, schema(), &segments, &docs).unwrap().to_string();
        eprintln!(
            "{n} segments with vectors in {:.1} s, their run results in {:.1} s",
            seeded_segments.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
        seeded = Some(segments);
        run
    };

    let happy = || {
        vec![
            cond("scene.people[].emotion", "equals", Some(json!("happy")), "string"),
            cond("score", "greater_than", Some(json!(0.5)), "number"),
        ]
    };
    let selective_conditions = || {
        vec![
            cond("scene.location", "equals", Some(json!("harbour")), "string"),
            cond("count", "equals", Some(json!(7)), "integer"),
        ]
    };
    if let Some(out) = std::env::var_os("VV_BENCH_EXPORT") {
        // The same data for a peer (`scripts/compare_filter.sh`): vectors and the query as
        // little-endian f32, one JSON document per line.
        let out = std::path::PathBuf::from(out);
        std::fs::create_dir_all(&out).unwrap();
        let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        std::fs::write(out.join("vectors.f32"), vectors.iter().flat_map(|v| f32s(v)).collect::<Vec<u8>>()).unwrap();
        let q = engine.embeddings().text(query, Space::Transcript).unwrap().data.remove(0).embedding;
        std::fs::write(out.join("query.f32"), f32s(&q)).unwrap();
        let lines: Vec<String> = docs.iter().map(Value::to_string).collect();
        std::fs::write(out.join("docs.jsonl"), lines.join("\n")).unwrap();
    }
    if let Some(segments) = &seeded {
        // Recall@10 of filtered text search against an exact search of the filtered set.
        let q = engine.embeddings().text(query, Space::Transcript).unwrap().data.remove(0).embedding;
        let dot = |v: &[f32]| v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>();
        let broad = |d: &Value| {
            d["scene"]["people"].as_array().unwrap().iter().any(|p| p["emotion"] == "happy")
                && d["score"].as_f64().unwrap() > 0.5
        };
        let selective = |d: &Value| d["scene"]["location"] == "harbour" && d["count"] == 7;
        for (name, passes, conditions) in [
            ("broad", &broad as &dyn Fn(&Value) -> bool, happy()),
            ("selective", &selective as &dyn Fn(&Value) -> bool, selective_conditions()),
        ] {
            let mut exact: Vec<(usize, f32)> =
                (0..n).filter(|i| passes(&docs[*i])).map(|i| (i, dot(&vectors[i]))).collect();
            exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            let want: Vec<&videovector::SegmentId> = exact.iter().take(10).map(|(i, _)| &segments[*i]).collect();
            let got = engine.search().text(None, &TextSearch::new(query).conditions(conditions)).unwrap();
            let hit = got.results.iter().filter(|h| want.contains(&&h.segment_id)).count();
            eprintln!("filtered text search {name}: {} results, recall@10 {:.2}", got.results.len(), hit as f64 / 10.0);
        }
    }
    drop(vectors);
    let sql = engine.search().sql();
    let scan = format!(r#"SELECT "scene.location", count(*), avg(score) FROM {run} WHERE live = 1 GROUP BY 1"#);
    let page = format!("SELECT segment_id, headline, score FROM {run} WHERE score > 0.9 ORDER BY score DESC LIMIT 50");
    let matches = |conditions: Vec<Condition>| {
        let mut total = 0;
        let mut req = FilterSearch::new(conditions).page_size(1000);
        loop {
            let p = engine.search().filter(None, &req).unwrap();
            total += p.results.len();
            match p.next_cursor {
                Some(c) => req = req.cursor(c),
                None => return total,
            }
        }
    };
    eprintln!("filter matches: broad {} of {n}, selective {}", matches(happy()), matches(selective_conditions()));

    let cases: Vec<(&str, Case)> = vec![
        (
            "filter_page_of_50_broad",
            Box::new(|| drop(engine.search().filter(None, &FilterSearch::new(happy())).unwrap())),
        ),
        (
            "filter_page_of_50_selective",
            Box::new(|| drop(engine.search().filter(None, &FilterSearch::new(selective_conditions())).unwrap())),
        ),
        ("text_top10_unfiltered", Box::new(|| drop(engine.search().text(None, &TextSearch::new(query)).unwrap()))),
        (
            "text_top10_filtered_broad",
            Box::new(|| drop(engine.search().text(None, &TextSearch::new(query).conditions(happy())).unwrap())),
        ),
        (
            "text_top10_filtered_selective",
            Box::new(|| {
                drop(engine.search().text(None, &TextSearch::new(query).conditions(selective_conditions())).unwrap())
            }),
        ),
        ("sql_catalog", Box::new(|| drop(sql.catalog(None, &[], &[]).unwrap()))),
        ("sql_select_page", Box::new(|| drop(sql.execute(None, &SqlQuery::new(&page)).unwrap()))),
        ("sql_group_by_full_scan", Box::new(|| drop(sql.execute(None, &SqlQuery::new(&scan)).unwrap()))),
    ];
    let mut group = c.benchmark_group("filter_100k");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    for (name, f) in &cases {
        // The first call is cold: it loads the ANN index and the encoder, and for filtered vector
        // search reads the (vector, result) pairs of the space (kept until either changes).
        let t = Instant::now();
        f();
        eprintln!("{name}: first call {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
        let samples = RefCell::new(Vec::new());
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    f();
                    let d = t.elapsed();
                    samples.borrow_mut().push(d);
                    total += d;
                }
                total
            })
        });
        let mut s = samples.into_inner();
        s.sort();
        eprintln!(
            "{name}: {} runs, p50 {:.2} ms, p99 {:.2} ms",
            s.len(),
            percentile(&s, 0.5).as_secs_f64() * 1e3,
            percentile(&s, 0.99).as_secs_f64() * 1e3
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
