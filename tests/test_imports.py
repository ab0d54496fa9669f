import subprocess
import sys


def test_core_and_cli_do_not_import_torch():
    # The inference/data path must work without torch installed.
    code = "import sys, ferkit, ferkit.data, ferkit.cli, ferkit.labels; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
