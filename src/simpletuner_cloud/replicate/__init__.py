"""The provider adapter for Replicate. For now only `webhooks` (Standard Webhooks signing and
verification), shared by the sandbox and the server's webhook receiver."""
