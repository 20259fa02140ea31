"""The `orchestrator` command."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from config.settings import Settings
from server.logs import configure as configure_logging
from server.logs import quiet_progress_bars


def _serve(args: argparse.Namespace) -> None:
    quiet_progress_bars()  # before the imports: tqdm reads TQDM_DISABLE when it is imported
    from server.app import create_app

    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    settings = Settings(**overrides)
    problem = workers_problem(args.workers, settings)
    if problem:
        raise SystemExit(f"serve: {problem}")
    configure_logging(settings.log_level, settings.log_format)
    # uvicorn's own access log is off: RequestLog writes one structured line per request instead.
    # Several workers: each process builds its own app (and runtime) from the same environment.
    several = args.workers > 1
    uvicorn.run("server.app:create_app" if several else create_app(settings), factory=several,
                workers=args.workers if several else None, host=settings.host, port=settings.port,
                log_level=settings.log_level, log_config=None, access_log=False, timeout_graceful_shutdown=10)


def workers_problem(workers: int, settings: Settings) -> str | None:
    """Why `--workers N` cannot run with these settings, or None. Several processes need storage they can share:
    DATABASE_URL (Postgres) and CHROMA_URL (a Chroma server); the embedded SQLite files and Chroma directory
    belong to one process (a second one is refused by their directory locks)."""
    if workers < 1:
        return "--workers must be 1 or more"
    missing = [name for name, value in (("DATABASE_URL", settings.database_url), ("CHROMA_URL", settings.chroma_url))
               if not value]
    if workers > 1 and missing:
        return (f"--workers {workers} needs storage the workers share: set {' and '.join(missing)} (Postgres and a "
                "Chroma server; see the README's \"Several workers\"). The embedded SQLite files and Chroma "
                "directory belong to one process.")
    return None


def _inference(args: argparse.Namespace) -> None:
    from inference.local_node import LocalInferenceNode

    settings = Settings()
    node = LocalInferenceNode(settings.local_model_path, settings.local_context_tokens, settings.local_threads,
                              host=args.host, port=args.port)
    print(f"embedded inference node ({node.model.name}) on {node.base_url}; Ctrl-C stops it", flush=True)
    node.start()
    assert node.proc is not None  # started
    try:
        node.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()


def _chat(args: argparse.Namespace) -> None:
    from server.client_cli import chat, default_base_url

    raise SystemExit(chat(args.base_url or default_base_url(), args.session, args.project, args.stream,
                          args.api_key))


def _e2e(args: argparse.Namespace) -> None:
    from server.client_cli import default_base_url, e2e

    raise SystemExit(e2e(args.base_url or default_base_url()))


def _compact(args: argparse.Namespace) -> None:
    from server.compact import compact

    settings = Settings()
    keep = args.keep if args.keep is not None else settings.checkpoints_kept
    if keep < 1:
        raise SystemExit("compact needs --keep 1 or more (CHECKPOINTS_KEPT is 0: retention is off)")
    try:
        report = compact(settings, keep, vacuum=not args.no_vacuum)
    except (RuntimeError, FileNotFoundError) as exc:
        raise SystemExit(f"compact: {exc}") from None
    print(f"{report.threads} sessions, {report.checkpoints_deleted} checkpoints deleted; "
          f"{report.bytes_before:,} -> {report.bytes_after:,} bytes on disk, {report.bytes_freed:,} bytes freed")


def _reembed(args: argparse.Namespace) -> None:
    from server.reembed import reembed

    try:
        report = reembed(Settings())
    except RuntimeError as exc:
        raise SystemExit(f"reembed: {exc}") from None
    print(f"{report.episodes} episodes and {report.entities} entities embedded with {report.model} "
          f"(was {report.previous or 'not recorded'})")


def _dialogues(args: argparse.Namespace) -> None:
    from server.dialogues.cli import in_process, run

    def follow(base_url: str) -> int:
        return run(base_url, args.topics, args.turns, args.out, args.format, args.participants)

    raise SystemExit(in_process(follow) if args.in_process else follow(args.base_url))


def _import(args: argparse.Namespace) -> None:
    from server.client_cli import default_base_url
    from server.import_cli import run

    raise SystemExit(run(args.base_url or default_base_url(), args.file, args.session, args.project, args.api_key))


def _migrate(args: argparse.Namespace) -> None:
    from server.migrate import migrate

    if args.quiet:
        quiet_progress_bars()
    settings = Settings()
    chroma_dir = args.chroma_dir or settings.chroma_dir
    moved = migrate(args.from_sqlite, chroma_dir, settings)
    print(moved.summary())


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="orchestrator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the HTTP service")
    serve.add_argument("--host", default=None, help="interface to bind (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes on the port (more than 1 needs "
                       "DATABASE_URL and CHROMA_URL)")
    serve.set_defaults(func=_serve)
    inference = commands.add_parser("inference", help="run the embedded llama.cpp node alone (two-machine set-ups)")
    inference.add_argument("--host", default="127.0.0.1")
    inference.add_argument("--port", type=int, default=8080)
    inference.set_defaults(func=_inference)
    repl = commands.add_parser("chat", help="chat with a running service from the terminal")
    service_url = "the service's URL (default: http://HOST:PORT as the service is configured, .env included)"
    repl.add_argument("--base-url", default=None, help=service_url)
    repl.add_argument("--session", default=None, help="session id (default: a new one)")
    repl.add_argument("--project", default=None, help="project id (X-Project-Id)")
    repl.add_argument("--api-key", default=os.environ.get("ORCHESTRATOR_API_KEY"),
                      help="a key of the service's API_KEYS (default: $ORCHESTRATOR_API_KEY)")
    repl.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                      help="print the reply as it arrives (default); Ctrl-C cancels a streamed reply")
    repl.set_defaults(func=_chat)
    check = commands.add_parser("e2e", help="check a running service end to end; exit 1 on failure")
    check.add_argument("--base-url", default=None, help=service_url)
    check.set_defaults(func=_e2e)
    shrink = commands.add_parser("compact", help="prune an existing checkpoint store to CHECKPOINTS_KEPT per "
                                 "session and shrink the file (service stopped)")
    shrink.add_argument("--keep", type=int, default=None, help="checkpoints kept per session (default: "
                        "CHECKPOINTS_KEPT)")
    shrink.add_argument("--no-vacuum", action="store_true", help="prune only; freed pages are reused, the file "
                        "does not shrink")
    shrink.set_defaults(func=_compact)
    again = commands.add_parser("reembed", help="service stopped: embed the memory store again with "
                                "EMBEDDING_MODEL_PATH's model (after changing it)")
    again.set_defaults(func=_reembed)
    talk = commands.add_parser("dialogues", help="run a batch of synthetic dialogues on a running service")
    talk.add_argument("topics", type=Path, help="a topic a line (or .jsonl: one POST /dialogues body a line)")
    talk.add_argument("--turns", default="4-10", help="MIN-MAX turns (or N), default 4-10")
    talk.add_argument("--out", type=Path, default=Path("dialogues.jsonl"), help="where the export goes")
    talk.add_argument("--format", choices=["openai", "sharegpt"], default="openai")
    talk.add_argument("--participants", type=Path, default=None, help="JSON list of the two participants")
    talk.add_argument("--base-url", default="http://127.0.0.1:8000")
    talk.add_argument("--in-process", action="store_true", help="start the service in this process instead")
    talk.set_defaults(func=_dialogues)
    load = commands.add_parser("import", help="import a conversation (JSONL, or OpenAI {\"messages\": [...]}) "
                                "into a session of a running service, with progress")
    load.add_argument("file", type=Path)
    load.add_argument("--session", required=True, help="the session to import into (created if new)")
    load.add_argument("--project", default=None, help="its project, for a new session")
    load.add_argument("--base-url", default=None, help=service_url)
    load.add_argument("--api-key", default=os.environ.get("ORCHESTRATOR_API_KEY"))
    load.set_defaults(func=_import)
    move = commands.add_parser("migrate", help="move an embedded store (SQLite + Chroma directory, service "
                               "stopped) into the Postgres + Chroma-server profile of DATABASE_URL/CHROMA_URL")
    move.add_argument("--from-sqlite", type=Path, required=True, metavar="DATA_DIR",
                      help="the embedded store's DATA_DIR (memory.db, checkpoints.db, dialogues.db)")
    move.add_argument("--chroma-dir", type=Path, default=None, help="its Chroma directory (default: CHROMA_DIR)")
    move.add_argument("--quiet", action="store_true", help="no progress bars")
    move.set_defaults(func=_migrate)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
