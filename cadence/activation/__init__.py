"""Activation: delivering segments to channels (SPEC §7).

Membership history, audiences per channel, the outbox of pending changes and one module per
destination. Entered from ``Project.run`` after publish and from ``cadence export``.
"""
