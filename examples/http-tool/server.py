"""An HTTP tool for agentflow: POST /weather with the argument object as JSON.

agentflow POSTs the arguments with `Idempotency-Key: {task_id}:{tool_call_id}` on every attempt
of a call; this server answers a repeated key from its cache, so a retried call does its work
once. A 2xx JSON answer is the tool's result; a 4xx is a failed result the model reads (its
`detail`); a 5xx is retried. Standard library only:

    python3 examples/http-tool/server.py --port 8766

and in agentflow.toml:

    [tools.forecast]
    kind = "http"
    description = "Tomorrow's weather for a city."
    parameters = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }
    url = "http://127.0.0.1:8766/weather"
"""

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

answered: dict[str, bytes] = {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        if self.path != "/weather":
            self.answer(404, {"detail": f"no tool at {self.path}"})
            return
        key = self.headers.get("Idempotency-Key", "")
        if key in answered:
            self.send(200, answered[key])
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            args = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self.answer(400, {"detail": "the body is not JSON"})
            return
        city = args.get("city")
        if not isinstance(city, str) or not city:
            self.answer(422, {"detail": "`city` must be a non-empty string"})
            return
        body = json.dumps({"city": city, "tomorrow": "sunny", "high_c": 23}).encode()
        if key:
            answered[key] = body
        self.send(200, body)

    def answer(self, status: int, value: dict) -> None:
        self.send(status, json.dumps(value).encode())

    def send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"ready on http://{args.host}:{args.port}/weather", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
