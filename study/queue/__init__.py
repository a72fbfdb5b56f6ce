"""The trial queue: trials in an RDB store, claimed atomically (one or a group), heartbeats, progress."""
