//! ANN add and search throughput (usearch HNSW, cosine, 512-d), and end-to-end text query
//! latency (encode with all-MiniLM-L6-v2 + ANN + catalog) over 10k and 100k segments.
//!
//! `cargo bench --bench ann`. Recall against exact search and the faiss comparison are in
//! `scripts/compare_ann.sh`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use videovector::internals::ann::{AnnConfig, AnnIndex};
use videovector::internals::unit_vectors;
use videovector::{Engine, EngineOptions, ModelChoice, ModelRef, Space, TextSearch};

/// A data folder whose playground holds `n` segments with transcript vectors made by the real
/// sentence encoder's identity (random unit vectors: the cost is what is measured).
fn engine_with_segments(dir: &std::path::Path, n: usize) -> Engine {
    let engine = Engine::open_with(dir, EngineOptions::new().visual_model(ModelChoice::Off)).unwrap();
    let model: ModelRef =
        videovector::internals::text_model_ref(&engine).unwrap().expect("run `bash scripts/fetch_models.sh`");
    let per_media = 1000;
    let vectors = unit_vectors(n, model.dims, 7);
    videovector::internals::seed_playground(&engine, &vectors, per_media, &model, Space::Transcript).unwrap();
    engine
}

fn bench(c: &mut Criterion) {
    let dims = 512;
    let base = unit_vectors(10_000, dims, 1);
    let rows: Vec<(u64, Vec<f32>)> = base.iter().cloned().enumerate().map(|(i, v)| (i as u64, v)).collect();
    let mut group = c.benchmark_group("ann_512d");
    group.sample_size(10);
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("add_10k", |b| b.iter(|| AnnIndex::build(dims, AnnConfig::default(), &rows).unwrap()));
    let ann = AnnIndex::build(dims, AnnConfig::default(), &rows).unwrap();
    let queries = unit_vectors(100, dims, 2);
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("search_10k_top10", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % queries.len();
                &queries[i]
            },
            |q| ann.search(q, 10).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("query_end_to_end");
    group.sample_size(20);
    for n in [10_000usize, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine_with_segments(dir.path(), n);
        let req = TextSearch::new("he was not an ill disposed young man").top_k(10);
        engine.search().text(None, &req).unwrap(); // builds and saves the ANN index
        group.bench_function(format!("text_top10_{n}_segments"), |b| {
            b.iter(|| engine.search().text(None, &req).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
