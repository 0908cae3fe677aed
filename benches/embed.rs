//! Model throughput on CPU: CLIP image and text towers (ViT-B/32 size, random weights: no CLIP
//! weights can be had here) and all-MiniLM-L6-v2 (real weights), at batch 1 and 32.
//!
//! `cargo bench --bench embed` (needs `bash scripts/fetch_models.sh` for MiniLM).

use std::path::Path;

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use videovector::internals::ml::{source, testing, ClipEncoder, ModelFiles, TextEncoder};

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/bench-models/clip-vit-b32-random");
    let golden = root.join("tests/golden/clip_tiny");
    testing::write_random_vit_b32(&dir, &golden.join("tokenizer.json"), &golden.join("preprocessor_config.json"))
        .unwrap();
    let clip =
        ClipEncoder::load(&ModelFiles { dir, id: "random/vit-b32".into(), revision: "random".into() }, &Device::Cpu)
            .unwrap();
    let mut group = c.benchmark_group("clip_image_tower");
    group.sample_size(10);
    for batch in [1usize, 32] {
        let n = batch * 3 * 224 * 224;
        let pixels: Vec<f32> = (0..n).map(|k| (0.5 * (0.01 * k as f64).sin()) as f32).collect();
        let t = Tensor::from_vec(pixels, (batch, 3, 224, 224), &Device::Cpu).unwrap();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_{batch}"), |b| b.iter(|| clip.image_features(&t).unwrap()));
    }
    group.finish();

    let mut group = c.benchmark_group("clip_text_tower");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_query", |b| {
        b.iter(|| clip.embed_texts(&["a photo of a cat on the street at night"]).unwrap())
    });
    group.finish();

    let files = source::resolve(
        videovector::internals::ml::DEFAULT_TEXT_MODEL,
        videovector::internals::ml::text::TEXT_MODEL_FILES,
        &source::search_dirs(None),
    )
    .expect("run `bash scripts/fetch_models.sh` first");
    let minilm = TextEncoder::load(&files, &Device::Cpu).unwrap();
    let sentence = "and mister john dashwood had then leisure to consider how much there might be prudently in his power to do for them";
    let mut group = c.benchmark_group("minilm_text");
    for batch in [1usize, 32] {
        let texts = vec![sentence; batch];
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_{batch}"), |b| b.iter(|| minilm.embed(&texts).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
