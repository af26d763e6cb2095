"""Text for what activation returns: delivery lines after a run or export, the dry-run preview,
members and their history, and the per-channel delivery status. Pure functions: values in,
strings out (the CLI prints them)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from cadence.activation.deliver import DeliveryReport
from cadence.activation.preview import PreviewRow
from cadence.activation.roster import MembersAnswer


def delivery_lines(report: DeliveryReport) -> list[str]:
    lines = []
    for d in report.deliveries:
        where = f"{d.channel}/{d.segment}"
        if d.status == "delivered":
            span = f"changes {d.first_seq}-{d.last_seq}"
            target = f" -> {d.path}" if d.path else ""
            flag = " (replace)" if d.replace else ""
            lines.append(
                f"delivered {where}: {d.entered} entered, {d.exited} exited, {span}{flag}{target}"
            )
        elif d.status == "nothing":
            lines.append(f"delivered {where}: no changes")
        elif d.status == "skipped":
            lines.append(f"skipped {where}: {d.error}")
        else:
            status = d.status.replace("_", " ")
            reason = (d.error or "").removeprefix(f"{status}: ")  # not "held back: held back:"
            lines.append(f"error: delivery {where} {status}: {reason}")
            if d.status == "failed":
                lines.append(
                    "  hint: nothing past the last acknowledged change was marked delivered; "
                    f"fix the cause, then 'cadence export --channel {d.channel}' (or the next "
                    "run) sends the pending changes"
                )
    return lines


def preview_lines(rows: Sequence[PreviewRow]) -> list[str]:
    if not rows:
        return ["nothing to deliver (no channel with an export has been built yet)"]
    lines = ["dry run: nothing is moved"]
    for r in rows:
        if r.failed:  # its delivery would fail: an error (stderr, exit 1)
            lines.append(f"error: {r.channel}/{r.segment}: {r.error}")
            continue
        if r.error:
            lines.append(f"{r.channel}/{r.segment}: {r.error}")
            continue
        lines.append(
            f"{r.channel}/{r.segment}: {r.entered} entered, {r.exited} exited, "
            f"{r.suppressed} suppressed, {r.held_out} held out"
            + (f", {r.pending} pending from earlier" if r.pending else "")
        )
        for kind in ("entered", "exited", "suppressed", "held_out"):
            if r.samples.get(kind):
                lines.append(f"  {kind.replace('_', ' ')}: " + ", ".join(r.samples[kind]))
    return lines


def member_lines(found: MembersAnswer, tz: dt.tzinfo) -> list[str]:
    if found.changes is not None:
        return [
            f"{c.change_id:>8}  {c.at.astimezone(tz):%Y-%m-%d %H:%M %Z}  {c.change:<8} {c.key}"
            for c in found.changes
        ]
    return list(found.keys)


def members_note(found: MembersAnswer, tz: dt.tzinfo) -> str | None:
    """When the answer comes from the snapshot: why, and as of when (stderr)."""
    if found.as_of is None:
        return None
    return (
        f"note: {found.note}; showing members as of "
        f"{found.as_of.astimezone(tz):%Y-%m-%d %H:%M %Z} ({found.source})"
    )


def members_json(found: MembersAnswer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "segment": found.segment,
        "as_of": found.as_of.isoformat() if found.as_of else None,
    }
    if found.changes is None:
        body["members"] = list(found.keys)
        return body
    body["changes"] = [
        {
            "change_id": c.change_id,
            "segment": c.segment,
            "key": c.key,
            "change": c.change,
            "run_id": c.run_id,
            "tick": c.tick.isoformat() if c.tick else None,
            "at": c.at.isoformat(),
        }
        for c in found.changes
    ]
    return body


def member_output(found: MembersAnswer, tz: dt.tzinfo, as_json: bool) -> list[tuple[str, bool]]:
    """What ``cadence members`` prints: (line, to stderr); the as-of note goes to stderr, so
    keys and JSON on stdout stay clean for pipes."""
    note = members_note(found, tz)
    out = [(note, True)] if note else []
    if as_json:
        return [*out, (json.dumps(members_json(found), indent=2), False)]
    return [*out, *((line, False) for line in member_lines(found, tz))]


def status_lines(rows: Sequence[dict[str, Any]], tz: dt.tzinfo) -> list[str]:
    """Per channel: the tick its last delivery served and its next delivery; then per channel
    x segment the last delivery and the changes pending."""
    if not rows:
        return []
    lines = ["", "deliveries:"]
    shown: set[str] = set()
    for r in rows:
        if r["channel"] not in shown and r.get("delivery"):
            shown.add(r["channel"])
            lines.append(_channel_line(r["channel"], r["delivery"], tz))
        last = r.get("last")
        if last is None:
            said = "never delivered"
        else:
            said = f"last {last['status']} {_when(last['started_at'], tz)}"
            if last["export_id"]:
                said += f" ({last['export_id']})"
            if last["error"]:
                said += f": {last['error']}"
        more = (
            "; published since it was last frozen (a run stopped before delivering): the next "
            f"run or 'cadence export --channel {r['channel']}' delivers it"
            if r.get("behind")
            else ""
        )
        lines.append(f"  {r['channel']}/{r['segment']}: {said}; {r['pending']} pending{more}")
    return lines


def _when(t: dt.datetime | None, tz: dt.tzinfo) -> str:
    return "-" if t is None else t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _channel_line(channel: str, d: dict[str, Any], tz: dt.tzinfo) -> str:
    """``email (daily at 05:00): last delivery served tick ...; next delivery ...``"""
    parts = []
    if not d["delivered"]:
        parts.append("never delivered (its first delivery is at once)")
    elif d["served_tick"] is not None:
        parts.append(f"last delivery served tick {_when(d['served_tick'], tz)}")
    if d.get("waiting_tick") is not None:
        parts.append(
            f"behind: tick {_when(d['waiting_tick'], tz)} not delivered yet (the next "
            "'cadence run --due' builds what it needs and delivers it)"
        )
    if d.get("next_delivery") is not None:
        parts.append(f"next delivery {_when(d['next_delivery'], tz)}")
    cadence = f" ({d['cadence']})" if d.get("cadence") else ""
    return f"  {channel}{cadence}: " + ("; ".join(parts) or "no ticks")
