"""Is the Hugging Face Hub reachable? Asked once, quickly: offline, transformers retries for most of a minute."""

from __future__ import annotations

import functools
import os
import socket
import threading
from urllib.parse import urlparse

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


@functools.cache
def hub_online(timeout: float = 3.0) -> bool:
    if any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARS):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    reached: list[bool] = []

    def probe() -> None:
        # DNS resolution ignores socket timeouts, hence the thread we can stop waiting for.
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                reached.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(reached)
