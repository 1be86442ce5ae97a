"""Keep DDS on this machine: every code path that starts ROS 2 nodes applies this first.

Without these variables Fast DDS discovers peers by multicast on every interface. With them
discovery stays on 127.0.0.1 and data goes over shared memory.
"""

from __future__ import annotations

import os
from typing import MutableMapping

# A fixed default keeps the nodes of one graph in one domain when started separately;
# tests pass their own per-run domain.
DEFAULT_DOMAIN_ID = 42


def loopback_ros_env(env: MutableMapping[str, str] | None = None, domain_id: int | None = None) -> MutableMapping[str, str]:
    """Set loopback-only discovery (and a domain id unless one is set) in `env` (default os.environ)."""
    env = os.environ if env is None else env
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = env.get("GYMNAST_ROS_DISCOVERY_RANGE", "LOCALHOST")
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    else:
        env.setdefault("ROS_DOMAIN_ID", str(DEFAULT_DOMAIN_ID))
    if not 0 <= int(env["ROS_DOMAIN_ID"]) <= 101:
        raise ValueError(f"ROS_DOMAIN_ID must be in 0..101, got {env['ROS_DOMAIN_ID']}")
    return env
