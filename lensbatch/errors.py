"""Errors that are the user's to fix: the CLI prints their one-line message and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """Base class; str(error) is the whole message, with no secrets in it."""


class CorpusError(UserError, ValueError):
    """A malformed corpus; the message names the file and line."""


class JobSpecError(UserError, ValueError):
    """A job option that cannot be used."""


class ModelUnavailable(UserError, RuntimeError):
    """A model that cannot be had (unknown name, unreachable hub, bad checkpoint)."""


class SettingsError(UserError, ValueError):
    """A LENSBATCH_ environment variable that cannot be used."""


class DatabaseUnavailable(UserError, RuntimeError):
    """The database cannot be reached; the message names the host, never the password."""


class BrokerUnavailable(UserError, RuntimeError):
    """The broker cannot be reached."""


class JobNotFound(UserError, LookupError):
    pass


class DeviceError(UserError, ValueError):
    """A device or dtype this machine cannot provide."""
