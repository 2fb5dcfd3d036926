"""Discord's size limits on messages, embeds, components and modals (400 50035 when broken)."""

from __future__ import annotations

from typing import Any

from tests.fakediscord.errors import ApiError, FormErrors

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
ATTACHMENTS_MAX = 10
ACTION_ROWS_MAX = 5
ROW_BUTTONS_MAX = 5
CUSTOM_ID_MAX = 100
BUTTON_LABEL_MAX = 80
MODAL_TITLE_MAX = 45
MODAL_COMPONENTS_MAX = 5
TEXT_INPUT_VALUE_MAX = 4000
COMPONENTS_V2_FLAG = 1 << 15
SELECT_TYPES = frozenset({3, 5, 6, 7, 8})
LINK_STYLE = 5


def check_message(payload: dict[str, Any], *, attachment_count: int) -> None:
    """Raise Discord's 400 for a message body (create or edit) that breaks a limit."""
    form = FormErrors()
    form.max_length("content", payload.get("content"), CONTENT_MAX)
    embeds = payload.get("embeds")
    form.max_items("embeds", embeds, EMBEDS_MAX)
    total = 0
    for index, embed in enumerate(embeds or []):
        total += _check_embed(form, f"embeds.{index}", embed)
    if total > EMBED_TOTAL_MAX:
        form.add("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
    if attachment_count > ATTACHMENTS_MAX:
        form.add("attachments", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    components = payload.get("components") or []
    if int(payload.get("flags") or 0) & COMPONENTS_V2_FLAG:
        _check_custom_ids(form, components)
    else:
        _check_action_rows(form, components)
    form.raise_if_any()


def check_not_empty(payload: dict[str, Any], *, attachment_count: int) -> None:
    if not (
        payload.get("content")
        or payload.get("embeds")
        or payload.get("components")
        or payload.get("poll")
        or attachment_count
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")


def _check_embed(form: FormErrors, path: str, embed: dict[str, Any]) -> int:
    texts = {
        "title": (embed.get("title"), 256),
        "description": (embed.get("description"), 4096),
        "footer.text": ((embed.get("footer") or {}).get("text"), 2048),
        "author.name": ((embed.get("author") or {}).get("name"), 256),
    }
    total = 0
    for key, (value, limit) in texts.items():
        form.max_length(f"{path}.{key}", value, limit)
        total += len(value or "")
    fields = embed.get("fields") or []
    form.max_items(f"{path}.fields", fields, 25)
    for index, embed_field in enumerate(fields):
        form.max_length(f"{path}.fields.{index}.name", embed_field.get("name"), 256)
        form.max_length(f"{path}.fields.{index}.value", embed_field.get("value"), 1024)
        total += len(embed_field.get("name") or "") + len(embed_field.get("value") or "")
    return total


def _check_action_rows(form: FormErrors, rows: list[dict[str, Any]]) -> None:
    form.max_items("components", rows, ACTION_ROWS_MAX)
    for index, row in enumerate(rows):
        path = f"components.{index}"
        if row.get("type") != 1:
            form.add(f"{path}.type", "UNION_TYPE_CHOICES", "Top-level components must be rows.")
            continue
        children = row.get("components") or []
        selects = [c for c in children if c.get("type") in SELECT_TYPES]
        if selects and len(children) > 1:
            form.add(path, "COMPONENT_LAYOUT_WIDTH_EXCEEDED", "A select fills its whole row.")
        form.max_items(f"{path}.components", children, ROW_BUTTONS_MAX)
        for child_index, child in enumerate(children):
            _check_button(form, f"{path}.components.{child_index}", child)
    _check_custom_ids(form, rows)


def _check_button(form: FormErrors, path: str, button: dict[str, Any]) -> None:
    if button.get("type") != 2:
        return
    form.max_length(f"{path}.label", button.get("label"), BUTTON_LABEL_MAX)
    if button.get("style") == LINK_STYLE:
        if not button.get("url"):
            form.add(f"{path}.url", "BASE_TYPE_REQUIRED", "This field is required")
    elif not button.get("custom_id"):
        form.add(f"{path}.custom_id", "BASE_TYPE_REQUIRED", "This field is required")


def _check_custom_ids(form: FormErrors, components: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    stack = list(components)
    while stack:
        component = stack.pop()
        stack.extend(component.get("components") or [])
        stack.extend(component[k] for k in ("component", "accessory") if k in component)
        custom_id = component.get("custom_id")
        if custom_id is None:
            continue
        form.max_length("components.custom_id", custom_id, CUSTOM_ID_MAX)
        if custom_id in seen:
            form.add(
                "components",
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                f"Component custom id cannot be duplicated: {custom_id}",
            )
        seen.add(custom_id)


def check_modal(data: dict[str, Any]) -> None:
    """Raise Discord's 400 for a modal (interaction callback type 9) that breaks a limit."""
    form = FormErrors()
    form.max_length("data.title", data.get("title"), MODAL_TITLE_MAX)
    form.max_length("data.custom_id", data.get("custom_id"), CUSTOM_ID_MAX)
    components = data.get("components") or []
    if not components:
        form.add("data.components", "BASE_TYPE_MIN_LENGTH", "Must be 1 or more in length.")
    form.max_items("data.components", components, MODAL_COMPONENTS_MAX)
    for index, text_input in enumerate(modal_inputs(data)):
        path = f"data.components.{index}"
        form.max_length(f"{path}.label", text_input.get("label"), MODAL_TITLE_MAX)
        form.max_length(f"{path}.placeholder", text_input.get("placeholder"), 100)
        form.max_length(f"{path}.value", text_input.get("value"), TEXT_INPUT_VALUE_MAX)
        form.max_length(f"{path}.custom_id", text_input.get("custom_id"), CUSTOM_ID_MAX)
    form.raise_if_any()


def modal_inputs(modal: dict[str, Any]) -> list[dict[str, Any]]:
    """The text inputs of a modal, whether wrapped in action rows (1) or labels (18)."""
    inputs = []
    for component in modal.get("components") or []:
        children = component.get("components") or [component.get("component") or {}]
        for child in children:
            if child.get("type") == 4:
                labelled = dict(child)
                labelled.setdefault("label", component.get("label"))
                inputs.append(labelled)
    return inputs
