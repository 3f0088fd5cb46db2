#!/usr/bin/env python3
"""Grafana dashboards as code: writes dashboards/*.json, which Grafana provisions (file provider) and
the Helm chart ships as ConfigMaps labelled grafana_dashboard="1". Never edit the JSON by hand; change
this file and run it. A test fails when the JSON and this generator disagree.

    python3 observability/grafana/dashboards.py
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "dashboards")

PROM = {"type": "prometheus", "uid": "${datasource}"}
LOKI = {"type": "loki", "uid": "${loki}"}
API = 'job="$job", endpoint!~"/health|/ready|/metrics"'
# Grafana fills the current value of a variable at load time.
NONE = {"text": "", "value": ""}


def datasource_var(name, kind, label):
    return {"name": name, "label": label, "type": "datasource", "query": kind, "current": NONE, "hide": 0,
            "refresh": 1, "regex": "", "options": [], "includeAll": False, "multi": False}


def job_var():
    return {"name": "job", "label": "Job", "type": "query", "datasource": PROM,
            "query": "label_values(app_build_info, job)",
            "definition": "label_values(app_build_info, job)", "refresh": 2, "current": NONE,
            "options": [], "includeAll": False, "multi": False, "hide": 0, "regex": "", "sort": 1}


def namespace_var():
    return {"name": "namespace", "label": "Namespace", "type": "query", "datasource": LOKI,
            "query": 'label_values({app="devsecops-app"}, namespace)',
            "definition": 'label_values({app="devsecops-app"}, namespace)', "refresh": 2, "current": NONE,
            "options": [], "includeAll": True, "allValue": ".+",
            "multi": True, "hide": 0, "regex": "", "sort": 1}


def textbox_var(name, label):
    return {"name": name, "label": label, "type": "textbox", "query": "", "current": NONE,
            "options": [], "hide": 0}


class Board:
    def __init__(self, uid, title, description, variables):
        self.uid, self.title, self.description, self.variables = uid, title, description, variables
        self.panels = []
        self.x = self.y = 0
        self.row_height = 0

    def add(self, kind, title, unit, targets, width=12, height=8, description="", datasource=PROM, **options):
        if self.x + width > 24:
            self.x, self.y = 0, self.y + self.row_height
            self.row_height = 0
        panel = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": datasource,
            "gridPos": {"x": self.x, "y": self.y, "w": width, "h": height},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": options or {},
            "targets": [dict(t, refId=chr(ord("A") + i), datasource=datasource) for i, t in enumerate(targets)],
        }
        self.panels.append(panel)
        self.x += width
        self.row_height = max(self.row_height, height)
        return panel

    def to_json(self):
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["devsecops-app"],
            "timezone": "browser",
            "editable": False,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "weekStart": "",
            "links": [],
            "annotations": {"list": []},
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


def prom(expr, legend="__auto"):
    return {"expr": expr, "legendFormat": legend, "range": True}


def loki(expr, legend="", query_type="range"):
    return {"expr": expr, "legendFormat": legend, "queryType": query_type}


def application():
    b = Board("devsecops-app-red", "devsecops-app: requests, errors, duration",
              "RED metrics by route, saturation, database pool and SLOs of devsecops-app.",
              [datasource_var("datasource", "prometheus", "Prometheus"), job_var()])
    b.add("timeseries", "Request rate by route", "reqps",
          [prom('sum by (endpoint) (rate(http_requests_total{job="$job"}[$__rate_interval]))', "{{endpoint}}")])
    b.add("timeseries", "5xx ratio by route", "percentunit",
          [prom('sum by (endpoint) (rate(http_requests_total{job="$job", status=~"5.."}[$__rate_interval]))'
                ' / (sum by (endpoint) (rate(http_requests_total{job="$job"}[$__rate_interval])) > 0)',
                "{{endpoint}}")])
    b.add("timeseries", "p95 latency by route", "s",
          [prom('histogram_quantile(0.95, sum by (le, endpoint) '
                '(rate(http_request_duration_seconds_bucket{job="$job"}[$__rate_interval])))', "{{endpoint}}")])
    b.add("timeseries", "Latency percentiles (API)", "s",
          [prom(f'histogram_quantile({q}, sum by (le) '
                f'(rate(http_request_duration_seconds_bucket{{{API}}}[$__rate_interval])))', f"p{int(q * 100)}")
           for q in (0.5, 0.95, 0.99)])
    b.add("timeseries", "Responses by status", "reqps",
          [prom('sum by (status) (rate(http_requests_total{job="$job"}[$__rate_interval]))', "{{status}}")])
    b.add("timeseries", "In-flight requests", "short",
          [prom('sum by (instance) (http_requests_in_flight{job="$job"})', "{{instance}}")])
    b.add("timeseries", "Database pool", "short",
          [prom('sum by (state) (app_db_pool_connections{job="$job"})', "{{state}}"),
           prom('sum(app_db_pool_max_connections{job="$job"})', "max")])
    b.add("timeseries", "Database call p95 by operation", "s",
          [prom('histogram_quantile(0.95, sum by (le, operation) '
                '(rate(app_db_query_duration_seconds_bucket{job="$job"}[$__rate_interval])))', "{{operation}}")])
    b.add("timeseries", "CPU (saturation)", "percentunit",
          [prom('sum by (instance) (rate(process_cpu_seconds_total{job="$job"}[$__rate_interval]))', "{{instance}}")],
          width=8)
    b.add("timeseries", "Resident memory", "bytes",
          [prom('sum by (instance) (process_resident_memory_bytes{job="$job"})', "{{instance}}")], width=8)
    b.add("timeseries", "File descriptors used", "percentunit",
          [prom('max by (instance) (process_open_fds{job="$job"} / process_max_fds{job="$job"})', "{{instance}}")],
          width=8)
    b.add("stat", "Availability errors (1h, SLO 0.1 %)", "percentunit",
          [prom('sum(namespace_job:slo_availability_errors:ratio_rate1h{job="$job"})', "1h")], width=6, height=5)
    b.add("stat", "Slow requests > 250 ms (1h, SLO 1 %)", "percentunit",
          [prom('sum(namespace_job:slo_latency_slow:ratio_rate1h{job="$job"})', "1h")], width=6, height=5)
    b.add("stat", "Database reachable", "bool_yes_no",
          [prom('min(app_db_up{job="$job"})', "up")], width=6, height=5)
    b.add("stat", "Versions running", "short",
          [prom('count by (version) (app_build_info{job="$job"})', "{{version}}")], width=6, height=5)
    return b


def logs():
    b = Board("devsecops-app-logs", "devsecops-app: logs",
              "Log volume, errors and live logs of devsecops-app from Loki; filter by request id.",
              [datasource_var("loki", "loki", "Loki"), namespace_var(), textbox_var("request_id", "Request id")])
    sel = '{app="devsecops-app", namespace=~"$namespace"}'
    b.add("timeseries", "Log lines by level", "short",
          [loki(f"sum by (level) (count_over_time({sel} [$__auto]))", "{{level}}")], datasource=LOKI)
    b.add("timeseries", "Errors", "short",
          [loki(f'sum(count_over_time({{app="devsecops-app", namespace=~"$namespace", level=~"error|critical"}} [$__auto]))',
                "errors")], datasource=LOKI)
    b.add("timeseries", "5xx responses by route (access log)", "short",
          [loki(f'sum by (route) (count_over_time({sel} | json | event="access" | status >= 500 [$__auto]))',
                "{{route}}")], datasource=LOKI)
    b.add("timeseries", "Slowest requests (access log, p99)", "ms",
          [loki(f'quantile_over_time(0.99, {sel} | json | event="access" | unwrap duration_ms [$__auto]) by (route)',
                "{{route}}")], datasource=LOKI)
    b.add("logs", "Logs (filter with the request id box)", "none",
          [loki(f'{sel} | request_id=~"$request_id.*"')], width=24, height=14, datasource=LOKI,
          showTime=True, wrapLogMessage=True, sortOrder="Descending", enableLogDetails=True)
    b.add("logs", "Errors and security events", "none",
          [loki(f'{sel} | json | level=~"error|critical" or event="auth_failure" or event="rate_limited"')],
          width=24, height=10, datasource=LOKI, showTime=True, wrapLogMessage=True, sortOrder="Descending",
          enableLogDetails=True)
    return b


def security():
    b = Board("devsecops-app-security", "devsecops-app: security",
              "Authentication failures, 4xx/5xx, rate limiting, scanners and devsecops findings.",
              [datasource_var("datasource", "prometheus", "Prometheus"), datasource_var("loki", "loki", "Loki"),
               job_var()])
    b.add("timeseries", "401 and 403 responses", "reqps",
          [prom('sum by (status) (rate(http_requests_total{job="$job", status=~"401|403"}[$__rate_interval]))',
                "{{status}}")])
    b.add("timeseries", "Rejected tokens by reason", "reqps",
          [prom('sum by (reason) (rate(app_auth_failures_total{job="$job"}[$__rate_interval]))', "{{reason}}")])
    b.add("timeseries", "4xx and 5xx by status", "reqps",
          [prom('sum by (status) (rate(http_requests_total{job="$job", status=~"4..|5.."}[$__rate_interval]))',
                "{{status}}")])
    b.add("timeseries", "Rate-limited requests", "reqps",
          [prom('sum(rate(app_rate_limited_requests_total{job="$job"}[$__rate_interval]))', "429")])
    b.add("timeseries", "Requests to unknown paths (scanners)", "reqps",
          [prom('sum(rate(http_requests_total{job="$job", endpoint="unmatched"}[$__rate_interval]))', "unmatched")])
    b.add("table", "User agents probing unknown paths", "short",
          [loki('topk(10, sum by (user_agent) (count_over_time({app="devsecops-app"} | json | event="access"'
                ' | route="unmatched" [$__range])))', query_type="instant")],
          datasource=LOKI)
    b.add("stat", "Open findings by severity", "short",
          [prom('sum by (severity) (devsecops_findings{state!="fixed"})', "{{severity}}")], width=8, height=6)
    b.add("stat", "New findings by severity", "short",
          [prom('sum by (severity) (devsecops_findings{state="new"})', "{{severity}}")], width=8, height=6)
    b.add("stat", "Findings past their SLA", "short",
          [prom('sum by (severity) (devsecops_findings_sla_breached)', "{{severity}}")], width=8, height=6)
    b.add("timeseries", "Open findings by category", "short",
          [prom('sum by (category) (devsecops_findings{state!="fixed"})', "{{category}}")], width=24)
    return b


def render():
    return {f"{b.uid}.json": json.dumps(b.to_json(), indent=2, sort_keys=True) + "\n"
            for b in (application(), logs(), security())}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, text in render().items():
        with open(os.path.join(OUT, name), "w") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(os.path.join(OUT, name))}")


if __name__ == "__main__":
    main()
