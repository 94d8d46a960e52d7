"""Converters: every logged Bedrock request/response shape to one normalized conversation,
and writers from that conversation to training formats. Imported as ``logtap.converters``."""
