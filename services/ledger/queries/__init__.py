"""Back-office read queries of the ledger service (issue 3 section 4).

``LedgerQueriesMixin`` (servicer methods) over SQL query functions in :mod:`.dashboard`,
:mod:`.accounts`, :mod:`.events` and :mod:`.invoices`, fast on the ``query_*`` support tables
of migration 0004; currency conversion in :mod:`.fx`, event lenses in :mod:`.lenses`.
"""

from services.ledger.queries.servicer import LedgerQueriesMixin

__all__ = ["LedgerQueriesMixin"]
