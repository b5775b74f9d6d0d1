"""The broker's jars: the POM that names them, the Kafka version it pins, and Maven to fetch them.

Why Maven: Maven Central carries every jar a broker needs, and Java and Maven are on the
machines we develop and test on (Docker is not). The jars are fetched once into a cache outside
the work tree, so a fresh clone or another test run does not download them again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from app.devtools.kafka.errors import KafkaToolingError

POM_ENV = "VIGIL_KAFKA_POM"
_POM_IN_CHECKOUT = Path("deploy") / "kafka" / "pom.xml"
_MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_KAFKA_ARTIFACT = "kafka_2.13"
_MARKER = ".complete"


def find_pom() -> Path:
    """The POM naming the broker jars: ``$VIGIL_KAFKA_POM``, else the one in this package.

    The POM and the broker's log4j config ship inside the package (package data), so
    `vigil kafka` works from an installed package too; ``deploy/kafka/`` links to them.
    Failing that (a tree without them), the source checkout's ``deploy/kafka/pom.xml``.
    """
    env = os.environ.get(POM_ENV)
    if env:
        return Path(env).expanduser()
    packaged = Path(__file__).resolve().parent / "pom.xml"
    if packaged.is_file():
        return packaged
    for parent in Path(__file__).resolve().parents:
        candidate = parent / _POM_IN_CHECKOUT
        if candidate.is_file():
            return candidate
    raise KafkaToolingError(
        f"`vigil kafka` needs a source checkout of Vigil ({_POM_IN_CHECKOUT} names the broker "
        f"jars), or --pom / ${POM_ENV} pointing at such a {_POM_IN_CHECKOUT}"
    )


def default_log4j(pom: Path) -> Path:
    """The broker's log4j config: ``log4j.properties`` beside the POM (as in deploy/kafka/)."""
    return pom.parent / "log4j.properties"


def default_cache_dir() -> Path:
    """Where jars are cached: outside the work tree so a fresh clone does not download again."""
    env = os.environ.get("VIGIL_KAFKA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vigil"


def kafka_version(pom: Path | None = None) -> str:
    """The Kafka version pinned in the POM: one source of truth for the jars and for reports."""
    pom = pom or find_pom()
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise KafkaToolingError(f"cannot read the Kafka POM {pom}: {exc}") from exc
    props: dict[str, str] = {}
    props_el = root.find("m:properties", _POM_NS)
    if props_el is not None:
        for child in props_el:
            tag = child.tag.split("}", 1)[-1]
            props[tag] = (child.text or "").strip()
    for dep in root.iterfind("m:dependencies/m:dependency", _POM_NS):
        if dep.findtext("m:artifactId", "", _POM_NS).strip() != _KAFKA_ARTIFACT:
            continue
        version = dep.findtext("m:version", "", _POM_NS).strip()
        if version.startswith("${") and version.endswith("}"):
            version = props.get(version[2:-1], "")
        if version:
            return version
    raise KafkaToolingError(f"{pom} names no pinned version of org.apache.kafka:{_KAFKA_ARTIFACT}")


def find_java() -> str:
    """``$JAVA_HOME/bin/java`` if set (what the Kafka scripts honour), else ``java`` on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise KafkaToolingError(
            "java not found (neither $JAVA_HOME/bin/java nor java on PATH): install a JDK/JRE "
            "(Java 17 recommended; e.g. `apt-get install openjdk-17-jre-headless`)"
        )
    return java


def jars_dir(cache_dir: Path, version: str) -> Path:
    """Where a version's jars live in the cache (not necessarily downloaded yet)."""
    return cache_dir / f"kafka-{version}" / "jars"


def ensure_jars(pom: Path, cache_dir: Path) -> Path:
    """Download the broker jars with Maven once; later calls return the cached directory.

    A marker holding the POM's hash says the download completed (so an interrupted one is
    redone, and editing the POM refetches). Jars land in a temp dir that is renamed into
    place, under a file lock, so two concurrent test runs never see half a classpath.
    """
    version = kafka_version(pom)
    jars = jars_dir(cache_dir, version)
    marker = jars.parent / _MARKER
    try:
        pom_text = pom.read_bytes()
    except OSError as exc:
        raise KafkaToolingError(f"cannot read the Kafka POM {pom}: {exc}") from exc
    digest = hashlib.sha256(pom_text).hexdigest()

    def complete() -> bool:
        with contextlib.suppress(OSError):
            return marker.read_text().strip() == digest and any(jars.glob("kafka_2.13-*.jar"))
        return False

    if complete():
        return jars
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaToolingError(
            "mvn (Apache Maven) not found on PATH: it downloads the Kafka broker jars from "
            "Maven Central. Install it (e.g. `apt-get install maven`)"
        )
    find_java()  # Maven needs Java too; fail with the clearer message
    jars.parent.mkdir(parents=True, exist_ok=True)
    with (jars.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete():  # another process finished while we waited
            return jars
        tmp = jars.parent / f"jars.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(pom),
            f"{_MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ]
        try:
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise KafkaToolingError(f"Maven took over 30 min fetching Kafka jars: {exc}") from exc
        if result.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            shutil.rmtree(tmp, ignore_errors=True)
            output = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise KafkaToolingError(
                f"downloading Kafka {version} jars failed (exit {result.returncode}) "
                f"running: {' '.join(cmd)}\n{output}"
            )
        shutil.rmtree(jars, ignore_errors=True)
        tmp.rename(jars)
        marker.write_text(digest + "\n")
    return jars
