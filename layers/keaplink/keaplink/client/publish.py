"""Publishing application events to keaplink's queue, validated against the same schema the consumer
uses — a message that would be dead-lettered is refused here, in the app, with the reason.

    from keaplink.client.publish import publish_signup, publish_button_pressed
    publish_signup("u1", "ada@example.com", given_name="Ada")
    publish_button_pressed("u1")
    publish_untag("u1", "trial")
    publish_goal("u1", "myapp", "trial_started", event_id="trial-u1")      # once per event_id
    publish_fields("u1", {"Plan": "Pro", "Seats": 5})                      # labels or API names
    publish_note("u1", "Upgraded", "Moved to Pro", event_id="upgrade-42")  # once per event_id

The queue URL is the stack output ``QueueUrl``, passed in or read from ``KEAPLINK_QUEUE_URL``.
"""

from __future__ import annotations

from typing import Any

from keaplink.client.aws import sqs_client
from keaplink.config import client_settings
from keaplink.contract.messages import (
    ButtonPressed,
    ContactFields,
    ContactGoal,
    ContactNote,
    ContactTag,
    ContactUntag,
    Message,
    SignedUp,
    as_dict,
    to_json,
    validate,
)
from keaplink.errors import ConfigError


def publish(message: Message | dict[str, Any], queue_url: str | None = None, sqs: Any = None) -> str:
    """Validate and send one message; returns the SQS message id. Raises InvalidMessage if invalid."""
    typed = validate(message if isinstance(message, dict) else as_dict(message))
    settings = client_settings()
    url = queue_url or settings.queue_url
    if not url:
        raise ConfigError("no queue URL: pass queue_url or set KEAPLINK_QUEUE_URL (the stack output QueueUrl)")
    client = sqs or sqs_client(settings.region, settings.aws_endpoint_url)
    return str(client.send_message(QueueUrl=url, MessageBody=to_json(typed))["MessageId"])


def publish_signup(user_id: str, email: str, given_name: str | None = None, family_name: str | None = None,
                   queue_url: str | None = None, consent: str | None = None) -> str:
    """``consent``: the opt-in reason the person agreed to; without it nobody is opted in."""
    return publish(SignedUp(user_id, email, given_name, family_name, consent), queue_url)


def publish_button_pressed(user_id: str, email: str | None = None, queue_url: str | None = None) -> str:
    return publish(ButtonPressed(user_id, email), queue_url)


def publish_tag(user_id: str, tag: str, email: str | None = None, queue_url: str | None = None) -> str:
    return publish(ContactTag(user_id, tag, email), queue_url)


def publish_untag(user_id: str, tag: str, email: str | None = None, queue_url: str | None = None) -> str:
    return publish(ContactUntag(user_id, tag, email), queue_url)


def publish_goal(user_id: str, integration: str, call_name: str, event_id: str, email: str | None = None,
                 queue_url: str | None = None) -> str:
    """``event_id``: yours, unique per user and event; the goal is achieved once however often it is sent."""
    return publish(ContactGoal(user_id, integration, call_name, event_id, email), queue_url)


def publish_fields(user_id: str, fields: dict[str, Any], email: str | None = None,
                   queue_url: str | None = None) -> str:
    """``fields``: a custom field's label in Keap or its API name → its value (None clears it)."""
    return publish(ContactFields(user_id, fields, email), queue_url)


def publish_note(user_id: str, title: str, body: str, event_id: str, email: str | None = None,
                 queue_url: str | None = None) -> str:
    """``event_id``: yours, unique per user and note; the note is written once however often it is sent."""
    return publish(ContactNote(user_id, title, body, event_id, email), queue_url)
