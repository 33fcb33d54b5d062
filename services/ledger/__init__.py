"""The ledger service.

Importing the package first decides which form of the compiled modules runs (the domain core,
``effects``, ``projection``: services/ledger/domain/native.py): an extension module beside
its source would otherwise be found by Python's own import before any check, so the check must
run before the first of them is imported, which only the package's own ``__init__`` guarantees.
"""

from services.ledger.domain import native

__all__ = ["native"]
