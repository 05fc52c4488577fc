"""A resident `vidllm` process for shell scripts (issue 16 item 3; not in the paper): a server keeps the model (and
recent scenes) loaded and answers questions over a Unix socket, so a script that asks once per video pays for a small
client process instead of importing torch and transformers every time.

Protocol: one connection per request, one JSON line each way. Request: {"video": absolute path, "questions": [str],
"situation": str | null, "frames": int | null, "max_new_tokens": int, "temperature": float, "seed": int}, or
{"stop": true}. Response: {"answers": [{"question", "answer", "truncated"}], "cached": bool, "frames": [int],
"timings": {...}} or {"error": "one line"}. Answers are those of `vidllm ask` with the same options (same code:
`run_vision_pass` + `pipelines.language.ask`). The client half of this module imports no torch.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import stat
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from vidllm_core.errors import DataError, VidLLMError

__all__ = ["AskService", "ServerError", "check_socket_path", "default_socket", "request", "serve"]

SCENES_IN_MEMORY = 4   # encoded scenes kept by the server (LRU), beside the on-disk scene cache
MAX_REQUEST_BYTES = 1 << 20
MAX_SOCKET_PATH = 107  # bytes: sun_path holds 108 with the terminating NUL (Linux)


class ServerError(VidLLMError):
    """No server at the socket, or the server answered with an error (the message is one line)."""


def default_socket() -> Path:
    """$VIDLLM_SOCKET, else `$XDG_RUNTIME_DIR/vidllm.sock`, else `~/.cache/vidllm/vidllm.sock`."""
    if os.environ.get("VIDLLM_SOCKET"):
        return Path(os.environ["VIDLLM_SOCKET"])
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "vidllm.sock" if runtime else Path.home() / ".cache" / "vidllm" / "vidllm.sock"


def request(path: str | os.PathLike, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Send one request to the server at `path` and return its response; ServerError (one line) when no server
    listens there or the server reports an error."""
    path = Path(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ServerError(f"no vidllm server at {path}: start one with `vidllm serve start`") from None
        sock.sendall(json.dumps(payload).encode("utf-8") + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    if not data.strip():
        raise ServerError(f"the vidllm server at {path} closed the connection without an answer")
    try:
        response = json.loads(data)
    except json.JSONDecodeError:
        raise ServerError(f"the vidllm server at {path} sent an incomplete answer (did it stop mid-request?)") from None
    if "error" in response:
        raise ServerError(response["error"])
    return response


class AskService:
    """Answers `request` payloads with one loaded model (torch is imported by the caller that built `model`).

    Args:
        model: a `VidLLM` with its language branch. cache: a `language.cache.SceneCache` or None.
        device: where the model runs.
    """

    def __init__(self, model: Any, cache: Any = None, device: str = "cpu") -> None:
        self.model, self.cache, self.device = model, cache, device
        self.scenes: OrderedDict[tuple, Any] = OrderedDict()

    def _scene(self, video: Path, frames: int | None) -> tuple[Any, bool]:
        from vidllm_core.pipelines.vision_pass import run_vision_pass

        stat = video.stat()
        key = (str(video), stat.st_mtime_ns, stat.st_size, frames)   # a rewritten file is a new scene
        if key in self.scenes:
            self.scenes.move_to_end(key)
            return self.scenes[key], True
        scene = run_vision_pass(self.model, video, num_frames=frames, tokens=True, cache=self.cache,
                                device=self.device)
        self.scenes[key] = scene
        while len(self.scenes) > SCENES_IN_MEMORY:
            self.scenes.popitem(last=False)
        return scene, scene.cached

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        """One request -> its response (library errors become {"error": ...})."""
        from vidllm_core.pipelines.language import ask

        t0 = time.perf_counter()
        try:
            video, questions = Path(str(req.get("video", ""))), req.get("questions")
            if not video.is_absolute():
                raise DataError(f"the server needs an absolute video path, got '{video}'")
            if not video.exists():
                raise DataError(f"video not found: '{video}'")
            if not isinstance(questions, list) or not questions or not all(isinstance(q, str) for q in questions):
                raise DataError("give one or more questions")
            frames = req.get("frames")
            scene, cached = self._scene(video, int(frames) if frames is not None else None)
            t = time.perf_counter()
            answers = ask(self.model, scene.encoding, questions, situation=req.get("situation"),
                          max_new_tokens=int(req.get("max_new_tokens", 32)),
                          temperature=float(req.get("temperature", 0.0)), seed=int(req.get("seed", 0)))
        except (VidLLMError, OSError, ValueError, TypeError) as exc:
            return {"error": str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}
        return {"answers": [{"question": a.question, "answer": a.answer, "truncated": a.truncated} for a in answers],
                "cached": cached, "frames": [int(i) for i in scene.source_frames],
                "timings": {"answer_s": round(time.perf_counter() - t, 4),
                            "server_s": round(time.perf_counter() - t0, 4)}}


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST_BYTES)
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
        except ValueError as exc:
            response: dict[str, Any] = {"error": f"bad request: {exc}"}
        else:
            if req.get("stop"):
                response = {"stopped": True}
                self.server.stop_requested = True  # type: ignore[attr-defined]
            else:
                response = self.server.service.handle(req)  # type: ignore[attr-defined]
        self.wfile.write(json.dumps(response).encode("utf-8") + b"\n")
        self.wfile.flush()


class _Server(socketserver.UnixStreamServer):
    request_queue_size = 128   # clients wait in the listen backlog while one request runs (scripts run in parallel)

    def __init__(self, path: Path, service: AskService) -> None:
        self.service, self.stop_requested = service, False
        super().__init__(str(path), _Handler)


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
    return True


def check_socket_path(path: str | os.PathLike) -> Path:
    """DataError (one line) unless a server can listen at `path`: short enough, and free or a dead server's socket
    (checked before the model loads)."""
    path = Path(path)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise DataError(f"socket path too long for a Unix socket ({len(os.fsencode(path))} > {MAX_SOCKET_PATH} "
                        f"bytes): {path}")
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise DataError(f"{path} exists and is not a socket: give another --socket")
        if _listening(path):
            raise DataError(f"a vidllm server is already listening at {path}")
    return path


def serve(path: str | os.PathLike, service: AskService, ready: Any = None) -> None:
    """Listen at `path` (one request at a time: the model is not shared between threads) until a {"stop": true}
    request or KeyboardInterrupt; the socket file is removed on the way out. A socket file left by a dead server is
    replaced; a live server at `path` is refused (DataError). `ready()` is called once listening."""
    path = check_socket_path(path)
    if path.exists() or path.is_symlink():
        path.unlink()   # left by a server that died
    path.parent.mkdir(parents=True, exist_ok=True)
    server = _Server(path, service)
    try:
        os.chmod(path, 0o600)   # the owner's questions and videos only
        if ready is not None:
            ready()
        while not server.stop_requested:
            server.handle_request()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        path.unlink(missing_ok=True)
