"""Operator tools that act on frame folders directly: test-frame generation and safe cleanup."""
