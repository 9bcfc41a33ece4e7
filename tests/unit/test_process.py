"""How every process starts (shared/process.py): a bad setting ends a service and an app alike at once, exit 2, with
one line naming the setting and what is wrong with it, never its value."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["services.risk", "apps.console", "apps.notifier"])
def test_a_bad_setting_refuses_start_naming_it_and_not_its_value(tmp_path: Path, module: str) -> None:
    env = {**os.environ, "REROUTE_DATA_DIR": str(tmp_path / "data"), "NATS_URL": "nats://127.0.0.1:1",
           "REROUTE_LOG_FORMAT": "json-s3cret"}
    done = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60,
                          check=False, cwd=Path(__file__).parents[2])
    name = module.split(".")[1]
    assert done.returncode == 2, done.stderr
    assert f"{name} cannot start: log_format: Input should be 'text' or 'json'" in done.stderr, done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_the_nats_container_refuses_a_bad_setting_without_printing_it(tmp_path: Path) -> None:
    """A hand-made Secret with the provisioner's password where its bcrypt hash belongs: the NATS container says
    which setting is wrong and never prints the password into the pod's log."""
    env = {**os.environ, "REROUTE_NATS_PROVISIONER_PASSWORD_HASH": "PlainTextProvisionerPw123",
           **{f"REROUTE_NATS_{user}_PASSWORD": "a-long-enough-password-for-the-test" for user in
              ("INTAKE", "RISK", "SCHEDULING", "OPERATOR", "HEALTH", "CONSOLE", "NOTIFIER")}}
    done = subprocess.run([sys.executable, "-m", "apps.container.nats"], env=env, capture_output=True, text=True,
                          timeout=60, check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("nats cannot start: provisioner_password_hash: String should match"), done.stderr
    assert "PlainTextProvisionerPw123" not in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv: a directory "
                    "another user owns, as a Kubernetes volume shared through fsGroup is")
def test_a_data_dir_this_user_may_not_chmod_is_used_with_a_warning_if_others_may_read_it() -> None:
    """On Kubernetes the data volume is root's (shared through fsGroup): closing it fails, and that must not stop the
    process; a directory others may read is named on stderr."""
    for mode, warned in ((0o2770, False), (0o2777, True)):
        data = Path(tempfile.mkdtemp(dir="/tmp", prefix="reroute-fsgroup-"))
        try:
            data.chmod(mode)
            done = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                 ("from pathlib import Path; from shared.settings import keep_files_private; "
                  f"keep_files_private(Path({str(data)!r})); print('served')")],
                capture_output=True, text=True, timeout=60, check=False, cwd=Path(__file__).parents[2])
            assert done.returncode == 0 and done.stdout == "served\n", done.stderr
            assert ("is open to other users" in done.stderr) is warned, done.stderr
        finally:
            shutil.rmtree(data)
