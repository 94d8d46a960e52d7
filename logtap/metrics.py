"""Per-call structured log line and CloudWatch EMF metrics for bedrock-runtime calls.

``observe(client, logger=..., metrics=...)`` adds, to every finished call of ``client`` (streams
when they end):

- ``logger``: one ``INFO`` line ``"bedrock call"`` with ``extra={"bedrock": {...}}`` holding
  ``operation``, ``model_id``, ``latency_ms``, ``input_tokens``, ``output_tokens``, ``tag_keys``
  (the keys of the tags sent, never their values), ``ok`` and ``error_code``. Never a prompt. Works
  with a Powertools ``Logger`` (the keys become JSON fields) or any ``logging.Logger``.
- ``metrics``: one EMF blob per call with the metrics ``BedrockCalls`` (Count),
  ``BedrockInputTokens`` / ``BedrockOutputTokens`` (Count), ``BedrockLatency`` (Milliseconds) and
  ``BedrockErrors`` (Count, failed calls), dimensioned by ``operation`` and ``model`` (plus the
  ``service`` dimension). Pass a Powertools ``Metrics`` / ``EphemeralMetrics`` (its namespace and
  service are used; each call is written as its own blob so its dimensions stay its own) or a
  namespace string.

Hooks run on the calling thread after the response is in (a few microseconds for the log line;
Powertools prints the EMF blob to stdout, where Lambda picks it up). A failing hook is logged and
never touches the call.
"""

from __future__ import annotations

import logging
from typing import Any

from logtap.sink import add_observer, remove_observer
from logtap.sink.calls import CallSummary

OBSERVER_NAME = "logtap.metrics"


def summary_fields(summary: CallSummary) -> dict[str, Any]:
    return {
        "operation": summary.operation,
        "model_id": summary.model_id,
        "latency_ms": summary.latency_ms,
        "input_tokens": summary.input_tokens,
        "output_tokens": summary.output_tokens,
        "tag_keys": summary.tag_keys,
        "ok": summary.ok,
        "error_code": summary.error_code,
    }


class CallObserver:
    def __init__(self, logger: Any = None, metrics: Any = None, *, level: int = logging.INFO) -> None:
        self.logger = logger
        self.level = level
        self.namespace: str | None = None
        self.service: str | None = None
        if isinstance(metrics, str):
            self.namespace = metrics
        elif metrics is not None:
            self.namespace = getattr(metrics, "namespace", None)
            self.service = getattr(metrics, "service", None)
        self.emit_metrics = metrics is not None

    def __call__(self, summary: CallSummary) -> None:
        if self.logger is not None:
            self.logger.log(self.level, "bedrock call", extra={"bedrock": summary_fields(summary)})
        if self.emit_metrics:
            self._emit(summary)

    def _emit(self, summary: CallSummary) -> None:
        from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

        blob = EphemeralMetrics(namespace=self.namespace, service=self.service)
        blob.add_dimension(name="operation", value=summary.operation)
        blob.add_dimension(name="model", value=summary.model_id or "unknown")
        blob.add_metric(name="BedrockCalls", unit=MetricUnit.Count, value=1)
        if summary.input_tokens is not None:
            blob.add_metric(name="BedrockInputTokens", unit=MetricUnit.Count, value=summary.input_tokens)
        if summary.output_tokens is not None:
            blob.add_metric(name="BedrockOutputTokens", unit=MetricUnit.Count, value=summary.output_tokens)
        blob.add_metric(name="BedrockLatency", unit=MetricUnit.Milliseconds, value=summary.latency_ms)
        if not summary.ok:
            blob.add_metric(name="BedrockErrors", unit=MetricUnit.Count, value=1)
        blob.flush_metrics()


def observe(client: Any, *, logger: Any = None, metrics: Any = None, level: int = logging.INFO) -> Any:
    """Log and/or emit metrics for every bedrock-runtime call of ``client``; returns ``client``.

    Calling it again replaces the settings; with neither ``logger`` nor ``metrics`` it stops.
    """
    if logger is None and metrics is None:
        remove_observer(client, OBSERVER_NAME)
    else:
        add_observer(client, OBSERVER_NAME, CallObserver(logger, metrics, level=level))
    return client


def unobserve(client: Any) -> Any:
    remove_observer(client, OBSERVER_NAME)
    return client
