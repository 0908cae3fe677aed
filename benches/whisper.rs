//! Whisper tiny.en on CPU (real weights): the encoder on one 30 s window, and one LibriVox
//! utterance (7.1 s, 24 words) transcribed whole (encoder, then greedy decoding with the
//! self-attention cache), with the decoder's linear layers in f32 and in 8 bits.
//!
//! `cargo bench --bench whisper` (needs `bash scripts/fetch_models.sh` and the fixtures of
//! `bash fixtures/make.sh`).

use std::path::Path;

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion};
use videovector::internals::media::decode_audio;
use videovector::internals::ml::whisper::{WhisperModel, WHISPER_FILES};
use videovector::internals::ml::{source, Precision, DEFAULT_ASR_MODEL};

fn bench(c: &mut Criterion) {
    let wav = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/media/librivox/sense_and_sensibility_01_austen_64kb-0870.wav");
    let pcm = decode_audio(&wav).expect("run `bash fixtures/make.sh` first");
    let files = source::resolve(DEFAULT_ASR_MODEL, &WHISPER_FILES[..1], &source::search_dirs(None))
        .expect("run `bash scripts/fetch_models.sh` first");

    let mut group = c.benchmark_group("whisper_tiny_en");
    group.sample_size(10);
    for precision in [Precision::F32, Precision::Int8] {
        let mut model = WhisperModel::load_with(&files, &Device::Cpu, precision).unwrap();
        let name = format!("{precision:?}").to_lowercase();
        if precision == Precision::F32 {
            let mel = model.mel(&pcm).unwrap();
            group.bench_function("encoder_30s_window", |b| b.iter(|| model.encode(&mel).unwrap()));
        }
        group.bench_function(format!("utterance_{name}"), |b| b.iter(|| model.transcribe_speech(&pcm).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
