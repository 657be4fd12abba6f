"""``edgekit deploy``: the workstation command that ships a bundle to a device and runs it there.

``edgekit.cli`` names :func:`add_deploy` in its registry and imports this module only
when ``deploy`` is chosen; what it ships is ``edgekit/`` alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from device_runners.deploy import DEFAULT_REMOTE_DIR, DEFAULT_REMOTE_PYTHON
from edgekit.cli import add_runtime_args, dev_default


def cmd_deploy(args: argparse.Namespace) -> int:
    from device_runners.deploy import DeployConfig, deploy, target_for

    target = target_for(args.target, args.identity, args.ssh_option, args.user)
    config = DeployConfig(
        limit=args.limit,
        threads=args.threads,
        low_memory=args.low_memory,
        warmup=args.warmup,
        remote_dir=args.remote_dir,
        remote_python=args.remote_python,
        fresh=args.fresh,
    )
    report = deploy(target, args.bundle, args.dataset, args.out, config)
    print(f"{report.target}: pushed {len(report.pushed)} files, skipped {len(report.skipped)}; results in {args.out}")
    return 0


def add_deploy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        help="push a bundle to a Raspberry Pi or phone, run it there, pull the results",
        description="Copy the runner, a bundle and a SQuAD file to a device over ssh (or adb + Termux sshd), "
        "skipping files already there; run `edgekit run` on the device, streaming its progress; copy "
        "predictions and metrics.json back. Deploying again with the same arguments resumes an interrupted run.",
    )
    p.add_argument("target", help="ssh://[user@]host[:port], adb or adb:SERIAL (forwards to Termux sshd on 8022)")
    p.add_argument("bundle", type=Path, help="edge bundle directory")
    p.add_argument("--dataset", type=Path, default=dev_default(), help="SQuAD v1.1 JSON (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="local directory for the results")
    p.add_argument("--limit", type=int, default=None, help="only the first N questions")
    p.add_argument(
        "--warmup", type=int, default=3, help="untimed warm-up runs on the device before measuring (default: 3)"
    )
    p.add_argument(
        "--remote-dir", default=DEFAULT_REMOTE_DIR, help="working directory on the device (default: %(default)s)"
    )
    p.add_argument(
        "--remote-python",
        default=DEFAULT_REMOTE_PYTHON,
        help="Python on the device with the runner's packages (default: %(default)s, made by the setup scripts)",
    )
    p.add_argument("--user", default=None, help="login name when the target has none (adb: Termux's user)")
    p.add_argument("-i", "--identity", type=Path, default=None, help="ssh private key")
    p.add_argument("--ssh-option", action="append", default=[], metavar="OPT", help="extra ssh -o option (repeatable)")
    p.add_argument("--fresh", action="store_true", help="discard an earlier remote run of the same settings")
    add_runtime_args(p)
    p.set_defaults(func=cmd_deploy)
