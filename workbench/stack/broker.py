"""The embedded single-node Kafka broker (KRaft, combined broker and controller).

Jars come from Maven Central through ``pom.xml`` beside this file and are cached
under the settings' cache dir. Data and logs live under ``<home>/kafka``. The
broker runs as a background JVM that outlives the command which started it;
``down`` stops it by the pid recorded at start.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from workbench.config import Settings, settings
from workbench.errors import BrokerUnavailable, MissingToolError, WorkbenchError

POM = Path(__file__).with_name("pom.xml")
_JAVA_HINT = "install Java 17+ (Debian: apt-get install openjdk-17-jre-headless) or put it on PATH"
_MVN_HINT = "install Maven (Debian: apt-get install maven) or put mvn on PATH"


@dataclass
class BrokerStatus:
    running: bool
    address: str
    embedded: bool
    pid: int | None = None
    topics: dict[str, int] = field(default_factory=dict)
    disk_bytes: int = 0

    def lines(self) -> list[str]:
        state = "running" if self.running else "stopped"
        out = [f"kafka: {state} at {self.address} ({'embedded' if self.embedded else 'external'})"]
        if self.pid:
            out.append(f"pid: {self.pid}")
        if self.embedded:
            out.append(f"disk: {self.disk_bytes / 1e6:.1f} MB")
        if self.running:
            out.append(f"topics: {len(self.topics)}")
            out.extend(f"  {name} ({parts} partitions)" for name, parts in sorted(self.topics.items()))
        return out


def java_major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        raise MissingToolError(f"could not read the Java version from `{java} -version`; {_JAVA_HINT}")
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise MissingToolError(f"java not found: {_JAVA_HINT}")
    if java_major_version(java) < 17:
        raise MissingToolError(f"java at {java} is older than 17: {_JAVA_HINT}")
    return java


def require_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingToolError(f"mvn not found: {_MVN_HINT}")
    return mvn


class Broker:
    """Lifecycle of the embedded broker, or a thin view of an external cluster."""

    def __init__(self, s: Settings | None = None) -> None:
        self.s = s or settings()
        self.dir = self.s.home / "kafka"
        self.data_dir = self.dir / "data"
        self.log_dir = self.dir / "logs"
        self.pid_file = self.dir / "broker.pid"
        self.properties = self.dir / "server.properties"
        self.jar_dir = self.s.cache_dir / f"kafka-{self.s.kafka_version}"

    # -- jars ---------------------------------------------------------------
    def resolve_jars(self) -> Path:
        """Copy the broker's jars from Maven into the cache (once)."""
        marker = self.jar_dir / ".complete"
        if marker.exists():
            return self.jar_dir
        mvn = require_mvn()
        tmp = self.jar_dir.with_name(self.jar_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
            f"-Dkafka.version={self.s.kafka_version}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise WorkbenchError(f"mvn could not resolve Kafka {self.s.kafka_version}: {' | '.join(tail)}")
        tmp.joinpath(".complete").write_text(self.s.kafka_version)
        shutil.rmtree(self.jar_dir, ignore_errors=True)
        tmp.rename(self.jar_dir)
        return self.jar_dir

    # -- process ------------------------------------------------------------
    def pid(self) -> int | None:
        """Pid of our running broker, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _is_our_broker(pid, self.properties):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def up(self) -> BrokerStatus:
        """Start the broker if needed and wait until an admin client lists topics."""
        if not self.s.embedded:
            return self._external_status(require=True)
        if self.pid() is None:
            java = require_java()
            jars = self.resolve_jars()
            self._write_config()
            if not (self.data_dir / "meta.properties").exists():
                self._format(java, jars)
            self._start(java, jars)
        self._wait_ready()
        from workbench.streams.kafka import ensure_topic

        ensure_topic(self.s.events_topic, s=self.s)
        return self.status()

    def down(self, timeout_s: float = 60.0) -> bool:
        """Stop the broker cleanly by its pid; True when one was running."""
        if not self.s.embedded:
            return False
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        if not _wait_exit(pid, timeout_s):
            os.kill(pid, signal.SIGKILL)
            _wait_exit(pid, 10)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> BrokerStatus:
        if not self.s.embedded:
            return self._external_status(require=False)
        pid = self.pid()
        st = BrokerStatus(running=False, address=self.s.bootstrap, embedded=True, pid=pid, disk_bytes=_du(self.dir))
        if pid is not None:
            st.topics = _topics_or_empty(self.s)
            st.running = True
        return st

    def _external_status(self, require: bool) -> BrokerStatus:
        from workbench.streams.kafka import list_topics

        try:
            topics = list_topics(s=self.s)
        except BrokerUnavailable:
            if require:
                raise
            return BrokerStatus(running=False, address=self.s.bootstrap, embedded=False)
        return BrokerStatus(running=True, address=self.s.bootstrap, embedded=False, topics=topics)

    def _write_config(self) -> None:
        for d in (self.data_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        s = self.s
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{s.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:{s.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # single node: nothing to replicate to
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
            # few internal partitions and threads: this is a 2-core machine
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.num.partitions": "1",
            "num.partitions": str(s.partitions),
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "2",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            # topics are created on purpose, never by a stray consumer
            "auto.create.topics.enable": "false",
            "message.max.bytes": str(4 * 1024 * 1024 + 4096),
            "replica.fetch.max.bytes": str(4 * 1024 * 1024 + 4096),
        }
        self.properties.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.dir / "log4j2.properties").write_text(_LOG4J2.format(log_dir=self.log_dir))

    def _format(self, java: str, jars: Path) -> None:
        cluster_id = _cluster_id(self.dir / "cluster.id")
        cmd = [java, "-cp", f"{jars}/*", *self._jvm_log_opts(), "kafka.tools.StorageTool", "format",
               f"--cluster-id={cluster_id}", "-c", str(self.properties), "--ignore-formatted"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise WorkbenchError(f"kafka storage format failed: {proc.stderr.strip().splitlines()[-1:]}")

    def _jvm_log_opts(self) -> list[str]:
        return [f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}", f"-Dkafka.logs.dir={self.log_dir}"]

    def _start(self, java: str, jars: Path) -> None:
        _check_port_free(self.s.kafka_port)
        _check_port_free(self.s.controller_port)
        heap = self.s.kafka_heap_mb
        cmd = [
            java, f"-Xmx{heap}m", f"-Xms{min(128, heap)}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:ActiveProcessorCount=2", "-Djava.awt.headless=true", *self._jvm_log_opts(),
            "-cp", f"{jars}/*", "kafka.Kafka", str(self.properties),
        ]  # fmt: skip
        out = open(self.log_dir / "kafka.out", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.dir)  # fmt: skip
        out.close()
        self.pid_file.write_text(str(proc.pid))

    def _wait_ready(self) -> None:
        from workbench.streams.kafka import list_topics

        deadline = time.monotonic() + self.s.startup_timeout_s
        while True:
            if self.pid() is None:
                tail = _tail(self.log_dir / "kafka.out", 5)
                raise WorkbenchError(f"kafka broker exited during start-up; see {self.log_dir}: {tail}")
            try:
                list_topics(timeout_s=2.0, s=self.s)
                return
            except BrokerUnavailable:
                if time.monotonic() > deadline:
                    raise WorkbenchError(
                        f"kafka broker not ready after {self.s.startup_timeout_s:.0f}s; logs in {self.log_dir}"
                    ) from None
                time.sleep(0.5)


_LOG4J2 = """\
status = error
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_dir}/server.log
appender.file.filePattern = {log_dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 10MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _cluster_id(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    # Kafka cluster ids are 16 random bytes, base64url without padding
    import base64

    cid = "-"
    while cid.startswith("-"):  # as Kafka's own Uuid.randomUuid: a leading '-' reads as an option
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(cid)
    return cid


def _is_our_broker(pid: int, properties: Path) -> bool:
    import psutil

    for _ in range(50):
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            cmd = proc.cmdline()
            young = time.time() - proc.create_time() < 5.0
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        if "kafka.Kafka" in cmd and str(properties) in cmd:
            return True
        if not young:
            return False
        # just forked: until exec, the child still shows its parent's command line (a busy machine makes
        # that window long enough to be seen); look again rather than call a starting broker gone
        time.sleep(0.1)
    return False


def _wait_exit(pid: int, timeout_s: float) -> bool:
    import psutil

    try:
        psutil.Process(pid).wait(timeout=timeout_s)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    return True


def _check_port_free(port: int) -> None:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise WorkbenchError(
                f"port {port} on 127.0.0.1 is taken by another process; set WORKBENCH_KAFKA_PORT / "
                "WORKBENCH_CONTROLLER_PORT to free ports"
            ) from None


def _topics_or_empty(s: Settings) -> dict[str, int]:
    from workbench.streams.kafka import list_topics

    try:
        return list_topics(timeout_s=5.0, s=s)
    except BrokerUnavailable:
        return {}


def _du(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no output)"
    return " | ".join(lines[-n:])

