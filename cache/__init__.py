"""Answers cached for reads: the Redis cache shared by every process, the per-process cache in
front of it, invalidation between them, and the encoding of a cached answer."""
