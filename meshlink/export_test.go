package meshlink

// RetryDelay is retryDelay, for the external tests.
var RetryDelay = retryDelay
