"""The vocabulary every layer shares: trial statuses, record names, errors, text helpers.

Nothing here imports another part of `study`, so any module may import it.
"""
