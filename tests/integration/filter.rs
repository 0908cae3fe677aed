//! Filter search, vector search restricted by metadata, and multi-run search, over run results
//! seeded without a model (`internals::seed_run_results`): every operator on hits and misses, the
//! SQL answer held to the reference evaluation by a property test, and filtered vector search
//! held to an exact search of the filtered set.

use proptest::prelude::*;
use serde_json::{json, Value};
use videovector::internals::filter::Filter;
use videovector::internals::{seed_playground, seed_run_results, text_model_ref, unit_vectors};
use videovector::{
    Aggregation, Condition, Engine, EngineOptions, ErrorKind, FilterSearch, ModelChoice, MultiRunSearch, SegmentId,
    Space, TextSearch,
};

pub fn schema() -> Value {
    json!({"type": "object", "properties": {
        "headline": {"type": "string"},
        "score": {"type": "number"},
        "count": {"type": "integer"},
        "live": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "scene": {"type": "object", "properties": {
            "location": {"type": "string"},
            "people": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "emotion": {"type": "string"}, "age": {"type": "integer"}}}}}}}})
}

pub fn docs() -> Vec<Value> {
    let person = |name: &str, emotion: &str, age: u32| json!({"name": name, "emotion": emotion, "age": age});
    vec![
        json!({"headline": "Reporter at Station Entrance", "score": 0.9, "count": 3, "live": true, "tags": ["news", "transport"],
               "scene": {"location": "station", "people": [person("Ana", "happy", 30), person("Ben", "calm", 41)]}}),
        json!({"headline": "Weather update", "score": 0.4, "count": 0, "live": false, "tags": [],
               "scene": {"location": "studio", "people": [person("Cy", "Happy", 25)]}}),
        json!({"headline": "", "score": 0.75, "count": 7, "live": true, "tags": ["sport"],
               "scene": {"location": "stadium", "people": []}}),
        json!({"headline": "Market report", "score": 1.0, "count": 2, "live": false, "tags": ["news", "finance", "markets"],
               "scene": {"location": "", "people": [person("Di", "", 52)]}}),
        json!({"headline": "Station closure", "score": 0.1, "count": 12, "live": true, "tags": ["transport"],
               "scene": {"location": "station", "people": [person("Ed", "angry", 38), person("Fay", "sad", 19)]}}),
        json!({"headline": "Night news", "score": 0.5, "count": 1, "live": false, "tags": ["news"],
               "scene": {"location": "street", "people": [person("Gus", "calm", 60)]}}),
    ]
}

/// An engine without workers (seeded runs must not be run), with the sentence encoder only.
pub fn engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions::new()
        .shot_model(ModelChoice::Off)
        .visual_model(ModelChoice::Off)
        .asr_model(ModelChoice::Off)
        .workers(0);
    let engine = Engine::open_with(dir.path().join("data"), options).unwrap();
    (dir, engine)
}

/// `n` playground segments with transcript vectors, and a run whose results are `docs` (cycled).
pub fn seeded(engine: &Engine, vectors: &[Vec<f32>], docs: &[Value]) -> (Vec<SegmentId>, String) {
    let model = text_model_ref(engine).unwrap().expect("run `bash scripts/fetch_models.sh`");
    let segments = seed_playground(engine, vectors, 500, &model, Space::Transcript).unwrap();
    let docs: Vec<Value> = (0..segments.len()).map(|i| docs[i % docs.len()].clone()).collect();
    let run = seed_run_results(engine, schema(), &segments, &docs).unwrap();
    (segments, run.to_string())
}

fn cond(field: &str, op: &str, value: Option<Value>, t: &str) -> Condition {
    Condition::new(field, op, value, t)
}

/// The doc positions a filter returns (all pages).
fn positions(engine: &Engine, segments: &[SegmentId], conditions: Vec<Condition>) -> Vec<usize> {
    let mut out = Vec::new();
    let mut req = FilterSearch::new(conditions).page_size(1000);
    loop {
        let page = engine.search().filter(None, &req).unwrap();
        out.extend(page.results.iter().map(|h| segments.iter().position(|s| *s == h.segment_id).unwrap()));
        match page.next_cursor {
            Some(c) => req = req.cursor(c),
            None => return out,
        }
    }
}

#[test]
fn every_operator_on_hits_and_misses() {
    let (_dir, engine) = engine();
    let (segments, _) = seeded(&engine, &unit_vectors(6, 384, 1), &docs());
    let s = |v: &str| Some(json!(v));
    let cases: Vec<(Vec<Condition>, Vec<usize>)> = vec![
        (vec![cond("headline", "equals", s("market REPORT"), "string")], vec![3]),
        (vec![cond("headline", "contains", s("station"), "string")], vec![0, 4]),
        (vec![cond("headline", "starts_with", s("station"), "string")], vec![4]),
        (vec![cond("headline", "ends_with", s("report"), "string")], vec![3]),
        (vec![cond("headline", "is_empty", None, "string")], vec![2]),
        (vec![cond("headline", "is_not_empty", None, "string")], vec![0, 1, 3, 4, 5]),
        (vec![cond("scene.location", "equals", s("nowhere"), "string")], vec![]),
        (vec![cond("scene.people[].emotion", "equals", s("happy"), "string")], vec![0, 1]),
        (vec![cond("scene.people[].emotion", "is_empty", None, "string")], vec![3]),
        (vec![cond("scene.people[].name", "contains", s("A"), "string")], vec![0, 4]),
        (vec![cond("score", "equals", Some(json!(0.75)), "number")], vec![2]),
        (vec![cond("score", "greater_than", Some(json!(0.75)), "number")], vec![0, 3]),
        (vec![cond("score", "greater_equal", Some(json!(0.75)), "number")], vec![0, 2, 3]),
        (vec![cond("score", "less_than", Some(json!(0.4)), "number")], vec![4]),
        (vec![cond("score", "less_equal", Some(json!(0.4)), "number")], vec![1, 4]),
        (vec![cond("count", "equals", Some(json!(0)), "integer")], vec![1]),
        (vec![cond("count", "greater_than", Some(json!(5)), "integer")], vec![2, 4]),
        (vec![cond("scene.people[].age", "less_than", Some(json!(20)), "integer")], vec![4]),
        (vec![cond("scene.people[].age", "greater_equal", Some(json!(60)), "integer")], vec![5]),
        (vec![cond("live", "equals", Some(json!(true)), "boolean")], vec![0, 2, 4]),
        (vec![cond("live", "equals", Some(json!(false)), "boolean")], vec![1, 3, 5]),
        (vec![cond("tags", "item_equals", s("NEWS"), "array")], vec![0, 3, 5]),
        (vec![cond("tags", "item_contains", s("port"), "array")], vec![0, 2, 4]),
        (vec![cond("tags", "length_equals", Some(json!(0)), "array")], vec![1]),
        (vec![cond("tags", "length_greater", Some(json!(1)), "array")], vec![0, 3]),
        (vec![cond("tags", "length_less", Some(json!(2)), "array")], vec![1, 2, 4, 5]),
        (vec![cond("tags", "is_empty", None, "array")], vec![1]),
        (vec![cond("tags", "is_not_empty", None, "array")], vec![0, 2, 3, 4, 5]),
        (vec![cond("scene.people", "is_empty", None, "array")], vec![2]),
        (vec![cond("scene.people", "length_greater", Some(json!(1)), "array")], vec![0, 4]),
        (
            vec![
                cond("tags", "item_equals", s("news"), "array"),
                cond("live", "equals", Some(json!(false)), "boolean"),
                cond("score", "greater_than", Some(json!(0.6)), "number"),
            ],
            vec![3],
        ),
        (
            vec![
                cond("scene.location", "equals", s("station"), "string"),
                cond("scene.people[].emotion", "equals", s("angry"), "string"),
                cond("count", "greater_than", Some(json!(10)), "integer"),
                cond("live", "equals", Some(json!(true)), "boolean"),
            ],
            vec![4],
        ),
    ];
    for (conditions, want) in cases {
        let what = format!("{conditions:?}");
        assert_eq!(positions(&engine, &segments, conditions), want, "{what}");
    }

    // The response says which item matched.
    let hits = engine
        .search()
        .filter(None, &FilterSearch::new(vec![cond("scene.people[].emotion", "equals", s("happy"), "string")]))
        .unwrap();
    let first = &hits.results[0];
    assert_eq!(first.matched_field_paths, vec!["scene.people[].emotion".to_string()]);
    let m = &first.matched_field_instances[0];
    assert_eq!(
        (m.field_instance_path.as_str(), m.field_instance_key.as_str()),
        ("scene.people[0].emotion", "scene.people[0]")
    );
    assert_eq!((m.value_preview.as_str(), m.score), ("happy", 1.0));
    assert_eq!(hits.results[1].matched_field_instances[0].value_preview, "Happy");
    assert_eq!(first.metadata, docs()[0]);
}

#[test]
fn pages_follow_the_cursor_without_repeats() {
    let (_dir, engine) = engine();
    let (segments, run) = seeded(&engine, &unit_vectors(30, 384, 2), &docs());
    let news = || vec![cond("tags", "item_equals", Some(json!("news")), "array")];
    let mut req = FilterSearch::new(news()).page_size(4).run_ids(vec![run.clone()]);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = engine.search().filter(None, &req).unwrap();
        assert!(page.results.len() <= 4);
        pages += 1;
        seen.extend(page.results.into_iter().map(|h| h.segment_id));
        match page.next_cursor {
            Some(c) => req = req.cursor(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 15, "3 of every 6 docs, 30 segments");
    assert_eq!(pages, 4);
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), seen.len());
    assert!(seen.iter().all(|s| [0, 3, 5].contains(&(segments.iter().position(|x| x == s).unwrap() % 6))));
    let bad = engine.search().filter(None, &FilterSearch::new(news()).cursor("garbage")).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::BadRequest, "{bad}");
    let bad = engine.search().filter(None, &FilterSearch::new(news()).page_size(0)).unwrap_err();
    assert!(bad.to_string().contains("page_size"), "{bad}");
}

#[test]
fn bad_conditions_are_422s_that_name_the_condition() {
    let (_dir, engine) = engine();
    let (_, run) = seeded(&engine, &unit_vectors(6, 384, 3), &docs());
    let ok = cond("headline", "is_empty", None, "string");
    let cases: Vec<(Vec<Condition>, &str)> = vec![
        (vec![cond("headline", "greater_than", Some(json!(1)), "string")], "not allowed for type string"),
        (vec![cond("count", "equals", Some(json!("7")), "integer")], "needs an integer"),
        (vec![cond("headline", "is_empty", Some(json!("x")), "string")], "takes no value"),
        (vec![cond("headline", "equals", None, "string")], "needs a value"),
        (vec![ok.clone(); 5], "1 to 4"),
        (vec![ok.clone(), cond("scene", "equals", Some(json!("x")), "string")], "conditions[1] (scene): not a field"),
        (vec![cond("nope", "is_empty", None, "string")], "not a field"),
        (vec![cond("scene.people[].emotion", "equals", Some(json!(1)), "integer")], "of type string, not integer"),
        (vec![cond("tags", "equals", Some(json!("x")), "string")], "of type array, not string"),
    ];
    for (conditions, message) in cases {
        let err = engine.search().filter(None, &FilterSearch::new(conditions)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unprocessable, "{err}");
        assert_eq!(err.code(), "invalid_condition");
        assert!(err.to_string().contains(message), "{err} lacks {message:?}");
    }
    let unknown = engine.search().filter(None, &FilterSearch::new(vec![ok.clone()]).run_ids(vec!["run_nope".into()]));
    assert_eq!(unknown.unwrap_err().kind(), ErrorKind::NotFound);
    let index = engine.search().filter(Some("no-such-index"), &FilterSearch::new(vec![ok.clone()]));
    assert_eq!(index.unwrap_err().kind(), ErrorKind::NotFound);
    // The same checks guard the vector searches.
    let text = TextSearch::new("x").conditions(vec![cond("nope", "is_empty", None, "string")]);
    assert_eq!(engine.search().text(None, &text).unwrap_err().kind(), ErrorKind::Unprocessable);
    // A run of another scope has no results here: an empty page, not an error.
    let other = engine.indexes().create("other", None).unwrap();
    let none = engine.search().filter(Some(other.index_id.as_str()), &FilterSearch::new(vec![ok]).run_ids(vec![run]));
    assert!(none.unwrap().results.is_empty());
}

/// Random documents over the schema, from a small vocabulary so that conditions hit.
fn random_docs(n: usize, seed: u64) -> Vec<Value> {
    let state = std::cell::Cell::new(seed);
    let next = |m: u64| {
        let s = state.get().wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        state.set(s);
        (s >> 33) % m
    };
    let words = ["", "news", "News report", "station", "Station entrance", "calm", "happy", "sport"];
    let word = || json!(words[next(8) as usize]);
    (0..n)
        .map(|_| {
            let fields = [
                ("headline", word()),
                ("score", json!(next(5) as f64 / 4.0)),
                ("count", json!(next(4))),
                ("live", json!(next(2) == 0)),
                ("tags", Value::Array((0..next(4)).map(|_| word()).collect())),
                (
                    "scene",
                    json!({"location": word(), "people": (0..next(3))
                        .map(|_| json!({"name": word(), "emotion": word(), "age": next(4) * 20}))
                        .collect::<Vec<_>>()}),
                ),
            ];
            // Some fields are missing or null, as results of an older schema would be.
            let doc: serde_json::Map<String, Value> = fields
                .into_iter()
                .filter_map(|(k, v)| match next(10) {
                    0 => None,
                    1 => Some((k.to_string(), Value::Null)),
                    _ => Some((k.to_string(), v)),
                })
                .collect();
            Value::Object(doc)
        })
        .collect()
}

fn any_condition() -> impl Strategy<Value = Condition> {
    let word = prop::sample::select(vec!["news", "NEWS", "station", "report", "Entrance", "calm", "happy", "s", "x"]);
    let text_field =
        prop::sample::select(vec!["headline", "scene.location", "scene.people[].name", "scene.people[].emotion"]);
    let number = prop::sample::select(vec![0.0, 0.25, 0.5, 0.75, 1.0, 0.3]);
    let strings = (
        text_field.clone(),
        prop::sample::select(vec!["equals", "contains", "starts_with", "ends_with"]),
        word.clone(),
    )
        .prop_map(|(f, op, w)| Condition::new(f, op, Some(json!(w)), "string"));
    let empties = (text_field, prop::sample::select(vec!["is_empty", "is_not_empty"]))
        .prop_map(|(f, op)| Condition::new(f, op, None, "string"));
    let numbers = (
        prop::sample::select(vec![("score", "number"), ("count", "integer"), ("scene.people[].age", "integer")]),
        prop::sample::select(vec!["equals", "greater_than", "greater_equal", "less_than", "less_equal"]),
        number,
        0u64..4,
    )
        .prop_map(|((f, t), op, x, n)| {
            let v = if t == "integer" { json!(n * if f == "count" { 1 } else { 20 }) } else { json!(x) };
            Condition::new(f, op, Some(v), t)
        });
    let booleans = any::<bool>().prop_map(|b| Condition::new("live", "equals", Some(json!(b)), "boolean"));
    let arrays = (
        prop::sample::select(vec!["tags", "scene.people"]),
        prop::sample::select(vec![
            "item_equals",
            "item_contains",
            "length_equals",
            "length_greater",
            "length_less",
            "is_empty",
            "is_not_empty",
        ]),
        word,
        0u64..3,
    )
        .prop_map(|(f, op, w, n)| match op {
            "item_equals" | "item_contains" => Condition::new(f, op, Some(json!(w)), "array"),
            "is_empty" | "is_not_empty" => Condition::new(f, op, None, "array"),
            _ => Condition::new(f, op, Some(json!(n)), "array"),
        });
    prop_oneof![strings, empties, numbers, booleans, arrays]
}

/// The SQL the store runs gives exactly the results of the reference evaluation in Rust, for a
/// filter search and for the candidates of a filtered vector search.
#[test]
fn filter_sql_agrees_with_the_reference_evaluation() {
    let (_dir, engine) = engine();
    let docs = random_docs(240, 11);
    let (segments, _) = seeded(&engine, &unit_vectors(240, 384, 4), &docs);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 600, ..ProptestConfig::default() });
    runner
        .run(&prop::collection::vec(any_condition(), 1..=3), |conditions| {
            let filter = Filter::check(&conditions).unwrap();
            let want: Vec<usize> = (0..docs.len()).filter(|i| filter.matches(&docs[*i]).is_some()).collect();
            prop_assert_eq!(positions(&engine, &segments, conditions.clone()), want.clone());
            // The candidate set of a filtered vector search is the same set.
            let hits = engine.search().text(None, &TextSearch::new("any").top_k(1000).conditions(conditions)).unwrap();
            let mut found: Vec<usize> =
                hits.results.iter().map(|h| segments.iter().position(|s| *s == h.segment_id).unwrap()).collect();
            found.sort_unstable();
            prop_assert_eq!(found, want);
            Ok(())
        })
        .unwrap();
}

fn normalise(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// Filtered text search returns the exact top k of the filtered set, k of them, both for a
/// small filtered set (scanned) and a large one (graph search with the filter inside).
#[test]
fn filtered_vector_search_is_the_exact_top_k_of_the_filtered_set() {
    let dir = tempfile::tempdir().unwrap();
    // Up to 4,000 candidates are scanned, more are searched in the graph: both paths are taken.
    let ann = videovector::AnnConfig { exact_scan_max: 4000, ..Default::default() };
    let options = EngineOptions::new()
        .shot_model(ModelChoice::Off)
        .visual_model(ModelChoice::Off)
        .asr_model(ModelChoice::Off)
        .workers(0)
        .ann(ann);
    let engine = Engine::open_with(dir.path().join("data"), options).unwrap();
    let query = "a reporter outside the station";
    let q = engine.embeddings().text(query, Space::Transcript).unwrap().data.remove(0).embedding;
    let n = 12_000;
    let mut vectors = unit_vectors(n, q.len(), 5);
    // Planted neighbours at falling similarity, so that the true top k are clear.
    for (j, noise) in unit_vectors(40, q.len(), 6).into_iter().enumerate() {
        let w = 0.3 + j as f32 * 0.05;
        vectors[j * 211 + 3] = normalise(q.iter().zip(&noise).map(|(a, b)| a + w * b).collect());
    }
    let docs: Vec<Value> = (0..4).map(|c| json!({"count": c, "tags": ["x"], "headline": "h"})).collect();
    let (segments, _) = seeded(&engine, &vectors, &docs);
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for (conditions, passes) in [
        (
            vec![cond("count", "equals", Some(json!(0)), "integer")],
            Box::new(|i: usize| i.is_multiple_of(4)) as Box<dyn Fn(usize) -> bool>,
        ),
        (vec![cond("count", "less_than", Some(json!(3)), "integer")], Box::new(|i: usize| i % 4 < 3)),
    ] {
        let mut exact: Vec<(usize, f32)> = (0..n).filter(|i| passes(*i)).map(|i| (i, dot(&vectors[i], &q))).collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let want: Vec<&SegmentId> = exact.iter().take(10).map(|(i, _)| &segments[*i]).collect();
        let found =
            engine.search().text(None, &TextSearch::new(query).top_k(10).conditions(conditions.clone())).unwrap();
        let got: Vec<&SegmentId> = found.results.iter().map(|h| &h.segment_id).collect();
        assert_eq!(got, want, "{conditions:?}");
    }
    // Far more segments pass than k: still k results, all passing.
    let sparse = vec![cond("count", "equals", Some(json!(3)), "integer")];
    let found = engine.search().text(None, &TextSearch::new(query).top_k(50).conditions(sparse)).unwrap();
    assert_eq!(found.results.len(), 50);
    assert!(found.results.iter().all(|h| segments.iter().position(|s| *s == h.segment_id).unwrap() % 4 == 3));
}

#[test]
fn multi_run_search_combines_runs() {
    let (_dir, engine) = engine();
    let model = text_model_ref(&engine).unwrap().expect("run `bash scripts/fetch_models.sh`");
    let segments = seed_playground(&engine, &unit_vectors(40, model.dims, 8), 20, &model, Space::Transcript).unwrap();
    let docs = vec![json!({"count": 1}); 40];
    let older = seed_run_results(&engine, schema(), &segments[..30], &docs[..30]).unwrap().to_string();
    let newer = seed_run_results(&engine, schema(), &segments[10..], &docs[10..]).unwrap().to_string();
    let req = |agg| {
        MultiRunSearch::new("a quiet street").run_ids(vec![older.clone(), newer.clone()]).top_k(5).aggregation(agg)
    };
    let best = engine.search().multi_run(&req(Aggregation::Best)).unwrap();
    assert_eq!(best.results.len(), 5);
    let mut ids: Vec<_> = best.results.iter().map(|h| &h.segment_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "best: each segment once");
    let all = engine.search().multi_run(&req(Aggregation::All)).unwrap();
    assert_eq!(all.results.len(), 10, "all: each run's top 5");
    for h in &all.results {
        let run = h.run_id.as_ref().unwrap().to_string();
        let i = segments.iter().position(|s| *s == h.segment_id).unwrap();
        assert!(if run == older { i < 30 } else { run == newer && i >= 10 }, "a hit outside its run");
    }
    let weighted = engine.search().multi_run(&req(Aggregation::Weighted)).unwrap();
    for h in &weighted.results {
        let same = all.results.iter().find(|a| a.segment_id == h.segment_id && a.run_id == h.run_id).unwrap();
        let w = if h.run_id.as_ref().unwrap().as_str() == newer { 1.0 } else { 0.5 };
        assert!((h.score - same.score * w).abs() < 1e-6, "weighted by recency");
    }
    let err = engine.search().multi_run(&req(Aggregation::Best).top_k(51)).unwrap_err();
    assert!(err.to_string().contains("top_k"), "{err}");
    let err = engine.search().multi_run(&MultiRunSearch::new("x")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
}
