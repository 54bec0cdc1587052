"""Versioned schema migrations, read as package data by ``acd.storage``.

``NNNN_name.sqlite.sql`` and ``NNNN_name.postgres.sql`` hold one version for
each dialect (``NNNN_name.sql`` would serve both). A released file is never
edited: a change is a new version.
"""
