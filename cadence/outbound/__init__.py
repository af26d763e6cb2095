"""Outbound HTTP, below every wing that calls out: which URLs may be called (``urlpolicy``:
https, or http to loopback; private and non-unicast addresses only when allowed), how a request
is signed and retried (``signing``: Standard Webhooks signatures and stable ids; ``retry``:
bounded backoff, ``Retry-After``, which statuses are retried) and how it is sent
(``connections``: keep-alive connections to the checked addresses only; a failure or a response
body in one line).

Input: a URL, a secret from the environment, a body -> output: headers, a verdict, a delay, a
response. Invariants: secrets never reach a message or a log line; nothing here reads the clock
or imports a wing (each caller brings its own payload, ids' parts and budgets).
Used by ``load`` (a channel's URL is checked when cadence.yml is read) and by the activation
wing's webhook destination; alerts use the same pieces.
"""
