"""Publishing application events to keaplink's queue, validated against the same schema the consumer
uses — a message that would be dead-lettered is refused here, in the app, with the reason.

    from keaplink.publish import publish_signup, publish_button_pressed
    publish_signup("u1", "ada@example.com", given_name="Ada")
    publish_button_pressed("u1")

The queue URL is the stack output ``QueueUrl``, passed in or read from ``KEAPLINK_QUEUE_URL``.
"""

from __future__ import annotations

import os
from typing import Any

from keaplink import aws
from keaplink.config import ConfigError
from keaplink.messages import ButtonPressed, ContactTag, Message, SignedUp, to_json, validate


def _queue_url(queue_url: str | None) -> str:
    url = queue_url or os.environ.get("KEAPLINK_QUEUE_URL", "")
    if not url:
        raise ConfigError("no queue URL: pass queue_url or set KEAPLINK_QUEUE_URL (the stack output QueueUrl)")
    return url


def publish(message: Message | dict[str, Any], queue_url: str | None = None, sqs: Any = None) -> str:
    """Validate and send one message; returns the SQS message id. Raises InvalidMessage if invalid."""
    typed = validate(message if isinstance(message, dict) else _as_dict(message))
    answer = (sqs or aws.client("sqs")).send_message(QueueUrl=_queue_url(queue_url), MessageBody=to_json(typed))
    return str(answer["MessageId"])


def _as_dict(message: Message) -> dict[str, Any]:
    return {k: v for k, v in message.__dict__.items() if v is not None}


def publish_signup(user_id: str, email: str, given_name: str | None = None, family_name: str | None = None,
                   queue_url: str | None = None) -> str:
    return publish(SignedUp(user_id, email, given_name, family_name), queue_url)


def publish_button_pressed(user_id: str, email: str | None = None, queue_url: str | None = None) -> str:
    return publish(ButtonPressed(user_id, email), queue_url)


def publish_tag(user_id: str, tag: str, email: str | None = None, queue_url: str | None = None) -> str:
    return publish(ContactTag(user_id, tag, email), queue_url)
