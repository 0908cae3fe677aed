"""Helpers for the SDK tests: start and stop `videovector serve`, write the tiny CLIP checkpoint,
and the few raw-HTTP tools the SDK has no method for (SSE, an oversized body, error envelopes).

The server binary is `target/debug/videovector` (or `$VIDEOVECTOR_BIN`), built by
`cargo build`/`cargo test`; nothing here builds it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

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
    """`videovector --data-dir DIR --visual-model CLIP --shot-model off serve SERVE_ARGS...`.
    Shot detection uses the rules: these tests are about the API, and TransNetV2 on a debug
    build's CPU would add minutes to every upload (the integration tests cover it)."""
    return [str(BINARY), "--data-dir", str(data_dir), "--visual-model", str(clip_dir), "--shot-model", "off",
            "serve", *serve_args]


def start_server(
    data_dir: Path,
    clip_dir: Path,
    stderr_path: Path,
    admin_key: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    media_roots: Sequence[Path] = (MEDIA,),
) -> Server:
    """Start `videovector --data-dir DIR --visual-model CLIP serve --listen 127.0.0.1:0
    --media-root ROOT... [EXTRA_ARGS]` from the repository root with `admin_key` (a fresh one
    unless given: a restart on the same folder passes the key it had, which the folder already
    stores), and wait for its `serving URL` line. `media_roots` is fixtures/media unless given;
    `env` adds variables to this process's environment (say `AWS_ENDPOINT_URL`)."""
    admin_key = admin_key or "sk_live_" + secrets.token_hex(24)
    env = dict(os.environ, **(env or {}), VIDEOVECTOR_ADMIN_KEY=admin_key)
    # By default fixtures/media is the one folder whose files may be registered by file:// URI
    # (videos.create) or read by a local connector.
    roots = [arg for root in media_roots for arg in ("--media-root", str(root))]
    cmd = serve_command(data_dir, clip_dir, "--listen", "127.0.0.1:0", *roots, *extra_args)
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
    # Passed to every start (start_server's own defaults when None).
    env: dict[str, str] | None = None
    media_roots: Sequence[Path] = (MEDIA,)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def start(self, extra_args: Sequence[str] = ()) -> Server:
        """Start a server on the folder (with `extra_args` after `serve`'s own); the previous one
        must have exited."""
        assert all(s.proc.poll() is not None for s in self.servers), "a server still runs on this folder"
        stderr = self.root / f"serve-{len(self.servers)}.stderr"
        server = start_server(
            self.data_dir,
            self.clip_dir,
            stderr,
            admin_key=self.admin_key,
            extra_args=extra_args,
            env=self.env,
            media_roots=self.media_roots,
        )
        self.servers.append(server)
        return server

    @property
    def current(self) -> Server:
        """The server started last."""
        assert self.servers, "no server was started on this folder"
        return self.servers[-1]


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


def upload_many(
    client: VideoVector, files: Sequence[tuple[Path, str, str | None]], poll_interval: float = 0.2
) -> list[Ingested]:
    """Upload each (path, title, index_id) first, then wait for each import (the engine ingests
    the first while the others upload); each must complete with exactly one output."""
    firsts = [client.videos.upload(file=path, title=title, index_id=index_id) for path, title, index_id in files]
    out = []
    for first in firsts:
        job = client.import_jobs.wait_for_completion(
            first.job_id, poll_interval=poll_interval, timeout=IMPORT_TIMEOUT_S
        )
        assert job.status == "completed" and len(job.video_ids) == 1, job
        out.append(Ingested(first, job, job.video_ids[0]))
    return out


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


def create_local_connector(
    server: Server, name: str, path: Path, scopes: Sequence[str] | None = None
) -> dict[str, Any]:
    """`POST /connectors/local` (not in the SDK) on a folder under one of the server's
    `--media-root` folders; must answer 201. Returns the connector as JSON."""
    body: dict[str, Any] = {"name": name, "path": str(path)}
    if scopes is not None:
        body["scopes"] = list(scopes)
    with server.http() as http:
        r = http.post("/connectors/local", json=body)
    assert r.status_code == 201, f"local connector on {path}: {r.status_code} {r.text[:500]}"
    return r.json()


# Leading bytes of the image formats a thumbnail route may answer.
IMAGE_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"GIF8": "image/gif"}


def assert_image(response: httpx.Response) -> str:
    """The response is 200 with an image: a Content-Type `image/...` that agrees with the bytes'
    signature (JPEG, PNG or GIF). Returns the type."""
    assert response.status_code == 200, f"{response.request.url}: {response.status_code} {response.text[:300]}"
    declared = response.headers.get("content-type", "").split(";")[0].strip()
    found = next((kind for magic, kind in IMAGE_MAGIC.items() if response.content.startswith(magic)), None)
    assert found is not None, f"{response.request.url}: not an image: {response.content[:16]!r} ({declared})"
    assert declared == found, f"{response.request.url}: Content-Type {declared!r} but the bytes are {found}"
    return found


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


# --------------------------------------------------------------------------------------------
# Local object stores (test_delivery.py): moto's S3 server and azurite's Blob service, each a
# process on a free loopback port, filled and read with plain HTTP requests
# --------------------------------------------------------------------------------------------

# Installed by scripts/sdk_test.sh: moto into .venv-sdk, azurite into .cache/azurite.
MOTO_SERVER = REPO / ".venv-sdk" / "bin" / "moto_server"
AZURITE_BLOB = REPO / ".cache" / "azurite" / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
# The Azure Storage emulator's well-known account and key (published by Microsoft for it).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# How long moto (a Flask import) and azurite (node) may take to accept connections.
STORE_START_TIMEOUT_S = 60


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(
    port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = STORE_START_TIMEOUT_S
) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`; fail if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} does not listen on port {port} after {timeout} s")
            time.sleep(0.05)


@dataclass
class StoreProcess:
    """A local storage server: its process, port and log."""

    what: str
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait(self) -> "StoreProcess":
        wait_listening(self.port, self.proc, self.what, self.log)
        return self

    def stop(self) -> None:
        stop_server(self.proc, force=True)


def spawn_moto(log: Path) -> StoreProcess:
    """Start moto's server (every AWS service it mocks, S3 among them; no signature checks) on a
    free port without waiting for it (`.wait()` does)."""
    if not MOTO_SERVER.exists():
        raise RuntimeError(f"{MOTO_SERVER} is missing: run the tests with `bash scripts/sdk_test.sh`")
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return StoreProcess("moto_server", proc, port, log)


def spawn_azurite(location: Path, log: Path) -> StoreProcess:
    """Start azurite's Blob service on a free port with its files under `location`, without
    waiting for it (`.wait()` does)."""
    if not AZURITE_BLOB.exists():
        raise RuntimeError(f"{AZURITE_BLOB} is missing: run the tests with `bash scripts/sdk_test.sh`")
    port = free_port()
    location.mkdir(parents=True, exist_ok=True)
    cmd = [
        shutil.which("node") or "node",
        str(AZURITE_BLOB),
        "--blobHost", "127.0.0.1",
        "--blobPort", str(port),
        "--location", str(location),
        "--silent",
        "--skipApiVersionCheck",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    return StoreProcess("azurite-blob", proc, port, log)


# moto checks no signature, but a request without credentials is anonymous, and private objects
# (all of them here) refuse anonymous reads: every request names an access key.
S3_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIATESTKEY0000/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=" + "0" * 64
)


def s3_request(endpoint: str, method: str, key: str, body: bytes = b"") -> httpx.Response:
    """A request to moto's S3 (path style: `/bucket[/key]`) with an unsigned Authorization."""
    headers = {"Authorization": S3_AUTHORIZATION}
    return httpx.request(method, f"{endpoint}/{key}", content=body, headers=headers, timeout=30)


def azure_request(
    endpoint: str,
    method: str,
    resource: str,
    params: Mapping[str, str] | None = None,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """A request to azurite's Blob service (path style: `/devstoreaccount1/container[/blob]`),
    signed with the emulator's account key as Shared Key (the 2015-02-21+ string to sign)."""
    path = f"/{AZURITE_ACCOUNT}/{quote(resource)}"
    params = dict(params or {})
    sent = {k.lower(): v for k, v in (headers or {}).items()}
    sent["x-ms-date"] = formatdate(usegmt=True)
    sent["x-ms-version"] = "2021-08-06"
    standard = [
        method,
        sent.get("content-encoding", ""),
        sent.get("content-language", ""),
        str(len(body)) if body else "",  # Content-Length, empty when 0
        sent.get("content-md5", ""),
        sent.get("content-type", ""),
        "",  # Date (x-ms-date is sent instead)
        sent.get("if-modified-since", ""),
        sent.get("if-match", ""),
        sent.get("if-none-match", ""),
        sent.get("if-unmodified-since", ""),
        sent.get("range", ""),
    ]
    canonical_headers = "".join(f"{k}:{v.strip()}\n" for k, v in sorted(sent.items()) if k.startswith("x-ms-"))
    canonical_resource = f"/{AZURITE_ACCOUNT}{path}" + "".join(
        f"\n{k.lower()}:{v}" for k, v in sorted(params.items(), key=lambda kv: kv[0].lower())
    )
    to_sign = "\n".join(standard) + "\n" + canonical_headers + canonical_resource
    mac = hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode("utf-8"), hashlib.sha256).digest()
    sent["authorization"] = f"SharedKey {AZURITE_ACCOUNT}:{base64.b64encode(mac).decode()}"
    return httpx.request(method, endpoint + path, params=params, content=body, headers=sent, timeout=30)


def azure_create_container(endpoint: str, container: str) -> None:
    r = azure_request(endpoint, "PUT", container, params={"restype": "container"})
    assert r.status_code == 201, f"create container {container}: {r.status_code} {r.text[:500]}"


def azure_put_blob(endpoint: str, container: str, name: str, body: bytes) -> None:
    r = azure_request(endpoint, "PUT", f"{container}/{name}", body=body, headers={"x-ms-blob-type": "BlockBlob"})
    assert r.status_code == 201, f"put blob {container}/{name}: {r.status_code} {r.text[:500]}"


# --------------------------------------------------------------------------------------------
# A webhook receiver and a tap on the SDK's replies
# --------------------------------------------------------------------------------------------


@dataclass
class Receipt:
    """One POST the receiver got: its path, headers (lower-case names), body, when (time.time()),
    what it answered, and which known secret the signature verified with (None: none did)."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int
    verified_by: str | None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def delivery_id(self) -> str:
        return self.headers.get("x-delivery-id", "")


def webhook_signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, body)>`, the `X-Webhook-Signature` of a delivery."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookReceiver:
    """An HTTP server on a loopback port (kept across stop/start) that records every POST and
    checks its signature against every secret in `secrets`. It answers the next status queued for
    the path in `plan` (say `{"/main": [500]}`: the first delivery there is refused), else
    `status.get(path, 200)`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.secrets: set[str] = set()
        self.plan: dict[str, list[int]] = {}
        self.status: dict[str, int] = {}
        self.receipts: list[Receipt] = []
        self.lock = threading.Lock()
        self._httpd: Any = None
        self._thread: threading.Thread | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                headers = {k.lower(): v for k, v in self.headers.items()}
                given = headers.get("x-webhook-signature", "")
                with receiver.lock:
                    verified = next((s for s in receiver.secrets if webhook_signature(s, body) == given), None)
                    queued = receiver.plan.get(self.path)
                    answer = queued.pop(0) if queued else receiver.status.get(self.path, 200)
                    receiver.receipts.append(Receipt(self.path, headers, body, at, answer, verified))
                reply = b'{"received": true}'
                self.send_response(answer)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                # One request per connection: once stopped, the receiver refuses every delivery
                # (a kept-alive connection would still be served by its handler thread).
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)  # reuses the address
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: a delivery now meets a refused connection."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def on(self, path: str) -> list[Receipt]:
        with self.lock:
            return [r for r in self.receipts if r.path == path]


@dataclass
class Reply:
    method: str
    url: str
    status: int
    body: bytes


def tap(client: VideoVector) -> list[Reply]:
    """Record the raw body of every reply the SDK client reads from now on (except export
    downloads, which the SDK streams itself), to look for what its models drop: say a secret."""
    replies: list[Reply] = []

    def hook(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/download"):
            return
        response.read()
        request = response.request
        replies.append(Reply(request.method, str(request.url), response.status_code, response.content))

    client._http._client.event_hooks["response"].append(hook)  # the SDK's own httpx.Client
    return replies
