//! Text-search latency while an ingest runs, against idle: the engine's reads must not wait for
//! its writes. 10k transcript segments in the playground, queries through the real sentence
//! encoder; the busy case ingests `long_1min.mp4` over and over (into fresh indexes) on the
//! engine's worker while the queries run.
//!
//! `cargo bench --bench concurrent`. Besides criterion's report, prints p50 and p99 of each case.

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use videovector::internals::unit_vectors;
use videovector::{Engine, EngineOptions, IngestOptions, ModelChoice, Space, TextSearch};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, samples: &RefCell<Vec<Duration>>) {
    let mut s = samples.borrow_mut();
    s.sort();
    if !s.is_empty() {
        eprintln!(
            "{name}: {} queries, p50 {:.2} ms, p99 {:.2} ms",
            s.len(),
            percentile(&s, 0.5).as_secs_f64() * 1e3,
            percentile(&s, 0.99).as_secs_f64() * 1e3
        );
    }
    s.clear();
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions::new().visual_model(ModelChoice::Off).asr_model(ModelChoice::Off);
    let engine = Engine::open_with(dir.path(), options).unwrap();
    let model = videovector::internals::text_model_ref(&engine).unwrap().expect("run `bash scripts/fetch_models.sh`");
    videovector::internals::seed_playground(
        &engine,
        &unit_vectors(10_000, model.dims, 7),
        1000,
        &model,
        Space::Transcript,
    )
    .unwrap();
    let req = TextSearch::new("he was not an ill disposed young man").top_k(10);
    engine.search().text(None, &req).unwrap(); // loads the ANN index and the encoder
    let media = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media/long_1min.mp4");
    assert!(media.exists(), "run `bash fixtures/make.sh`");

    let samples = RefCell::new(Vec::new());
    let mut group = c.benchmark_group("text_search_10k");
    group.sample_size(30).measurement_time(Duration::from_secs(8));
    let mut timed = |b: &mut criterion::Bencher| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                engine.search().text(None, &req).unwrap();
                let d = t.elapsed();
                samples.borrow_mut().push(d);
                total += d;
            }
            total
        })
    };
    group.bench_function("idle", &mut timed);
    report("idle", &samples);

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let ingester = s.spawn(|| {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let index = format!("load{n}");
                engine.indexes().create(&index, None).unwrap();
                engine.videos().ingest(&media, &IngestOptions::new().index(index.as_str())).unwrap();
                n += 1;
            }
            n
        });
        std::thread::sleep(Duration::from_millis(500));
        group.bench_function("while_ingesting", &mut timed);
        stop.store(true, Ordering::SeqCst);
        let n = ingester.join().unwrap();
        eprintln!("ingests finished during the busy case: {n}");
    });
    report("while_ingesting", &samples);
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
