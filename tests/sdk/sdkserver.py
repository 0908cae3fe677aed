"""Helpers for the SDK tests: start and stop `videovector serve`, write the tiny CLIP checkpoint,
and the few raw-HTTP tools the SDK has no method for (SSE, an oversized body, error envelopes).

The server binary is `target/debug/videovector` (or `$VIDEOVECTOR_BIN`), built by
`cargo build`/`cargo test`; nothing here builds it.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import videovector
from videovector import VideoVector

REPO = Path(__file__).resolve().parents[2]
# Another build (say target/release/videovector) can be tested with VIDEOVECTOR_BIN=PATH.
BINARY = Path(os.environ.get("VIDEOVECTOR_BIN") or REPO / "target" / "debug" / "videovector").resolve()
MEDIA = REPO / "fixtures" / "media"
# Import-job phases in which the engine is still queueing or already done.
IDLE_PHASES = {None, "queued", "done"}
# A small extraction schema and its instructions, for runs over a picture.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "place": {"type": "string", "enum": ["sky", "street"], "description": "where it is"},
        "people": {"type": "integer", "description": "how many people"},
    },
    "required": ["place", "people"],
}
PROMPT_TEXT = "Look at the picture and fill in every field from what can be seen."
GOLDEN = REPO / "tests" / "golden"

KEY_RE = re.compile(r"^sk_live_[0-9a-f]{48}$")
SERVING_RE = re.compile(r"^serving (http://127\.0\.0\.1:(\d+)/api/v2)$")

# How long the server may take to print its `serving ...` line, and to exit after SIGTERM.
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60
# One fixture's ingest, and one prompt run of the 0.5B model on CPU, are bounded by these.
IMPORT_TIMEOUT_S = 300
RUN_TIMEOUT_S = 600

T = TypeVar("T")


def unique(prefix: str) -> str:
    """A name that no other test or session used."""
    return f"{prefix}-{secrets.token_hex(4)}"


def poll(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float, interval: float = 0.5) -> T:
    """Call `fetch` until `done` holds for its value; fail with the last value after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not done after {timeout} s: {value!r}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# The tiny CLIP checkpoint (tests/golden/README.md), written as
# tests/integration/clip_golden.rs `write_tiny_clip` writes it.
# --------------------------------------------------------------------------------------------


def write_tiny_clip(dest: Path) -> None:
    """Copy the checked-in config, tokenizer and preprocessing into `dest` and write
    `model.safetensors` from the documented formula: every tensor F32, row-major,
    little-endian, `logit_scale` a scalar of shape [] (what candle's `safetensors::save` writes)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "preprocessor_config.json"):
        shutil.copyfile(GOLDEN / "clip_tiny" / name, dest / name)
    spec = json.loads((GOLDEN / "clip_tiny_tensors.json").read_text())
    f = spec["formula"]
    step, per_hash, modulus = f["phase_step"], f["phase_per_hash"], f["hash_modulus"]
    scales = {
        "weight": (f["weight_scale"], 0.0),
        "bias": (f["bias_scale"], 0.0),
        "layer_norm_weight": (f["layer_norm_scale"], 1.0),
    }
    header: dict[str, Any] = {}
    blobs: list[bytes] = []
    offset = 0
    for t in spec["tensors"]:
        name, shape, rule = t["name"], t["shape"], t["rule"]
        if rule == "logit_scale":
            values = array("f", [f["logit_scale"]])
        else:
            a, b = scales[rule]
            h = sum(name.encode("utf-8")) % modulus
            # f64 arithmetic, one rounding to f32 on the way into the array (Rust: `as f32`).
            values = array("f", (b + a * math.sin(step * k + per_hash * h) for k in range(math.prod(shape))))
        if sys.byteorder != "little":
            values.byteswap()
        data = values.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the safetensors crate pads its header to 8 bytes
    with open(dest / "model.safetensors", "wb") as out:
        out.write(struct.pack("<Q", len(text)))
        out.write(text)
        for blob in blobs:
            out.write(blob)


# --------------------------------------------------------------------------------------------
# The server process
# --------------------------------------------------------------------------------------------


@dataclass
class Server:
    """A running `videovector serve`."""

    base_url: str
    admin_key: str
    data_dir: Path
    proc: subprocess.Popen
    stderr_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT`, to resolve URLs the server answers as paths."""
        return self.base_url.rsplit("/api/v2", 1)[0]

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError as e:
            return f"(stderr unreadable: {e})"
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    def client(self, api_key: str | None = None, **kwargs: Any) -> VideoVector:
        """An SDK client on this server, with the admin key unless told otherwise. Retries are
        off so that a 5xx shows as itself instead of being retried away; everything else on the
        wire is exactly what the SDK sends."""
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 120)
        return VideoVector(api_key=api_key or self.admin_key, base_url=self.base_url, **kwargs)

    def http(self, api_key: str | None = "admin", **kwargs: Any) -> httpx.Client:
        """A raw httpx client on the API base: the admin key by default, `None` for no key."""
        headers = dict(kwargs.pop("headers", {}))
        if api_key == "admin":
            api_key = self.admin_key
        if api_key is not None:
            headers["X-API-Key"] = api_key
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=kwargs.pop("timeout", 60), **kwargs)

    def absolute(self, url: str) -> str:
        """`url` as is when absolute, else resolved against the server's origin."""
        return url if urlsplit(url).scheme else self.origin + url


def serve_command(data_dir: Path, clip_dir: Path, *serve_args: str) -> list[str]:
    """`videovector --data-dir DIR --visual-model CLIP serve SERVE_ARGS...`."""
    return [str(BINARY), "--data-dir", str(data_dir), "--visual-model", str(clip_dir), "serve", *serve_args]


def start_server(
    data_dir: Path,
    clip_dir: Path,
    stderr_path: Path,
    admin_key: str | None = None,
    extra_args: Sequence[str] = (),
) -> Server:
    """Start `videovector --data-dir DIR --visual-model CLIP serve --listen 127.0.0.1:0
    --media-root fixtures/media [EXTRA_ARGS]` from the repository root with `admin_key` (a fresh
    one unless given: a restart on the same folder passes the key it had, which the folder already
    stores), and wait for its `serving URL` line."""
    admin_key = admin_key or "sk_live_" + secrets.token_hex(24)
    env = dict(os.environ, VIDEOVECTOR_ADMIN_KEY=admin_key)
    # fixtures/media is the one folder whose files may be registered by file:// URI (videos.create).
    cmd = serve_command(data_dir, clip_dir, "--listen", "127.0.0.1:0", "--media-root", str(MEDIA), *extra_args)
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    server = Server("", admin_key, data_dir, proc, stderr_path)
    lines: queue.Queue[str] = queue.Queue()

    def drain() -> None:
        # Read stdout for the whole session so that the server never blocks on a full pipe.
        assert proc.stdout is not None
        for line in proc.stdout:
            server.stdout_lines.append(line.rstrip("\n"))
            lines.put(line)

    threading.Thread(target=drain, name="videovector-stdout", daemon=True).start()
    try:
        first: str | None = lines.get(timeout=START_TIMEOUT_S)
    except queue.Empty:
        first = None
    match = SERVING_RE.match(first.strip()) if first else None
    if not match:
        stop_server(proc, force=True)
        raise RuntimeError(
            f"`{' '.join(cmd)}` did not print `serving http://127.0.0.1:PORT/api/v2` first "
            f"within {START_TIMEOUT_S} s (exit status {proc.returncode}, first line {first!r}).\n"
            f"stderr tail:\n{server.stderr_tail(60)}"
        )
    server.base_url = match.group(1)
    return server


@dataclass
class DataFolder:
    """A data folder of its own for one test, and the servers started on it one after the other,
    all with the same admin key (a restart is another `start()`)."""

    root: Path
    clip_dir: Path
    admin_key: str = field(default_factory=lambda: "sk_live_" + secrets.token_hex(24))
    servers: list[Server] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def start(self, extra_args: Sequence[str] = ()) -> Server:
        """Start a server on the folder (with `extra_args` after `serve`'s own); the previous one
        must have exited."""
        assert all(s.proc.poll() is not None for s in self.servers), "a server still runs on this folder"
        stderr = self.root / f"serve-{len(self.servers)}.stderr"
        server = start_server(self.data_dir, self.clip_dir, stderr, admin_key=self.admin_key, extra_args=extra_args)
        self.servers.append(server)
        return server


def stop_server(proc: subprocess.Popen, force: bool = False) -> int | None:
    """SIGTERM, then SIGKILL if it has not exited in time (or at once with `force`). Returns
    the exit status after SIGTERM, or None when it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    if not force:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait(timeout=30)
    return None


# --------------------------------------------------------------------------------------------
# Media through the SDK
# --------------------------------------------------------------------------------------------


@dataclass
class Ingested:
    """A finished upload: the import job as first answered and once completed, and its media id."""

    first: videovector.ImportJob
    job: videovector.ImportJob
    video_id: str


def upload_and_wait(client: VideoVector, path: Path, title: str, index_id: str | None, **kwargs: Any) -> Ingested:
    """Upload through the SDK and wait until the import job completes with exactly one output."""
    first = client.videos.upload(file=path, title=title, index_id=index_id, **kwargs)
    job = client.import_jobs.wait_for_completion(first.job_id, poll_interval=0.5, timeout=IMPORT_TIMEOUT_S)
    assert job.status == "completed", job
    assert len(job.video_ids) == 1, f"one file, one output: {job!r}"
    return Ingested(first, job, job.video_ids[0])


def wait_import(client: VideoVector, job_id: str) -> videovector.ImportJob:
    return client.import_jobs.wait_for_completion(job_id, poll_interval=0.5, timeout=IMPORT_TIMEOUT_S)


# --------------------------------------------------------------------------------------------
# Raw HTTP
# --------------------------------------------------------------------------------------------


def assert_error(response: httpx.Response, statuses: set, code: str | None = None) -> dict[str, Any]:
    """The response has one of `statuses` and the envelope the SDK parses:
    `{"error": {"code", "message", "details", "request_id"?}}`. Returns the inner object."""
    assert response.status_code in statuses, f"{response.status_code} not in {statuses}: {response.text[:500]}"
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), f"no error envelope: {body!r}"
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], error
    assert isinstance(error.get("message"), str) and error["message"], error
    assert isinstance(error.get("details", {}), dict), error
    if "request_id" in error:
        assert isinstance(error["request_id"], str), error
    if code is not None:
        assert error["code"] == code, error
    return error


@dataclass
class SseEvent:
    id: str | None
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def read_sse(
    server: Server,
    params: dict[str, str],
    last_event_id: str | None = None,
    max_events: int = 200,
    idle_s: float = 3.0,
    total_s: float = 10.0,
) -> list[SseEvent]:
    """Open `GET /processing/events/stream`, read events until `max_events`, `idle_s` without
    data or `total_s` in all, and close it."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    events: list[SseEvent] = []
    current: dict[str, str] = {}
    deadline = time.monotonic() + total_s
    timeout = httpx.Timeout(10.0, read=idle_s)
    with server.http(timeout=timeout) as http:
        try:
            with http.stream("GET", "/processing/events/stream", params=params, headers=headers) as r:
                assert r.status_code == 200, f"{r.status_code}: {r.read()[:500]!r}"
                assert r.headers.get("content-type", "").startswith("text/event-stream"), r.headers
                for line in r.iter_lines():
                    if line == "":
                        if "data" in current:
                            events.append(SseEvent(current.get("id"), current.get("event"), current["data"]))
                        current = {}
                        if len(events) >= max_events:
                            break
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if name == "data" and "data" in current:
                            current["data"] += "\n" + value
                        else:
                            current[name] = value
                    if time.monotonic() > deadline:
                        break
        except httpx.ReadTimeout:
            pass  # idle: the stream stays open, we have read what there was
    return events


def post_oversized(server: Server, path: str, claimed: int, max_send: int) -> tuple[int, bytes]:
    """POST a JSON body announced as `claimed` bytes on a raw socket, sending until the server
    answers (or `max_send` bytes), and return the status and raw reply. A raw socket, because a
    server may answer 413 and close before reading the body, which httpx reports as a write error."""
    host, port = urlsplit(server.base_url).hostname, urlsplit(server.base_url).port
    head = (
        f"POST {urlsplit(server.base_url).path}{path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nX-API-Key: {server.admin_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {claimed}\r\nConnection: close\r\n\r\n"
    ).encode()
    chunk = b"a" * (1 << 20)
    reply = b""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(head + b'{"query": "')
        sent = 0
        while sent < max_send:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable or not writable:
                break
            try:
                sent += sock.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(30)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
                if b"\r\n\r\n" in reply:
                    head_part, _, body = reply.partition(b"\r\n\r\n")
                    length = re.search(rb"(?i)content-length:\s*(\d+)", head_part)
                    if length and len(body) >= int(length.group(1)):
                        break
        except (TimeoutError, ConnectionResetError):
            pass
    status = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
    assert status, f"no HTTP reply after sending {sent} body bytes: {reply[:200]!r}"
    return int(status.group(1)), reply


def raw_get(server: Server, target: str, api_key: str | None = "admin") -> tuple[int, dict[str, str], bytes]:
    """GET `target` (appended to the API path as is: no client normalises `..` or re-encodes
    `%2F`) on a raw socket; returns the status, the headers (lower-case names) and the body."""
    url = urlsplit(server.base_url)
    key = server.admin_key if api_key == "admin" else api_key
    head = f"GET {url.path}{target} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\nConnection: close\r\n"
    if key is not None:
        head += f"X-API-Key: {key}\r\n"
    reply = b""
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall((head + "\r\n").encode())
        while data := sock.recv(65536):
            reply += data
    head_part, _, body = reply.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    status = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    assert status, f"no HTTP reply to GET {target}: {reply[:200]!r}"
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "chunked" in headers.get("transfer-encoding", ""):
        body = _unchunk(body)
    return int(status.group(1)), headers, body


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size.split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out += rest[:n]
        body = rest[n + 2 :]
    return out
