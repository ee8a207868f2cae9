"""A small Ollama API server in front of an OpenAI-compatible one.

Used by `cargo xtask llm-check` to exercise the project's Ollama client
against a real model served by llama-cpp-python. It implements the parts of
Ollama's documented REST API that the client uses, non-streaming:

  POST /api/chat      {model, messages, stream: false, format, options}
  POST /api/generate  {model, prompt, system, stream: false, format, options}
  GET  /api/tags      the one model
  GET  /              "Ollama is running"

`options.temperature` and `options.num_predict` become the upstream request's
`temperature` and `max_tokens`; `format: "json"` becomes
`response_format: {"type": "json_object"}`. `options.num_ctx` cannot change
the upstream server's context; a request asking for more than `--n-ctx` is
logged. An answer cut off at the token limit has `done_reason: "length"`.
Upstream errors come back as Ollama does it: the status and `{"error": msg}`.

`--corrupt 3,4` answers the 3rd and 4th completion requests with text that
is not JSON (to check that one bad answer costs one chunk only).

Standard library only.
"""

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Shim(BaseHTTPRequestHandler):
    server_version = "ollama-shim/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("shim: " + (fmt % args) + "\n")

    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/api/tags":
            self.send_json(200, {"models": [{"name": self.server.model, "model": self.server.model}]})
        elif self.path == "/":
            data = b"Ollama is running"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as e:
            return self.send_json(400, {"error": f"invalid JSON body: {e}"})
        if self.path not in ("/api/chat", "/api/generate"):
            return self.send_json(404, {"error": f"unknown path {self.path}"})
        if req.get("stream", True):
            return self.send_json(400, {"error": "this shim answers only stream: false requests"})
        if not isinstance(req.get("model"), str) or not req["model"]:
            return self.send_json(400, {"error": "model is required"})
        options = req.get("options") or {}
        if self.path == "/api/chat":
            messages = req.get("messages")
            if not isinstance(messages, list) or not messages:
                return self.send_json(400, {"error": "messages are required"})
        else:
            messages = []
            if req.get("system"):
                messages.append({"role": "system", "content": req["system"]})
            messages.append({"role": "user", "content": req.get("prompt", "")})
        num_ctx = options.get("num_ctx")
        if isinstance(num_ctx, int) and num_ctx > self.server.n_ctx:
            self.log_message("num_ctx %d asked; the upstream server has %d", num_ctx, self.server.n_ctx)
        with self.server.lock:
            self.server.count += 1
            n = self.server.count
        upstream = {"messages": messages, "stream": False}
        if "temperature" in options:
            upstream["temperature"] = options["temperature"]
        if "num_predict" in options:
            upstream["max_tokens"] = options["num_predict"]
        if req.get("format") == "json":
            upstream["response_format"] = {"type": "json_object"}
        started = time.monotonic()
        try:
            r = urllib.request.urlopen(
                urllib.request.Request(
                    self.server.upstream + "/v1/chat/completions",
                    data=json.dumps(upstream).encode(),
                    headers={"Content-Type": "application/json"},
                ),
                timeout=3600,
            )
            answer = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                body = json.loads(raw)
                err = body.get("error")
                message = err.get("message") if isinstance(err, dict) else err or body.get("detail") or raw.decode()
            except ValueError:
                message = raw.decode(errors="replace")
            return self.send_json(e.code, {"error": str(message)})
        except (urllib.error.URLError, OSError) as e:
            return self.send_json(502, {"error": f"upstream unreachable: {e}"})
        choice = (answer.get("choices") or [{}])[0]
        content = (choice.get("message") or {}).get("content") or ""
        done_reason = "length" if choice.get("finish_reason") == "length" else "stop"
        if n in self.server.corrupt:
            self.log_message("request %d: answering with a corrupt (non-JSON) text", n)
            content, done_reason = "Sorry, I cannot produce JSON today.", "stop"
        usage = answer.get("usage") or {}
        out = {
            "model": req["model"],
            "created_at": now(),
            "done": True,
            "done_reason": done_reason,
            "total_duration": int((time.monotonic() - started) * 1e9),
            "prompt_eval_count": usage.get("prompt_tokens", 0),
            "eval_count": usage.get("completion_tokens", 0),
        }
        if self.path == "/api/chat":
            out["message"] = {"role": "assistant", "content": content}
        else:
            out["response"] = content
        self.send_json(200, out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="the OpenAI-compatible server, e.g. http://127.0.0.1:8080")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", default="smollm2")
    p.add_argument("--n-ctx", type=int, default=2048)
    p.add_argument("--corrupt", default="", help="comma-separated request numbers to answer with non-JSON text")
    a = p.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Shim)
    server.upstream = a.upstream.rstrip("/")
    server.model = a.model
    server.n_ctx = a.n_ctx
    server.corrupt = {int(x) for x in a.corrupt.split(",") if x.strip()}
    server.count = 0
    server.lock = threading.Lock()
    sys.stderr.write(f"shim: listening on 127.0.0.1:{a.port}, forwarding to {server.upstream}\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
