"""The Replicate provider: the API client (retries, circuit breaker, proxies), file uploads, the status
page reader, and Standard Webhooks signing/verification shared by the sandbox and the receiver."""
