"""The report renders in a real headless browser: Debian's chromium, no network, no sandbox."""

from __future__ import annotations

import importlib.util
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from slm_agents.capture import CaptureStore
from slm_agents.report import SECTIONS, write_report


def _load_populate():  # the unit tests' fixture capture (their conftest, loaded by path)
    path = Path(__file__).resolve().parents[1] / "unit" / "report" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_report_fixture_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.populate


populate = _load_populate()

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
                          capture_output=True, text=True, timeout=180, cwd=tmp)


def _png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the set of distinct pixels of an 8-bit RGB/RGBA PNG (no dependencies)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    previous = bytearray(stride)
    colors: set[bytes] = set()
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                row[i] = (row[i] + a) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + b) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        if y % 8 == 0:  # a sample of rows is plenty to tell a page from a blank
            colors.update(bytes(row[x:x + 3]) for x in range(0, stride, bpp * 2))
        previous = row
    return width, height, colors


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    store = CaptureStore(tmp / "capture.db", redactor=None)
    populate(store)
    store.close()
    return write_report(tmp / "capture.db", tmp / "report.html")


def test_dom_has_the_sections_and_chart_svgs(report: Path, tmp_path: Path) -> None:
    proc = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in dom
        assert f'aria-label="{title}"' in dom
    assert dom.count('<svg class="chart"') == len(SECTIONS)
    assert "<script>alert" not in dom  # the hostile task name stayed text
    assert "&lt;script&gt;alert" in dom


def test_screenshot_is_a_rendered_page(report: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    proc = _chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,2000", report.as_uri())
    assert proc.returncode == 0 and png.exists(), proc.stderr[-2000:]
    data = png.read_bytes()
    assert len(data) > 30_000
    width, height, colors = _png_pixels(data)
    assert (width, height) == (1280, 2000)
    assert len(colors) > 50  # text, axes and coloured bars, not a blank page
    route_green, llm_orange = bytes((0x2E, 0x7D, 0x32)), bytes((0xEF, 0x6C, 0x00))
    assert route_green in colors and llm_orange in colors  # the bars were drawn
