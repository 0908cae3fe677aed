//! Image-tower speed of a ViT-B/32-sized CLIP with random weights, for
//! `scripts/compare_clip_speed.py`, which times the reference implementation on the same
//! checkpoint and inputs.
//!
//! `cargo run --release --example clip_speed -- DIR [--int8] [BATCH...]` prints one JSON line per
//! batch size; with `--int8` the tower's linear layers run on 8-bit weights, and each line also
//! gives the cosine of those features to the f32 ones.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use videovector::internals::ml::{testing, ClipEncoder, ModelFiles, Precision};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "target/bench-models/clip-vit-b32-random".into()));
    let args: Vec<String> = args.collect();
    let precision = if args.iter().any(|a| a == "--int8") { Precision::Int8 } else { Precision::F32 };
    let batches: Vec<usize> = args.iter().filter(|a| *a != "--int8").map(|a| a.parse()).collect::<Result<_, _>>()?;
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/clip_tiny");
    testing::write_random_vit_b32(&dir, &golden.join("tokenizer.json"), &golden.join("preprocessor_config.json"))?;
    let files = ModelFiles { dir: dir.clone(), id: "random/vit-b32".into(), revision: "random".into() };
    let clip = ClipEncoder::load_with(&files, &Device::Cpu, precision)?;
    let reference = ClipEncoder::load(&files, &Device::Cpu)?;
    for batch in if batches.is_empty() { vec![1, 32] } else { batches } {
        // Same inputs as the Python side: pixel k = 0.5 sin(0.01 k) + 0.25 cos(0.003 k).
        let n = batch * 3 * 224 * 224;
        let pixels: Vec<f32> =
            (0..n).map(|k| (0.5 * (0.01 * k as f64).sin() + 0.25 * (0.003 * k as f64).cos()) as f32).collect();
        let t = Tensor::from_vec(pixels, (batch, 3, 224, 224), &Device::Cpu)?;
        clip.image_features(&t)?; // warm-up
        let reps = if batch == 1 { 20 } else { 3 };
        let start = Instant::now();
        let mut first = Vec::new();
        for _ in 0..reps {
            first = clip.image_features(&t)?.to_vec2::<f32>()?.remove(0);
        }
        let secs = start.elapsed().as_secs_f64() / reps as f64;
        let (ours, f32s) =
            (clip.image_features(&t)?.to_vec2::<f32>()?, reference.image_features(&t)?.to_vec2::<f32>()?);
        let cosine = ours
            .iter()
            .zip(&f32s)
            .map(|(a, b)| {
                let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
                dot(a, b) / (dot(a, a) * dot(b, b)).sqrt()
            })
            .fold(1f32, f32::min);
        println!(
            "{}",
            serde_json::json!({ "impl": "videovector (candle)", "precision": precision, "batch": batch,
                                "seconds_per_batch": secs, "images_per_second": batch as f64 / secs,
                                "first_features": &first[..4], "min_cosine_to_f32": cosine })
        );
    }
    Ok(())
}
