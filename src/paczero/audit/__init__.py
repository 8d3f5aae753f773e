"""Membership-inference audits of finished runs: pure metrics, the attacks, and ``paczero audit``."""

from paczero.audit.run import audit_run

__all__ = ["audit_run"]
