"""Scenario tests: event streams in, settlements / movements / rejections / incentives out.

Each module reproduces the worked examples of shared/policy-notes.md for one region and adds hand-computed
scenarios whose arithmetic is written next to the assertion, citing the seed article it follows.
"""
