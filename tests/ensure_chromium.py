"""Makes sure Debian's chromium is present for the browser test (Playwright cannot
download a browser here). Installs it with apt-get when missing and we are root."""

import os
import shutil
import subprocess
import sys

CANDIDATES = ("chromium", "chromium-browser")


def find() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def main() -> int:
    if find():
        print(f"chromium: {find()}")
        return 0
    if shutil.which("apt-get") is None:
        print("chromium missing and no apt-get: install Chromium and put it on PATH", file=sys.stderr)
        return 1
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(sudo + ["apt-get", "update"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "--no-install-recommends", "chromium"], check=True, env=env)
    print(f"chromium: {find()}")
    return 0 if find() else 1


if __name__ == "__main__":
    raise SystemExit(main())
