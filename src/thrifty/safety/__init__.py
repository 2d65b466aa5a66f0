"""Data protection for what thrifty stores: PII detection and encryption at rest.

- :mod:`thrifty.safety.pii`: find, test for and redact personal data in texts and in
  OpenAI-shaped requests and responses (``PIIDetector``, ``PIIMode``).
- :mod:`thrifty.safety.crypto`: AES-GCM sealing of stored payloads with rotatable named keys
  (``Keyring``) and keyed hashing of user ids.

Each is imported on its own, so a deployment without the ``safety`` extra never loads
``phonenumbers`` or ``cryptography``.
"""
