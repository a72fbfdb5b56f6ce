"""The trial queue: trials leased atomically (one or a group), heartbeats, progress; an RDB backend and an in-memory one."""
