"""Measure the charger's page against a running agent: bytes per page load of each view,
bytes pushed per second on the live view's /events stream, and the agent process's CPU
while a headless Chromium watches the live view (against the same time without it).

    python -m tools.page_watch --url http://127.0.0.1:8080/ --pid $(pgrep -f 'ocpp-agent run') \\
        [--seconds 60] [--password PAGE_PASSWORD]

Needs selenium, chromium and chromedriver (Debian: apt-get install chromium chromium-driver).
The CPU figure is the agent's own (utime + stime of --pid from /proc), so run the browser on
the same machine or another: it does not count. Prints one line per figure and a JSON summary.
"""

import argparse
import json
import os
import shutil
import sys
import time
import urllib.parse

VIEWS = ("", "history", "logs", "setup")
WEIGHT_JS = """
const nav = performance.getEntriesByType("navigation")[0];
let total = nav.transferSize || nav.encodedBodySize;
for (const r of performance.getEntriesByType("resource")) total += (r.transferSize || r.encodedBodySize);
return total;
"""
def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` in seconds (Linux /proc)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def chrome(width: int = 1200, height: int = 1600):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=%d,%d" % (width, height), "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                            options=options)


def with_password(url: str, password: str) -> str:
    if not password:
        return url
    parts = urllib.parse.urlsplit(url)
    netloc = "page:%s@%s" % (urllib.parse.quote(password, safe=""), parts.netloc)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def window(cpu, seconds: float) -> float:
    """The agent's CPU share over ``seconds`` (``cpu()``: its CPU seconds so far)."""
    cpu0, t0 = cpu(), time.monotonic()
    time.sleep(seconds)
    return (cpu() - cpu0) / (time.monotonic() - t0)


def measure(url: str, pid: int | None, seconds: float, password: str = "", cpu=None) -> dict:
    """The figures; the agent's CPU is process ``pid``'s here, or what ``cpu()`` returns (CPU
    seconds so far: an agent on another machine, e.g. tools/boot_image.py's guest)."""
    if cpu is None:
        def cpu() -> float:
            return cpu_seconds(pid)
    base = with_password(url if url.endswith("/") else url + "/", password)
    driver = chrome()
    try:
        out = {"views": {}}
        for view in VIEWS:
            driver.get(base + view)
            out["views"]["/" + view] = int(driver.execute_script(WEIGHT_JS))
        driver.get("about:blank")
        out["cpu_without_browser"] = window(cpu, seconds)
        driver.get(base)
        pushed0 = int(driver.execute_script("return Number(document.body.dataset.pushed || 0);"))
        t0 = time.monotonic()
        out["cpu_with_browser"] = window(cpu, seconds)
        pushed = int(driver.execute_script("return Number(document.body.dataset.pushed || 0);")) - pushed0
        out["pushed_bytes_per_s"] = pushed / (time.monotonic() - t0)  # the events' data (page.js counts it)
        out["seconds"] = seconds
        return out
    finally:
        driver.quit()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.page_watch", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080/")
    parser.add_argument("--pid", type=int, required=True, help="the agent's process id")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each CPU window")
    parser.add_argument("--password", default=os.environ.get("PAGE_PASSWORD", ""),
                        help="the page's password (default: $PAGE_PASSWORD)")
    args = parser.parse_args(argv)
    result = measure(args.url, args.pid, args.seconds, args.password)
    for view, size in result["views"].items():
        print("%-10s %7d bytes per page load" % (view, size))
    print("live view: %.0f bytes/s pushed (one stream)" % result["pushed_bytes_per_s"])
    print("agent CPU: %.2f %% while the browser watches, %.2f %% without it (%g s each)" % (
        100 * result["cpu_with_browser"], 100 * result["cpu_without_browser"], args.seconds))
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
