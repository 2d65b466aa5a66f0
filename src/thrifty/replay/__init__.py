"""``thrifty bench replay``: a workload replayed through the gateway with each mechanism switched
on in turn, against a FAKE upstream answering from real data, priced at real rates; it writes
``requests.jsonl`` (one line per request), ``summary.json`` (one entry per step, recounted from
the lines) and a report (Markdown and HTML, matplotlib plots)."""
