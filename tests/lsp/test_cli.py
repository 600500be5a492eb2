"""`blazedit-lsp`: the command editors spawn (stdio by default, --tcp for debugging)."""

import socket
import subprocess
import sys
import time

from fixtures.daemon import free_port


def test_version_and_help():
    done = subprocess.run([sys.executable, "-m", "blazedit_lsp", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("blazedit-lsp ")
    done = subprocess.run([sys.executable, "-m", "blazedit_lsp", "--help"], capture_output=True, text=True)
    assert "--tcp" in done.stdout


def test_tcp_mode_listens_for_a_client():
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "blazedit_lsp", "--tcp", "--port", str(port)])
    try:
        deadline = time.monotonic() + 60
        while True:  # poll the port (no fixed sleep): the server takes a moment to import and bind
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "blazedit-lsp --tcp never listened"
                assert server.poll() is None, "blazedit-lsp --tcp exited"
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=30)
