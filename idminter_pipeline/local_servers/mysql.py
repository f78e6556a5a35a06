"""A project-local MySQL 9.x beside the MariaDB one, so the suite runs on MySQL too (`make
test-mysql`), without Docker and without touching the system's packages.

- apt resolves Debian unstable's `mysql-server-core` and its whole library closure (libc6 and
  its loader included) with a private configuration under `.local/apt`: its own sources list,
  package lists, cache and an empty dpkg status, so nothing counts as installed and the system's
  apt state is neither read nor written. The .debs stay cached in `.local/apt/cache/archives`.
- `dpkg-deb -x` unpacks them into `.local/mysql`; `mysqld` runs through that tree's own loader
  with `--library-path`, so it uses the libraries it was built with, beside the system's.
- The server itself is a `local_servers.mariadb` server with `MysqlEngine`: data under
  `.local/mysql-server`, its own port (`local_database_port(mysql=True)`) and socket,
  `--secure-file-priv` on a private folder, the X protocol off (`--mysqlx=OFF`, so it never takes
  port 33060), and MySQL's defaults otherwise, the binary log included.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from idminter_pipeline.core.settings import local_state_dir
from idminter_pipeline.local_servers.mariadb import LocalDatabaseError, LocalServerPaths

DEBIAN_ARCHIVE = "http://deb.debian.org/debian"
DEBIAN_SUITE = "unstable"
SERVER_PACKAGE = "mysql-server-core"
ARCHIVE_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# Written into the unpacked tree last: the exact .debs it holds, so a changed closure reinstalls.
INSTALLED_MARKER = ".installed"


# A simulated install's line: `Inst libc6 (2.43-7 Debian:unstable [amd64]) []`.
_SIMULATED_INSTALL = re.compile(r"^Inst (\S+) \((\S+) [^\[]*\[([^\]]+)\]\)", re.MULTILINE)


class ArchiveUnreachable(LocalDatabaseError):
    """Debian's archive could not be reached (or gave no usable answer): not a code failure."""


@dataclass(frozen=True)
class MysqlEngine:
    """mysqld from the unpacked tree `tree`, run through the tree's own loader."""

    tree: Path
    name: str = "mysqld"

    @property
    def library_dir(self) -> Path:
        """The tree's multiarch library folder: the one that holds its loader."""
        loaders = sorted(self.tree.glob("usr/lib/*-linux-gnu*/ld-linux*.so.*"))
        if not loaders:
            raise LocalDatabaseError(f"no ld-linux loader under {self.tree}: reinstall MySQL")
        return loaders[0].parent

    def server_command(self) -> list[str]:
        libraries = self.library_dir
        loader = sorted(libraries.glob("ld-linux*.so.*"))[0]
        return [str(loader), "--library-path", str(libraries), str(self.tree / "usr/sbin/mysqld")]

    def _tree_options(self) -> list[str]:
        share = self.tree / "usr/share/mysql"
        return [
            f"--basedir={self.tree / 'usr'}",
            f"--lc-messages-dir={share}",
            f"--character-sets-dir={share / 'charsets'}",
            f"--plugin-dir={self.tree / 'usr/lib/mysql/plugin'}",
        ]

    def server_options(self) -> list[str]:
        return [
            *self._tree_options(),
            "--mysqlx=OFF",
            "--innodb-redo-log-capacity=1G",
            # The binary log stays on, as MySQL's defaults have it; the legacy migration's
            # triggers then need this, as production's parameter group sets it
            # (deploy/registry-grants.sql).
            "--log-bin-trust-function-creators=ON",
        ]

    def initialize(self, paths: LocalServerPaths, user_flag: list[str]) -> None:
        """`mysqld --initialize-insecure`: root@localhost with no password, over the socket."""
        result = subprocess.run(
            [
                *self.server_command(),
                "--no-defaults",
                "--initialize-insecure",
                f"--datadir={paths.data_dir}",
                f"--tmpdir={paths.tmp_dir}",
                f"--log-error={paths.base / 'initialize.log'}",
                *self._tree_options(),
                *user_flag,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(paths.data_dir, ignore_errors=True)
            log = paths.base / "initialize.log"
            tail = log.read_text()[-2000:] if log.exists() else result.stderr[-2000:]
            raise LocalDatabaseError(f"mysqld --initialize-insecure failed:\n{tail}")

    def admin_user(self) -> str:
        return "root"


@dataclass(frozen=True)
class MysqlInstall:
    """Where the private apt state, the cached .debs and the unpacked tree live."""

    local: Path
    archive: str = DEBIAN_ARCHIVE  # a Debian mirror's URL

    @property
    def apt_dir(self) -> Path:
        return self.local / "apt"

    @property
    def tree(self) -> Path:
        return self.local / "mysql"

    @property
    def marker(self) -> Path:
        return self.tree / INSTALLED_MARKER

    @property
    def server_paths(self) -> LocalServerPaths:
        return LocalServerPaths(self.local / "mysql-server", MysqlEngine(self.tree))

    @classmethod
    def default(cls, archive: str = DEBIAN_ARCHIVE) -> MysqlInstall:
        return cls(local_state_dir(), archive)

    def installed(self) -> MysqlEngine | None:
        """The engine of the unpacked tree, if a complete one is there."""
        if self.marker.is_file() and (self.tree / "usr/sbin/mysqld").is_file():
            return MysqlEngine(self.tree)
        return None

    def _apt_config(self) -> Path:
        """A private apt configuration: only Debian unstable, only state under `.local/apt`."""
        apt = self.apt_dir
        for folder in ("etc/sources.list.d", "etc/preferences.d", "etc/apt.conf.d"):
            (apt / folder).mkdir(parents=True, exist_ok=True)
        for folder in ("state/lists/partial", "cache/archives/partial"):
            (apt / folder).mkdir(parents=True, exist_ok=True)
        (apt / "state/status").touch()  # nothing installed: apt resolves the whole closure
        (apt / "etc/sources.list").write_text(
            f"deb [signed-by={ARCHIVE_KEYRING}] {self.archive} {DEBIAN_SUITE} main\n"
        )
        settings = {
            "Dir::Etc::sourcelist": apt / "etc/sources.list",
            "Dir::Etc::sourceparts": apt / "etc/sources.list.d",
            "Dir::Etc::preferencesparts": apt / "etc/preferences.d",
            "Dir::Etc::parts": apt / "etc/apt.conf.d",
            "Dir::State": apt / "state",
            "Dir::State::status": apt / "state/status",
            "Dir::Cache": apt / "cache",
            "Dir::Cache::srcpkgcache": "",  # no source packages: 48 MB less
            # Downloads run as the user who asks, into a folder only it may need to reach.
            "APT::Sandbox::User": _user_name(),
            "Acquire::Languages": "none",
            # A snapshot of the archive (as mirrored here) has an expired Release date.
            "Acquire::Check-Valid-Until": "false",
            "Acquire::Retries": "2",
            "Acquire::http::Timeout": "20",
        }
        config = apt / "apt.conf"
        config.write_text("".join(f'{key} "{value}";\n' for key, value in settings.items()))
        return config

    def _apt(self, config: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "APT_CONFIG": str(config), "DEBIAN_FRONTEND": "noninteractive"}
        return subprocess.run(
            ["apt-get", "-q", *arguments], env=env, capture_output=True, text=True, check=False
        )

    def install(self) -> MysqlEngine:
        """Resolve, download (cached) and unpack MySQL; the tree already there if unchanged.

        Raises `ArchiveUnreachable` when apt cannot reach the archive and nothing is installed
        yet; with a tree already unpacked, that tree is used.
        """
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            raise ArchiveUnreachable("apt-get and dpkg-deb are needed to install MySQL")
        config = self._apt_config()
        updated = self._apt(config, "update")
        if updated.returncode != 0 or "Err:" in updated.stdout:
            installed = self.installed()
            if installed is not None:
                return installed
            raise ArchiveUnreachable(
                f"{self.archive} ({DEBIAN_SUITE}) cannot be reached: "
                f"{_fetch_error(updated.stdout) or _last_line(updated.stderr or updated.stdout)}"
            )
        debs = self._resolve(config)
        marker_text = "".join(f"{name}\n" for name in debs)
        installed = self.installed()
        if installed is not None and self.marker.read_text() == marker_text:
            return installed
        downloaded = self._apt(
            config, "install", "--download-only", "--no-install-recommends", "-y", SERVER_PACKAGE
        )
        archives = self.apt_dir / "cache/archives"
        missing = [name for name in debs if not (archives / name).is_file()]
        if downloaded.returncode != 0 or missing:
            raise ArchiveUnreachable(
                f"downloading {SERVER_PACKAGE} from {self.archive} failed: "
                f"{_last_line(downloaded.stderr) or ', '.join(missing[:3])}"
            )
        shutil.rmtree(self.tree, ignore_errors=True)
        self.tree.mkdir(parents=True)
        for name in debs:
            unpacked = subprocess.run(
                ["dpkg-deb", "-x", str(archives / name), str(self.tree)],
                capture_output=True,
                text=True,
                check=False,
            )
            if unpacked.returncode != 0:
                raise LocalDatabaseError(f"dpkg-deb -x {name} failed: {unpacked.stderr[-500:]}")
        self.tree.chmod(0o755)
        self.marker.write_text(marker_text)
        return MysqlEngine(self.tree)

    def _resolve(self, config: Path) -> list[str]:
        """The .deb file names of the server package's closure, as apt resolves it (a
        simulated install on the empty status), named as apt names them in its cache."""
        resolved = self._apt(
            config, "install", "--simulate", "-qq", "--no-install-recommends", SERVER_PACKAGE
        )
        if resolved.returncode != 0:
            raise ArchiveUnreachable(
                f"apt cannot resolve {SERVER_PACKAGE} in {DEBIAN_SUITE}: "
                f"{_last_line(resolved.stderr)}"
            )
        debs = [
            f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
            for name, version, arch in _SIMULATED_INSTALL.findall(resolved.stdout)
        ]
        if not any(name.startswith(f"{SERVER_PACKAGE}_") for name in debs):
            raise ArchiveUnreachable(f"{DEBIAN_SUITE} offers no {SERVER_PACKAGE}")
        return debs


def _user_name() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _fetch_error(text: str) -> str:
    """apt's reason for the first failed fetch (the line under `Err:N <url>`), e.g. `Could not
    connect to ...`; its closing warning says only that some index files failed."""
    lines = [line.strip() for line in text.splitlines()]
    for index, line in enumerate(lines[:-1]):
        if line.startswith("Err:") and lines[index + 1]:
            return lines[index + 1]
    return ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
