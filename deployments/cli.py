"""`studio`: the command-line channel of deployments (a console script; plain httpx, no Django).

    studio execute NAME --input field=value ... [--input field:=<json>] | --json '{...}'
                   [--url URL] [--key KEY] [--stream]
    studio describe NAME [--url URL] [--key KEY]
    studio deployments list [--url URL] [--token JWT] [--status running|stopped]

URL, deployment key and access token default to STUDIO_URL, STUDIO_API_KEY and STUDIO_TOKEN.
`--input field=value` passes a string; `--input field:=value` passes JSON (numbers, booleans,
arrays, objects). Outputs are printed as JSON on stdout; progress (`--stream`) and errors go to
stderr. Exit status: 0 done, 1 the call or run failed, 2 wrong usage, 3 the server is unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
CHANNEL_HEADER = "X-Studio-Channel"
EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 1, 2, 3
STREAM_RESUMES = 3


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# --- arguments -----------------------------------------------------------------------------------


def parse_inputs(pairs: Sequence[str], raw_json: str | None) -> dict[str, Any]:
    """The call's inputs from `--json` and/or `--input` pairs (pairs win over the JSON's fields)."""
    inputs: dict[str, Any] = {}
    if raw_json is not None:
        try:
            inputs = json.loads(raw_json)
        except ValueError as exc:
            raise CliError(f"--json is not valid JSON: {exc}", EXIT_USAGE) from None
        if not isinstance(inputs, dict):
            raise CliError("--json must be a JSON object", EXIT_USAGE)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.rstrip(":"):
            raise CliError(f"--input {pair!r}: expected field=value or field:=json", EXIT_USAGE)
        if name.endswith(":"):
            try:
                inputs[name[:-1]] = json.loads(value)
            except ValueError as exc:
                raise CliError(f"--input {pair!r}: the value is not valid JSON ({exc})", EXIT_USAGE) from None
        else:
            inputs[name] = value
    return inputs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studio",
        description="Call Kaizen Studio deployments from the command line.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Environment: STUDIO_URL, STUDIO_API_KEY (deployment key), STUDIO_TOKEN (access token).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def server_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--url", default=os.environ.get("STUDIO_URL", DEFAULT_URL), help="studio URL")
        command.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")

    execute = commands.add_parser("execute", help="call a deployment and print its outputs as JSON")
    execute.add_argument("name", help="the deployment's name")
    execute.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="an input (repeatable); FIELD:=JSON for a non-string value",
    )
    execute.add_argument("--json", dest="raw_json", metavar="JSON", help="all inputs as a JSON object")
    execute.add_argument("--key", default=os.environ.get("STUDIO_API_KEY"), help="deployment key")
    execute.add_argument("--stream", action="store_true", help="follow the run's progress on stderr")
    server_options(execute)

    describe = commands.add_parser("describe", help="print a deployment's input and output schemas")
    describe.add_argument("name")
    describe.add_argument("--key", default=os.environ.get("STUDIO_API_KEY"), help="deployment key")
    server_options(describe)

    deployments = commands.add_parser("deployments", help="manage deployments (with an access token)")
    deployment_commands = deployments.add_subparsers(dest="action", required=True)
    listing = deployment_commands.add_parser("list", help="list your organization's deployments")
    listing.add_argument("--token", default=os.environ.get("STUDIO_TOKEN"), help="access token (JWT)")
    listing.add_argument("--status", choices=["running", "stopped"])
    server_options(listing)
    return parser


# --- HTTP ----------------------------------------------------------------------------------------


def _client(args, *, key: str | None = None, token: str | None = None) -> httpx.Client:
    secret = key or token
    if not secret:
        what = "a deployment key (--key or STUDIO_API_KEY)" if token is None else "an access token"
        raise CliError(f"missing {what}", EXIT_USAGE)
    return httpx.Client(
        base_url=args.url.rstrip("/"),
        headers={"Authorization": f"Bearer {secret}", CHANNEL_HEADER: "cli", "User-Agent": "studio-cli"},
        timeout=httpx.Timeout(args.timeout, connect=10.0),
    )


def _describe_error(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:300]}"
    message = f"{error.get('message')} ({error.get('code')}, HTTP {response.status_code})"
    fields = {k: v for k, v in (error.get("fields") or {}).items() if k not in ("run_id", "trace_id")}
    details = "".join(f"\n  {name}: {problem}" for name, problem in fields.items())
    if "Retry-After" in response.headers:
        details += f"\n  retry after {response.headers['Retry-After']} s"
    if (error.get("fields") or {}).get("run_id"):
        details += f"\n  run {error['fields']['run_id']}"
    return message + details


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise CliError(_describe_error(response))
    return response.json()


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# --- commands ------------------------------------------------------------------------------------


def execute(args) -> int:
    inputs = parse_inputs(args.input, args.raw_json)
    with _client(args, key=args.key) as client:
        if not args.stream:
            result = _checked(client.post(f"/workflows/{args.name}/execute", json={"inputs": inputs}))
            _print_json(result["outputs"])
            return 0
        started = _checked(
            client.post(f"/workflows/{args.name}/execute", params={"async": "1"}, json={"inputs": inputs})
        )
        return _follow(client, started["events_url"], started["run_id"])


def _follow(client: httpx.Client, events_url: str, run_id: str) -> int:
    """Prints the run's progress on stderr as its events arrive; the outputs on stdout at the end.
    A dropped stream is resumed after the last event seen."""
    progress = Progress(sys.stderr)
    after_seq = 0
    for _attempt in range(STREAM_RESUMES + 1):
        try:
            for event in _events(client, events_url, after_seq):
                after_seq = event["seq"]
                progress.show(event)
                if event["type"] == "run.completed":
                    _print_json(event["data"].get("output"))
                    return 0
                if event["type"] == "run.failed":
                    error = event["data"].get("error") or {}
                    raise CliError(f"{error.get('message')} ({error.get('code')}); run {run_id}")
        except httpx.TransportError:
            continue
    raise CliError(f"lost the event stream of run {run_id}", EXIT_UNREACHABLE)


def _events(client: httpx.Client, url: str, after_seq: int) -> Iterator[dict[str, Any]]:
    """Server-sent events of a run, parsed (`data` lines are JSON event frames)."""
    with client.stream("GET", url, params={"after_seq": after_seq}) as response:
        if response.status_code >= 400:
            response.read()
            raise CliError(_describe_error(response))
        data: list[str] = []
        for line in response.iter_lines():
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                yield json.loads("\n".join(data))
                data = []


class Progress:
    """A line per step of the run on stderr; streamed model text is written as it comes."""

    def __init__(self, out):
        self.out = out
        self.mid_line = False
        self.names: dict[str, str] = {}  # agent id -> name, from agent.started

    def show(self, event: dict[str, Any]) -> None:
        kind, data = event["type"], event.get("data") or {}
        if kind == "agent.started" and event.get("agent_id"):
            self.names[event["agent_id"]] = data.get("name") or event["agent_id"]
        if kind == "llm.delta":
            self.out.write(data.get("text", ""))
            self.mid_line = True
        else:
            line = self._line(kind, data, self.names.get(event.get("agent_id") or "", event.get("agent_id")))
            if line:
                if self.mid_line:
                    self.out.write("\n")
                    self.mid_line = False
                self.out.write(line + "\n")
        self.out.flush()

    @staticmethod
    def _line(kind: str, data: dict[str, Any], agent: str | None) -> str | None:
        error = (data.get("error") or {}).get("message", "")
        if kind == "run.started":
            return "» run started"
        if kind == "agent.started":
            return f"  · {agent} started"
        if kind == "agent.completed":
            return f"  ✓ {agent} completed ({(data.get('tokens') or {}).get('total', 0)} tokens)"
        if kind == "agent.failed":
            return f"  ✗ {agent} failed: {error}"
        if kind == "pattern.step":
            return f"  ▸ {data.get('pattern', '')} {data.get('step', '')} {data.get('agent', '')}".rstrip()
        if kind == "run.completed":
            tokens = (data.get("tokens") or {}).get("total", 0)
            return f"» run completed in {data.get('execution_time_ms')} ms, {tokens} tokens"
        if kind == "run.failed":
            return f"» run failed: {error}"
        return None


def describe(args) -> int:
    with _client(args, key=args.key) as client:
        _print_json(_checked(client.get(f"/workflows/{args.name}")))
    return 0


def deployments_list(args) -> int:
    with _client(args, token=args.token) as client:
        params = {"limit": 100, **({"status": args.status} if args.status else {})}
        page = _checked(client.get("/api/deployments", params=params))
    rows = [
        (d["name"], d["status"], d["kind"], d.get("pinned_version") or "", d.get("api_url") or "-")
        for d in page["results"]
    ]
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(HEADERS)]
    for row in [HEADERS, *rows]:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
    if page["count"] > len(rows):
        print(f"... {page['count'] - len(rows)} more", file=sys.stderr)
    return 0


HEADERS = ("NAME", "STATUS", "KIND", "VERSION", "API URL")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {"execute": execute, "describe": describe, "deployments": deployments_list}[args.command]
    try:
        return handler(args)
    except CliError as error:
        print(f"studio: error: {error.message}", file=sys.stderr)
        return error.exit_code
    except httpx.TransportError as error:
        print(f"studio: error: cannot reach {args.url}: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
