"""The lab raises its soft open-files limit at start, so 1000 idle connections
at a default `ulimit -n 1024` still leave descriptors to refuse the next client with."""

from __future__ import annotations

import subprocess
import sys


def test_runner_raises_the_soft_file_limit_to_the_hard_one():
    script = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "assert hard == resource.RLIM_INFINITY or hard > 256, hard\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "from maillab.base import eventloop\n"
        "with eventloop.runner() as r:\n"
        "    r.run(__import__('asyncio').sleep(0))\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "print(soft, hard)\n"
        "wanted = eventloop.FILE_LIMIT_WANTED\n"
        "assert soft == (wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)), (soft, hard)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
