"""Shared test set-up: an isolated DDS domain, loopback-only discovery, offscreen Qt."""

from __future__ import annotations

import os
import random

# Each pytest session gets its own DDS domain so concurrent runs never see each other's
# nodes; discovery stays on this machine.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
