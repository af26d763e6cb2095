"""The file system, at the bottom of every stage: what cadence reads from a project folder and
how it writes beside it.

- ``files``: the project's input files as the file system holds them (only regular files, inside
  the project, non-blocking opens, bounded reads): the loader reads through it.
- ``artifacts``: everything cadence writes (target/, exports, members files, the lock holder) is
  owner-only and atomic (temporary name, fsync, rename) whatever the caller's umask.
- ``reserve``: space a run keeps under target/ and gives back when the disk is full, so the
  record of a failure still fits.

Imports nothing of cadence but ``errors``; every stage and wing above may use it.
"""
