"""The run log: segment bytes (format), records (codec), the frame walk (reader), appending (writer)."""
