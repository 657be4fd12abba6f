"""Deploy a bundle to a device, run the runner there, and bring the results back.

Targets:

- ``ssh://[user@]host[:port]``: a Raspberry Pi, any Linux box, or an Android phone
  running Termux's ``sshd``. Uses the real ``ssh`` binary; every remote command is
  built from an argument list with :func:`shlex.quote`, so paths with spaces or
  quotes reach the device as one argument and cannot inject shell syntax.
- ``adb[:SERIAL]``: an Android phone on USB. ``adb forward`` maps a free local port
  to Termux's sshd (port 8022 on the phone) and the rest is the ssh path, so the
  phone runs exactly the code the Pi runs.

What travels: the ``edgekit`` package itself (pure Python, so the device runs the
workstation's runner version), the bundle, and the dataset. Files whose sha256 is
already on the device are skipped. The remote run directory is named after the
bundle's model hash, the dataset hash, the question limit and the measuring settings,
so deploying again after an interruption resumes the remote ``predictions.jsonl``
instead of starting over. Results come back into ``--out`` as the usual runner files
plus ``deploy.json``, and only when they carry this deploy's run id: an earlier run's
``metrics.json`` left on the device is never passed off as this one's.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Literal

import edgekit
from edgekit.atomic import open_in_place, write_json
from edgekit.backends import RuntimeOptions, check_format, open_backend
from edgekit.bundle import load_bundle, sha256_file
from edgekit.destination import DEPLOY, FLEET, claim
from edgekit.errors import DeviceError, EdgekitError, InputError
from edgekit.jsonfile import READ_BACK_BYTES, from_json, loads, read_bytes, read_json
from edgekit.result import check_metrics, read_metrics
from edgekit.runner import RunConfig
from edgekit.squad import resolve_data_path
from edgekit.tasks import get_task

RESULT_FILES = ("metrics.json", "predictions.json", "predictions.jsonl", "run.json")
# per result file: a whole SQuAD dev run's log is about 2 MB; anything far beyond is not a runner's output
MAX_RESULT_BYTES = 256 << 20
DEFAULT_REMOTE_DIR = "~/edgekit-deploy"
DEFAULT_REMOTE_PYTHON = "~/edgekit-venv/bin/python"  # what device_runners/*/setup.sh creates
TERMUX_SSHD_PORT = 8022


@dataclass(frozen=True)
class SshTarget:
    """Where the device is and how to log in (key-based; ``BatchMode`` never prompts)."""

    host: str
    user: str | None = None
    port: int | None = None
    identity: Path | None = None
    options: tuple[str, ...] = ()
    remote_dir: str | None = None  # from ssh://host/PATH: this device's working directory, over --remote-dir

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def ssh_argv(self) -> list[str]:
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new"]
        if self.port:
            argv += ["-p", str(self.port)]
        if self.identity:
            argv += ["-i", str(self.identity)]
        for opt in self.options:
            argv += ["-o", opt]
        return [*argv, "--", self.destination]

    def describe(self) -> str:
        return f"ssh://{self.destination}" + (f":{self.port}" if self.port else "")


# Names that can never be read as an option by ssh or adb: no leading '-', no spaces, no shell syntax.
USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_HOST = r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[(?P<ipv6>[0-9A-Fa-f:.]+(?:%[A-Za-z0-9]+)?)\])"
_SSH_RE = re.compile(rf"ssh://(?:(?P<user>[^@/]*)@)?{_HOST}(?::(?P<port>[0-9]+))?(?P<path>/[A-Za-z0-9._~/ -]*)?")
SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
TARGET_FORMS = "ssh://[user@]host[:port][/remote/dir] or adb[:SERIAL]"


def check_user(user: str, spec: str) -> str:
    if not USER_RE.fullmatch(user):
        raise InputError(spec, "user name", "letters, digits, '.', '_' or '-', not starting with '-'")
    return user


def parse_target(spec: str) -> tuple[str, str | None] | SshTarget:
    """``ssh://user@host:port`` -> :class:`SshTarget`; ``adb`` / ``adb:SERIAL`` -> ("adb", serial).

    Strict on purpose: every part reaches ``ssh`` or ``adb`` as an argument, so a user, host or
    serial that could be read as an option (``ssh://-oProxyCommand=...``) is refused here.
    """
    if spec == "adb" or spec.startswith("adb:"):
        serial = spec[4:] or None
        if serial is not None and not SERIAL_RE.fullmatch(serial):
            raise InputError(spec, "adb serial", "letters, digits, '.', ':', '_' or '-', not starting with '-'")
        return ("adb", serial)
    m = _SSH_RE.fullmatch(spec)
    if not m:
        raise InputError(spec, "target", TARGET_FORMS)
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise InputError(spec, "port", f"a port number from 1 to 65535, got {port}")
    user = check_user(m["user"], spec) if m["user"] is not None else None
    remote_dir = m["path"] if m["path"] and m["path"].strip("/") else None
    return SshTarget(host=m["ipv6"] or m["host"], user=user, port=port, remote_dir=remote_dir)


def remote_path(path: str) -> str:
    """Quote a remote path for the device's shell; a leading ``~/`` still means the remote home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def _join(parts: Sequence[str | tuple[str]]) -> str:
    """A shell command line: plain strings are quoted; 1-tuples are remote paths (``~`` kept)."""
    return " ".join(remote_path(p[0]) if isinstance(p, tuple) else shlex.quote(p) for p in parts)


class Remote:
    """Runs commands and moves files over one ssh target."""

    def __init__(self, target: SshTarget) -> None:
        if not shutil.which("ssh"):
            raise EdgekitError("ssh not found: install the OpenSSH client (Debian: openssh-client)")
        self.target = target

    def run(
        self, command: str, stdin: bytes | None = None, capture: bool = True, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Run ``command`` in the device's shell; ``capture=False`` streams its output to this terminal."""
        argv = [*self.target.ssh_argv(), command]
        pipe = subprocess.PIPE if capture else None
        proc = subprocess.run(argv, input=stdin, stdout=pipe, stderr=pipe)
        # what ssh or the device said, on one line: the error is one line
        err = " ".join(proc.stderr.decode(errors="replace").split())[-500:] if capture else "(see above)"
        if not check:
            return proc  # 255 here can also be a remote process killed by a signal; the caller decides
        if proc.returncode == 255:
            raise DeviceError(f"{self.target.describe()}: ssh failed: {err}")
        if proc.returncode != 0:
            raise DeviceError(f"{self.target.describe()}: remote command failed (exit {proc.returncode}): {err}")
        return proc

    def hashes(self, root: str, names: Sequence[str]) -> dict[str, str]:
        """sha256 of those of ``names`` (relative to ``root``) that exist on the device."""
        cmd = f"cd -- {remote_path(root)} 2>/dev/null && sha256sum -- {_join(names)} 2>/dev/null; exit 0"
        out = self.run(cmd).stdout.decode(errors="replace")
        found = {}
        for line in out.splitlines():
            digest, _, name = line.partition("  ")
            if len(digest) == 64:
                found[name] = digest
        return found

    def push(self, root: str, files: dict[str, Path]) -> None:
        """Copy ``files`` (remote name -> local path) under ``root`` in one tar stream."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, path in files.items():
                tar.add(path, arcname=name, recursive=False)
        self.run(f"mkdir -p -- {remote_path(root)} && tar -x -f - -C {remote_path(root)}", stdin=buf.getvalue())

    def pull(self, root: str, names: Sequence[str], dest: Path, limit: int | None = None) -> list[str]:
        """Copy those of ``names`` that exist under ``root`` into ``dest``; returns what came.

        The device's tar stream is read as it arrives, never whole: a member that is not one of ``names``, not
        a plain file or a repeat is skipped, and one larger than ``limit`` bytes (default ``MAX_RESULT_BYTES``)
        stops the pull: a broken or hostile device cannot fill the workstation's memory or disk."""
        cmd = (
            f"cd -- {remote_path(root)} 2>/dev/null || exit 0; for f in {_join(names)}; do "
            '[ -f "$f" ] && printf "%s\\n" "$f"; done | tar -c -f - -T -'
        )
        dest.mkdir(parents=True, exist_ok=True)
        limit = MAX_RESULT_BYTES if limit is None else limit
        got: list[str] = []
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([*self.target.ssh_argv(), cmd], stdout=subprocess.PIPE, stderr=err)
            assert proc.stdout is not None
            try:
                if proc.stdout.peek(1):  # nothing: the run directory was never made
                    got = self._extract(proc.stdout, names, dest, limit)
            except tarfile.TarError as exc:
                raise DeviceError(
                    f"{self.target.describe()}: the results sent back are not a tar stream ({exc})"
                ) from None
            finally:
                proc.stdout.close()
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            if proc.returncode == 255:
                err.seek(0)
                said = " ".join(err.read().decode(errors="replace").split())[-500:]
                raise DeviceError(f"{self.target.describe()}: ssh failed: {said}")
        return got

    def _extract(self, stream: IO[bytes], names: Sequence[str], dest: Path, limit: int) -> list[str]:
        got: list[str] = []
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if member.name not in names or not member.isfile() or member.name in got:
                    continue
                if member.size > limit:
                    raise DeviceError(
                        f"{self.target.describe()}: {member.name} sent back holds {member.size:,} bytes; "
                        f"expected at most {limit:,}"
                    )
                src = tar.extractfile(member)
                assert src is not None
                with open_in_place(dest / member.name, "ab") as fh:  # dest is this pull's own new directory
                    shutil.copyfileobj(src, fh)
                got.append(member.name)
        return got


def adb_forward(serial: str | None, device_port: int = TERMUX_SSHD_PORT) -> int:
    """Forward a free local port to ``device_port`` on the phone; returns the local port."""
    adb = shutil.which("adb")
    if not adb:
        raise EdgekitError("adb not found: install Android platform-tools (Debian: adb)")
    base = [adb] + (["-s", serial] if serial else [])  # serial checked by parse_target: never an option
    proc = subprocess.run([*base, "forward", "tcp:0", f"tcp:{device_port}"], capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.strip().isdigit():
        who = f"device {serial}" if serial else "a device"
        said = " ".join(ln for ln in (proc.stderr + proc.stdout).splitlines() if not ln.startswith("* daemon"))
        raise DeviceError(
            f"adb could not reach {who}: {said.strip()}. Check `adb devices` lists the "
            "phone as 'device' (USB debugging on, this computer authorised)."
        )
    return int(proc.stdout.strip())


@dataclass(frozen=True)
class DeployConfig:
    """What to run on the device and where its files live there."""

    limit: int | None = None
    threads: int | None = None
    low_memory: bool = False
    spin: bool = True
    backend: str | None = None  # the device's runtime (edgekit run --backend); auto: measured there
    split: str | None = None  # the dataset's split, for a file that holds several (edgekit run --split)
    warmup: int = 3
    remote_dir: str = DEFAULT_REMOTE_DIR
    remote_python: str = DEFAULT_REMOTE_PYTHON
    fresh: bool = False
    stream: bool = True  # the runner's progress to this terminal; a fleet keeps each device's to itself


@dataclass
class DeployReport:
    target: str
    remote_run_dir: str
    run_id: str  # given to the remote runner and found in the metrics.json this deploy pulls
    pushed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    pulled: list[str] = field(default_factory=list)
    remote_exit: int | None = None


# installed from a wheel, the workstation side lives inside the edgekit package (edgekit.export,
# edgekit.device_runners); a device gets the device side alone, as from a checkout
WORKSTATION_SUBPACKAGES = ("export", "device_runners")


def shipped_code_files() -> dict[str, Path]:
    """What a device gets of the code: the ``edgekit`` package as it is here (sources and packaged data) without
    the workstation subpackages, nothing else."""
    pkg = Path(edgekit.__file__).parent
    files = {}
    for path in sorted(pkg.rglob("*")):
        rel = path.relative_to(pkg).parts
        if rel[0] in WORKSTATION_SUBPACKAGES or "__pycache__" in rel:
            continue
        if path.is_file() and path.suffix in (".py", ".json", ".md"):
            files[f"code/edgekit/{path.relative_to(pkg).as_posix()}"] = path
    return files


def stage_code(dest: Path) -> Path:
    """Copy exactly the files a deploy ships (:func:`shipped_code_files`) into ``dest``, as ``dest/edgekit/...``."""
    for name, src in shipped_code_files().items():
        target = dest / Path(name).relative_to("code")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    return dest


def deploy(
    target: SshTarget,
    bundle_path: str | Path,
    dataset: str | Path,
    out: str | Path,
    config: DeployConfig | None = None,
) -> DeployReport:
    """Push code, bundle and dataset (skipping what is there), run on the device, pull the results."""
    config = config or DeployConfig()
    # what the device would refuse, refused here, before anything travels
    runtime = RuntimeOptions(config.threads, config.low_memory, config.spin, config.backend)
    RunConfig(limit=config.limit, warmup=config.warmup, runtime=runtime, split=config.split)
    if not config.remote_dir.strip() or not config.remote_python.strip():
        raise InputError(None, "--remote-dir/--remote-python", "a non-empty path on the device")
    if target.identity is not None and not Path(target.identity).is_file():
        raise InputError(target.identity, "-i/--identity", "an existing ssh private key file")
    bundle = load_bundle(bundle_path)  # never ship a bundle that does not verify here: files, then model
    open_backend(bundle, RuntimeOptions())
    check_format(bundle, config.backend)
    dataset = resolve_data_path(str(dataset), Path(dataset))
    m = bundle.manifest
    # a bad dataset is refused here, with its own message, before anything travels
    examples = get_task(m.task).load_examples(dataset, config.split, m)
    data_sha = sha256_file(dataset)
    # what this run's metrics must say of itself: the device cannot pass off another model's or dataset's run
    expect = Expected(m.task, m.files[m.model_file].sha256, min(len(examples), config.limit or len(examples)))
    bundle_dir = f"bundles/{m.name}-{m.files[m.model_file].sha256[:12]}"
    data_name = f"data/{data_sha[:16]}{dataset.suffix.lower()}"  # the readers know a format by its suffix
    files = shipped_code_files()
    files.update({f"{bundle_dir}/{name}": bundle.path / name for name in [*m.files, "manifest.json"]})
    files[data_name] = dataset

    out = claim(out, DEPLOY, (bundle.path, dataset))
    _set_aside_earlier_results(out)
    remote = Remote(target)
    root = target.remote_dir or config.remote_dir
    there = remote.hashes(root, list(files))
    changed = {name: p for name, p in files.items() if there.get(name) != sha256_file(p)}
    # one remote run directory per bundle, dataset, limit and measuring settings: a deploy with other
    # settings gets its own instead of being refused by the runner's resume check
    settings = f"t{config.threads or 'auto'}-w{config.warmup}" + ("-lowmem" if config.low_memory else "")
    settings += "" if config.spin else "-nospin"
    settings += f"-{config.backend}" if config.backend else ""
    settings += f"-{config.split}" if config.split else ""
    run_dir = f"runs/{m.name}-{m.files[m.model_file].sha256[:12]}-{data_sha[:12]}-n{config.limit or 'all'}-{settings}"
    report = DeployReport(
        target.describe(), f"{root}/{run_dir}", uuid.uuid4().hex, sorted(changed), sorted(set(files) - set(changed))
    )
    record = {"bundle": m.name, "config": asdict(config)}
    write_json(out / "deploy.json", {**asdict(report), **record, "status": "running"})
    try:
        _push_and_run(remote, root, changed, run_dir, bundle_dir, data_name, config, report, out, expect)
    except BaseException as exc:  # any failure, an interrupt too: deploy.json never says "running" for a dead run
        said = str(exc) if isinstance(exc, EdgekitError) else type(exc).__name__
        write_json(out / "deploy.json", {**asdict(report), **record, "status": f"failed: {said}"})
        raise
    write_json(out / "deploy.json", {**asdict(report), **record, "status": "finished"})
    return report


def _set_aside_earlier_results(out: Path) -> None:
    """Move an earlier deploy's result files in ``out`` into ``out/previous/``: if this deploy fails, nothing
    beside its failed ``deploy.json`` looks like its results (links are moved as links, never followed)."""
    earlier = [name for name in RESULT_FILES if (out / name).is_symlink() or (out / name).exists()]
    if not earlier:
        return
    previous = out / "previous"
    if previous.is_symlink() or (previous.exists() and not previous.is_dir()):
        raise InputError(previous, "file", "a directory edgekit deploy keeps an earlier run's results in")
    previous.mkdir(exist_ok=True)
    for name in earlier:
        os.replace(out / name, previous / name)


def _push_and_run(
    remote: Remote,
    root: str,
    changed: dict[str, Path],
    run_dir: str,
    bundle_dir: str,
    data_name: str,
    config: DeployConfig,
    report: DeployReport,
    out: Path,
    expect: Expected,
) -> None:
    """Push what the device lacks, run the runner there, pull what this run wrote (into ``report``)."""
    print(f"{report.target}: pushing {len(changed)} files, {len(report.skipped)} already there", file=sys.stderr)
    if changed:
        remote.push(root, changed)
    if config.fresh:
        remote.run(f"cd -- {remote_path(root)} && rm -rf -- {_join([run_dir])}")
    args: list[str | tuple[str]] = [(config.remote_python,), "-m", "edgekit.cli", "run", bundle_dir]
    args += ["--dataset", data_name, "--out", run_dir, "--warmup", str(config.warmup), "--run-id", report.run_id]
    if config.limit is not None:
        args += ["--limit", str(config.limit)]
    if config.threads is not None:
        args += ["--threads", str(config.threads)]
    if config.low_memory:
        args.append("--low-memory")
    if not config.spin:
        args.append("--no-spin")
    if config.backend is not None:
        args += ["--backend", config.backend]
    if config.split is not None:
        args += ["--split", config.split]
    command = f"cd -- {remote_path(root)} && PYTHONPATH=code exec {_join(args)}"
    # the runner's progress bar and summary stream straight to this terminal (one device at a time)
    proc = remote.run(command, capture=not config.stream, check=False)
    report.remote_exit = proc.returncode
    report.pulled = _pull_this_run(remote, f"{root}/{run_dir}", out, report.run_id, expect)
    if proc.returncode == 0 and "metrics.json" not in report.pulled:
        raise DeviceError(
            f"{report.target}: the runner exited 0 but left no metrics.json of this run (run id {report.run_id}); "
            "the device's Python or edgekit may not be the one deployed"
        )
    if proc.returncode != 0:
        raise DeviceError(
            f"{report.target}: the runner stopped with exit {proc.returncode} (255: killed or connection lost); "
            f"copied to {out}: {', '.join(report.pulled) or 'nothing'}. Deploy again with the same arguments to resume."
        )


@dataclass(frozen=True)
class Expected:
    """What the metrics of a deployed run must say of themselves: the task, the model, how many examples."""

    task: str
    model_sha256: str
    examples: int

    def check(self, m: dict, path: Path) -> None:
        if m.get("task", "extractive-qa") != self.task:
            raise InputError(path, "field 'task'", f"the deployed bundle's task {self.task}")
        if m["bundle"].get("model_sha256") != self.model_sha256:
            raise InputError(path, "field 'bundle.model_sha256'", f"the deployed model's {self.model_sha256[:16]}...")
        count = "n_questions" if self.task == "extractive-qa" else "n_examples"
        if m.get(count) != self.examples:
            raise InputError(path, f"field '{count}'", f"{self.examples}, the examples deployed, got {m.get(count)!a}")


def _pull_this_run(remote: Remote, run_dir: str, out: Path, run_id: str, expect: Expected) -> list[str]:
    """Pull the run's files into ``out``: the prediction log always, the rest only if this run wrote them.

    ``metrics.json`` carries the run id the runner was given; one with another id (or none) is an
    earlier run's, left on the device when this one failed, and is not passed off as new. The id travels
    on the device's command line, so it proves nothing about the content: the metrics must also validate
    and name the deployed task, model and example count (``expect``).
    """
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        staged = Path(tmp)
        pulled = remote.pull(run_dir, RESULT_FILES, staged)
        ours, bad = False, None
        if "metrics.json" in pulled:
            try:
                # named as the device has it: the staging directory is gone when the message is read
                data = read_bytes(staged / "metrics.json", "metrics.json", MAX_RESULT_BYTES, read_back=True)
                m = loads(data, Path(run_dir) / "metrics.json")
                ours = isinstance(m, dict) and m.get("run_id") == run_id
                if ours:
                    check_metrics(m, Path(run_dir) / "metrics.json", run_id)
                    expect.check(m, Path(run_dir) / "metrics.json")
            except InputError as exc:
                ours, bad = False, exc
        keep = [n for n in pulled if ours or n in ("predictions.jsonl", "run.json")]
        for name in keep:
            os.replace(staged / name, out / name)
    if bad is not None:
        raise DeviceError(f"{remote.target.describe()}: {bad} (sent back by the device, not kept)")
    return keep


def target_for(spec: str, identity: Path | None, options: Sequence[str], user: str | None) -> SshTarget:
    """Resolve a target spec, setting up ``adb forward`` for phones."""
    parsed = parse_target(spec)
    if user is not None:
        check_user(user, "--user")
    if isinstance(parsed, SshTarget):
        return replace(parsed, user=parsed.user or user, identity=identity, options=tuple(options))
    _, serial = parsed
    port = adb_forward(serial)
    return SshTarget("127.0.0.1", user, port, identity, tuple(options))


@dataclass(frozen=True)
class FleetResult:
    """How one device of a fleet deploy ended: its report, or the one-line error that stopped it."""

    target: str
    out: Path
    report: DeployReport | None = None
    error: str | None = None
    exit_code: int = 0

    def summary(self) -> str:
        """The device's line of the fleet summary."""
        if self.report is None:
            return f"{self.target}: FAILED (exit {self.exit_code}): {self.error}"
        m = read_metrics(self.out / "metrics.json")
        return (
            f"{self.target}: {get_task(m.get('task', 'extractive-qa')).summary(m)}, "
            f"p50 {m['latency_ms']['p50']:.1f} ms, peak RSS {m['peak_rss_mb']:.0f} MB -> {self.out}"
        )


def target_dir_name(spec: str) -> str:
    """A results directory name for a target spec: ``ssh://pi@host:22`` -> ``pi@host-22``."""
    return re.sub(r"[^A-Za-z0-9@._-]+", "-", spec.removeprefix("ssh://")).strip("-.") or "device"


def read_targets(path: Path) -> list[str]:
    """Targets from a file: one per line; blank lines and ``#`` comments ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, "file", f"a readable UTF-8 list of targets, one per line ({exc})") from None
    targets = [line.split("#", 1)[0].strip() for line in lines]
    return [t for t in targets if t]


@dataclass(frozen=True)
class FleetDevice:
    """One device's entry in ``fleet.json``: its results directory (a name inside the fleet's) and how it ended."""

    target: str
    results: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True)
class FleetRecord:
    """``fleet.json``: the bundle and targets of a fleet deploy, and, once it finished, each device's outcome."""

    bundle: str
    targets: list[str]
    status: Literal["running", "finished"]
    devices: list[FleetDevice] = field(default_factory=list)


def read_fleet(path: Path) -> FleetRecord:
    """A ``fleet.json`` read back as untrusted: its schema, and devices that are the fleet's own targets, each once,
    whose results directory is the name deploy gives that target (so it names nothing outside the fleet's)."""
    fleet = from_json(FleetRecord, read_json(path, "fleet.json", READ_BACK_BYTES, read_back=True), path)
    if fleet.status != "finished":
        raise InputError(path, "field 'status'", "a finished fleet deploy (this one is running or was stopped)")
    seen: set[str] = set()
    for i, d in enumerate(fleet.devices):
        if d.target not in fleet.targets or d.target in seen or d.results != target_dir_name(d.target):
            raise InputError(
                path,
                f"field 'devices[{i}]'",
                "one of the fleet's targets, once, with the results directory deploy names",
            )
        seen.add(d.target)
    return fleet


def deploy_fleet(
    targets: Sequence[str],
    resolve: Callable[[str], SshTarget],
    bundle_path: str | Path,
    dataset: str | Path,
    out: str | Path,
    config: DeployConfig,
    jobs: int | None = None,
) -> list[FleetResult]:
    """Deploy to every target at once, each into ``out/<target>``; a device that fails does not stop the others.

    ``targets`` are specs as given (checked by :func:`parse_target` first); ``resolve`` turns one into its
    :class:`SshTarget` inside that device's own job, so a phone ``adb`` cannot reach is that device's
    failure. The runs' output is kept per device (no interleaved progress bars);
    :meth:`FleetResult.summary` gives each one's line.
    """
    from concurrent.futures import ThreadPoolExecutor

    for spec in targets:
        parse_target(spec)  # every spec is good input before any device is touched
    names = [target_dir_name(spec) for spec in targets]
    if len(set(names)) != len(names):
        raise InputError(None, "targets", f"each device once (results directories {sorted(names)})")
    out = claim(out, FLEET, (bundle_path, dataset))
    fleet = FleetRecord(str(bundle_path), list(targets), "running")
    write_json(out / "fleet.json", asdict(fleet))  # first: an interrupted fleet resumes
    quiet = replace(config, stream=False)

    def one(item: tuple[str, str]) -> FleetResult:
        spec, name = item
        dest = out / name
        try:
            return FleetResult(spec, dest, report=deploy(resolve(spec), bundle_path, dataset, dest, quiet))
        except EdgekitError as exc:
            return FleetResult(spec, dest, error=" ".join(str(exc).split()), exit_code=exc.exit_code)

    with ThreadPoolExecutor(max_workers=jobs or len(targets)) as pool:
        results = list(pool.map(one, zip(targets, names, strict=True)))
    devices = [FleetDevice(r.target, r.out.name, r.report is not None, r.error) for r in results]
    write_json(out / "fleet.json", asdict(replace(fleet, status="finished", devices=devices)))
    return results
