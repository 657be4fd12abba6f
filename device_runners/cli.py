"""``edgekit deploy``: the workstation command that ships a bundle to a device and runs it there.

``edgekit.cli`` names :func:`add_deploy` in its registry and imports this module only
when ``deploy`` is chosen; what it ships is ``edgekit/`` alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgekit.cli import MAX_EXAMPLES, add_runtime_args, dev_default, whole
from edgekit.device_runners.deploy import DEFAULT_REMOTE_DIR, DEFAULT_REMOTE_PYTHON
from edgekit.errors import EdgekitError


def add_device_args(p: argparse.ArgumentParser) -> None:
    """How a device is reached and where edgekit lives on it: the same flags for ``deploy`` and ``fit``."""
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


def cmd_deploy(args: argparse.Namespace) -> int:
    from edgekit.device_runners.deploy import (
        DeployConfig,
        SshTarget,
        check_user,
        deploy,
        deploy_fleet,
        read_targets,
        target_for,
    )

    specs = [*args.targets, *(read_targets(args.targets_file) if args.targets_file else [])]
    config = DeployConfig(
        limit=args.limit,
        threads=args.threads,
        low_memory=args.low_memory,
        spin=args.spin,
        backend=args.backend,
        split=args.split,
        warmup=args.warmup,
        remote_dir=args.remote_dir,
        remote_python=args.remote_python,
        fresh=args.fresh,
    )
    if len(specs) == 1 and not args.targets_file:
        report = deploy(
            target_for(specs[0], args.identity, args.ssh_option, args.user), args.bundle, args.dataset, args.out, config
        )
        print(
            f"{report.target}: pushed {len(report.pushed)} files, skipped {len(report.skipped)}; results in {args.out}"
        )
        return 0
    if not specs:
        raise EdgekitError(
            f"edgekit deploy: expected a TARGET or a --targets-file with at least one ({args.targets_file})"
        )
    if args.user is not None:
        check_user(args.user, "--user")

    def resolve(spec: str) -> SshTarget:
        return target_for(spec, args.identity, args.ssh_option, args.user)

    results = deploy_fleet(specs, resolve, args.bundle, args.dataset, args.out, config, jobs=args.jobs)
    for r in results:
        print(r.summary())
    failed = [r for r in results if r.report is None]
    print(
        f"{len(results) - len(failed)} of {len(results)} devices finished; results in {args.out} (edgekit report {args.out})"
    )
    return max((r.exit_code for r in failed), default=0)


def add_deploy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        help="push a bundle to a Raspberry Pi or phone, run it there, pull the results",
        description="Copy the runner, a bundle and a SQuAD file to a device over ssh (or adb + Termux sshd), "
        "skipping files already there; run `edgekit run` on the device, streaming its progress; copy "
        "predictions and metrics.json back. Deploying again with the same arguments resumes an interrupted run. "
        "Several targets (or --targets-file) are a fleet: all at once, one summary line per device, and a device "
        "that fails does not stop the others.",
    )
    p.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="ssh://[user@]host[:port][/remote/dir], adb or adb:SERIAL (forwards to Termux sshd on 8022); several: a fleet, "
        "deployed in parallel, each device's results in --out/<target>",
    )
    p.add_argument("bundle", type=Path, help="edge bundle directory")
    p.add_argument(
        "--dataset",
        type=Path,
        default=dev_default(),
        help="the bundle's task's dataset: SQuAD v1.1 JSON (default: %(default)s; packaged:dev, the shipped excerpt), "
        "a classification TSV or CLINC150 JSON (packaged:clinc150); other formats: edgekit export dataset first",
    )
    p.add_argument("--split", default=None, help="the split of a file holding several (CLINC150: train, val, test)")
    p.add_argument("--out", type=Path, required=True, help="local directory for the results")
    p.add_argument("--limit", type=whole(1, MAX_EXAMPLES), default=None, help="only the first N questions (examples)")
    p.add_argument(
        "--warmup",
        type=whole(0, 10_000),
        default=3,
        help="untimed warm-up runs on the device before measuring (default: 3)",
    )
    add_device_args(p)
    p.add_argument("--fresh", action="store_true", help="discard an earlier remote run of the same settings")
    p.add_argument(
        "--targets-file", type=Path, default=None, help="more targets, one per line (# comments); implies a fleet"
    )
    p.add_argument(
        "--jobs", type=whole(1, 1024), default=None, help="devices deployed at once in a fleet (default: all)"
    )
    add_runtime_args(p)
    p.set_defaults(func=cmd_deploy, resumes=True)
