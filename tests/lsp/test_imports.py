"""The bridge and the client never pull in torch or transformers (they install without them)."""

import subprocess
import sys


def test_bridge_and_client_import_without_torch():
    code = (
        "import sys, blazedit_lsp.server, blazedit_lsp.cli, blazedit_client.ws, blazedit_client.http\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
