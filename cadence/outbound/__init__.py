"""Outbound HTTP, below every wing that calls out: which URLs may be called (``urlpolicy``:
https, or http to loopback; private and non-unicast addresses only when allowed) and how a
request is signed and retried (``signing``: Standard Webhooks signatures and stable ids;
``retry``: bounded backoff, ``Retry-After``, which statuses are retried).

Input: a URL, a secret from the environment, a body -> output: headers, a verdict, a delay.
Invariants: secrets never reach a message or a log line; nothing here reads the clock.
Used by ``load`` (a channel's URL is checked when cadence.yml is read) and by the activation
wing's webhook destination; alerts use the same pieces.
"""
