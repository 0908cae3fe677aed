//! Decode + content-aware detection throughput in frames/s, the number compared with PySceneDetect
//! by `scripts/compare_scenedetect.sh`.
//!
//! `cargo bench --bench shots` (needs `bash fixtures/make.sh` first).

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use videovector::internals::media::{decode, DecodeOptions, Flow, FrameSink, VideoFrame};
use videovector::internals::segment::{ShotConfig, ShotDetector};
use videovector::internals::{analyse_file as analyse, ANALYSIS_SIZE};

fn fixture(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/media").join(name);
    assert!(path.exists(), "{} is missing: run `bash fixtures/make.sh`", path.display());
    path
}

/// Decode only, to see what share of the time detection itself takes.
struct CountFrames(u64);

impl FrameSink for CountFrames {
    fn video_frame(&mut self, _frame: &VideoFrame<'_>) -> videovector::Result<Flow> {
        self.0 += 1;
        Ok(Flow::Continue)
    }
}

/// Detection only, on frames decoded once up front.
struct Collect(Vec<(i64, u32, u32, Vec<u8>)>);

impl FrameSink for Collect {
    fn video_frame(&mut self, f: &VideoFrame<'_>) -> videovector::Result<Flow> {
        self.0.push((f.time_us, f.width, f.height, f.rgb.to_vec()));
        Ok(Flow::Continue)
    }
}

fn bench(c: &mut Criterion) {
    // The options of the analysis pass (see the analyse stage), without audio.
    let video_only = DecodeOptions { max_side: ANALYSIS_SIZE, video: true, audio: false, fast: true };
    for (name, frames) in [("bikes.mp4", 250u64), ("slideshow.mp4", 1000)] {
        let path = fixture(name);
        let mut group = c.benchmark_group(format!("shots/{name}"));
        group.throughput(Throughput::Elements(frames));
        group.sample_size(10);
        group.bench_function("decode+detect", |b| {
            b.iter(|| analyse(&path, &ShotConfig::default(), None).unwrap().cuts.len())
        });
        group.bench_function("decode", |b| {
            b.iter(|| {
                let mut sink = CountFrames(0);
                decode(&path, &video_only, &mut sink).unwrap();
                sink.0
            })
        });
        let mut collected = Collect(Vec::new());
        decode(&path, &video_only, &mut collected).unwrap();
        group.bench_function("detect", |b| {
            b.iter(|| {
                let mut detector = ShotDetector::new(ShotConfig::default());
                for (i, (t, w, h, rgb)) in collected.0.iter().enumerate() {
                    detector.push(&VideoFrame { index: i as u64, time_us: *t, width: *w, height: *h, rgb });
                }
                detector.finish().unwrap().0.len()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
