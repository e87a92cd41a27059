"""The domain core: business rules and use-cases, free of HTTP and of any engine library.

Domain functions own their transactions and raise `berth.domain.errors` exceptions; the API
layer maps those to status codes per dialect.
"""
