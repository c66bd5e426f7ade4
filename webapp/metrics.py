"""Prometheus metrics at ``/metrics`` (``metrics.enabled``), from two processes.

The grabber and the web server are separate processes, so each number is counted where
it happens and read at scrape time, never copied between them:

- the grabber's counters (photos saved, frames rejected by reason, failed cycles, camera
  reconnects, retention deletions, notifications) live in its status file, rewritten
  after every cycle; :class:`GrabberCollector` reads that file when Prometheus scrapes,
  with the grabber's start time as each counter's ``_created``, so a restarted grabber
  (counting from zero again) is an ordinary counter reset that ``rate()`` handles;
- what the web process itself sees (requests by route and status, failed logins,
  rate-limited requests) is counted in memory by :class:`Metrics`, and resets when the
  server restarts, also an ordinary counter reset;
- gauges are measured at scrape time: the newest photo's age, free disk space.

Who may read it: a client on loopback that did not come through a proxy (the peer
address waitress saw, and no ``X-Forwarded-*``/``Forwarded``/``X-Real-IP`` header:
Caddy in front connects from loopback and always adds ``X-Forwarded-For``, so nothing
from outside passes as local), or a token made with ``puccicam token add NAME --metrics``.

``prometheus_client`` is imported only when metrics are on: off, they cost nothing.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

from flask import Blueprint, Response, abort, request

from camera.retention import disk_free
from camera.status import read_status
from camera.store import PhotoStore
from webapp import state, tokens
from webapp.api import token_limit, unauthorized

bp = Blueprint("metrics", __name__)

# Set by a proxy (Caddy sets X-Forwarded-For itself) or forged by a client: either way
# the request is not known to come from this machine.
FORWARDING_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_FORWARDED",
    "HTTP_X_REAL_IP",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
)
# The label of a request no route matched (a 404 or 405): the route, never the raw path,
# so a scanner's thousand paths stay one series.
UNMATCHED = "unmatched"


def from_loopback(environ) -> bool:
    """Did this request come from this machine, not through a proxy?"""
    if any(header in environ for header in FORWARDING_HEADERS):
        return False
    try:
        ip = ipaddress.ip_address(str(environ.get("REMOTE_ADDR", "")).split("%", 1)[0])
    except ValueError:  # a Unix socket, or nothing
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class GrabberCollector:
    """The grabber's counters from its status file, and gauges measured now."""

    def __init__(self, status_path: Path, store: PhotoStore) -> None:
        self.status_path = status_path
        self.store = store

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        status = read_status(self.status_path)
        if status is not None:
            started = status.started
            counters = [
                ("puccicam_photos_saved", "Photos saved by the grabber", status.saved),
                (
                    "puccicam_capture_failures",
                    "Capture cycles that saved no photo (camera missing, no good frame, "
                    "storage error)",
                    status.failed,
                ),
                (
                    "puccicam_camera_reconnects",
                    "Times the camera came back after being lost",
                    status.reconnects,
                ),
                (
                    "puccicam_retention_deleted",
                    "Photos deleted by retention (age or free-space floor)",
                    status.deleted,
                ),
                ("puccicam_notifications_sent", "Notifications delivered", status.notify_sent),
                (
                    "puccicam_notifications_failed",
                    "Notification delivery attempts that failed (each retry counts once)",
                    status.notify_failed,
                ),
            ]
            for name, documentation, value in counters:
                family = CounterMetricFamily(name, documentation)
                family.add_metric([], value, created=started)
                yield family
            rejected = CounterMetricFamily(
                "puccicam_frames_rejected", "Camera frames rejected, by reason", labels=["reason"]
            )
            for reason, count in sorted(status.rejected.items()):
                rejected.add_metric([reason], count, created=started)
            yield rejected
            yield GaugeMetricFamily(
                "puccicam_camera_up",
                "1 while the grabber has the camera, 0 while it is missing",
                value=1 if status.camera == "ok" else 0,
            )
            if started is not None:
                yield GaugeMetricFamily(
                    "puccicam_grabber_start_time_seconds",
                    "When the grabber that wrote the status started (Unix time)",
                    value=started,
                )
        latest = self.store.latest()
        if latest is not None:
            yield GaugeMetricFamily(
                "puccicam_newest_photo_age_seconds",
                "Seconds since the newest photo was taken",
                value=max(0.0, time.time() - latest.taken_at),
            )
        root = self.store.root if self.store.root.exists() else self.status_path.parent
        try:
            free = disk_free(root)
        except OSError:
            return
        yield GaugeMetricFamily(
            "puccicam_disk_free_bytes", "Bytes free on the photos' filesystem", value=free
        )


class Metrics:
    """The registry /metrics shows, and the web process's own counters."""

    def __init__(self, status_path: Path, store: PhotoStore) -> None:
        from prometheus_client import CollectorRegistry, Counter

        self.registry = CollectorRegistry()
        self.registry.register(GrabberCollector(status_path, store))
        self.requests = Counter(
            "puccicam_http_requests",
            "Requests the web app answered, by route (endpoint name) and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.login_failures = Counter(
            "puccicam_login_failures",
            "Failed owner logins (wrong name or password)",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "puccicam_rate_limited_requests",
            "Requests refused with 429 (login and token limits), by route",
            ["endpoint"],
            registry=self.registry,
        )

    def request(self, endpoint: str | None, status: int | str) -> None:
        """Count one answered request (Flask's hook and the photo fast path call this)."""
        label = endpoint or UNMATCHED
        self.requests.labels(label, str(status)).inc()
        if str(status) == "429":
            self.rate_limited.labels(label).inc()


def login_failed() -> None:
    """Count a failed login, when metrics are on."""
    metrics = state().metrics
    if metrics is not None:
        metrics.login_failures.inc()


@bp.route("/metrics")
@token_limit
def scrape():
    """The Prometheus text format (OpenMetrics if the scraper asks for it)."""
    metrics = state().metrics
    if metrics is None:
        abort(404)
    if not from_loopback(request.environ) and tokens.authorized("metrics") is None:
        return unauthorized()
    from prometheus_client.exposition import choose_encoder

    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    response = Response(encode(metrics.registry), content_type=content_type)
    response.headers["Cache-Control"] = "no-store"
    return response
