"""Downloading the file a central system points to (agent/transfer/download.py): HTTP with a
broken download resumed by a Range request, FTP resumed with REST, a local file, and the
failures that retrying cannot mend — against real servers on 127.0.0.1."""

import os

import pytest

from agent.transfer.download import DownloadError, download
from tests.transfer.servers import FileServer, FtpSink, dead_port

DATA = os.urandom(700_000)


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    (root / "update.bundle").write_bytes(DATA)
    return root


async def test_a_broken_http_download_resumes_where_it_stopped(served, tmp_path):
    server = FileServer(str(served))
    dest = str(tmp_path / "got.bundle")
    try:
        server.cut_after = 250_000
        with pytest.raises(DownloadError) as broken:
            await download(server.url("update.bundle"), dest)
        assert not broken.value.permanent and not os.path.exists(dest)
        assert os.path.getsize(dest + ".part") == 250_000
        assert await download(server.url("update.bundle"), dest) == len(DATA)
        assert open(dest, "rb").read() == DATA and not os.path.exists(dest + ".part")
        assert server.requests[-1][1] == "bytes=250000-"  # only the rest was asked for
    finally:
        server.close()


async def test_ftp_download_resumes_with_rest_and_a_local_file_is_copied(served, tmp_path):
    ftp = FtpSink(served)
    dest = str(tmp_path / "got.bundle")
    try:
        with open(dest + ".part", "wb") as f:
            f.write(DATA[:100_000])  # what an earlier, broken attempt left
        assert await download(ftp.url("/update.bundle"), dest) == len(DATA)
        assert open(dest, "rb").read() == DATA
    finally:
        ftp.close()
    local = str(tmp_path / "copy.bundle")
    assert await download(str(served / "update.bundle"), local) == len(DATA)


async def test_failures_say_whether_a_retry_can_help(served, tmp_path):
    server = FileServer(str(served))
    dest = str(tmp_path / "got.bundle")
    try:
        with pytest.raises(DownloadError) as missing:
            await download(server.url("nothing.bundle"), dest)
        assert missing.value.permanent and "404" in missing.value.reason
    finally:
        server.close()
    with pytest.raises(DownloadError) as refused:
        await download("http://127.0.0.1:%d/x.bundle" % dead_port(), dest)
    assert not refused.value.permanent
    with pytest.raises(DownloadError) as scheme:
        await download("sftp://host/x.bundle", dest)
    assert scheme.value.permanent
    ftp = FtpSink(served)
    try:
        with pytest.raises(DownloadError) as login:
            await download(ftp.url("/update.bundle", password="wrong"), dest)
        assert login.value.permanent and "wrong" not in login.value.reason
    finally:
        ftp.close()
