//! ANN recall and speed on clustered unit vectors, against exact search, for
//! `scripts/compare_ann.py` (which runs faiss HNSW on the very same vectors).
//!
//! `cargo run --release --example ann_recall -- OUT_DIR [N] [DIMS] [QUERIES] [f32|f16|i8]` writes
//! `base.f32`, `queries.f32` (little-endian, row-major) and prints one JSON line.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use videovector::internals::ann::{AnnConfig, AnnIndex};

/// splitmix64: a small, well-mixed deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// `n` vectors around `clusters` random centres (spread 0.35 per axis relative to the centre's unit length).
fn clustered(rng: &mut Rng, centres: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    let dims = centres[0].len();
    let spread = 0.35 / (dims as f32).sqrt() * 4.0;
    (0..n)
        .map(|_| {
            let c = &centres[(rng.next() % centres.len() as u64) as usize];
            unit(c.iter().map(|x| x + spread * rng.normal()).collect())
        })
        .collect()
}

fn write(path: &PathBuf, rows: &[Vec<f32>]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in rows {
        for x in r {
            f.write_all(&x.to_le_bytes())?;
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "target/ann-bench".into()));
    let n: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let dims: usize = args.next().map_or(Ok(512), |a| a.parse())?;
    let nq: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let scalar: videovector::AnnScalar = args.next().map_or(Ok(videovector::AnnScalar::F32), |a| a.parse())?;
    let k = 10;
    std::fs::create_dir_all(&out)?;
    let mut rng = Rng(42);
    let centres: Vec<Vec<f32>> = (0..100).map(|_| unit((0..dims).map(|_| rng.normal()).collect())).collect();
    let base = clustered(&mut rng, &centres, n);
    let queries = clustered(&mut rng, &centres, nq);
    write(&out.join("base.f32"), &base)?;
    write(&out.join("queries.f32"), &queries)?;

    let config = AnnConfig { scalar, ..AnnConfig::default() };
    let start = Instant::now();
    let rows: Vec<(u64, Vec<f32>)> = base.into_iter().enumerate().map(|(i, v)| (i as u64, v)).collect();
    let ann = AnnIndex::build(dims, config, &rows)?;
    let add_secs = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let approx: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| ann.search(q, k).map(|h| h.into_iter().map(|(key, _)| key).collect()))
        .collect::<Result<_, _>>()?;
    let search_secs = start.elapsed().as_secs_f64();
    // The true neighbours, by brute force over the f32 vectors (not the index's own exact search,
    // which reads its stored, possibly f16 or int8, copies).
    let start = Instant::now();
    let exact: Vec<Vec<u64>> = {
        use rayon::prelude::*;
        queries
            .par_iter()
            .map(|q| {
                let mut scored: Vec<(f32, u64)> =
                    rows.iter().map(|(key, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), *key)).collect();
                scored.select_nth_unstable_by(k, |a, b| b.0.total_cmp(&a.0));
                scored.truncate(k);
                scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                scored.into_iter().map(|(_, key)| key).collect()
            })
            .collect()
    };
    let exact_secs = start.elapsed().as_secs_f64();
    let found: usize = approx.iter().zip(&exact).map(|(a, e)| a.iter().filter(|x| e.contains(x)).count()).sum();
    let exact_ids: Vec<u64> = exact.into_iter().flatten().collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out.join("exact_ids.u64"))?);
    for id in &exact_ids {
        f.write_all(&id.to_le_bytes())?;
    }
    println!(
        "{}",
        serde_json::json!({
            "impl": "videovector (usearch HNSW)", "scalar": format!("{scalar:?}").to_lowercase(), "n": n, "dims": dims, "queries": nq, "k": k,
            "connectivity": config.connectivity, "expansion_add": config.expansion_add, "expansion_search": config.expansion_search,
            "add_vectors_per_second": n as f64 / add_secs, "search_queries_per_second": nq as f64 / search_secs,
            "exact_queries_per_second": nq as f64 / exact_secs, "simd": ann.hardware_acceleration(), "recall_at_10": found as f64 / (nq * k) as f64
        })
    );
    Ok(())
}
