"""The admin panel's HTML. Small, dependency-free, readable on a phone; every value is escaped."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1d2430}
main{max-width:40rem;margin:0 auto;padding:1.25rem}
h1{font-size:1.4rem;margin:.2rem 0 1rem}
.card{background:#fff;border-radius:.6rem;padding:1rem 1.2rem;box-shadow:0 1px 3px rgba(0,0,0,.08);margin-bottom:1rem}
.badge{display:inline-block;padding:.2rem .6rem;border-radius:1rem;font-weight:600}
.connected{background:#dff5e3;color:#17642b}.not_connected{background:#eceff3;color:#444}
.needs_reauth{background:#fde2e1;color:#8a1c17}.held{background:#fff1d6;color:#7a4b00}
.flowing{background:#dff5e3;color:#17642b}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.4rem 1rem;margin:0}
dt{color:#5b6575}dd{margin:0;word-break:break-all}
.btn{display:inline-block;padding:.6rem 1.1rem;border-radius:.4rem;border:0;background:#2456d6;color:#fff;
text-decoration:none;font-size:1rem;cursor:pointer;margin:.3rem .4rem .3rem 0}.btn.secondary{background:#5b6575}
.msg{padding:.7rem 1rem;border-radius:.4rem;margin-bottom:1rem}.ok{background:#dff5e3}.err{background:#fde2e1}
code{background:#eef1f5;padding:.1rem .3rem;border-radius:.2rem}
"""

_LABELS = {
    "connected": "Connected",
    "not_connected": "Not connected",
    "needs_reauth": "Needs reconnection",
}


_HOLD_REASONS = {
    "not_connected": "Keap is not connected yet",
    "needs_reauth": "Keap needs to be reconnected",
    "credentials_refused": "Keap refused keaplink's credentials (client id/secret or API key)",
    "quota_spent": "Keap's daily quota is spent",
    "throttled": "Keap keeps throttling",
    "keap_unavailable": "Keap is unavailable",
    "refresh_busy": "a token refresh is in progress",
}


def _queue_card(queue: dict[str, Any] | None) -> str:
    """The actions queue: held (why, since, until, how many wait) or flowing, and Keap's daily quota."""
    if queue is None:
        return ""
    if queue.get("held"):
        reason = str(queue.get("reason"))
        rows = [
            ("Why", _HOLD_REASONS.get(reason, reason)),
            ("Held since", queue.get("since") or "—"),
            ("Until", queue.get("until") or ("a reconnect" if reason in ("not_connected", "needs_reauth")
                                               else "unknown — Keap is probed")),
            ("Next probe", queue.get("next_probe_at") or "—"),
            ("Messages waiting", "—" if queue.get("waiting") is None else str(queue["waiting"])),
            ("Detail", queue.get("detail") or "—"),
        ]
        badge = "<span class='badge held' id='queue-status'>Held</span>"
    else:
        rows = []
        badge = "<span class='badge flowing' id='queue-status'>Flowing</span>"
    quota = queue.get("quota")
    if quota:
        limit = f" of {quota['limit']:,}" if quota.get("limit") else ""
        rows.append(("Keap quota left", f"{quota['available']:,}{limit} ({quota.get('window')}), "
                                        f"resets {quota.get('resets_at')}"))
        if quota.get("pace") == "spread" and quota.get("paced_rps") is not None:
            rows.append(("Paced at", f"{quota['paced_rps']} requests/s per container, to last until the reset"))
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in rows)
    return f"<div class='card' id='queue'><p>Actions queue: {badge}</p><dl>{dl}</dl></div>"


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )


def status_page(view: dict[str, Any], base_path: str, message: str | None = None, ok: bool = True) -> str:
    status = str(view["status"])
    rows = [
        ("Auth mode", "OAuth2" if view["auth_mode"] == "oauth" else "API key (Service Account Key / PAT)"),
        ("Keap app", view.get("tenant") or "—"),
        ("Access token expires", view.get("expires_at") or "—"),
        ("Last refreshed", view.get("refreshed_at") or "—"),
        ("Next refresh due", view.get("next_refresh_at") or "—"),
        ("Refreshes", str(view.get("refresh_count", 0))),
        ("Last error", view.get("last_error") or "none"),
    ]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in rows)
    notice = f"<div class='msg {'ok' if ok else 'err'}' id='message'>{escape(message)}</div>" if message else ""
    actions = ""
    if view["auth_mode"] == "oauth":
        label = "Connect Keap" if status == "not_connected" else "Reconnect"
        actions = f"<a class='btn' id='connect' href='{escape(base_path)}/connect'>{label}</a>"
        if status == "connected":
            actions += (
                f"<form method='post' action='{escape(base_path)}/refresh' style='display:inline'>"
                "<button class='btn secondary' id='refresh' type='submit'>Refresh now</button></form>"
            )
    body = (
        "<h1>keaplink · Keap connection</h1>"
        f"{notice}<div class='card'><p><span class='badge {escape(status)}' id='status'>"
        f"{escape(_LABELS.get(status, status))}</span></p><dl>{dl}</dl></div>"
        f"{_queue_card(view.get('queue'))}"
        f"<div class='card'>{actions}<p>Redirect URI to register in your Keap developer app:<br>"
        f"<code id='callback-url'>{escape(str(view['callback_url']))}</code></p>"
        f"<p><a href='{escape(base_path)}/status.json'>status.json</a></p></div>"
    )
    return _page("keaplink · Keap connection", body)


def error_page(title: str, detail: str, base_path: str) -> str:
    body = (
        f"<h1>{escape(title)}</h1><div class='card msg err' id='error'>{escape(detail)}</div>"
        f"<p><a class='btn' href='{escape(base_path)}/'>Back to the status page</a></p>"
    )
    return _page(f"keaplink · {title}", body)
