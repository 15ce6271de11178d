"""The admin panel's HTML. Small, dependency-free, readable on a phone; every value is escaped.

No text of a request ever reaches a page: notices are chosen by a code from a fixed set
(:data:`DONE_MESSAGES`), Keap's OAuth errors by their ``error`` code (:data:`OAUTH_ERRORS`). The one inline
stylesheet is allowed by its hash in the Content-Security-Policy (:data:`CSP`); nothing else may load.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any

from keaplink.text import printable

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
code{background:#eef1f5;padding:.1rem .3rem;border-radius:.2rem}.inline{display:inline}
h2{font-size:1.05rem;margin:0 0 .6rem}ol,ul{margin:0;padding-left:1.2rem}li{margin:.25rem 0;word-break:break-word}
.when{color:#5b6575;font-variant-numeric:tabular-nums}.muted{color:#5b6575}
label{display:block;margin:.6rem 0 .2rem;font-weight:600}
input{box-sizing:border-box;width:100%;padding:.5rem;font:inherit;border:1px solid #c4cad4;border-radius:.3rem}
"""
_STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
# Nothing but this page's own stylesheet; forms post only to this origin; no page may frame this one.
CSP = (f"default-src 'none'; style-src '{_STYLE_HASH}'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")

# ?done=<code> after a successful action → the notice shown. Unknown codes show nothing.
DONE_MESSAGES = {
    "connected": "Keap connected.",
    "refreshed": "Token refreshed.",
    "fresh": "Token is fresh.",
    "imported": "Token pair imported: keaplink refreshed it once and keeps it fresh from now on.",
}

# Keap's ``error`` (RFC 6749, 4.1.2.1) → what the admin reads. Keap's free-text ``error_description`` is
# only logged: an attacker can send anyone a callback link with any text in it.
OAUTH_ERRORS = {
    "access_denied": "Keap reported that access was denied.",
    "server_error": "Keap reported an error on its side (a wrong client id gives this too).",
    "temporarily_unavailable": "Keap reported that it is temporarily unavailable.",
    "invalid_request": "Keap reported that the authorization request was invalid.",
    "unauthorized_client": "Keap reported that this client may not ask for authorization.",
    "unsupported_response_type": "Keap reported that it does not support this kind of authorization.",
    "invalid_scope": "Keap reported that the requested scope is invalid.",
}
OAUTH_ERROR_UNKNOWN = "Keap reported an error keaplink does not know."

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
    "opening_failed": "a batch could not open (AWS: KMS, DynamoDB or Secrets Manager refused)",
    "config_error": "keaplink's configuration cannot work (see the detail)",
    "paused_by_operator": "paused by an operator (keaplink resume lifts it)",
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
                                               else "keaplink resume" if reason == "paused_by_operator"
                                               else "unknown — Keap is probed")),
            ("Next probe", queue.get("next_probe_at") or "—"),
            ("Messages waiting", "—" if queue.get("waiting") is None else str(queue["waiting"])),
            ("Detail", queue.get("detail") or "—"),
        ]
        if queue.get("lifting_at"):
            rows.insert(0, ("Resuming", f"Keap serves again ({queue['lifting_at']}): the hold ends once the event "
                                        "source is enabled"))
        badge = "<span class='badge held' id='queue-status'>Held</span>"
    else:
        rows = []
        badge = "<span class='badge flowing' id='queue-status'>Flowing</span>"
    mapping = queue.get("mapping")
    if mapping:
        rows.append(("Event source", f"{mapping.get('state')} (seen {mapping.get('seen_at')})"))
    quota = queue.get("quota")
    if quota:
        limit = f" of {quota['limit']:,}" if quota.get("limit") else ""
        rows.append(("Keap quota left", f"{quota['available']:,}{limit} ({quota.get('window')}), "
                                        f"resets {quota.get('resets_at')}"))
        if quota.get("pace") == "spread" and quota.get("paced_rps") is not None:
            rows.append(("Paced at", f"{quota['paced_rps']} requests/s per container, to last until the reset"))
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in rows)
    return f"<div class='card' id='queue'><p>Actions queue: {badge}</p><dl>{dl}</dl></div>"


def _page(title: str, body: str, head: str = "") -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'>{head}"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )


# ?done=<code> on the sign-in page, and what a refused sign-in shows: fixed texts only.
SIGN_IN_NOTICES = {"signed_out": "You are signed out."}
SIGN_IN_ERRORS = {
    "wrong": "Wrong user name or password.",
    "missing": "Enter the user name and the password.",
}


def sign_in_page(base_path: str, done: str | None = None, error: str | None = None) -> str:
    """The sign-in form, written so that password managers recognise it and fill it in."""
    notice = SIGN_IN_NOTICES.get(done or "")
    problem = SIGN_IN_ERRORS.get(error or "")
    banner = (f"<div class='msg err' id='error'>{escape(problem)}</div>" if problem
              else f"<div class='msg ok' id='message'>{escape(notice)}</div>" if notice else "")
    body = (
        "<h1>keaplink · Sign in</h1>"
        f"{banner}<div class='card'><form method='post' action='{escape(base_path)}/signin' id='signin'>"
        "<label for='username'>User name</label>"
        "<input type='text' id='username' name='username' autocomplete='username' autocapitalize='off' "
        "spellcheck='false' required maxlength='64'>"
        "<label for='password'>Password</label>"
        "<input type='password' id='password' name='password' autocomplete='current-password' required "
        "maxlength='512'>"
        "<p><button class='btn' id='sign-in' type='submit'>Sign in</button></p></form>"
        "<p class='muted'>The user name is <code>admin</code>; the password is in the admin secret "
        "(<code>AdminSecretArn</code> in the stack's outputs).</p></div>"
    )
    return _page("keaplink · Sign in", body)


def continue_page(message: str, url: str) -> str:
    """A notice that moves on to ``url`` by itself (a navigation of this site's own, unlike a redirect)."""
    body = (f"<h1>keaplink</h1><div class='msg ok' id='message'>{escape(message)}</div>"
            f"<p><a class='btn' id='continue' href='{escape(url)}'>Continue to the status page</a></p>")
    return _page("keaplink", body, head=f"<meta http-equiv='refresh' content='0;url={escape(url)}'>")


def status_page(view: dict[str, Any], base_path: str, done: str | None = None) -> str:
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
    message = DONE_MESSAGES.get(done or "")
    notice = f"<div class='msg ok' id='message'>{escape(message)}</div>" if message else ""
    actions = ""
    if view["auth_mode"] == "oauth":
        label = "Connect Keap" if status == "not_connected" else "Reconnect"
        actions = f"<a class='btn' id='connect' href='{escape(base_path)}/connect'>{label}</a>"
        if status == "connected":
            actions += (
                f"<form method='post' action='{escape(base_path)}/refresh' class='inline'>"
                "<button class='btn secondary' id='refresh' type='submit'>Refresh now</button></form>"
            )
    body = (
        "<h1>keaplink · Keap connection</h1>"
        f"{notice}<div class='card'><p><span class='badge {escape(status)}' id='status'>"
        f"{escape(_LABELS.get(status, status))}</span></p><dl>{dl}</dl></div>"
        f"{_queue_card(view.get('queue'))}"
        f"<div class='card'>{actions}<p>Redirect URI to register in your Keap developer app:<br>"
        f"<code id='callback-url'>{escape(str(view['callback_url']))}</code></p>"
        f"<p><a href='{escape(base_path)}/status.json'>status.json</a></p>"
        f"<form method='post' action='{escape(base_path)}/signout' class='inline'>"
        "<button class='btn secondary' id='sign-out' type='submit'>Sign out</button></form></div>"
        f"{_timeline_card(view.get('timeline'))}{_dead_letters_card(view.get('dead_letters'))}"
        f"{_import_card(base_path) if view['auth_mode'] == 'oauth' else ''}"
    )
    return _page("keaplink · Keap connection", body)


def _import_card(base_path: str) -> str:
    """Start from an access/refresh token pair generated in Keap's developer portal (POST, same origin only)."""
    field = ("<input type='password' id='{0}' name='{0}' required maxlength='2048' autocomplete='off' "
             "autocapitalize='off' spellcheck='false'>")
    return (
        "<div class='card' id='import'><h2>Start from a token pair</h2>"
        "<p>Generated an access token and a refresh token for keaplink's developer app in Keap's developer "
        "portal? Paste them here. keaplink checks them with Keap and refreshes them once right away: the pair "
        "you paste stops working, the live one is kept only here, encrypted, and kept fresh from then on. "
        "This replaces the current connection.</p>"
        f"<form method='post' action='{escape(base_path)}/tokens' autocomplete='off'>"
        f"<label for='access_token'>Access token</label>{field.format('access_token')}"
        f"<label for='refresh_token'>Refresh token</label>{field.format('refresh_token')}"
        "<p><button class='btn' id='import-tokens' type='submit'>Import token pair</button></p></form></div>"
    )


def _outside(text: object, limit: int = 300) -> str:
    """Text keaplink did not write (Keap's answers, an application's messages): control and bidi characters
    shown escaped, then HTML-escaped."""
    return escape(printable(str(text), limit))


def _timeline_card(events: list[dict[str, Any]] | None) -> str:
    if events is None:
        items = "<p class='muted'>The timeline could not be read (see the function's logs).</p>"
    elif not events:
        items = "<p class='muted'>Nothing has happened yet.</p>"
    else:
        rows = "".join(
            f"<li><span class='when'>{escape(str(e['at']))}</span> {escape(str(e['label']))}"
            + (f" <span class='muted'>— {_outside(e['detail'])}</span>" if e.get("detail") else "") + "</li>"
            for e in events
        )
        items = f"<ol reversed>{rows}</ol>"
    return f"<div class='card' id='timeline'><h2>Recent events (newest first)</h2>{items}</div>"


def _dead_letters_card(dead: dict[str, Any] | None) -> str:
    if dead is None:
        content = "<p class='muted'>The dead-letter queue could not be read (see the function's logs).</p>"
    else:
        count = int(dead["count"])
        content = (f"<p><strong id='dead-letter-count'>{count}</strong> message{'' if count == 1 else 's'} "
                   "in the dead-letter queue.</p>")
        if dead["newest"]:
            rows = "".join(
                f"<li><span class='when'>{escape(str(x['sent_at'] or '—'))}</span> {_outside(x['reason'])}</li>"
                for x in dead["newest"]
            )
            content += f"<p>Newest reasons:</p><ul id='dead-letter-reasons'>{rows}</ul>"
        if count:
            content += ("<p class='muted'>Inspect and send back with <code>keaplink dlq list</code> and "
                        "<code>keaplink dlq redrive --all</code>.</p>")
    return f"<div class='card' id='dead-letters'><h2>Dead letters</h2>{content}</div>"


def error_page(title: str, detail: str, base_path: str) -> str:
    body = (
        f"<h1>{escape(title)}</h1><div class='card msg err' id='error'>{escape(detail)}</div>"
        f"<p><a class='btn' href='{escape(base_path)}/'>Back to the status page</a></p>"
    )
    return _page(f"keaplink · {title}", body)


def locked_out_page(retry_after_s: int) -> str:
    minutes = max(1, -(-retry_after_s // 60))
    body = (
        "<h1>Too many failed sign-ins</h1><div class='card msg err' id='error'>Too many wrong passwords came "
        f"from your address. Sign-ins from it are refused for {minutes} more minute{'s' if minutes > 1 else ''};"
        " then try again with the right password.</div>"
    )
    return _page("keaplink · Too many failed sign-ins", body)
