"""What every command line shares: flag names, path resolution, --config, --version, progress.

Why one module: the five data commands (simulate, validate, train, score, monitor) read alike only
if their flags come from one place. An input folder or file is always ``--input`` and an output
is always ``--output``; the spellings documented before (train's ``--data``, simulate's and
monitor's ``--out``, validate's ``--report-dir``, monitor's ``--current``) stay as aliases.

Paths: every path a user types is resolved against the working directory at once
(``Path.expanduser().resolve()``), so a relative path means the same thing in every command and
libraries that need an absolute path (Great Expectations' Data Docs store) get one. Defaults are
shown relative (``--help`` never prints this machine's folders) and resolved the same way.

Only argparse and the standard library are imported here, so ``--help`` and ``--version`` answer
without loading pandas, MLflow or Great Expectations.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

PROG = "alliance-risk"


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("alliance-risk")
    except PackageNotFoundError:  # a checkout used without `pip install -e .`
        return "unknown (not installed)"


def resolve(value: str | Path) -> Path:
    """A path typed on the command line, absolute against the working directory."""
    return Path(value).expanduser().resolve()


def path_arg(value: str) -> Path:
    """argparse ``type=`` for every path flag."""
    if not str(value).strip():
        raise argparse.ArgumentTypeError("empty path")
    return resolve(value)


def parser(name: str, description: str, raw: bool = True) -> argparse.ArgumentParser:
    """A command's parser with --version and --config, as every command has them."""
    p = argparse.ArgumentParser(
        prog=f"python -m pipelines.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s ({PROG} {version()})")
    p.add_argument(
        "--config",
        type=path_arg,
        metavar="FILE",
        help="TOML settings file (sections label, validation, bands, train, monitor, serving); "
        "environment variables ALLIANCE_RISK_<SECTION>__<KEY> override it, flags override both",
    )
    return p


def add_path(
    p: argparse.ArgumentParser,
    help: str,
    aliases: tuple[str, ...] = (),
    required: bool = False,
    metavar: str = "PATH",
    default: str | None = None,
    *,
    name: str,
) -> None:
    """A ``--<name>`` path option; a relative ``default`` is shown as typed and resolved against
    the working folder."""
    p.add_argument(
        f"--{name}",
        *aliases,
        dest=name,
        type=path_arg,
        required=required,
        metavar=metavar,
        default=default,
        help=help,
    )


add_input = functools.partial(add_path, name="input")
add_output = functools.partial(add_path, name="output")


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress display")


def console(stderr: bool = False):
    """A rich console; 160 columns when not a terminal, so logs are not broken mid-line."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=160)


def steps(con, quiet: bool = False):
    """A rich progress display of named steps (spinner, description, elapsed time).

    Use: ``with steps(con) as s: t = s.start("reading"); ...; s.done(t, "read 5 tables")``.
    """
    return _Steps(con, quiet)


class _Steps:
    def __init__(self, con, quiet: bool) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=con,
            transient=False,
            disable=quiet,
        )

    def __enter__(self) -> _Steps:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start(self, text: str):
        return self.progress.add_task(text, total=1)

    def done(self, task, text: str) -> None:
        self.progress.update(task, completed=1, description=text)

    def stop(self) -> None:
        self.progress.stop()


def settings_or_exit(con, config: Path | None, code: int = 2, **overrides):
    """load_settings, or (None, exit code) after printing the configuration error."""
    from features.settings import load_settings

    try:
        return load_settings(config, **overrides), 0
    except (FileNotFoundError, ValueError) as exc:
        con.print(f"configuration error: {exc}", style="bold red", markup=False, highlight=False)
        return None, code
