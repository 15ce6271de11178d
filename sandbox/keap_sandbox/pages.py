"""HTML pages: the consent page, the authorize error page and the ``/_sandbox/`` overview."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = (
    "body{font-family:sans-serif;max-width:46em;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    "button{font-size:1.1em;margin-right:1em;padding:.4em 1.2em}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def consent_page(app_name: str, tenant: str, params: dict[str, str], action: str) -> str:
    """The "Allow <app> to access <tenant>?" page; the form posts the params back with a decision."""
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in params.items())
    question = f"Allow {app_name} to access {tenant}?"
    body = (
        "<h1>Keap sandbox</h1>"
        f'<h2 id="question">{escape(question)}</h2>'
        f"<p>After you decide you will be sent to <code>{escape(params.get('redirect_uri', ''))}</code>.</p>"
        f'<form method="post" action="{escape(action)}">{hidden}'
        '<button id="allow" name="decision" value="allow" type="submit">Allow</button>'
        '<button id="deny" name="decision" value="deny" type="submit">Deny</button>'
        "</form>"
    )
    return _page(question, body)


def error_page(message: str) -> str:
    return _page("Keap sandbox: error", f'<h1>Authorization error</h1><p id="error">{escape(message)}</p>')


def overview_page(snapshot: dict[str, Any], config: dict[str, Any], base_url: str) -> str:
    """Human-readable overview of contacts and tags for the local demo."""
    tag_names = {t["id"]: t["name"] for t in snapshot["tags"]}
    rows = []
    for c in snapshot["contacts"]:
        name = " ".join(p for p in (c.get("given_name"), c.get("family_name")) if p)
        emails = ", ".join(e["email"] for e in c.get("email_addresses", []))
        tags = ", ".join(tag_names.get(t, t) for t in c.get("tag_ids", []))
        rows.append(
            f"<tr><td>{escape(c['id'])}</td><td>{escape(name)}</td>"
            f"<td>{escape(emails)}</td><td>{escape(tags)}</td></tr>"
        )
    tag_rows = [
        f"<tr><td>{escape(t['id'])}</td><td>{escape(t['name'])}</td><td>{escape(t.get('description') or '')}</td></tr>"
        for t in snapshot["tags"]
    ]
    tok = snapshot["tokens"]
    checked = snapshot["contract"]
    contract = (
        f"<p>Keap's v2 contract: checked, <b>{checked['violations']}</b> violation(s) "
        f'(<a href="{escape(base_url)}/_sandbox/contract">list</a>).</p>'
        if checked["validating"]
        else "<p>Keap's v2 contract: not checked (start with <code>--validate-contract</code>).</p>"
    )
    body = (
        "<h1>Keap sandbox</h1>"
        f"<p>Tenant <b>{escape(str(config['tenant']))}</b>, client id "
        f"<code>{escape(str(config['client_id']))}</code>. "
        f"REST base <code>{escape(base_url)}/crm/rest</code>, token URL "
        f"<code>{escape(base_url)}/token</code>.</p>"
        f"<p>Tokens: {tok['live_access']} live access, {tok['live_refresh']} live refresh, "
        f"{tok['refreshes']} refreshes, {tok['code_exchanges']} code exchanges.</p>"
        + contract
        + f"<h2>Contacts ({len(rows)})</h2>"
        '<table id="contacts"><tr><th>ID</th><th>Name</th><th>Email</th><th>Tags</th></tr>' + "".join(rows) + "</table>"
        f"<h2>Tags ({len(tag_rows)})</h2>"
        '<table id="tags"><tr><th>ID</th><th>Name</th><th>Description</th></tr>' + "".join(tag_rows) + "</table>"
    )
    return _page("Keap sandbox", body)
