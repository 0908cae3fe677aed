//! Text search over HTTP (`videovector serve`) against the same search in process, at 1, 8 and
//! 32 concurrent clients: requests per second, p50 and p99.
//!
//! One engine serves both: the server runs in this process on a loopback port over a clone of
//! it, so the difference is what HTTP costs (parsing, auth, JSON, the blocking-thread hop).
//! HTTP clients are plain keep-alive HTTP/1.1 connections, one per client thread.
//!
//! `cargo run --release --example http_throughput -- [DATA_DIR] [REQUESTS_PER_LEVEL]`
//! (default `data/bench-http`, 640). The first run ingests a few fixtures into the index
//! `bench-http` of that folder.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use videovector::server::{serve, ServeOptions};
use videovector::{Engine, EngineOptions, IngestOptions, ModelChoice, TextSearch};

const KEY: &str = "sk_live_0123456789abcdef0123456789abcdef0123456789abcdef";
const QUERY: &str = "rather selfish and cold hearted";
const FIXTURES: [&str; 5] = ["bikes.mp4", "slideshow.mp4", "speech.wav", "speech.mp3", "long_1min.mp4"];

struct Stats {
    rps: f64,
    p50: f64,
    p99: f64,
}

/// `requests` calls of `call` spread over `clients` threads (each with its own state).
fn measure<S>(clients: usize, requests: usize, make: impl Fn() -> S + Sync, call: impl Fn(&mut S) + Sync) -> Stats {
    let per = requests / clients;
    let start = Instant::now();
    let mut all: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut state = make();
                    (0..per)
                        .map(|_| {
                            let t = Instant::now();
                            call(&mut state);
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("client thread")).collect()
    });
    let wall = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    Stats { rps: all.len() as f64 / wall, p50: pct(0.5), p99: pct(0.99) }
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client { reader: BufReader::new(stream) }
    }

    fn post(&mut self, path: &str, body: &str) -> (u16, Vec<u8>) {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: bench\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(req.as_bytes()).expect("send");
        let (mut status, mut length, mut line) = (0u16, 0usize, String::new());
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("read");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(rest) = l.strip_prefix("HTTP/1.1 ") {
                status = rest[..3].parse().expect("status");
            } else if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().expect("length");
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        (status, body)
    }
}

fn main() -> videovector::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "data/bench-http".into());
    let requests: usize = args.next().map(|n| n.parse().expect("REQUESTS_PER_LEVEL")).unwrap_or(640);
    let options = EngineOptions::new().visual_model(ModelChoice::Off).asr_model(ModelChoice::Default).workers(1);
    let engine = Engine::open_with(&dir, options)?;
    if engine.indexes().retrieve("bench-http").is_err() {
        engine.indexes().create("bench-http", None)?;
        let media = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/media");
        for f in FIXTURES {
            engine.videos().ingest(media.join(f), &IngestOptions::new().index("bench-http"))?;
        }
    }
    let index = engine.indexes().retrieve("bench-http")?;
    let hits = engine.search().text(Some("bench-http"), &TextSearch::new(QUERY).top_k(10))?.results.len();
    eprintln!("{}: {} media, {hits} hits for {QUERY:?}", dir, index.video_count);

    let (tx, rx) = mpsc::channel();
    let server_engine = engine.clone();
    std::thread::spawn(move || {
        let options = ServeOptions::default().listen(SocketAddr::from(([127, 0, 0, 1], 0))).admin_key(Some(KEY.into()));
        serve(server_engine, options, |started| tx.send(started.addr).expect("send addr"))
    });
    let addr = rx.recv().expect("server started");
    let path = format!("/api/v2/indexes/{}/search", index.index_id);
    let body = format!(r#"{{"query":"{QUERY}","top_k":10}}"#);
    let (status, reply) = Client::connect(addr).post(&path, &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));

    println!("clients  in-process rps  p50 ms  p99 ms  |  HTTP rps  p50 ms  p99 ms");
    for clients in [1, 8, 32] {
        let search = TextSearch::new(QUERY).top_k(10);
        let local = measure(
            clients,
            requests,
            || (),
            |_| {
                engine.search().text(Some("bench-http"), &search).expect("search");
            },
        );
        let http = measure(
            clients,
            requests,
            || Client::connect(addr),
            |c| {
                let (status, _) = c.post(&path, &body);
                assert_eq!(status, 200);
            },
        );
        println!(
            "{clients:>7}  {:>14.0}  {:>6.2}  {:>6.2}  |  {:>8.0}  {:>6.2}  {:>6.2}",
            local.rps, local.p50, local.p99, http.rps, http.p50, http.p99
        );
    }
    Ok(())
}
