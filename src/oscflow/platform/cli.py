"""Platform commands of ``oscflow`` (their arguments are positional words, options and
``key=value`` overrides of ``conf/platform.yaml``):

  oscflow up | down | status [--json]        the local stack (stack=team: team backends);
                                             later commands use the settings `up` saved
  oscflow intake | worker                              one part, in the foreground
  oscflow reconcile [--json]                           one reconciler pass
  oscflow register-webhook                             create/update the MLflow webhook
  oscflow registry promote NAME VERSION [--alias A] [--pair W] [--force --reason TEXT]
  oscflow registry show NAME [--json]
  oscflow registry wait NAME [VERSION|@ALIAS]          wait for the downstream runs, print them
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import ExitCode, OscflowError, UsageError, one_paragraph

COMMANDS = ("up", "down", "status", "intake", "worker", "reconcile", "register-webhook", "registry")
FLAGS = {"--json", "--force"}
VALUED = {"--alias": "registry.alias", "--reason": "registry.reason", "--pair": "registry.pair"}


def _split(args: Sequence[str]) -> tuple[list[str], set[str], list[str]]:
    """Positional words, flags, and overrides (``--alias X`` becomes registry.alias=X)."""
    words: list[str] = []
    flags: set[str] = set()
    overrides: list[str] = []
    it = iter(args)
    for arg in it:
        if arg in VALUED:
            value = next(it, None)
            if value is None:
                raise OscflowError(f"{arg} needs a value")
            overrides.append(f"{VALUED[arg]}={json.dumps(value)}")
        elif arg in FLAGS:
            flags.add(arg)
        elif arg.startswith("--"):
            raise UsageError(
                f"unknown option {arg}. Fix: use {', '.join(sorted(FLAGS | set(VALUED)))}"
            )
        elif "=" in arg:
            overrides.append(arg)
        else:
            words.append(arg)
    return words, flags, overrides


def _registry_overrides(words: list[str], flags: set[str]) -> tuple[str, list[str]]:
    if not words or words[0] not in ("promote", "show", "wait"):
        raise UsageError("usage: oscflow registry promote|show|wait NAME [VERSION] ...")
    action, rest = words[0], words[1:]
    out = []
    if rest:
        out.append(f"registry.name={rest[0]}")
    if len(rest) > 1:
        target = rest[1]
        if target.startswith("@"):
            out.append(f"registry.alias={target[1:]}")
        else:
            out.append(f"registry.version={json.dumps(target)}")
    if action == "promote" and len(rest) < 2:
        raise UsageError("usage: oscflow registry promote NAME VERSION [--alias champion]")
    if "--force" in flags:
        out.append("registry.force=true")
    return action, out


def main(command: str, args: Sequence[str]) -> int:
    from ..config import load

    try:
        words, flags, overrides = _split(args)
        action = None
        if command == "registry":
            action, extra = _registry_overrides(words, flags)
            overrides = extra + overrides
        elif words:
            raise UsageError(f"unexpected argument {words[0]!r}. Fix: give key=value overrides")
        cfg = load("platform", overrides)
        result = _run(command, action, cfg, overrides)
    except OscflowError as exc:
        print(f"oscflow {command}: error: {one_paragraph(str(exc))}", file=sys.stderr)
        return int(exc.exit_code)
    if result is None:
        return 0
    if "--json" in flags:
        print(json.dumps(result, default=str))
    else:
        print(_human(command, action, result))
    if command == "status":
        return 0 if result["healthy"] else int(ExitCode.NOT_READY)
    if command == "registry" and action == "wait":
        return 0 if result["complete"] else int(ExitCode.NOT_READY)
    return 0


def _run(command: str, action: str | None, cfg: Any, overrides: list[str]) -> dict[str, Any] | None:
    from . import stack

    if command == "up":
        return stack.up(cfg, overrides)
    if command == "down":
        return stack.down(cfg)
    if command == "status":
        return stack.status(cfg, overrides)
    if command not in ("intake", "worker"):  # `up` gives those two the stack's overrides
        # the stack `up` saved, not whatever this command's defaults say
        cfg, overrides = stack.resolve(cfg, overrides, command)
    if command == "register-webhook":
        return stack.register_webhook(cfg)
    if command == "intake":
        from ..events.intake import serve

        serve(cfg)
        return None
    if command == "worker":
        from ..events.worker import run_worker

        run_worker(cfg)
        return None
    if command == "reconcile":
        from ..events.queue import Queue
        from ..events.reconciler import reconcile

        return reconcile(Queue(cfg))
    from ..registry import promotion

    if action == "promote":
        return promotion.promote(cfg)
    if action == "show":
        return promotion.show(cfg)
    from .wait import wait_for_services

    return wait_for_services(cfg)


def _human(command: str, action: str | None, result: dict[str, Any]) -> str:
    from . import stack

    if command == "status":
        return stack.format_status(result)
    if command == "down":
        return "oscflow down\n" + "\n".join(
            f"  {k:<7} {v}" for k, v in result["components"].items()
        )
    if command == "up":
        parts = "\n".join(f"  {k:<7} {v}" for k, v in result["components"].items())
        return (
            f"oscflow stack up in {result['seconds']} s\n{parts}\n"
            + stack.format_s3(result.get("s3"))
            + f"  webhook {result['webhook']['action']}: {result['webhook']['url']}\n"
            f"MLflow UI: {result['ui']}\n"
            + (f"training runs: {result['training_ui']}\n" if result.get("training_ui") else "")
            + f"Use it with:  {result['export']}"
        )
    if command == "registry" and action == "show":
        from ..registry.promotion import format_show

        return format_show(result)
    if command == "registry" and action == "promote":
        gates = "\n".join(
            f"  {'ok ' if g['passed'] else 'NO '}{g['gate']} = {g['value']} ({g['bound']})"
            for g in result["gates"]
        )
        forced = f"  FORCED: {result['reason']}\n" if result["forced"] else ""
        pair = result.get("pair")
        paired = (
            f"  pair: v{pair['version']} ({pair['orderings'][pair['version']]} ordering)\n"
            if pair
            else ""
        )
        return (
            f"{result['model']} v{result['version']} -> @{result['alias']}\n{paired}{forced}{gates}"
        )
    if command == "registry" and action == "wait":
        from .wait import format_wait

        return format_wait(result)
    return json.dumps(result, indent=2, default=str)
