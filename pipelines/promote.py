"""Move the champion alias by a human decision, or roll it back.

    python -m pipelines.promote VERSION [--reason TEXT]   # make VERSION the champion
    python -m pipelines.promote --rollback                # give the alias back to the previous champion
    python -m pipelines.promote --list                    # versions, aliases and why

The training gate promotes automatically only when a model clears the floors and is not worse than
the champion; this command is for the cases where a person decides otherwise. The new champion is
also exported to BentoML's model store (models/lifecycle/bento_store.py), so a service restarted with
``bentoml serve`` serves it; a running service keeps its model until it is restarted.
"""

from __future__ import annotations

import sys

from pipelines import cli


def main(argv: list[str] | None = None) -> int:
    p = cli.parser("promote", __doc__)
    p.add_argument("version", nargs="?", help="registered version to make champion")
    p.add_argument("--reason", default="promoted by hand", help="recorded on the version")
    p.add_argument("--rollback", action="store_true", help="restore the previous champion")
    p.add_argument("--list", action="store_true", help="list versions with their aliases and tags")
    p.add_argument("--model", help="registered model name (default from settings: alliance-risk)")
    args = p.parse_args(argv)
    if sum(bool(x) for x in (args.version, args.rollback, args.list)) != 1:
        p.error("give exactly one of VERSION, --rollback or --list")

    from mlflow.exceptions import MlflowException

    from models.lifecycle import registry
    from models.lifecycle.store import get_client

    settings, code = cli.settings_or_exit(cli.console(stderr=True), args.config)
    if settings is None:
        return code
    name = args.model or settings.train.registered_model
    client = get_client(settings.tracking_uri)
    try:
        if args.list:
            versions = sorted(
                client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)
            )
            if not versions:
                print(f"{name} has no registered versions; run: python -m pipelines.train")
            for v in versions:
                full = client.get_model_version(name, v.version)
                tags = {k: t for k, t in (full.tags or {}).items() if k.endswith("reason")}
                print(f"version {v.version}  aliases={','.join(full.aliases) or '-'}  {tags}")
            return 0
        if args.rollback:
            restored = registry.rollback(client, name)
            print(f"champion of {name} rolled back to version {restored}")
            return _export(settings.tracking_uri, name)
        client.get_model_version(name, args.version)  # fails clearly if it does not exist
        registry.set_champion(client, name, args.version, args.reason)
        print(f"version {args.version} of {name} is now the champion ({args.reason})")
        return _export(settings.tracking_uri, name)
    except LookupError as exc:
        print(f"cannot roll back: {exc}", file=sys.stderr)
        return 1
    except MlflowException as exc:
        print(f"registry error: {exc.message}", file=sys.stderr)
        return 1


def _export(tracking_uri: str, name: str) -> int:
    """The new champion into BentoML's model store (models/lifecycle/bento_store.py), where a service
    started without ``pipelines.serve`` finds it. The registry has moved either way: a failed
    export is reported, and the next ``pipelines.serve`` exports it."""
    from models.lifecycle.bento_store import store_path, sync

    try:
        sync(tracking_uri, name)
    except Exception as exc:  # the alias has moved; only the copy for BentoML is missing
        print(
            f"warning: not exported to BentoML's model store {store_path()} ({exc}); "
            "`python -m pipelines.serve` exports it at its next start",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
