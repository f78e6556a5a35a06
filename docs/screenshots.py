"""Take the pictures of the Dagster UI (docs/operations/dagster.md): `make screenshots`.

Uses the local stack (the project-local MariaDB with a registry database of its own, and a
DAGSTER_HOME of its own), and does what an operator's day looks like: materializes the registry
and the pool, loads the sample works with one bad work in the 09:30 window, mints the four
windows in one run, and reconciles; then starts `dagster-webserver` and `dagster-daemon` on a
free port and lets minting drain the pool while the pool sensor watches: it records every tick,
and below the low watermark requests a replenishment, which the daemon runs. Then headless
Chromium (Debian's `chromium` and `chromium-driver`) captures the asset graph, the pool's plots
and checks, the partition with the failed work and its check, into `docs/images/`.

Nothing here is shared with other runs: the registry database and DAGSTER_HOME are created for
the run and removed after it; the only thing left behind is the pictures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
BIN = Path(sys.executable).parent
# Matches the test databases' prefix, so a least-privilege grant for tests covers it too.
DATABASE = "idminter_test_screenshots"
SAMPLE_WORKS = 2_400  # 1.5 s apart: four 15-minute windows, 09:00 to 09:45
BAD_WINDOW = "2026-07-30-09:30"
FIRST_WINDOW, LAST_WINDOW = "2026-07-30-09:00", "2026-07-30-09:45"
# Small enough to drain in a minute, large enough for the sample's new IDs.
POOL = {"target": 30_000, "low": 12_000, "critical": 6_000}
DRAIN_STEP = 3_000  # IDs minted between two sensor ticks
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = "1600,1300"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def say(message: str) -> None:
    print(f"screenshots: {message}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(
    what: str, ready: Callable[[], object], *, timeout: float, every: float = 1.0
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"screenshots: gave up waiting for {what} after {timeout:.0f} s")


def run(*command: str) -> None:
    say(" ".join(command))
    subprocess.run(command, check=True, cwd=ROOT)


# --- the stack -----------------------------------------------------------------------------------


def configure_environment(work_dir: Path) -> None:
    """Everything the code location and this script read: a registry and a home of their own."""
    os.environ.update(
        {
            "IDENTIFIERS_DATABASE": DATABASE,
            "DAGSTER_HOME": str(work_dir / "dagster"),
            "WORKS_STORE_PATH": str(work_dir / "works.sqlite3"),
            "IDMINTER_ALERTS_LOG": str(work_dir / "alerts.log"),
            "IDMINTER_POOL_TARGET_FREE": str(POOL["target"]),
            "IDMINTER_POOL_LOW_WATERMARK": str(POOL["low"]),
            "IDMINTER_POOL_CRITICAL_WATERMARK": str(POOL["critical"]),
            "IDMINTER_POOL_SENSOR_INTERVAL_SECONDS": "5",
            # The sensor counts free IDs up to what the mint rate consumes within the horizon, and
            # minted IDs up to target / horizon: two hours keeps both exact at the demo's rate
            # for most ticks (the forecast alert fires, as it should at that rate).
            "IDMINTER_POOL_FORECAST_HORIZON_HOURS": "2",
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }
    )
    os.environ.pop("ELASTICSEARCH_URL", None)
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "local" / "dagster.yaml", home / "dagster.yaml")


@contextlib.contextmanager
def registry_database() -> Iterator[None]:
    from idminter_pipeline.core.settings import DatabaseSettings  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connect  # noqa: PLC0415
    from idminter_pipeline.registry.schema import apply_migrations  # noqa: PLC0415

    settings = DatabaseSettings.from_env()

    def admin(statement: str) -> None:
        conn = connect(settings.with_database(""))
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement)  # DATABASE is a constant of this script
        finally:
            conn.close()

    admin(f"DROP DATABASE IF EXISTS `{DATABASE}`")
    admin(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        apply_migrations(lambda: connect(settings))
        yield
    finally:
        admin(f"DROP DATABASE IF EXISTS `{DATABASE}`")


@contextlib.contextmanager
def background(name: str, command: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """A process in a session of its own, stopped (and its children) on the way out."""
    say(f"starting {name} (log {log})")
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    # Dagster's processes shut down cleanly on an interrupt; anything left is killed.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def webserver_up(url: str, process: subprocess.Popen, log: Path) -> bool:
    if process.poll() is not None:
        raise SystemExit(f"screenshots: the Dagster webserver exited; see {log}")
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


# --- what the operator's day looks like -----------------------------------------------------------


def load_sample_works(work_dir: Path) -> None:
    run(str(BIN / "idminter"), "works", "generate", "--count", str(SAMPLE_WORKS), "--seed", "0")
    # One Folio record naming a Sierra predecessor nobody registered: it fails, alone, in 09:30.
    bad = {
        "_id": "Work[folio-instance/screenshot-orphan]",
        "_source": {
            "version": 1,
            "type": "Visible",
            "indexed_at": "2026-07-30T09:37:30.000Z",
            "data": {"items": []},
            "state": {
                "sourceIdentifier": {
                    "identifierType": {"id": "folio-instance"},
                    "ontologyType": "Work",
                    "value": "screenshot-orphan",
                },
                "predecessorIdentifier": {
                    "identifierType": {"id": "sierra-system-number"},
                    "ontologyType": "Work",
                    "value": "b-never-registered",
                },
            },
        },
    }
    path = work_dir / "bad-work.ndjson"
    path.write_text(json.dumps(bad) + "\n")
    run(str(BIN / "idminter"), "works", "load", str(path))


def materialize(*assets: str) -> None:
    command = [str(BIN / "dagster"), "asset", "materialize", "-m", "idminter_pipeline.definitions"]
    run(*command, "--select", ",".join(assets))


def mint_sample_windows() -> None:
    """One run over the four windows, recorded on the instance the UI reads."""
    import dagster as dg  # noqa: PLC0415

    from idminter_pipeline.definitions import defs  # noqa: PLC0415

    say(f"minting windows {FIRST_WINDOW}..{LAST_WINDOW} in one run")
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("mint_works").execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": FIRST_WINDOW,
                "dagster/asset_partition_range_end": LAST_WINDOW,
            },
            raise_on_error=False,
        )
    for materialization in result.asset_materializations_for_node("identified_works"):
        figures = {k: v.value for k, v in materialization.metadata.items()}
        say(
            f"  {materialization.partition}: {figures['works_read']} read, "
            f"{figures['works_written']} written, {figures['works_failed']} failed"
        )
    say(f"run {result.run_id}: {'succeeded' if result.success else 'failed (a work failed)'}")


def observations() -> int:
    import dagster as dg  # noqa: PLC0415

    with dg.DagsterInstance.get() as instance:
        return len(
            instance.fetch_observations(dg.AssetKey("canonical_id_pool"), limit=1000).records
        )


def replenished_by_sensor() -> bool:
    import dagster as dg  # noqa: PLC0415

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs(
            filters=dg.RunsFilter(
                tags={"idminter/reason": "pool-low-water"}, statuses=[dg.DagsterRunStatus.SUCCESS]
            )
        )
    return bool(runs)


def free_ids() -> int:
    from idminter_pipeline.registry.connection import connect  # noqa: PLC0415
    from idminter_pipeline.registry.pool import count_free  # noqa: PLC0415

    conn = connect()
    try:
        return count_free(conn)
    finally:
        conn.close()


def drain_pool_under_the_sensor() -> None:
    """Mint new identifiers between sensor ticks until the sensor's replenishment refills it."""
    from idminter_pipeline.core.source_identifiers import SourceIdentifier  # noqa: PLC0415
    from idminter_pipeline.registry.connection import connection_factory  # noqa: PLC0415
    from idminter_pipeline.registry.minting import Minter, MintRequest  # noqa: PLC0415

    def next_tick() -> None:
        seen = observations()
        wait_for("a pool_size_sensor tick", lambda: observations() > seen, timeout=180)

    next_tick()
    batch = 0
    with Minter(connection_factory()) as minter:
        while free_ids() > DRAIN_STEP and not replenished_by_sensor():
            requests = [
                MintRequest(SourceIdentifier("Image", "screenshot-drain", f"i{batch}-{n}"))
                for n in range(DRAIN_STEP)
            ]
            minter.mint_ids(requests, job_id=f"screenshots-drain-{batch}")
            batch += 1
            say(f"minted {DRAIN_STEP:,} new IDs: {free_ids():,} free")
            next_tick()
    say("waiting for the replenishment run the sensor requested")
    wait_for("the sensor's replenishment run", replenished_by_sensor, timeout=600, every=3)
    for _ in range(2):
        next_tick()
    say(f"pool back at {free_ids():,} free IDs")


# --- the pictures --------------------------------------------------------------------------------


def browser(profile: Path):  # noqa: ANN201 (selenium is an optional extra)
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


class Pages:
    """The UI pages, opened and clicked as a person would, then saved as PNGs."""

    def __init__(self, driver, url: str) -> None:  # noqa: ANN001
        self.driver = driver
        self.url = url

    def text(self) -> str:
        return self.driver.find_element("tag name", "body").text

    def open(self, path: str, *, shows: tuple[str, ...]) -> None:
        self.driver.get(f"{self.url}{path}")
        self.wait_for_text(shows)

    def wait_for_text(self, shows: tuple[str, ...]) -> None:
        wait_for(
            f"the page to show {shows}",
            lambda: all(word in self.text() for word in shows),
            timeout=120,
        )

    def click(self, text: str, *, then_shows: tuple[str, ...] = ()) -> None:
        xpath = f"//*[normalize-space(text())='{text}']"
        elements = wait_for(
            f"something to click labelled {text!r}",
            lambda: [e for e in self.driver.find_elements("xpath", xpath) if e.is_displayed()],
            timeout=60,
        )
        elements[-1].click()
        if then_shows:
            self.wait_for_text(then_shows)

    def save(self, name: str, *, settle: float = 4.0, element=None) -> None:  # noqa: ANN001
        time.sleep(settle)  # charts animate in; lazy sections load after the text
        path = IMAGES / f"{name}.png"
        if element is None:
            self.driver.save_screenshot(str(path))
        else:
            element.screenshot(str(path))
        say(f"captured {path.relative_to(ROOT)}")


# Only these plots of the pool's page are kept in the picture: the level the sensor watches.
POOL_PLOTS = ("free", "minted_last_hour", "hours_until_empty")
KEEP_PLOTS_SCRIPT = """
const keep = new Set(arguments[0]);
let grid = null;
for (const canvas of document.querySelectorAll('canvas')) {
  let cell = canvas;
  while (cell.parentElement && getComputedStyle(cell.parentElement).display !== 'grid') {
    cell = cell.parentElement;
  }
  if (!cell.parentElement) continue;
  grid = cell.parentElement;
  const label = cell.innerText.split('\\n')[0].trim();
  if (!keep.has(label)) cell.style.display = 'none';
}
if (grid) grid.scrollIntoView();
return grid;
"""


def take_pictures(url: str, profile: Path) -> None:
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415

    IMAGES.mkdir(parents=True, exist_ok=True)
    windows = f"[{FIRST_WINDOW}...{LAST_WINDOW}]"
    driver = browser(profile)
    pages = Pages(driver, url)
    try:
        driver.set_window_size(1600, 900)  # the graph fits the width: less empty space below
        pages.open(
            "/assets/identified_works?view=lineage&lineageScope=neighbors&lineageDepth=4",
            shows=("registry_schema", "canonical_id_pool", "registry_reconciliation"),
        )
        pages.save("asset-graph")
        driver.set_window_size(*map(int, WINDOW.split(",")))

        pages.open("/assets/canonical_id_pool", shows=("Metadata", "Plots"))
        pages.click("Plots")
        wait_for("the pool's plots", lambda: driver.find_elements("tag name", "canvas"), timeout=60)
        time.sleep(3)
        grid = driver.execute_script(KEEP_PLOTS_SCRIPT, list(POOL_PLOTS))
        pages.save("pool-plots", element=grid)

        pages.open(
            "/assets/canonical_id_pool?view=checks&checkDetail=free_pool_above_low_watermark",
            shows=("free_pool_above_low_watermark", "Execution history"),
        )
        pages.click("Execution history", then_shows=("Evaluation result",))
        pages.save("pool-checks")

        driver.set_window_size(1600, 1500)  # down to the failed_works table
        pages.open(
            f"/assets/identified_works?view=partitions&partition={BAD_WINDOW}"
            f"&default_range={urllib.parse.quote(windows)}",
            shows=("failed_works", "screenshot-orphan"),
        )
        pages.save("failed-work-partition")
        driver.set_window_size(*map(int, WINDOW.split(",")))

        pages.open("/assets/identified_works?view=checks", shows=("no_failed_works", "Partitions"))
        pages.click("Partitions", then_shows=("Passed",))
        narrow = driver.find_element("xpath", "//input[starts-with(@value, '[')]")
        narrow.click()
        narrow.send_keys(Keys.CONTROL, "a")
        narrow.send_keys(Keys.BACKSPACE)
        narrow.send_keys(windows, Keys.ENTER)
        pages.wait_for_text(("4 Partitions Selected",))
        pages.click(BAD_WINDOW, then_shows=(f"works failed in window {BAD_WINDOW}",))
        pages.save("works-check-partitions")
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the work folder for a look")
    args = parser.parse_args()
    work_dir = Path(tempfile.mkdtemp(prefix="idminter-screenshots-"))
    configure_environment(work_dir)
    url = f"http://127.0.0.1:{free_port()}"
    location = ["-m", "idminter_pipeline.definitions"]
    webserver_log, daemon_log = work_dir / "webserver.log", work_dir / "daemon.log"
    try:
        with registry_database():
            # Before the daemon starts, so the pool sensor's first tick sees a full pool.
            materialize("registry_schema", "legacy_registry_migration", "canonical_id_pool")
            load_sample_works(work_dir)
            mint_sample_windows()
            materialize("registry_reconciliation")
            host, port = url.removeprefix("http://").split(":")
            with background(
                "dagster-webserver",
                [str(BIN / "dagster-webserver"), *location, "-h", host, "-p", port],
                webserver_log,
            ) as webserver:
                with background(
                    "dagster-daemon", [str(BIN / "dagster-daemon"), "run", *location], daemon_log
                ) as daemon:
                    drain_pool_under_the_sensor()
                    # The story is over: no more ticks, so the pictures show it as it ended.
                    stop(daemon)
                wait_for(
                    "the Dagster webserver",
                    lambda: webserver_up(url, webserver, webserver_log),
                    timeout=300,
                    every=2,
                )
                take_pictures(url, work_dir / "chromium-profile")
    finally:
        if args.keep:
            say(f"work folder kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
